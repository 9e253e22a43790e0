// Static INT8 quantization in QDQ form.
//
// Placement is chosen so that ONNX Runtime's QDQ fusions turn every quantized node into an integer kernel:
//   - weights: int8, symmetric (zero point 0), per output channel (DequantizeLinear axis 0 for Conv and Gemm with
//     transB = 1, axis 1 for MatMul and Gemm with transB = 0); zero points of 0 also select MLAS's faster
//     "symmetric" convolution kernels;
//   - biases: int32 with scale = input scale · weight scale[c] and zero point 0, so the kernels add them in the
//     accumulator;
//   - activations: one QuantizeLinear → DequantizeLinear pair per tensor, uint8 by default (the layout every ORT
//     build fuses; ORT 1.30 on this AVX-512 VNNI CPU fuses int8 activations as well), calibrated ranges widened
//     to include 0;
//   - the output of a quantized Conv is always quantized (QLinearConv needs it), after a following Relu/Clip when
//     that is its only reader (ORT then drops the Relu/Clip); so is that of a Gemm/MatMul followed by Relu/Clip
//     (else ORT fuses the activation into a float FusedGemm first); any other Gemm/MatMul output is quantized only
//     when every reader takes it quantized, otherwise it stays float (QGemm / MatMulIntegerToFloat with float
//     output — e.g. the logits);
//   - data-movement ops between quantized tensors (MaxPool, Flatten, Reshape, Transpose, Squeeze, Unsqueeze) get
//     Q/DQ on both sides with the same scale and zero point, so ORT drops the pair and runs them on uint8; after a
//     float producer they stay float and the Q comes after them.
// And for speed (BENCHMARKS.md, "Placement choices"): Convs with fewer than 4 input channels (image stems) stay
// float, with a following Relu → MaxPool reordered so the pool stays float too; other Convs whose input channels
// are not a multiple of 4 read a zero-padded input so that MLAS's symmetric int8 kernel takes them.
// `prepareStatic` makes those rewrites, `planStatic` decides, `calibrate` measures the ranges of the planned
// tensors, `applyStatic` rewrites a clone.
import type { Note } from '../../util/note.js';
import { InputError, InternalError, UnsupportedError } from '../../errors.js';
import type { Model, Node, Tensor, Value } from '../../ir/index.js';
import { A, Tensor as T, cleanup } from '../../ir/index.js';
import { defineModelPass } from '../manager.js';
import { lookup } from '../../ops/registry.js';
import { constTensor, f64, isOnnxDomain, soleReader, tryInferShapes } from '../util.js';
import {
  calibrate,
  type CalibrationOptions,
  type CalibrationResult,
  type Feeds,
  type TensorStats,
} from './calibrate.js';
import { quantizeBias, quantizeWeightInt8, rangeParams, type QParams, type QType } from './numeric.js';
import { quantizeSubgraphsStatic } from './subgraphs.js';
import { checkFilter, filterFor, type NodeFilter } from './select.js';
import { FUSED_ACTIVATIONS, PASS_THROUGH_OPS, isPassThrough, quantSpec, type QuantOpSpec } from './table.js';
import {
  rulesOf,
  type PlacementRules,
  affineAsConv,
  padDepthwise,
  stemDepthwise,
  decomposeHardSwish,
  foldHardSigmoid,
  qlinearNodes,
  qlinearSpec,
  quantizeConstantOperands,
} from './placement/index.js';

export interface StaticPlacementOptions extends NodeFilter {
  /** Activation element type (default uint8; int8 fuses as well with ORT 1.30 on this CPU, see BENCHMARKS.md). */
  activationType?: QType;
  /** Per-channel weight scales (default true; per-tensor before opset 13). */
  perChannel?: boolean;
  /** Also quantize MatMuls whose two inputs are activations (attention scores; default false). */
  matmulActivations?: boolean;
  /** Q/DQ around MaxPool/Flatten/Reshape/… between quantized tensors (default true). */
  passThrough?: boolean;
  /** Quantize after a Relu/Clip that follows a quantized op, so ORT fuses it (default true). */
  fuseActivations?: boolean;
  /**
   * Pad the input channels of Convs to a multiple of this (zero weights, a Pad on the float input) so that MLAS's
   * symmetric int8 convolution kernel, which needs input channels divisible by 4, takes them (default 4; 1 = off).
   */
  padChannels?: number;
  /**
   * Keep float the Convs with fewer than 4 input channels (image stems: their int8 kernels are slower than ORT's
   * float NCHWc ones), and reorder a Relu/Clip → MaxPool after them into MaxPool → Relu/Clip so that the pool stays
   * float and the quantization comes after it (default true).
   */
  floatStem?: boolean;
  /**
   * The per-architecture placement rules of src/passes/quantize/placement (ORT's com.microsoft QLinear* ops for
   * Add/Mul/Sigmoid/Concat/pooling, …; default true: every rule; an object turns single rules off, for
   * measuring them). false gives the placement of before them (Conv/Gemm/MatMul
   * and data movement only), for comparisons.
   */
  placement?: boolean | PlacementRules;
  /** Nodes prepareStatic kept float on its own (stems): reported as such, not as the user's --exclude. */
  keptFloat?: readonly string[];
  /**
   * Tensor → a value below which its readers ignore it (set by prepareStatic's rewrites, see `affineAsConv`): the
   * quantized range of a tensor that is its own range group starts there, not at the calibrated minimum.
   */
  rangeFloors?: ReadonlyMap<string, number>;
}

