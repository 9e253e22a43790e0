// `--auto`: try the cheapest method that holds the accuracy gate, in order, and stop at the first that does:
//   1. static INT8 PTQ (QDQ, calibrated);
//   2. mixed precision: sensitivity analysis, then the most sensitive layers back to float until the gate holds;
//   3. QAT: through the `qat` hook (src/qat's `qatHook`; without a hook, or without training data, the step is
//      recorded as skipped).
// Every attempt is recorded with its figures, and `stoppedBecause` says why it stopped.
import { UnsupportedError } from '../../errors.js';
import { holdsMaxDrop } from '../../eval/gates.js';
import type { Model } from '../../ir/index.js';
import type { Feeds } from './calibrate.js';
import {
  analyzeSensitivity,
  mixedPrecision,
  sensitivityOrder,
  type LayerSensitivity,
  type ScoreFn,
} from './sensitivity.js';
import { applyStatic, planStatic, prepareStatic, type StaticQuantOptions } from './static.js';
import { calibrateForPlans } from './sensitivity.js';

/**
 * The QAT hook: fine-tune `model` with fake quantization (starting from the PTQ ranges) and return the quantized
 * result, or undefined when QAT is not possible. Plugged in by the caller once src/train can run it.
 */
export type QatHook = (
  model: Model,
  ctx: { options: StaticQuantOptions; score: ScoreFn; baseline: number; maxDrop: number },
) => Promise<Model | undefined>;

export interface AutoOptions extends StaticQuantOptions {
  /** Accuracy (0–1) of a model on the gate's labelled data. */
  score: ScoreFn;
  /** Largest allowed accuracy drop, in points. */
  maxDrop: number;
  /** Batches for the SQNR figures of the sensitivity analysis (default: the calibration batches). */
  evalFeeds?: readonly Feeds[];
  qat?: QatHook;
  log?: (line: string) => void;
}

export interface AutoStep {
  method: 'static' | 'mixed' | 'qat';
  status: 'passed' | 'failed' | 'skipped';
  accuracy: number | null;
  /** Points lost against the float model. */
  drop: number | null;
  /** Layers left in float (mixed precision). */
  floatLayers?: string[];
  /** Greedy attempts of the mixed-precision step. */
  attempts?: { floatLayers: string[]; accuracy: number; drop: number }[];
  sensitivity?: LayerSensitivity[];
  note: string;
  seconds: number;
}

export interface AutoResult {
  model: Model | undefined;
  chosen: AutoStep['method'] | null;
  baseline: number;
  maxDrop: number;
  steps: AutoStep[];
  stoppedBecause: string;
}

export const NO_QAT_HOOK =
  'no QAT hook was given (QAT needs labelled training data: pass qatHook from src/qat)';

