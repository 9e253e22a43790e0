// Shape and dtype inference driver. Walks a graph in topological order and asks each node's registry entry for its
// output types; small integer tensors (shapes, axes, sizes) are propagated as known *values* (numbers or symbolic
// dims) so that a Reshape whose target shape is computed by Shape → Gather → Unsqueeze → Concat still gets an exact
// output shape. If/Loop bodies are inferred as far as their outputs need (an If whose condition is known infers
// only the branch that runs).
import { GraphError, ShapeError, UnsupportedOpError } from '../errors.js';
import type { Dim, Graph, Model, Node, Tensor, TensorType, Value, ValueType } from '../ir/index.js';
import { topoOrder } from '../ir/index.js';
import { constOf, tensorToSym } from './const.js';
import type { ProblemKind } from '../ir/verify.js';
import {
  type InferCtx,
  type OpEntry,
  type SymValue,
  lookup,
  normDomain,
  UnknownInputType,
} from './registry.js';
import { formatDims, mergeDim } from './sym.js';
import { MAX_VALUE_ELEMENTS } from './util.js';

export { constOf, constantNodeTensor, tensorToSym } from './const.js';

export interface InferProblem {
  kind: ProblemKind | 'shape' | 'conflict';
  message: string;
  node?: string;
  value?: string;
  graph: string;
}

export interface InferReport {
  /** Nodes whose rule ran. */
  inferred: number;
  /** Node outputs (all graphs visited) that have a tensor type with a known rank afterwards. */
  typed: number;
  /** Names of node outputs that still have no type or no rank. */
  unknown: string[];
  /** Ops outside the registry (only with `strict: false`; strict mode throws UnsupportedOpError). */
  unsupported: { node: string; opType: string; domain: string; opset: number | undefined; graph: string }[];
  /** Declared value_info types that disagree with the inferred ones (the inferred type is kept). */
  conflicts: InferProblem[];
  /** dtype mismatches, and (with `strict: false`, or inside If/Loop branches) attribute/shape errors. */
  problems: InferProblem[];
  /** Elements known at inference time (constants, shape arithmetic), by value. */
  values: Map<Value, SymValue>;
}

export interface InferOptions {
  /** Default true: unsupported ops throw UnsupportedOpError and bad attributes throw ShapeError. */
  strict?: boolean;
}

/** Infer dtypes and shapes of every node output of `model` (sets `value.type`) and report what it found. */
export function inferShapes(model: Model, opts: InferOptions = {}): InferReport {
  const st = new InferState(model, opts.strict ?? true);
  st.inferGraph(model.graph, undefined, false);
  return st.finish();
}

/**
 * Types set by inference, mapped to the declared type (value_info) they were merged with. A later run treats
 * only the declared part as given, so stale inferred dims never survive a change of the inputs.
 */
const DECLARED = new WeakMap<ValueType, ValueType | undefined>();

function declaredOf(t: ValueType | undefined): ValueType | undefined {
  return t && DECLARED.has(t) ? DECLARED.get(t) : t;
}

class InferState {
  readonly report: InferReport = {
    inferred: 0,
    typed: 0,
    unknown: [],
    unsupported: [],
    conflicts: [],
    problems: [],
    values: new Map(),
  };
  private fresh = 0;
  private readonly constSym = new Map<Value, SymValue | null>();
  private readonly inferredNodes = new Set<Node>();
  private readonly visited = new Set<Graph>();

  constructor(
    readonly model: Model,
    readonly strict: boolean,
  ) {}

  symbolicValue(v: Value | null | undefined): SymValue | undefined {
    if (!v) return undefined;
    const known = this.report.values.get(v);
    if (known) return known;
    let c = this.constSym.get(v);
    if (c === undefined) {
      const t = constOf(v);
      c = (t && tensorToSym(t)) ?? null;
      this.constSym.set(v, c);
    }
    return c ?? undefined;
  }

  /** Counts and de-duplicated messages (a Loop body may be inferred twice). */
  finish(): InferReport {
    const r = this.report;
    r.inferred = this.inferredNodes.size;
    for (const g of this.visited)
      for (const n of g.nodes)
        for (const o of n.outputs) {
          if (!o) continue;
          if (o.type?.kind === 'tensor' && o.type.shape) r.typed++;
          else r.unknown.push(o.name);
        }
    const dedupe = (ps: InferProblem[]) =>
      ps.filter((p, i) => ps.findIndex((q) => q.message === p.message) === i);
    r.conflicts = dedupe(r.conflicts);
    r.problems = dedupe(r.problems);
    return r;
  }

