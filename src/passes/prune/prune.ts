// The pruning entry point: `prune(model, options) → { model, report }`. One step (magnitude pruning works on the
// model alone), or an iterative schedule: prune a step (default 15 % of the original channels) → fine-tune N steps
// with the trainer → evaluate → repeat until a target (parameter bytes, peak activation memory, latency) or a ratio is
// reached, or accuracy falls below a floor; the best model that holds the floor is kept, with a history of every step.
import { type BatchSource, permutation } from '../../data/batch.js';
import { InputError } from '../../errors.js';
import { evaluate } from '../../eval/evaluate.js';
import type { Model } from '../../ir/index.js';
import { type HostTensor, medianRunMs, Session } from '../../runtime/index.js';
import { summarize } from '../../summary/summary.js';
import { train, type TrainData, type TrainOptions } from '../../train/trainer.js';
import type { OptimizerSpec } from '../../train/types.js';
import { dropBlocks, type DepthReport } from './depth.js';
import { pruneHeads, type HeadsReport } from './heads.js';
import type { ImportanceKind } from './importance.js';
import { checkRatio } from './select.js';
import { type GroupReport, pruneChannels } from './structured.js';

export interface PruneData {
  /** Labelled rows for fine-tuning and data-driven importance (taylor, head masks, block masks). */
  train?: TrainData;
  /** Labelled rows for the accuracy figures and the floor (default: none; no accuracy is reported). */
  val?: TrainData;
  /** Accuracy (0–1) of a candidate, instead of evaluating on `val` (a stage context's evaluation data). */
  score?: (model: Model) => Promise<number>;
}

export interface PruneOptions {
  /** Fraction of the channels of every prunable group to remove (default 0.5 when no target is given). */
  ratio?: number;
  /** Stop once the parameters take at most this many bytes. */
  targetBytes?: number;
  /** Stop once the estimated peak activation memory (batch `batch`) is at most this. */
  targetPeakBytes?: number;
  /** Stop once ORT's median latency at batch `batch` (1 thread) is at most this. */
  targetLatencyMs?: number;
  /** Batch for latency and peak-memory figures (default 1). */
  batch?: number;
  importance?: ImportanceKind;
  scope?: 'layer' | 'global';
  minChannels?: number;
  roundTo?: number;
  /**
   * Fraction of the attention heads of every block to remove. Iterative schedules reach it step by step like `ratio`
   * (step k removes up to min(heads, k · step) of the original heads); a single step removes it at once.
   */
  heads?: number;
  /** Residual blocks to drop (in the first step). */
  depth?: number;
  /** Fraction of the original channels removed per step (default 0.15). */
  step?: number;
  /** Fine-tuning steps after each pruning step (default 0: no training); more than one pass over the rows allowed. */
  finetuneSteps?: number;
  finetuneBatch?: number;
  /** Peak fine-tuning learning rate (default 0.01); cosine to 0 over each step's fine-tuning. */
  lr?: number;
  /** Linear learning-rate warm-up over the first N fine-tuning steps of each step (default 0). */
  warmup?: number;
  optimizer?: OptimizerSpec;
  /**
   * Knowledge distillation from the unpruned input model while fine-tuning: loss α·CE(labels) + (1 − α)·T²·KL of
   * the temperature-T softmaxes (the distillation loss of src/distill). Default T 4, α 0.5.
   */
  distill?: { temperature?: number; alpha?: number };
  /** Accuracy floor (0–1): a step below it ends the schedule, and the model before it is returned. */
  minAccuracy?: number;
  /** Calibration batches for taylor / head-mask / block importance (default 4 of 32 rows). */
  calibrationBatches?: number;
  calibrationBatchSize?: number;
  seed?: number;
  threads?: number;
  log?: (line: string) => void;
}

export interface PruneStep {
  step: number;
  /** Fraction of the original channels removed so far. */
  ratio: number;
  params: number;
  bytes: number;
  macs: number;
  peakActivationBytes: number;
  accuracy?: number;
  latencyMs?: number;
  /** Whether this step holds the accuracy floor (true without a floor). */
  holdsFloor: boolean;
}

export interface PruneReport {
  kind: 'prune';
  paramsBefore: number;
  paramsAfter: number;
  bytesBefore: number;
  bytesAfter: number;
  macsBefore: number;
  macsAfter: number;
  peakActivationBytesBefore: number;
  peakActivationBytesAfter: number;
  accuracyBefore?: number;
  accuracyAfter?: number;
  latencyMsBefore?: number;
  latencyMsAfter?: number;
  importance: ImportanceKind;
  /** The history: step 0 is the input model. */
  steps: PruneStep[];
  /** The step whose model is returned. */
  bestStep: number;
  stoppedBecause: 'ratio' | 'target' | 'accuracy-floor' | 'no-progress';
  groups: GroupReport[];
  heads?: HeadsReport;
  depth?: DepthReport;
}

