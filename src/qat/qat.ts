// Quantization-aware training: static INT8 placement (the PTQ planner's), calibrated starting ranges (the PTQ
// calibrator's), fake quantization in float ops (fakequant.ts), fine-tuning with the ordinary trainer, and export
// through the PTQ writer (export.ts). So QAT starts from exactly the static PTQ model (same plan, ranges, weights
// → the same outputs), trains the weights and the activation scales against the quantization error, and ends in
// the same QDQ layout that ORT fuses into integer kernels.
//
// Design choices:
//   - BatchNormalization is folded into the Conv/Gemm before anything else (the standard clean-up pipeline), so
//     training sees the folded weights that get quantized; a BN that cannot be folded is trained as usual.
//   - Activation ranges: calibrated (min/max by default, any PTQ calibrator), then LEARNED (LSQ) rather than
//     EMA-updated. The train step is one ONNX graph whose only state is parameters, BN statistics and optimizer
//     slots; a learned scale is just one more parameter (checkpointed, resumed, exported like any weight), while an
//     EMA observer would need per-step extra outputs and inputs the step does not have. LSQ also optimises the
//     range for the loss instead of tracking extremes. Zero points stay at their calibrated integers.
//   - Weight scales follow the weights (max|w| per output channel / 127, no gradient): exactly what the exporter
//     computes from the trained weights.
//   - Fake quantization is float ops with a stop-gradient straight-through estimator (fakequant.ts), not
//     QuantizeLinear/DequantizeLinear with gradient rules: the existing rules differentiate it, and its forward
//     values are the exported Q/DQ values exactly (tested bit for bit).
//   - With validation data the start (= the static PTQ model) competes with the trained epochs: QAT never exports
//     a model that validates worse than PTQ (`keepStart`).
import { InputError } from '../errors.js';
import type { Model } from '../ir/index.js';
import { evaluate } from '../eval/evaluate.js';
import { permutation } from '../data/batch.js';
import { foldBatchNorm } from '../passes/fusion/batchnorm.js';
import { prepareForQuantization } from '../passes/quantize/index.js';
import {
  calibrate,
  type CalibrationOptions,
  type Feeds,
  type TensorStats,
} from '../passes/quantize/calibrate.js';
import { ortKernels, type KernelReport } from '../passes/quantize/kernels.js';
import {
  prepareStatic,
  planStatic,
  type QuantPlan,
  type StaticPlacementOptions,
} from '../passes/quantize/static.js';
import { constTensor, f64, tryInferShapes } from '../passes/util.js';
import { isOnnxDomain, Tensor } from '../ir/index.js';
import type { LrSchedule } from '../train/schedule.js';
import {
  type EpochInfo,
  type EpochVerdict,
  type TrainData,
  type TrainOptions,
  train,
  validate,
} from '../train/trainer.js';
import type { EpochRecord } from '../train/checkpoint.js';
import type { LossSpec, OptimizerSpec } from '../train/types.js';
import type { ProgressOptions } from '../util/progress.js';
import { exportQdq, groupScales } from './export.js';
import { type FakeQuantInfo, insertFakeQuant } from './fakequant.js';

export interface QatOptions extends StaticPlacementOptions, CalibrationOptions {
  /** Training rows. */
  data: TrainData;
  /** Validation rows: the trainer keeps the best epoch by validation accuracy, and the start competes too. */
  val?: TrainData;
  /** Test rows: `accuracy` of the exported QDQ model (ORT, integer kernels). */
  test?: TrainData;
  /** Default 1. */
  epochs?: number;
  /** Default: cosine from 0.005 to 0 over the run. */
  lr?: LrSchedule;
  /** Default SGD, momentum 0.9 (no weight decay: it would also shrink the learned scales). */
  optimizer?: OptimizerSpec;
  /** Default 64. */
  batchSize?: number;
  /** Learn the activation scales (LSQ, default true); false keeps the calibrated ones. */
  learnScales?: boolean;
  /** Calibration batches (feeds of the model input); default `calibrationRows` rows of `data`. */
  calibration?: readonly Feeds[];
  /** Default 512. */
  calibrationRows?: number;
  /** Ranges calibrated before (e.g. by the static PTQ run): reused, nothing is calibrated again. */
  ranges?: Map<string, TensorStats>;
  /**
   * With `val`: when no trained epoch beats the start (the PTQ-equivalent model) on validation accuracy, export the
   * start. Default true.
   */
  keepStart?: boolean;
  /** The model is already in QAT form (clean-up and BN folding done by prepareForQat): skip that step. */
  prepared?: boolean;
  seed?: number;
  threads?: number;
  log?: (line: string) => void;
  progress?: ProgressOptions & { label?: string };
  onEpochEnd?: (info: EpochInfo) => EpochVerdict | Promise<EpochVerdict>;
  /** Training loss (default cross-entropy); e.g. distillation (QAT + KD) with `extraInputs` feeding teacher logits. */
  loss?: LossSpec;
  extraInputs?: NonNullable<TrainOptions['hooks']>['extraInputs'];
  /** Batch transform (augmentation), before `extraInputs`: the trainer's hook. */
  transformBatch?: NonNullable<TrainOptions['hooks']>['transformBatch'];
}

