// The graph IR: Model → Graph → Node / Value. A Value knows its producer and its uses; the IR's own methods keep
// both in sync, so code that edits a graph never patches those links by hand. Nodes are kept in a list whose
// order is the order they are written in; call `toposort()` after edits that may break topological order.
import { GraphError, InternalError } from '../errors.js';
import type { DType } from './dtype.js';
import { Tensor } from './tensor.js';
import { isOnnxDomain, normDomain } from '../util/domain.js';

export { isOnnxDomain, normDomain };

/** A dimension: a number, a symbolic name (ONNX dim_param), or null when unknown. */
export type Dim = number | string | null;

export interface TensorType {
  kind: 'tensor';
  dtype: DType;
  /** null when even the rank is unknown. */
  shape: Dim[] | null;
}

/** Sequence, map, optional or sparse types: kept verbatim as an encoded onnx.TypeProto. */
export interface OpaqueType {
  kind: 'opaque';
  proto: Uint8Array;
}

export type ValueType = TensorType | OpaqueType;

export function tensorType(dtype: DType, shape: Dim[] | null): TensorType {
  return { kind: 'tensor', dtype, shape };
}

export type Attr =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: Tensor }
  | { type: 'graph'; value: Graph }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensors'; value: Tensor[] }
  | { type: 'graphs'; value: Graph[] }
  /** Sparse tensors, type protos, references to function attributes: kept verbatim (encoded AttributeProto). */
  | { type: 'opaque'; value: Uint8Array };

export interface Use {
  node: Node;
  index: number;
}

export class Value {
  name: string;
  type: ValueType | undefined;
  /** The node that computes this value; null for graph inputs, initializers, and dangling references. */
  producer: Node | null = null;
  /** Which output of the producer this is. */
  producerIndex = -1;
  /** Every (node, input index) that reads this value, in any graph (subgraphs may read outer values). */
  readonly uses: Use[] = [];
  /** Constant data when the value is an initializer of its graph. */
  const: Tensor | undefined;
  readonly graph: Graph;
  docString = '';

  constructor(graph: Graph, name: string, type?: ValueType) {
    this.graph = graph;
    this.name = name;
    this.type = type;
  }

  get tensorType(): TensorType | undefined {
    return this.type?.kind === 'tensor' ? this.type : undefined;
  }
  get dtype(): DType | undefined {
    return this.tensorType?.dtype;
  }
  get shape(): Dim[] | null | undefined {
    return this.tensorType?.shape;
  }
  get isInitializer(): boolean {
    return this.const !== undefined;
  }
  get isGraphInput(): boolean {
    return this.graph.inputs.includes(this);
  }
  get isGraphOutput(): boolean {
    return this.graph.outputs.includes(this);
  }
  /** True when nothing reads the value and it is not a graph output. */
  get isUnused(): boolean {
    return this.uses.length === 0 && !this.isGraphOutput;
  }

  /**
   * Make every reader of this value (nodes in any graph, and graph outputs) read `other` instead. Pass `except`
   * when `other` is computed from this value (inserting a node after it), so that node keeps reading this value.
   */
  replaceAllUsesWith(other: Value, except?: Node): void {
    if (other === this) return;
    for (const u of [...this.uses]) if (u.node !== except) u.node.setInput(u.index, other);
    const outs = this.graph.outputs;
    for (let i = 0; i < outs.length; i++) if (outs[i] === this) outs[i] = other;
  }

  toString(): string {
    return `Value "${this.name}"`;
  }
}

export interface NodeInit {
  opType: string;
  inputs?: (Value | null)[];
  /** Output names (made unique) or a count of outputs. Default 1. */
  outputs?: (string | null)[] | number;
  attrs?: Record<string, Attr | undefined>;
  name?: string;
  domain?: string;
  docString?: string;
}

export class Node {
  name: string;
  opType: string;
  /** '' for the default ai.onnx domain. */
  domain: string;
  readonly inputs: (Value | null)[] = [];
  /** An omitted optional output is null. */
  readonly outputs: (Value | null)[] = [];
  readonly attrs = new Map<string, Attr>();
  docString = '';
  metadata: [string, string][] = [];
  readonly graph: Graph;

