// The training loop around one train-step graph (src/train/step.ts: forward + loss + backward + update, run by
// ORT): seeded shuffling per epoch, the learning-rate schedule (computed here, fed to the graph), validation of the
// exported inference model through ORT each epoch, best-by-validation weights, early stopping, atomic checkpoints
// that resume bit for bit, progress, and the hooks pruning / QAT / distillation plug into (step and epoch
// callbacks, a custom loss, extra per-batch inputs such as teacher logits).
//
// Determinism: the rows of epoch e are epochOrder(rows, seed, e); the lr of step s is schedule(s); everything else
// lives in the step's TrainState. A checkpoint stores that state plus (epoch, batch, step) and the epoch's partial
// sums, so resuming gives the same weights, bit for bit, as a run that was never interrupted (same seed, data,
// options and ORT thread count).
import { type BatchSource, epochOrder, numBatches, batches } from '../data/batch.js';
import { materialize } from '../data/materialize.js';
import { isDataSource, type DataSource } from '../data/source.js';
import type { Split } from '../data/types.js';
import { checkFinite } from '../data/finite.js';
import { DataError, InputError } from '../errors.js';
import { type EvalResult, evaluate } from '../eval/evaluate.js';
import type { Model } from '../ir/graph.js';
import { type HostTensor, Session } from '../runtime/index.js';
import { checkWritable } from '../util/fs.js';
import { type ProgressOptions, progress } from '../util/progress.js';
import {
  type Checkpoint,
  type EpochRecord,
  type TrainerPosition,
  loadCheckpoint,
  saveCheckpoint,
} from './checkpoint.js';
import { type LrSchedule, scheduleFn } from './schedule.js';
import { createTrainStep } from './step.js';
import type {
  LossSpec,
  OptimizerSpec,
  StepResult,
  TrainState,
  TrainStepOptions,
  TrainStepRunner,
} from './types.js';

export type { EpochRecord, TrainerPosition, Checkpoint } from './checkpoint.js';

/** Labelled data the trainer reads (a Dataset from src/data fits). */
export interface TrainData extends BatchSource {
  numClasses: number;
  name?: string;
  classNames?: readonly string[];
}

/** Metrics for early stopping and keepBest: val_accuracy is maximised, the losses minimised. */
export type Metric = 'val_accuracy' | 'val_loss' | 'train_loss';
export const METRICS: readonly Metric[] = ['val_accuracy', 'val_loss', 'train_loss'];

export interface StepInfo {
  /** 0-based epoch and batch within it; `step` is the global step just done (1-based count). */
  epoch: number;
  batch: number;
  step: number;
  lr: number;
  rows: number;
  /** Dataset row indices of the batch (into `data`). */
  indices: Uint32Array;
  result: StepResult;
  runner: TrainStepRunner;
}

export interface EpochInfo {
  /** The record just added to `history` (epoch is 1-based). */
  record: EpochRecord;
  history: readonly EpochRecord[];
  /** The exported inference model after this epoch (the one validation ran). */
  model: Model;
  runner: TrainStepRunner;
}

/** Return `{ stop: true }` (or `true`) from onEpochEnd to end training after this epoch. */
export type EpochVerdict = void | boolean | { stop?: boolean };

/** Labelled rows the trainer takes: in memory, or a DataSource (read into memory: shuffled epochs need random access). */
export type TrainInput = TrainData | DataSource;