export interface QatResult {
  /** The clean QDQ model (same placement as static PTQ). */
  model: Model;
  /** The trained fake-quant graph (float ops): what training optimised; its outputs equal the QDQ model's. */
  fakeQuant: Model;
  /** The float model the QDQ model quantizes (trained weights, BN folded, PTQ's pre-quantization rewrites, no Q/DQ). */
  float: Model;
  plan: QuantPlan;
  info: FakeQuantInfo;
  /** One record per trained epoch (the trainer's). */
  history: EpochRecord[];
  /** Epoch whose weights were exported; 0 = the start (the static PTQ model). */
  epoch: number;
  /** Validation figures of the start (the static PTQ model), when `val` was given. */
  start?: { valAccuracy: number; valLoss: number };
  /** Test accuracy of the exported QDQ model in ORT (all optimisations: integer kernels), when `test` was given. */
  accuracy?: number;
  /** Test accuracy of the fake-quant graph, when `test` was given. */
  fakeQuantAccuracy?: number;
  /** Kernels ORT runs for the exported model. */
  kernels: KernelReport;
  /** Calibrated ranges (start) and the ranges the learned scales stand for (end), by group root. */
  ranges: { initial: Map<string, TensorStats>; final: Map<string, TensorStats> };
  /** Group root → [initial scale, final scale]. */
  scales: Record<string, [number, number]>;
  notes: string[];
  seconds: number;
}

/**
 * The float model QAT trains and quantizes: the standard clean-up pipeline (Dropout/Identity removed, constants
 * folded, BatchNormalization folded into Conv/Gemm, MatMul+Add → Gemm), then Gemm alpha/beta folded into constant
 * weights and biases (the quantizer does the same when it writes the model).
 */
export async function prepareForQat(model: Model): Promise<{ model: Model; notes: string[] }> {
  // the clean-up and fusion pipeline static quantization runs first (BN folding among them)
  const r = await prepareForQuantization(model);
  const notes = [...r.notes];
  const m = r.model === model ? model.clone() : r.model;
  const g = m.graph;
  for (const n of g.nodes) {
    if (n.opType !== 'Gemm' || !isOnnxDomain(n)) continue;
    const alpha = n.attrFloat('alpha', 1);
    const beta = n.attrFloat('beta', 1);
    const w = constTensor(n.inputs[1]);
    if (alpha !== 1 && w && w.dtype === 'float32' && n.inputs[1]!.uses.length === 1) {
      g.setInitializer(
        n.inputs[1]!,
        Tensor.from(
          'float32',
          w.dims,
          Float32Array.from(f64(w), (x) => x * alpha),
          n.inputs[1]!.name,
        ),
      );
      n.setAttr('alpha', undefined);
    }
    const c = constTensor(n.inputs[2]);
    if (beta !== 1 && c && c.dtype === 'float32' && n.inputs[2]!.uses.length === 1 && n.inputs[2]!.const) {
      g.setInitializer(
        n.inputs[2]!,
        Tensor.from(
          'float32',
          c.dims,
          Float32Array.from(f64(c), (x) => x * beta),
          n.inputs[2]!.name,
        ),
      );
      n.setAttr('beta', undefined);
    }
  }
  const bns = g.nodes.filter((n) => n.opType === 'BatchNormalization');
  if (bns.length) {
    const why = await foldBatchNorm.run(m);
    notes.push(
      `${bns.length} BatchNormalization node(s) could not be folded and are trained with batch statistics: ${why.notes.join('; ') || bns.map((n) => n.label).join(', ')}`,
    );
  }
  tryInferShapes(m);
  return { model: m, notes };
}

function inputNameOf(model: Model): string {
  const v = model.graph.inputs.find((i) => !i.const && !model.graph.initializers.has(i.name));
  if (!v)
    throw new InputError('model-input', 'The model has no graph input to feed the data to', {
      value: 'input',
    });
  return v.name;
}

/** `rows` rows of `data` (a seeded choice) as feeds of `inputName`, in batches of `batch`. */
export function calibrationFeeds(
  data: TrainData,
  inputName: string,
  rows: number,
  seed = 0,
  batch = 64,
): Feeds[] {
  const n = Math.min(rows, data.n);
  if (n < 1) throw new InputError('calib-empty', 'The calibration set is empty', { value: 'data' });
  const px = data.inputShape.reduce((a, b) => a * b, 1);
  const order = permutation(data.n, seed);
  const out: Feeds[] = [];
  for (let s = 0; s < n; s += batch) {
    const k = Math.min(batch, n - s);
    const x = new Float32Array(k * px);
    for (let i = 0; i < k; i++) {
      const r = order[s + i]!;
      x.set(data.x.subarray(r * px, (r + 1) * px), i * px);
    }
    out.push({ [inputName]: { dtype: 'float32', dims: [k, ...data.inputShape], data: x } });
  }
  return out;
}

