import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { A } from '../../ir/index.js';
import { randomFeeds } from '../../testing/fixtures.js';
import { checkPass, cnnSWithStats, count, externalModel, feed, hand, rand } from '../../testing/passes.js';
import { foldBatchNorm } from './batchnorm.js';

interface ConvBn {
  C?: number;
  M?: number;
  group?: number;
  bias?: boolean;
  eps?: number;
  readTwice?: boolean;
  bnIsOutput?: boolean;
  opset?: number;
}

function convBn(o: ConvBn = {}) {
  const { C = 4, M = 6, group = 1, bias = true, eps = 1e-5, opset = 13 } = o;
  const h = hand(opset);
  const x = h.input('x', ['N', C, 8, 8]);
  const inputs = [x, h.init('w', rand([M, C / group, 3, 3], 1, 0.5))];
  if (bias) inputs.push(h.init('b', rand([M], 2)));
  const conv = h.e.node(
    'Conv',
    inputs,
    { group: A.int(group), pads: A.ints([1, 1, 1, 1]) },
    { name: 'conv2' },
  );
  const bn = h.e.node(
    'BatchNormalization',
    [
      conv.output(0),
      h.init('scale', rand([M], 3, 1, [0.5, 1.5])),
      h.init('shift', rand([M], 4)),
      h.init('mean', rand([M], 5)),
      h.init('var', rand([M], 6, 1, [0.2, 2])),
    ],
    { epsilon: A.float(eps) },
    { name: 'bn3' },
  );
  if (o.bnIsOutput) h.output(bn.output(0), 'y');
  else h.output(h.e.op('Relu', [bn.output(0)]), 'y');
  if (o.readTwice) h.output(h.e.op('Sigmoid', [conv.output(0)]), 'side');
  return { m: h.m, feeds: { x: feed([2, C, 8, 8], 9) } };
}

function gemmBn(o: {
  transB: 0 | 1;
  C?: 'none' | 'vector' | 'row' | 'full' | 'scalar';
  alpha?: number;
  beta?: number;
}) {
  const K = 5;
  const N = 7;
  const M = 3;
  const h = hand(13);
  const x = h.input('x', [M, K]);
  const B = h.init('B', rand(o.transB ? [N, K] : [K, N], 1, 0.5));
  const cshape = { vector: [N], row: [1, N], full: [M, N], scalar: [1], none: [] }[o.C ?? 'vector'];
  const inputs = [x, B];
  if ((o.C ?? 'vector') !== 'none') inputs.push(h.init('C', rand(cshape, 2)));
  const gemm = h.e.node(
    'Gemm',
    inputs,
    { transB: A.int(o.transB), alpha: A.float(o.alpha ?? 1), beta: A.float(o.beta ?? 1) },
    { name: 'fc' },
  );
  const bn = h.e.node(
    'BatchNormalization',
    [
      gemm.output(0),
      h.init('scale', rand([N], 3, 1, [0.5, 1.5])),
      h.init('shift', rand([N], 4)),
      h.init('mean', rand([N], 5)),
      h.init('var', rand([N], 6, 1, [0.2, 2])),
    ],
    {},
    { name: 'bn' },
  );
  h.output(bn.output(0), 'y');
  return { m: h.m, feeds: { x: feed([M, K], 9) } };
}

