// Sensitivity and mixed precision for static INT8.
//
// analyzeSensitivity: for each quantizable layer, the model with only that layer quantized (same calibrated
// ranges as the full quantization) is compared with the float model — SQNR of the model output and, with a
// `score` function (accuracy on labelled data), the accuracy drop — and the layer's own output SQNR in the fully
// quantized model is measured too.
// mixedPrecision: the greedy fallback — the most sensitive layers (largest accuracy drop alone, then lowest output
// SQNR) go back to float one at a time until the accuracy gate holds.
// Accuracy is never computed here: the caller passes `score(model) → accuracy in [0, 1]` (the CLI evaluates through
// src/eval), which keeps this engine free of the data layer.
import { holdsMaxDrop } from '../../eval/gates.js';
import type { Model } from '../../ir/index.js';
import { calibrate, type Feeds, type TensorStats } from './calibrate.js';
import { layerSqnr, outputSqnr, referenceOutputs } from './sqnr.js';
import { applyStatic, planStatic, prepareStatic, type QuantPlan, type StaticQuantOptions } from './static.js';

export type ScoreFn = (model: Model) => Promise<number>;

export interface LayerSensitivity {
  node: string;
  opType: string;
  /** SQNR (dB) of the model's first output when only this layer is quantized. */
  outputSqnr: number;
  /** SQNR (dB) of this layer's output in the fully quantized model. */
  layerSqnr: number | null;
  /** Accuracy (0–1) with only this layer quantized (when a score function is given). */
  accuracy: number | null;
  /** Accuracy points lost against the float model (when a score function is given). */
  drop: number | null;
}

export interface SensitivityOptions extends StaticQuantOptions {
  /** Batches to measure SQNR on (default: the calibration batches). */
  evalFeeds?: readonly Feeds[];
  score?: ScoreFn;
  /** Accuracy of the float model (computed with `score` when not given). */
  baseline?: number;
  onLayer?: (done: number, total: number, node: string) => void;
}

export interface SensitivityReport {
  layers: LayerSensitivity[];
  /** Full quantization: output SQNR and accuracy. */
  full: { outputSqnr: number; accuracy: number | null; drop: number | null };
  baseline: number | null;
  ranges: Map<string, TensorStats>;
  plan: QuantPlan;
}

/** Calibrate the union of the tensors that the full plan and every single-layer plan quantize. */
export async function calibrateForPlans(
  model: Model,
  plans: readonly QuantPlan[],
  opts: StaticQuantOptions,
): Promise<Map<string, TensorStats>> {
  const ranges = new Map(opts.ranges ?? []);
  const roots = new Set<string>();
  for (const p of plans) for (const r of p.roots) if (!ranges.has(r)) roots.add(r);
  if (roots.size) {
    const c = await calibrate(model, [...roots], opts.calibration ?? [], opts);
    for (const [k, v] of c.stats) ranges.set(k, v);
  }
  return ranges;
}

/** Plans quantizing only one node each (same placement options). */
export function singleLayerPlans(model: Model, full: QuantPlan, opts: StaticQuantOptions): QuantPlan[] {
  return full.nodes.map((label) => planStatic(model, { ...opts, include: [`node:${label}`], exclude: [] }));
}

