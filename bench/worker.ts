// One benchmark measurement in this (fresh) process; prints one JSON line. Run by bench/run.ts, which starts
// several processes per figure because 2-thread ORT timings on 2-core VMs are bimodal per process (FACTS.md).
import { buildModel } from '../src/models/index.js';
import { Session } from '../src/runtime/index.js';
import { randomFloat } from '../src/testing/fixtures.js';

export interface WorkerArgs {
  bench: 'infer';
  model: string;
  precision: 'fp32';
  batch: number;
  threads: number;
  reps: number;
  warmup: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function infer(a: WorkerArgs): Promise<number> {
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

if (process.argv[1]?.endsWith('worker.ts')) {
  const a = JSON.parse(process.argv[2]!) as WorkerArgs;
  const ms = await infer(a);
  process.stdout.write(`${JSON.stringify({ median_ms: ms })}\n`);
}