export async function autoQuantize(model: Model, options: AutoOptions): Promise<AutoResult> {
  const { model: m, options: opts, notes: prepNotes } = prepareStatic(model, options);
  const log = opts.log ?? (() => {});
  const steps: AutoStep[] = [];
  const baseline = await opts.score(m);
  const pts = (x: number) => `${(x * 100).toFixed(2)} %`;
  log(`float model: accuracy ${pts(baseline)}; gate: drop ≤ ${opts.maxDrop} points`);
  for (const n of prepNotes) log(n);

  // 1. static PTQ
  let t0 = performance.now();
  const full = planStatic(m, opts);
  if (full.nodes.length === 0)
    throw new UnsupportedError(
      'nothing-to-quantize',
      'static INT8 finds no quantizable node in the main graph, so neither it nor mixed precision nor QAT can change the model',
    );
  const ranges = await calibrateForPlans(m, [full], opts);
  const q = applyStatic(m, full, ranges).model;
  const acc = await opts.score(q);
  const drop = (baseline - acc) * 100;
  const passed = holdsMaxDrop(acc, baseline, opts.maxDrop);
  steps.push({
    method: 'static',
    status: passed ? 'passed' : 'failed',
    accuracy: acc,
    drop,
    note: `${full.nodes.length} layer(s) INT8: accuracy ${pts(acc)}, drop ${drop.toFixed(2)} points`,
    seconds: (performance.now() - t0) / 1000,
  });
  log(`static INT8: ${steps[0]!.note}`);
  if (passed)
    return {
      model: q,
      chosen: 'static',
      baseline,
      maxDrop: opts.maxDrop,
      steps,
      stoppedBecause: `static INT8 holds the gate (drop ${drop.toFixed(2)} ≤ ${opts.maxDrop} points)`,
    };

  // 2. mixed precision
  t0 = performance.now();
  const sens = await analyzeSensitivity(m, { ...opts, ranges, baseline, evalFeeds: opts.evalFeeds });
  const order = sensitivityOrder(sens.layers);
  log(`sensitivity (most sensitive first): ${order.join(', ')}`);
  const mixed = await mixedPrecision(m, {
    ...opts,
    order,
    ranges: sens.ranges,
    baseline,
    // the last attempt would keep every layer float: not a quantized model
    maxFloat: Math.max(0, order.length - 1),
    onStep: (s) =>
      log(
        `mixed precision, float: ${s.floatLayers.join(', ')}: accuracy ${pts(s.accuracy)}, drop ${s.drop.toFixed(2)} points`,
      ),
  });
  const last = mixed.steps[mixed.steps.length - 1];
  steps.push({
    method: 'mixed',
    status: mixed.passed ? 'passed' : 'failed',
    accuracy: last?.accuracy ?? null,
    drop: last?.drop ?? null,
    floatLayers: mixed.floatLayers,
    attempts: mixed.steps.map((s) => ({ floatLayers: s.floatLayers, accuracy: s.accuracy, drop: s.drop })),
    sensitivity: sens.layers,
    note: mixed.passed
      ? `${mixed.floatLayers.length} of ${order.length} layer(s) kept float (${mixed.floatLayers.join(', ')})`
      : order.length <= 1
        ? 'a single quantizable layer: nothing to keep float but the whole model'
        : `still above the gate with ${mixed.floatLayers.length} of ${order.length} layer(s) float`,
    seconds: (performance.now() - t0) / 1000,
  });
  if (mixed.passed)
    return {
      model: mixed.model,
      chosen: 'mixed',
      baseline,
      maxDrop: opts.maxDrop,
      steps,
      stoppedBecause: `mixed precision holds the gate with ${mixed.floatLayers.length} layer(s) float (drop ${last!.drop.toFixed(2)} ≤ ${opts.maxDrop} points)`,
    };

  // 3. QAT (hook)
  t0 = performance.now();
  if (!opts.qat) {
    steps.push({
      method: 'qat',
      status: 'skipped',
      accuracy: null,
      drop: null,
      note: NO_QAT_HOOK,
      seconds: 0,
    });
    return {
      model: undefined,
      chosen: null,
      baseline,
      maxDrop: opts.maxDrop,
      steps,
      stoppedBecause: `no method held the gate; ${NO_QAT_HOOK}`,
    };
  }
  const qm = await opts.qat(m, { options: opts, score: opts.score, baseline, maxDrop: opts.maxDrop });
  if (!qm) {
    steps.push({
      method: 'qat',
      status: 'skipped',
      accuracy: null,
      drop: null,
      note: 'the QAT hook returned no model',
      seconds: (performance.now() - t0) / 1000,
    });
    return {
      model: undefined,
      chosen: null,
      baseline,
      maxDrop: opts.maxDrop,
      steps,
      stoppedBecause: 'no method held the gate; QAT returned no model',
    };
  }
  const qacc = await opts.score(qm);
  const qdrop = (baseline - qacc) * 100;
  const qpassed = holdsMaxDrop(qacc, baseline, opts.maxDrop);
  steps.push({
    method: 'qat',
    status: qpassed ? 'passed' : 'failed',
    accuracy: qacc,
    drop: qdrop,
    note: `accuracy ${pts(qacc)}, drop ${qdrop.toFixed(2)} points`,
    seconds: (performance.now() - t0) / 1000,
  });
  return qpassed
    ? {
        model: qm,
        chosen: 'qat',
        baseline,
        maxDrop: opts.maxDrop,
        steps,
        stoppedBecause: `QAT holds the gate (drop ${qdrop.toFixed(2)} ≤ ${opts.maxDrop} points)`,
      }
    : {
        model: undefined,
        chosen: null,
        baseline,
        maxDrop: opts.maxDrop,
        steps,
        stoppedBecause: 'no method held the gate, QAT included',
      };
}