export interface TrainOptions {
  /**
   * Training rows: in memory (a Dataset) or any labelled DataSource with one float32 input, read into memory once
   * (at most MAX_IN_MEMORY_BYTES, 4 GiB: every epoch shuffles the rows by random access).
   */
  data: TrainInput;
  /** Validated after every epoch through ORT on the exported model (a DataSource is read into memory too). */
  val?: TrainInput;
  /** Evaluated once at the end (evaluate(), which reads a DataSource lazily): testAccuracy and the full EvalResult. */
  test?: TrainInput;
  /** Total epochs of the run (a resumed run continues up to this number). */
  epochs: number;
  /** Default 64. */
  batchSize?: number;
  /** Drop a last partial batch (default true, like the PyTorch reference; ignored when data has < batchSize rows). */
  dropLast?: boolean;
  /** Shuffling seed (epoch e uses epochOrder(n, seed, e)) and Dropout seed of the step graph. Default 0. */
  seed?: number;
  optimizer: OptimizerSpec;
  /** A number (constant), a schedule spec, or a function of the global step. */
  lr: LrSchedule;
  /** Default { kind: 'cross-entropy' }. */
  loss?: LossSpec;
  /** Which epoch's weights come back, and when to stop early. */
  selection?: {
    /** Keep the weights of the best epoch (by `metric`: default val_accuracy, or train_loss without `val`). */
    keepBest?: boolean | { metric?: Metric };
    /** Stop after `patience` epochs in a row that do not improve `metric` by more than `minDelta` (default 0). */
    earlyStopping?: { patience: number; minDelta?: number; metric?: Metric };
  };
  /** Checkpoints: saved to `path` every `everyEpochs` epochs (default 1) and/or `everySteps` steps, and at the end. */
  checkpoint?: {
    path?: string;
    everyEpochs?: number;
    everySteps?: number;
    /** Continue from a checkpoint (a path, or a decoded one). */
    resume?: string | Checkpoint;
    /** Recorded in checkpoints (model name, command line, …). */
    meta?: Record<string, unknown>;
  };
  /** What pruning / QAT / distillation plug in: step and epoch callbacks, extra per-batch inputs. */
  hooks?: {
    onStepEnd?: (info: StepInfo) => void | Promise<void>;
    onEpochEnd?: (info: EpochInfo) => EpochVerdict | Promise<EpochVerdict>;
    /**
     * Transform a batch in place before it is fed (e.g. augmentation): `batch.x` and `batch.y` may be rewritten;
     * `step` is the global step (seeding per-step randomness, also after a resume). Runs before `extraInputs`, which
     * then sees the transformed batch.
     */
    transformBatch?: (
      batch: { x: Float32Array; y: BigInt64Array; n: number },
      at: { step: number; epoch: number; indices: Uint32Array },
    ) => void | Promise<void>;
    /**
     * Extra graph inputs for a batch, by dataset row indices (e.g. { teacher_logits } for distillation, { target }
     * for mse). `batch` arrays are reused by the next step: copy what you keep.
     */
    extraInputs?: (
      indices: Uint32Array,
      batch: { x: Float32Array; y: BigInt64Array; n: number },
    ) => Record<string, HostTensor> | Promise<Record<string, HostTensor>>;
  };
  /** The train-step graph (createTrainStep's options), or a ready runner for `model` (then neither created nor released). */
  step?: {
    trainable?: TrainStepOptions['trainable'];
    gradClipNorm?: number;
    inputName?: string;
    outputName?: string;
    runner?: TrainStepRunner;
  };
  /** ORT threads, a progress bar on stderr (default none), one log line per epoch. */
  run?: {
    threads?: number;
    progress?: ProgressOptions & { label?: string };
    log?: (line: string) => void;
  };
}

/** Rows in memory: a DataSource is read whole (capped at MAX_IN_MEMORY_BYTES). */
async function inMemory(d: TrainInput, split: Split): Promise<TrainData> {
  return isDataSource(d) ? materialize(d, split) : d;
}

/** TrainOptions as the loop reads them. */
async function resolveOptions(o: TrainOptions): Promise<FlatOptions> {
  const { selection, checkpoint, hooks, step, run, data, val, test, ...rest } = o;
  const { resume, meta, ...ck } = checkpoint ?? {};
  return {
    ...rest,
    data: await inMemory(data, 'train'),
    ...(val ? { val: await inMemory(val, 'train') } : {}),
    ...(test ? { test } : {}),
    ...(selection ?? {}),
    ...(ck.path !== undefined ? { checkpoint: { ...ck, path: ck.path } } : {}),
    ...(resume !== undefined ? { resume } : {}),
    ...(meta !== undefined ? { meta } : {}),
    ...(hooks ?? {}),
    ...(step ?? {}),
    ...(run ?? {}),
  };
}

/** The options as the loop reads them: TrainOptions with its groups flattened and the training rows in memory. */
type FlatOptions = Omit<
  TrainOptions,
  'data' | 'val' | 'test' | 'selection' | 'checkpoint' | 'hooks' | 'step' | 'run'