export interface StaticQuantOptions extends StaticPlacementOptions, CalibrationOptions {
  /** Calibration batches (feeds of the model's inputs). Needed unless `ranges` covers every planned tensor. */
  calibration?: readonly Feeds[];
  /** Ranges measured before (e.g. shared by the sensitivity analysis); missing tensors are calibrated. */
  ranges?: Map<string, TensorStats>;
}

export interface SkippedNode {
  node: string;
  opType: string;
  reason: string;
}

/** Candidates a quantizer kept float, as structured `kept` notes (the same text as its "Kept … float" lines). */
export function keptFindings(skipped: readonly SkippedNode[], rule: string): Note[] {
  return skipped.map((s) => ({
    kind: 'kept' as const,
    text: `Kept ${s.opType} "${s.node}" float: ${s.reason}`,
    node: s.node,
    opType: s.opType,
    rule,
    reason: s.reason,
  }));
}

export interface QuantPlan {
  /** Names (labels) of the compute nodes quantized. */
  nodes: string[];
  skipped: SkippedNode[];
  /** Every float tensor that gets a Q/DQ pair → the tensor whose range (and scale) it shares. */
  tensors: Map<string, string>;
  /** Tensors whose ranges are calibrated (the group roots). */
  roots: string[];
  /** Quantized outputs that are graph outputs: the DQ output takes over the name. */
  renamedOutputs: string[];
  activationType: QType;
  perChannel: boolean;
  /** Root tensor → the floor of its quantized range (see `rangeFloors`). */
  floors?: Record<string, number>;
  /**
   * Mul/Div by a positive constant between quantized tensors (a `quantScale` registry entry; HardSwish's ×1/6):
   * the node is dropped and its output is the DequantizeLinear of `input`'s quantized value with scale × factor.
   */
  scaleFolds?: { node: string; input: string; output: string; factor: number }[];
}

export interface StaticResult {
  model: Model;
  plan: QuantPlan;
  calibration: CalibrationResult | undefined;
  ranges: Map<string, TensorStats>;
  notes: string[];
}

function activationInputs(n: Node, spec: QuantOpSpec | undefined, matmulActivations: boolean): number[] {
  if (!spec) return (qlinearSpec(n)?.inputs ?? []).filter((i) => !constTensor(n.inputs[i]));
  if (n.opType === 'MatMul' && !constTensor(n.inputs[1])) return matmulActivations ? [0, 1] : [];
  return spec.activationInputs;
}

/** Why node `n` cannot be quantized (undefined when it can). */
function whyNot(
  n: Node,
  spec: QuantOpSpec,
  o: Required<Pick<StaticPlacementOptions, 'matmulActivations'>>,
): string | undefined {
  for (const i of activationInputs(n, spec, o.matmulActivations)) {
    const v = n.inputs[i];
    if (!v) return `input ${i} is missing`;
    if (constTensor(v)) return `input ${i} "${v.name}" is a constant`;
    if (v.dtype && v.dtype !== 'float32') return `input ${i} "${v.name}" is ${v.dtype}, not float32`;
  }
  if (n.opType === 'MatMul' && !constTensor(n.inputs[1]) && !o.matmulActivations)
    return 'both inputs are activations (enable MatMul activation quantization to quantize it)';
  const w = constTensor(n.inputs[1]);
  if (n.opType !== 'MatMul' || w) {
    if (!w) return `its weight "${n.inputs[1]?.name}" is not a constant`;
    if (w.dtype !== 'float32') return `its weight is ${w.dtype}, not float32`;
    if (n.opType !== 'Conv' && w.dims.length !== 2) return `its weight has rank ${w.dims.length}, not 2`;
  }
  if (n.opType === 'Gemm') {
    if (n.attrInt('transA', 0)) return 'transA = 1';
    const c = n.inputs[2];
    if (c) {
      const ct = constTensor(c);
      if (!ct) return `its bias "${c.name}" is not a constant`;
      const N = n.attrInt('transB', 0) ? w!.dims[0]! : w!.dims[1]!;
      if (ct.numel !== N || (ct.dims.length === 2 && ct.dims[0] !== 1) || ct.dims.length > 2)
        return `its bias has shape [${ct.dims}], not [${N}]`;
    }
  }
  if (n.opType === 'Conv') {
    const b = n.inputs[2];
    if (b && !constTensor(b)) return `its bias "${b.name}" is not a constant`;
  }
  if (n.outputs[0]?.dtype && n.outputs[0].dtype !== 'float32') return `its output is ${n.outputs[0].dtype}`;
  return undefined;
}

