// Placement rules of static INT8 for the architectures people deploy (issue 17; BENCHMARKS.md, "INT8 on mobile
// architectures"): they keep ONNX Runtime in integer kernels between the quantized Convs/Gemms, where the base
// placement (static.ts) leaves float islands (DQ → float op → Q).
//   - QLinear ops: an op with a `quantQLinear` registry entry (Add, Mul, Sigmoid, LeakyRelu, AveragePool,
//     GlobalAveragePool, Concat → ORT's com.microsoft QLinearAdd, QLinearMul, …) is quantized — Q/DQ on its inputs
//     and its output, which ORT fuses into the integer kernel — when at least one of its inputs is quantized anyway
//     (the output of a quantized node, possibly through data-movement ops, or already the input of a quantized
//     node) and every reader of its output (after a Relu/Clip ORT folds) takes it quantized. So residual Adds, SiLU's Sigmoid and Mul, squeeze-excitation's pool and Mul, DenseNet's and
//     ShuffleNet's Concats join the integer region; an Add between two float ops stays float.
//   - HardSigmoid after a Conv (the squeeze-excitation gate of MobileNetV3 and the OCR detectors built on it) is
//     folded into the Conv's weights and bias (αW, αb + β) and becomes Clip(0, 1), which ORT drops into the
//     quantization of the Conv's output: the gate is computed by the QLinearConv and multiplied by QLinearMul.
// Each rule was measured on the torchvision exports and kept because it wins there (bench/quantize_arch.ts).
import type { Model, Node, Value } from '../../../ir/index.js';
import { A, Tensor as T } from '../../../ir/index.js';
import { allEntries, lookup } from '../../../ops/registry.js';
import { constTensor, f64, isOnnxDomain, isOp, soleReader } from '../../util.js';
import { quantizeValue, rangeParams, type QType } from '../numeric.js';

/** Which placement rules are on (the static quantizer's `placement` option; each was measured on its own). */
export interface PlacementRules {
  /** Op types quantized as their ORT QLinear op (default every op with a `quantQLinear` registry entry). */
  qlinear?: string[];
  /** Slice and Resize between quantized tensors run on uint8 (default true). */
  passThrough?: boolean;
  /** Conv → HardSigmoid folded into Conv → Clip(0, 1) (default true). */
  hardSigmoid?: boolean;
  /** HardSwish after a Conv written as x · (Clip(x + 3, 0, 6) · 1/6) (default true). */
  hardSwish?: boolean;
  /** Un-folded BatchNormalization (per-channel affine) as a depthwise 1×1 Conv → QLinearConv (default true). */
  affineConv?: boolean;
  /**
   * The depthwise Conv (< 64 channels) right after a float stem stays float with it (default false: faster on
   * MNASNet, MobileNetV2/V3, but the logits' SQNR of the random-weight exports moved by −0.04 to −0.3 dB).
   */
  stemDepthwise?: boolean;
  /** Mul/Div by a positive constant between quantized tensors folded into a DequantizeLinear scale (default true). */
  scaleFold?: boolean;
  /** Depthwise Convs between 1×1-style Convs padded to a multiple of 16 channels (MLAS's symmetric kernel; default true). */
  padDepthwise?: boolean;
}

/** Every op type with an ORT QLinear kernel (`quantQLinear` in its registry entry). */
export function qlinearOpTypes(): string[] {
  return allEntries()
    .filter((e) => !e.domain && e.quantQLinear)
    .map((e) => e.type);
}

/** The rules of a `placement` option: true/undefined = all, false = none. */
export function rulesOf(p: boolean | PlacementRules | undefined): Required<PlacementRules> {
  const on = p !== false;
  const o = typeof p === 'object' ? p : {};
  return {
    qlinear: on ? (o.qlinear ?? qlinearOpTypes()) : [],
    passThrough: on && (o.passThrough ?? true),
    hardSigmoid: on && (o.hardSigmoid ?? true),
    hardSwish: on && (o.hardSwish ?? true),
    affineConv: on && (o.affineConv ?? true),
    stemDepthwise: on && (o.stemDepthwise ?? false),
    scaleFold: on && (o.scaleFold ?? true),
    padDepthwise: on && (o.padDepthwise ?? true),
  };
}