/**
 * Quantization-aware training of `model` (float, not modified): static placement and calibration as PTQ, fake
 * quantization, `epochs` of fine-tuning with the trainer, export to a clean QDQ model.
 */
export async function quantizeAwareTrain(model: Model, opts: QatOptions): Promise<QatResult> {
  const t0 = performance.now();
  const notes: string[] = [];
  const prep = opts.prepared ? { model: model.clone(), notes: [] } : await prepareForQat(model);
  notes.push(...prep.notes);
  // the same rewrites and placement as static PTQ (node names, float stem, padded input channels)
  const ps = prepareStatic(prep.model, opts);
  notes.push(...ps.notes);
  const base = ps.model;
  tryInferShapes(base);
  const plan = planStatic(base, ps.options);
  if (!plan.nodes.length)
    throw new InputError(
      'qat-nothing',
      'No node of the model can be quantized (Conv, Gemm or MatMul with a constant weight)',
      {},
    );
  const inputName = inputNameOf(base);

  // starting ranges: given, or calibrated exactly as static PTQ calibrates them
  const initial = new Map(opts.ranges ?? []);
  const missing = plan.roots.filter((r) => !initial.has(r));
  if (missing.length) {
    const batches =
      opts.calibration ?? calibrationFeeds(opts.data, inputName, opts.calibrationRows ?? 512, opts.seed ?? 0);
    const cal = await calibrate(base, missing, batches, {
      calibrator: opts.calibrator,
      percentile: opts.percentile,
      bins: opts.bins,
      threads: opts.threads,
    });
    for (const [k, v] of cal.stats) initial.set(k, v);
    notes.push(`Calibrated ${missing.length} range group(s) on ${cal.samples} rows (${cal.calibrator})`);
  }

  const { model: fq, info } = insertFakeQuant(base, plan, initial, { learnScales: opts.learnScales ?? true });
  const trainable = new Set(info.trainable);

  let start: QatResult['start'];
  if (opts.val) {
    const v = await validate(fq, opts.val, { threads: opts.threads, inputName });
    start = { valAccuracy: v.accuracy, valLoss: v.loss };
    opts.log?.(`start (static PTQ): val loss ${v.loss.toFixed(4)} acc ${(100 * v.accuracy).toFixed(2)}%`);
  }

  const epochs = opts.epochs ?? 1;
  const tr = await train(fq, {
    data: opts.data,
    ...(opts.val ? { val: opts.val, selection: { keepBest: true } } : {}),
    epochs,
    batchSize: opts.batchSize ?? 64,
    optimizer: opts.optimizer ?? { kind: 'sgd', momentum: 0.9 },
    lr: opts.lr ?? { kind: 'cosine', lr: 0.005 },
    seed: opts.seed ?? 0,
    step: { trainable: (name) => trainable.has(name), inputName },
    run: {
      threads: opts.threads,
      ...(opts.log ? { log: opts.log } : {}),
      ...(opts.progress ? { progress: { label: 'qat', ...opts.progress } } : {}),
    },
    hooks: {
      ...(opts.onEpochEnd ? { onEpochEnd: opts.onEpochEnd } : {}),
      ...(opts.extraInputs ? { extraInputs: opts.extraInputs } : {}),
      ...(opts.transformBatch ? { transformBatch: opts.transformBatch } : {}),
    },
    ...(opts.loss ? { loss: opts.loss } : {}),
  });
  let trained = tr.model;
  let epoch = tr.epoch;
  if (start && (opts.keepStart ?? true) && tr.history.length) {
    const best = Math.max(...tr.history.map((h) => h.valAccuracy ?? -Infinity));
    if (!(best > start.valAccuracy)) {
      trained = fq;
      epoch = 0;
      notes.push(
        `No QAT epoch beat the start on validation (${(100 * best).toFixed(2)}% vs ${(100 * start.valAccuracy).toFixed(2)}%): exported the start (the static PTQ model)`,
      );
    }
  }

  const exp = exportQdq(base, trained, info);
  notes.push(...exp.notes);
  const scales: Record<string, [number, number]> = {};
  const learned = groupScales(trained, info);
  for (const grp of info.groups) scales[grp.root] = [grp.initialScale, learned.get(grp.root)!];
  const kernels = await ortKernels(exp.model, { threads: opts.threads });
  const res: QatResult = {
    model: exp.model,
    fakeQuant: trained,
    float: exp.float,
    plan,
    info,
    history: tr.history,
    epoch,
    kernels,
    ranges: { initial, final: exp.ranges },
    scales,
    notes,
    seconds: 0,
  };
  if (start) res.start = start;
  if (opts.test) {
    res.accuracy = (
      await evaluate(exp.model, opts.test, { threads: opts.threads, inputName, label: 'QAT model' })
    ).accuracy;
    res.fakeQuantAccuracy = (
      await evaluate(trained, opts.test, { threads: opts.threads, inputName, label: 'QAT fake-quant model' })
    ).accuracy;
  }
  res.seconds = (performance.now() - t0) / 1000;
  return res;
}