> &
  NonNullable<TrainOptions['selection']> &
  NonNullable<TrainOptions['hooks']> &
  NonNullable<TrainOptions['step']> &
  NonNullable<TrainOptions['run']> & {
    data: TrainData;
    val?: TrainData;
    test?: TrainInput;
    checkpoint?: { path: string; everyEpochs?: number; everySteps?: number };
    resume?: string | Checkpoint;
    meta?: Record<string, unknown>;
  };

export interface TrainResult {
  /** Clean inference graph: the best epoch's weights with keepBest (when validation ran), else the last. */
  model: Model;
  history: EpochRecord[];
  /** 1-based epoch whose weights `model` holds. */
  epoch: number;
  bestEpoch?: number;
  stopped?: 'early-stopping' | 'callback';
  testAccuracy?: number;
  test?: EvalResult;
  /** Wall time of this call (a resumed run counts only what it did). */
  seconds: number;
  /** Global optimiser steps done, in total. */
  steps: number;
}

const lowerIsBetter = (m: Metric) => m !== 'val_accuracy';

function metricOf(r: EpochRecord, m: Metric): number | undefined {
  return m === 'val_accuracy' ? r.valAccuracy : m === 'val_loss' ? r.valLoss : r.trainLoss;
}

function checkInt(v: number, what: string, min: number): void {
  if (!Number.isSafeInteger(v) || v < min)
    throw new InputError('bad-argument', `${what} must be an integer ≥ ${min}: current value is ${v}`, {
      value: what,
    });
}

/** The first graph input that is not an initializer, or the named one. */
function modelInput(model: Model, name?: string) {
  const v = name ? model.graph.inputs.find((i) => i.name === name) : model.graph.inputs.find((i) => !i.const);
  if (!v)
    throw new InputError(
      'model-input',
      name ? `The model has no input "${name}"` : 'The model has no graph input to feed the data to',
      {
        value: name ?? 'input',
      },
    );
  return v;
}

/** Row shape to feed (the model's declared per-row dims when they are static and hold a data row) and a fixed batch. */
export function feedLayout(
  model: Model,
  inputName: string | undefined,
  data: BatchSource,
): { name: string; rowShape: number[]; fixedBatch?: number } {
  const v = modelInput(model, inputName);
  const rowSize = data.inputShape.reduce((a, b) => a * b, 1);
  let rowShape = [...data.inputShape];
  let fixedBatch: number | undefined;
  const shape = v.shape;
  if (shape && shape.length >= 1) {
    if (typeof shape[0] === 'number') fixedBatch = shape[0];
    const rest = shape.slice(1);
    if (rest.every((d): d is number => typeof d === 'number')) {
      const size = rest.reduce((a, b) => a * b, 1);
      if (size !== rowSize)
        throw new InputError(
          'model-input-shape',
          `Model input "${v.name}" has shape [${shape.map((d) => d ?? '?')}], which does not fit data rows of shape [${data.inputShape}]`,
          { value: v.name },
        );
      rowShape = rest;
    }
  }
  return fixedBatch === undefined ? { name: v.name, rowShape } : { name: v.name, rowShape, fixedBatch };
}

