// Helpers shared by the graph passes: constants, readers, bypassing a node without changing graph output names,
// moving outputs from one node to another, and op counts.
import type { Attr, Dim, Graph, Model, Node, Tensor, Value, ValueType } from '../ir/index.js';
import { allGraphs, isOnnxDomain } from '../ir/index.js';
import { constOf, inferShapes, type InferReport } from '../ops/index.js';

export { isOnnxDomain } from '../ir/index.js';

/** True when `n` is the ai.onnx op `opType` (or one of `opTypes`). */
export function isOp(n: Node | null | undefined, ...opTypes: string[]): boolean {
  return !!n && isOnnxDomain(n) && opTypes.includes(n.opType);
}

/**
 * Constant data of a value: an initializer that is not also a graph input (an initializer listed as a graph input
 * is a default the caller may override, so it is not a constant), or the output of an ai.onnx Constant node.
 */
export function constTensor(v: Value | null | undefined): Tensor | undefined {
  return v?.isGraphInput ? undefined : constOf(v);
}

/** Elements of a numeric tensor as float64. */
export function f64(t: Tensor): Float64Array {
  return t.toFloat64();
}

/** The one node reading `v` when exactly one node reads it (once) and it is not a graph output. */
export function soleReader(v: Value): Node | undefined {
  if (v.isGraphOutput || v.uses.length !== 1) return undefined;
  return v.uses[0]!.node;
}

/** Whether two (possibly symbolic) shapes are known to be equal: same rank, every dim equal and known. */
export function sameShape(
  a: readonly Dim[] | null | undefined,
  b: readonly Dim[] | null | undefined,
): boolean {
  if (!a || !b || a.length !== b.length) return false;
  return a.every((d, i) => d !== null && d === b[i]);
}

/**
 * Make every reader of `out` (an output of a node about to become dead) read `replacement` instead, without
 * changing any graph output name. When `out` is an output of its graph, `replacement` takes over the output's
 * name, which is only possible when `replacement` is computed by a node of the same graph and is not itself a
 * graph output, input or initializer. Returns false (and changes nothing) when that is not possible.
 */
export function bypass(out: Value, replacement: Value): boolean {
  if (out === replacement) return false;
  if (out.isGraphOutput) {
    const r = replacement;
    if (!r.producer || r.graph !== out.graph || r.isGraphOutput || r.isGraphInput || r.const) return false;
    const outName = out.name;
    out.name = out.graph.uniqueName(`${outName}__bypassed`);
    r.name = outName;
  }
  out.replaceAllUsesWith(replacement);
  return true;
}

/** Whether `bypass(out, replacement)` would succeed. */
export function canBypass(out: Value, replacement: Value): boolean {
  if (out === replacement) return false;
  if (!out.isGraphOutput) return true;
  const r = replacement;
  return !!r.producer && r.graph === out.graph && !r.isGraphOutput && !r.isGraphInput && !r.const;
}

/**
 * Turn a node output into an initializer holding `t`, keeping its name: readers (in any graph) read the new
 * initializer, and the old value is renamed so it can be removed as dead code. Graph outputs are not touched
 * (returns undefined).
 */
export function replaceWithInitializer(v: Value, t: Tensor): Value | undefined {
  if (v.isGraphOutput) return undefined;
  const g = v.graph;
  const name = v.name;
  v.name = g.uniqueName(`${name}__folded`);
  const init = g.newValue(name, { kind: 'tensor', dtype: t.dtype, shape: [...t.dims] }, false);
  init.const = t;
  g.initializers.set(name, init);
  v.replaceAllUsesWith(init);
  return init;
}

/** A fresh initializer in `g` named after `base`. */
export function addInitializer(g: Graph, base: string, t: Tensor): Value {
  return g.addInitializer(base, t);
}