  constructor(graph: Graph, opType: string, domain: string, name: string) {
    this.graph = graph;
    this.opType = opType;
    this.domain = domain;
    this.name = name;
  }

  /** A readable handle for messages: the node name, or `<opType>#<index>` when it has none. */
  get label(): string {
    return this.name || `${this.opType}#${this.graph.nodes.indexOf(this)}`;
  }

  input(i: number): Value {
    const v = this.inputs[i];
    if (!v)
      throw new GraphError('missing-input', `Node "${this.label}" (${this.opType}) has no input ${i}`, {
        node: this.label,
      });
    return v;
  }
  output(i = 0): Value {
    const v = this.outputs[i];
    if (!v)
      throw new GraphError('missing-output', `Node "${this.label}" (${this.opType}) has no output ${i}`, {
        node: this.label,
      });
    return v;
  }

  setInput(i: number, v: Value | null): void {
    const old = this.inputs[i];
    if (old) {
      const k = old.uses.findIndex((u) => u.node === this && u.index === i);
      if (k >= 0) old.uses.splice(k, 1);
    }
    while (this.inputs.length <= i) this.inputs.push(null);
    this.inputs[i] = v;
    if (v) v.uses.push({ node: this, index: i });
  }

  /** Append an input (or an omitted one when null). */
  addInput(v: Value | null): void {
    this.setInput(this.inputs.length, v);
  }

  /** Drop trailing omitted inputs. */
  trimInputs(): void {
    while (this.inputs.length && this.inputs[this.inputs.length - 1] === null) this.inputs.pop();
  }

  attr(name: string): Attr | undefined {
    return this.attrs.get(name);
  }
  attrInt(name: string, dflt: number): number;
  attrInt(name: string): number | undefined;
  attrInt(name: string, dflt?: number): number | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'int' ? a.value : dflt;
  }
  attrFloat(name: string, dflt: number): number;
  attrFloat(name: string): number | undefined;
  attrFloat(name: string, dflt?: number): number | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'float' ? a.value : dflt;
  }
  attrInts(name: string, dflt: number[]): number[];
  attrInts(name: string): number[] | undefined;
  attrInts(name: string, dflt?: number[]): number[] | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'ints' ? a.value : dflt;
  }
  attrFloats(name: string): number[] | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'floats' ? a.value : undefined;
  }
  attrString(name: string, dflt: string): string;
  attrString(name: string): string | undefined;
  attrString(name: string, dflt?: string): string | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'string' ? a.value : dflt;
  }
  attrTensor(name: string): Tensor | undefined {
    const a = this.attrs.get(name);
    return a && a.type === 'tensor' ? a.value : undefined;
  }
  setAttr(name: string, a: Attr | undefined): void {
    if (a === undefined) this.attrs.delete(name);
    else this.attrs.set(name, a);
  }

  /** Subgraphs held in attributes (If/Loop/Scan bodies). */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const a of this.attrs.values()) {
      if (a.type === 'graph') out.push(a.value);
      else if (a.type === 'graphs') out.push(...a.value);
    }
    return out;
  }

  toString(): string {
    return `${this.opType} "${this.label}"`;
  }
}

export class Graph {
  name: string;
  readonly nodes: Node[] = [];
  inputs: Value[] = [];
  outputs: Value[] = [];
  /** Initializers by name (each a Value with `.const`). */
  readonly initializers = new Map<string, Value>();
  /** The graph whose node holds this one as an attribute; null for the main graph. */
  parent: Graph | null;
  docString = '';
  /** Parts kept verbatim for round trips (sparse initializers, quantization annotations, metadata): encoded protos. */
  opaque: {
    sparseInitializers: Uint8Array[];
    quantizationAnnotation: Uint8Array[];
    metadata: [string, string][];
  } = {
    sparseInitializers: [],
    quantizationAnnotation: [],
    metadata: [],
  };
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(name = 'main', parent: Graph | null = null) {
    this.name = name;
    this.parent = parent;
  }

  /** Whether `name` is taken in this graph or any enclosing one. */
  hasName(name: string): boolean {
    for (let g: Graph | null = this; g; g = g.parent) if (g.names.has(name)) return true;
    return false;
  }

