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
import { lookup } from '../../../ops/registry.js';
import { constTensor, f64, isOnnxDomain, isOp, soleReader } from '../../util.js';

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
  for (const i of spec.inputs) {
    const v = n.inputs[i];
    if (!v) return `input ${i} is missing`;
    if (constTensor(v)) return `input ${i} "${v.name}" is a constant`;
    if (v.dtype !== 'float32')
      return `input ${i} "${v.name}" is ${v.dtype ?? 'of unknown type'}, not float32`;
  }
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
      if (qlinearSpec(n)!.inputs.some((i) => isQuantized(n.inputs[i]!, n)) && readersQuantized(n.output(0)))
        continue;
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