/** Data-movement ops made pass-through by issue 17's placement (`placement: false` leaves them float). */
const NEW_PASS_THROUGH: ReadonlySet<string> = new Set(['Slice', 'Resize']);

function isFusableActivation(r: Node): boolean {
  if (!isOnnxDomain(r) || !FUSED_ACTIVATIONS.has(r.opType)) return false;
  if (r.opType === 'Relu') return true;
  // Clip(x, 0, max): the quantized range [0, calibrated max] lies inside [0, max], so ORT can drop the Clip
  const lo = r.inputs[1] ? constTensor(r.inputs[1]) : undefined;
  if (r.inputs[1]) return !!lo && f64(lo)[0] === 0;
  return r.attrFloat('min') === 0;
}

/** Decide which nodes and tensors to quantize (the model needs inferred types; see tryInferShapes). */
export function planStatic(model: Model, opts: StaticPlacementOptions = {}): QuantPlan {
  const g = model.graph;
  const matmulActivations = opts.matmulActivations ?? false;
  const passThrough = opts.passThrough ?? true;
  const fuseActivations = opts.fuseActivations ?? true;
  const opset = model.opset('') ?? 13;
  if (opset < 10)
    throw new UnsupportedError(
      'quant-opset',
      `Static quantization needs ai.onnx opset ≥ 10 (QuantizeLinear): the model imports opset ${opset} (quantize() and \`edgefit quantize\` upgrade it first; so does \`edgefit convert --opset 13\`)`,
      {},
    );
  const perChannel = (opts.perChannel ?? true) && opset >= 13;
  checkFilter(model, opts);
  const ok = filterFor(model, opts);
  const nodes: Node[] = [];
  const skipped: SkippedNode[] = [];
  for (const n of g.nodes) {
    const spec = quantSpec(n);
    if (!spec) continue;
    if (!ok(n)) {
      skipped.push({
        node: n.label,
        opType: n.opType,
        reason: opts.keptFloat?.includes(n.name)
          ? "kept float: an image stem (fewer than 4 input channels) or the depthwise Conv right after it, where ORT's float kernel is faster"
          : 'excluded (--exclude/--include)',
      });
      continue;
    }
    const why = whyNot(n, spec, { matmulActivations });
    if (why) skipped.push({ node: n.label, opType: n.opType, reason: why });
    else nodes.push(n);
  }
  const rules = rulesOf(opts.placement);
  const passes = (p: Node) =>
    passThrough && isPassThrough(p) && (rules.passThrough || !NEW_PASS_THROUGH.has(p.opType));
  if (rules.qlinear.length)
    nodes.push(
      ...qlinearNodes(model, nodes, (n) => ok(n) && rules.qlinear.includes(n.opType), {
        inputsOf: (n) => activationInputs(n, quantSpec(n), matmulActivations),
        throughData: (v) =>
          v.producer && passes(v.producer) && v.producerIndex === 0
            ? (v.producer.inputs[PASS_THROUGH_OPS[v.producer.opType]!] ?? undefined)
            : undefined,
        fusedInput: (v) =>
          v.producer && isFusableActivation(v.producer) ? (v.producer.inputs[0] ?? undefined) : undefined,
        fusedOutput: (v) => {
          const r = fuseActivations ? soleReader(v) : undefined;
          return r && isFusableActivation(r) ? (r.outputs[0] ?? undefined) : undefined;
        },
      }),
    );
  const qnodes = new Set(nodes);
  const takesQuantized = (u: { node: Node; index: number }, depth = 0): boolean => {
    if (qnodes.has(u.node))
      return activationInputs(u.node, quantSpec(u.node), matmulActivations).includes(u.index);
    if (passes(u.node) && depth < 8 && u.index === PASS_THROUGH_OPS[u.node.opType]) {
      const o = u.node.outputs[0];
      return (
        !!o && !o.isGraphOutput && o.uses.length > 0 && o.uses.every((x) => takesQuantized(x, depth + 1))
      );
    }
    return false;
  };

  const parent = new Map<Value, Value | null>();
  const renamed = new Set<Value>();
  const add = (v: Value) => {
    if (!parent.has(v)) parent.set(v, null);
  };
  for (const n of nodes)
    for (const i of activationInputs(n, quantSpec(n), matmulActivations)) add(n.input(i));
  for (const n of nodes) {
    const y = n.output(0);
    let z = y;
    const r = fuseActivations ? soleReader(y) : undefined;
    if (r && isFusableActivation(r) && r.outputs[0]) z = r.outputs[0];
    const readersWant = z.uses.length > 0 && z.uses.every((u) => takesQuantized(u));
    // a Conv needs a quantized output to become QLinearConv, a QLinear-able op (placement/) to become its QLinear
    // op; so does a Gemm/MatMul followed by Relu/Clip (ORT would
    // otherwise fuse the activation into a float FusedGemm/FusedMatMul first)
    if (n.opType === 'Conv' || !quantSpec(n) || (z !== y && !z.isGraphOutput)) {
      add(z);
      if (z.isGraphOutput) renamed.add(z);
    } else if (readersWant && !z.isGraphOutput) add(z);
  }
  // pass-through ops: when the input of a data-movement op is already quantized upstream (a chain of such ops back
  // to a quantized tensor), its output shares that tensor's parameters, so DQ → op → Q collapses and the op runs
  // on uint8. Otherwise the op stays float and the quantization comes after it (ORT's uint8 NCHW MaxPool is slow).
  const dataInput = (p: Node) => p.inputs[PASS_THROUGH_OPS[p.opType]!];
  const quantizedUpstream = (u: Value): boolean => {
    for (let v: Value | null | undefined = u, k = 0; v && k < 16; k++) {
      if (parent.has(v)) return true;
      const p: Node | null = v.producer;
      if (!p || !passes(p) || v.producerIndex !== 0) return false;
      v = dataInput(p);
    }
    return false;
  };
  if (passThrough) {
    for (let changed = true; changed;) {
      changed = false;
      for (const t of [...parent.keys()]) {
        const p = t.producer;
        if (!p || !passes(p) || t.producerIndex !== 0 || parent.get(t)) continue;
        const u = dataInput(p);
        if (!u || constTensor(u) || (u.dtype && u.dtype !== 'float32') || !quantizedUpstream(u)) continue;
        parent.set(t, u);
        add(u);
        changed = true;
      }
    }
  }
  // Mul/Div by a positive constant whose input and output are both quantized: the constant goes into a DQ scale
  const scaleFolds: NonNullable<QuantPlan['scaleFolds']> = [];
  if (rules.scaleFold) {
    const children = new Set([...parent.values()].filter((p): p is Value => !!p));
    for (const n of [...g.nodes]) {
      const f = isOnnxDomain(n) && ok(n) ? lookup(n.opType, '', undefined)?.quantScale?.(n) : undefined;
      const v = f && n.inputs[f.input];
      const u = n.outputs[0];
      if (!f || !v || !u || n.outputs.length !== 1 || u.isGraphOutput || children.has(u)) continue;
      if (!parent.has(v) || !parent.has(u) || parent.get(u)) continue;
      parent.delete(u);
      qnodes.delete(n);
      const k = nodes.indexOf(n);
      if (k >= 0) nodes.splice(k, 1);
      scaleFolds.push({ node: n.label, input: v.name, output: u.name, factor: f.factor });
    }
  }
  const rootOf = (v: Value): Value => {
    let r = v;
    for (let k = 0; k < 64; k++) {
      const p = parent.get(r);
      if (!p) break;
      r = p;
    }
    return r;
  };
  const tensors = new Map<string, string>();
  const roots = new Set<string>();
  const members = new Map<string, number>();
  for (const v of parent.keys()) {
    const r = rootOf(v);
    tensors.set(v.name, r.name);
    roots.add(r.name);
    members.set(r.name, (members.get(r.name) ?? 0) + 1);
  }
  const floors: Record<string, number> = {};
  for (const [t, f] of opts.rangeFloors ?? []) if (roots.has(t) && members.get(t) === 1) floors[t] = f;
  return {
    nodes: nodes.map((n) => n.label),
    skipped,
    tensors,
    roots: [...roots],
    renamedOutputs: [...renamed].map((v) => v.name),
    activationType: opts.activationType ?? 'uint8',
    perChannel,
    ...(Object.keys(floors).length ? { floors } : {}),
    ...(scaleFolds.length ? { scaleFolds } : {}),
  };
}