  /** Record a name as taken (decoder use; normal code gets names from the methods below). */
  claimName(name: string): void {
    if (name) this.names.add(name);
  }

  /** A name not yet used in this graph or its ancestors, derived from `base`. */
  uniqueName(base: string): string {
    const b = base || 'v';
    if (!this.hasName(b)) {
      this.names.add(b);
      return b;
    }
    for (;;) {
      const n = `${b}_${++this.counter}`;
      if (!this.hasName(n)) {
        this.names.add(n);
        return n;
      }
    }
  }

  /** A free-standing value owned by this graph (decoder and builder use). */
  newValue(name: string, type?: ValueType, unique = true): Value {
    const v = new Value(this, unique ? this.uniqueName(name) : name, type);
    if (!unique) this.claimName(name);
    return v;
  }

  addInput(name: string, type: ValueType): Value {
    const v = this.newValue(name, type);
    this.inputs.push(v);
    return v;
  }

  addInitializer(name: string, t: Tensor): Value {
    const v = this.newValue(name, { kind: 'tensor', dtype: t.dtype, shape: [...t.dims] });
    v.const = t;
    this.initializers.set(v.name, v);
    return v;
  }

  /** Replace the data of an initializer (shape and dtype follow the new tensor). */
  setInitializer(v: Value, t: Tensor): void {
    if (!v.const) throw new InternalError('not-initializer', `${v} is not an initializer`);
    v.const = t;
    v.type = { kind: 'tensor', dtype: t.dtype, shape: [...t.dims] };
  }

  removeInitializer(v: Value): void {
    if (v.uses.length)
      throw new InternalError('in-use', `Initializer "${v.name}" is still read by ${v.uses.length} node(s)`);
    this.initializers.delete(v.name);
    const i = this.inputs.indexOf(v);
    if (i >= 0) this.inputs.splice(i, 1);
    v.const = undefined;
  }

  /** Create a node, append it (or insert it at `at`), and wire its inputs; outputs are new values. */
  addNode(init: NodeInit, at?: number): Node {
    const node = new Node(this, init.opType, init.domain ?? '', init.name ?? '');
    if (init.name) this.claimName(init.name);
    node.docString = init.docString ?? '';
    for (const v of init.inputs ?? []) node.addInput(v);
    const outs = init.outputs ?? 1;
    const names =
      typeof outs === 'number'
        ? Array.from({ length: outs }, (_, i) => `${init.name || init.opType}_out${i}`)
        : outs;
    for (const n of names) this.attachOutput(node, n === null ? null : this.newValue(n));
    for (const [k, a] of Object.entries(init.attrs ?? {})) if (a !== undefined) node.attrs.set(k, a);
    if (at === undefined) this.nodes.push(node);
    else this.nodes.splice(at, 0, node);
    return node;
  }

  /** Append `v` as the next output of `node` (decoder use). */
  attachOutput(node: Node, v: Value | null): void {
    if (v) {
      if (v.producer) throw new InternalError('two-producers', `${v} already has a producer`);
      v.producer = node;
      v.producerIndex = node.outputs.length;
    }
    node.outputs.push(v);
  }

  /** Remove a node: its inputs stop counting it as a use. Its outputs must be unused (unless `force`). */
  removeNode(node: Node, force = false): void {
    if (!force)
      for (const o of node.outputs)
        if (o && !o.isUnused)
          throw new InternalError('in-use', `Cannot remove ${node}: its output "${o.name}" is still used`, {
            node: node.label,
          });
    for (let i = 0; i < node.inputs.length; i++) node.setInput(i, null);
    const k = this.nodes.indexOf(node);
    if (k >= 0) this.nodes.splice(k, 1);
    for (const o of node.outputs) if (o) o.producer = null;
  }

  /** Find a node by name. */
  node(name: string): Node | undefined {
    return this.nodes.find((n) => n.name === name);
  }

  /** Every value visible by name in this graph (inputs, initializers, node outputs), not enclosing scopes. */
  valuesByName(): Map<string, Value> {
    const m = new Map<string, Value>();
    for (const v of this.inputs) m.set(v.name, v);
    for (const [k, v] of this.initializers) m.set(k, v);
    for (const n of this.nodes) for (const o of n.outputs) if (o) m.set(o.name, o);
    return m;
  }