export async function analyzeSensitivity(
  model: Model,
  options: SensitivityOptions,
): Promise<SensitivityReport> {
  const { model: m, options: opts } = prepareStatic(model, options);
  const full = planStatic(m, opts);
  const singles = singleLayerPlans(m, full, opts);
  const ranges = await calibrateForPlans(m, [full, ...singles], opts);
  const feeds = opts.evalFeeds ?? opts.calibration ?? [];
  const ref = await referenceOutputs(m, feeds, { threads: opts.threads });
  const baseline = opts.score ? (opts.baseline ?? (await opts.score(m))) : null;
  const qFull = applyStatic(m, full, ranges).model;
  const fullSqnr = await outputSqnr(m, qFull, feeds, { threads: opts.threads, reference: ref });
  const fullAcc = opts.score ? await opts.score(qFull) : null;
  const perLayer = new Map(
    (await layerSqnr(m, qFull, feeds, { threads: opts.threads })).map((l) => [l.node, l.sqnr]),
  );
  const layers: LayerSensitivity[] = [];
  for (let i = 0; i < singles.length; i++) {
    const plan = singles[i]!;
    const label = full.nodes[i]!;
    const q = applyStatic(m, plan, ranges).model;
    const s = await outputSqnr(m, q, feeds, { threads: opts.threads, reference: ref });
    const acc = opts.score ? await opts.score(q) : null;
    const node = m.graph.nodes.find((n) => n.label === label);
    layers.push({
      node: label,
      opType: node?.opType ?? '',
      outputSqnr: s,
      layerSqnr: perLayer.get(label) ?? null,
      accuracy: acc,
      drop: acc !== null && baseline !== null ? (baseline - acc) * 100 : null,
    });
    opts.onLayer?.(i + 1, singles.length, label);
  }
  return {
    layers,
    full: {
      outputSqnr: fullSqnr,
      accuracy: fullAcc,
      drop: fullAcc !== null && baseline !== null ? (baseline - fullAcc) * 100 : null,
    },
    baseline,
    ranges,
    plan: full,
  };
}

/** Layers from most to least sensitive: largest accuracy drop alone, then lowest output SQNR. */
export function sensitivityOrder(layers: readonly LayerSensitivity[]): string[] {
  return [...layers]
    .sort((a, b) => (b.drop ?? 0) - (a.drop ?? 0) || a.outputSqnr - b.outputSqnr)
    .map((l) => l.node);
}

export interface MixedStep {
  /** Layers kept float in this attempt. */
  floatLayers: string[];
  accuracy: number;
  /** Points lost against the float model. */
  drop: number;
  passed: boolean;
}

export interface MixedResult {
  /** The first model that holds the gate (undefined when even the last attempt fails). */
  model: Model | undefined;
  floatLayers: string[];
  steps: MixedStep[];
  passed: boolean;
}

/**
 * Greedy fallback: return the most sensitive layers to float one at a time (in `order`) until the accuracy drop is
 * at most `maxDrop` points. Stops after `maxFloat` layers (default: all but none).
 */
export async function mixedPrecision(
  model: Model,
  options: StaticQuantOptions & {
    order: readonly string[];
    ranges: Map<string, TensorStats>;
    score: ScoreFn;
    baseline: number;
    maxDrop: number;
    maxFloat?: number;
    onStep?: (s: MixedStep) => void;
  },
): Promise<MixedResult> {
  const { model: m, options: opts } = prepareStatic(model, options);
  const steps: MixedStep[] = [];
  const limit = Math.min(opts.maxFloat ?? opts.order.length, opts.order.length);
  for (let k = 1; k <= limit; k++) {
    const floatLayers = opts.order.slice(0, k);
    const plan = planStatic(m, {
      ...opts,
      exclude: [...(opts.exclude ?? []), ...floatLayers.map((l) => `node:${l}`)],
    });
    const ranges = await calibrateForPlans(m, [plan], { ...opts, ranges: opts.ranges });
    const q = applyStatic(m, plan, ranges).model;
    const accuracy = await opts.score(q);
    const drop = (opts.baseline - accuracy) * 100;
    const step = { floatLayers, accuracy, drop, passed: holdsMaxDrop(accuracy, opts.baseline, opts.maxDrop) };
    steps.push(step);
    opts.onStep?.(step);
    if (step.passed) return { model: q, floatLayers, steps, passed: true };
    if (plan.nodes.length === 0) break;
  }
  return { model: undefined, floatLayers: steps[steps.length - 1]?.floatLayers ?? [], steps, passed: false };
}
