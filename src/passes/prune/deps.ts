// Dependency analysis for structured pruning: which channels of which tensors must be removed together. Walks the
// graph in topological order and asks each node's op-registry entry (its `prune` rule, src/ops/prune.ts) how the
// channels it receives flow to its outputs, which constants must be sliced and which channels are coupled. A
// *group* is the unit of pruning: a set of channels created by one or more producers (Conv / Linear outputs, merged
// by residual Adds, squeeze-excitation Muls, Concats across another axis); groups that reach something the rules
// cannot map (a graph output, an op with no rule, a reshape into heads) are blocked, with the reason.
import { InternalError } from '../../errors.js';
import type { Model, Node, Value } from '../../ir/index.js';
import {
  type ChannelLayout,
  constOf,
  layoutLength,
  lookup,
  type PruneCtx,
  type TracedAxis,
} from '../../ops/index.js';
import { tryInferShapes } from '../util.js';

/** A constant input the pass slices along one axis as the groups of `layout` are pruned. */
export interface SliceMember {
  value: Value;
  axis: number;
  layout: ChannelLayout;
  /** The node reading the constant, and which input it is. */
  node: Node;
  input: number;
  /** 'out': the weights that produce the group's channels; 'in': weights that read them; 'param': per-channel. */
  role: 'out' | 'in' | 'param';
}

export interface PruneGroup {
  /** Root id (after merging). */
  id: number;
  /** Channels in the group. */
  size: number;
  /** Nodes whose outputs create the channels. */
  producers: string[];
  /** Blocked groups are never pruned; `reasons` says why. */
  prunable: boolean;
  reasons: string[];
  /** Constants sliced when the group is pruned (the slices of this group's channels only). */
  members: SliceMember[];
}

export interface DependencyGraph {
  /** The analysed model: a clone of the input, toposorted and shape-inferred; apply() edits it. */
  model: Model;
  groups: PruneGroup[];
  /** Group id (as stored in any layout) → root group. */
  find(id: number): number;
  group(id: number): PruneGroup;
  slices: SliceMember[];
  fixes: ((kept: (l: ChannelLayout) => number) => void)[];
}

class UnionFind {
  parent: number[] = [];
  add(): number {
    this.parent.push(this.parent.length);
    return this.parent.length - 1;
  }
  find(x: number): number {
    while (this.parent[x] !== x) x = this.parent[x] = this.parent[this.parent[x]!]!;
    return x;
  }
}

/**
 * Give every reader of a weight its own initializer: exporters share equal constants (torch writes an Identity of
 * one initializer for every identical zero bias), and readers in different groups prune them differently.
 */
export function unshareConstants(m: Model): void {
  const g = m.graph;
  for (const n of [...g.nodes]) {
    const src = n.inputs[0];
    if (n.opType !== 'Identity' || !src?.const || n.outputs[0]?.isGraphOutput) continue;
    const out = n.output(0);
    const copy = g.addInitializer(g.uniqueName(out.name), src.const);
    out.replaceAllUsesWith(copy);
    g.removeNode(n, true);
  }
  for (const v of [...g.initializers.values()]) {
    if (!v.const || v.const.dims.length === 0 || v.isGraphOutput) continue;
    const readers = v.uses.filter((u) => u.node.graph === g);
    for (const u of readers.slice(1))
      u.node.setInput(u.index, g.addInitializer(g.uniqueName(v.name), v.const));
  }
}

/**
 * Analyse `model` (not modified: the analysis works on a clone). Every group reachable by the registry's rules is
 * returned, prunable or not.
 */