/** Mean cross-entropy and accuracy of a classifier on labelled data, through ORT (argmax ties: first wins, as evaluate()). */
export async function validate(
  model: Model | Session,
  data: TrainData,
  opts: {
    threads?: number;
    inputName?: string;
    outputName?: string;
    batchSize?: number;
    layoutModel?: Model;
  } = {},
): Promise<{ loss: number; accuracy: number; n: number; seconds: number }> {
  const t0 = performance.now();
  const own = !(model instanceof Session);
  const session =
    model instanceof Session
      ? model
      : await Session.create(model, { threads: opts.threads, label: 'validation model' });
  try {
    const ir = model instanceof Session ? opts.layoutModel : model;
    const layout = ir
      ? feedLayout(ir, opts.inputName, data)
      : { name: opts.inputName ?? session.inputNames[0]!, rowShape: [...data.inputShape] };
    const out = opts.outputName ?? session.outputNames[0]!;
    const rowSize = data.inputShape.reduce((a, b) => a * b, 1);
    const bs = layout.fixedBatch ?? opts.batchSize ?? 500;
    let lossSum = 0;
    let correct = 0;
    let done = 0;
    for (const b of batches(data, { batchSize: bs })) {
      let x = b.x;
      let k = b.n;
      if (layout.fixedBatch !== undefined && k < layout.fixedBatch) {
        const padded = new Float32Array(layout.fixedBatch * rowSize);
        padded.set(x);
        x = padded;
        k = layout.fixedBatch;
      }
      const r = await session.run(
        { [layout.name]: { dtype: 'float32', dims: [k, ...layout.rowShape], data: x } },
        [out],
      );
      const logits = r[out]!;
      const c = logits.dims[logits.dims.length - 1]!;
      if (logits.dims.length !== 2 || logits.dims[0] !== k || c < data.numClasses)
        throw new DataError(
          'validation-output',
          `The model's output "${out}" has shape [${logits.dims}]: expected [${k}, ${data.numClasses}] class scores`,
          {
            value: out,
          },
        );
      const s = logits.data as Float32Array;
      for (let i = 0; i < b.n; i++) {
        const o = i * c;
        let best = 0;
        let bv = -Infinity;
        for (let j = 0; j < c; j++) {
          const v = s[o + j]!;
          if (v > bv) {
            bv = v;
            best = j;
          }
        }
        let se = 0;
        for (let j = 0; j < c; j++) se += Math.exp(s[o + j]! - bv);
        const truth = Number(b.y[i]!);
        lossSum += bv + Math.log(se) - s[o + truth]!;
        if (best === truth) correct++;
      }
      done += b.n;
    }
    return {
      loss: done ? lossSum / done : NaN,
      accuracy: done ? correct / done : 0,
      n: done,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    if (own) await session.release();
  }
}

function countCorrect(logits: HostTensor | undefined, y: BigInt64Array, k: number): number {
  if (!logits || logits.dims.length !== 2 || logits.dims[0] !== k) return -1;
  const c = logits.dims[1]!;
  const s = logits.data as Float32Array;
  let correct = 0;
  for (let i = 0; i < k; i++) {
    let best = 0;
    let bv = -Infinity;
    for (let j = 0; j < c; j++) {
      const v = s[i * c + j]!;
      if (v > bv) {
        bv = v;
        best = j;
      }
    }
    if (BigInt(best) === y[i]) correct++;
  }
  return correct;
}

function freshPartial(): TrainerPosition['partial'] {
  return { lossSum: 0, lossRows: 0, correct: 0, labelled: 0, seconds: 0, trainSeconds: 0 };
}

function sameShapes(a: Record<string, HostTensor>, b: Record<string, HostTensor>): string | undefined {
  for (const [k, t] of Object.entries(a)) {
    const u = b[k];
    if (!u) return `"${k}" is missing from the checkpoint`;
    if (u.dtype !== t.dtype || u.dims.length !== t.dims.length || u.dims.some((d, i) => d !== t.dims[i]))
      return `"${k}" is ${u.dtype}[${u.dims}] in the checkpoint but ${t.dtype}[${t.dims}] in the model`;
  }
  for (const k of Object.keys(b))
    if (!(k in a)) return `the checkpoint has "${k}", which this model/optimizer does not`;
  return undefined;
}

/** Train `model` (not modified) for `opts.epochs` epochs. */
export async function train(model: Model, options: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const opts = await resolveOptions(options);
  const data = opts.data;
  checkInt(opts.epochs, 'epochs', 0);
  const batchSize = opts.batchSize ?? 64;
  checkInt(batchSize, 'batchSize', 1);
  const seed = opts.seed ?? 0;
  checkInt(seed, 'seed', 0);
  if (data.n < 1)
    throw new InputError('empty-data', 'The training data has no rows', { value: data.name ?? 'data' });
  const rowSize = data.inputShape.reduce((a, b) => a * b, 1);
  if (data.x.length !== data.n * rowSize || data.y.length !== data.n)
    throw new InputError(
      'bad-data',
      `Training data arrays do not match n=${data.n} rows of [${data.inputShape}]`,
      { value: data.name ?? 'data' },
    );
  checkFinite(data.x, rowSize, data, 'training data');
  if (opts.val) checkFinite(opts.val.x, rowSize, opts.val, 'validation data');
  const dropLast = (opts.dropLast ?? true) && data.n >= batchSize;
  const perEpoch = numBatches(data.n, batchSize, dropLast);
  const totalSteps = opts.epochs * perEpoch;
  const lrOf = scheduleFn(opts.lr, Math.max(1, totalSteps));
  const loss: LossSpec = opts.loss ?? { kind: 'cross-entropy' };
  const countAccuracy = loss.kind !== 'mse';

  // metric for keepBest / early stopping
  const keepBest = !!opts.keepBest;
  const kbMetric = typeof opts.keepBest === 'object' ? opts.keepBest.metric : undefined;
  const es = opts.earlyStopping;
  if (es) {
    checkInt(es.patience, 'earlyStopping.patience', 0);
    if (es.minDelta !== undefined && !(es.minDelta >= 0))
      throw new InputError(
        'bad-argument',
        `earlyStopping.minDelta must be ≥ 0: current value is ${es.minDelta}`,
        { value: 'minDelta' },
      );
  }
  if (kbMetric && es?.metric && kbMetric !== es.metric)
    throw new InputError(
      'bad-argument',
      `keepBest and earlyStopping must watch the same metric (${kbMetric} vs ${es.metric})`,
      { value: 'metric' },
    );
  const metric: Metric = kbMetric ?? es?.metric ?? (opts.val ? 'val_accuracy' : 'train_loss');
  if (!METRICS.includes(metric))
    throw new InputError('bad-argument', `unknown metric "${metric}" (known: ${METRICS.join(', ')})`, {
      value: 'metric',
    });
  if ((keepBest || es) && metric !== 'train_loss' && !opts.val)
    throw new InputError(
      'bad-argument',
      `${keepBest ? 'keepBest' : 'early stopping'} on ${metric} needs validation data (val)`,
      { value: 'val' },
    );
  const minDelta = es?.minDelta ?? 0;

  const layout = feedLayout(model, opts.inputName, data);
  if (layout.fixedBatch !== undefined && (layout.fixedBatch !== batchSize || !dropLast))
    throw new InputError(
      'fixed-batch',
      `Model input "${layout.name}" has a fixed batch of ${layout.fixedBatch}: train it with batch size ${layout.fixedBatch} on at least that many rows`,
      { value: layout.name },
    );
  if (opts.checkpoint) {
    if (opts.checkpoint.everyEpochs !== undefined)
      checkInt(opts.checkpoint.everyEpochs, 'checkpoint.everyEpochs', 1);
    if (opts.checkpoint.everySteps !== undefined)
      checkInt(opts.checkpoint.everySteps, 'checkpoint.everySteps', 1);
    checkWritable(opts.checkpoint.path); // before the first step, not after the first epoch
  }

  // resume: read and check before building anything expensive
  const ckpt = typeof opts.resume === 'string' ? loadCheckpoint(opts.resume) : opts.resume;
  const resumeLabel = typeof opts.resume === 'string' ? opts.resume : 'the checkpoint';
  let pos: TrainerPosition = {
    epoch: 0,
    batch: 0,
    step: 0,
    seed,
    batchSize,
    dropLast,
    rows: data.n,
    partial: freshPartial(),
    sinceImproved: 0,
    history: [],
  };
  if (ckpt) {
    const p = ckpt.position;
    const diffs: string[] = [];
    if (p.seed !== seed) diffs.push(`seed ${p.seed} (now ${seed})`);
    if (p.batchSize !== batchSize) diffs.push(`batch size ${p.batchSize} (now ${batchSize})`);
    if (p.rows !== data.n) diffs.push(`${p.rows} training rows (now ${data.n})`);
    if (p.dropLast !== dropLast) diffs.push(`dropLast ${p.dropLast} (now ${dropLast})`);
    if (diffs.length)
      throw new InputError(
        'resume-mismatch',
        `${resumeLabel} was written by a run with ${diffs.join(', ')}: resume with the same settings`,
        {
          file: typeof opts.resume === 'string' ? opts.resume : undefined,
        },
      );
    if (p.batch > perEpoch)
      throw new InputError(
        'resume-mismatch',
        `${resumeLabel} is at batch ${p.batch} of an epoch of ${perEpoch} batches`,
        {},
      );
    pos = structuredClone(p);
    delete pos.stopped;
  }

  const runner =
    opts.runner ??
    (await createTrainStep(model, {
      optimizer: opts.optimizer,
      loss,
      seed,
      ...(opts.trainable ? { trainable: opts.trainable } : {}),
      ...(opts.gradClipNorm !== undefined ? { gradClipNorm: opts.gradClipNorm } : {}),
      ...(opts.inputName !== undefined ? { inputName: opts.inputName } : {}),
      ...(opts.outputName !== undefined ? { outputName: opts.outputName } : {}),
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    }));
  const ownRunner = !opts.runner;
  try {
    let bestState: TrainState | undefined;
    if (ckpt) {
      const now = runner.state();
      const why =
        sameShapes(now.tensors, ckpt.state.tensors) ?? sameShapes(now.optimizer, ckpt.state.optimizer);
      if (why)
        throw new InputError(
          'resume-mismatch',
          `${resumeLabel} does not fit this model and optimizer: ${why}`,
          {},
        );
      runner.load(ckpt.state);
      bestState = ckpt.best;
    }
    const meta = {
      ...(opts.meta ?? {}),
      optimizer: opts.optimizer,
      loss,
      batchSize,
      epochs: opts.epochs,
      trainable: [...runner.trainable],
    };
    const writeCheckpoint = () => {
      if (!opts.checkpoint) return;
      const c: Checkpoint = { state: runner.state(), position: pos, meta };
      if (keepBest && bestState) c.best = bestState;
      saveCheckpoint(opts.checkpoint.path, c);
    };

    const px = rowSize;
    const xbuf = new Float32Array(batchSize * px);
    const ybuf = new BigInt64Array(batchSize);
    let lastExport: Model | undefined;
    let stopped: TrainResult['stopped'];
    const label = opts.progress?.label ?? 'train';

    for (let epoch = pos.epoch; epoch < opts.epochs && !stopped; epoch++) {
      const order = epochOrder(data.n, pos.seed, epoch);
      const part = pos.partial;
      const epochRows = dropLast ? perEpoch * batchSize : data.n;
      const bar = progress(
        `${label} epoch ${epoch + 1}/${opts.epochs}`,
        epochRows,
        opts.progress ?? { quiet: true },
      );
      if (pos.batch > 0) bar.tick(Math.min(epochRows, pos.batch * batchSize));
      let tStart = performance.now();
      let lr = 0;
      for (let b = pos.batch; b < perEpoch; b++) {
        const start = b * batchSize;
        const k = Math.min(batchSize, data.n - start);
        const idx = order.subarray(start, start + k);
        const x = k === batchSize ? xbuf : new Float32Array(k * px);
        const y = k === batchSize ? ybuf : new BigInt64Array(k);
        for (let i = 0; i < k; i++) {
          const r = idx[i]!;
          x.set(data.x.subarray(r * px, (r + 1) * px), i * px);
          y[i] = data.y[r]!;
        }
        if (opts.transformBatch)
          await opts.transformBatch({ x, y, n: k }, { step: pos.step, epoch, indices: idx });
        const extra = opts.extraInputs ? await opts.extraInputs(idx, { x, y, n: k }) : undefined;
        lr = lrOf(pos.step);
        const res = await runner.run(
          {
            x: { dtype: 'float32', dims: [k, ...layout.rowShape], data: x },
            y: { dtype: 'int64', dims: [k], data: y },
            ...(extra ? { extra } : {}),
          },
          lr,
        );
        if (!Number.isFinite(res.loss))
          throw new DataError(
            'diverged',
            `Training diverged: the loss is ${res.loss} at epoch ${epoch + 1}, batch ${b + 1} (step ${pos.step + 1}, lr ${lr}); lower the learning rate`,
            { value: 'loss' },
          );
        part.lossSum += res.loss * k;
        part.lossRows += k;
        if (countAccuracy) {
          const c = countCorrect(res.logits, y, k);
          if (c >= 0) {
            part.correct += c;
            part.labelled += k;
          }
        }
        pos.step++;
        pos.batch = b + 1;
        const acc = part.labelled ? `  acc ${((100 * part.correct) / part.labelled).toFixed(1)}%` : '';
        bar.tick(k, `loss ${(part.lossSum / part.lossRows).toFixed(4)}${acc}  lr ${lr.toPrecision(3)}`);
        if (opts.onStepEnd)
          await opts.onStepEnd({
            epoch,
            batch: b,
            step: pos.step,
            lr,
            rows: k,
            indices: idx,
            result: res,
            runner,
          });
        if (
          opts.checkpoint?.everySteps &&
          pos.step % opts.checkpoint.everySteps === 0 &&
          pos.batch < perEpoch
        ) {
          const now = performance.now();
          part.trainSeconds += (now - tStart) / 1000;
          part.seconds += (now - tStart) / 1000;
          tStart = now;
          writeCheckpoint();
        }
      }
      const tTrain = performance.now();
      part.trainSeconds += (tTrain - tStart) / 1000;
      if (perEpoch > 0 && lr === 0 && pos.step > 0) lr = lrOf(pos.step - 1);

      // end of epoch: export, validate, bookkeeping
      const exported = runner.exportModel();
      lastExport = exported;
      const record: EpochRecord = {
        epoch: epoch + 1,
        trainLoss: part.lossRows ? part.lossSum / part.lossRows : NaN,
        trainAccuracy: part.labelled ? part.correct / part.labelled : 0,
        lr,
        seconds: 0,
        steps: perEpoch,
        rowsPerSecond: part.trainSeconds > 0 ? part.lossRows / part.trainSeconds : 0,
      };
      if (opts.val) {
        const v = await validate(exported, opts.val, {
          threads: opts.threads,
          inputName: layout.name,
          outputName: opts.outputName,
        });
        record.valLoss = v.loss;
        record.valAccuracy = v.accuracy;
      }
      record.seconds = part.seconds + (performance.now() - tStart) / 1000;
      pos.history.push(record);
      pos.epoch = epoch + 1;
      pos.batch = 0;
      pos.partial = freshPartial();

      const value = metricOf(record, metric);
      if (value !== undefined && Number.isFinite(value)) {
        const better = (a: number, b: number, d: number) => (lowerIsBetter(metric) ? a < b - d : a > b + d);
        if (!pos.best || better(value, pos.best.value, 0)) {
          pos.best = { metric, value, epoch: record.epoch };
          if (keepBest) bestState = runner.state();
        }
        const ref = pos.improvedRef;
        if (ref === undefined || better(value, ref, minDelta)) {
          pos.improvedRef = value;
          pos.sinceImproved = 0;
        } else {
          pos.sinceImproved++;
          if (es && pos.sinceImproved >= es.patience) stopped = 'early-stopping';
        }
      }
      if (opts.onEpochEnd) {
        const v = await opts.onEpochEnd({ record, history: pos.history, model: exported, runner });
        if (v === true || (typeof v === 'object' && v?.stop)) stopped ??= 'callback';
      }
      if (stopped) pos.stopped = stopped;
      const v =
        record.valAccuracy !== undefined
          ? `  val loss ${record.valLoss!.toFixed(4)} acc ${(100 * record.valAccuracy).toFixed(2)}%`
          : '';
      const summary = `loss ${record.trainLoss.toFixed(4)} acc ${(100 * record.trainAccuracy).toFixed(2)}%${v}  ${record.rowsPerSecond.toFixed(0)} rows/s`;
      bar.done(summary);
      opts.log?.(
        `epoch ${record.epoch}/${opts.epochs}: ${summary}  lr ${record.lr.toPrecision(3)}  ${record.seconds.toFixed(1)} s${stopped === 'early-stopping' ? '  (early stop)' : ''}`,
      );
      const every = opts.checkpoint?.everyEpochs ?? 1;
      if (opts.checkpoint && (pos.epoch % every === 0 || pos.epoch === opts.epochs || stopped))
        writeCheckpoint();
    }

    // the returned model: best (keepBest with a best state) or last
    let epochOfModel = pos.history.length ? pos.history[pos.history.length - 1]!.epoch : 0;
    let out: Model;
    if (keepBest && bestState && pos.best && pos.best.epoch !== epochOfModel) {
      runner.load(bestState);
      out = runner.exportModel();
      epochOfModel = pos.best.epoch;
    } else out = lastExport ?? runner.exportModel();

    const result: TrainResult = {
      model: out,
      history: pos.history,
      epoch: epochOfModel,
      seconds: 0,
      steps: pos.step,
    };
    if (pos.best && (keepBest || es)) result.bestEpoch = pos.best.epoch;
    if (stopped) result.stopped = stopped;
    if (opts.test) {
      const r = await evaluate(out, opts.test, {
        threads: opts.threads,
        inputName: layout.name,
        outputName: opts.outputName,
        label: 'trained model',
      });
      result.test = r;
      result.testAccuracy = r.accuracy;
    }
    result.seconds = (performance.now() - t0) / 1000;
    return result;
  } finally {
    if (ownRunner) await runner.release();
  }
}
