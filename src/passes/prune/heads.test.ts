import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildModel } from '../../models/index.js';
import { loadModel } from '../../onnx/index.js';
import '../../ops/index.js';
import { runModel } from '../../runtime/index.js';
import { randomFeeds, TORCH_FIXTURES } from '../../testing/fixtures.js';
import { join } from 'node:path';
import { dropBlocks, findResidualBlocks } from './depth.js';
import { checkHeads } from '../../testing/prune.js';

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
