// One way to time a model: the median of `runs` timed runs of an open session after `warmup` untimed ones, in this
// process (bench/ uses fresh processes for published figures).
import type { HostTensor, Session } from './ort.js';

export async function medianRunMs(
  s: Session,
  feeds: Record<string, HostTensor>,
  { runs = 50, warmup = 5 }: { runs?: number; warmup?: number } = {},
): Promise<number> {
  for (let i = 0; i < warmup; i++) await s.run(feeds);
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[t.length >> 1]!;
}
