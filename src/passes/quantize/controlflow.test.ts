// Every quantize mode reaches MatMul/Gemm/Conv nodes inside If/Loop/Scan subgraphs (weights in the subgraph, as
// Constant nodes, or read from the outer scope), keeps the model's outputs close, and static INT8 calibrates through
// the branches actually taken. Silero VAD v5 (every weight inside If branches) quantizes to FP16 and dynamic INT8.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { A, Graph, Model, Tensor, tensorType, type Value } from '../../ir/index.js';
import { loadModel, opsetProblems } from '../../onnx/index.js';
import { type HostTensor, runModel } from '../../runtime/index.js';
import { packageModels, randomFloat } from '../../testing/fixtures.js';
import { rand } from '../../testing/passes.js';
import { quantize } from './index.js';

const D = 32;

/** x [2,D], cond → If (then: MatMul with a branch weight + Relu; else: Gemm with an outer-scope weight) → Loop ×3
 * (state · Constant-node weight, Tanh) → Scan over seq [3,2,D] (xt·Wx (outer) + h·Wh (body), Tanh); and a Conv in
 * each branch of a second If on img [1,4,6,6]. */
function controlFlowModel(): Model {
  const m = new Model(new Graph('main'));
  m.opsetImports.set('', 17);
  const g = m.graph;
  const x = g.addInput('x', tensorType('float32', [2, D]));
  const cond = g.addInput('cond', tensorType('bool', []));
  const seq = g.addInput('seq', tensorType('float32', [3, 2, D]));
  const img = g.addInput('img', tensorType('float32', [1, 4, 6, 6]));
  const wOuter = g.addInitializer('w_outer', rand([D, D], 1, 0.3));
  const cOuter = g.addInitializer('c_outer', rand([D], 2, 0.1));
  const wxOuter = g.addInitializer('wx_outer', rand([D, D], 3, 0.3));
  const convW = g.addInitializer('conv_w_outer', rand([8, 4, 3, 3], 4, 0.3));

  const thenG = new Graph('then', g);
  const w1 = thenG.addInitializer('w_then', rand([D, D], 5, 0.3));
  const mm = thenG.addNode({ opType: 'MatMul', name: 'then_matmul', inputs: [x, w1], outputs: ['then_mm'] });
  const r = thenG.addNode({ opType: 'Relu', name: 'then_relu', inputs: [mm.output(0)], outputs: ['then_y'] });
  thenG.outputs.push(r.output(0));
  const elseG = new Graph('else', g);
  const gm = elseG.addNode({
    opType: 'Gemm',
    name: 'else_gemm',
    inputs: [x, wOuter, cOuter],
    outputs: ['else_y'],
  });
  elseG.outputs.push(gm.output(0));
  const iff = g.addNode({
    opType: 'If',
    name: 'if',
    inputs: [cond],
    outputs: ['if_y'],
    attrs: { then_branch: { type: 'graph', value: thenG }, else_branch: { type: 'graph', value: elseG } },
  });

  const body = new Graph('loop_body', g);
  body.addInput('iter', tensorType('int64', []));
  const cin = body.addInput('cond_in', tensorType('bool', []));
  const sIn = body.addInput('s_in', tensorType('float32', [2, D]));
  const kw = body.addNode({
    opType: 'Constant',
    name: 'loop_w',
    outputs: ['loop_w'],
    attrs: { value: { type: 'tensor', value: rand([D, D], 6, 0.3) } },
  });
  const lm = body.addNode({
    opType: 'MatMul',
    name: 'loop_matmul',
    inputs: [sIn, kw.output(0)],
    outputs: ['loop_mm'],
  });
  const lt = body.addNode({ opType: 'Tanh', name: 'loop_tanh', inputs: [lm.output(0)], outputs: ['s_out'] });
  const co = body.addNode({ opType: 'Identity', name: 'loop_cond', inputs: [cin], outputs: ['cond_out'] });
  const so = body.addNode({
    opType: 'Identity',
    name: 'loop_scan',
    inputs: [lt.output(0)],
    outputs: ['scan_out'],
  });
  body.outputs.push(co.output(0), lt.output(0), so.output(0));
  const trip = g.addInitializer('trip', Tensor.scalar('int64', 3));
  const loop = g.addNode({
    opType: 'Loop',
    name: 'loop',
    inputs: [trip, null, iff.output(0)],
    outputs: ['loop_s', 'loop_all'],
    attrs: { body: { type: 'graph', value: body } },
  });

  const sb = new Graph('scan_body', g);
  const hIn = sb.addInput('h_in', tensorType('float32', [2, D]));
  const xt = sb.addInput('xt', tensorType('float32', [2, D]));
  const wh = sb.addInitializer('wh', rand([D, D], 7, 0.3));
  const a = sb.addNode({ opType: 'MatMul', name: 'scan_mx', inputs: [xt, wxOuter], outputs: ['scan_a'] });
  const b = sb.addNode({ opType: 'MatMul', name: 'scan_mh', inputs: [hIn, wh], outputs: ['scan_b'] });
  const s = sb.addNode({
    opType: 'Add',
    name: 'scan_add',
    inputs: [a.output(0), b.output(0)],
    outputs: ['scan_s'],
  });
  const h = sb.addNode({ opType: 'Tanh', name: 'scan_tanh', inputs: [s.output(0)], outputs: ['h_out'] });
  const yt = sb.addNode({ opType: 'Identity', name: 'scan_y', inputs: [h.output(0)], outputs: ['y_t'] });
  sb.outputs.push(h.output(0), yt.output(0));
  const scan = g.addNode({
    opType: 'Scan',
    name: 'scan',
    inputs: [loop.output(0), seq],
    outputs: ['scan_h', 'scan_ys'],
    attrs: { body: { type: 'graph', value: sb }, num_scan_inputs: A.int(1) },
  });

  const convBranch = (name: string, w: Value | null) => {
    const cg = new Graph(name, g);
    const wv = w ?? cg.addInitializer(`${name}_w`, rand([8, 4, 3, 3], 8, 0.3));
    const c = cg.addNode({
      opType: 'Conv',
      name: `${name}_conv`,
      inputs: [img, wv],
      outputs: [`${name}_y`],
      attrs: { pads: A.ints([1, 1, 1, 1]) },
    });
    cg.outputs.push(c.output(0));
    return cg;
  };
  const if2 = g.addNode({
    opType: 'If',
    name: 'if_conv',
    inputs: [cond],
    outputs: ['conv_y'],
    attrs: {
      then_branch: { type: 'graph', value: convBranch('conv_then', null) },
      else_branch: { type: 'graph', value: convBranch('conv_else', convW) },
    },
  });
  g.outputs.push(scan.output(0), scan.output(1), loop.output(1), if2.output(0));
  return m;
}