describe('fold-batchnorm', () => {
  for (const [what, o] of [
    ['Conv with bias', {}],
    ['Conv without bias', { bias: false }],
    ['depthwise Conv (group = C), no bias', { C: 6, M: 6, group: 6, bias: false }],
    ['grouped Conv (group 2)', { C: 4, M: 6, group: 2 }],
    ['BN output is the graph output (name kept)', { bnIsOutput: true }],
    ['opset 17', { opset: 17 }],
  ] as [string, ConvBn][])
    test(`folds into ${what}`, async () => {
      const { m, feeds } = convBn(o);
      const r = await checkPass(foldBatchNorm, m, feeds);
      assert.equal(r.result.changed, true);
      assert.equal(count(r.result.model, 'BatchNormalization'), 0);
      assert.equal(count(r.result.model, 'Conv'), 1);
      assert.deepEqual(r.result.counts, { 'fold-bn-into-conv': 1 });
      assert.deepEqual(r.result.notes, ['folded BatchNormalization "bn3" into Conv "conv2"']);
      // the weights are updated under their names; the BN parameters are gone
      assert.deepEqual(
        [...r.result.model.graph.initializers.keys()].sort(),
        o.bias === false ? ['w', 'w_bias'] : ['b', 'w'],
      );
      assert.ok(
        !r.result.model.graph.initializers.get('w')!.const!.equals(m.graph.initializers.get('w')!.const!),
      );
    });

  for (const [what, o] of [
    ['transB 0, C [N]', { transB: 0 }],
    ['transB 1, C [N]', { transB: 1 }],
    ['transB 0, no C', { transB: 0, C: 'none' }],
    ['transB 1, C [1, N], alpha 0.5, beta 2', { transB: 1, C: 'row', alpha: 0.5, beta: 2 }],
    ['transB 1, C [M, N]', { transB: 1, C: 'full', beta: 0.7 }],
    ['transB 0, C [1]', { transB: 0, C: 'scalar' }],
  ] as [string, Parameters<typeof gemmBn>[0]][])
    test(`folds into Gemm: ${what}`, async () => {
      const { m, feeds } = gemmBn(o);
      const r = await checkPass(foldBatchNorm, m, feeds);
      assert.equal(count(r.result.model, 'BatchNormalization'), 0);
      assert.deepEqual(r.result.counts, { 'fold-bn-into-gemm': 1 });
    });

  test('a Conv output read twice is NOT folded, and the note says why', async () => {
    const { m, feeds } = convBn({ readTwice: true });
    const r = await checkPass(foldBatchNorm, m, feeds);
    assert.equal(r.result.changed, false);
    assert.equal(count(r.result.model, 'BatchNormalization'), 1);
    const out = m.graph.node('conv2')!.output(0).name;
    assert.deepEqual(r.result.notes, [
      `Cannot fold BatchNormalization "bn3" into Conv "conv2" as the Conv's output "${out}" has other readers (2 node inputs)`,
    ]);
  });

  test('a negative epsilon is named in the reason', async () => {
    const { m } = convBn({ eps: -1 });
    const r = await foldBatchNorm.run(m);
    assert.equal(r.changed, false);
    assert.deepEqual(r.notes, [
      `Cannot fold BatchNormalization "bn3" into Conv "conv2" as its 'epsilon' is negative: current value is -1`,
    ]);
  });

  test('a Conv weight that is a graph input is not folded', async () => {
    const h = hand(13);
    const x = h.input('x', [1, 2, 4, 4]);
    const w = h.input('w', [3, 2, 1, 1]);
    const conv = h.e.node('Conv', [x, w], {}, { name: 'c' });
    const bn = h.e.node(
      'BatchNormalization',
      [
        conv.output(0),
        ...[1, 2, 3].map((s) => h.init(`p${s}`, rand([3], s))),
        h.init('v', rand([3], 4, 1, [1, 2])),
      ],
      {},
      { name: 'bn' },
    );
    h.output(bn.output(0), 'y');
    const r = await foldBatchNorm.run(h.m);
    assert.equal(r.changed, false);
    assert.match(
      r.notes[0]!,
      /^Cannot fold BatchNormalization "bn" into Conv "c" as its weight "w" is not a constant$/,
    );
  });

  test('torch mobile_bn_op13: 4 BatchNormalization (stem, expand, depthwise, project) folded', async () => {
    const { model, feeds } = externalModel('mobile_bn_op13');
    assert.equal(count(model, 'BatchNormalization'), 4);
    const r = await checkPass(foldBatchNorm, model, feeds);
    assert.equal(count(r.result.model, 'BatchNormalization'), 0);
    assert.deepEqual(r.result.counts, { 'fold-bn-into-conv': 4 });
    assert.equal(r.nodesAfter, r.nodesBefore - 4);
  });

  test('builder cnn-s (random BN statistics): 2 BatchNormalization folded, within 1e-5 at batch 4', async () => {
    const m = cnnSWithStats();
    const r = await checkPass(foldBatchNorm, m, randomFeeds(m, 11, 4));
    assert.equal(count(r.result.model, 'BatchNormalization'), 0);
    assert.deepEqual(r.result.counts, { 'fold-bn-into-conv': 2 });
  });
});
