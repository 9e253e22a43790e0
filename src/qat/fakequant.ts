// Fake quantization for quantization-aware training: float ops that compute, in the forward pass, exactly the
// values the exported QDQ model's QuantizeLinear → DequantizeLinear pairs produce, and that the autodiff driver can
// differentiate (straight-through estimator, clipped to the quantization range).
//
// The grid is the one the static quantizer (src/passes/quantize) exports, to the bit:
//   activations  y = clip(round(x / s), qmin − zp, qmax − zp) · s           (ORT's QuantizeLinear divides by s and
//                rounds half to even — measured — then saturates; DequantizeLinear computes (q − zp) · s in float32)
//   weights      s[c] = max|w[c]| / 127 in float32 (1 for a channel of zeros), codes clip(rint(w / s), −127, 127) with
//                the division and rounding in float64, as `quantizeWeightInt8` computes them in JS
//   biases       s_b[c] = s_x · s_w[c] in float32, codes rint(b / s_b) in float64 (`quantizeBias`)
// Weight and bias codes are computed in double precision (Cast → Div → Round → Clip) because that is what the JS
// exporter does; activation codes in float32 because that is what ORT's QuantizeLinear does at inference.
//
// Straight-through estimator. With c = clip(x / s, qmin − zp, qmax − zp):
//     y = s · (c + stopGradient(round(c) − c))
// The forward value is exactly round(c) · s: round(c) − c is exact in float32 (|round(c) − c| ≤ ½ and Sterbenz's
// lemma), so c + (round(c) − c) is exactly round(c). The gradient is dy/dx = 1 inside the range and 0 outside
// (Clip's rule), and dy/ds = round(c) − x/s inside, qmin − zp or qmax − zp outside: the LSQ gradient of the scale
// (Esser et al., "Learned Step Size Quantization", 2020), scaled by g = 1/√(elements per sample · levels above the
// zero point) as that paper does, through sEff = stopGradient(s) + (s·g − stopGradient(s·g)), whose forward value
// is exactly s. Weights and biases use w + stopGradient(q(w) − w): value q(w) exactly (same Sterbenz argument),
// gradient 1 (their range always covers them: the scale follows max|w|, and no gradient flows into the scale).
import { InternalError, UnsupportedError } from '../errors.js';
import { A, Emitter, type Model, type Node, Tensor, type Value } from '../ir/index.js';
import { stopGradient } from '../autodiff/grad.js';
import { QRANGE, type QType } from '../passes/quantize/numeric.js';
import type { QuantPlan } from '../passes/quantize/static.js';
import type { TensorStats } from '../passes/quantize/calibrate.js';
import { rangeParams } from '../passes/quantize/numeric.js';
import { quantSpec } from '../passes/quantize/table.js';
import { constTensor, tryInferShapes } from '../passes/util.js';

/** Smallest weight scale the exporter emits (numeric.ts MIN_SCALE). */
const MIN_SCALE = 1e-12;

/** One activation range group: the tensors that share a scale and zero point (a root and its pass-through ops). */
export interface FakeQuantGroup {
  /** Name of the group's root tensor (the key of the calibration ranges). */
  root: string;
  /** Tensors quantized with this group's parameters. */
  tensors: string[];
  /** The scale: a float32 [1] initializer of the fake-quant model (trained when scales are learned). */
  scaleName: string;
  /** Integer zero point (fixed: from calibration). */
  zeroPoint: number;
  qtype: QType;
  /** Scale at the start (from the calibrated range). */
  initialScale: number;
  /** LSQ gradient scale g (0 when the scale is not learned). */
  gradScale: number;
}

/** A quantized compute node's weight (and bias). */
export interface FakeQuantWeight {
  node: string;
  weight: string;
  /** Output-channel axis of the per-channel scales, or null per tensor. */
  axis: number | null;
  bias?: string;
  /** Range group of the node's activation input (its scale is the bias scale's input factor). */
  inputRoot?: string;
}

export interface FakeQuantInfo {
  plan: QuantPlan;
  groups: FakeQuantGroup[];
  weights: FakeQuantWeight[];
  /** Initializer names the optimizer should train: the model's own float parameters, plus learned scales. */
  trainable: string[];
  learnScales: boolean;
}

export interface FakeQuantOptions {
  /** Learn the activation scales (LSQ; default true). False keeps the calibrated scales fixed. */
  learnScales?: boolean;
}

// ------------------------------------------------------------------------------------------------------------
// Emitters
// ------------------------------------------------------------------------------------------------------------

/** sEff: value exactly s, gradient g · d/ds (the LSQ gradient scale). */
export function emitGradScale(e: Emitter, s: Value, g: number): Value {
  if (g === 1) return s;
  const sg = e.mul(s, e.scalar(g));
  return e.add(stopGradient(e, s), e.sub(sg, stopGradient(e, sg)));
}