/**
 * Make input `i` of `node` the constant `t`: the initializer it reads is updated in place (keeping its name) when
 * this node is its only reader and it belongs to the node's graph; otherwise a new initializer named after `base`
 * is made (the old one goes when nothing reads it).
 */
export function setConstInput(node: Node, i: number, t: Tensor, base: string): void {
  const v = node.inputs[i];
  if (v && v.const && !v.isGraphInput && !v.isGraphOutput && v.graph === node.graph && v.uses.length === 1)
    node.graph.setInitializer(v, t);
  else node.setInput(i, addInitializer(node.graph, base, t));
}

/**
 * Replace `oldNodes` by one new node that computes the same outputs `outputs` (values of the old nodes, keeping
 * their names and readers). The new node is placed where the last old node was.
 */
export function replaceNodes(
  g: Graph,
  oldNodes: Node[],
  init: {
    opType: string;
    inputs: (Value | null)[];
    attrs?: Record<string, Attr | undefined>;
    name?: string;
    domain?: string;
  },
  outputs: (Value | null)[],
): Node {
  const at = Math.min(...oldNodes.map((n) => g.nodes.indexOf(n)).filter((i) => i >= 0), g.nodes.length);
  for (const n of oldNodes) g.removeNode(n, true);
  const node = g.addNode(
    {
      opType: init.opType,
      domain: init.domain ?? '',
      name: init.name,
      inputs: init.inputs,
      outputs: [],
      attrs: init.attrs ?? {},
    },
    at,
  );
  for (const o of outputs) g.attachOutput(node, o);
  return node;
}

/** Nodes in every graph of the model (subgraphs included). */
export function nodeCount(model: Model): number {
  let n = 0;
  for (const g of allGraphs(model.graph)) n += g.nodes.length;
  return n;
}

/** Op type → number of nodes, over every graph (subgraphs included); custom domains as `domain:Op`. Sorted by op. */
export function opCounts(model: Model): Record<string, number> {
  const c = new Map<string, number>();
  for (const g of allGraphs(model.graph))
    for (const n of g.nodes) {
      const k = isOnnxDomain(n) ? n.opType : `${n.domain}:${n.opType}`;
      c.set(k, (c.get(k) ?? 0) + 1);
    }
  return Object.fromEntries([...c].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Whether `g` is the main graph or sits only inside If branches (its values are computed once per run). */
export function isStraightLine(g: Graph): boolean {
  for (let cur: Graph = g; cur.parent; cur = cur.parent) {
    const owner = cur.parent.nodes.find((n) => n.subgraphs().includes(cur));
    if (!owner || !isOp(owner, 'If')) return false;
  }
  return true;
}

/**
 * Run `fn` with shapes inferred by the op registry (non-strict: unknown ops leave their outputs untyped; if
 * inference itself fails `fn` gets undefined and works without shapes). Inference writes types onto the values;
 * they are put back as they were afterwards, so a pass does not add value_info the input did not have.
 */
export async function withShapes<R>(
  model: Model,
  fn: (shapes: InferReport | undefined) => R | Promise<R>,
): Promise<R> {
  const saved = new Map<Value, ValueType | undefined>();
  for (const g of allGraphs(model.graph)) {
    for (const v of g.inputs) saved.set(v, v.type);
    for (const n of g.nodes) for (const o of n.outputs) if (o) saved.set(o, o.type);
  }
  let shapes: InferReport | undefined;
  try {
    shapes = inferShapes(model, { strict: false });
  } catch {
    shapes = undefined;
  }
  try {
    return await fn(shapes);
  } finally {
    for (const [v, t] of saved) v.type = t;
  }
}

/**
 * Shape inference (non-strict) that leaves the inferred types on the values; undefined when inference itself
 * fails. Prefer `withShapes`, which puts the declared types back afterwards.
 */
export function tryInferShapes(model: Model): InferReport | undefined {
  try {
    return inferShapes(model, { strict: false });
  } catch {
    return undefined;
  }
}
