// Reverse-mode autodiff over the IR: emits ONNX nodes that compute d(loss)/d(wrt) into the same graph.
// One driver (this file); the per-op rules are the `grad` slots of the op registry (src/ops). The driver walks
// only the nodes on a path from `wrt` to `loss`, in reverse topological order, sums fan-out, and stops at
// non-float values. Broadcast reduction is offered to rules as `ctx.unbroadcast`.
import { InternalError, UnsupportedError } from '../errors.js';
import {
  type Dim,
  type DType,
  dtypeByteLength,
  Emitter,
  type Graph,
  type Model,
  type Node,
  type Value,
  isFloat,
  topoOrder,
  Tensor,
  A,
} from '../ir/index.js';
import {
  type ConvInputGradForm,
  type ConvWeightGradForm,
  type GradCtx,
  type GradForms,
  lookup,
} from '../ops/registry.js';

export class UnsupportedGradientError extends UnsupportedError {}

export interface GradientOptions {
  /** Prefix for generated node names (default "grad"). */
  prefix?: string;
  /** Gradient fed into the loss (default: ones; the loss must then be a scalar). */
  seed?: Value;
  /** The rules' formulation choices, from `selectGradForms` (default: `selectGradForms()`, portable, no NCHWc). */
  forms?: GradForms;
}

const CONV_WEIGHT_FORMS: readonly ConvWeightGradForm[] = [
  'auto',
  'cols-batched',
  'cols-gemm',
  'offset-gemms',
  'batch-conv',
];
const CONV_INPUT_FORMS: readonly ConvInputGradForm[] = ['auto', 'flipped-conv', 'conv-transpose'];

/**
 * The one place the gradient rules' formulation choices are made: defaults ('auto' forms, MaxPool mask, no NCHWc)
 * overridden by `choice` (the NCHWc block probed from the ORT build a train step will run on, forced forms for
 * tests and benchmarks). The result is frozen and passed to `buildGradients`, which hands it to every rule.
 */
export function selectGradForms(choice: Partial<GradForms> = {}): GradForms {
  const forms: GradForms = {
    nchwcBlock: choice.nchwcBlock ?? 0,
    convWeight: choice.convWeight ?? 'auto',
    convInput: choice.convInput ?? 'auto',
    maxPoolMask: choice.maxPoolMask ?? true,
    maxPoolOverlap: choice.maxPoolOverlap ?? 'auto',
  };
  const b = forms.nchwcBlock;
  if (!Number.isInteger(b) || b < 0 || (b > 0 && (b & (b - 1)) !== 0))
    throw new InternalError('grad-forms', `NCHWc block ${b} must be 0 or a power of two`);
  if (!CONV_WEIGHT_FORMS.includes(forms.convWeight))
    throw new InternalError('grad-forms', `unknown Conv weight-gradient form "${forms.convWeight}"`);
  if (!CONV_INPUT_FORMS.includes(forms.convInput))
    throw new InternalError('grad-forms', `unknown Conv input-gradient form "${forms.convInput}"`);
  return Object.freeze(forms);
}

const DEFAULT_FORMS = selectGradForms();

export interface GradientResult {
  /** Gradient value for every requested `wrt` value (zeros where the loss does not depend on it). */
  grads: Map<Value, Value>;
  /** Forward nodes the backward pass went through. */
  pathNodes: Node[];
  /** Nodes emitted for the backward pass. */
  emitted: Node[];
  /** `wrt` values the loss does not depend on. */
  unreached: Value[];
}

/** Node metadata that marks a gradient barrier (PyTorch's `detach`): no gradient flows through such a node. */
export const STOP_GRADIENT: readonly [string, string] = ['edgefit.stop_gradient', '1'];

export function isStopGradient(n: Node): boolean {
  return n.metadata.some(([k, v]) => k === STOP_GRADIENT[0] && v === STOP_GRADIENT[1]);
}

/** Emit `Identity(x)` marked as a gradient barrier: forward value x, gradient zero (straight-through tricks, teachers). */
export function stopGradient(e: Emitter, x: Value): Value {
  const n = e.node('Identity', [x], {}, { name: 'StopGradient' });
  n.metadata.push([...STOP_GRADIENT]);
  return n.output(0);
}

