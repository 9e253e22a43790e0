import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { type Dim, Graph, Model, Tensor, type Value, allGraphs, tensorType } from '../ir/index.js';
import { loadModel } from '../onnx/index.js';
import { packageModels, torchFixtures } from '../testing/fixtures.js';
import { formatBytes, formatCount, formatSummaryTable, summarize, summarizeFile } from './index.js';

const externalModels = () => [...torchFixtures(), ...packageModels()];
const cnnPath = (op: number) => torchFixtures().find((f) => f.name === `cnn-s_op${op}`)!.path;

function initializerSum(m: Model): { numel: number; bytes: number } {
  let numel = 0;
  let bytes = 0;
  for (const g of allGraphs(m.graph))
    for (const v of g.initializers.values()) {
      numel += v.const!.numel;
      bytes += v.const!.byteLength;
    }
  return { numel, bytes };
}

const zeros = (dims: number[]) =>
  Tensor.from('float32', dims, new Float32Array(dims.reduce((a, b) => a * b, 1)));

/** Set the type of a node's output (hand-built graphs are summarized without inference). */
function typed(v: Value, shape: Dim[]): Value {
  v.type = tensorType('float32', shape);
  return v;
}

test('params equal the plain sum of initializer sizes on every torch fixture and npm model', () => {
  const models = externalModels();
  assert.ok(models.length >= 10, `expected the external models, found ${models.length}`);
  for (const f of models) {
    const m = loadModel(f.path);
    const want = initializerSum(m);
    const s = summarize(m);
    assert.equal(s.params, want.numel, f.name);
    assert.equal(s.bytes, want.bytes, f.name);
    assert.equal(
      Object.values(s.bytesByDtype).reduce((a, b) => a + b, 0),
      want.bytes,
      `${f.name}: bytesByDtype sums to bytes`,
    );
    // layers attribute every initializer read by a node to exactly one layer
    assert.ok(s.layers.reduce((a, l) => a + l.params, 0) <= s.params, f.name);
    assert.equal(
      Object.values(s.opCounts).reduce((a, b) => a + b, 0),
      s.nodeCount,
      f.name,
    );
    assert.ok(Number.isFinite(s.macs) && s.macs >= 0, f.name);
    assert.ok(Number.isFinite(s.peakActivationBytes) && s.peakActivationBytes > 0, f.name);
  }
});

test('cnn-s: params, bytes, inputs/outputs, op counts, opsets', () => {
  for (const op of [13, 17]) {
    const s = summarizeFile(cnnPath(op));
    assert.equal(s.params, 421_642);
    assert.equal(s.bytes, 421_642 * 4);
    assert.deepEqual(s.bytesByDtype, { float32: 421_642 * 4 });
    assert.equal(s.initializerCount, 8);
    assert.equal(s.fileBytes, statSync(cnnPath(op)).size);
    assert.deepEqual(s.inputs, [{ name: 'input', dtype: 'float32', shape: ['n', 1, 28, 28] }]);
    assert.deepEqual(s.outputs, [{ name: 'logits', dtype: 'float32', shape: ['n', 10] }]);
    assert.deepEqual(s.opCounts, { Conv: 2, Relu: 3, MaxPool: 2, Flatten: 1, Gemm: 2 });
    assert.deepEqual(s.opsets, { 'ai.onnx': op });
    assert.deepEqual(s.notes, []);
  }
});

