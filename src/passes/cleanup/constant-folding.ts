// constant-folding: compute what is computable before the model runs.
//
// 1. Shape values. With the op registry's shape inference, a value whose elements are all known numbers (the
//    int64 results of Shape → Gather → Unsqueeze → Concat chains on static dims) becomes an initializer. A Reshape
//    whose target is known up to symbolic dims gets a constant target, writing a symbolic dim as 0 (copy the
//    input's dim at the same position, when it is the same symbol) or -1 (at most one); an Expand likewise writes
//    a symbolic dim equal to the input's aligned dim as 1. This is what makes torch's shape chains disappear.
//    Done in the main graph and If branches only (a Loop body's shapes may change between iterations).
// 2. ONNX Runtime. Every node whose inputs are all constants (initializers, Constant outputs, or outputs of other
//    such nodes) is evaluated — not by JavaScript loops: the constant subgraph is copied into a small model and run
//    once through src/runtime, all graphs' foldable nodes in one run, fetching only the values something else reads.
//    Those values become initializers. Skipped: non-deterministic ops (RandomNormal, …), DequantizeLinear (a QDQ
//    model keeps its integer weights), control flow and sequence ops, custom domains, graph outputs, outputs with
//    more than `maxElements` elements, and outputs with more than `maxGrowElements` elements that are larger than
//    every constant they are computed from (ConstantOfShape/Expand/Tile would otherwise bloat the file).
import type { Note } from '../../util/note.js';
import type { Dim, Node, Tensor, Value } from '../../ir/index.js';
import { createHash } from 'node:crypto';
import { Graph, Model, Tensor as T, allGraphs } from '../../ir/index.js';
import { RuntimeError, runModel, type HostTensor } from '../../runtime/index.js';
import { inferShapes, type InferReport } from '../../ops/index.js';
import { definePass } from '../manager.js';
import { cleanup } from '../rule.js';
import {
  constTensor,
  isOnnxDomain,
  isOp,
  isStraightLine,
  replaceWithInitializer,
  withShapes,
} from '../util.js';

export interface ConstantFoldingOptions {
  /** Outputs with more elements than this are never folded (default 1,048,576). */
  maxElements: number;
  /** Outputs above this many elements are folded only when no larger than their largest constant source (default 4096). */
  maxGrowElements: number;
  /** Fold shape computations known from shape inference (default true). */
  foldShapes: boolean;
  /** Evaluate constant subgraphs with ONNX Runtime (default true). */
  evaluate: boolean;
  /** Op types never folded, in addition to the built-in list. */
  excludeOps: string[];
}

export const NONDETERMINISTIC_OPS: ReadonlySet<string> = new Set([
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'Multinomial',
  'Bernoulli',
  'Dropout',
]);

const NEVER_FOLD: ReadonlySet<string> = new Set([
  'Constant',
  'DequantizeLinear',
  'If',
  'Loop',
  'Scan',
  'SequenceConstruct',
  'SequenceEmpty',
  'SequenceInsert',
  'SequenceAt',
  'SequenceErase',
  'SequenceLength',
  'SequenceMap',
  'SplitToSequence',
  'ConcatFromSequence',
  'Optional',
  'OptionalGetElement',
  'OptionalHasElement',
]);

interface Stats {
  notes: string[];
  findings: Note[];
  counts: Record<string, number>;
}

/** A constant the pass left unfolded: a plain note and a structured one. */
function kept(st: Stats, opType: string | undefined, node: string | undefined, reason: string): void {
  const text = `constant folding: kept ${opType} "${node}"${reason.startsWith('output') ? ' ' : ': '}${reason}`;
  st.notes.push(text);
  st.findings.push({
    kind: 'kept',
    text,
    rule: 'constant-folding',
    reason,
    ...(node !== undefined ? { node } : {}),
    ...(opType !== undefined ? { opType } : {}),
  });
}

const bump = (s: Stats, k: string, n = 1) => {
  if (n) s.counts[k] = (s.counts[k] ?? 0) + n;
};

// ------------------------------------------------------------------------------------------------ shape values

function allNumbers(v: readonly Dim[] | undefined): v is number[] {
  return !!v && v.every((d) => typeof d === 'number');
}

