// `edgefit compare <a.onnx> <b.onnx> --data <data>`: two models side by side — accuracy, per-class recall, size,
// latency — and the SQNR of b's layer outputs against a's (tensors matched by name).
import { statSync } from 'node:fs';
import { feedRows, sampleFeeds, type DataSource } from '../../data/index.js';
import { evaluate, type EvalResult } from '../../eval/index.js';
import type { Model } from '../../ir/index.js';
import { loadModel } from '../../onnx/index.js';
import { layerSqnr, type LayerSqnr } from '../../passes/quantize/index.js';
import { Session, type HostTensor } from '../../runtime/index.js';
import { type Command, fmtBytes, intOption, pct, stringOption, table } from '../command.js';
import { DATA_FLAGS, EVAL_SUBSET_FLAGS } from '../dataflags.js';
import { openDataArg } from '../datasource.js';

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
    for (let i = 0; i < 5; i++) await s.run(feeds);
    const t: number[] = [];
    for (let i = 0; i < reps; i++) {
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

export const compareCommand: Command = {
  name: 'compare',
  summary:
    'Two models side by side on labelled data: accuracy, per-class recall, size, latency and per-layer SQNR of b against a.',
  usage:
    '<a.onnx> <b.onnx> --data <data> [--split test|train] [--limit N] [--batch N] [--threads N] [--sqnr-samples N]',
  positionals: [
    { name: 'a.onnx', description: 'the reference model (e.g. float32)' },
    { name: 'b.onnx', description: 'the model to compare (e.g. its quantized version)' },
  ],
  options: {
    data: {
      type: 'string',
      valueName: 'data',
      description: 'labelled data (built-in datasets: --split, default test)',
    },
    ...EVAL_SUBSET_FLAGS,
    batch: {
      type: 'string',
      valueName: 'N',
      description: 'batch size of the latency figures',
      default: '64',
    },
    reps: {
      type: 'string',
      valueName: 'N',
      description: 'timed runs per latency figure (median; in this process)',
      default: '50',
    },
    threads: { type: 'string', valueName: 'N', description: 'ORT intra-op threads (default: all cores)' },
    'sqnr-samples': {
      type: 'string',
      valueName: 'N',
      description: 'items used for the per-layer SQNR',
      default: '256',
    },
    ...DATA_FLAGS,
  },
  examples: [
    'edgefit compare cnn-s.onnx cnn-s.int8.onnx --data fashion-mnist',
    'edgefit compare a.onnx b.onnx --data fashion-mnist --json | jq .layers',
  ],
  async run(p, io) {
    const [fa, fb] = p.positionals as [string, string];
    const split = stringOption(p, 'split', ['test', 'train'] as const) ?? 'test';
    const limit = intOption(p, 'limit', { min: 1 });
    const batch = intOption(p, 'batch', { min: 1, max: 65536 }) ?? 64;
    const reps = intOption(p, 'reps', { min: 1, max: 100000 }) ?? 50;
    const threads = intOption(p, 'threads', { min: 1, max: 256 });
    const sqnrSamples = intOption(p, 'sqnr-samples', { min: 1 }) ?? 256;
    const a = loadModel(fa);
    const b = loadModel(fb);
    const src: DataSource = await openDataArg(p, {
      model: a,
      split,
      ...(limit !== undefined ? { limit } : {}),
      needLabels: 'edgefit compare',
    });
    try {
      const log = io.quiet ? () => {} : (s: string) => io.err(`compare: ${s}\n`);
      const ev: EvalResult[] = [];
      for (const [f, m] of [
        [fa, a],
        [fb, b],
      ] as const) {
        log(`evaluating ${f}`);
        ev.push(await evaluate(m, src, { threads, label: f }));
      }
      const feeds = await sampleFeeds(src, sqnrSamples, 0);
      log(`per-layer SQNR on ${feedRows(feeds)} items`);
      const layers: LayerSqnr[] = await layerSqnr(a, b, feeds, { threads });
      const lat = [];
      const x = batchOf(feeds[0]!, batch);
      for (const m of [a, b]) lat.push(await latency(m, x, threads, reps));
      const side = (f: string, m: Model, r: EvalResult, ms: number) => ({
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
      const json = {
        a: A,
        b: B,
        data: src.name,
        split: src.format === 'builtin' ? split : null,
        accuracyDelta: B.accuracy - A.accuracy,
        sizeRatio: B.bytes / A.bytes,
        speedup: A.latencyMs / B.latencyMs,
        latency: { batch, threads: threads ?? null, reps },
        // SQNR in dB; null (and identical: true) where b's tensor equals a's
        layers: layers.map((l) => ({
          ...l,
          sqnr: Number.isFinite(l.sqnr) ? l.sqnr : null,
          identical: l.sqnr === Infinity,
        })),
      };
      const cls = ev[0]!.perClass.map((c, i) => [
        `recall ${c.class}${c.name ? ` ${c.name}` : ''}`,
        pct(c.recall, 1),
        pct(ev[1]!.perClass[i]?.recall ?? 0, 1),
      ]);
      const text = [
        table(
          ['', 'a', 'b'],
          [
            ['model', fa, fb],
            ['size', fmtBytes(A.bytes), `${fmtBytes(B.bytes)} (${((B.bytes / A.bytes) * 100).toFixed(1)} %)`],
            [
              `accuracy (${A.n} items)`,
              pct(A.accuracy),
              `${pct(B.accuracy)} (${B.accuracy >= A.accuracy ? '+' : '−'}${Math.abs((B.accuracy - A.accuracy) * 100).toFixed(2)} points)`,
            ],
            [
              `latency, batch ${batch}${threads ? `, ${threads} thread(s)` : ''}`,
              `${A.latencyMs.toFixed(3)} ms`,
              `${B.latencyMs.toFixed(3)} ms (${(A.latencyMs / B.latencyMs).toFixed(2)}×)`,
            ],
            ...cls,
          ],
        ),
        '',
        layers.length
          ? table(
              ['layer output', 'op', 'SQNR (dB)'],
              layers.map((l) => [l.name, l.opType, Number.isFinite(l.sqnr) ? l.sqnr.toFixed(1) : 'exact']),
            )
          : 'no layer outputs shared by name',
      ].join('\n');
      return { json, text };
    } finally {
      await src.close();
    }
  },
};
