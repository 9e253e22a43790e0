// Rewrite rules in the style of onnxscript's rewriter: a rule has a readable name, a *pattern* (`match`: the
// structure around an anchor node), a *check* (the conditions that make the rewrite valid, returning the reason
// when they fail) and a *rewrite*. `applyRules` sweeps every graph once (subgraphs included), applies each rule
// whose pattern and check pass, then runs the one generic clean-up (dead nodes/initializers, topological order).
import type { Graph, Model, Node } from '../ir/index.js';
import { allGraphs, cleanup } from '../ir/index.js';
import type { InferReport } from '../ops/index.js';
import type { Note } from '../util/note.js';
import { isOnnxDomain } from './util.js';

export interface RuleContext {
  readonly model: Model;
  readonly graph: Graph;
  /** ai.onnx opset of the model. */
  readonly opset: number;
  /** Shape inference results, when the pass ran it (types are then set on values). */
  readonly shapes?: InferReport;
}

export interface Rule<M = unknown> {
  /** Readable, kebab-case: 'fold-bn-into-conv', 'transpose-transpose'. */
  readonly name: string;
  /** Anchor op types (ai.onnx domain). */
  readonly anchors: readonly string[];
  /** The pattern: the matched nodes/values around `node`, or undefined when the structure does not match. */
  match(node: Node, ctx: RuleContext): M | undefined;
  /** Conditions for a valid rewrite: undefined when it may proceed, or the reason it cannot (kept as a note). */
  check?(m: M, ctx: RuleContext): string | undefined;
  /** Do the rewrite; may return a note describing it. Returning false means nothing was changed after all. */
  rewrite(m: M, ctx: RuleContext): string | false | void;
}

export interface RuleStats {
  changed: boolean;
  /** Applications per rule name. */
  counts: Record<string, number>;
  /** What was rewritten (capped per rule) and why matches were skipped. */
  notes: string[];
  /** The same, structured: a `kept` note per failed check (rule, node, reason), a `rewrite` note per rewrite. */
  findings: Note[];
}

/** Rewrite notes kept per rule; the rest are counted in one "… and N more" note. */
const NOTES_PER_RULE = 12;
const MAX_REWRITES_PER_NODE = 8;

/** Make a rule with the match type inferred from `match`. */
export function rule<M>(r: Rule<M>): Rule<M> {
  return r;
}

/**
 * Sweep every graph of `model` (in place) once in node order, applying `rules`; then remove dead nodes and
 * initializers and restore topological order if anything changed.
 */
export function applyRules(
  model: Model,
  rules: readonly Rule<any>[],
  opts: { shapes?: InferReport; graphs?: 'all' | 'main' } = {},
): RuleStats {
  const stats: RuleStats = { changed: false, counts: {}, notes: [], findings: [] };
  const rewriteNotes = new Map<string, string[]>();
  const byOp = new Map<string, Rule<any>[]>();
  for (const r of rules) for (const a of r.anchors) byOp.set(a, [...(byOp.get(a) ?? []), r]);
  const opset = model.opset('') ?? 13;
  const graphs = opts.graphs === 'main' ? [model.graph] : [...allGraphs(model.graph)];
  for (const graph of graphs) {
    const ctx: RuleContext = { model, graph, opset, shapes: opts.shapes };
    // the nodes still in the graph (rebuilt after each rewrite, which may remove nodes)
    let present = new Set(graph.nodes);
    for (const node of [...graph.nodes]) {
      if (!isOnnxDomain(node)) continue;
      // after a rewrite the same node may match again (Reshape∘Reshape∘Reshape): retry it, a few times at most
      for (let round = 0, again = true; again && round < MAX_REWRITES_PER_NODE; round++) {
        again = false;
        for (const r of byOp.get(node.opType) ?? []) {
          // removed, or dead (a bypassed node waits for the clean-up): nothing to rewrite
          if (!present.has(node) || node.outputs.every((o) => !o || o.isUnused)) break;
          const m = r.match(node, ctx);
          if (m === undefined) continue;
          const why = r.check?.(m, ctx);
          if (why !== undefined) {
            stats.notes.push(why);
            stats.findings.push({
              kind: 'kept',
              text: why,
              rule: r.name,
              node: node.label,
              opType: node.opType,
              reason: why,
            });
            continue;
          }
          const note = r.rewrite(m, ctx);
          if (note === false) continue;
          stats.changed = true;
          stats.counts[r.name] = (stats.counts[r.name] ?? 0) + 1;
          stats.findings.push({
            kind: 'rewrite',
            text: note || `${r.name}: ${node.opType} "${node.label}"`,
            rule: r.name,
            node: node.label,
            opType: node.opType,
          });
          if (note) {
            const list = rewriteNotes.get(r.name) ?? [];
            list.push(note);
            rewriteNotes.set(r.name, list);
          }
          present = new Set(graph.nodes);
          again = present.has(node);
          break;
        }
      }
    }
  }
  for (const [name, list] of rewriteNotes) {
    stats.notes.push(...list.slice(0, NOTES_PER_RULE));
    if (list.length > NOTES_PER_RULE) stats.notes.push(`${name}: … and ${list.length - NOTES_PER_RULE} more`);
  }
  if (stats.changed) cleanup(model);
  return stats;
}

/** The generic clean-up after edits (src/ir/cleanup.ts). */
export { cleanup };
