import { GateError, InputError, InternalError } from '../../errors.js';
import { assertValid } from '../../ir/index.js';
import { encodeModel, loadModel } from '../../onnx/index.js';
import {
  PASSES,
  compareModels,
  opCounts,
  passesByName,
  randomInputs,
  runPasses,
  standardPipeline,
  type CompareResult,
} from '../../passes/index.js';
import { RuntimeError, runModel } from '../../runtime/index.js';
import {
  type Command,
  fmtBytes,
  fmtSaved,
  intOption,
  type Parsed,
  SAVE_OPTIONS,
  saveOutput,
  stringOption,
  table,
} from '../command.js';

function floatOption(p: Parsed, name: string, dflt: number): number {
  const v = stringOption(p, name);
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!/^\s*[0-9.eE+-]+\s*$/.test(v) || !Number.isFinite(x) || x < 0)
    throw new InputError('option', `--${name} must be a non-negative number: current value is "${v}"`, {
      value: name,
    });
  return x;
}

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
      description: `passes to run, in order, to a fixed point (default all: ${PASSES.map((p) => p.name).join(',')})`,
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
    const list = stringOption(p, 'passes');
    const passes =
      list === undefined
        ? standardPipeline()
        : passesByName(
            list
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean),
          );
    if (!passes.length) throw new InputError('option', '--passes names no pass', { value: 'passes' });
    const tolerance = floatOption(p, 'tolerance', 1e-4);
    const batch = intOption(p, 'batch', { min: 1 }) ?? 1;
    const seed = intOption(p, 'seed', { min: 0, max: 2 ** 32 - 1 }) ?? 1;
    const maxIterations = intOption(p, 'max-iterations', { min: 1, max: 1000 }) ?? 10;
    const dims = dimsOption(p);
    const shapes = shapesOption(p);
    const values = valuesOption(p);
    const check = !p.values['skip-check'];

    const m = loadModel(input);
    assertValid(m.graph, { opsetImports: m.opsetImports }, input);
    const bytesBefore = encodeModel(m).byteLength;
    const opCountsBefore = opCounts(m);
    const log = io.quiet ? undefined : (s: string) => io.err(`optimize: ${s}\n`);
    const r = await runPasses(m, passes, { maxIterations, verify: !!p.values.verify, log });
    assertValid(r.model.graph, { opsetImports: r.model.opsetImports }, `the optimized ${input}`);

    let cmp: CompareResult | undefined;
    if (check) {
      const feeds = randomInputs(m, { seed, batch, dims, shapes, values });
      try {
        await runModel(m, feeds, { threads: 1, label: input });
      } catch (e) {
        if (!(e instanceof RuntimeError)) throw e;
        throw new InputError(
          'check-input',
          `Cannot check the optimized model: ${e.message}. Set input shapes with --shapes, fixed input values with --values, or symbolic dims with --dims (or --batch), or pass --skip-check to write it unchecked`,
          { file: input },
        );
      }
      try {
        cmp = await compareModels(m, r.model, feeds);
      } catch (e) {
        if (!(e instanceof RuntimeError)) throw e;
        throw new InternalError(
          'optimized-run',
          `ONNX Runtime runs ${input} but not the optimized model: ${e.message}`,
          { file: input },
        );
      }
      if (!(cmp.maxAbsDiff <= tolerance)) {
        const worst = cmp.outputs.reduce((a, b) => (b.maxAbsDiff > a.maxAbsDiff ? b : a));
        throw new GateError(
          'optimize-diff',
          `The optimized model's output "${worst.name}" differs from the input model's by ${worst.maxAbsDiff} on random inputs: above the tolerance ${tolerance}. Nothing was written; run with --passes to find the pass`,
          { file: input, value: worst.name },
        );
      }
    }
    const saved = saveOutput(p, r.model, output);
    const bytesAfter = saved.modelBytes + saved.dataBytes;
    const opCountsAfter = opCounts(r.model);
    const json = {
      input,
      output,
      nodesBefore: r.nodesBefore,
      nodesAfter: r.nodesAfter,
      opCountsBefore,
      opCountsAfter,
      bytesBefore,
      bytesAfter,
      dataFile: saved.dataFile ?? null,
      iterations: r.iterations,
      converged: r.converged,
      passes: r.passes.map((x) => ({
        name: x.name,
        changed: x.changed,
        runs: x.runs,
        changedRuns: x.changedRuns,
        counts: x.counts,
        nodesRemoved: x.nodesRemoved,
        notes: x.notes,
        ms: Math.round(x.ms * 10) / 10,
      })),
      maxAbsDiff: cmp ? cmp.maxAbsDiff : null,
      tolerance,
      checked: !!cmp,
      outputs: cmp?.outputs ?? [],
    };
    const ops = [...new Set([...Object.keys(opCountsBefore), ...Object.keys(opCountsAfter)])].sort();
    const changedOps = ops.filter((o) => opCountsBefore[o] !== opCountsAfter[o]);
    const lines = [
      `${input} → ${output}: ${r.nodesBefore} → ${r.nodesAfter} nodes, ${fmtBytes(bytesBefore)} → ${fmtSaved(saved)}, ${r.iterations} round${r.iterations > 1 ? 's' : ''}${r.converged ? '' : ' (iteration cap reached)'}`,
      cmp
        ? `max |before − after| on random inputs: ${cmp.maxAbsDiff.toExponential(2)} (tolerance ${tolerance})`
        : 'outputs not checked (--skip-check)',
      '',
      table(
        ['pass', 'changed', 'nodes removed', 'rewrites'],
        r.passes.map((x) => [
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
          changedOps.map((o) => [o, opCountsBefore[o] ?? 0, opCountsAfter[o] ?? 0]),
        ),
      );
    const skipped = r.passes.flatMap((x) =>
      x.notes.filter((n) => /^(Cannot|Kept|constant folding: kept)/.test(n)),
    );
    if (skipped.length)
      lines.push(
        '',
        'Not rewritten:',
        ...skipped.slice(0, 20).map((n) => `  ${n}`),
        ...(skipped.length > 20 ? [`  … and ${skipped.length - 20} more`] : []),
      );
    return { json, text: lines.join('\n') };
  },
};
