// `edgefit compare <a.onnx> <b.onnx> --data <data>`: flag parsing, one call of the library's compare()
// (src/api/compare.ts), printing.
import { InputError } from '../../errors.js';
import { DATA_FORMATS_HELP } from '../../data/names.js';
import { type Command, fmtBytes, intOption, pct, stringOption, table } from '../command.js';
import { DATA_FLAGS, EVAL_SUBSET_FLAGS, dataOptions } from '../dataflags.js';

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
    const spec = p.values.data;
    if (typeof spec !== 'string' || spec === '')
      throw new InputError('usage', `--data is required: ${DATA_FORMATS_HELP}`, { value: 'data' });
    const { compare } = await import('../../api/compare.js');
    const json = await compare(fa, fb, spec, {
      split,
      ...(limit !== undefined ? { limit } : {}),
      batch,
      reps,
      threads,
      sqnrSamples,
      read: dataOptions(p),
      log: io.quiet ? () => {} : (s: string) => io.err(`compare: ${s}\n`),
    });
    const { a: A, b: B, layers, skipped } = json;
    const cls = A.perClass.map((c, i) => [
      `recall ${c.class}${c.name ? ` ${c.name}` : ''}`,
      pct(c.recall, 1),
      pct(B.perClass[i]?.recall ?? 0, 1),
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
            ['layer output', 'op', 'SQNR (dB)', 'against'],
            layers.map((l) => [
              l.name,
              l.opType,
              l.mismatch ? `size mismatch ${l.mismatch}` : l.sqnr !== null ? l.sqnr.toFixed(1) : 'exact',
              l.reference === 'a' ? 'a' : 'a optimised',
            ]),
          )
        : 'no layer outputs shared by name',
      ...(layers.some((l) => l.reference !== 'a')
        ? [
            "'a optimised': the name means another tensor in a than in b (BatchNorm folded or ops fused, as quantize and optimize do): compared with a after the same clean-up/fusion passes",
          ]
        : []),
      ...(skipped.length
        ? [
            `not compared (no tensor of that name in b): ${skipped
              .slice(0, 12)
              .map((s) => s.name)
              .join(', ')}${skipped.length > 12 ? `, … (${skipped.length} in all)` : ''}`,
          ]
        : []),
    ].join('\n');
    return { json, text };
  },
};
