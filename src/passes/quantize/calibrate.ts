// Calibration: the ranges of activations over a calibration set, and the Gram matrices XᵀX that GPTQ needs.
//
// Activations are collected by running ORT with the wanted intermediate values exposed as graph outputs (on a
// clone of the model). Min/max come from ReduceMin/ReduceMax nodes added to that clone, so the first pass fetches
// two scalars per tensor. The histogram calibrators (percentile, entropy, mse) make a second pass that fetches the
// tensors themselves and bins them in JS over the [min, max] of the first pass: a once-per-model statistic, which
// DESIGN.md allows. XᵀX is computed in ORT (Reshape → Transpose → MatMul) and only summed over batches here.
import { InputError, InternalError } from '../../errors.js';
import type { Model, Value } from '../../ir/index.js';
import { A, Emitter } from '../../ir/index.js';
import { Session, type HostTensor } from '../../runtime/index.js';
import { tryInferShapes } from '../util.js';

export type Feeds = Record<string, HostTensor>;

import type { CalibratorName } from '../names.js';
export { CALIBRATORS, type CalibratorName } from '../names.js';

export interface CalibrationOptions {
  calibrator?: CalibratorName;
  /** Percentile calibrator: the share of values kept inside the range, in percent (default 99.999). */
  percentile?: number;
  /** Histogram bins (default 2048). */
  bins?: number;
  /** ORT intra-op threads. */
  threads?: number;
}

export interface TensorStats {
  /** Observed extremes over the whole calibration set. */
  min: number;
  max: number;
  /** The range chosen by the calibrator (within [min, max], widened to include 0 later by the quantizer). */
  lo: number;
  hi: number;
  /** Elements seen. */
  count: number;
}

export interface CalibrationResult {
  stats: Map<string, TensorStats>;
  calibrator: CalibratorName;
  /** Calibration rows (first dim of the first input, summed over batches). */
  samples: number;
  seconds: number;
}

function needValues(model: Model, names: readonly string[]): Map<string, Value> {
  const byName = model.graph.valuesByName();
  const out = new Map<string, Value>();
  for (const n of names) {
    const v = byName.get(n);
    if (!v)
      throw new InternalError('calib-value', `Calibration asked for "${n}", which the model does not have`, {
        value: n,
      });
    out.set(n, v);
  }
  return out;
}

/** A clone of `model` that also outputs ReduceMin/ReduceMax of each named float tensor and (optionally) the tensor. */
function probeModel(
  model: Model,
  names: readonly string[],
): { model: Model; minOut: Map<string, string>; maxOut: Map<string, string>; rawOut: Map<string, string> } {
  const m = model.clone();
  tryInferShapes(m);
  const g = m.graph;
  const e = new Emitter(g, { opset: m.opset('') ?? 13, prefix: 'calib' });
  const values = needValues(m, names);
  const minOut = new Map<string, string>();
  const maxOut = new Map<string, string>();
  const rawOut = new Map<string, string>();
  for (const [name, v] of values) {
    if (!v.type) v.type = { kind: 'tensor', dtype: 'float32', shape: null };
    if (!v.isGraphOutput) g.outputs.push(v);
    rawOut.set(name, v.name);
    const mn = e.op('ReduceMin', [v], { keepdims: A.int(0) });
    const mx = e.op('ReduceMax', [v], { keepdims: A.int(0) });
    mn.type = { kind: 'tensor', dtype: 'float32', shape: [] };
    mx.type = { kind: 'tensor', dtype: 'float32', shape: [] };
    g.outputs.push(mn, mx);
    minOut.set(name, mn.name);
    maxOut.set(name, mx.name);
  }
  return { model: m, minOut, maxOut, rawOut };
}

function rowsOf(f: Feeds): number {
  const first = Object.values(f)[0];
  return first?.dims[0] ?? 0;
}

/**
 * Ranges of the float tensors `names` over `batches` (feeds of the model's inputs), chosen by `calibrator`.
 */
