// Structural checks of a graph. `verify` collects every problem instead of stopping at the first, and each problem
// names the node or value it is on. Op-level checks (dtype agreement, attribute ranges) are added by the op
// registry through the `checkNode` hook, so this module knows nothing about particular ops.
import { GraphError } from '../errors.js';
import { type Graph, type Model, type Node, normDomain, type Value, topoOrder } from './graph.js';

export type ProblemKind =
  | 'dangling-input'
  | 'cycle'
  | 'duplicate-name'
  | 'dtype-mismatch'
  | 'undefined-output'
  | 'broken-link'
  | 'missing-opset'
  | 'op';

export interface Problem {
  kind: ProblemKind;
  message: string;
  node?: string;
  value?: string;
  graph: string;
}

export interface VerifyOptions {
  /** Extra per-node checks (the op registry's dtype/attribute rules); return problem messages. */
  checkNode?: (node: Node) => { kind: ProblemKind; message: string }[];
  /** Opset imports, to report nodes whose domain is not imported. */
  opsetImports?: Map<string, number>;
}

export function verify(g: Graph, opts: VerifyOptions = {}): Problem[] {
  const problems: Problem[] = [];
  verifyGraph(g, opts, problems, new Set());
  return problems;
}

export function verifyModel(m: Model, opts: Omit<VerifyOptions, 'opsetImports'> = {}): Problem[] {
  return verify(m.graph, { ...opts, opsetImports: m.opsetImports });
}

/** Throw a GraphError listing every problem (the first one's node/value is the subject). */
export function assertValid(g: Graph, opts: VerifyOptions = {}, what = `graph "${g.name}"`): void {
  const ps = verify(g, opts);
  if (ps.length) throw problemsError(ps, what);
}

export function problemsError(ps: Problem[], what: string): GraphError {
  const lines = ps.slice(0, 20).map((p) => `  - ${p.message}`);
  if (ps.length > 20) lines.push(`  … and ${ps.length - 20} more`);
  return new GraphError(
    'invalid-graph',
    `${what} is invalid (${ps.length} problem${ps.length > 1 ? 's' : ''}):\n${lines.join('\n')}`,
    {
      node: ps[0]!.node,
      value: ps[0]!.value,
    },
  );
}

function verifyGraph(g: Graph, opts: VerifyOptions, out: Problem[], outerVisible: Set<Value>): void {
  const gname = g.name;
  const add = (kind: ProblemKind, message: string, node?: Node, value?: Value) =>
    out.push({ kind, message, node: node?.label, value: value?.name, graph: gname });

  // names are unique within the graph (inputs, initializers that are not also inputs, node outputs)
  const byName = new Map<string, Value>();
  const claim = (v: Value, where: string, node?: Node) => {
    const prev = byName.get(v.name);
    if (prev && prev !== v)
      add(
        'duplicate-name',
        `Value name "${v.name}" is defined twice in graph "${gname}" (${where})`,
        node,
        v,
      );
    else byName.set(v.name, v);
  };
  for (const v of g.inputs) claim(v, 'graph input');
  for (const v of g.initializers.values()) claim(v, 'initializer');
  for (const n of g.nodes)
    for (const o of n.outputs) {
      if (!o) continue;
      claim(o, `output of node "${n.label}"`, n);
      if (o.producer !== n)
        add(
          'broken-link',
          `Value "${o.name}" is an output of node "${n.label}" but names another producer`,
          n,
          o,
        );
    }

  const visible = new Set<Value>(outerVisible);
  for (const v of g.inputs) visible.add(v);
  for (const v of g.initializers.values()) visible.add(v);
  for (const n of g.nodes) for (const o of n.outputs) if (o) visible.add(o);

  for (const n of g.nodes) {
    if (opts.opsetImports && !opts.opsetImports.has(normDomain(n.domain)))
      add(
        'missing-opset',
        `Node "${n.label}" (${n.opType}) is in domain "${n.domain || 'ai.onnx'}", which the model does not import`,
        n,
      );
    n.inputs.forEach((v, i) => {
      if (!v) return;
      if (!visible.has(v))
        add(
          'dangling-input',
          `Input ${i} "${v.name}" of node "${n.label}" (${n.opType}) is not a graph input, initializer or node output`,
          n,
          v,
        );
      if (!v.uses.some((u) => u.node === n && u.index === i))
        add(
          'broken-link',
          `Value "${v.name}" does not list node "${n.label}" input ${i} among its uses`,
          n,
          v,
        );
    });
    if (opts.checkNode) for (const p of opts.checkNode(n)) add(p.kind, p.message, n);
    for (const s of n.subgraphs()) verifyGraph(s, opts, out, visible);
  }
  g.outputs.forEach((v, i) => {
    if (!visible.has(v))
      add(
        'undefined-output',
        `Graph output ${i} "${v.name}" of graph "${gname}" is not computed by any node or input`,
        undefined,
        v,
      );
  });

  const { cycle } = topoOrder(g);
  if (cycle.length)
    add(
      'cycle',
      `Graph "${gname}" has a cycle through node(s) ${cycle.map((n) => `"${n.label}"`).join(', ')}`,
      cycle[0],
    );
}