/** The QLinear op ORT runs for `n` when it is quantized, and its activation inputs; undefined when none. */
export function qlinearSpec(n: Node): { op: string; inputs: number[] } | undefined {
  if (!isOnnxDomain(n)) return undefined;
  const q = lookup(n.opType, '', undefined)?.quantQLinear;
  if (!q) return undefined;
  const inputs = q.inputs === 'all' ? n.inputs.map((_, i) => i).filter((i) => n.inputs[i]) : q.inputs;
  return { op: q.op, inputs };
}

/** Why `n` cannot run as its QLinear op (undefined when it can). */
export function whyNotQLinear(n: Node): string | undefined {
  const spec = qlinearSpec(n);
  if (!spec) return `${n.opType} has no integer kernel in ORT`;
  if (n.outputs.length !== 1) return 'it has several outputs';
  let activations = 0;
  for (const i of spec.inputs) {
    const v = n.inputs[i];
    if (!v) return `input ${i} is missing`;
    const c = constTensor(v);
    // a scalar constant operand of Add/Mul is quantized on its own (an exact uint8 value): QLinearAdd(x, 3)
    if (c && !(c.numel === 1 && c.dtype === 'float32' && isOp(n, 'Add', 'Mul')))
      return `input ${i} "${v.name}" is a constant`;
    if (c) continue;
    activations++;
    if (v.dtype !== 'float32')
      return `input ${i} "${v.name}" is ${v.dtype ?? 'of unknown type'}, not float32`;
  }
  if (!activations) return 'every input is a constant';
  if (n.outputs[0]?.dtype !== 'float32') return 'its output is not float32';
  if (n.opType === 'AveragePool' && n.attrInt('ceil_mode', 0)) return 'ceil_mode = 1';
  return undefined;
}

/**
 * The QLinear-able nodes (see `qlinearSpec`) to quantize besides `quantized` (the Convs/Gemms the base plan
 * quantizes): those with an input that is quantized anyway. `inputsOf(n)` gives the activation inputs of a
 * quantized node, `throughData(v)` the value a data-movement op's output carries (undefined when `v` is not such
 * an output), `fusedInput(v)` the producer's output when `v` is a Relu/Clip that ORT folds into a quantization,
 * `fusedOutput(v)` that Relu/Clip's output when it is `v`'s sole reader.
 */