function isFloatValue(v: Value): boolean {
  const d = v.dtype;
  return d !== undefined && isFloat(d);
}

/**
 * Add gradient nodes for d(loss)/d(v), v ∈ wrt, to `model.graph`. Forward value types must be known (run
 * `inferShapes` first): rules read static shapes from them. The new values are not graph outputs; the caller
 * decides what to expose.
 */
export function buildGradients(
  model: Model,
  loss: Value,
  wrt: readonly Value[],
  opts: GradientOptions = {},
): GradientResult {
  const g = model.graph;
  const opset = model.opset('') ?? 17;
  const e = new Emitter(g, { opset, prefix: opts.prefix ?? 'grad' });
  const forms = opts.forms ?? DEFAULT_FORMS;
  if (!loss.dtype || !isFloat(loss.dtype))
    throw new UnsupportedGradientError(
      'loss-type',
      `The loss "${loss.name}" has no known float type: run shape inference on the graph with its loss first`,
      {
        value: loss.name,
      },
    );

  // values that depend on some wrt (forward), through float values only
  const order = topoOrder(g);
  if (order.cycle.length)
    throw new UnsupportedGradientError('cycle', `Cannot differentiate graph "${g.name}": it has a cycle`, {});
  const depends = new Set<Value>(wrt);
  for (const n of order.sorted)
    if (!isStopGradient(n) && n.inputs.some((v) => v && depends.has(v)))
      for (const o of n.outputs) {
        if (!o) continue;
        if (!o.dtype)
          throw new UnsupportedGradientError(
            'untyped',
            `Output "${o.name}" of ${n.opType} "${n.label}" has no known type: run shape inference before differentiating`,
            {
              node: n.label,
              value: o.name,
            },
          );
        if (isFloatValue(o)) depends.add(o);
      }
  // nodes whose outputs reach the loss (backward)
  const reaches = new Set<Value>([loss]);
  const path: Node[] = [];
  for (let i = order.sorted.length - 1; i >= 0; i--) {
    const n = order.sorted[i]!;
    if (!n.outputs.some((o) => o && reaches.has(o))) continue;
    if (!n.inputs.some((v) => v && depends.has(v))) continue;
    path.push(n);
    for (const v of n.inputs) if (v && depends.has(v)) reaches.add(v);
  }
  // `path` is in reverse topological order

  const contributions = new Map<Value, Value[]>();
  const addGrad = (v: Value, gv: Value) => {
    const list = contributions.get(v);
    if (list) list.push(gv);
    else contributions.set(v, [gv]);
  };
  const seed = opts.seed ?? seedFor(loss, e);
  addGrad(loss, seed);
  const total = (v: Value): Value | null => {
    const list = contributions.get(v);
    if (!list || !list.length) return null;
    if (list.length > 1) {
      const s = e.sum(list);
      contributions.set(v, [s]);
      return s;
    }
    return list[0]!;
  };

  for (const node of path) {
    const entry = lookup(node.opType, node.domain, model.opset(node.domain));
    if (!entry?.grad)
      throw new UnsupportedGradientError(
        'no-gradient-rule',
        `No gradient rule for ${node.opType} (domain ${node.domain || 'ai.onnx'}) at node "${node.label}"`,
        { node: node.label, opType: node.opType },
      );
    const outGrads = node.outputs.map((o) => (o ? total(o) : null));
    if (outGrads.every((x) => x === null)) continue;
    e.prefix = `${opts.prefix ?? 'grad'}/${node.label}`;
    const ctx = makeCtx(node, g, opset, e, forms, outGrads, (i) => {
      const v = node.inputs[i];
      return !!v && depends.has(v) && isFloatValue(v);
    });
    const inGrads = entry.grad(node, ctx);
    inGrads.forEach((gv, i) => {
      const v = node.inputs[i];
      if (gv && v && depends.has(v) && isFloatValue(v)) addGrad(v, gv);
    });
  }
  e.prefix = opts.prefix ?? 'grad';

  const grads = new Map<Value, Value>();
  const unreached: Value[] = [];
  for (const v of wrt) {
    let gv = total(v);
    if (!gv) {
      unreached.push(v);
      gv = zerosLike(v, e);
    }
    grads.set(v, gv);
  }
  return { grads, pathNodes: [...path].reverse(), emitted: e.emitted, unreached };
}

