// The pipeline's config file (`edgefit.yaml`): a versioned schema (zod), read with every error pointing at its YAML path
// and line (`stages[2].quantize.calibrator: expected one of minmax|percentile|entropy|mse, got "kl" (edgefit.yaml:14)`).
// The same schema is emitted as a JSON Schema file (schema/edgefit.schema.json) so editors complete the config.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isNode } from 'yaml';
import { z } from 'zod';
import { isDatasetName } from '../data/index.js';
import { InputError } from '../errors.js';

/** The config format's version; a config names the version it was written for. */
export const CONFIG_VERSION = 1;

const positiveInt = z.number().int().positive();
const fraction = z.number().min(0).max(1);
const points = z.number().min(0).max(100);

const optimizeStage = z
  .object({
    /** Pass names (edgefit optimize --passes); default: the standard clean-up and fusion list. */
    passes: z.array(z.string()).optional(),
    /** Largest ORT output difference accepted before/after. */
    tolerance: z.number().positive().optional(),
  })
  .strict();

const pruneStage = z
  .object({
    /** Fraction of channels to remove (0–0.95). */
    ratio: z.number().min(0).max(0.95).optional(),
    /** Stop when parameter bytes are at or below this. */
    targetBytes: positiveInt.optional(),
    importance: z.enum(['l1', 'l2', 'bn', 'taylor']).optional(),
    /** Fraction removed per iteration. */
    step: z.number().gt(0).max(0.5).optional(),
    finetuneSteps: z.number().int().min(0).optional(),
    /** Fine-tuning learning rate (cosine schedule). */
    lr: z.number().positive().optional(),
    /** Fine-tuning optimizer (SGD momentum 0.9, or AdamW weight decay 0.01) and linear warm-up steps. */
    optimizer: z.enum(['sgd', 'adamw']).optional(),
    warmup: z.number().int().min(0).optional(),
    /** Fine-tune with distillation from the unpruned model (temperature, CE weight alpha). */
    distill: z
      .object({ temperature: z.number().positive().optional(), alpha: fraction.optional() })
      .strict()
      .optional(),
    /** Accuracy floor (fraction) below which pruning stops. */
    minAccuracy: fraction.optional(),
    /** Fraction of attention heads to remove. */
    heads: z.number().min(0).max(0.95).optional(),
    /** Residual blocks to drop. */
    depth: z.number().int().min(0).optional(),
  })
  .strict();

const distillStage = z
  .object({
    /**
     * Student family and knobs (`dscnn:width=16,depth=3`); `input`: the stage's input model (e.g. a pruned copy) is the
     * student; omitted: chosen from the device profile. The teacher is the pipeline's source model.
     */
    student: z.string().optional(),
    temperature: z.number().positive().optional(),
    alpha: fraction.optional(),
    epochs: positiveInt.optional(),
    /** Learn from the teacher alone (no labels). */
    unlabeled: z.boolean().optional(),
  })
  .strict();

const finetuneStage = z
  .object({
    epochs: positiveInt.optional(),
    lr: z.number().positive().optional(),
    optimizer: z.enum(['sgd', 'adamw']).optional(),
    batch: positiveInt.optional(),
  })
  .strict();

const quantizeStage = z
  .object({
    mode: z.enum(['static', 'dynamic', 'int4', 'fp16', 'qat', 'auto']).optional(),
    calibrator: z.enum(['minmax', 'percentile', 'entropy', 'mse']).optional(),
    calibSamples: positiveInt.optional(),
    /** With mode auto: the largest accuracy drop (points) a step may cost before escalating (PTQ → mixed → QAT). */
    maxDropPoints: points.optional(),
    qatEpochs: positiveInt.optional(),
    qatLr: z.number().positive().optional(),
    exclude: z.array(z.string()).optional(),
    blockSize: positiveInt.optional(),
  })
  .strict();

/** One stage: an object with exactly one key, the stage's name, whose value holds its options. */
const stage = z.union([
  z.object({ optimize: optimizeStage.nullable() }).strict(),
  z.object({ prune: pruneStage.nullable() }).strict(),
  z.object({ distill: distillStage.nullable() }).strict(),
  z.object({ finetune: finetuneStage.nullable() }).strict(),
  z.object({ quantize: quantizeStage.nullable() }).strict(),
]);

const slice = z
  .object({
    /** A class index of the evaluation data. */
    class: z.number().int().min(0),
  })
  .strict();