export function qlinearNodes(
  model: Model,
  quantized: readonly Node[],
  ok: (n: Node) => boolean,
  hooks: {
    inputsOf: (n: Node) => number[];
    throughData: (v: Value) => Value | undefined;
    fusedInput: (v: Value) => Value | undefined;
    fusedOutput: (v: Value) => Value | undefined;
  },
): Node[] {
  const candidates = model.graph.nodes.filter((n) => qlinearSpec(n) && ok(n) && !whyNotQLinear(n));
  // the largest set of candidates that all satisfy both conditions: start with every candidate, drop those that
  // fail until none does (so chains such as SiLU → squeeze-excitation, whose ops justify each other, stay whole)
  const inSet = new Set([...quantized, ...candidates]);
  /** Whether `v` is quantized as the input of a node of the set other than `self`. */
  const readQuantized = (v: Value, self: Node) =>
    v.uses.some((u) => u.node !== self && inSet.has(u.node) && hooks.inputsOf(u.node).includes(u.index));
  const isQuantized = (v: Value, self: Node): boolean => {
    for (let x: Value | undefined = v, k = 0; x && k < 16; k++) {
      if (readQuantized(x, self)) return true;
      const p = x.producer;
      if (p && p !== self && inSet.has(p)) return true;
      x = hooks.throughData(x) ?? hooks.fusedInput(x);
    }
    return false;
  };
  // every reader of `v` takes it quantized: a quantized node's activation input, or a data-movement op whose
  // output is read so
  const readersQuantized = (v: Value, depth = 0): boolean =>
    (depth < 8 && !!hooks.fusedOutput(v) && readersQuantized(hooks.fusedOutput(v)!, depth + 1)) ||
    (!v.isGraphOutput &&
      v.uses.length > 0 &&
      v.uses.every(
        (u) =>
          (inSet.has(u.node) && hooks.inputsOf(u.node).includes(u.index)) ||
          (depth < 8 &&
            !!u.node.outputs[0] &&
            hooks.throughData(u.node.outputs[0]) === v &&
            readersQuantized(u.node.outputs[0], depth + 1)),
      ));
  for (let changed = true; changed;) {
    changed = false;
    for (const n of candidates) {
      if (!inSet.has(n)) continue;
      const acts = qlinearSpec(n)!.inputs.filter((i) => !constTensor(n.inputs[i]));
      if (acts.some((i) => isQuantized(n.inputs[i]!, n)) && readersQuantized(n.output(0))) continue;
      inSet.delete(n);
      changed = true;
    }
  }
  const added = candidates.filter((n) => inSet.has(n));
  return added;
}

/**
 * In place: Conv → HardSigmoid(α, β), the Conv's output read by the HardSigmoid alone, becomes Conv(αW, αb + β)
 * → Clip(0, 1) (the same values), so the gate's quantization absorbs the activation. Returns the labels of the
 * HardSigmoids rewritten.
 */
export function foldHardSigmoid(model: Model, ok: (n: Node) => boolean): string[] {
  const g = model.graph;
  const opset = model.opset('') ?? 13;
  const done: string[] = [];
  for (const h of [...g.nodes]) {
    if (!isOp(h, 'HardSigmoid') || !ok(h)) continue;
    const c = h.inputs[0]?.producer;
    if (!c || !isOp(c, 'Conv') || soleReader(c.output(0)) !== h || !ok(c)) continue;
    const w = constTensor(c.inputs[1]);
    const b = c.inputs[2] ? constTensor(c.inputs[2]) : undefined;
    if (!w || w.dtype !== 'float32' || (c.inputs[2] && (!b || b.dtype !== 'float32'))) continue;
    const alpha = h.attrFloat('alpha', 0.2);
    const beta = h.attrFloat('beta', 0.5);
    const oc = w.dims[0]!;
    const wv = g.addInitializer(
      `${c.inputs[1]!.name}_hardsigmoid`,
      T.from(
        'float32',
        w.dims,
        Float32Array.from(f64(w), (x) => x * alpha),
      ),
    );
    const bias = b ? f64(b) : new Float64Array(oc);
    const bv = g.addInitializer(
      `${c.label}_bias_hardsigmoid`,
      T.from(
        'float32',
        [oc],
        Float32Array.from(bias, (x) => x * alpha + beta),
      ),
    );
    c.setInput(1, wv);
    if (c.inputs.length > 2) c.setInput(2, bv);
    else c.addInput(bv);
    const y = h.output(0);
    const clip =
      opset >= 11
        ? g.addNode({
            opType: 'Clip',
            name: g.uniqueName(`${h.label}_clip`),
            inputs: [
              c.output(0),
              g.addInitializer(`${h.label}_min`, T.scalar('float32', 0)),
              g.addInitializer(`${h.label}_max`, T.scalar('float32', 1)),
            ],
            outputs: [g.uniqueName(`${y.name}_clip`)],
          })
        : g.addNode({
            opType: 'Clip',
            name: g.uniqueName(`${h.label}_clip`),
            inputs: [c.output(0)],
            outputs: [g.uniqueName(`${y.name}_clip`)],
            attrs: { min: A.float(0), max: A.float(1) },
          });
    clip.output(0).type = y.type ? { ...y.type } : y.type;
    y.replaceAllUsesWith(clip.output(0));
    // the gate keeps its name (per-layer SQNR matches tensors by name)
    const name = y.name;
    g.removeNode(h);
    y.name = g.uniqueName(`${name}_hardsigmoid`);
    clip.output(0).name = name;
    done.push(h.label);
  }
  if (done.length) {
    g.toposort();
    g.removeUnused();
  }
  return done;
}