/** Quantize `model` statically: plan, calibrate the planned tensors (unless given), rewrite a clone in QDQ form. */
export async function quantizeStatic(model: Model, options: StaticQuantOptions = {}): Promise<StaticResult> {
  const prep = prepareStatic(model, options);
  const m = prep.model;
  const opts = prep.options;
  const plan = planStatic(m, opts);
  const ranges = new Map(opts.ranges ?? []);
  const missing = plan.roots.filter((r) => !ranges.has(r));
  let calibration: CalibrationResult | undefined;
  if (missing.length) {
    if (!opts.calibration?.length)
      throw new InputError('calib-missing', 'Static quantization needs calibration data (--calib-data)', {
        value: 'calib-data',
      });
    calibration = await calibrate(m, missing, opts.calibration, opts);
    for (const [k, v] of calibration.stats) ranges.set(k, v);
  }
  const { model: main, notes } = applyStatic(m, plan, ranges);
  // Conv/MatMul/Gemm inside If/Loop/Scan subgraphs: local QDQ, calibrated through the branches taken
  const sub = await quantizeSubgraphsStatic(main, { ...opts, calibration: opts.calibration });
  plan.nodes.push(...sub.nodes);
  plan.skipped.push(...sub.skipped);
  return { model: sub.model, plan, calibration, ranges, notes: [...prep.notes, ...notes, ...sub.notes] };
}