  /** Set a value's type: the declared type merged with the inferred one (remembering the declared part). */
  setType(v: Value, inferred: ValueType | undefined, n: Node | undefined): void {
    const declared = declaredOf(v.type);
    const t = this.merge(v, declared, inferred, n);
    if (t) DECLARED.set(t, declared);
    v.type = t;
  }

  /** Outputs the rule could not type go back to their declared types (dropping anything an earlier run inferred). */
  private keepDeclared(n: Node): void {
    for (const o of n.outputs) if (o) o.type = declaredOf(o.type);
  }

  freshDim(hint: string): string {
    return `${hint}_${++this.fresh}`;
  }

  /** Infer every node of `g`; `tolerant` turns shape errors into report problems (used in If/Loop bodies). */
  inferGraph(
    g: Graph,
    inputTypes: (ValueType | undefined)[] | undefined,
    tolerant: boolean,
  ): (ValueType | undefined)[] {
    this.visited.add(g);
    if (inputTypes)
      g.inputs.forEach((v, i) => {
        const t = inputTypes[i];
        if (t) this.setType(v, t, undefined);
      });
    const { sorted, cycle } = topoOrder(g);
    if (cycle.length) {
      const msg = `Graph "${g.name}" has a cycle through node(s) ${cycle.map((n) => `"${n.label}"`).join(', ')}`;
      if (this.strict && !tolerant) throw new GraphError('cycle', msg, { node: cycle[0]!.label });
      this.report.problems.push({ kind: 'cycle', message: msg, node: cycle[0]!.label, graph: g.name });
    }
    for (const n of sorted) this.inferNode(n, tolerant);
    return g.outputs.map((v) => v.type);
  }

  private inferNode(n: Node, tolerant: boolean): void {
    const domain = normDomain(n.domain);
    const opset = this.model.opset(domain);
    const entry = lookup(n.opType, domain, opset);
    if (!entry) {
      if (this.strict) throw new UnsupportedOpError(n.opType, domain, opset, n.label);
      this.report.unsupported.push({
        node: n.label,
        opType: n.opType,
        domain: domain || 'ai.onnx',
        opset,
        graph: n.graph.name,
      });
      this.keepDeclared(n);
      return;
    }
    for (const p of checkWith(entry, n))
      this.report.problems.push({ ...p, node: n.label, graph: n.graph.name });
    const ctx = new Ctx(this, n, opset ?? Math.max(...entry.sinceVersion));
    let types: (ValueType | undefined)[];
    try {
      types = entry.infer(n, ctx);
    } catch (e) {
      if (e instanceof UnknownInputType) return this.keepDeclared(n);
      if (e instanceof ShapeError && (tolerant || !this.strict)) {
        this.report.problems.push({
          kind: 'shape',
          message: e.message,
          node: n.label,
          value: e.subject.value,
          graph: n.graph.name,
        });
        return this.keepDeclared(n);
      }
      throw e;
    }
    this.inferredNodes.add(n);
    n.outputs.forEach((o, i) => {
      if (o) this.setType(o, types[i], n);
    });
    if (entry.value) {
      let vals: (SymValue | undefined)[] = [];
      try {
        vals = entry.value(n, ctx);
      } catch (e) {
        if (!(e instanceof UnknownInputType || e instanceof ShapeError)) throw e;
      }
      n.outputs.forEach((o, i) => {
        const v = vals[i];
        if (!o || !v) return;
        const shape = o.tensorType?.shape;
        if (!shape || !shape.every((d) => typeof d === 'number')) return;
        const numel = (shape as number[]).reduce((a, b) => a * b, 1);
        if (numel !== v.length || numel > MAX_VALUE_ELEMENTS) return;
        this.report.values.set(o, v);
      });
    }
  }

  /** Combine a declared type with an inferred one; report disagreements (the inferred type wins those). */
  merge(
    v: Value,
    declared: ValueType | undefined,
    inferred: ValueType | undefined,
    n: Node | undefined,
  ): ValueType | undefined {
    if (!inferred) return declared;
    if (!declared || declared.kind !== 'tensor' || inferred.kind !== 'tensor') return inferred;
    const conflict = (why: string) =>
      this.report.conflicts.push({
        kind: 'conflict',
        message: `Value "${v.name}"${n ? ` (output of node "${n.label}", ${n.opType})` : ''}: declared ${declared.dtype}${formatDims(declared.shape)} but inferred ${inferred.dtype}${formatDims(inferred.shape)} (${why})`,
        node: n?.label,
        value: v.name,
        graph: v.graph.name,
      });
    if (declared.dtype !== inferred.dtype) conflict('dtype');
    const ds = declared.shape;
    const is = inferred.shape;
    let shape: Dim[] | null;
    if (is === null) shape = ds ? [...ds] : null;
    else if (ds === null) shape = is;
    else if (ds.length !== is.length) {
      conflict('rank');
      shape = is;
    } else {
      shape = is.map((d, i) => {
        const e = ds[i]!;
        if (typeof d === 'number' && typeof e === 'number' && d !== e) {
          conflict(`dim ${i}`);
          return d;
        }
        return mergeDim(d, e);
      });
    }
    return { kind: 'tensor', dtype: inferred.dtype, shape };
  }