/**
 * In place, on a quantized QLinear node: each scalar constant operand (see `whyNotQLinear`) is replaced by its
 * uint8/int8 value (range [min(c, 0), max(c, 0)], so c is the end point of the range and exact) and a
 * DequantizeLinear, which ORT fuses into the QLinear op with the activations' DQs.
 */
export function quantizeConstantOperands(n: Node, qt: QType): void {
  const g = n.graph;
  for (const i of qlinearSpec(n)?.inputs ?? []) {
    const v = n.inputs[i];
    const c = constTensor(v);
    if (!v || !c) continue;
    const x = f64(c)[0]!;
    const p = rangeParams(x, x, qt);
    const base = g.uniqueName(`${n.label}_operand${i}`);
    const q = g.addInitializer(`${base}_quantized`, T.scalar(qt, quantizeValue(x, p)));
    const s = g.addInitializer(`${base}_scale`, T.scalar('float32', p.scale));
    const z = g.addInitializer(`${base}_zero_point`, T.scalar(qt, p.zeroPoint));
    const d = g.addNode({
      opType: 'DequantizeLinear',
      name: `${base}_DequantizeLinear`,
      inputs: [q, s, z],
      outputs: [`${base}_dequantized`],
    });
    d.output(0).type = { kind: 'tensor', dtype: 'float32', shape: [] };
    n.setInput(i, d.output(0));
  }
}

/**
 * In place: HardSwish(x) — the op (opset ≥ 14) or torch's opset-13 form x · HardSigmoid(x; 1/6, 1/2) — on the
 * output of a Conv becomes x · (Clip(x + 3, 0, 6) · 1/6) (the same values), so that the quantized graph runs it as
 * QLinearAdd (its Clip absorbed by the quantization of its output) → QLinearMul by 1/6 → QLinearMul instead of a
 * float island (DQ → HardSwish → Q). Returns the labels rewritten.
 */