test('cnn-s MACs equal the hand count and scale linearly with batch', () => {
  const m = loadModel(cnnPath(13));
  const s1 = summarize(m);
  const byLayer = Object.fromEntries(s1.layers.map((l) => [l.name, l.macs]));
  assert.deepEqual(byLayer, {
    '/c1/Conv': 28 * 28 * 32 * 9, // 225,792
    '/c2/Conv': 14 * 14 * 64 * 32 * 9, // 3,612,672
    '/f1/Gemm': 3136 * 128, // 401,408
    '/f2/Gemm': 128 * 10, // 1,280
  });
  assert.equal(s1.macs, 4_241_152);
  assert.deepEqual(s1.macOps, ['Conv', 'Gemm']);
  assert.deepEqual(s1.macsByOpType, { Conv: 225_792 + 3_612_672, Gemm: 401_408 + 1_280 });
  assert.deepEqual(s1.macsUnknown, []);
  for (const b of [2, 7, 64]) assert.equal(summarize(m, { batch: b }).macs, 4_241_152 * b, `batch ${b}`);
  assert.equal(summarize(loadModel(cnnPath(17)), { batch: 64 }).macs, 4_241_152 * 64);
  // params per layer: weight + bias of each Conv/Gemm
  assert.deepEqual(
    s1.layers.map((l) => [l.name, l.params, l.bytes]),
    [
      ['/c1/Conv', 32 * 9 + 32, (32 * 9 + 32) * 4],
      ['/c2/Conv', 64 * 32 * 9 + 64, (64 * 32 * 9 + 64) * 4],
      ['/f1/Gemm', 3136 * 128 + 128, (3136 * 128 + 128) * 4],
      ['/f2/Gemm', 128 * 10 + 10, (128 * 10 + 10) * 4],
    ],
  );
  assert.deepEqual(s1.layers[0]!.outputShape, ['n', 32, 28, 28]);
});

test('cnn-s peak activation: the two 32×28×28 maps around the first Relu, scaled by batch', () => {
  const m = loadModel(cnnPath(13));
  const map = 32 * 28 * 28 * 4; // 100,352 bytes: the Conv output and the Relu output
  const s1 = summarize(m);
  assert.equal(s1.peakActivationBytes, 2 * map);
  assert.equal(s1.peakAt, '/r1/Relu');
  assert.equal(s1.unknownActivations, 0);
  assert.equal(summarize(m, { batch: 64 }).peakActivationBytes, 64 * 2 * map);
  assert.equal(summarize(m, { dims: { n: 3 } }).peakActivationBytes, 3 * 2 * map);
});

test('encoder MACs equal the hand count, with symbolic expression dims such as "4 * n"', () => {
  // d 32, 4 heads of 8, seq 16, ff 64, 2 layers, head 32 → 10; per layer:
  // in-proj 16·32·96, QKᵀ 4·16·16·8, AV 4·16·16·8, out-proj 16·32·32, ff 16·32·64 + 16·64·32
  const perLayer = 16 * 32 * 96 + 4 * 16 * 16 * 8 * 2 + 16 * 32 * 32 + 16 * 32 * 64 * 2;
  const want = 2 * perLayer + 32 * 10; // 295,232
  for (const name of ['encoder_op14', 'encoder_op17']) {
    const m = loadModel(torchFixtures().find((f) => f.name === name)!.path);
    const s = summarize(m);
    assert.equal(s.macs, want, name);
    assert.ok(
      s.layers.some((l) => JSON.stringify(l.outputShape).includes('4 * n')),
      'an expression dim is exercised',
    );
    assert.equal(summarize(m, { batch: 3 }).macs, 3 * want, name);
    assert.deepEqual(s.macsUnknown, []);
    assert.equal(s.unknownActivations, 0);
  }
});

test('summarize leaves the model unchanged (inference runs on a clone)', () => {
  const m = loadModel(cnnPath(13));
  const before = m.graph.nodes.map((n) => n.outputs.map((o) => JSON.stringify(o?.type)));
  summarize(m);
  assert.deepEqual(
    m.graph.nodes.map((n) => n.outputs.map((o) => JSON.stringify(o?.type))),
    before,
  );
});

/**
 * x[N,10] ─MatMul(W1 10×20)→ a[N,20] ─Relu→ b[N,20] ─MatMul(W2 20×5)→ c[N,5] ─MatMul(W3 5×20)→ d[N,20]
 *                            └──────────────────────────────── Add(a, d) → e[N,20]
 * Outputs: b and e. `a` must stay live from step 0 to step 4; `b` (a graph output) to the end.
 */
