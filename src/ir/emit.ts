// Emitting nodes into an existing graph: what autodiff, graph passes, quantizers and training-graph builders use
// to write ONNX (the ModelBuilder, by contrast, builds a new model layer by layer). Opset-dependent forms (axes as
// attribute or input) are chosen here once, so callers write `e.reduceSum(x, [0], true)` at any opset.
import { type DType, dtypeCode } from './dtype.js';
import type { Attr, Graph, Node, Value } from './graph.js';
import { Tensor } from './tensor.js';

/** Attribute constructors: `{ axis: A.int(1), perm: A.ints([0, 2, 1]), alpha: A.float(0.2) }`. */
export const A = {
  int: (value: number): Attr => ({ type: 'int', value }),
  ints: (value: readonly number[]): Attr => ({ type: 'ints', value: [...value] }),
  float: (value: number): Attr => ({ type: 'float', value }),
  floats: (value: readonly number[]): Attr => ({ type: 'floats', value: [...value] }),
  string: (value: string): Attr => ({ type: 'string', value }),
  tensor: (value: Tensor): Attr => ({ type: 'tensor', value }),
};

export interface EmitOptions {
  /** ai.onnx opset of the graph (decides attribute-vs-input forms). */
  opset: number;
  /** Prefix of generated node and value names, e.g. "grad" or "qdq". */
  prefix?: string;
  /** Insert new nodes before this index instead of appending (for passes that must keep topological order). */
  insertAt?: () => number | undefined;
}

export class Emitter {
  readonly graph: Graph;
  readonly opset: number;
  prefix: string;
  private readonly intCache = new Map<string, Value>();
  private readonly scalarCache = new Map<string, Value>();
  private readonly shapeCache = new Map<Value, Value>();
  /** Nodes emitted so far (in order). */
  readonly emitted: Node[] = [];
  private readonly insertAt: (() => number | undefined) | undefined;

  constructor(graph: Graph, opts: EmitOptions) {
    this.graph = graph;
    this.opset = opts.opset;
    this.prefix = opts.prefix ?? '';
    this.insertAt = opts.insertAt;
  }

  private name(base: string): string {
    return this.graph.uniqueName(this.prefix ? `${this.prefix}/${base}` : base);
  }

  /** Emit one node; returns its outputs. */
  node(
    opType: string,
    inputs: (Value | null)[],
    attrs: Record<string, Attr | undefined> = {},
    opts: { outputs?: number; domain?: string; name?: string } = {},
  ): Node {
    const name = this.name(opts.name ?? opType);
    const n = opts.outputs ?? 1;
    const outputs = Array.from({ length: n }, (_, i) => (n === 1 ? name : `${name}:${i}`));
    const node = this.graph.addNode(
      { opType, domain: opts.domain ?? '', name, inputs, outputs, attrs },
      this.insertAt?.(),
    );
    this.emitted.push(node);
    return node;
  }

  /** Emit one node and return its first output. */
  op(
    opType: string,
    inputs: (Value | null)[],
    attrs: Record<string, Attr | undefined> = {},
    opts: { domain?: string; name?: string } = {},
  ): Value {
    return this.node(opType, inputs, attrs, opts).output(0);
  }

  /** A constant tensor (initializer). */
  constant(t: Tensor, name = 'const'): Value {
    return this.graph.addInitializer(this.name(name), t);
  }

  /** A 1-D int64 constant (cached by content). */
  ints(values: readonly number[]): Value {
    const key = values.join(',');
    let v = this.intCache.get(key);
    if (!v) {
      v = this.constant(Tensor.from('int64', [values.length], [...values]), 'ints');
      this.intCache.set(key, v);
    }
    return v;
  }

  /** A 0-D constant of `dtype` (cached). */
  scalar(value: number, dtype: DType = 'float32'): Value {
    const key = `${dtype}:${Object.is(value, -0) ? '-0' : value}`;
    let v = this.scalarCache.get(key);
    if (!v) {
      v = this.constant(Tensor.scalar(dtype, value), 'scalar');
      this.scalarCache.set(key, v);
    }
    return v;
  }

  /** Shape(x), emitted once per value. */
  shape(x: Value): Value {
    let s = this.shapeCache.get(x);
    if (!s) {
      s = this.op('Shape', [x]);
      this.shapeCache.set(x, s);
    }
    return s;
  }

  add(a: Value, b: Value): Value {
    return this.op('Add', [a, b]);
  }
  sub(a: Value, b: Value): Value {
    return this.op('Sub', [a, b]);
  }
  mul(a: Value, b: Value): Value {
    return this.op('Mul', [a, b]);
  }
  div(a: Value, b: Value): Value {
    return this.op('Div', [a, b]);
  }
  neg(a: Value): Value {
    return this.op('Neg', [a]);
  }
  identity(a: Value): Value {
    return this.op('Identity', [a]);
  }
  cast(a: Value, to: DType): Value {
    return this.op('Cast', [a], { to: A.int(dtypeCode(to)) });
  }

  reshape(x: Value, shape: readonly number[] | Value): Value {
    return this.op('Reshape', [x, Array.isArray(shape) ? this.ints(shape as number[]) : (shape as Value)]);
  }
  transpose(x: Value, perm: readonly number[]): Value {
    return this.op('Transpose', [x], { perm: A.ints(perm) });
  }
  unsqueeze(x: Value, axes: readonly number[]): Value {
    return this.opset >= 13
      ? this.op('Unsqueeze', [x, this.ints(axes)])
      : this.op('Unsqueeze', [x], { axes: A.ints(axes) });
  }
  squeeze(x: Value, axes: readonly number[]): Value {
    return this.opset >= 13
      ? this.op('Squeeze', [x, this.ints(axes)])
      : this.op('Squeeze', [x], { axes: A.ints(axes) });
  }
  /** ReduceSum over `axes` (axes input from opset 13). An empty axes list returns x unchanged. */
  reduceSum(x: Value, axes: readonly number[], keepdims: boolean): Value {
    if (!axes.length) return x;
    return this.opset >= 13
      ? this.op('ReduceSum', [x, this.ints(axes)], { keepdims: A.int(keepdims ? 1 : 0) })
      : this.op('ReduceSum', [x], { axes: A.ints(axes), keepdims: A.int(keepdims ? 1 : 0) });
  }
  /** ReduceMean over `axes` (axes input from opset 18). */
  reduceMean(x: Value, axes: readonly number[], keepdims: boolean): Value {
    return this.opset >= 18
      ? this.op('ReduceMean', [x, this.ints(axes)], { keepdims: A.int(keepdims ? 1 : 0) })
      : this.op('ReduceMean', [x], { axes: A.ints(axes), keepdims: A.int(keepdims ? 1 : 0) });
  }
  /** Sum of several values (one Sum node, or the value itself). */
  sum(vs: readonly Value[]): Value {
    return vs.length === 1 ? vs[0]! : this.op('Sum', [...vs]);
  }
}
