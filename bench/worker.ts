// One benchmark measurement in this (fresh) process; prints one JSON line. Run by bench/run.ts, which starts
// several processes per figure because 2-thread ORT timings on 2-core VMs are bimodal per process (FACTS.md).
import { buildModel } from '../src/models/index.js';
import { Session } from '../src/runtime/index.js';
import { prng, randomFloat } from '../src/testing/fixtures.js';
import type { OptimizerSpec } from '../src/train/types.js';

export type WorkerArgs =
  | {
      bench: 'infer';
      model: string;
      precision: 'fp32';
      batch: number;
      threads: number;
      reps: number;
      warmup: number;
    }
  | { bench: 'train-step'; model: string; batch: number; threads: number; reps: number; warmup: number }
  | {
      bench: 'infer-file';
      path: string;
      batch: number;
      threads: number;
      reps: number;
      warmup: number;
      /** Item shape (default [1, 28, 28]). */
      shape?: number[];
    }
  | {
      /** Several model files timed back to back in this process: `rounds` rounds, each timing every file in turn
       * (median of `reps` runs); per file the minimum of its round medians. Input [batch, ...shape] ~ N(0, 1). */
      bench: 'infer-files';
      paths: string[];
      shape: number[];
      batch: number;
      threads: number;
      reps: number;
      rounds: number;
      warmup: number;
    };

/** SPEC training for the timing benchmark: SGD lr 0.05 momentum 0.9 (mlp, cnn-s), AdamW lr 1e-3 wd 0.01 (vit-t). */
export function specOptimizer(model: string): { optimizer: OptimizerSpec; lr: number } {
  return model === 'vit-t'
    ? { optimizer: { kind: 'adamw', weightDecay: 0.01 }, lr: 1e-3 }
    : { optimizer: { kind: 'sgd', momentum: 0.9 }, lr: 0.05 };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function infer(a: Extract<WorkerArgs, { bench: 'infer' }>): Promise<number> {
  const m = buildModel(a.model, { seed: 0 });
  const s = await Session.create(m, { threads: a.threads, label: a.model });
  const x = randomFloat([a.batch, 1, 28, 28], 1, 1);
  x.data = (x.data as Float32Array).map((v) => (v + 1) / 2);
  for (let i = 0; i < a.warmup; i++) await s.run({ input: x });
  const times: number[] = [];
  for (let i = 0; i < a.reps; i++) {
    const t0 = performance.now();
    await s.run({ input: x });
    times.push(performance.now() - t0);
  }
  await s.release();
  return median(times);
}

/** One optimisation step of the train-step graph (forward + cross-entropy + backward + update), batch of random
 * pixels in [0, 1) and random labels as in torch_reference.py `speed`. */
async function trainStep(a: Extract<WorkerArgs, { bench: 'train-step' }>): Promise<number> {
  // imported here so the infer group does not depend on the training code
  const { createTrainStep } = await import('../src/train/step.js');
  const m = buildModel(a.model, { seed: 0 });
  const { optimizer, lr } = specOptimizer(a.model);
  const runner = await createTrainStep(m, { optimizer, loss: { kind: 'cross-entropy' }, threads: a.threads });
  const x = randomFloat([a.batch, 1, 28, 28], 1, 1);
  x.data = (x.data as Float32Array).map((v) => (v + 1) / 2);
  const r = prng(2);
  const y = {
    dtype: 'int64' as const,
    dims: [a.batch],
    data: BigInt64Array.from({ length: a.batch }, () => BigInt(Math.floor(r() * 10))),
  };
  for (let i = 0; i < a.warmup; i++) await runner.run({ x, y }, lr);
  const times: number[] = [];
  for (let i = 0; i < a.reps; i++) {
    const t0 = performance.now();
    await runner.run({ x, y }, lr);
    times.push(performance.now() - t0);
  }
  await runner.release();
  return median(times);
}

/** Inference of a model file (bench/quantize.ts): input [batch, 1, 28, 28] pixels in [0, 1). */
async function inferFile(a: Extract<WorkerArgs, { bench: 'infer-file' }>): Promise<number> {
  const s = await Session.create(a.path, { threads: a.threads, label: a.path });
  const x = randomFloat([a.batch, ...(a.shape ?? [1, 28, 28])], 1, 1);
  x.data = (x.data as Float32Array).map((v) => (v + 1) / 2);
  const feeds = { [s.inputNames[0]!]: x };
  for (let i = 0; i < a.warmup; i++) await s.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < a.reps; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    times.push(performance.now() - t0);
  }
  await s.release();
  return median(times);
}

/** `infer-files`: per path, the minimum over the rounds of the median of `reps` runs (interleaved): wall ms, and
 * process CPU ms (user + system; at 1 thread the compute itself, far less disturbed by other processes' load). */
async function inferFiles(
  a: Extract<WorkerArgs, { bench: 'infer-files' }>,
): Promise<{ wall: number[]; cpu: number[] }> {
  const sessions = [];
  for (const p of a.paths) sessions.push(await Session.create(p, { threads: a.threads, label: p }));
  const x = randomFloat([a.batch, ...a.shape], 1, 1);
  const best = a.paths.map(() => Infinity);
  const bestCpu = a.paths.map(() => Infinity);
  try {
    for (const s of sessions) for (let i = 0; i < a.warmup; i++) await s.run({ [s.inputNames[0]!]: x });
    for (let r = 0; r < a.rounds; r++)
      for (let k = 0; k < sessions.length; k++) {
        const s = sessions[k]!;
        const feeds = { [s.inputNames[0]!]: x };
        const times: number[] = [];
        const cpu: number[] = [];
        for (let i = 0; i < a.reps; i++) {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          await s.run(feeds);
          times.push(performance.now() - t0);
          const c = process.cpuUsage(c0);
          cpu.push((c.user + c.system) / 1000);
        }
        best[k] = Math.min(best[k]!, median(times));
        bestCpu[k] = Math.min(bestCpu[k]!, median(cpu));
      }
  } finally {
    for (const s of sessions) await s.release();
  }
  return { wall: best, cpu: bestCpu };
}

if (process.argv[1]?.endsWith('worker.ts')) {
  const a = JSON.parse(process.argv[2]!) as WorkerArgs;
  if (a.bench === 'infer-files') {
    const r = await inferFiles(a);
    process.stdout.write(`${JSON.stringify({ median_ms: r.wall, cpu_ms: r.cpu })}\n`);
    process.exit(0);
  }
  const ms =
    a.bench === 'infer' ? await infer(a) : a.bench === 'infer-file' ? await inferFile(a) : await trainStep(a);
  process.stdout.write(`${JSON.stringify({ median_ms: ms })}\n`);
}