/**
 * The rewrites static quantization makes before planning, on a clone: names for unnamed nodes (plans and
 * include/exclude lists refer to nodes by name), float stems (see `floatStem`) and padded input channels (see
 * `padChannels`). Returns the model and the options to plan it with (stems added to `exclude`).
 */
export function prepareStatic<O extends StaticPlacementOptions>(
  model: Model,
  opts: O,
): { model: Model; options: O; notes: string[] } {
  const m = model.clone();
  const g = m.graph;
  g.nodes.forEach((n, i) => {
    if (!n.name) n.name = g.uniqueName(`${n.opType}_${i}`);
  });
  tryInferShapes(m);
  checkFilter(m, opts);
  const notes: string[] = [];
  const exclude = [...(opts.exclude ?? [])];
  const rules = rulesOf(opts.placement);
  if (opts.floatStem ?? true) {
    const ok = filterFor(m, opts);
    const stems: string[] = [];
    for (const n of g.nodes) {
      if (!isOnnxDomain(n) || n.opType !== 'Conv' || !ok(n)) continue;
      const w = constTensor(n.inputs[1]);
      if (!w || w.dims.length < 3 || whyNot(n, quantSpec(n)!, { matmulActivations: false })) continue;
      const cin = w.dims[1]! * n.attrInt('group', 1);
      if (cin >= 4) continue;
      stems.push(n.name);
      exclude.push(`node:${n.name}`);
      // Conv → Relu/Clip → MaxPool  ⇒  Conv → MaxPool → Relu/Clip (the same values: both are monotone)
      const r = soleReader(n.output(0));
      if (!r || !isFusableActivation(r) || !r.outputs[0]) continue;
      const p = soleReader(r.outputs[0]);
      if (
        !p ||
        !isOnnxDomain(p) ||
        p.opType !== 'MaxPool' ||
        p.outputs.length > 1 ||
        p.outputs[0]!.isGraphOutput
      )
        continue;
      const pooled = p.output(0);
      const act = r.outputs[0];
      p.setInput(0, n.output(0));
      pooled.replaceAllUsesWith(act);
      r.setInput(0, pooled);
      act.type = pooled.type ? { ...pooled.type } : act.type;
      // names keep their meaning: the activation now computes what the pool's output was (per-layer SQNR matches
      // tensors by name); the pool's output before the activation gets a new name
      const pooledName = pooled.name;
      pooled.name = g.uniqueName(`${pooledName}_before_${r.opType}`);
      act.name = pooledName;
      notes.push(`Reordered ${r.opType} "${r.name}" after MaxPool "${p.name}" (float stem)`);
    }
    if (stems.length) {
      g.toposort();
      notes.push(
        `Kept float the stem Conv(s) ${stems.join(', ')} (fewer than 4 input channels: ORT's float kernels are faster there)`,
      );
    }
    const dw = rules.stemDepthwise
      ? stems.flatMap((s) => stemDepthwise(g.nodes.find((n) => n.name === s)!)).filter(ok)
      : [];
    for (const n of dw) exclude.push(`node:${n.name}`);
    if (dw.length)
      notes.push(
        `Kept float the depthwise Conv(s) ${dw.map((n) => n.name).join(', ')} after the float stem (fewer than 64 channels: ORT's integer depthwise kernel is slower there)`,
      );
  }
  const rangeFloors = new Map(opts.rangeFloors ?? []);
  {
    const folded = rules.hardSigmoid ? foldHardSigmoid(m, filterFor(m, { ...opts, exclude })) : [];
    const hardSwish = rules.hardSwish ? decomposeHardSwish(m, filterFor(m, { ...opts, exclude })) : [];
    const { done: affine, floors } = rules.affineConv
      ? affineAsConv(m, filterFor(m, { ...opts, exclude }))
      : { done: [], floors: new Map<string, number>() };
    for (const [t, f] of floors) rangeFloors.set(t, f);
    if (affine.length) {
      tryInferShapes(m);
      notes.push(
        `Wrote ${affine.length} un-folded BatchNormalization(s) (${affine.slice(0, 3).join(', ')}${affine.length > 3 ? ', …' : ''}) as depthwise 1×1 Convs (QLinearConv with exact per-channel weights instead of a float island)`,
      );
    }
    if (hardSwish.length) {
      tryInferShapes(m);
      notes.push(
        `Wrote HardSwish ${hardSwish.join(', ')} as x · (Clip(x + 3, 0, 6) · 1/6) (QLinearAdd → QLinearMul ×2 instead of a float island)`,
      );
    }
    if (folded.length) {
      tryInferShapes(m);
      notes.push(
        `Folded HardSigmoid ${folded.join(', ')} into the Conv before it (Clip(0, 1) after it, absorbed by the quantization)`,
      );
    }
  }
  if (rules.padDepthwise) {
    const padded = padDepthwise(m, filterFor(m, { ...opts, exclude }));
    if (padded.length) {
      tryInferShapes(m);
      notes.push(
        `Padded the channels of depthwise Conv(s) ${padded.join(', ')} to a multiple of 16, with their neighbouring Convs (MLAS's symmetric depthwise kernel)`,
      );
    }
  }
  const keptFloat = exclude
    .filter((e) => !(opts.exclude ?? []).includes(e))
    .map((e) => e.slice('node:'.length));
  const options = { ...opts, exclude, keptFloat, rangeFloors, floatStem: false, padChannels: 1 } as O;
  const padded = padConvChannels(m, { ...opts, exclude });
  if (padded.length) {
    tryInferShapes(m);
    notes.push(
      `Padded the input channels of ${padded.join(', ')} to a multiple of ${opts.padChannels ?? 4} (MLAS's symmetric int8 convolution)`,
    );
  }
  return { model: m, options, notes };
}