/** Median ORT latency (ms) of `model` at batch `batch`, 1 thread, after warm-up. */
export async function measureLatency(model: Model, batch = 1, runs = 20): Promise<number> {
  const s = await Session.create(model, { threads: 1, label: 'latency' });
  try {
    const feeds: Record<string, HostTensor> = {};
    for (const v of model.graph.inputs) {
      if (v.const) continue;
      const dims = (v.shape ?? []).map((d) => (typeof d === 'number' ? d : batch));
      const n = dims.reduce((a, b) => a * b, 1);
      feeds[v.name] =
        v.dtype === 'int64'
          ? { dtype: 'int64', dims, data: new BigInt64Array(n) }
          : {
              dtype: 'float32',
              dims,
              data: Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 255) / 255),
            };
    }
    return await medianRunMs(s, feeds, { runs, warmup: 3 });
  } finally {
    await s.release();
  }
}

/** `n` rows of `data` drawn with `seed` (copied). */
export function sampleRows(data: TrainData, n: number, seed: number): TrainData {
  const order = permutation(data.n, seed).subarray(0, Math.min(n, data.n));
  const px = data.inputShape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(order.length * px);
  const y = new BigInt64Array(order.length);
  order.forEach((r, i) => {
    x.set(data.x.subarray(r * px, (r + 1) * px), i * px);
    y[i] = data.y[r]!;
  });
  return { n: order.length, x, y, inputShape: data.inputShape, numClasses: data.numClasses, name: data.name };
}

interface Measured {
  params: number;
  bytes: number;
  macs: number;
  peakActivationBytes: number;
  accuracy?: number;
  latencyMs?: number;
}

async function measure(model: Model, opts: PruneOptions, data: PruneData): Promise<Measured> {
  const s = summarize(model, { batch: opts.batch ?? 1 });
  const out: Measured = {
    params: s.params,
    bytes: s.bytes,
    macs: s.macs,
    peakActivationBytes: s.peakActivationBytes,
  };
  if (data.score) out.accuracy = await data.score(model);
  else if (data.val) out.accuracy = (await evaluate(model, data.val, { threads: opts.threads })).accuracy;
  if (opts.targetLatencyMs !== undefined) out.latencyMs = await measureLatency(model, opts.batch ?? 1);
  return out;
}

function targetMet(m: Measured, o: PruneOptions): boolean {
  if (o.targetBytes !== undefined && m.bytes > o.targetBytes) return false;
  if (o.targetPeakBytes !== undefined && m.peakActivationBytes > o.targetPeakBytes) return false;
  if (o.targetLatencyMs !== undefined && m.latencyMs! > o.targetLatencyMs) return false;
  return true;
}

function checkOptions(o: PruneOptions, data: PruneData): void {
  if (o.ratio !== undefined) checkRatio('ratio', o.ratio);
  if (o.heads !== undefined) checkRatio('heads', o.heads);
  if (o.step !== undefined && !(o.step > 0 && o.step <= 1))
    throw new InputError('prune-step', `step must be in (0, 1]: got ${o.step}`, { value: 'step' });
  if (o.depth !== undefined && !(Number.isInteger(o.depth) && o.depth >= 0))
    throw new InputError('prune-depth', `depth must be a whole number ≥ 0: got ${o.depth}`, {
      value: 'depth',
    });
  for (const k of ['targetBytes', 'targetPeakBytes', 'targetLatencyMs'] as const)
    if (o[k] !== undefined && !(o[k]! > 0))
      throw new InputError('prune-target', `${k} must be positive: got ${o[k]}`, { value: k });
  if ((o.finetuneSteps ?? 0) > 0 && !data.train)
    throw new InputError('prune-data', 'Fine-tuning needs labelled training data', { value: 'data' });
  if (o.minAccuracy !== undefined && !data.val && !data.score)
    throw new InputError('prune-data', 'An accuracy floor needs labelled validation data', { value: 'data' });
  if (o.importance === 'taylor' && !data.train)
    throw new InputError('prune-data', 'Taylor importance needs labelled data', { value: 'data' });
  if (o.warmup !== undefined && !(Number.isInteger(o.warmup) && o.warmup >= 0))
    throw new InputError('prune-warmup', `warmup must be a whole number ≥ 0: got ${o.warmup}`, {
      value: 'warmup',
    });
  if (o.distill) {
    if (!((o.finetuneSteps ?? 0) > 0))
      throw new InputError('prune-distill', 'Distillation while pruning needs fine-tuning steps', {
        value: 'distill',
      });
    const { temperature: t, alpha: a } = o.distill;
    if (t !== undefined && !(t > 0 && Number.isFinite(t)))
      throw new InputError('prune-distill', `distillation temperature must be > 0: got ${t}`, {
        value: 'temperature',
      });
    if (a !== undefined && !(a >= 0 && a <= 1))
      throw new InputError(
        'prune-distill',
        `distillation alpha (the CE weight) must be in [0, 1]: got ${a}`,
        {
          value: 'alpha',
        },
      );
  }
}