/**
 * Fake-quantize activation `x` with scale `scale` (float32, scalar or [1]) and integer zero point `zeroPoint`:
 * forward value = DequantizeLinear(QuantizeLinear(x)), gradient straight-through inside the range.
 */
export function emitActivationFakeQuant(
  e: Emitter,
  x: Value,
  scale: Value,
  zeroPoint: number,
  qtype: QType,
): Value {
  const { min, max } = QRANGE[qtype];
  const c = e.op('Clip', [e.div(x, scale), e.scalar(min - zeroPoint), e.scalar(max - zeroPoint)]);
  const r = e.add(c, stopGradient(e, e.sub(e.op('Round', [c]), c)));
  return e.mul(r, scale);
}

function reduceMax(e: Emitter, x: Value, axes: readonly number[], keepdims: boolean): Value {
  return e.opset >= 18
    ? e.op('ReduceMax', [x, e.ints(axes)], { keepdims: A.int(keepdims ? 1 : 0) })
    : e.op('ReduceMax', [x], { axes: A.ints(axes), keepdims: A.int(keepdims ? 1 : 0) });
}

/** round(a / b) clipped to [lo, hi], computed in float64 (as the JS exporter computes codes), back as float32. */
function codesF64(e: Emitter, a: Value, b: Value, lo: number, hi: number): Value {
  const q = e.op('Round', [e.div(e.cast(a, 'float64'), e.cast(b, 'float64'))]);
  return e.cast(e.op('Clip', [q, e.scalar(lo, 'float64'), e.scalar(hi, 'float64')]), 'float32');
}

/**
 * Symmetric int8 fake quantization of weight `w` (rank `rank`), per channel of `axis` or per tensor (null).
 * Returns the fake-quantized weight and its scale (keepdims shape per channel, a scalar per tensor; no gradient).
 */
export function emitWeightFakeQuant(
  e: Emitter,
  w: Value,
  rank: number,
  axis: number | null,
): { value: Value; scale: Value } {
  const axes = [...Array(rank).keys()].filter((a) => a !== axis);
  const amax = reduceMax(e, e.op('Abs', [w]), axes, axis !== null);
  const scaled = e.op('Max', [e.div(amax, e.scalar(127)), e.scalar(MIN_SCALE)]);
  const scale = e.op('Where', [e.op('Greater', [amax, e.scalar(0)]), scaled, e.scalar(1)]);
  const wq = e.mul(codesF64(e, w, scale, -127, 127), scale);
  return { value: e.add(w, stopGradient(e, e.sub(wq, w))), scale };
}

/** int32 fake quantization of bias `b` with scale inputScale · weightScale (vector over channels, or scalar). */
export function emitBiasFakeQuant(
  e: Emitter,
  b: Value,
  inputScale: Value,
  weightScale: Value,
  perChannel: boolean,
): Value {
  const ws = perChannel ? e.reshape(weightScale, [-1]) : weightScale;
  const sb = e.mul(stopGradient(e, inputScale), ws);
  const bq = e.mul(codesF64(e, b, sb, -2147483648, 2147483647), sb);
  return e.add(b, stopGradient(e, e.sub(bq, b)));
}

// ------------------------------------------------------------------------------------------------------------
// Insertion
// ------------------------------------------------------------------------------------------------------------

function perSampleElements(v: Value): number {
  const s = v.shape;
  if (!s || s.length === 0) return 1;
  let n = 1;
  for (const d of s.slice(1)) if (typeof d === 'number') n *= d;
  return Math.max(1, n);
}

/**
 * A fake-quant copy of `model`: every tensor `plan` quantizes is replaced by its fake-quantized value, every
 * quantized node reads fake-quantized weights (and biases), with activation scales and zero points from `ranges`
 * (by group root, as the static quantizer's calibration gives them). The model must be in the form the plan was
 * made for (same node labels and tensor names). Untouched: `model`.
 */
