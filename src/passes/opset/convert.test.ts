import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UnsupportedError } from '../../errors.js';
import { A, Graph, type Model, Tensor, type Value } from '../../ir/index.js';
import { opsetProblems, saveModel } from '../../onnx/index.js';
import { runModel } from '../../runtime/index.js';
import { compareModels, randomInputs } from '../check.js';
import { checkConversion as check, oneOp } from '../../testing/opset.js';
import { hand, rand } from '../../testing/passes.js';
import { convertOpset } from './convert.js';

const ints = (xs: number[]) => A.ints(xs);

test('BatchNormalization-7 spatial → 9, 14, 21', async () => {
  const m = oneOp(7, [2, 3, 4, 4], (h, x) => {
    const p = (n: string, s: number, lo: number) => h.init(n, rand([3], s, 1, [lo, lo + 1]));
    return [
      h.e.op('BatchNormalization', [x, p('s', 1, 0.5), p('b', 2, -0.5), p('m', 3, -0.5), p('v', 4, 0.5)], {
        spatial: A.int(1),
        epsilon: A.float(1e-3),
      }),
    ];
  });
  await check(m, [9, 14, 21], 'BatchNormalization-9', 1e-5);
});

for (const mode of ['nearest', 'linear'])
  test(`Upsample-7 (${mode}, scales attribute) → 9 (input), 10 (Resize-10), 11, 13, 21 (Resize)`, async () => {
    const m = oneOp(7, [1, 2, 3, 5], (h, x) => [
      h.e.op('Upsample', [x], { mode: A.string(mode), scales: A.floats([1, 1, 2, 3]) }),
    ]);
    await check(m, [9], 'Upsample-9', 1e-6);
    await check(m, [10, 11, 13, 21], 'Upsample-10', 1e-5);
    const r = convertOpset(m, 13);
    assert.equal(
      r.model.graph.nodes.find((n) => n.opType === 'Resize')?.attrString('coordinate_transformation_mode'),
      'asymmetric',
    );
  });

test('Resize-10 → 11 and 19 keep asymmetric/floor sampling (fractional scales)', async () => {
  for (const mode of ['nearest', 'linear']) {
    const m = oneOp(10, [1, 1, 5, 7], (h, x) => [
      h.e.op('Resize', [x, h.init('scales', Tensor.from('float32', [4], [1, 1, 1.6, 0.7]))], {
        mode: A.string(mode),
      }),
    ]);
    await check(m, [11, 19], 'Resize-11', 1e-5);
  }
});

test('Slice-9 and TopK-9 attributes → inputs at 10', async () => {
  const s = oneOp(9, [4, 6], (h, x) => [
    h.e.op('Slice', [x], { starts: ints([1, -4]), ends: ints([3, 1000]), axes: ints([0, 1]) }),
  ]);
  await check(s, [10, 13, 21], 'Slice-10');
  const t = oneOp(
    9,
    [3, 8],
    (h, x) => h.e.node('TopK', [x], { k: A.int(3), axis: A.int(1) }, { outputs: 2 }).outputs as Value[],
  );
  await check(t, [10, 11, 17], 'TopK-10');
});

test('Clip-10, Pad-10 (constant value, reflect) and Scatter-9 → 11', async () => {
  const c = oneOp(10, [3, 4], (h, x) => [h.e.op('Clip', [x], { min: A.float(-0.3), max: A.float(0.4) })]);
  await check(c, [11, 13, 21], 'Clip-11');
  const c1 = oneOp(10, [3, 4], (h, x) => [h.e.op('Clip', [x], { max: A.float(0.2) })]);
  await check(c1, [11], 'Clip-11');
  const p = oneOp(10, [1, 2, 3, 4], (h, x) => [
    h.e.op('Pad', [x], { pads: ints([0, 0, 1, 2, 0, 0, 2, 1]), value: A.float(0.5) }),
  ]);
  await check(p, [11, 18, 21], 'Pad-11');
  const pr = oneOp(10, [1, 2, 3, 4], (h, x) => [
    h.e.op('Pad', [x], { pads: ints([0, 0, 1, 2, 0, 0, 1, 1]), mode: A.string('reflect') }),
  ]);
  await check(pr, [11], 'Pad-11');
  const sc = oneOp(9, [3, 4], (h, x) => {
    const idx = h.init('idx', Tensor.from('int64', [2, 4], [0, 1, 2, 0, 2, 0, 1, 1]));
    const upd = h.init('upd', rand([2, 4], 5));
    return [h.e.op('Scatter', [x, idx, upd], { axis: A.int(0) })];
  });
  await check(sc, [11, 16], 'Scatter-11');
});

test('Dropout-10 ratio → input at 12', async () => {
  const m = oneOp(10, [2, 5], (h, x) => [h.e.op('Dropout', [x], { ratio: A.float(0.3) })]);
  await check(m, [12, 13], 'Dropout-12');
});