  /** Look up a value by name in this graph, then its ancestors. */
  lookup(name: string): Value | undefined {
    for (let g: Graph | null = this; g; g = g.parent) {
      const v = g.valuesByName().get(name);
      if (v) return v;
    }
    return undefined;
  }

  /**
   * Order nodes so that every node comes after the producers of its inputs (stable: keeps the current order
   * where it can). Throws GraphError naming the nodes on a cycle. Values read from enclosing graphs count as
   * available; reads by subgraph nodes count as reads by the node that holds the subgraph.
   */
  toposort(): void {
    const order = topoOrder(this);
    if (order.cycle.length)
      throw new GraphError(
        'cycle',
        `Graph "${this.name}" has a cycle through node(s) ${order.cycle.map((n) => `"${n.label}"`).join(', ')}`,
        { node: order.cycle[0]!.label },
      );
    this.nodes.splice(0, this.nodes.length, ...order.sorted);
  }

  /**
   * Remove nodes whose outputs nobody reads (transitively) and initializers nobody reads. Graph outputs and
   * anything subgraphs read are kept. Returns the number of nodes removed.
   */
  removeUnused(): number {
    let removed = 0;
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      if (n.outputs.every((o) => !o || o.isUnused)) {
        this.removeNode(n);
        removed++;
      }
    }
    // a second sweep catches nodes that were listed before their readers
    if (removed) removed += this.removeUnused();
    for (const v of [...this.initializers.values()])
      if (v.uses.length === 0 && !v.isGraphOutput && !v.isGraphInput) this.removeInitializer(v);
    for (const n of this.nodes) for (const g of n.subgraphs()) removed += g.removeUnused();
    return removed;
  }

  /** Deep copy (subgraphs included); values read from enclosing graphs are mapped through `outer`. */
  clone(parent: Graph | null = this.parent, outer = new Map<Value, Value>()): Graph {
    const g = new Graph(this.name, parent);
    g.docString = this.docString;
    g.opaque = {
      sparseInitializers: [...this.opaque.sparseInitializers],
      quantizationAnnotation: [...this.opaque.quantizationAnnotation],
      metadata: this.opaque.metadata.map(([k, v]) => [k, v] as [string, string]),
    };
    for (const n of this.names) g.names.add(n);
    g.counter = this.counter;
    const map = new Map<Value, Value>(outer);
    const copyValue = (v: Value): Value => {
      const c = new Value(g, v.name, cloneType(v.type));
      c.docString = v.docString;
      c.const = v.const;
      map.set(v, c);
      return c;
    };
    for (const v of this.inputs) g.inputs.push(copyValue(v));
    for (const [k, v] of this.initializers) g.initializers.set(k, map.get(v) ?? copyValue(v));
    for (const n of this.nodes) for (const o of n.outputs) if (o) copyValue(o);
    const get = (v: Value): Value => {
      let m = map.get(v);
      if (!m) {
        // a dangling reference (no producer, not an input): keep it dangling in the copy
        m = new Value(g, v.name, cloneType(v.type));
        map.set(v, m);
      }
      return m;
    };
    for (const n of this.nodes) {
      const c = new Node(g, n.opType, n.domain, n.name);
      c.docString = n.docString;
      c.metadata = n.metadata.map(([k, v]) => [k, v] as [string, string]);
      for (const v of n.inputs) c.addInput(v ? get(v) : null);
      for (const o of n.outputs) g.attachOutput(c, o ? get(o) : null);
      for (const [k, a] of n.attrs) {
        if (a.type === 'graph') c.attrs.set(k, { type: 'graph', value: a.value.clone(g, map) });
        else if (a.type === 'graphs')
          c.attrs.set(k, { type: 'graphs', value: a.value.map((s) => s.clone(g, map)) });
        else
          c.attrs.set(
            k,
            a.type === 'ints' || a.type === 'floats' || a.type === 'strings'
              ? ({ ...a, value: [...a.value] } as Attr)
              : a,
          );
      }
      g.nodes.push(c);
    }
    g.outputs = this.outputs.map(get);
    return g;
  }
}

function cloneType(t: ValueType | undefined): ValueType | undefined {
  if (!t) return undefined;
  return t.kind === 'tensor' ? { kind: 'tensor', dtype: t.dtype, shape: t.shape ? [...t.shape] : null } : t;
}

