// compare(): two models side by side on labelled data — accuracy, per-class recall, size on disk, latency — and the
// SQNR of b's layer outputs against a's (tensors matched by name). `edgefit compare` prints it.
import { statSync } from 'node:fs';
import { feedRows, openData, sampleFeeds } from '../data/index.js';
import { evaluate, type ClassMetrics, type EvalResult } from '../eval/index.js';
import type { Model } from '../ir/index.js';
import { compareLayers, type LayerComparison, type LayersResult } from '../passes/quantize/index.js';
import { loadRunnableModel, medianRunMs, Session, type HostTensor } from '../runtime/index.js';
import type { DataReadOptions } from './common.js';

/** Bytes on disk: the model file plus the external data files its tensors name. */
function fileBytes(path: string, m: Model): number {
  let n = statSync(path).size;
  const seen = new Set<string>();
  for (const v of m.graph.initializers.values()) {
    const loc = v.const?.external?.location;
    if (loc && !seen.has(loc)) {
      seen.add(loc);
      try {
        n += statSync(new URL(loc, `file://${path}`)).size;
      } catch {
        /* reported by the loader */
      }
    }
  }
  return n;
}

/** Median latency (ms) of one run on `feeds` after warm-ups, in this process. */
async function latency(
  m: Model,
  feeds: Record<string, HostTensor>,
  threads: number | undefined,
  reps: number,
): Promise<number> {
  const s = await Session.create(m, { threads, label: 'the model' });
  try {
    return await medianRunMs(s, feeds, { runs: reps, warmup: 5 });
  } finally {
    await s.release();
  }
}

/** A batch of `batch` rows built by repeating the first rows of `feeds`. */
function batchOf(feeds: Record<string, HostTensor>, batch: number): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(feeds)) {
    const rows = t.dims[0]!;
    const row = t.data.length / rows;
    const Ctor = t.data.constructor as new (n: number) => HostTensor['data'];
    const data = new Ctor(batch * row);
    for (let i = 0; i < batch; i++)
      (data as unknown as { set(a: ArrayLike<unknown>, o: number): void }).set(
        t.data.subarray((i % rows) * row, ((i % rows) + 1) * row) as ArrayLike<unknown>,
        i * row,
      );
    out[k] = { dtype: t.dtype, dims: [batch, ...t.dims.slice(1)], data };
  }
  return out;
}

export interface CompareOptions {
  /** Split of a built-in dataset (default test). */
  split?: 'train' | 'test';
  /** N items of the data drawn at random (fixed seed), in item order. */
  limit?: number;
  /** Batch size of the latency figures (default 64). */
  batch?: number;
  /** Timed runs per latency figure (median; default 50). */
  reps?: number;
  threads?: number;
  /** Items used for the per-layer SQNR (default 256). */
  sqnrSamples?: number;
  read?: DataReadOptions;
  log?: (line: string) => void;
}

export interface CompareSide {
  file: string;
  bytes: number;
  accuracy: number;
  n: number;
  recall: number[];
  perClass: ClassMetrics[];
  latencyMs: number;
}

export interface CompareOutcome {
  a: CompareSide;
  b: CompareSide;
  data: string;
  split: string | null;
  accuracyDelta: number;
  sizeRatio: number;
  speedup: number;
  latency: { batch: number; threads: number | null; reps: number };
  /**
   * SQNR in dB; null (and identical: true) where b's tensor equals a's; null with `mismatch` where the sizes
   * differ. `reference` is 'a-optimised' where the name means another tensor in a than in b (BatchNorm folded, …)
   * and b was compared with a after the same clean-up/fusion passes.
   */
  layers: (Omit<LayerComparison, 'sqnr'> & { sqnr: number | null; identical: boolean })[];
  /** a's layer outputs b has no tensor for. */
  skipped: LayersResult['skipped'];
}

/** Compare model files `fa` (the reference) and `fb` on labelled data. */
export async function compare(
  fa: string,
  fb: string,
  data: string,
  o: CompareOptions = {},
): Promise<CompareOutcome> {
  const split = o.split ?? 'test';
  const batch = o.batch ?? 64;
  const reps = o.reps ?? 50;
  const log = o.log ?? (() => {});
  const a = await loadRunnableModel(fa);
  const b = await loadRunnableModel(fb);
  const src = await openData(data, {
    ...(o.read ?? {}),
    model: a,
    split,
    ...(o.limit !== undefined ? { limit: o.limit } : {}),
    needLabels: 'edgefit compare',
  });
  try {
    const ev: EvalResult[] = [];
    for (const [f, m] of [
      [fa, a],
      [fb, b],
    ] as const) {
      log(`evaluating ${f}`);
      ev.push(await evaluate(m, src, { threads: o.threads, label: f }));
    }
    const feeds = await sampleFeeds(src, o.sqnrSamples ?? 256, 0);
    log(`per-layer SQNR on ${feedRows(feeds)} items`);
    const { layers, skipped } = await compareLayers(a, b, feeds, { threads: o.threads });
    const lat = [];
    const x = batchOf(feeds[0]!, batch);
    for (const m of [a, b]) lat.push(await latency(m, x, o.threads, reps));
    const side = (f: string, m: Model, r: EvalResult, ms: number): CompareSide => ({
      file: f,
      bytes: fileBytes(f, m),
      accuracy: r.accuracy,
      n: r.n,
      recall: r.perClass.map((c) => c.recall),
      perClass: r.perClass,
      latencyMs: ms,
    });
    const A = side(fa, a, ev[0]!, lat[0]!);
    const B = side(fb, b, ev[1]!, lat[1]!);
    return {
      a: A,
      b: B,
      data: src.name,
      split: src.format === 'builtin' ? split : null,
      accuracyDelta: B.accuracy - A.accuracy,
      sizeRatio: B.bytes / A.bytes,
      speedup: A.latencyMs / B.latencyMs,
      latency: { batch, threads: o.threads ?? null, reps },
      layers: layers.map((l) => ({
        ...l,
        sqnr: Number.isFinite(l.sqnr) ? l.sqnr : null,
        identical: l.sqnr === Infinity,
      })),
      skipped,
    };
  } finally {
    await src.close();
  }
}
