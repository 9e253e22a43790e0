import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Tensor } from '../../ir/index.js';
import { buildModel } from '../../models/index.js';
import { loadModel } from '../../onnx/index.js';
import '../../ops/index.js';
import { runModel } from '../../runtime/index.js';
import { maxAbsDiff, randomFeeds, TORCH_FIXTURES } from '../../testing/fixtures.js';
import { join } from 'node:path';
import type { Model } from '../../ir/index.js';
import { findAttention, pruneHeads } from './heads.js';
import { dropBlocks, findResidualBlocks } from './depth.js';

/** The original with the removed heads' output-projection rows zeroed: what removing the heads must compute. */
function zeroHeads(model: Model, kept: number[][]): Model {
  const ref = model.clone();
  const { blocks } = findAttention(ref);
  blocks.forEach((b, i) => {
    const w = b.out.weight.const!;
    const d = Float32Array.from(w.typed() as Float32Array);
    const [r, c] = w.dims as [number, number];
    for (let y = 0; y < r; y++)
      for (let x = 0; x < c; x++) {
        const f = b.out.inAxis === 0 ? y : x;
        if (!kept[i]!.includes(Math.floor(f / b.headDim))) d[y * c + x] = 0;
      }
    ref.graph.setInitializer(b.out.weight, Tensor.from('float32', [r, c], d));
  });
  return ref;
}

async function checkHeads(model: Model, expectBlocks: number, heads: number) {
  const { blocks } = findAttention(model.clone());
  assert.equal(blocks.length, expectBlocks);
  assert.ok(blocks.every((b) => b.heads === heads));
  const r = await pruneHeads(model, { ratio: 0.5 });
  assert.equal(r.report.skipped.length, 0, r.report.skipped.join('; '));
  const kept = r.report.blocks.map((b) => b.kept);
  assert.ok(kept.every((k) => k.length === heads / 2));
  const feeds = randomFeeds(model, 5, 3);
  const a = await runModel(zeroHeads(model, kept), feeds);
  const b = await runModel(r.model, feeds);
  for (const k of Object.keys(a)) {
    assert.deepEqual(b[k]!.dims, a[k]!.dims);
    assert.ok(maxAbsDiff(a[k]!.data, b[k]!.data) < 1e-4, `${k}: ${maxAbsDiff(a[k]!.data, b[k]!.data)}`);
  }
  return r;
}

describe('attention heads', () => {
  it("the builder's vit-t: fused qkv, Reshape [N, T, 3, H, hd]", async () => {
    const r = await checkHeads(buildModel('vit-t', { seed: 4 }), 2, 4);
    const w = r.model.graph.initializers.get('blocks.0.qkv.weight')!.const!;
    assert.deepEqual(w.dims, [64, 96]);
    assert.deepEqual(r.model.graph.initializers.get('blocks.0.proj.weight')!.const!.dims, [32, 64]);
  });

  it("torch's TransformerEncoderLayer export: in_proj + Slice, Reshape [T, N·H, hd] with computed shapes", async () => {
    await checkHeads(loadModel(join(TORCH_FIXTURES, 'encoder_op14.onnx')), 2, 4);
  });
});

describe('depth', () => {
  it('finds the residual blocks of vit-t and drops the least important', async () => {
    const m = buildModel('vit-t', { seed: 4 });
    assert.equal(findResidualBlocks(m.clone()).length, 4);
    const r = await dropBlocks(m, { count: 2 });
    assert.equal(r.report.dropped.length, 2);
    assert.equal(findResidualBlocks(r.model.clone()).length, 2);
    const out = await runModel(r.model, randomFeeds(m, 1, 2));
    assert.deepEqual(out.logits!.dims, [2, 10]);
  });
});
