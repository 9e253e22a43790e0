import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { A } from '../../ir/index.js';
import { checkPass, count, externalModel, feed, hand, ints } from '../../testing/passes.js';
import { shapeSimplify } from './shape-ops.js';

describe('shape-simplify', () => {
  test('reshape-reshape: Reshape(Reshape(x)) reads x; Reshape(Flatten(x)) too', async () => {
    const h = hand(17);
    const x = h.input('x', ['N', 4, 6]);
    const r1 = h.e.op('Reshape', [x, h.init('s1', ints([-1, 24]))]);
    const r2 = h.e.op('Reshape', [r1, h.init('s2', ints([-1, 6, 4]))]);
    const f = h.e.op('Flatten', [r2], { axis: A.int(1) });
    const r3 = h.e.op('Reshape', [f, h.init('s3', ints([-1, 2, 12]))]);
    h.output(r3, 'y');
    const r = await checkPass(shapeSimplify, h.m, { x: feed([3, 4, 6], 1) });
    assert.equal(r.result.counts['reshape-reshape'], 3);
    assert.equal(count(r.result.model, 'Reshape'), 1);
    assert.equal(count(r.result.model, 'Flatten'), 0);
  });

  test('reshape-reshape keeps the inner Reshape when the outer copies a dim with 0', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 4, 6]);
    const r1 = h.e.op('Reshape', [x, h.init('s1', ints([4, 2, 6]))]);
    h.output(h.e.op('Reshape', [r1, h.init('s2', ints([0, -1]))]), 'y');
    const r = await checkPass(shapeSimplify, h.m, { x: feed([2, 4, 6], 1) });
    assert.equal(r.result.changed, false);
    assert.equal(count(r.result.model, 'Reshape'), 2);
  });

  test('no-op Reshape, Flatten and Expand are removed (symbolic batch dims too)', async () => {
    const h = hand(17);
    const x = h.input('x', ['N', 12]);
    const a = h.e.op('Reshape', [x, h.init('s', ints([-1, 12]))]);
    const b = h.e.op('Flatten', [a], { axis: A.int(1) });
    const c = h.e.op('Expand', [b, h.init('e', ints([1, 12]))]);
    const d = h.e.op('Expand', [c, h.init('e2', ints([3, 12]))]); // a real broadcast when N = 1: kept
    h.output(h.e.op('Relu', [d]), 'y');
    const r = await checkPass(shapeSimplify, h.m, { x: feed([1, 12], 1) });
    assert.equal(r.result.counts['noop-shape-op'], 3);
    assert.deepEqual(
      r.result.model.graph.nodes.map((n) => n.opType),
      ['Expand', 'Relu'],
    );
  });

  test('transpose-transpose composes, cancels to nothing, and transpose-identity removes [0, 1, 2]', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 3, 4]);
    const t1 = h.e.transpose(x, [1, 2, 0]);
    const t2 = h.e.transpose(t1, [0, 2, 1]); // composed: [1, 0, 2]
    const u1 = h.e.transpose(x, [2, 0, 1]);
    const u2 = h.e.transpose(u1, [1, 2, 0]); // composed: identity
    const id = h.e.transpose(h.e.op('Relu', [u2]), [0, 1, 2]);
    h.output(t2, 'a');
    h.output(id, 'b');
    const r = await checkPass(shapeSimplify, h.m, { x: feed([2, 3, 4], 1) });
    assert.equal(r.result.counts['transpose-transpose'], 2);
    assert.equal(r.result.counts['transpose-identity'], 1);
    const ts = r.result.model.graph.nodes.filter((n) => n.opType === 'Transpose');
    assert.equal(ts.length, 1);
    assert.deepEqual(ts[0]!.attrInts('perm'), [1, 0, 2]);
  });

  test('a Transpose without perm (reverse) composes using the inferred rank', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 3, 4]);
    const t1 = h.e.op('Transpose', [x]);
    h.output(h.e.op('Relu', [h.e.op('Transpose', [t1])]), 'y');
    const r = await checkPass(shapeSimplify, h.m, { x: feed([2, 3, 4], 1) });
    assert.equal(count(r.result.model, 'Transpose'), 0);
  });

  for (const opset of [11, 13, 17])
    test(`Unsqueeze→Squeeze and Squeeze→Unsqueeze with the same axes cancel (opset ${opset}); other axes do not`, async () => {
      const h = hand(opset);
      const x = h.input('x', [2, 1, 3]);
      const a = h.e.squeeze(h.e.unsqueeze(x, [0, -1]), [0, 4]);
      const b = h.e.unsqueeze(h.e.squeeze(a, [1]), [-2]);
      const c = h.e.squeeze(h.e.unsqueeze(b, [0]), [2]); // different axes: kept
      h.output(h.e.op('Relu', [c]), 'y');
      const r = await checkPass(shapeSimplify, h.m, { x: feed([2, 1, 3], 1) });
      assert.equal(r.result.counts['unsqueeze-squeeze'], 1);
      assert.equal(r.result.counts['squeeze-unsqueeze'], 1);
      assert.equal(count(r.result.model, 'Squeeze'), 1);
      assert.equal(count(r.result.model, 'Unsqueeze'), 1);
    });

  test('Cast to the same dtype is removed, a real Cast stays; a removed node that is a graph output keeps the name', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 3]);
    const r0 = h.e.op('Relu', [x]);
    const c1 = h.e.cast(r0, 'float32');
    const c2 = h.e.cast(h.e.cast(c1, 'float64'), 'float32');
    h.output(c1, 'same');
    h.output(c2, 'round');
    const r = await checkPass(shapeSimplify, h.m, { x: feed([2, 3], 1) });
    assert.equal(r.result.counts['cast-same-type'], 1);
    assert.equal(count(r.result.model, 'Cast'), 2);
    assert.equal(r.result.model.graph.outputs[0]!.producer!.opType, 'Relu');
  });

  test('a no-op on a graph input that is a graph output stays (its name cannot move)', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 3]);
    h.output(h.e.transpose(x, [0, 1]), 'y');
    const r = await checkPass(shapeSimplify, h.m, { x: feed([2, 3], 1) });
    assert.equal(r.result.changed, false);
  });

  test('external: the torch encoder and Silero VAD v5 (If subgraphs) keep their outputs', async () => {
    for (const name of ['encoder_op17', 'silero_vad_v5', 'convt_op13']) {
      const { model, feeds } = externalModel(name);
      const r = await checkPass(shapeSimplify, model, feeds);
      assert.equal(count(r.result.model, 'If'), count(model, 'If'), name);
      if (name === 'silero_vad_v5') assert.equal(r.result.counts['cast-same-type'], 14);
    }
  });
});
