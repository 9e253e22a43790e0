import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel } from '../models/index.js';
import { ortKernels } from '../passes/quantize/index.js';
import { randomFloat } from '../testing/fixtures.js';
import {
  PROFILE_FAMILIES,
  profileByFamily,
  profileFamily,
  profileModel,
  summarizeProfile,
} from './profile.js';

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

test('profileByFamily: kernels summed per family; a Transpose ORT inserted counts as layout, one of the model as shuffle', () => {
  const nodes = [
    { node: 'c1', op: 'QLinearConv', ms: 2 },
    { node: 'c2', op: 'QLinearConv', ms: 1 },
    { node: 'sig', op: 'QLinearSigmoid', ms: 0.5 },
    { node: 'hs', op: 'HardSwish', ms: 0.25 },
    { node: 'se/mul', op: 'Mul', ms: 0.125 },
    { node: 'shuffle/t', op: 'Transpose', ms: 0.5 },
    { node: 'Transpose_token_7', op: 'Transpose', ms: 0.25 },
    { node: 'bn', op: 'BatchNormalization', ms: 1 },
    { node: 'q', op: 'QuantizeLinear', ms: 0.75 },
    { node: 'x', op: 'SomethingNew', ms: 0.0625 },
  ];
  const model = new Set(['c1', 'c2', 'sig', 'hs', 'se/mul', 'shuffle/t', 'bn', 'q', 'x']);
  const f = profileByFamily(nodes, model);
  const by = Object.fromEntries(f.map((x) => [x.family, x]));
  assert.deepEqual(
    f.map((x) => x.family),
    PROFILE_FAMILIES.filter((x) => by[x]),
  );
  assert.equal(by['int8 conv/gemm']!.ms, 3);
  assert.deepEqual(by['int8 conv/gemm']!.ops, { QLinearConv: [2, 3] });
  assert.equal(by['float activations (SiLU/Sigmoid/HardSwish/…)']!.ms, 0.25);
  assert.equal(by['float elementwise (SE Mul, residual Add)']!.ms, 0.125);
  assert.equal(by['channel shuffle / concat (Reshape/Transpose/Split/Concat/Slice)']!.ms, 0.5);
  assert.equal(by['layout (NHWC Transposes, NCHWc reorders)']!.ms, 0.25);
  assert.equal(by['batchnorm (not folded)']!.ms, 1);
  assert.equal(by.other!.ms, 0.0625);
  assert.equal(
    f.reduce((a, x) => a + x.ms, 0),
    nodes.reduce((a, x) => a + x.ms, 0),
  );
  // without the model's node names every Transpose is the model's
  assert.equal(
    profileFamily({ node: 'Transpose_token_7', op: 'Transpose' }),
    'channel shuffle / concat (Reshape/Transpose/Split/Concat/Slice)',
  );
});