test('Squeeze/Unsqueeze/ReduceSum/Split-11 axes and split → inputs at 13; Split → num_outputs at 18', async () => {
  const sq = oneOp(11, [2, 1, 3, 1], (h, x) => [
    h.e.op('Unsqueeze', [h.e.op('Squeeze', [x], { axes: ints([1, -1]) })], { axes: ints([0]) }),
  ]);
  await check(sq, [13, 21], 'Squeeze-13');
  const rs = oneOp(11, [2, 3, 4], (h, x) => [
    h.e.op('ReduceSum', [x], { axes: ints([0, 2]), keepdims: A.int(0) }),
  ]);
  await check(rs, [13, 18], 'ReduceSum-13');
  const sp = oneOp(
    11,
    [2, 6],
    (h, x) =>
      h.e.node('Split', [x], { axis: A.int(1), split: ints([2, 4]) }, { outputs: 2 }).outputs as Value[],
  );
  await check(sp, [13, 18], 'Split-13');
  const even = oneOp(
    13,
    [2, 6],
    (h, x) => h.e.node('Split', [x], { axis: A.int(1) }, { outputs: 3 }).outputs as Value[],
  );
  await check(even, [18, 21], 'Split-18');
});

for (const op of ['Softmax', 'LogSoftmax', 'Hardmax'])
  test(`${op}-11 coerced-2-D axis → single axis at 13`, async () => {
    const mid = oneOp(11, [2, 3, 4], (h, x) => [h.e.op(op, [x], { axis: A.int(1) })]);
    await check(mid, [13, 21], `${op}-13 coerced`, 1e-6);
    const dflt = oneOp(11, [2, 3, 4], (h, x) => [h.e.op(op, [x])]);
    await check(dflt, [13], `${op}-13 coerced`, 1e-6);
    const last = oneOp(11, [2, 3, 4], (h, x) => [h.e.op(op, [x], { axis: A.int(2) })]);
    await check(last, [13], `${op}-13 axis kept`, 1e-6);
  });

test('Reduce*-13 axes attribute → input at 18', async () => {
  for (const op of ['ReduceMean', 'ReduceMax', 'ReduceL2', 'ReduceLogSumExp', 'ReduceProd'])
    await check(
      oneOp(13, [2, 3, 4], (h, x) => [h.e.op(op, [x], { axes: ints([1]), keepdims: A.int(1) })]),
      [18, 21],
      `${op}-18`,
      1e-5,
    );
});

test('BatchNormalization-9 with unused training outputs → 14 drops them', async () => {
  const m = oneOp(9, [2, 3, 4, 4], (h, x) => {
    const p = (n: string, s: number, lo: number) => h.init(n, rand([3], s, 1, [lo, lo + 1]));
    const n = h.e.node(
      'BatchNormalization',
      [x, p('s', 1, 0.5), p('b', 2, -0.5), p('m', 3, -0.5), p('v', 4, 0.5)],
      {},
      { outputs: 1 },
    );
    return [n.output(0)];
  });
  // a one-output BN-9 is the BN-14 form already: a plain version bump, no rule fires
  await check(m, [14, 15, 21], null, 1e-5);
});

test('RoiAlign-10 → 16 keeps output_half_pixel; GridSample-16 → 20 renames bilinear', async () => {
  const h = hand(10);
  h.m.irVersion = 5;
  const x = h.input('x', [1, 2, 6, 6]);
  const rois = h.init('rois', Tensor.from('float32', [2, 4], [0.5, 0.5, 4.2, 3.7, 1, 1.5, 5, 5.5]));
  const bi = h.init('bi', Tensor.from('int64', [2], [0, 0]));
  h.output(
    h.e.op('RoiAlign', [x, rois, bi], {
      output_height: A.int(2),
      output_width: A.int(3),
      sampling_ratio: A.int(2),
    }),
    'y',
  );
  await check(h.m, [16, 21], 'RoiAlign-16', 1e-5);
  const gs = hand(16);
  const gx = gs.input('x', [1, 2, 4, 5]);
  const grid = gs.init('grid', rand([1, 3, 2, 2], 9, 1.1));
  gs.output(gs.e.op('GridSample', [gx, grid], { mode: A.string('bilinear') }), 'y');
  await check(gs.m, [20, 21], 'GridSample-20', 1e-5);
});

