// train(): a SPEC model from scratch (by name, seeded) or the float initializers of an ONNX model, trained in ORT
// on any labelled data (built-in datasets: the train split, a seeded validation part held out), the test accuracy
// measured, the result written atomically when `out` is given. `edgefit train` is flag parsing, this call and
// printing.
import { InputError } from '../errors.js';
import type { EvalResult } from '../eval/index.js';
import type { Model } from '../ir/index.js';
import { buildModel, isModelName, type ModelName } from '../models/index.js';
import { loadRunnableModel } from '../runtime/index.js';
import { checkAlignment } from '../onnx/index.js';
import { prepareForTraining, type PreparedForTraining } from '../train/prepare.js';
import { createContext, runStage } from '../stage/context.js';
import { trainStage, type ScheduleOptions, type TrainReport } from '../stage/train.js';
import type { OptimizerSpec } from '../train/types.js';
import { checkOutputs } from '../util/fs.js';
import {
  dataRef,
  isBuiltin,
  resolveModel,
  testDataRef,
  writeOutput,
  type DataArg,
  type DataReadOptions,
  type ModelArg,
  type OutputOptions,
  type SavedModel,
} from './common.js';

export interface TrainOptions {
  /** Labelled training data (built-in datasets: the train split). */
  data: DataArg;
  /** Labelled data for the final test accuracy (default: the test split of a built-in `data`). */
  testData?: DataArg;
  /** A seeded subset of the training rows (class-balanced for a built-in split; a path: sampled before reading). */
  limit?: number;
  /** The same for the test rows. */
  testLimit?: number;
  /** Training rows held out (seeded) for validation; 0 = none (default 5,000, or 10 % below 50,000). */
  valRows?: number;
  epochs: number;
  /** Default 64. */
  batchSize?: number;
  /** Default: AdamW (weight decay 0.01) for vit-t, SGD (momentum 0.9) otherwise. */
  optimizer?: OptimizerSpec;
  /** Default cosine; lr 0.05 for SGD, 1e-3 for AdamW. */
  schedule?: Partial<ScheduleOptions>;
  /** Keep the best epoch by validation accuracy (default true); false keeps the last. */
  keepBest?: boolean;
  patience?: number;
  checkpoint?: { path: string; everyEpochs?: number };
  resume?: string;
  /** Seed of shuffling, the subsets, the validation split and (built models) initialisation. Default 0. */
  seed?: number;
  threads?: number;
  read?: DataReadOptions;
  out?: string | OutputOptions;
  log?: (line: string) => void;
  quiet?: boolean;
}

export interface TrainOutcome {
  model: Model;
  report: TrainReport;
  /** Rows of the test data the accuracy was measured on (0 without test data). */
  testRows: number;
  testAccuracy: number | null;
  /** External models: the opset upgrade and un-shared initializers of prepareForTraining (src/train/prepare.ts). */
  prepared?: { opsetUpgrade: PreparedForTraining['opsetUpgrade'] | null; unshared: Record<string, number> };
  test?: EvalResult;
  saved?: SavedModel;
}

/** The default optimizer of a model: AdamW for vit-t (SPEC), SGD with momentum 0.9 otherwise. */
export function defaultOptimizer(model: ModelArg | ModelName, kind?: 'sgd' | 'adamw'): OptimizerSpec {
  return (kind ?? (model === 'vit-t' ? 'adamw' : 'sgd')) === 'adamw'
    ? { kind: 'adamw', weightDecay: 0.01 }
    : { kind: 'sgd', momentum: 0.9 };
}

