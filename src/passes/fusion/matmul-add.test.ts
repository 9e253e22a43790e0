import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Dim } from '../../ir/index.js';
import { checkPass, count, externalModel, feed, hand, rand } from '../../testing/passes.js';
import { matmulAddToGemm } from './matmul-add.js';

function mmAdd(
  o: {
    x?: Dim[];
    biasShape?: number[];
    biasLeft?: boolean;
    readTwice?: boolean;
    weightInput?: boolean;
    addIsOutput?: boolean;
  } = {},
) {
  const K = 6;
  const N = 4;
  const h = hand(17);
  const xs = o.x ?? ['M', K];
  const x = h.input('x', xs);
  const w = o.weightInput ? h.input('w', [K, N]) : h.init('w', rand([K, N], 1));
  const mm = h.e.node('MatMul', [x, w], {}, { name: 'mm' });
  const b = h.init('b', rand(o.biasShape ?? [N], 2));
  const add = h.e.node('Add', o.biasLeft ? [b, mm.output(0)] : [mm.output(0), b], {}, { name: 'add' });
  if (o.addIsOutput) h.output(add.output(0), 'y');
  else h.output(h.e.op('Relu', [add.output(0)]), 'y');
  if (o.readTwice) h.output(h.e.op('Neg', [mm.output(0)]), 'side');
  const dims = xs.map((d) => (typeof d === 'number' ? d : 3));
  const feeds: Record<string, ReturnType<typeof feed>> = { x: feed(dims, 7) };
  if (o.weightInput) feeds.w = feed([K, N], 8);
  return { m: h.m, feeds };
}

describe('matmul-add-to-gemm', () => {
  for (const [what, o] of [
    ['bias [N]', {}],
    ['bias on the left', { biasLeft: true }],
    ['bias [1, N]', { biasShape: [1, 4] }],
    ['bias [] (scalar)', { biasShape: [] }],
    ['bias [M, N] with a static M', { x: [3, 6], biasShape: [3, 4] }],
    ['the Add is the graph output (name kept)', { addIsOutput: true }],
  ] as [string, Parameters<typeof mmAdd>[0]][])
    test(`fuses: ${what}`, async () => {
      const { m, feeds } = mmAdd(o);
      const r = await checkPass(matmulAddToGemm, m, feeds);
      assert.equal(count(r.result.model, 'Gemm'), 1);
      assert.equal(count(r.result.model, 'MatMul'), 0);
      assert.equal(count(r.result.model, 'Add'), 0);
      assert.deepEqual(r.result.counts, { 'matmul-add-to-gemm': 1 });
      assert.equal(r.nodesAfter, r.nodesBefore - 1);
    });

  for (const [what, o, why] of [
    ['A of rank 3', { x: ['B', 3, 6] }, /has rank 3, not 2/],
    ['a weight that is a graph input', { weightInput: true }, /second input "w" is not a constant/],
    ['bias [M, N] with a symbolic M', { biasShape: [3, 4] }, /bias shape \[3,4\] does not broadcast/],
  ] as [string, Parameters<typeof mmAdd>[0], RegExp][])
    test(`keeps MatMul + Add: ${what}`, async () => {
      const { m, feeds } = mmAdd(o);
      const r = await checkPass(matmulAddToGemm, m, feeds);
      assert.equal(r.result.changed, false);
      assert.equal(count(r.result.model, 'Gemm'), 0);
      assert.match(r.result.notes.join('\n'), why);
    });

  test('keeps a MatMul whose output is read twice (no note: the pattern does not match)', async () => {
    const { m, feeds } = mmAdd({ readTwice: true });
    const r = await checkPass(matmulAddToGemm, m, feeds);
    assert.equal(r.result.changed, false);
    assert.equal(count(r.result.model, 'MatMul'), 1);
  });

  test('external models: rank-3 MatMuls (encoder, vit-t) stay, outputs unchanged', async () => {
    for (const name of ['encoder_op17', 'builder/vit-t', 'misc_op13']) {
      const { model, feeds } = externalModel(name);
      const r = await checkPass(matmulAddToGemm, model, feeds);
      assert.equal(r.result.changed, false, name);
      assert.equal(count(r.result.model, 'MatMul'), count(model, 'MatMul'));
    }
  });
});