test('subgraphs are converted with the model (If branches with Squeeze-11 and Softmax-11)', async () => {
  const h = hand(11);
  h.m.irVersion = 6;
  const x = h.input('x', [2, 1, 3]);
  const cond = h.input('cond', [], 'bool');
  const branch = (name: string, op: 'Softmax' | 'Squeeze') => {
    const g = new Graph(name, h.g);
    const n = g.addNode({
      opType: op,
      inputs: [x],
      outputs: [`${name}_y`],
      attrs: op === 'Squeeze' ? { axes: ints([1]) } : { axis: A.int(1) },
    });
    const y = n.output(0);
    // both branches give [2, 3]: Softmax over the coerced tail, then a Squeeze of the singleton axis
    if (op === 'Softmax') {
      const s = g.addNode({
        opType: 'Squeeze',
        inputs: [y],
        outputs: [`${name}_z`],
        attrs: { axes: ints([1]) },
      });
      g.outputs.push(s.output(0));
    } else g.outputs.push(y);
    return g;
  };
  const n = h.g.addNode({
    opType: 'If',
    inputs: [cond],
    outputs: ['y'],
    attrs: {
      then_branch: { type: 'graph', value: branch('then', 'Softmax') },
      else_branch: { type: 'graph', value: branch('else', 'Squeeze') },
    },
  });
  h.g.outputs.push(n.output(0));
  for (const c of [true, false]) {
    const feeds = {
      ...randomInputs(h.m, { seed: 2 }),
      cond: { dtype: 'bool' as const, dims: [], data: Uint8Array.from([c ? 1 : 0]) },
    };
    const r = convertOpset(h.m, 13);
    assert.deepEqual(opsetProblems(r.model), []);
    assert.ok((r.counts['Squeeze-13 axes→input'] ?? 0) >= 2);
    const cmp = await compareModels(h.m, r.model, feeds);
    assert.ok(cmp.maxAbsDiff < 1e-6, `cond ${c}: ${cmp.maxAbsDiff}`);
  }
});

test('convertOpset refuses downgrades, unknown targets and forms it has no rule for', () => {
  const m = oneOp(13, [2, 3], (h, x) => [h.e.op('Relu', [x])]);
  assert.throws(() => convertOpset(m, 11), UnsupportedError);
  assert.throws(() => convertOpset(m, 40), UnsupportedError);
  const bn = oneOp(7, [2, 3, 4], (h, x) => {
    const p = (n: string) => h.init(n, rand([3, 4], 1, 1, [0.5, 1]));
    return [h.e.op('BatchNormalization', [x, p('s'), p('b'), p('m'), p('v')], { spatial: A.int(0) })];
  });
  assert.throws(
    () => convertOpset(bn, 9),
    (e: Error) => e instanceof UnsupportedError && /spatial=0/.test(e.message),
  );
  // the input model is never modified
  const sq = oneOp(11, [2, 1], (h, x) => [h.e.op('Squeeze', [x], { axes: ints([1]) })]);
  convertOpset(sq, 13);
  assert.equal(sq.opset(''), 11);
  assert.ok(sq.graph.nodes[0]!.attr('axes'));
});

test('the opset verify rule names nodes whose op or form does not exist at the import, and saveModel refuses them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-opset-'));
  try {
    const cases: [Model, RegExp][] = [
      [
        oneOp(13, [2, 1], (h, x) => [h.e.op('Squeeze', [x], { axes: ints([1]) })]),
        /Squeeze-13 .* no attribute "axes"/,
      ],
      [
        oneOp(11, [2, 1], (h, x) => [h.e.op('Squeeze', [x, h.init('a', Tensor.from('int64', [1], [1]))])]),
        /Squeeze-11 .*takes 1 input/,
      ],
      [
        oneOp(10, [1, 1, 2, 2], (h, x) => [
          h.e.op('Upsample', [x, h.init('s', Tensor.from('float32', [4], [1, 1, 2, 2]))]),
        ]),
        /deprecated since opset 10/,
      ],
      [
        oneOp(
          9,
          [4],
          (h, x) => h.e.node('DynamicQuantizeLinear', [x], {}, { outputs: 3 }).outputs as Value[],
        ),
        /added in opset 11/,
      ],
      [
        oneOp(10, [2, 3], (h, x) => [
          h.e.op('DequantizeLinear', [
            h.init('q', Tensor.from('int8', [2, 3], [1, 2, 3, 4, 5, 6])),
            h.init('sc', Tensor.from('float32', [2], [0.1, 0.2])),
          ]),
          x,
        ]),
        /per-channel DequantizeLinear .* needs opset 13/,
      ],
      [
        oneOp(13, [3], (h, x) => [
          h.e.op(
            'ScatterElements',
            [x, h.init('i', Tensor.from('int64', [1], [0])), h.init('u', Tensor.from('float32', [1], [1]))],
            { reduction: A.string('add') },
          ),
        ]),
        /no attribute "reduction"/,
      ],
    ];
    for (const [m, re] of cases) {
      const ps = opsetProblems(m);
      assert.ok(
        ps.some((p) => re.test(p.message)),
        `${re}: ${JSON.stringify(ps)}`,
      );
      const out = join(dir, 'bad.onnx');
      assert.throws(
        () => saveModel(m, out),
        (e: Error) => re.test(e.message) && /node "/.test(e.message),
      );
      assert.equal(existsSync(out), false, 'nothing written');
    }
    // ORT agrees for one of them: it refuses DynamicQuantizeLinear at opset 9
    await assert.rejects(
      runModel(cases[3]![0], { x: { dtype: 'float32', dims: [4], data: new Float32Array(4) } }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