/** Train `model` (a SPEC model name, an ONNX file or an IR model; not modified). */
export async function train(model: ModelArg | ModelName, o: TrainOptions): Promise<TrainOutcome> {
  const seed = o.seed ?? 0;
  // every file the run writes is checked before the first step, so a bad path does not waste the run
  const out = o.out === undefined ? undefined : typeof o.out === 'string' ? { path: o.out } : o.out;
  if (out?.externalData) checkAlignment(out.align ?? 4096);
  checkOutputs([
    ...(out ? [{ what: '--out', path: out.path }] : []),
    ...(o.checkpoint ? [{ what: '--checkpoint', path: o.checkpoint.path }] : []),
  ]);
  let m: Model;
  let name: string;
  let prepared: PreparedForTraining | undefined;
  if (typeof model === 'string' && isModelName(model)) {
    m = buildModel(model, { seed });
    name = model;
  } else {
    if (typeof model === 'string' && !/\.onnx$/i.test(model))
      throw new InputError(
        'unknown-model',
        `--model must be mlp, cnn-s, vit-t or an .onnx file: current value is "${model}"`,
        { value: model },
      );
    // an external graph gets the training-safe clean-up first: exporters compute slice bounds and resize scales
    // from shapes, and gradients need them constant
    // (plus un-shared de-duplicated initializers and an opset upgrade where a gradient needs it: src/train/prepare.ts)
    const r =
      typeof model === 'string'
        ? { model: await loadRunnableModel(model), name: model }
        : resolveModel(model);
    prepared = await prepareForTraining(r.model);
    m = prepared.model;
    for (const note of prepared.notes) o.log?.(note);
    name = r.name;
  }
  const optimizer = o.optimizer ?? defaultOptimizer(model);
  const schedule: ScheduleOptions = {
    kind: o.schedule?.kind ?? 'cosine',
    lr: o.schedule?.lr ?? (optimizer.kind === 'adamw' ? 1e-3 : 0.05),
    ...(o.schedule?.warmup !== undefined ? { warmup: o.schedule.warmup } : {}),
    ...(o.schedule?.stepEvery !== undefined ? { stepEvery: o.schedule.stepEvery } : {}),
    ...(o.schedule?.gamma !== undefined ? { gamma: o.schedule.gamma } : {}),
  };
  // test rows: --test-data, else the test split of a built-in --data (class-balanced --test-limit subset)
  const testRef = testDataRef(o.testData, o.data, m, o.read, {
    ...(o.testLimit !== undefined ? { limit: o.testLimit } : {}),
    seed,
    command: 'edgefit train',
  });
  const ctx = createContext({
    data: {
      train: dataRef(o.data, m, o.read, {
        split: 'train',
        needLabels: 'edgefit train',
        ...(o.limit !== undefined && !isBuiltin(o.data) ? { limit: o.limit, limitSeed: seed } : {}),
      }),
      ...(testRef ? { eval: testRef } : {}),
    },
    seed,
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    ...(o.limit !== undefined ? { trainLimit: o.limit } : {}),
    ...(o.valRows !== undefined ? { valRows: o.valRows } : {}),
    modelName: name,
    ...(o.log ? { log: o.log } : {}),
    quiet: o.quiet ?? true,
    evalBatchSize: 500,
  });
  try {
    // read and split the data (and open the test data) before training starts
    await ctx.trainingRows();
    const testSrc = testRef ? await ctx.source('eval') : undefined;
    const r = await runStage(
      trainStage({
        epochs: o.epochs,
        ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
        optimizer,
        schedule,
        ...(o.keepBest !== undefined ? { keepBest: o.keepBest } : {}),
        ...(o.patience !== undefined ? { patience: o.patience } : {}),
        ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}),
        ...(o.resume ? { resume: o.resume } : {}),
        label: typeof model === 'string' && isModelName(model) ? model : 'train',
        meta: {
          model: typeof model === 'string' ? model : name,
          data: typeof o.data === 'string' ? o.data : o.data.name,
          limit: o.limit ?? null,
        },
      }),
      m,
      ctx,
    );
    const test = testSrc ? await ctx.evaluate(r.model) : undefined;
    const saved = o.out !== undefined ? writeOutput(r.model, o.out) : undefined;
    return {
      model: r.model,
      report: r.report,
      testRows: test?.n ?? 0,
      testAccuracy: test?.accuracy ?? null,
      ...(test ? { test } : {}),
      ...(saved ? { saved } : {}),
      ...(prepared
        ? { prepared: { opsetUpgrade: prepared.opsetUpgrade ?? null, unshared: prepared.unshared } }
        : {}),
    };
  } finally {
    await ctx.close();
  }
}