/**
 * In place: Convs (group 1, constant float32 weight) that the plan would quantize and whose input channels are not
 * a multiple of `padChannels` read a zero-padded input (a Pad on the channel axis) through zero-padded weights —
 * the same results, and MLAS's fast symmetric int8 kernel. Returns the labels of the Convs changed.
 */
export function padConvChannels(model: Model, opts: StaticPlacementOptions): string[] {
  const multiple = opts.padChannels ?? 4;
  if (multiple <= 1) return [];
  const opset = model.opset('') ?? 13;
  const g = model.graph;
  const ok = filterFor(model, opts);
  const changed: string[] = [];
  for (const n of [...g.nodes]) {
    if (!isOnnxDomain(n) || n.opType !== 'Conv' || n.attrInt('group', 1) !== 1 || !ok(n)) continue;
    const spec = quantSpec(n)!;
    if (whyNot(n, spec, { matmulActivations: false })) continue;
    const w = constTensor(n.inputs[1])!;
    const [oc, c, ...k] = w.dims as number[];
    if (c! % multiple === 0) continue;
    const x = n.input(0);
    const rank = x.shape?.length ?? w.dims.length;
    const c2 = Math.ceil(c! / multiple) * multiple;
    const ks = k.reduce((a, b) => a * b, 1);
    const src = f64(w);
    const dst = new Float32Array(oc! * c2 * ks);
    for (let o = 0; o < oc!; o++)
      for (let i = 0; i < c!; i++)
        for (let j = 0; j < ks; j++) dst[(o * c2 + i) * ks + j] = src[(o * c! + i) * ks + j]!;
    const wv = g.addInitializer(`${n.inputs[1]!.name}_padded`, T.from('float32', [oc!, c2, ...k], dst));
    const pads = new Array<number>(2 * rank).fill(0);
    pads[rank + 1] = c2 - c!;
    const pad =
      opset >= 11
        ? g.addNode({
            opType: 'Pad',
            name: g.uniqueName(`${n.label}_pad_channels`),
            inputs: [x, g.addInitializer(`${n.label}_channel_pads`, T.from('int64', [pads.length], pads))],
            outputs: [`${x.name}_padded`],
          })
        : g.addNode({
            opType: 'Pad',
            name: g.uniqueName(`${n.label}_pad_channels`),
            inputs: [x],
            outputs: [`${x.name}_padded`],
            attrs: { pads: A.ints(pads) },
          });
    pad.output(0).type = {
      kind: 'tensor',
      dtype: 'float32',
      shape: x.shape ? x.shape.map((d, i) => (i === 1 ? c2 : d)) : null,
    };
    n.setInput(0, pad.output(0));
    n.setInput(1, wv);
    changed.push(n.label);
  }
  if (changed.length) {
    cleanup(model);
  }
  return changed;
}