export async function calibrate(
  model: Model,
  names: readonly string[],
  batches: readonly Feeds[],
  opts: CalibrationOptions = {},
): Promise<CalibrationResult> {
  const t0 = performance.now();
  const calibrator = opts.calibrator ?? 'minmax';
  if (!batches.length)
    throw new InputError('calib-empty', 'The calibration set is empty', { value: 'calib-data' });
  const stats = new Map<string, TensorStats>();
  if (!names.length) return { stats, calibrator, samples: 0, seconds: 0 };
  const probe = probeModel(model, names);
  const session = await Session.create(probe.model, {
    threads: opts.threads,
    label: 'the calibration model',
  });
  let samples = 0;
  try {
    const fetchMinMax = [...probe.minOut.values(), ...probe.maxOut.values()];
    for (const n of names) stats.set(n, { min: Infinity, max: -Infinity, lo: 0, hi: 0, count: 0 });
    for (const b of batches) {
      samples += rowsOf(b);
      const r = await session.run(b, fetchMinMax);
      for (const n of names) {
        const s = stats.get(n)!;
        const mn = Number(r[probe.minOut.get(n)!]!.data[0]);
        const mx = Number(r[probe.maxOut.get(n)!]!.data[0]);
        if (mn < s.min) s.min = mn;
        if (mx > s.max) s.max = mx;
      }
    }
    for (const s of stats.values()) {
      if (!Number.isFinite(s.min) || !Number.isFinite(s.max))
        throw new InputError(
          'calib-nonfinite',
          'A calibration activation is not finite (NaN or infinite): check the calibration data',
          {},
        );
      s.lo = s.min;
      s.hi = s.max;
    }
    if (calibrator !== 'minmax') {
      const bins = opts.bins ?? 2048;
      const hists = new Map<string, Float64Array>();
      for (const n of names) hists.set(n, new Float64Array(bins));
      for (const b of batches) {
        const r = await session.run(b, [...probe.rawOut.values()]);
        for (const n of names) {
          const s = stats.get(n)!;
          const t = r[probe.rawOut.get(n)!]!;
          s.count += t.data.length;
          histogram(t.data as Float32Array, s.min, s.max, hists.get(n)!);
        }
      }
      for (const n of names) {
        const s = stats.get(n)!;
        const h = hists.get(n)!;
        const [lo, hi] =
          calibrator === 'percentile'
            ? percentileRange(h, s.min, s.max, opts.percentile ?? 99.999)
            : calibrator === 'entropy'
              ? entropyRange(h, s.min, s.max)
              : mseRange(h, s.min, s.max);
        s.lo = lo;
        s.hi = hi;
      }
    }
  } finally {
    await session.release();
  }
  return { stats, calibrator, samples, seconds: (performance.now() - t0) / 1000 };
}

/** Add `x` into `hist` (bins over [min, max]). */
export function histogram(x: ArrayLike<number>, min: number, max: number, hist: Float64Array): void {
  const bins = hist.length;
  const w = max > min ? (max - min) / bins : 1;
  const inv = 1 / w;
  for (let i = 0; i < x.length; i++) {
    let k = Math.floor((x[i]! - min) * inv);
    if (k < 0) k = 0;
    else if (k >= bins) k = bins - 1;
    hist[k]!++;
  }
}

/** Two-sided percentile: the range keeping `p` % of the values on each side (0 kept inside). */
export function percentileRange(hist: Float64Array, min: number, max: number, p: number): [number, number] {
  const bins = hist.length;
  const w = (max - min) / bins;
  let total = 0;
  for (const c of hist) total += c;
  if (total === 0 || w === 0) return [min, max];
  const tail = (total * (100 - p)) / 100;
  let acc = 0;
  let lo = min;
  if (min < 0) {
    for (let i = 0; i < bins; i++) {
      acc += hist[i]!;
      if (acc > tail) {
        lo = min + i * w;
        break;
      }
    }
  }
  acc = 0;
  let hi = max;
  for (let i = bins - 1; i >= 0; i--) {
    acc += hist[i]!;
    if (acc > tail) {
      hi = min + (i + 1) * w;
      break;
    }
  }
  return [Math.min(lo, 0), Math.max(hi, 0)];
}

/**
 * Entropy (KL) calibration, TensorRT's method: over the histogram of |x|, the threshold T whose clipped
 * distribution, quantized to 128 levels, is closest (Kullback–Leibler) to the original; the range is [0, T] for
 * non-negative tensors, [−T, T] (within [min, max]) for signed ones. The bin of zeros takes its neighbour's count
 * first.
 */