  subgraphOutputValue(g: Graph, i: number): SymValue | undefined {
    return this.symbolicValue(g.outputs[i]);
  }
}

class Ctx implements InferCtx {
  readonly opset: number;
  constructor(
    private readonly st: InferState,
    readonly node: Node,
    opset: number,
  ) {
    this.opset = opset;
  }
  opsetOf(domain: string): number | undefined {
    return this.st.model.opset(domain);
  }
  hasInput(i: number): boolean {
    return !!this.node.inputs[i];
  }
  inputType(i: number): TensorType {
    const t = this.node.inputs[i]?.type;
    if (!t || t.kind !== 'tensor') throw new UnknownInputType(i);
    return t;
  }
  optInputType(i: number): TensorType | undefined {
    const t = this.node.inputs[i]?.type;
    return t && t.kind === 'tensor' ? t : undefined;
  }
  constValue(i: number): Tensor | undefined {
    return constOf(this.node.inputs[i]);
  }
  symbolicValue(i: number): SymValue | undefined {
    return this.st.symbolicValue(this.node.inputs[i]);
  }
  intsValue(i: number): number[] | undefined {
    const v = this.symbolicValue(i);
    if (!v || !v.every((d) => typeof d === 'number')) return undefined;
    return v as number[];
  }
  inferSubgraph(g: Graph, inputTypes?: (ValueType | undefined)[]): (ValueType | undefined)[] {
    // shape errors inside bodies become report problems: a branch that never runs may not fit the shapes
    return this.st.inferGraph(g, inputTypes, true);
  }
  subgraphOutputValue(g: Graph, i: number): SymValue | undefined {
    return this.st.subgraphOutputValue(g, i);
  }
  fail(message: string, value?: Value | string): never {
    const n = this.node;
    const vname = typeof value === 'string' ? value : value?.name;
    const what =
      typeof value === 'string' ? ` (attribute/value "${value}")` : value ? ` (value "${value.name}")` : '';
    throw new ShapeError(
      'shape-rule',
      `Node "${n.label}" (${n.opType}${n.domain ? `, ${n.domain}` : ''})${what}: ${message}`,
      {
        node: n.label,
        opType: n.opType,
        value: vname,
      },
    );
  }
  freshDim(hint: string): string {
    return this.st.freshDim(hint);
  }
}

// ---------------------------------------------------------------- dtype checks (verify's checkNode hook)

function checkWith(entry: OpEntry, n: Node): { kind: ProblemKind; message: string }[] {
  const types = n.inputs.map((v) => (v?.type?.kind === 'tensor' ? v.type : undefined));
  const out: { kind: ProblemKind; message: string }[] = [];
  if (entry.sameDtype) {
    const idx = entry.sameDtype === 'all' ? types.map((_, i) => i) : entry.sameDtype;
    let first = -1;
    for (const i of idx) {
      const t = types[i];
      if (!t) continue;
      if (first < 0) {
        first = i;
        continue;
      }
      const f = types[first]!;
      if (t.dtype !== f.dtype) {
        out.push({
          kind: 'dtype-mismatch',
          message: `Node "${n.label}" (${n.opType}): input ${i} "${n.inputs[i]!.name}" is ${t.dtype} but input ${first} "${n.inputs[first]!.name}" is ${f.dtype}; ${n.opType} needs them to have one element type`,
        });
        break;
      }
    }
  }
  if (entry.check) out.push(...entry.check(n, types));
  return out;
}

/**
 * The registry's per-node checks for `verify` (dtype agreement, op-specific rules), using the newest entry for the
 * node's op. Use `makeCheckNode(model)` to check against the model's opset imports.
 */
export function checkNode(node: Node): { kind: ProblemKind; message: string }[] {
  const entry = lookup(node.opType, node.domain, undefined);
  return entry ? checkWith(entry, node) : [];
}

/** `checkNode` bound to a model's opsets; also reports ops the registry does not know. */
export function makeCheckNode(model: Model): (node: Node) => { kind: ProblemKind; message: string }[] {
  return (node) => {
    const domain = normDomain(node.domain);
    const opset = model.opset(domain);
    const entry = lookup(node.opType, domain, opset);
    if (!entry)
      return [
        { kind: 'op', message: new UnsupportedOpError(node.opType, domain, opset, node.label).message },
      ];
    return checkWith(entry, node);
  };
}