export function decomposeHardSwish(model: Model, ok: (n: Node) => boolean): string[] {
  const g = model.graph;
  const opset = model.opset('') ?? 13;
  if (opset < 11) return [];
  const done: string[] = [];
  const scalar = (name: string, x: number) => g.addInitializer(g.uniqueName(name), T.scalar('float32', x));
  for (const n of [...g.nodes]) {
    if (!ok(n)) continue;
    let x: Value | undefined;
    let out: Value | undefined;
    const dead: Node[] = [];
    if (isOp(n, 'HardSwish')) {
      x = n.inputs[0] ?? undefined;
      out = n.outputs[0] ?? undefined;
      dead.push(n);
    } else if (isOp(n, 'HardSigmoid') && Math.abs(n.attrFloat('alpha', 0.2) - 1 / 6) < 1e-6) {
      const m = soleReader(n.output(0));
      if (!m || !isOp(m, 'Mul') || Math.abs(n.attrFloat('beta', 0.5) - 0.5) > 1e-6) continue;
      const other = m.inputs[0] === n.outputs[0] ? m.inputs[1] : m.inputs[0];
      if (other !== n.inputs[0] || !ok(m)) continue;
      x = other ?? undefined;
      out = m.outputs[0] ?? undefined;
      dead.push(m, n);
    }
    if (!x || !out || !isOp(x.producer, 'Conv') || !ok(x.producer!) || x.dtype !== 'float32') continue;
    const label = dead[0]!.label;
    const t = (o: Node) => {
      o.output(0).type = x!.type ? { ...x!.type } : x!.type;
      return o.output(0);
    };
    const add = t(
      g.addNode({
        opType: 'Add',
        name: g.uniqueName(`${label}/add3`),
        inputs: [x, scalar(`${label}/three`, 3)],
        outputs: [g.uniqueName(`${out.name}_plus3`)],
      }),
    );
    const clip = t(
      g.addNode({
        opType: 'Clip',
        name: g.uniqueName(`${label}/relu6`),
        inputs: [add, scalar(`${label}/zero`, 0), scalar(`${label}/six`, 6)],
        outputs: [g.uniqueName(`${out.name}_relu6`)],
      }),
    );
    const gate = t(
      g.addNode({
        opType: 'Mul',
        name: g.uniqueName(`${label}/div6`),
        inputs: [clip, scalar(`${label}/sixth`, 1 / 6)],
        outputs: [g.uniqueName(`${out.name}_gate`)],
      }),
    );
    const y = t(
      g.addNode({
        opType: 'Mul',
        name: g.uniqueName(`${label}/mul`),
        inputs: [x, gate],
        outputs: [g.uniqueName(`${out.name}_hardswish`)],
      }),
    );
    out.replaceAllUsesWith(y);
    const name = out.name;
    for (const d of dead) g.removeNode(d, true);
    out.name = g.uniqueName(`${name}_removed`);
    y.name = name;
    done.push(label);
  }
  if (done.length) {
    g.toposort();
    g.removeUnused();
  }
  return done;
}

/**
 * In place: a per-channel affine op ORT has no integer kernel for (a `quantAffine` registry entry: an inference
 * BatchNormalization that does not fold into a Conv, e.g. DenseNet's pre-activation BN after a Concat) on a rank-4
 * float input with `multiple`·k channels becomes the depthwise 1×1 Conv computing the same values (weight a[c],
 * bias b[c], group C). The base placement then quantizes it like any Conv: the per-channel int8 weight of a
 * single tap is exact (±127 at scale |a[c]|/127), the bias goes to the int32 accumulator and a following Relu folds
 * into the output's quantization, so DQ → BN → Relu → Q becomes one QLinearConv and the Concat before it stays
 * uint8 (QLinearConcat). `multiple` = 16: MLAS's symmetric depthwise kernel needs the channel count divisible by
 * 16. Returns the labels rewritten and, per input that a Relu after the Conv makes irrelevant below some value, that
 * floor (see `rangeFloors` of the static options).
 */
export function affineAsConv(
  model: Model,
  ok: (n: Node) => boolean,
  multiple = 16,
): { done: string[]; floors: Map<string, number> } {
  const g = model.graph;
  const done: string[] = [];
  const floors = new Map<string, number>();
  for (const n of [...g.nodes]) {
    if (!isOnnxDomain(n) || !ok(n)) continue;
    const affine = lookup(n.opType, '', undefined)?.quantAffine?.(n);
    const x = n.inputs[0];
    const y = n.outputs[0];
    if (!affine || !x || !y || x.dtype !== 'float32' || x.shape?.length !== 4) continue;
    const C = affine.scale.length;
    if (x.shape[1] !== C || C % multiple !== 0) continue;
    const w = g.addInitializer(
      g.uniqueName(`${n.label}_affine_weight`),
      T.from('float32', [C, 1, 1, 1], Float32Array.from(affine.scale)),
    );
    const b = g.addInitializer(
      g.uniqueName(`${n.label}_affine_bias`),
      T.from('float32', [C], Float32Array.from(affine.bias)),
    );
    const conv = g.addNode({
      opType: 'Conv',
      name: g.uniqueName(`${n.label}_as_conv`),
      inputs: [x, w, b],
      outputs: [g.uniqueName(`${y.name}_conv`)],
      attrs: { group: A.int(C), kernel_shape: A.ints([1, 1]) },
    });
    conv.output(0).type = y.type ? { ...y.type } : y.type;
    y.replaceAllUsesWith(conv.output(0));
    const name = y.name;
    g.removeNode(n, true);
    y.name = g.uniqueName(`${name}_removed`);
    conv.output(0).name = name;
    done.push(n.label);
    // Relu(a·x + b) with every a > 0 is 0 wherever x < min(−b/a): the input's quantized range may start there (the
    // same values, a finer grid — DenseNet's Concat → BN → Relu would otherwise round the Concat over its full
    // range, negative half included)
    if (
      isOp(soleReader(conv.output(0)), 'Relu') &&
      soleReader(x) === conv &&
      affine.scale.every((a) => a > 0)
    )
      floors.set(x.name, Math.min(...Array.from(affine.bias, (b, c) => -b / affine.scale[c]!)));
  }
  if (done.length) {
    g.toposort();
    g.removeUnused();
  }
  return { done, floors };
}

