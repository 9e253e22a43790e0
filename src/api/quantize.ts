// quantize(): a model in, a quantized model and its report out — every mode (dynamic, static, int4, fp16, qat) and
// --auto, with the data the run needs opened from specs (or given as sources), the accuracy before/after on
// labelled data, and the result written atomically when `out` is given. `edgefit quantize` is flag parsing, this
// call and printing.
import { InputError } from '../errors.js';
import { encodeModel } from '../onnx/index.js';
import { calibrationWarnings, QUANT_MODES, type QuantMode } from '../passes/quantize/index.js';
import { createContext, runStage } from '../stage/context.js';
import {
  autoStage,
  qatStage,
  quantizeStage,
  type QatStageOptions,
  type QuantizeReport,
  type QuantizeStageOptions,
} from '../stage/quantize.js';
import type { Model } from '../ir/index.js';
import {
  dataRef,
  isBuiltin,
  resolveRunnableModel,
  writeOutput,
  type DataArg,
  type DataReadOptions,
  type ModelArg,
  type OutputOptions,
  type SavedModel,
} from './common.js';

export interface QuantizeOptions extends Omit<QuantizeStageOptions, 'mode'> {
  /** dynamic | static | int4 | fp16 | qat; with `auto`, leave it out. */
  mode?: QuantMode;
  /** Static INT8, then mixed precision, then QAT: the first that holds `maxDrop` on `data`. */
  auto?: boolean;
  /** Labelled data for accuracy before/after and the --auto gate (built-in datasets: test split), and the
   * calibration data when `calibData` is not given (built-in datasets: train split). */
  data?: DataArg;
  /** Items of `data` evaluated (a seeded random choice, default all). */
  evalSamples?: number;
  /** Calibration data (built-in datasets: train split). */
  calibData?: DataArg;
  /** Calibration items (a seeded random choice, default 512). */
  calibSamples?: number;
  /** QAT: labelled rows to fine-tune on (default: the train split of a built-in `data` / `calibData`). */
  trainData?: DataArg;
  /** QAT: a seeded subset of the training rows (class-balanced for a built-in split). */
  trainLimit?: number;
  /** QAT: training rows held out to pick the best epoch (default 5,000, or 10 % below 50,000). */
  valRows?: number;
  qat?: Omit<QatStageOptions, keyof Omit<QuantizeStageOptions, 'mode'>>;
  /** --auto: largest allowed accuracy drop in points (default 1). */
  maxDrop?: number;
  /** Seed of the calibration sample and of QAT (subset, validation split, shuffling). Default 0. */
  seed?: number;
  threads?: number;
  /** How data specs are read. */
  read?: DataReadOptions;
  /** Write the result here (atomically). */
  out?: string | OutputOptions;
  log?: (line: string) => void;
  quiet?: boolean;
}

export interface QuantizeOutcome {
  model: Model;
  report: QuantizeReport;
  /** Encoded size of the input model. */
  bytesBefore: number;
  /** Size written (model + external data), when `out` was given; else the encoded size. */
  bytesAfter: number;
  saved?: SavedModel;
  /** On `data`: accuracy of the input and of the result, and the drop in points. */
  accuracy?: { before: number; after: number; drop: number; data: string; n: number };
  /** Calibration that cannot give useful ranges (a constant calibration input), with the drop when measured. */
  warnings: string[];
}