const sliceGate = z
  .object({
    /** Lowest recall (fraction) the candidate may have on the slice. */
    minRecall: fraction.optional(),
    /** Largest recall drop (points) vs the baseline on the slice. */
    maxRecallDropPoints: points.optional(),
  })
  .strict();

const device = z
  .object({
    name: z.string().min(1),
    ramMB: z.number().positive().optional(),
    storageMB: z.number().positive().optional(),
    threads: positiveInt.optional(),
    /** Latency budget for one batch-1 inference, in ms. */
    latencyMs: z.number().positive().optional(),
    traits: z.array(z.string()).optional(),
  })
  .strict();

const gates = z
  .object({
    /** Lowest accuracy (fraction) the candidate may have. */
    minAccuracy: fraction.optional(),
    /** Largest accuracy drop (points) vs the uncompressed baseline. */
    maxDropPoints: points.optional(),
    /** Largest accuracy drop (points) vs the version deployed for this name and device (no regression). */
    maxDropVsDeployedPoints: points.optional(),
    /** Largest model size in bytes (model file + external data). */
    maxBytes: positiveInt.optional(),
    /** Largest peak memory in bytes (weights + peak activations); default: the device's RAM when it has one. */
    maxPeakMemoryBytes: positiveInt.optional(),
    /** Largest batch-1 latency in ms; default: the device's latency budget when it has one. */
    maxLatencyMs: z.number().positive().optional(),
    /** Per-slice recall gates, by slice name. */
    slices: z.record(z.string(), sliceGate).optional(),
  })
  .strict();

export const configSchema = z
  .object({
    /** Config format version (1). */
    version: z.literal(CONFIG_VERSION),
    /** Name of the model in the registry. */
    name: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
        'letters, digits, ".", "_" and "-", starting with a letter or digit',
      ),
    source: z
      .object({
        /** Path of the source model (relative to the config file), or `registry:<name>[@<version>]`. */
        model: z.string().min(1),
      })
      .strict(),
    data: z
      .object({
        /** Labelled training data (fine-tuning, distillation, QAT). */
        train: z.string().optional(),
        /** Calibration data (static INT8). Default: train. */
        calibration: z.string().optional(),
        /** Evaluation data: every gate and every reported accuracy uses it. */
        evaluation: z.string(),
        /** `test` (default) or `train` split of a built-in dataset. */
        evaluationSplit: z.enum(['test', 'train']).optional(),
        /** Evaluate a seeded sample of N items instead of all. */
        evaluationLimit: positiveInt.optional(),
        /** Train on a seeded class-balanced subset of N items. */
        trainLimit: positiveInt.optional(),
      })
      .strict(),
    slices: z.record(z.string(), slice).optional(),
    device: device.optional(),
    stages: z.array(stage).min(1),
    gates: gates.optional(),
    registry: z
      .object({
        /** Folder of the registry (SQLite database + content-addressed artifacts), relative to the config. */
        path: z.string().min(1),
        /** Promote the candidate when every gate passes (default true). */
        promote: z.boolean().optional(),
      })
      .strict()
      .optional(),
    seed: z.number().int().min(0).optional(),
  })
  .strict();

export type PipelineConfig = z.infer<typeof configSchema>;
export type StageConfig = PipelineConfig['stages'][number];
export type StageName = 'optimize' | 'prune' | 'distill' | 'finetune' | 'quantize';

/** The name and options of one stage entry. */
export function stageOf(s: StageConfig): { name: StageName; options: Record<string, unknown> } {
  const [name, options] = Object.entries(s)[0]! as [StageName, Record<string, unknown> | null];
  return { name, options: options ?? {} };
}

/** A config read from a file: the validated object, its folder (paths resolve against it) and its source text. */
export interface LoadedConfig {
  config: PipelineConfig;
  file: string;
  dir: string;
  text: string;
}

/** `stages[2].quantize.calibrator` from a path array. */
export function formatPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const k of path) {
    if (typeof k === 'number') s += `[${k}]`;
    else s += s === '' ? String(k) : `.${String(k)}`;
  }
  return s || '(top level)';
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v: any = data;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = v[k as any];
  }
  return v;
}

type Issue = z.core.$ZodIssue;