/** Rewrite a clone of `model` following `plan`, with activation ranges `ranges` (by root tensor name). */
export function applyStatic(
  model: Model,
  plan: QuantPlan,
  ranges: Map<string, TensorStats>,
): { model: Model; notes: string[] } {
  const m = model.clone();
  tryInferShapes(m);
  const g = m.graph;
  const byName = g.valuesByName();
  const nodeByLabel = new Map(g.nodes.map((n) => [n.label, n] as [string, Node]));
  const notes: string[] = [];
  const qt = plan.activationType;

  // one scale / zero-point pair per group
  const groupParams = new Map<string, { p: QParams; scale: Value; zp: Value }>();
  const paramsOf = (root: string) => {
    let gp = groupParams.get(root);
    if (!gp) {
      const s = ranges.get(root);
      if (!s)
        throw new InternalError('calib-range', `No calibrated range for tensor "${root}"`, { value: root });
      const floor = plan.floors?.[root];
      const p = rangeParams(floor !== undefined ? Math.max(s.lo, Math.min(floor, s.hi)) : s.lo, s.hi, qt);
      const scale = g.addInitializer(`${root}_scale`, T.scalar('float32', p.scale));
      const zp = g.addInitializer(`${root}_zero_point`, T.scalar(qt, p.zeroPoint));
      gp = { p, scale, zp };
      groupParams.set(root, gp);
    }
    return gp;
  };

  // the range group of each quantized node's first activation input (its bias scale depends on it), read before
  // the inputs are rewired to the dequantized values
  const inputRoot = new Map<string, string | undefined>();
  for (const label of plan.nodes) {
    const n = nodeByLabel.get(label);
    const spec = n && quantSpec(n);
    if (n && spec) inputRoot.set(label, plan.tensors.get(n.inputs[spec.activationInputs[0]!]?.name ?? ''));
  }

  // activations
  const renamed = new Set(plan.renamedOutputs);
  const quantizedOf = new Map<string, { q: Value; scale: number; zp: Value }>();
  for (const [name, root] of plan.tensors) {
    const v = byName.get(name);
    if (!v)
      throw new InternalError(
        'quant-plan',
        `The plan names tensor "${name}", which the model does not have`,
        {
          value: name,
        },
      );
    const { scale, zp } = paramsOf(root);
    const q = g.addNode({
      opType: 'QuantizeLinear',
      name: `${name}_QuantizeLinear`,
      inputs: [v, scale, zp],
      outputs: [`${name}_quantized`],
    });
    const d = g.addNode({
      opType: 'DequantizeLinear',
      name: `${name}_DequantizeLinear`,
      inputs: [q.output(0), scale, zp],
      outputs: [`${name}_dequantized`],
    });
    q.output(0).type = { kind: 'tensor', dtype: qt, shape: v.shape ? [...v.shape] : null };
    d.output(0).type = { kind: 'tensor', dtype: 'float32', shape: v.shape ? [...v.shape] : null };
    for (const u of [...v.uses]) if (u.node !== q) u.node.setInput(u.index, d.output(0));
    quantizedOf.set(name, { q: q.output(0), scale: paramsOf(root).p.scale, zp });
    if (renamed.has(name) && v.isGraphOutput) {
      // the graph output keeps its name, now on the dequantized value, so the producer can fuse with its Q
      const dv = d.output(0);
      const outName = v.name;
      v.name = g.uniqueName(`${outName}_float`);
      dv.name = outName;
      g.outputs = g.outputs.map((o) => (o === v ? dv : o));
    }
  }

  for (const f of plan.scaleFolds ?? []) {
    const n = nodeByLabel.get(f.node);
    const x = quantizedOf.get(f.input);
    if (!n || !x)
      throw new InternalError('quant-plan', `The plan folds "${f.node}" into a DQ scale, but it is missing`, {
        node: f.node,
      });
    const s = g.addInitializer(g.uniqueName(`${f.output}_scale`), T.scalar('float32', x.scale * f.factor));
    const d = g.addNode({
      opType: 'DequantizeLinear',
      name: g.uniqueName(`${f.output}_DequantizeLinear`),
      inputs: [x.q, s, x.zp],
      outputs: [g.uniqueName(`${f.output}_dequantized`)],
    });
    const u = n.output(0);
    d.output(0).type = u.type ? { ...u.type } : u.type;
    u.replaceAllUsesWith(d.output(0));
    g.removeNode(n, true);
    notes.push(
      `Folded ${n.opType} "${f.node}" (× ${+f.factor.toPrecision(6)}) into the scale of a DequantizeLinear`,
    );
  }

  // weights and biases
  for (const label of plan.nodes) {
    const n = nodeByLabel.get(label);
    if (!n)
      throw new InternalError('quant-plan', `The plan names node "${label}", which the model does not have`, {
        node: label,
      });
    const spec = quantSpec(n);
    if (!spec) {
      // a QLinear op (placement/): a scalar constant operand gets its own exact uint8 value
      quantizeConstantOperands(n, qt);
      continue;
    }
    const wi = spec.weightInputs[0]!;
    const wv = n.inputs[wi];
    const w = constTensor(wv);
    if (!w) continue; // a MatMul of two activations
    let wt: Tensor = w;
    if (n.opType === 'Gemm') {
      const alpha = n.attrFloat('alpha', 1);
      if (alpha !== 1) {
        wt = T.from(
          'float32',
          w.dims,
          Float32Array.from(f64(w), (x) => x * alpha),
        );
        n.setAttr('alpha', undefined);
      }
    }
    const axis = plan.perChannel ? spec.channelAxis!(n) : null;
    const qw = quantizeWeightInt8(wt, axis);
    const C = qw.scales.length;
    const base = wv!.name;
    const wq = g.addInitializer(
      `${base}_quantized`,
      new T('int8', wt.dims, new Uint8Array(qw.q.buffer, qw.q.byteOffset, qw.q.byteLength)),
    );
    const ws = g.addInitializer(
      `${base}_scale`,
      axis === null ? T.scalar('float32', qw.scales[0]!) : T.from('float32', [C], qw.scales),
    );
    const wz = g.addInitializer(
      `${base}_zero_point`,
      axis === null ? T.scalar('int8', 0) : T.from('int8', [C], new Int8Array(C)),
    );
    const dw = g.addNode({
      opType: 'DequantizeLinear',
      name: `${base}_DequantizeLinear_${n.label}`,
      inputs: [wq, ws, wz],
      outputs: [`${base}_dequantized`],
      attrs: axis === null ? {} : { axis: A.int(axis) },
    });
    dw.output(0).type = { kind: 'tensor', dtype: 'float32', shape: [...wt.dims] };
    n.setInput(wi, dw.output(0));

    const bi = spec.biasInput;
    const bv = bi !== undefined ? n.inputs[bi] : undefined;
    const b = constTensor(bv);
    if (bi !== undefined && bv && b) {
      const root = inputRoot.get(label);
      if (!root) {
        notes.push(`Kept the bias of ${n.opType} "${n.label}" float: its input is not quantized`);
        continue;
      }
      let bt: Tensor = b;
      if (n.opType === 'Gemm') {
        const beta = n.attrFloat('beta', 1);
        const N = b.numel;
        bt = T.from(
          'float32',
          [N],
          Float32Array.from(f64(b), (x) => x * beta),
        );
        n.setAttr('beta', undefined);
      }
      const sx = paramsOf(root).p.scale;
      const qb = quantizeBias(bt, sx, qw.scales);
      const bq = g.addInitializer(`${bv.name}_quantized`, T.from('int32', [qb.q.length], qb.q));
      const perTensorBias = axis === null;
      const bs = g.addInitializer(
        `${bv.name}_scale`,
        perTensorBias ? T.scalar('float32', qb.scales[0]!) : T.from('float32', [qb.scales.length], qb.scales),
      );
      const bz = g.addInitializer(
        `${bv.name}_zero_point`,
        perTensorBias ? T.scalar('int32', 0) : T.from('int32', [qb.q.length], new Int32Array(qb.q.length)),
      );
      const db = g.addNode({
        opType: 'DequantizeLinear',
        name: `${bv.name}_DequantizeLinear_${n.label}`,
        inputs: [bq, bs, bz],
        outputs: [`${bv.name}_dequantized`],
        attrs: perTensorBias ? {} : { axis: A.int(0) },
      });
      db.output(0).type = { kind: 'tensor', dtype: 'float32', shape: [qb.q.length] };
      n.setInput(bi, db.output(0));
    }
  }
  cleanup(m);
  notes.push(
    `Quantized ${plan.nodes.length} node(s) (${plan.perChannel ? 'per-channel' : 'per-tensor'} int8 weights, ${qt} activations), ${plan.tensors.size} activation tensor(s) in ${plan.roots.length} range group(s)`,
  );
  for (const s of plan.skipped) notes.push(`Kept ${s.opType} "${s.node}" float: ${s.reason}`);
  return { model: m, notes };
}

/** `quantize-static` as a pass (for pipelines; needs `calibration` or `ranges` in its options). */
export const staticQuantPass = defineModelPass<StaticQuantOptions>(
  'quantize-static',
  'Static INT8 quantization in QDQ form (calibrated uint8 activations, per-channel int8 weights, int32 biases)',
  async (model, options) => {
    const r = await quantizeStatic(model, options);
    return {
      model: r.model,
      changed: r.plan.nodes.length > 0,
      notes: r.notes,
      findings: keptFindings(r.plan.skipped, 'quantize-static'),
      counts: { 'quantize-static': r.plan.nodes.length },
    };
  },
  {},
);