function foldShapeValues(m: Model, shapes: InferReport, st: Stats): boolean {
  let changed = false;
  for (const g of [...allGraphs(m.graph)]) {
    if (!isStraightLine(g)) continue;
    for (const n of [...g.nodes]) {
      if (isOp(n, 'Constant')) continue;
      for (const o of n.outputs) {
        if (!o || o.isUnused || o.isGraphOutput) continue;
        const val = shapes.values.get(o);
        const dims = o.shape;
        if (
          !allNumbers(val) ||
          !allNumbers(dims ?? undefined) ||
          (o.dtype !== 'int64' && o.dtype !== 'int32')
        )
          continue;
        if (replaceWithInitializer(o, T.from(o.dtype, dims as number[], val))) {
          bump(st, 'shape-value');
          changed = true;
        }
      }
    }
    for (const n of [...g.nodes]) {
      if (isOp(n, 'Reshape')) changed = reshapeTarget(n, shapes, st) || changed;
      else if (isOp(n, 'Expand')) changed = expandTarget(n, shapes, st) || changed;
    }
  }
  return changed;
}

/**
 * Step 1 alone, synchronously and in place (no ORT): shape computations known from shape inference become
 * constants, Reshape/Expand targets constant up to symbolic dims. Whether anything changed. Structured pruning
 * runs it first, so that exporters' Shape → Gather chains (chunk bounds, shuffle targets) are sizes it can rewrite.
 */
export function foldStaticShapes(m: Model): boolean {
  let shapes: InferReport;
  try {
    shapes = inferShapes(m, { strict: false });
  } catch {
    return false;
  }
  const changed = foldShapeValues(m, shapes, { notes: [], findings: [], counts: {} });
  if (changed) cleanup(m);
  return changed;
}

function symbolicOf(v: Value | null | undefined, shapes: InferReport): Dim[] | undefined {
  return v ? shapes.values.get(v) : undefined;
}

function reshapeTarget(n: Node, shapes: InferReport, st: Stats): boolean {
  const sv = n.inputs[1];
  if (!sv || constTensor(sv)) return false;
  const val = symbolicOf(sv, shapes);
  if (!val || val.some((d) => d === null)) return false;
  const xs = n.inputs[0]?.shape;
  const allowzero = n.attrInt('allowzero', 0) !== 0;
  const target: number[] = [];
  let minus = val.includes(-1) ? 1 : 0;
  for (let i = 0; i < val.length; i++) {
    const d = val[i]!;
    if (typeof d === 'number') target.push(d);
    else if (!allowzero && xs && xs[i] === d) target.push(0);
    else if (minus++ === 0) target.push(-1);
    else return false;
  }
  const c = n.graph.addInitializer(`${sv.name}_static`, T.from('int64', [target.length], target));
  n.setInput(1, c);
  bump(st, 'reshape-static-target');
  return true;
}

function expandTarget(n: Node, shapes: InferReport, st: Stats): boolean {
  const sv = n.inputs[1];
  if (!sv || constTensor(sv)) return false;
  const val = symbolicOf(sv, shapes);
  const xs = n.inputs[0]?.shape;
  if (!val || !xs || val.some((d) => d === null)) return false;
  const target: number[] = [];
  for (let i = 0; i < val.length; i++) {
    const d = val[i]!;
    if (typeof d === 'number') {
      target.push(d);
      continue;
    }
    const j = i - (val.length - xs.length);
    if (j < 0 || xs[j] !== d) return false;
    target.push(1);
  }
  const c = n.graph.addInitializer(`${sv.name}_static`, T.from('int64', [target.length], target));
  n.setInput(1, c);
  bump(st, 'expand-static-target');
  return true;
}

// ------------------------------------------------------------------------------------------------ ORT evaluation

interface Plan {
  nodes: Node[];
  /** Values read by something that is not folded: what the run must fetch. */
  frontier: Value[];
  /** Largest constant source (elements) each folded value is computed from. */
  source: Map<Value, number>;
  /** The deepest graph holding a constant each folded value is computed from: where its initializer goes. */
  home: Map<Value, Graph>;
}

function depth(g: Graph): number {
  let d = 0;
  for (let c = g.parent; c; c = c.parent) d++;
  return d;
}