function seedFor(loss: Value, e: Emitter): Value {
  const shape = loss.shape;
  const dtype = loss.dtype ?? 'float32';
  if (shape && shape.length === 0) return e.scalar(1, dtype);
  if (shape && shape.every((d) => d === 1))
    return e.constant(Tensor.from(dtype, shape as number[], [1]), 'grad_seed');
  throw new UnsupportedGradientError(
    'loss-shape',
    `The loss "${loss.name}" must be a scalar to seed its gradient: its shape is [${shape?.map((d) => d ?? '?')}]`,
    {
      value: loss.name,
    },
  );
}

function zerosLike(v: Value, e: Emitter): Value {
  const shape = v.shape;
  if (shape && shape.every((d): d is number => typeof d === 'number'))
    return e.constant(
      new Tensor(
        v.dtype ?? 'float32',
        shape,
        new Uint8Array(
          dtypeByteLength(
            v.dtype ?? 'float32',
            shape.reduce((a, b) => a * b, 1),
          ),
        ),
      ),
      `zero_grad`,
    );
  return e.op('ConstantOfShape', [e.shape(v)], {
    value: A.tensor(Tensor.from(v.dtype ?? 'float32', [1], [0])),
  });
}

function makeCtx(
  node: Node,
  graph: Graph,
  opset: number,
  e: Emitter,
  forms: GradForms,
  outGrads: (Value | null)[],
  needs: (i: number) => boolean,
): GradCtx {
  const fail = (message: string): never => {
    throw new UnsupportedGradientError(
      'gradient',
      `Cannot differentiate ${node.opType} "${node.label}": ${message}`,
      {
        node: node.label,
        opType: node.opType,
      },
    );
  };
  const shapeOf = (v: Value): Dim[] => {
    const s = v.shape;
    if (!s) fail(`the shape of "${v.name}" is unknown (run shape inference first)`);
    return s!;
  };
  return {
    node,
    graph,
    opset,
    e,
    forms,
    outputGrad: (i) => outGrads[i] ?? null,
    needsGrad: needs,
    shapeOf,
    dtypeOf: (v: Value): DType => v.dtype ?? fail(`the dtype of "${v.name}" is unknown`),
    fail,
    unbroadcast(grad: Value, i: number): Value {
      const input = node.input(i);
      const inShape = shapeOf(input);
      // the gradient has the shape of the broadcast result: the node's first output
      const outShape = shapeOf(node.output(0));
      return reduceToShape(e, grad, outShape, inShape, fail);
    },
  };
}

/** Sum `grad` (of shape `from`) down to shape `to` under ONNX multidirectional broadcasting. */
export function reduceToShape(
  e: Emitter,
  grad: Value,
  from: readonly Dim[],
  to: readonly Dim[],
  fail: (m: string) => never,
): Value {
  const lead = from.length - to.length;
  if (lead < 0) fail(`cannot reduce a gradient of rank ${from.length} to rank ${to.length}`);
  const axes: number[] = [];
  for (let k = 0; k < lead; k++) axes.push(k);
  for (let k = 0; k < to.length; k++) {
    const out = from[k + lead]!; // dim of the broadcast result
    const inp = to[k]!; // dim of the input
    if (inp === out) continue; // same number or same symbol
    if (inp === 1)
      axes.push(k + lead); // broadcast from 1: sum over it
    else if (typeof inp === 'number' && typeof out !== 'number')
      continue; // out must equal inp at run time
    else fail(`cannot tell how input dim ${k} (${String(inp)}) broadcasts to ${String(out)}`);
  }
  if (!axes.length) return grad;
  let r = e.reduceSum(grad, axes, true);
  if (lead > 0)
    r = e.squeeze(
      r,
      axes.filter((a) => a < lead),
    );
  return r;
}