/** Ops a float stem's output may pass through (they stay float with it) on its way to the first Convs. */
const STEM_FOLLOWERS = new Set([
  'Relu',
  'Clip',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Mul',
  'MaxPool',
  'Split',
]);

/**
 * The depthwise Convs with fewer than `maxChannels` channels that read the output of the float stem `stem` (through
 * its activation — Relu, Clip, SiLU's Sigmoid · x, HardSwish — and a MaxPool, which stay float with it). ORT's
 * integer depthwise kernel (MLAS's symmetric AVX-512 one works on blocks of 64 channels) is 2–3× slower than its
 * float NCHWc one there (bench/conv_kinds.ts), and keeping that Conv float only moves the quantization after it,
 * where it costs no more than before it. Deeper depthwise Convs stay integer: a float island there costs its own
 * DQ, layout reorders and Q, measured to eat the gain.
 */
export function stemDepthwise(stem: Node, maxChannels = 64): Node[] {
  const out: Node[] = [];
  const seen = new Set<Node>();
  let frontier = [stem.output(0)];
  for (let depth = 0; depth < 6 && frontier.length; depth++) {
    const next: Value[] = [];
    for (const v of frontier) {
      if (v.isGraphOutput) return [];
      for (const { node: r } of v.uses) {
        if (seen.has(r)) continue;
        seen.add(r);
        if (isOp(r, 'Conv')) {
          const w = constTensor(r.inputs[1]);
          const g = r.attrInt('group', 1);
          if (w && g > 1 && g < maxChannels && w.dims[0] === g && w.dims[1] === 1 && r.inputs[0] === v)
            out.push(r);
          continue;
        }
        if (!isOnnxDomain(r) || !STEM_FOLLOWERS.has(r.opType)) return [];
        next.push(...r.outputs.filter((o): o is Value => !!o));
      }
    }
    frontier = next;
  }
  // one path only (ShuffleNet's pooled stem also feeds a quantized 1×1 Conv: the pool would have to stay float),
  // and no SiLU/HardSwish after the depthwise Conv (it would stay float too: EfficientNet measured no faster)
  if (frontier.length || out.length !== 1 || [...seen].filter((n) => isOp(n, 'Conv')).length !== 1) return [];
  const y = out[0]!.output(0);
  const r = soleReader(y);
  const after = r && isOp(r, 'Relu', 'Clip') ? r.output(0) : y;
  if (after.uses.some((u) => isOp(u.node, 'Sigmoid', 'HardSigmoid', 'HardSwish'))) return [];
  return out;
}

/** A Conv's constant float32 weight, zero-padded on `axis` (0: output channels, 1: input channels) to `to`. */
function padWeight(model: Model, n: Node, index: number, axis: 0 | 1, to: number): void {
  const v = n.inputs[index];
  const t = constTensor(v);
  if (!v || !t) return;
  const dims = [...t.dims] as number[];
  const from = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const src = f64(t);
  const dst = new Float32Array(outer * to * inner);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < from * inner; i++) dst[o * to * inner + i] = src[o * from * inner + i]!;
  dims[axis] = to;
  n.setInput(index, model.graph.addInitializer(`${v.name}_padded${to}`, T.from('float32', dims, dst)));
}

