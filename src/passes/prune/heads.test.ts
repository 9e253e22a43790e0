import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildModel } from '../../models/index.js';
import { loadModel } from '../../onnx/index.js';
import '../../ops/index.js';
import { runModel } from '../../runtime/index.js';
import { prng, randomFeeds, TORCH_FIXTURES } from '../../testing/fixtures.js';
import { join } from 'node:path';
import { dropBlocks, findResidualBlocks } from './depth.js';
import { findAttention, headMaskScores, pruneHeads } from './heads.js';
import { calibrationBatches } from './importance.js';
import { Tensor, type Model } from '../../ir/index.js';
import { checkHeads, zeroHeads } from '../../testing/prune.js';
import { maxAbsDiff } from '../../testing/fixtures.js';

describe('attention heads', () => {
  it("the builder's vit-t: fused qkv, Reshape [N, T, 3, H, hd]", async () => {
    const r = await checkHeads(buildModel('vit-t', { seed: 4 }), 2, 4);
    const w = r.model.graph.initializers.get('blocks.0.qkv.weight')!.const!;
    assert.deepEqual(w.dims, [64, 96]);
    assert.deepEqual(r.model.graph.initializers.get('blocks.0.proj.weight')!.const!.dims, [32, 64]);
  });

  it('removes heads again from a pruned model: 4 → 3 → 2 of the original heads (3 heads beside the q|k|v axis of 3)', async () => {
    const model = buildModel('vit-t', { seed: 4 });
    const a = await pruneHeads(model, { ratio: 0.25 });
    const baseHeads = new Map(a.report.blocks.map((b) => [b.name, b.heads]));
    assert.ok(a.report.blocks.every((b) => b.kept.length === 3));
    const b = await pruneHeads(a.model, { ratio: 0.5, baseHeads });
    assert.equal(b.report.skipped.length, 0, b.report.skipped.join('; '));
    assert.ok(b.report.blocks.every((x) => x.heads === 3 && x.kept.length === 2));
    // as indices of the original heads
    const kept = b.report.blocks.map((x, i) => x.kept.map((j) => a.report.blocks[i]!.kept[j]!));
    const feeds = randomFeeds(model, 5, 3);
    const want = await runModel(zeroHeads(model, kept), feeds);
    const got = await runModel(b.model, feeds);
    assert.deepEqual(got.logits!.dims, [3, 10]);
    assert.ok(maxAbsDiff(want.logits!.data, got.logits!.data) < 1e-4);
    assert.deepEqual(b.model.graph.initializers.get('blocks.1.qkv.weight')!.const!.dims, [64, 96]);
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

  it('with data, ranks blocks by the block-mask gradient', async () => {
    const m = buildModel('vit-t', { seed: 4 });
    const r0 = prng(5);
    const data = {
      n: 16,
      x: Float32Array.from({ length: 16 * 784 }, () => r0()),
      y: BigInt64Array.from({ length: 16 }, () => BigInt(Math.floor(r0() * 10))),
      inputShape: [1, 28, 28],
      numClasses: 10,
    };
    const r = await dropBlocks(m, { count: 1, data, importance: 'taylor', batches: 2, batchSize: 8 });
    assert.equal(r.report.importance, 'block-mask');
    const scores = r.report.candidates.map((c) => c.score);
    assert.ok(scores.every((s) => Number.isFinite(s) && s > 0));
    const lowest = r.report.candidates.reduce((a, b) => (b.score < a.score ? b : a));
    assert.deepEqual(r.report.dropped, [lowest.block]);
  });
});

describe('head-mask importance', () => {
  it('|∂L/∂m_h| equals a central finite difference of scaling head h (output-projection rows) in ORT', async () => {
    const model = buildModel('vit-t', { seed: 4 });
    const r0 = prng(3);
    const n = 8;
    const data = {
      n,
      x: Float32Array.from({ length: n * 784 }, () => r0()),
      y: BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r0() * 10))),
      inputShape: [1, 28, 28],
      numClasses: 10,
    };
    const m = model.clone();
    const { blocks } = findAttention(m);
    const opts = { ratio: 0.5, data, batches: 1, batchSize: n, seed: 1 };
    const scores = await headMaskScores(m, blocks, opts);
    const batch = calibrationBatches(data, opts).next().value!;
    const loss = async (mm: Model) => {
      const out = await runModel(mm, { input: batch.x });
      const l = out.logits!.data as Float32Array;
      let s = 0;
      for (let i = 0; i < n; i++) {
        const row = Array.from(l.subarray(i * 10, i * 10 + 10));
        const mx = Math.max(...row);
        s +=
          mx +
          Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0)) -
          row[Number((batch.y.data as BigInt64Array)[i])]!;
      }
      return s / n;
    };
    for (const [bi, h] of [
      [0, 0],
      [0, 3],
      [1, 2],
    ] as const) {
      const b = blocks[bi]!;
      const scaled = (eps: number) => {
        const c = m.clone();
        const v = c.graph.initializers.get(b.out.weight.name)!;
        const d = Float32Array.from(v.const!.typed() as Float32Array);
        const cols = v.const!.dims[1]!;
        for (let row = h * b.headDim; row < (h + 1) * b.headDim; row++)
          for (let j = 0; j < cols; j++) d[row * cols + j]! *= 1 + eps;
        c.graph.setInitializer(v, Tensor.from('float32', [...v.const!.dims], d));
        return c;
      };
      const fd = Math.abs(((await loss(scaled(1e-2))) - (await loss(scaled(-1e-2)))) / 2e-2);
      const s = scores[bi]![h]!;
      assert.ok(
        Math.abs(fd - s) <= 0.05 * s + 1e-4,
        `block ${bi} head ${h}: mask gradient ${s} vs finite difference ${fd}`,
      );
    }
    const r = await pruneHeads(model, { ...opts, importance: 'taylor', batches: 2 });
    assert.equal(r.report.importance, 'head-mask');
  });
});