const SUB_NODES = [
  'then_matmul',
  'else_gemm',
  'loop_matmul',
  'scan_mx',
  'scan_mh',
  'conv_then_conv',
  'conv_else_conv',
];

function feeds(c: boolean, seed: number): Record<string, HostTensor> {
  return {
    x: randomFloat([2, D], seed),
    cond: { dtype: 'bool', dims: [], data: Uint8Array.from([c ? 1 : 0]) },
    seq: randomFloat([3, 2, D], seed + 1),
    img: randomFloat([1, 4, 6, 6], seed + 2),
  };
}

async function worstDiff(a: Model, b: Model, cs: boolean[]): Promise<number> {
  let worst = 0;
  for (const c of cs)
    for (const seed of [11, 21]) {
      const f = feeds(c, seed);
      const ra = await runModel(a, f, { threads: 1 });
      const rb = await runModel(b, f, { threads: 1 });
      for (const [k, t] of Object.entries(ra)) {
        const x = t.data as Float32Array;
        const y = rb[k]!.data as Float32Array;
        for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
      }
    }
  return worst;
}

describe('quantize modes inside If/Loop/Scan', () => {
  const m = controlFlowModel();
  const calibration = [true, false].flatMap((c) => [1, 2, 3].map((s) => feeds(c, 100 * s + (c ? 1 : 0))));
  for (const [mode, tol, expect] of [
    ['dynamic', 0.08, SUB_NODES],
    ['fp16', 0.01, SUB_NODES],
    ['int4', 0.25, SUB_NODES.filter((n) => !n.includes('conv'))],
    ['static', 0.15, SUB_NODES],
  ] as const)
    test(`${mode}: every subgraph MatMul/Gemm/Conv quantized, outer-scope weights read in place, outputs close`, async () => {
      const r = await quantize(m, { mode, calibration, optimize: false });
      for (const n of expect)
        assert.ok(r.nodes.includes(n), `${mode}: ${n} not in ${JSON.stringify(r.nodes)}`);
      assert.deepEqual(opsetProblems(r.model), []);
      // the outer-scope weights are still initializers of the main graph, read from inside the subgraphs
      const d = await worstDiff(m, r.model, [true, false]);
      assert.ok(d <= tol, `${mode}: max |diff| ${d}`);
    });

  test('static INT8 calibrates through the branches actually taken', async () => {
    const onlyThen = [1, 2, 3].map((s) => feeds(true, 200 + s));
    const r = await quantize(m, { mode: 'static', calibration: onlyThen, optimize: false });
    assert.ok(r.nodes.includes('then_matmul') && r.nodes.includes('conv_then_conv'));
    for (const n of ['else_gemm', 'conv_else_conv']) {
      assert.ok(!r.nodes.includes(n), `${n} was never run during calibration`);
      const s = r.plan!.skipped.find((k) => k.node === n);
      assert.match(s?.reason ?? '', /never taken/);
    }
    assert.ok((await worstDiff(m, r.model, [true])) <= 0.15);
    // the else branch stayed float: exact
    const f = feeds(false, 5);
    const a = await runModel(m, f, { threads: 1 });
    const b = await runModel(r.model, f, { threads: 1 });
    assert.deepEqual([...(b.conv_y!.data as Float32Array)], [...(a.conv_y!.data as Float32Array)]);
  });
});