/** Quantize a model (see QuantizeOptions). The input is left as it was. */
export async function quantize(input: ModelArg, o: QuantizeOptions): Promise<QuantizeOutcome> {
  const auto = !!o.auto;
  const mode = o.mode;
  if (auto && mode !== undefined && mode !== 'static')
    throw new InputError(
      'usage',
      '--auto chooses between static INT8, mixed precision and QAT: do not combine it with --mode',
      { value: 'mode' },
    );
  if (!auto && !mode)
    throw new InputError('usage', `edgefit quantize needs --mode (${QUANT_MODES.join(', ')}) or --auto`, {
      value: 'mode',
    });
  if (auto && o.data === undefined)
    throw new InputError('usage', '--auto needs --data (labelled data for the accuracy gate)', {
      value: 'data',
    });
  const { model: original, name } = await resolveRunnableModel(input);
  const bytesBefore = encodeModel(original).byteLength;
  const seed = o.seed ?? 0;
  const m = auto ? 'static' : mode!;

  // training rows (QAT): --train-data, else the train split of a built-in --data / --calib-data
  const trainSpec = o.trainData ?? [o.data, o.calibData].find(isBuiltin);
  if (m === 'qat' && !auto && trainSpec === undefined)
    throw new InputError(
      'qat-data',
      'QAT fine-tunes on labelled training data: give --train-data <data>, or a built-in dataset as --data (its train split is used)',
      { value: 'train-data' },
    );
  const needsCalib = auto || m === 'static' || (m === 'int4' && o.method === 'gptq');
  const calibSpec = o.calibData ?? o.data;
  if (needsCalib && calibSpec === undefined)
    throw new InputError(
      'calib-missing',
      `--mode ${m}${m === 'int4' ? ' --int4-method gptq' : ''}${auto ? ' (--auto)' : ''} needs calibration data: --calib-data <data> (or --data)`,
      { value: 'calib-data' },
    );
  const trainIsBuiltin = isBuiltin(trainSpec);
  const ctx = createContext({
    data: {
      ...(calibSpec !== undefined
        ? { calibration: dataRef(calibSpec, original, o.read, { split: 'train' }) }
        : {}),
      ...(trainSpec !== undefined
        ? {
            train: dataRef(trainSpec, original, o.read, {
              split: 'train',
              needLabels: 'edgefit quantize --mode qat',
              // a path is sampled before it is read; a built-in split gets a class-balanced subset
              ...(o.trainLimit !== undefined && !trainIsBuiltin
                ? { limit: o.trainLimit, limitSeed: seed }
                : {}),
            }),
          }
        : {}),
      ...(o.data !== undefined
        ? {
            eval: dataRef(o.data, original, o.read, {
              split: 'test',
              needLabels: 'edgefit quantize --data',
              ...(o.evalSamples !== undefined ? { limit: o.evalSamples } : {}),
            }),
          }
        : {}),
    },
    seed,
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    gates: { maxDrop: o.maxDrop ?? 1 },
    calibrationSamples: o.calibSamples ?? 512,
    ...(o.trainLimit !== undefined ? { trainLimit: o.trainLimit } : {}),
    ...(o.valRows !== undefined ? { valRows: o.valRows } : {}),
    modelName: name,
    ...(o.log ? { log: o.log } : {}),
    quiet: o.quiet ?? true,
  });
  try {
    // open the evaluation data first: its errors come before anything slow
    const evalSrc = o.data !== undefined ? await ctx.source('eval') : undefined;
    if (m === 'qat' && !auto) await ctx.trainingRows();
    if (needsCalib || (m === 'qat' && ctx.hasData('calibration'))) await ctx.calibration();
    const accuracyBefore = evalSrc ? await ctx.score(original) : undefined;
    if (accuracyBefore !== undefined)
      ctx.log(
        `float model accuracy ${(accuracyBefore * 100).toFixed(2)} % on ${evalSrc!.name} (${evalSrc!.n} items)`,
      );
    // the stage options: placement and per-mode options (data, samples, seed, output and logging stay here)
    const {
      mode: _m,
      auto: _a,
      qat,
      data: _d,
      evalSamples: _e,
      calibData: _c,
      calibSamples: _cs,
      trainData: _t,
      trainLimit: _tl,
      valRows: _v,
      maxDrop: _md,
      seed: _s,
      threads: _th,
      read: _r,
      out: _o,
      log: _l,
      quiet: _q,
      ...placement
    } = o;
    const stage = auto
      ? autoStage({ ...placement, ...(qat ? { qat } : {}) })
      : m === 'qat'
        ? qatStage({ ...placement, ...(qat ?? {}) })
        : quantizeStage({ ...placement, mode: m });
    const r = await runStage(stage, original, ctx);
    const accuracyAfter = evalSrc ? await ctx.score(r.model) : undefined;
    const saved = o.out !== undefined ? writeOutput(r.model, o.out) : undefined;
    const warnings =
      ctx.hasData('calibration') && needsCalib ? calibrationWarnings(await ctx.calibration()) : [];
    if (warnings.length && accuracyBefore !== undefined && accuracyAfter !== undefined) {
      const drop = (accuracyBefore - accuracyAfter) * 100;
      warnings.push(
        `accuracy ${drop >= 0 ? 'dropped' : 'rose'} by ${Math.abs(drop).toFixed(2)} points on ${evalSrc!.name}`,
      );
    }
    for (const w of warnings) ctx.log(`warning: ${w}`);
    const out: QuantizeOutcome = {
      model: r.model,
      report: r.report,
      warnings,
      bytesBefore,
      bytesAfter: saved ? saved.modelBytes + saved.dataBytes : encodeModel(r.model).byteLength,
    };
    if (saved) out.saved = saved;
    if (accuracyBefore !== undefined && accuracyAfter !== undefined)
      out.accuracy = {
        before: accuracyBefore,
        after: accuracyAfter,
        drop: (accuracyBefore - accuracyAfter) * 100,
        data: evalSrc!.name,
        n: evalSrc!.n,
      };
    return out;
  } finally {
    await ctx.close();
  }
}