function chain(): Model {
  const m = new Model(new Graph('chain'));
  m.opsetImports.set('', 17);
  const g = m.graph;
  const x = g.addInput('x', tensorType('float32', ['N', 10]));
  const w1 = g.addInitializer('w1', zeros([10, 20]));
  const w2 = g.addInitializer('w2', zeros([20, 5]));
  const w3 = g.addInitializer('w3', zeros([5, 20]));
  const a = typed(g.addNode({ opType: 'MatMul', name: 'mm1', inputs: [x, w1], outputs: ['a'] }).output(), [
    'N',
    20,
  ]);
  const b = typed(g.addNode({ opType: 'Relu', name: 'relu', inputs: [a], outputs: ['b'] }).output(), [
    'N',
    20,
  ]);
  const c = typed(g.addNode({ opType: 'MatMul', name: 'mm2', inputs: [b, w2], outputs: ['c'] }).output(), [
    'N',
    5,
  ]);
  const d = typed(g.addNode({ opType: 'MatMul', name: 'mm3', inputs: [c, w3], outputs: ['d'] }).output(), [
    'N',
    20,
  ]);
  const e = typed(g.addNode({ opType: 'Add', name: 'add', inputs: [a, d], outputs: ['e'] }).output(), [
    'N',
    20,
  ]);
  g.outputs.push(b, e);
  return m;
}

test('peak activation on a hand-built chain with a long-lived branch and a mid-graph output', () => {
  // bytes per row of N: x 40, a 80, b 80, c 20, d 80, e 80
  // step 0 mm1:  x a          = 120
  // step 1 relu: a b          = 160
  // step 2 mm2:  a b c        = 180
  // step 3 mm3:  a b c d      = 260   (a waits for add, b is an output)
  // step 4 add:  a b d e      = 320
  for (const infer of [false, true]) {
    const m = chain();
    const s = summarize(m, { infer });
    assert.equal(s.peakActivationBytes, 320, `infer ${infer}`);
    assert.equal(s.peakAt, 'add');
    assert.equal(s.unknownActivations, 0);
    assert.equal(summarize(m, { infer, batch: 5 }).peakActivationBytes, 5 * 320);
    assert.equal(s.params, 200 + 100 + 100);
    assert.equal(s.macs, 10 * 20 + 20 * 5 + 5 * 20);
    assert.deepEqual(
      s.layers.map((l) => [l.name, l.params, l.macs]),
      [
        ['mm1', 200, 200],
        ['mm2', 100, 100],
        ['mm3', 100, 100],
      ],
    );
  }
  // named dims override batch; expression dims evaluate term by term
  assert.equal(summarize(chain(), { infer: false, batch: 5, dims: { N: 2 } }).peakActivationBytes, 2 * 320);
  const m2 = chain();
  m2.graph.inputs[0]!.type = tensorType('float32', ['2 * N + 1', 10]);
  for (const n of m2.graph.nodes) typed(n.output(), ['2 * N + 1', n.output().shape![1]!]);
  assert.equal(summarize(m2, { infer: false, batch: 3 }).peakActivationBytes, 7 * 320);
  assert.equal(summarize(m2, { infer: false, batch: 3 }).macs, 7 * 400);
  // without b as an output, b dies after mm2: step 3 = a c d = 180, step 4 = a d e = 240
  const m = chain();
  m.graph.outputs.splice(0, 1);
  assert.equal(summarize(m, { infer: false }).peakActivationBytes, 240);
});

test('peak: the peak can sit mid-graph, and tensors of unknown size count as 0 and are reported', () => {
  const m = new Model(new Graph('wide'));
  m.opsetImports.set('', 17);
  const g = m.graph;
  const x = g.addInput('x', tensorType('float32', [1, 4]));
  // step 0: x 16 + big 4000 = 4016; step 1: big + small 8 = 4008; step 2: small + y 8 = 16
  const big = typed(
    g.addNode({ opType: 'Tile', name: 'tile', inputs: [x], outputs: ['big'] }).output(),
    [1, 1000],
  );
  const small = typed(
    g.addNode({ opType: 'ReduceSum', name: 'sum', inputs: [big], outputs: ['small'] }).output(),
    [1, 2],
  );
  const y = typed(
    g.addNode({ opType: 'Neg', name: 'neg', inputs: [small], outputs: ['y'] }).output(),
    [1, 2],
  );
  g.outputs.push(y);
  let s = summarize(m, { infer: false });
  assert.equal(s.peakActivationBytes, 4016);
  assert.equal(s.peakAt, 'tile');
  assert.equal(s.macs, 0);
  assert.deepEqual(s.layers, []);
  small.type = tensorType('float32', [1, null]);
  s = summarize(m, { infer: false });
  assert.equal(s.unknownActivations, 1);
  assert.equal(s.peakActivationBytes, 4016);
  y.type = undefined;
  s = summarize(m, { infer: false });
  assert.equal(s.unknownActivations, 2);
});

