import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel } from '../models/index.js';
import { ortKernels } from '../passes/quantize/index.js';
import { randomFloat } from '../testing/fixtures.js';
import { profileModel, summarizeProfile } from './profile.js';

test('summarizeProfile: per-node medians of the kernel events, in first-seen order; other events ignored', () => {
  const ev = (name: string, dur: number, op = 'Conv') => ({
    cat: 'Node',
    name,
    dur,
    ts: 0,
    args: { op_name: op },
  });
  const nodes = summarizeProfile([
    ev('c1_kernel_time', 3000),
    ev('g1_kernel_time', 500, 'Gemm'),
    ev('c1_fence_before', 99_000),
    { cat: 'Session', name: 'model_run', dur: 10_000, ts: 0 },
    ev('c1_kernel_time', 1000),
    ev('g1_kernel_time', 700, 'Gemm'),
    ev('c1_kernel_time', 2000),
  ]);
  assert.deepEqual(nodes, [
    { node: 'c1', op: 'Conv', ms: 2 },
    { node: 'g1', op: 'Gemm', ms: 0.6 },
  ]);
});

test('profileModel: one entry per kernel of the graph ORT runs, times that add up to less than a run', async () => {
  const m = buildModel('cnn-s', { seed: 0 });
  const x = randomFloat([16, 1, 28, 28], 1);
  const p = await profileModel(m, { input: x }, { threads: 1, runs: 20, warmup: 3 });
  const kernels = await ortKernels(m);
  const ops = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, v]) => `${k.replace(/^.*:/, '')}×${v}`)
      .sort();
  const seen: Record<string, number> = {};
  for (const n of p.nodes) seen[n.op] = (seen[n.op] ?? 0) + 1;
  assert.deepEqual(ops(seen), ops(kernels.ops));
  assert.ok(p.nodes.every((n) => n.ms > 0 && Number.isFinite(n.ms)));
  assert.ok(p.totalMs > 0 && p.totalMs <= p.wallMs * 1.2, `${p.totalMs} vs wall ${p.wallMs}`);
  const conv = p.nodes.filter((n) => n.op === 'Conv').reduce((a, n) => a + n.ms, 0);
  assert.ok(conv > 0.3 * p.totalMs, `convolutions ${conv} of ${p.totalMs} ms`);
});