describe('Silero VAD v5 (weights inside If branches)', () => {
  const pm = packageModels().find((p) => p.name === 'silero_vad_v5')!;
  const model = loadModel(pm.path);
  for (const [mode, tol] of [
    ['fp16', 0.005],
    ['dynamic', 0.03],
  ] as const)
    test(`${mode}: quantizes the Convs of both branches; speech probability within ${tol} at 16 and 8 kHz`, async () => {
      const r = await quantize(model, { mode });
      assert.ok(r.nodes.filter((n) => n.includes('Conv')).length >= 12, JSON.stringify(r.nodes.slice(0, 5)));
      assert.deepEqual(opsetProblems(r.model), []);
      let worst = 0;
      for (const sr of [16000n, 8000n])
        for (let s = 0; s < 3; s++) {
          const f = pm.feeds(model);
          f.sr = { dtype: 'int64', dims: [], data: BigInt64Array.from([sr]) };
          const n = sr === 8000n ? 256 : 512;
          f.input = randomFloat([1, n], 40 + s, 0.3);
          const a = await runModel(model, f, { threads: 1 });
          const b = await runModel(r.model, f, { threads: 1 });
          worst = Math.max(
            worst,
            Math.abs((a.output!.data as Float32Array)[0]! - (b.output!.data as Float32Array)[0]!),
          );
        }
      assert.ok(worst <= tol, `${mode}: max |Δ probability| ${worst}`);
    });
});

test('Silero VAD legacy (types inside its If branches partly unknown): fp16 converts what it can, ORT runs it, close', async () => {
  const pm = packageModels().find((p) => p.name === 'silero_vad_legacy')!;
  const model = loadModel(pm.path);
  const r = await quantize(model, { mode: 'fp16' });
  assert.ok(r.nodes.length > 0);
  const f = pm.feeds(model);
  const a = await runModel(model, f, { threads: 1 });
  const b = await runModel(r.model, f, { threads: 1 });
  for (const [k, t] of Object.entries(a)) {
    const x = t.data as Float32Array;
    const y = b[k]!.data as Float32Array;
    for (let i = 0; i < x.length; i++)
      assert.ok(Math.abs(x[i]! - y[i]!) < 0.01, `${k}[${i}]: ${x[i]} vs ${y[i]}`);
  }
});