/** A hook feeding the unpruned model's logits of each fine-tuning batch as `teacher_logits` (distillation). */
async function teacherInputs(
  teacher: Model,
  rowShape: readonly number[],
  threads: number | undefined,
): Promise<{
  extraInputs: NonNullable<NonNullable<TrainOptions['hooks']>['extraInputs']>;
  release: () => Promise<void>;
}> {
  const input = teacher.graph.inputs.find((v) => !v.const)!.name;
  const output = teacher.graph.outputs[0]!.name;
  const s = await Session.create(teacher, { threads, label: 'teacher (the unpruned model)' });
  return {
    extraInputs: async (_indices, batch) => {
      const r = await s.run(
        {
          [input]: {
            dtype: 'float32',
            dims: [batch.n, ...rowShape],
            data: batch.x.slice(0, batch.n * rowShape.reduce((a, b) => a * b, 1)),
          },
        },
        [output],
      );
      return { teacher_logits: r[output]! };
    },
    release: () => s.release(),
  };
}

/** The heads report of successive steps: kept heads as indices of the original heads, scores of the latest step. */
function mergeHeads(prev: HeadsReport | undefined, cur: HeadsReport): HeadsReport {
  if (!prev) return cur;
  return {
    ...cur,
    skipped: [...new Set([...prev.skipped, ...cur.skipped])],
    blocks: cur.blocks.map((b) => {
      const p = prev.blocks.find((x) => x.name === b.name);
      if (!p) return b;
      const scores = [...p.scores];
      b.scores.forEach((v, j) => (scores[p.kept[j]!] = v));
      return { name: b.name, heads: p.heads, kept: b.kept.map((j) => p.kept[j]!), scores };
    }),
  };
}