test('Constant node outputs and initializers are not activations', () => {
  const m = new Model(new Graph('c'));
  m.opsetImports.set('', 17);
  const g = m.graph;
  const x = g.addInput('x', tensorType('float32', [1, 8]));
  const k = g.addNode({
    opType: 'Constant',
    name: 'k',
    outputs: ['k'],
    attrs: { value: { type: 'tensor', value: zeros([8, 100]) } },
  });
  typed(k.output(), [8, 100]);
  const y = typed(
    g.addNode({ opType: 'MatMul', name: 'mm', inputs: [x, k.output()], outputs: ['y'] }).output(),
    [1, 100],
  );
  g.outputs.push(y);
  const s = summarize(m, { infer: false });
  assert.equal(s.peakActivationBytes, 32 + 400);
  assert.equal(s.params, 0);
  assert.equal(s.constantParams, 800);
  assert.equal(s.constantBytes, 3200);
  assert.equal(s.macs, 800);
  assert.deepEqual(
    s.layers.map((l) => [l.name, l.params, l.macs]),
    [['mm', 0, 800]],
  );
});

test('MACs of ConvTranspose, grouped Conv, batched MatMul, Gemm with transA, LSTM', () => {
  const m = new Model(new Graph('ops'));
  m.opsetImports.set('', 17);
  const g = m.graph;
  // ConvTranspose: X [N,4,5,5], W [4, 6/2, 3, 3], group 2, stride 2 → every input element × 3·9 products
  const x = g.addInput('x', tensorType('float32', ['N', 4, 5, 5]));
  const wt = g.addInitializer('wt', zeros([4, 3, 3, 3]));
  const ct = g.addNode({
    opType: 'ConvTranspose',
    name: 'ct',
    inputs: [x, wt],
    attrs: { group: { type: 'int', value: 2 }, strides: { type: 'ints', value: [2, 2] } },
  });
  typed(ct.output(), ['N', 6, 11, 11]);
  // depthwise-ish Conv: 6 → 6 channels, group 3, kernel 3 → W [6, 2, 3, 3]; output [N, 6, 9, 9]
  const wc = g.addInitializer('wc', zeros([6, 2, 3, 3]));
  const cv = g.addNode({
    opType: 'Conv',
    name: 'cv',
    inputs: [ct.output(), wc],
    attrs: { group: { type: 'int', value: 3 } },
  });
  typed(cv.output(), ['N', 6, 9, 9]);
  // batched MatMul: A [2,3,4,5] · B [5,6] → [2,3,4,6]
  const a = g.addInput('a', tensorType('float32', [2, 3, 4, 5]));
  const b = g.addInitializer('b', zeros([5, 6]));
  const mm = g.addNode({ opType: 'MatMul', name: 'mm', inputs: [a, b] });
  typed(mm.output(), [2, 3, 4, 6]);
  // Gemm transA: A' = [7, 3]ᵀ → M=3, K=7, N=2
  const ga = g.addInput('ga', tensorType('float32', [7, 3]));
  const gb = g.addInitializer('gb', zeros([7, 2]));
  const gm = g.addNode({
    opType: 'Gemm',
    name: 'gm',
    inputs: [ga, gb],
    attrs: { transA: { type: 'int', value: 1 } },
  });
  typed(gm.output(), [3, 2]);
  // LSTM: seq 5, batch N, input 8, hidden 16, bidirectional: W [2, 64, 8], R [2, 64, 16]
  const xs = g.addInput('xs', tensorType('float32', [5, 'N', 8]));
  const lw = g.addInitializer('lw', zeros([2, 64, 8]));
  const lr = g.addInitializer('lr', zeros([2, 64, 16]));
  const ls = g.addNode({ opType: 'LSTM', name: 'lstm', inputs: [xs, lw, lr], outputs: ['Y'] });
  typed(ls.output(), [5, 2, 'N', 16]);
  g.outputs.push(cv.output(), mm.output(), gm.output(), ls.output());

  const want = {
    ct: 4 * 25 * 3 * 9,
    cv: 6 * 81 * 2 * 9,
    mm: 2 * 3 * 4 * 6 * 5,
    gm: 3 * 2 * 7,
    lstm: 5 * (2 * 64 * 8 + 2 * 64 * 16),
  };
  for (const infer of [false, true]) {
    const s = summarize(m, { infer });
    assert.deepEqual(Object.fromEntries(s.layers.map((l) => [l.name, l.macs])), want, `infer ${infer}`);
    assert.equal(
      s.macs,
      Object.values(want).reduce((p, q) => p + q, 0),
    );
    // batch 3 scales the N-dependent layers only
    const s3 = summarize(m, { infer, batch: 3 });
    assert.equal(s3.macs, 3 * (want.ct + want.cv + want.lstm) + want.mm + want.gm);
  }
});

