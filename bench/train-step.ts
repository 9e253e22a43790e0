// Train-step timing for one model in this process (the bench harness runs it in ≥ 3 fresh processes, see
// ../shared/bench/SPEC.md): `node --import tsx bench/train-step.ts <mlp|cnn-s|vit-t> [--threads 2]
// [--batch 64] [--reps 50] [--layout flat|per-param] [--profile <prefix>] [--forward]`. Prints one SPEC JSON line
// {"bench":"train-step",…,"median_ms"} on stdout. SPEC's optimizers: SGD lr 0.05 momentum 0.9 for mlp and cnn-s,
// AdamW lr 1e-3 weight decay 0.01 for vit-t; cross-entropy. Synthetic pixels and labels (timing does not depend on
// the values). `--forward` times the inference graph instead, for the "step ≈ 3× forward" comparison. `--cpu` adds
// "cpu_ms", the median process CPU time per run (user + system, all threads): on a loaded machine the 1-thread CPU
// time is the stable figure (BENCHMARKS.md "Train step performance").
import { parseArgs } from 'node:util';
import { mulberry32 } from '../src/data/index.js';
import { buildModel } from '../src/models/index.js';
import { Session } from '../src/runtime/index.js';
import { createTrainStep } from '../src/train/step.js';
import type { OptimizerSpec } from '../src/train/types.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string', default: '2' },
    batch: { type: 'string', default: '64' },
    reps: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '5' },
    layout: { type: 'string', default: 'flat' },
    profile: { type: 'string' },
    forward: { type: 'boolean', default: false },
    cpu: { type: 'boolean', default: false },
  },
});
const name = positionals[0] ?? 'cnn-s';
const threads = Number(values.threads);
const batch = Number(values.batch);
const reps = Number(values.reps);
const warmup = Number(values.warmup);
const u = mulberry32(1);
const x = Float32Array.from({ length: batch * 784 }, () => (u() >>> 24) / 255);
const y = BigInt64Array.from({ length: batch }, () => BigInt(u() % 10));
const b = {
  x: { dtype: 'float32' as const, dims: [batch, 1, 28, 28], data: x },
  y: { dtype: 'int64' as const, dims: [batch], data: y },
};
const model = buildModel(name, { seed: 0 });
const median = (t: number[]) => [...t].sort((p, q) => p - q)[t.length >> 1]!;
const times: number[] = [];
const cpu: number[] = [];
/** Time one run: wall clock, and process CPU time with --cpu. */
async function timed(i: number, f: () => Promise<unknown>): Promise<void> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await f();
  const t = performance.now() - t0;
  const c = process.cpuUsage(c0);
  if (i < warmup) return;
  times.push(t);
  cpu.push((c.user + c.system) / 1000);
}

if (values.forward) {
  const s = await Session.create(model, { threads, profilePrefix: values.profile });
  for (let i = 0; i < warmup + reps; i++) await timed(i, () => s.run({ input: b.x }));
  if (values.profile) s.endProfiling();
  await s.release();
} else {
  const optimizer: OptimizerSpec =
    name === 'vit-t' ? { kind: 'adamw', weightDecay: 0.01 } : { kind: 'sgd', momentum: 0.9 };
  const lr = name === 'vit-t' ? 1e-3 : 0.05;
  const runner = await createTrainStep(model, {
    optimizer,
    loss: { kind: 'cross-entropy' },
    threads,
    batchSizes: [batch],
    layout: values.layout as 'flat' | 'per-param',
    profilePrefix: values.profile,
  });
  for (let i = 0; i < warmup + reps; i++) await timed(i, () => runner.run(b, lr));
  await runner.release();
}
process.stdout.write(
  `${JSON.stringify({ bench: values.forward ? 'infer' : 'train-step', model: name, batch, threads, layout: values.forward ? undefined : values.layout, median_ms: +median(times).toFixed(3), cpu_ms: values.cpu ? +median(cpu).toFixed(3) : undefined })}\n`,
);
