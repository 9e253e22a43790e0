// `edgefit optimize <in.onnx> <out.onnx>`: flag parsing, one call of the library's optimize() (src/api/optimize.ts),
// printing.
import type { OptimizeOutcome } from '../../api/optimize.js';
import { InputError } from '../../errors.js';
import {
  type Command,
  fmtBytes,
  fmtSaved,
  intOption,
  listOption,
  numberOption,
  outputOptions,
  type Parsed,
  SAVE_OPTIONS,
  stringOption,
  table,
} from '../command.js';

import { PASS_NAMES } from '../../passes/names.js';

/** `--dims name=value,…` → { name: value }. */
function dimsOption(p: Parsed): Record<string, number> {
  const v = stringOption(p, 'dims');
  if (v === undefined) return {};
  const out: Record<string, number> = {};
  for (const part of v.split(',').filter((s) => s.trim())) {
    const m = /^\s*([^=]+?)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m || Number(m[2]) < 1)
      throw new InputError(
        'option',
        `--dims takes name=value pairs with positive values, e.g. "batch=1,sequence=512": "${part}" is not one`,
        {
          value: 'dims',
        },
      );
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** `--shapes input=1x512,state=2x1x128` → { input: [1, 512], … }. */
function shapesOption(p: Parsed): Record<string, number[]> {
  const v = stringOption(p, 'shapes');
  if (v === undefined) return {};
  const out: Record<string, number[]> = {};
  for (const part of v.split(',').filter((s) => s.trim())) {
    const m = /^\s*([^=]+?)\s*=\s*(\d+(?:x\d+)*)?\s*$/.exec(part);
    if (!m)
      throw new InputError(
        'option',
        `--shapes takes name=AxBxC pairs, e.g. "input=1x512,state=2x1x128": "${part}" is not one`,
        { value: 'shapes' },
      );
    out[m[1]!] = m[2] ? m[2].split('x').map(Number) : [];
  }
  return out;
}

/** `--values sr=16000,…` → { sr: 16000 }. */
function valuesOption(p: Parsed): Record<string, number> {
  const v = stringOption(p, 'values');
  if (v === undefined) return {};
  const out: Record<string, number> = {};
  for (const part of v.split(',').filter((s) => s.trim())) {
    const m = /^\s*([^=]+?)\s*=\s*(\S+)\s*$/.exec(part);
    if (!m || !Number.isFinite(Number(m[2])))
      throw new InputError(
        'option',
        `--values takes name=number pairs, e.g. "sr=16000": "${part}" is not one`,
        { value: 'values' },
      );
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

export const optimize: Command = {
  name: 'optimize',
  summary:
    'Clean up and fuse a model (constant folding, Identity/Dropout removal, BatchNorm folding, MatMul+Add → Gemm, shape ops), checked in ORT.',
  usage: '<in.onnx> <out.onnx> [--passes a,b,c] [--tolerance X] [--skip-check]',
  positionals: [
    { name: 'in.onnx', description: 'model to optimize' },
    { name: 'out.onnx', description: 'where to write the result (written only when the check passes)' },
  ],
  options: {
    passes: {
      type: 'string',
      valueName: 'a,b,c',
      description: `passes to run, in order, to a fixed point (default all: ${PASS_NAMES.join(',')})`,
    },
    tolerance: {
      type: 'string',
      valueName: 'X',
      description: 'largest allowed |output before − output after| on random inputs',
      default: '1e-4',
    },
    'skip-check': {
      type: 'boolean',
      description: 'do not run the models in ONNX Runtime to compare outputs',
    },
    batch: {
      type: 'string',
      valueName: 'N',
      description: 'value of symbolic dims in the random inputs',
      default: '1',
    },
    dims: {
      type: 'string',
      valueName: 'name=N,…',
      description: 'values of named symbolic dims in the random inputs',
    },
    values: {
      type: 'string',
      valueName: 'input=X,…',
      description: 'inputs filled with one value instead of random numbers (e.g. a sample rate)',
    },
    shapes: {
      type: 'string',
      valueName: 'input=AxB,…',
      description: 'shapes of named inputs in the random inputs (an empty shape is a scalar)',
    },
    seed: { type: 'string', valueName: 'N', description: 'seed of the random inputs', default: '1' },
    'max-iterations': {
      type: 'string',
      valueName: 'N',
      description: 'rounds over the pass list before giving up on a fixed point',
      default: '10',
    },
    verify: { type: 'boolean', description: 'verify the graph after every pass that changed it' },
    ...SAVE_OPTIONS,
  },
  examples: [
    'edgefit optimize mobile.onnx mobile.opt.onnx',
    'edgefit optimize model.onnx out.onnx --passes constant-folding,dead-code --json | jq .nodesAfter',
    'edgefit optimize silero_vad_v5.onnx out.onnx --shapes input=1x512,state=2x1x128 --values sr=16000',
  ],
  async run(p, io) {
    const [input, output] = p.positionals as [string, string];
    const passes = listOption(p, 'passes');
    if (passes && !passes.length)
      throw new InputError('option', '--passes names no pass', { value: 'passes' });
    const tolerance = numberOption(p, 'tolerance', { min: 0 }) ?? 1e-4;
    const check = !p.values['skip-check'];
    const opts = {
      tolerance,
      maxIterations: intOption(p, 'max-iterations', { min: 1, max: 1000 }) ?? 10,
      verify: !!p.values.verify,
      check: check && {
        seed: intOption(p, 'seed', { min: 0, max: 2 ** 32 - 1 }) ?? 1,
        batch: intOption(p, 'batch', { min: 1 }) ?? 1,
        dims: dimsOption(p),
        shapes: shapesOption(p),
        values: valuesOption(p),
      },
      ...(passes ? { passes } : {}),
      out: outputOptions(p, output),
      ...(io.quiet ? {} : { log: (s: string) => io.err(`optimize: ${s}\n`) }),
    };
    const { optimize } = await import('../../api/optimize.js');
    const r = await optimize(input, opts);
    return { json: optimizeJson(input, output, r), text: optimizeText(input, output, r) };
  },
};

function optimizeJson(input: string, output: string, r: OptimizeOutcome) {
  const d = r.report.detail;
  return {
    input,
    output,
    nodesBefore: d.nodesBefore,
    nodesAfter: d.nodesAfter,
    opCountsBefore: d.opCountsBefore,
    opCountsAfter: d.opCountsAfter,
    bytesBefore: r.bytesBefore,
    bytesAfter: r.bytesAfter,
    dataFile: r.saved?.dataFile ?? null,
    iterations: d.iterations,
    converged: d.converged,
    passes: d.passes.map((x) => ({
      name: x.name,
      changed: x.changed,
      runs: x.runs,
      changedRuns: x.changedRuns,
      counts: x.counts,
      nodesRemoved: x.nodesRemoved,
      notes: x.notes,
      findings: x.findings,
      ms: Math.round(x.ms * 10) / 10,
    })),
    maxAbsDiff: d.check ? d.check.maxAbsDiff : null,
    tolerance: d.tolerance,
    checked: !!d.check,
    outputs: d.check?.outputs ?? [],
  };
}

function optimizeText(input: string, output: string, r: OptimizeOutcome): string {
  const d = r.report.detail;
  const before = d.opCountsBefore;
  const after = d.opCountsAfter;
  const ops = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const changedOps = ops.filter((o) => before[o] !== after[o]);
  const lines = [
    `${input} → ${output}: ${d.nodesBefore} → ${d.nodesAfter} nodes, ${fmtBytes(r.bytesBefore)} → ${r.saved ? fmtSaved(r.saved) : fmtBytes(r.bytesAfter)}, ${d.iterations} round${d.iterations > 1 ? 's' : ''}${d.converged ? '' : ' (iteration cap reached)'}`,
    d.check
      ? `max |before − after| on random inputs: ${d.check.maxAbsDiff.toExponential(2)} (tolerance ${d.tolerance})`
      : 'outputs not checked (--skip-check)',
    '',
    table(
      ['pass', 'changed', 'nodes removed', 'rewrites'],
      d.passes.map((x) => [
        x.name,
        x.changed ? 'yes' : 'no',
        x.nodesRemoved,
        Object.entries(x.counts)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') || '-',
      ]),
    ),
  ];
  if (changedOps.length)
    lines.push(
      '',
      table(
        ['op', 'before', 'after'],
        changedOps.map((o) => [o, before[o] ?? 0, after[o] ?? 0]),
      ),
    );
  const kept = r.report.notes.filter((n) => n.kind === 'kept').map((n) => n.text);
  if (kept.length)
    lines.push(
      '',
      'Not rewritten:',
      ...kept.slice(0, 20).map((n) => `  ${n}`),
      ...(kept.length > 20 ? [`  … and ${kept.length - 20} more`] : []),
    );
  return lines.join('\n');
}