export function entropyRange(hist: Float64Array, min: number, max: number): [number, number] {
  const amax = Math.max(Math.abs(min), Math.abs(max));
  if (amax === 0) return [min, max];
  const signed = min < 0;
  // 128 levels as ONNX Runtime's entropy calibrator (num_quantized_bins); 256 for unsigned tensors clipped far more
  // aggressively here (cnn-s: 3.8 points lost against 0.4)
  const levels = 128;
  // re-bin the [min, max] histogram into |x| bins over [0, amax]
  const bins = hist.length;
  const w = (max - min) / bins;
  const abs = new Float64Array(bins);
  for (let i = 0; i < bins; i++) {
    const c = hist[i]!;
    if (!c) continue;
    const center = Math.abs(min + (i + 0.5) * w);
    abs[Math.min(bins - 1, Math.floor((center / amax) * bins))]! += c;
  }
  // the spike of exact zeros (ReLU outputs, padding) says nothing about where to clip: flatten it into its
  // neighbour, as NVIDIA's pytorch-quantization does, or it dominates the distributions being compared
  abs[0] = abs[1]!;
  let best = bins;
  let bestKl = Infinity;
  const start = Math.min(levels, bins);
  for (let i = start; i <= bins; i += Math.max(1, Math.floor(bins / 512))) {
    const kl = klForThreshold(abs, i, levels);
    if (kl < bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  const T = (best / bins) * amax;
  return signed ? [Math.max(min, -T), Math.min(max, T)] : [0, Math.min(max, T)];
}

function klForThreshold(abs: Float64Array, i: number, levels: number): number {
  // reference P: the first i bins, with the outliers added to the last one
  const p = new Float64Array(i);
  for (let k = 0; k < i; k++) p[k] = abs[k]!;
  let outliers = 0;
  for (let k = i; k < abs.length; k++) outliers += abs[k]!;
  p[i - 1]! += outliers;
  // candidate Q: the i bins merged into `levels` groups, each group's mass spread over its non-empty bins
  const q = new Float64Array(i);
  const per = i / levels;
  for (let j = 0; j < levels; j++) {
    const a = Math.floor(j * per);
    const b = j === levels - 1 ? i : Math.floor((j + 1) * per);
    let mass = 0;
    let nonzero = 0;
    for (let k = a; k < b; k++) {
      mass += abs[k]!;
      if (abs[k]! > 0) nonzero++;
    }
    if (!nonzero) continue;
    for (let k = a; k < b; k++) if (abs[k]! > 0) q[k] = mass / nonzero;
  }
  let ps = 0;
  let qs = 0;
  for (let k = 0; k < i; k++) {
    ps += p[k]!;
    qs += q[k]!;
  }
  if (ps === 0 || qs === 0) return Infinity;
  let kl = 0;
  for (let k = 0; k < i; k++) {
    const pk = p[k]! / ps;
    if (pk === 0) continue;
    const qk = q[k]! / qs;
    kl += qk === 0 ? pk * 20 : pk * Math.log(pk / qk); // q empty where p is not: a large finite penalty
  }
  return kl;
}

/**
 * MSE calibration: the range α·[min, max] (α from 0.02 to 1) whose 8-bit quantization has the smallest expected
 * squared error over the histogram: step²/12 for values inside the range, the clipping error outside.
 */
export function mseRange(hist: Float64Array, min: number, max: number, levels = 255): [number, number] {
  const bins = hist.length;
  const w = (max - min) / bins;
  if (w === 0) return [min, max];
  const lo0 = Math.min(min, 0);
  const hi0 = Math.max(max, 0);
  let best: [number, number] = [min, max];
  let bestErr = Infinity;
  for (let s = 1; s <= 100; s++) {
    const a = s / 100;
    const lo = lo0 * a;
    const hi = hi0 * a;
    const step = (hi - lo) / levels;
    if (step <= 0) continue;
    let err = 0;
    for (let i = 0; i < bins; i++) {
      const c = hist[i]!;
      if (!c) continue;
      const x = min + (i + 0.5) * w;
      if (x < lo) err += c * (x - lo) * (x - lo);
      else if (x > hi) err += c * (x - hi) * (x - hi);
      else err += (c * step * step) / 12;
    }
    if (err < bestErr) {
      bestErr = err;
      best = [lo, hi];
    }
  }
  return best;
}

/**
 * XᵀX of the inputs named (each reshaped to [rows, K], K its last dim) summed over `batches`, computed by ORT; and
 * the number of rows. What GPTQ needs to weigh the rounding error of a weight by its inputs.
 */
export async function collectGram(
  model: Model,
  inputs: readonly { name: string; K: number }[],
  batches: readonly Feeds[],
  opts: { threads?: number } = {},
): Promise<Map<string, { gram: Float64Array; rows: number }>> {
  const m = model.clone();
  tryInferShapes(m);
  const g = m.graph;
  const e = new Emitter(g, { opset: m.opset('') ?? 13, prefix: 'gram' });
  const values = needValues(
    m,
    inputs.map((i) => i.name),
  );
  const outs = new Map<string, string>();
  for (const { name, K } of inputs) {
    const x = e.reshape(values.get(name)!, [-1, K]);
    const gram = e.op('MatMul', [e.transpose(x, [1, 0]), x]);
    gram.type = { kind: 'tensor', dtype: 'float32', shape: [K, K] };
    g.outputs.push(gram);
    outs.set(name, gram.name);
  }
  // rows of each input: its element count / K, from an exposed Shape
  const shapes = new Map<string, string>();
  for (const { name } of inputs) {
    const s = e.op('Shape', [values.get(name)!]);
    s.type = { kind: 'tensor', dtype: 'int64', shape: null };
    g.outputs.push(s);
    shapes.set(name, s.name);
  }
  const res = new Map<string, { gram: Float64Array; rows: number }>();
  for (const { name, K } of inputs) res.set(name, { gram: new Float64Array(K * K), rows: 0 });
  const session = await Session.create(m, { threads: opts.threads, label: 'the GPTQ statistics model' });
  try {
    for (const b of batches) {
      const r = await session.run(b, [...outs.values(), ...shapes.values()]);
      for (const { name, K } of inputs) {
        const acc = res.get(name)!;
        const t = r[outs.get(name)!]!.data as Float32Array;
        for (let i = 0; i < K * K; i++) acc.gram[i]! += t[i]!;
        const dims = Array.from(r[shapes.get(name)!]!.data as BigInt64Array, Number);
        acc.rows += dims.reduce((a, c) => a * c, 1) / K;
      }
    }
  } finally {
    await session.release();
  }
  return res;
}

/**
 * Warnings about calibration that cannot give useful ranges: a calibration input that holds one constant value
 * (all zeros, say) over every item, and calibrated tensors whose range has no width (min = max). Static INT8 then
 * writes a model whose ranges do not fit real inputs, which loses accuracy without any error.
 */
export function calibrationWarnings(batches: readonly Feeds[], result?: CalibrationResult): string[] {
  const out: string[] = [];
  const range = new Map<string, [number, number]>();
  for (const b of batches)
    for (const [name, t] of Object.entries(b)) {
      if (t.dtype !== 'float32' && t.dtype !== 'float64') continue;
      const r = range.get(name) ?? [Infinity, -Infinity];
      const d = t.data as Float32Array;
      for (let i = 0; i < d.length; i++) {
        const v = d[i]!;
        if (v < r[0]) r[0] = v;
        if (v > r[1]) r[1] = v;
      }
      range.set(name, r);
    }
  for (const [name, [lo, hi]] of range)
    if (lo === hi)
      out.push(
        `calibration input "${name}" is the constant ${lo} in every item: ranges calibrated on it do not fit real data (use representative inputs for --calib-data)`,
      );
  if (result) {
    const flat = [...result.stats].filter(([, s]) => s.max - s.min <= 1e-12 * Math.max(1, Math.abs(s.max)));
    if (flat.length)
      out.push(
        `${flat.length} of ${result.stats.size} calibrated tensors have a range of zero width (min = max: ${flat
          .slice(0, 5)
          .map(([n, s]) => `${n} = ${s.min}`)
          .join(', ')}${flat.length > 5 ? ', …' : ''}): the calibration data does not exercise them`,
      );
  }
  return out;
}