export function insertFakeQuant(
  model: Model,
  plan: QuantPlan,
  ranges: Map<string, TensorStats>,
  opts: FakeQuantOptions = {},
): { model: Model; info: FakeQuantInfo } {
  const learnScales = opts.learnScales ?? true;
  const m = model.clone();
  tryInferShapes(m);
  const g = m.graph;
  const opset = m.opset('') ?? 13;
  const e = new Emitter(g, { opset, prefix: 'qat' });
  const byName = g.valuesByName();
  const nodeByLabel = new Map(g.nodes.map((n) => [n.label, n] as [string, Node]));
  const qt = plan.activationType;

  // the model's own trainable parameters (float initializers of rank ≥ 1), before fake-quant constants are added
  const trainable: string[] = [];
  for (const [name, v] of g.initializers) {
    const t = v.const!;
    if (t.dtype === 'float32' && t.dims.length > 0 && v.uses.length > 0) trainable.push(name);
  }

  // one scale per group
  const members = new Map<string, string[]>();
  for (const [t, root] of plan.tensors) {
    const list = members.get(root);
    if (list) list.push(t);
    else members.set(root, [t]);
  }
  const groups: FakeQuantGroup[] = [];
  const groupByRoot = new Map<string, { group: FakeQuantGroup; scale: Value; eff: Value }>();
  for (const [root, tensors] of members) {
    const r = ranges.get(root);
    if (!r) throw new InternalError('qat-range', `No calibrated range for tensor "${root}"`, { value: root });
    const p = rangeParams(r.lo, r.hi, qt);
    const scale = g.addInitializer(`${root}_qat_scale`, Tensor.from('float32', [1], [p.scale]));
    const rootValue = byName.get(root);
    if (!rootValue)
      throw new InternalError('qat-plan', `The plan names tensor "${root}", which the model does not have`, {
        value: root,
      });
    const levels = Math.max(1, QRANGE[qt].max - p.zeroPoint);
    const gradScale = learnScales ? 1 / Math.sqrt(perSampleElements(rootValue) * levels) : 0;
    e.prefix = `qat/${root}`;
    const eff = learnScales ? emitGradScale(e, scale, gradScale) : scale;
    const group: FakeQuantGroup = {
      root,
      tensors,
      scaleName: scale.name,
      zeroPoint: p.zeroPoint,
      qtype: qt,
      initialScale: p.scale,
      gradScale,
    };
    groups.push(group);
    groupByRoot.set(root, { group, scale, eff });
    if (learnScales) trainable.push(scale.name);
  }

  // weights and biases, read before activation uses are rewired
  const weights: FakeQuantWeight[] = [];
  for (const label of plan.nodes) {
    const n = nodeByLabel.get(label);
    if (!n)
      throw new InternalError('qat-plan', `The plan names node "${label}", which the model does not have`, {
        node: label,
      });
    const spec = quantSpec(n);
    if (!spec) continue; // a QLinear op of the placement rules (Add, Mul, Sigmoid, …): activations only
    const wi = spec.weightInputs[0]!;
    const wv = n.inputs[wi];
    const wt = constTensor(wv);
    if (!wv || !wt) continue; // a MatMul of two activations: only its inputs are fake-quantized
    if (n.opType === 'Gemm' && (n.attrFloat('alpha', 1) !== 1 || n.attrFloat('beta', 1) !== 1))
      throw new UnsupportedError(
        'qat-gemm-scale',
        `Gemm "${label}" has alpha/beta ≠ 1: fold them into its weights first (prepareForQat does)`,
        {
          node: label,
        },
      );
    const axis = plan.perChannel ? spec.channelAxis!(n) : null;
    e.prefix = `qat/${label}`;
    const { value: wfq, scale: ws } = emitWeightFakeQuant(e, wv, wt.dims.length, axis);
    n.setInput(wi, wfq);
    const rec: FakeQuantWeight = { node: label, weight: wv.name, axis };
    const inputRoot = plan.tensors.get(n.inputs[spec.activationInputs[0]!]?.name ?? '');
    if (inputRoot) rec.inputRoot = inputRoot;
    const bi = spec.biasInput;
    const bv = bi !== undefined ? n.inputs[bi] : undefined;
    if (bi !== undefined && bv && constTensor(bv)) {
      const grp = inputRoot ? groupByRoot.get(inputRoot) : undefined;
      if (!grp)
        throw new InternalError(
          'qat-bias',
          `Node "${label}": its input has no range group for the bias scale`,
          { node: label },
        );
      n.setInput(bi, emitBiasFakeQuant(e, bv, grp.scale, ws, axis !== null));
      rec.bias = bv.name;
    }
    weights.push(rec);
  }

  // activations
  for (const [name, root] of plan.tensors) {
    const v = byName.get(name);
    if (!v)
      throw new InternalError('qat-plan', `The plan names tensor "${name}", which the model does not have`, {
        value: name,
      });
    const { group, eff } = groupByRoot.get(root)!;
    const uses = [...v.uses];
    e.prefix = `qat/${name}`;
    const y = emitActivationFakeQuant(e, v, eff, group.zeroPoint, group.qtype);
    for (const u of uses) u.node.setInput(u.index, y);
    if (v.isGraphOutput) {
      // the graph output keeps its name, now on the fake-quantized value (as the exporter renames it)
      const outName = v.name;
      v.name = g.uniqueName(`${outName}_float`);
      y.name = outName;
      g.outputs = g.outputs.map((o) => (o === v ? y : o));
    }
  }
  g.toposort();
  tryInferShapes(m);
  return { model: m, info: { plan, groups, weights, trainable, learnScales } };
}