test('If counts its larger branch; initializers inside subgraphs are params', () => {
  const m = new Model(new Graph('main'));
  m.opsetImports.set('', 17);
  const g = m.graph;
  const cond = g.addInput('cond', tensorType('bool', []));
  const x = g.addInput('x', tensorType('float32', [1, 4]));
  const branch = (name: string, k: number): Graph => {
    const s = new Graph(name, g);
    const w = s.addInitializer(`${name}_w`, zeros([4, k]));
    const y = typed(s.addNode({ opType: 'MatMul', name: `${name}_mm`, inputs: [x, w] }).output(), [1, k]);
    s.outputs.push(y);
    return s;
  };
  const node = g.addNode({
    opType: 'If',
    name: 'if',
    inputs: [cond],
    attrs: {
      then_branch: { type: 'graph', value: branch('then', 8) },
      else_branch: { type: 'graph', value: branch('else', 3) },
    },
  });
  typed(node.output(), [1, null]);
  g.outputs.push(node.output());
  const s = summarize(m, { infer: false });
  assert.equal(s.params, 4 * 8 + 4 * 3);
  assert.equal(s.macs, 4 * 8);
  assert.deepEqual(s.opCounts, { If: 1, MatMul: 2 });
  assert.deepEqual(
    s.layers.map((l) => [l.graph, l.name, l.params, l.macs]),
    [
      ['if/then_branch', 'then_mm', 32, 32],
      ['if/else_branch', 'else_mm', 12, 12],
    ],
  );
  // x (16) stays live into the If; its step adds the larger body peak (then: y 32); the If output is unknown
  assert.equal(s.peakActivationBytes, 1 + 16 + 32);
  assert.equal(s.unknownActivations, 1);
});

test('the table renders every weighted layer, aligned, with a totals line and human units', () => {
  const s = summarize(loadModel(cnnPath(13)));
  const t = formatSummaryTable(s);
  const lines = t.split('\n');
  for (const l of s.layers)
    assert.ok(
      lines.some((x) => x.startsWith(l.name)),
      `row for ${l.name}`,
    );
  assert.equal(s.layers.length, 4);
  const header = lines[0]!;
  assert.match(header, /^Layer\s+Op\s+Output shape\s+Params\s+Weights\s+MACs$/);
  // right-aligned numeric columns end at the header's end
  const rows = lines.slice(2, 2 + s.layers.length);
  for (const r of rows) assert.equal(r.length, header.length, r);
  const total = lines.find((x) => x.startsWith('Total'))!;
  assert.ok(total, 'totals line');
  assert.match(total, /421,642\s+1\.7 MB\s+4\.2 M$/);
  assert.match(t, /\/c2\/Conv\s+Conv\s+\[n, 64, 14, 14\]\s+18,496\s+74\.0 kB\s+3\.6 M/);
  assert.match(t, /MACs:\s+4\.2 M MACs at batch 1 \(counted: Conv, Gemm\)/);
  assert.match(t, /Activations: peak 200\.7 kB at \/r1\/Relu/);
  assert.match(t, /Inputs:\s+input float32 \[n, 1, 28, 28\]/);
  // every npm model renders too
  for (const f of packageModels())
    assert.ok(formatSummaryTable(summarizeFile(f.path)).includes('Total'), f.name);
});

test('human units', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1_686_568), '1.7 MB');
  assert.equal(formatBytes(999_999), '1.0 MB');
  assert.equal(formatCount(12_345_678), '12.3 M');
  assert.equal(formatCount(4_241_152 * 64), '271.4 M');
  assert.equal(formatCount(1_500_000_000), '1.5 G');
  assert.equal(formatCount(0), '0');
});