/** Values a node reads, including those read by nodes inside its subgraphs from enclosing scopes. */
export function nodeReads(n: Node): Value[] {
  const out: Value[] = [];
  for (const v of n.inputs) if (v) out.push(v);
  for (const g of n.subgraphs())
    for (const sn of g.nodes) for (const v of nodeReads(sn)) if (v.graph !== g) out.push(v);
  return out;
}

export function topoOrder(g: Graph): { sorted: Node[]; cycle: Node[] } {
  const indeg = new Map<Node, number>();
  const readers = new Map<Node, Node[]>();
  for (const n of g.nodes) indeg.set(n, 0);
  for (const n of g.nodes) {
    const seen = new Set<Node>();
    for (const v of nodeReads(n)) {
      const p = v.producer;
      if (p && p.graph === g && indeg.has(p) && !seen.has(p)) {
        seen.add(p);
        indeg.set(n, indeg.get(n)! + 1);
        let r = readers.get(p);
        if (!r) readers.set(p, (r = []));
        r.push(n);
      }
    }
  }
  // stable Kahn: always take the earliest ready node in the current order
  const pos = new Map<Node, number>(g.nodes.map((n, i) => [n, i]));
  const ready: Node[] = g.nodes.filter((n) => indeg.get(n) === 0);
  const sorted: Node[] = [];
  const heap = new MinHeap<Node>((a, b) => pos.get(a)! - pos.get(b)!);
  for (const n of ready) heap.push(n);
  while (heap.size) {
    const n = heap.pop()!;
    sorted.push(n);
    for (const r of readers.get(n) ?? []) {
      const d = indeg.get(r)! - 1;
      indeg.set(r, d);
      if (d === 0) heap.push(r);
    }
  }
  const cycle = g.nodes.filter((n) => indeg.get(n)! > 0);
  return { sorted, cycle };
}

class MinHeap<T> {
  private a: T[] = [];
  constructor(private cmp: (x: T, y: T) => number) {}
  get size(): number {
    return this.a.length;
  }
  push(x: T): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.cmp(a[i]!, a[p]!) >= 0) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.a;
    if (!a.length) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.cmp(a[l]!, a[m]!) < 0) m = l;
        if (r < a.length && this.cmp(a[r]!, a[m]!) < 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

export class Model {
  irVersion = 8;
  /** Opset version by domain ('' = ai.onnx). */
  readonly opsetImports = new Map<string, number>();
  producerName = 'edgefit';
  producerVersion = '';
  domain = '';
  modelVersion = 0;
  docString = '';
  metadataProps: [string, string][] = [];
  graph: Graph;
  /** FunctionProtos and TrainingInfoProtos kept verbatim (encoded). */
  opaque: { functions: Uint8Array[]; trainingInfo: Uint8Array[]; configuration: Uint8Array[] } = {
    functions: [],
    trainingInfo: [],
    configuration: [],
  };

  constructor(graph: Graph = new Graph('main')) {
    this.graph = graph;
  }

  /** The opset version imported for `domain` ('' and 'ai.onnx' are the same domain). */
  opset(domain = ''): number | undefined {
    return this.opsetImports.get(normDomain(domain));
  }

  clone(): Model {
    const m = new Model(this.graph.clone(null));
    m.irVersion = this.irVersion;
    for (const [k, v] of this.opsetImports) m.opsetImports.set(k, v);
    m.producerName = this.producerName;
    m.producerVersion = this.producerVersion;
    m.domain = this.domain;
    m.modelVersion = this.modelVersion;
    m.docString = this.docString;
    m.metadataProps = this.metadataProps.map(([k, v]) => [k, v] as [string, string]);
    m.opaque = {
      functions: [...this.opaque.functions],
      trainingInfo: [...this.opaque.trainingInfo],
      configuration: [...this.opaque.configuration],
    };
    return m;
  }
}

/** Visit every graph of a model: the main graph, then subgraphs depth-first. */
export function* allGraphs(g: Graph): Generator<Graph> {
  yield g;
  for (const n of g.nodes) for (const s of n.subgraphs()) yield* allGraphs(s);
}