/**
 * In place: a depthwise Conv whose channel count C is not a multiple of `multiple` (MLAS's symmetric depthwise
 * kernel needs 16; otherwise ORT falls back to a generic kernel 1.5–2× slower, bench/conv_ceiling.ts), between a
 * group-1 Conv that alone reads into it and group-1 Convs that alone read its output (Relu/Clip in between
 * allowed: they keep 0 at 0), gets ⌈C/16⌉·16 channels: the producer's extra output channels have zero weights and
 * bias, so they are 0; the depthwise Conv's extra filters are zero; the readers' extra input channels have zero
 * weights. The same values, MLAS's fast kernel (MNASNet's 24/72, ShuffleNet's 24). Returns the labels padded.
 */
export function padDepthwise(model: Model, ok: (n: Node) => boolean, multiple = 16): string[] {
  const g = model.graph;
  const done: string[] = [];
  const keepsZero = (n: Node | undefined) => {
    if (!n || !isOp(n, 'Relu', 'Clip')) return false;
    if (n.opType === 'Relu') return true;
    const lo = n.inputs[1] ? constTensor(n.inputs[1]) : undefined;
    const hi = n.inputs[2] ? constTensor(n.inputs[2]) : undefined;
    const min = lo ? f64(lo)[0]! : n.attrFloat('min', -Infinity);
    const max = hi ? f64(hi)[0]! : n.attrFloat('max', Infinity);
    return min <= 0 && max >= 0;
  };
  const dense = (n: Node | null | undefined): n is Node =>
    !!n &&
    isOp(n, 'Conv') &&
    n.attrInt('group', 1) === 1 &&
    !!constTensor(n.inputs[1]) &&
    (!n.inputs[2] || !!constTensor(n.inputs[2])) &&
    ok(n);
  for (const d of [...g.nodes]) {
    if (!isOp(d, 'Conv') || !ok(d)) continue;
    const w = constTensor(d.inputs[1]);
    const C = d.attrInt('group', 1);
    if (!w || w.dtype !== 'float32' || C <= 1 || C % multiple === 0 || w.dims[0] !== C || w.dims[1] !== 1)
      continue;
    if (d.inputs[2] && !constTensor(d.inputs[2])) continue;
    // producer: Conv (→ Relu/Clip) → d, each value read once
    let x = d.input(0);
    if (x.isGraphOutput || x.uses.length !== 1) continue;
    const act = x.producer && keepsZero(x.producer) ? x.producer : undefined;
    if (act) x = act.input(0);
    const p = x.producer;
    if (!dense(p) || x.isGraphOutput || x.uses.length !== 1 || constTensor(p.inputs[1])!.dims[0] !== C)
      continue;
    // readers: (Relu/Clip →) group-1 Convs reading it as their input 0
    let y = d.output(0);
    const r = soleReader(y);
    if (r && keepsZero(r)) y = r.output(0);
    if (y.isGraphOutput || !y.uses.length || !y.uses.every((u) => u.index === 0 && dense(u.node))) continue;
    const C2 = Math.ceil(C / multiple) * multiple;
    padWeight(model, p, 1, 0, C2);
    if (p.inputs[2]) padWeight(model, p, 2, 0, C2);
    padWeight(model, d, 1, 0, C2);
    if (d.inputs[2]) padWeight(model, d, 2, 0, C2);
    d.setAttr('group', A.int(C2));
    for (const u of [...y.uses]) padWeight(model, u.node, 1, 1, C2);
    done.push(d.label);
  }
  if (done.length) g.removeUnused();
  return done;
}