/** Structured pruning of `model`: channels (and heads, blocks), optionally iterative with fine-tuning. */
export async function prune(
  model: Model,
  opts: PruneOptions = {},
  data: PruneData = {},
): Promise<{ model: Model; report: PruneReport }> {
  checkOptions(opts, data);
  const log = opts.log ?? (() => {});
  const hasTarget =
    opts.targetBytes !== undefined ||
    opts.targetPeakBytes !== undefined ||
    opts.targetLatencyMs !== undefined;
  const finalRatio = opts.ratio ?? (hasTarget ? 0.95 : 0.5);
  const iterative = hasTarget || (opts.finetuneSteps ?? 0) > 0 || opts.minAccuracy !== undefined;
  const stepSize = iterative ? (opts.step ?? 0.15) : finalRatio || 1;
  const importance = opts.importance ?? 'l1';
  const calib = {
    data: data.train,
    batches: opts.calibrationBatches,
    batchSize: opts.calibrationBatchSize,
    seed: opts.seed,
    threads: opts.threads,
  };

  const before = await measure(model, opts, data);
  const steps: PruneStep[] = [
    {
      step: 0,
      ratio: 0,
      ...before,
      holdsFloor: opts.minAccuracy === undefined || before.accuracy! >= opts.minAccuracy,
    },
  ];
  log(
    `step 0: ${before.params} params${before.accuracy !== undefined ? `, accuracy ${(before.accuracy * 100).toFixed(2)} %` : ''}`,
  );

  // original channel counts by producer, so every step removes a fraction of the original width
  const base = new Map<string, number>();
  const first = await pruneChannels(model, { ratio: 0, importance: 'l1' });
  for (const g of first.groups) for (const p of g.producers) base.set(p, g.channels);

  let current = model;
  let best = { model, step: 0, m: before };
  let groups: GroupReport[] = first.groups;
  let heads: HeadsReport | undefined;
  let depth: DepthReport | undefined;
  let stoppedBecause: PruneReport['stoppedBecause'] = 'ratio';
  let ratio = 0;
  let prevParams = before.params;
  // heads: original count per attention block (by its Softmax's label), and the fraction removed so far
  const baseHeads = new Map<string, number>();
  let headsDone = 0;
  for (let k = 1; ; k++) {
    if (hasTarget && targetMet(best.m, opts) && k > 1) {
      stoppedBecause = 'target';
      break;
    }
    ratio = Math.min(finalRatio, Math.round(k * stepSize * 1e6) / 1e6);
    let next = current;
    const headRatio = !opts.heads
      ? 0
      : iterative
        ? Math.min(opts.heads, Math.round(k * stepSize * 1e6) / 1e6)
        : opts.heads;
    if (opts.heads && headRatio > headsDone) {
      const h = await pruneHeads(next, { ratio: headRatio, importance, baseHeads, ...calib });
      next = h.model;
      heads = mergeHeads(heads, h.report);
      for (const b of h.report.blocks) if (!baseHeads.has(b.name)) baseHeads.set(b.name, b.heads);
      headsDone = headRatio;
    }
    if (k === 1 && opts.depth) {
      const d = await dropBlocks(next, { count: opts.depth, importance, ...calib });
      next = d.model;
      depth = d.report;
    }
    const r = await pruneChannels(next, {
      ratio,
      importance,
      scope: opts.scope,
      minChannels: opts.minChannels,
      roundTo: opts.roundTo,
      baseSizeByProducer: base,
      ...calib,
    });
    next = r.model;
    groups = r.groups;
    if ((opts.finetuneSteps ?? 0) > 0) {
      const bs = opts.finetuneBatch ?? 64;
      // more steps than the rows give in one pass: E epochs over a seeded sample of ⌈steps / E⌉ batches
      const epochs = Math.max(
        1,
        Math.ceil(opts.finetuneSteps! / Math.max(1, Math.floor(data.train!.n / bs))),
      );
      const rows = sampleRows(
        data.train!,
        Math.ceil(opts.finetuneSteps! / epochs) * bs,
        (opts.seed ?? 0) + k,
      );
      const kd = opts.distill ? await teacherInputs(model, rows.inputShape, opts.threads) : undefined;
      try {
        const t = await train(next, {
          data: rows,
          epochs,
          batchSize: bs,
          optimizer: opts.optimizer ?? { kind: 'sgd', momentum: 0.9 },
          lr: { kind: 'cosine', lr: opts.lr ?? 0.01, ...(opts.warmup ? { warmup: opts.warmup } : {}) },
          seed: (opts.seed ?? 0) + k,
          run: { threads: opts.threads },
          ...(kd
            ? {
                loss: {
                  kind: 'distill' as const,
                  temperature: opts.distill!.temperature ?? 4,
                  alpha: 1 - (opts.distill!.alpha ?? 0.5),
                },
                hooks: { extraInputs: kd.extraInputs },
              }
            : {}),
        });
        next = t.model;
      } finally {
        await kd?.release();
      }
    }
    const m = await measure(next, opts, data);
    const holds = opts.minAccuracy === undefined || m.accuracy! >= opts.minAccuracy;
    steps.push({ step: k, ratio, ...m, holdsFloor: holds });
    log(
      `step ${k}: ratio ${ratio.toFixed(2)}, ${m.params} params, ${m.bytes} bytes` +
        (m.accuracy !== undefined ? `, accuracy ${(m.accuracy * 100).toFixed(2)} %` : '') +
        (m.latencyMs !== undefined ? `, ${m.latencyMs.toFixed(3)} ms` : ''),
    );
    if (!holds) {
      stoppedBecause = 'accuracy-floor';
      break;
    }
    best = { model: next, step: k, m };
    current = next;
    if (hasTarget && targetMet(m, opts)) {
      stoppedBecause = 'target';
      break;
    }
    if (ratio >= finalRatio && headsDone >= (opts.heads ?? 0)) {
      stoppedBecause = hasTarget ? 'no-progress' : 'ratio';
      break;
    }
    if (m.params >= prevParams && k > 1 && !opts.heads && !opts.depth) {
      stoppedBecause = 'no-progress';
      break;
    }
    prevParams = m.params;
  }
  const after = best.m;
  return {
    model: best.model,
    report: {
      kind: 'prune',
      paramsBefore: before.params,
      paramsAfter: after.params,
      bytesBefore: before.bytes,
      bytesAfter: after.bytes,
      macsBefore: before.macs,
      macsAfter: after.macs,
      peakActivationBytesBefore: before.peakActivationBytes,
      peakActivationBytesAfter: after.peakActivationBytes,
      ...(before.accuracy !== undefined
        ? { accuracyBefore: before.accuracy, accuracyAfter: after.accuracy }
        : {}),
      ...(before.latencyMs !== undefined
        ? { latencyMsBefore: before.latencyMs, latencyMsAfter: after.latencyMs }
        : {}),
      importance,
      steps,
      bestStep: best.step,
      stoppedBecause,
      groups,
      ...(heads ? { heads } : {}),
      ...(depth ? { depth } : {}),
    },
  };
}

export type { BatchSource };
