// Latency of one model in this process: the median of `reps` timed runs after warm-ups, on the given feeds.
import type { Model } from '../ir/index.js';
import { Session, type HostTensor } from '../runtime/index.js';

export interface LatencyOptions {
  threads?: number;
  /** Timed runs (default 50). */
  reps?: number;
  /** Untimed runs first (default 5). */
  warmup?: number;
  label?: string;
}

/** Median wall time (ms) of one ORT run of `model` on `feeds`. */
export async function measureLatency(
  model: Model | Uint8Array | string,
  feeds: Record<string, HostTensor>,
  o: LatencyOptions = {},
): Promise<number> {
  const s = await Session.create(model, { threads: o.threads, label: o.label ?? 'the model' });
  try {
    for (let i = 0; i < (o.warmup ?? 5); i++) await s.run(feeds);
    const t: number[] = [];
    for (let i = 0; i < (o.reps ?? 50); i++) {
      const t0 = performance.now();
      await s.run(feeds);
      t.push(performance.now() - t0);
    }
    t.sort((a, b) => a - b);
    return t[t.length >> 1]!;
  } finally {
    await s.release();
  }
}