function planFold(m: Model, o: ConstantFoldingOptions): Plan {
  const exclude = new Set(o.excludeOps);
  const nodes: Node[] = [];
  const folded = new Set<Value>();
  const source = new Map<Value, number>();
  const home = new Map<Value, Graph>();
  for (const g of allGraphs(m.graph))
    for (const n of g.nodes) {
      if (
        !isOnnxDomain(n) ||
        NEVER_FOLD.has(n.opType) ||
        NONDETERMINISTIC_OPS.has(n.opType) ||
        exclude.has(n.opType)
      )
        continue;
      if (n.subgraphs().length || !n.inputs.some((v) => v) || !n.outputs.some((v) => v)) continue;
      // home: the graph of the largest constant source (any graph enclosing the node may hold the result; this
      // one lets results that sibling subgraphs compute from one outer weight share an initializer)
      let src = -1;
      let h = g;
      let ok = true;
      for (const v of n.inputs) {
        if (!v) continue;
        const t = constTensor(v);
        let size: number;
        let vh: Graph;
        if (t) [size, vh] = [t.numel, v.graph];
        else if (folded.has(v)) [size, vh] = [source.get(v)!, home.get(v)!];
        else {
          ok = false;
          break;
        }
        if (size > src || (size === src && depth(vh) < depth(h))) [src, h] = [size, vh];
      }
      if (!ok) continue;
      nodes.push(n);
      for (const v of n.outputs)
        if (v) {
          folded.add(v);
          source.set(v, src);
          home.set(v, h);
        }
    }
  const inPlan = new Set(nodes);
  const frontier: Value[] = [];
  for (const n of nodes)
    for (const v of n.outputs)
      if (v && !v.isGraphOutput && v.uses.some((u) => !inPlan.has(u.node))) frontier.push(v);
  return { nodes, frontier, source, home };
}

/** A model holding copies of `nodes` (and the constants they read) whose outputs are `fetch`. */
function foldModel(m: Model, nodes: Node[], fetch: Value[]): { model: Model; names: Map<Value, string> } {
  const fm = new Model(new Graph('fold'));
  fm.irVersion = Math.max(m.irVersion, 7);
  for (const [d, v] of m.opsetImports) fm.opsetImports.set(d, v);
  const g = fm.graph;
  const map = new Map<Value, Value>();
  let k = 0;
  const get = (v: Value): Value => {
    let c = map.get(v);
    if (!c) {
      c = g.addInitializer(`c${k++}`, constTensor(v)!);
      map.set(v, c);
    }
    return c;
  };
  for (const n of nodes) {
    const inputs = n.inputs.map((v) => (v ? get(v) : null));
    const c = g.addNode({
      opType: n.opType,
      domain: n.domain,
      name: `n${k++}`,
      inputs,
      outputs: n.outputs.map((o) => (o ? `v${k++}` : null)),
    });
    for (const [a, attr] of n.attrs) c.attrs.set(a, attr);
    n.outputs.forEach((o, i) => {
      if (o) map.set(o, c.output(i));
    });
  }
  const names = new Map<Value, string>();
  for (const v of fetch) {
    const c = map.get(v)!;
    g.outputs.push(c);
    names.set(v, c.name);
  }
  return { model: fm, names };
}

function toTensor(h: HostTensor): Tensor | undefined {
  if (h.dtype === 'string') return undefined;
  try {
    return T.from(h.dtype, h.dims, h.data);
  } catch {
    return undefined;
  }
}