export function analyzeDependencies(model: Model): DependencyGraph {
  const m = model.clone();
  const g = m.graph;
  unshareConstants(m);
  g.toposort();
  tryInferShapes(m);
  const uf = new UnionFind();
  const sizes: number[] = [];
  const producers: string[][] = [];
  const reasons: string[][] = [];
  const traced = new Map<Value, TracedAxis>();
  const slices: SliceMember[] = [];
  const fixes: DependencyGraph['fixes'] = [];

  const block = (l: ChannelLayout, reason: string) => {
    for (const s of l) {
      const r = reasons[uf.find(s.group)]!;
      if (!r.includes(reason)) r.push(reason);
    }
  };
  const union = (a: number, b: number) => {
    const ra = uf.find(a);
    const rb = uf.find(b);
    if (ra === rb) return;
    uf.parent[rb] = ra;
    producers[ra]!.push(...producers[rb]!);
    for (const r of reasons[rb]!) if (!reasons[ra]!.includes(r)) reasons[ra]!.push(r);
  };
  const couple = (a: ChannelLayout, b: ChannelLayout, where: string) => {
    const ok =
      a.length === b.length &&
      a.every((s, i) => {
        const t = b[i]!;
        if (s.count !== t.count || s.inner !== t.inner) return false;
        if (uf.find(s.group) === uf.find(t.group)) return s.start === t.start;
        return s.start === 0 && t.start === 0 && sizes[s.group] === s.count && sizes[t.group] === t.count;
      });
    if (!ok) {
      const why = `${where} couples channels of different structure`;
      block(a, why);
      block(b, why);
      return;
    }
    a.forEach((s, i) => union(s.group, b[i]!.group));
  };

  for (const node of g.nodes) {
    const entry = lookup(node.opType, node.domain, m.opset(node.domain));
    const ins = node.inputs.map((v) => (v ? traced.get(v) : undefined));
    const subgraphReads = node.subgraphs().length > 0;
    if (!entry?.prune || subgraphReads) {
      const why = `${node.opType} node "${node.label}" has no pruning rule`;
      for (const t of ins) if (t) block(t.layout, why);
      continue;
    }
    const created = new Set<number>();
    const ctx: PruneCtx = {
      node,
      traced: (i) => ins[i],
      inShape: (i) => node.inputs[i]?.shape ?? undefined,
      outShape: (i) => node.outputs[i]?.shape ?? undefined,
      isConst: (i) => node.inputs[i]?.const !== undefined,
      constInts: (i) => {
        const t = constOf(node.inputs[i]);
        return t && (t.dtype === 'int64' || t.dtype === 'int32') ? t.toNumbers() : undefined;
      },
      setOutput: (i, axis, layout) => {
        const v = node.outputs[i];
        if (v) traced.set(v, { axis, layout });
      },
      newGroup: (size) => {
        const id = uf.add();
        sizes.push(size);
        producers.push([node.label]);
        reasons.push([]);
        created.add(id);
        return [{ group: id, start: 0, count: size, inner: 1 }];
      },
      slice: (i, axis, layout) => {
        const v = node.inputs[i];
        if (!v?.const)
          return block(layout, `${node.opType} "${node.label}" input ${i} is computed, not a constant`);
        if (v.const.dims[axis] !== layoutLength(layout))
          return block(
            layout,
            `${node.opType} "${node.label}" input ${i} has ${v.const.dims[axis]} ≠ ${layoutLength(layout)} channels`,
          );
        const role = layout.every((s) => created.has(s.group))
          ? 'out'
          : v.const.dims.length >= 2
            ? 'in'
            : 'param';
        slices.push({ value: v, axis, layout, node, input: i, role });
      },
      couple: (a, b) => couple(a, b, `${node.opType} "${node.label}"`),
      block,
      onPrune: (fix) => fixes.push(fix),
    };
    entry.prune(node, ctx);
  }
  // channels that leave the graph keep their count (model outputs keep their shape)
  for (const v of g.outputs) {
    const t = traced.get(v);
    if (t) block(t.layout, `reaches the graph output "${v.name}"`);
  }
  // weights read as 'in' by one consumer and as 'out' by another (shared) are fine; a constant sliced by a group
  // whose layout disagrees on another reader is caught at apply time
  const roots = new Map<number, PruneGroup>();
  for (let id = 0; id < sizes.length; id++) {
    const r = uf.find(id);
    if (!roots.has(r))
      roots.set(r, {
        id: r,
        size: sizes[r]!,
        producers: producers[r]!,
        prunable: true,
        reasons: reasons[r]!,
        members: [],
      });
  }
  for (const s of slices) {
    const seen = new Set<number>();
    for (const seg of s.layout) {
      const r = uf.find(seg.group);
      if (seen.has(r)) continue;
      seen.add(r);
      roots.get(r)!.members.push(s);
    }
  }
  const groups = [...roots.values()];
  for (const grp of groups) {
    if (!grp.members.some((s) => s.role === 'out') && !grp.reasons.length)
      grp.reasons.push('no constant weights produce these channels');
    grp.prunable = grp.reasons.length === 0;
  }
  return {
    model: m,
    groups,
    find: (id) => uf.find(id),
    group: (id) => {
      const r = roots.get(uf.find(id));
      if (!r) throw new InternalError('prune-group', `No pruning group ${id}`);
      return r;
    },
    slices,
    fixes,
  };
}