/** One readable line for a zod issue: what was expected, what was found. */
function issueMessage(
  issue: Issue,
  data: unknown,
  prefix: readonly PropertyKey[] = [],
): { path: PropertyKey[]; message: string } {
  const path = [...prefix, ...issue.path];
  const got = valueAt(data, path);
  switch (issue.code) {
    case 'invalid_value':
      if (issue.values.length === 1)
        return { path, message: `expected ${JSON.stringify(issue.values[0])}, got ${describe(got)}` };
      return { path, message: `expected one of ${issue.values.map(String).join('|')}, got ${describe(got)}` };
    case 'invalid_type':
      if (got === undefined) return { path, message: `missing (expected ${issue.expected})` };
      return { path, message: `expected ${issue.expected}, got ${describe(got)}` };
    case 'unrecognized_keys': {
      const key = issue.keys[0]!;
      return { path: [...path, key], message: `unknown key "${key}"` };
    }
    case 'too_small':
      if (issue.origin === 'array') return { path, message: `expected at least ${issue.minimum} entries` };
      if (issue.origin === 'string') return { path, message: `expected a non-empty string` };
      return {
        path,
        message: `expected ${issue.inclusive === false ? 'more than' : 'at least'} ${issue.minimum}, got ${describe(got)}`,
      };
    case 'too_big':
      return {
        path,
        message: `expected ${issue.inclusive === false ? 'less than' : 'at most'} ${issue.maximum}, got ${describe(got)}`,
      };
    case 'invalid_union': {
      // A stage entry: name the stage keys it may have, or recurse into the one that matched by key.
      const keys = got && typeof got === 'object' && !Array.isArray(got) ? Object.keys(got) : [];
      const stageNames = ['optimize', 'prune', 'distill', 'finetune', 'quantize'];
      if (keys.length === 1 && stageNames.includes(keys[0]!)) {
        const branch = issue.errors[stageNames.indexOf(keys[0]!)];
        if (branch && branch.length > 0) return issueMessage(branch[0]!, data, path);
      }
      return {
        path,
        message: `expected one stage (${stageNames.join('|')}) with its options, got ${
          keys.length ? `keys ${keys.join(', ')}` : describe(got)
        }`,
      };
    }
    default:
      return { path, message: `${issue.message}, got ${describe(got)}` };
  }
}

/** Parse and validate config text; `file` names it in errors. */
export function parseConfig(text: string, file = 'edgefit.yaml'): PipelineConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const at = e.linePos?.[0];
    throw new InputError(
      'config',
      `${file}${at ? `:${at.line}` : ''}: not valid YAML: ${e.message.split('\n')[0]}`,
      {
        file,
      },
    );
  }
  const data = doc.toJS();
  const r = configSchema.safeParse(data);
  if (r.success) return r.data;
  const problems = r.error.issues.slice(0, 5).map((issue) => {
    const { path, message } = issueMessage(issue, data);
    const line = lineOf(doc, lines, path);
    return {
      path: formatPath(path),
      text: `${formatPath(path)}: ${message} (${file}${line ? `:${line}` : ''})`,
    };
  });
  const more = r.error.issues.length - problems.length;
  throw new InputError(
    'config',
    problems.map((p) => p.text).join('\n') + (more > 0 ? `\n… and ${more} more` : ''),
    { file, path: problems[0]!.path },
  );
}

/** The line of the deepest node on `path` that exists in the document (a missing key: its parent's line). */
function lineOf(
  doc: ReturnType<typeof parseDocument>,
  lines: LineCounter,
  path: readonly PropertyKey[],
): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as any, true);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
    if (n === path.length && path.length > 0) {
      // A missing or unknown key: point at the key itself when the parent mapping has it.
      const parent = doc.getIn(path.slice(0, -1) as any, true) as any;
      const pair = parent?.items?.find?.((p: any) => p?.key?.value === path[path.length - 1]);
      if (pair?.key?.range) return lines.linePos(pair.key.range[0]).line;
    }
  }
  return undefined;
}

/** Read a config file; relative paths in it resolve against its folder. */
export function loadConfig(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError('config', `Cannot read the pipeline config "${file}": ${(e as Error).message}`, {
      file,
    });
  }
  const config = parseConfig(text, file);
  return { config, file: resolve(file), dir: dirname(resolve(file)), text };
}

/** A data spec named in the config: a path resolves against the config's folder; built-in dataset names stay. */
export function resolveData(dir: string, p: string): string {
  return isDatasetName(p) ? p : resolve(dir, p);
}

/** A file or folder named in the config, resolved against the config's folder. */
export function resolvePath(dir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(dir, p);
}

/** The config schema as a JSON Schema document (what schema/edgefit.schema.json holds). */
export function configJsonSchema(): Record<string, unknown> {
  const s = z.toJSONSchema(configSchema, { target: 'draft-2020-12' }) as Record<string, unknown>;
  return {
    title: 'edgefit pipeline config',
    ...s,
  };
}