async function evaluate(m: Model, o: ConstantFoldingOptions, st: Stats): Promise<boolean> {
  const plan = planFold(m, o);
  if (!plan.frontier.length) return false;
  let results: Map<Value, HostTensor>;
  try {
    results = await runFold(m, plan.nodes, plan.frontier);
  } catch (e) {
    if (!(e instanceof RuntimeError)) throw e;
    // one bad node spoils the batch: fold node by node, one level at a time (the manager repeats the pass)
    st.notes.push(
      `constant folding: ONNX Runtime could not evaluate the constant subgraph in one run (${e.message.split('\n')[0]}); folding node by node`,
    );
    results = new Map();
    for (const n of plan.nodes) {
      if (!n.inputs.every((v) => !v || constTensor(v))) continue;
      const outs = n.outputs.filter((v): v is Value => !!v && plan.frontier.includes(v));
      const fetch = outs.length
        ? outs
        : n.outputs.filter((v): v is Value => !!v && !v.isGraphOutput && v.uses.length > 0);
      if (!fetch.length) continue;
      try {
        for (const [v, t] of await runFold(m, [n], fetch)) results.set(v, t);
      } catch (e2) {
        if (!(e2 instanceof RuntimeError)) throw e2;
        kept(st, n.opType, n.label, `ONNX Runtime cannot evaluate it (${e2.message.split('\n')[0]})`);
      }
    }
  }
  let changed = false;
  // identical results placed in the same graph share one initializer (sibling If branches often compute the
  // same thing from one outer weight)
  const made = new Map<string, Value[]>();
  const names = modelNames(m);
  for (const [v, h] of results) {
    const numel = h.dims.reduce((a, b) => a * b, 1);
    const src = plan.source.get(v) ?? 0;
    if (numel > o.maxElements) {
      kept(
        st,
        v.producer?.opType,
        v.producer?.label,
        `output "${v.name}": ${numel} elements is above maxElements ${o.maxElements}`,
      );
      continue;
    }
    if (numel > o.maxGrowElements && numel > src) {
      kept(
        st,
        v.producer?.opType,
        v.producer?.label,
        `output "${v.name}": ${numel} elements would grow the model (largest constant source has ${src})`,
      );
      continue;
    }
    const t = toTensor(h);
    if (!t || v.isGraphOutput) continue;
    const g = plan.home.get(v) ?? v.graph;
    const key = `${t.dtype}[${t.dims}]${createHash('sha1').update(t.bytes).digest('hex')}`;
    let init = (made.get(key) ?? []).find((c) => c.graph === g && c.const!.equals(t));
    if (!init) {
      if (g === v.graph) init = replaceWithInitializer(v, t)!;
      else {
        // an enclosing graph: the name must not clash with any other name in the model (no shadowing)
        const base = v.name;
        v.name = v.graph.uniqueName(`${base}__folded`);
        names.delete(base);
        let name = base;
        for (let k = 1; names.has(name) || g.hasName(name); k++) name = `${base}_${k}`;
        names.add(name);
        g.claimName(name);
        init = g.newValue(name, { kind: 'tensor', dtype: t.dtype, shape: [...t.dims] }, false);
        init.const = t;
        g.initializers.set(name, init);
        v.replaceAllUsesWith(init);
      }
      made.set(key, [...(made.get(key) ?? []), init]);
    } else v.replaceAllUsesWith(init);
    changed = true;
    bump(st, 'ort-fold');
  }
  if (changed)
    st.notes.push(
      `constant folding: ${results.size} value(s) of ${plan.nodes.length} constant node(s) evaluated by ONNX Runtime`,
    );
  return changed;
}

/** Every value name in every graph of the model. */
function modelNames(m: Model): Set<string> {
  const s = new Set<string>();
  for (const g of allGraphs(m.graph)) for (const k of g.valuesByName().keys()) s.add(k);
  return s;
}

async function runFold(m: Model, nodes: Node[], fetch: Value[]): Promise<Map<Value, HostTensor>> {
  const { model, names } = foldModel(m, nodes, fetch);
  const out = await runModel(
    model,
    {},
    { optimizationLevel: 'disabled', threads: 1, label: 'the constant subgraph' },
  );
  const res = new Map<Value, HostTensor>();
  for (const [v, name] of names) {
    const h = out[name];
    if (h) res.set(v, h);
  }
  return res;
}

// ------------------------------------------------------------------------------------------------ the pass

export const constantFolding = definePass<ConstantFoldingOptions>(
  'constant-folding',
  'Evaluate constant subgraphs with ONNX Runtime and fold statically known shape computations into initializers.',
  async (m, o) => {
    const st: Stats = { notes: [], findings: [], counts: {} };
    let changed = false;
    if (o.foldShapes && (await withShapes(m, (shapes) => !!shapes && foldShapeValues(m, shapes, st)))) {
      changed = true;
      cleanup(m);
    }
    if (o.evaluate && (await evaluate(m, o, st))) {
      changed = true;
      cleanup(m);
    }
    return { changed, notes: st.notes, findings: st.findings, counts: st.counts };
  },
  { maxElements: 1 << 20, maxGrowElements: 4096, foldShapes: true, evaluate: true, excludeOps: [] },
);
