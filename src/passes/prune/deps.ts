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
  sliceLayout,
  type PruneCtx,
  type TracedAxis,
} from '../../ops/index.js';
import { foldStaticShapes } from '../cleanup/constant-folding.js';
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
  /**
   * Channels c and c + period are kept or removed together (grouped convolutions, channel shuffles): the group is
   * pruned as `size / period` repeats of the same choice. Equal to `size` when unconstrained.
   */
  period: number;
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
  /** Layouts that must keep at least one channel (applyPruning adds one when a choice empties them). */
  keepOne: ChannelLayout[];
  fixes: ((kept: (l: ChannelLayout) => number) => void)[];
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
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
  foldStaticShapes(m);
  unshareConstants(m);
  g.toposort();
  tryInferShapes(m);
  const uf = new UnionFind();
  const sizes: number[] = [];
  // per group: its channels repeat their pruning choice every `period` channels (the size when unconstrained)
  const period: number[] = [];
  const producers: string[][] = [];
  const reasons: string[][] = [];
  const traced = new Map<Value, TracedAxis>();
  const slices: SliceMember[] = [];
  const fixes: DependencyGraph['fixes'] = [];
  const keepOne: ChannelLayout[] = [];

  // a group whose channel i is pruned with element i of another layout (a fresh branch concatenated beside shuffled
  // channels): resolved into that layout wherever it appears
  const alias = new Map<number, ChannelLayout>();
  const merged = new Set<number>();
  const resolve = (l: ChannelLayout): ChannelLayout => {
    if (!alias.size || !l.some((s) => alias.has(s.group))) return l;
    const out: ChannelLayout = [];
    for (const s of l) {
      const a = alias.get(s.group);
      if (!a) out.push(s);
      else
        for (const x of resolve(sliceLayout(a, s.start, s.start + s.count)!))
          out.push({ ...x, inner: x.inner * s.inner });
    }
    return out;
  };
  const block = (layout: ChannelLayout, reason: string) => {
    const l = resolve(layout);
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
    merged.add(ra);
    period[ra] = gcd(period[ra]!, period[rb]!);
    producers[ra]!.push(...producers[rb]!);
    for (const r of reasons[rb]!) if (!reasons[ra]!.includes(r)) reasons[ra]!.push(r);
  };
  /** A whole group nothing else constrains yet (no merges, no period): it may become an alias. */
  const fresh = (l: ChannelLayout): number | undefined => {
    const s = l.length === 1 ? l[0]! : undefined;
    if (!s || s.start !== 0 || s.inner !== 1 || s.count !== sizes[s.group]) return undefined;
    const g = s.group;
    return uf.find(g) === g && !merged.has(g) && period[g] === sizes[g] && !alias.has(g) ? g : undefined;
  };
  const aliasTo = (g: number, l: ChannelLayout): boolean => {
    if (l.some((s) => s.inner !== 1 || uf.find(s.group) === g) || layoutLength(l) !== sizes[g]) return false;
    alias.set(g, l);
    for (const r of reasons[g]!) block(l, r);
    const first = uf.find(l[0]!.group);
    producers[first]!.push(...producers[g]!);
    return true;
  };
  const couple = (a0: ChannelLayout, b0: ChannelLayout, where: string) => {
    const a = resolve(a0);
    const b = resolve(b0);
    const ok =
      a.length === b.length &&
      a.every((s, i) => {
        const t = b[i]!;
        if (s.count !== t.count || s.inner !== t.inner) return false;
        if (uf.find(s.group) === uf.find(t.group)) return s.start === t.start;
        return s.start === 0 && t.start === 0 && sizes[s.group] === s.count && sizes[t.group] === t.count;
      });
    if (!ok) {
      // element-wise: a fresh group takes the other side's channels one by one
      const fb = fresh(b);
      if (fb !== undefined && aliasTo(fb, a)) return;
      const fa = fresh(a);
      if (fa !== undefined && aliasTo(fa, b)) return;
      const why = `${where} couples channels of different structure`;
      block(a, why);
      block(b, why);
      return;
    }
    a.forEach((s, i) => union(s.group, b[i]!.group));
  };
  const coupleChunks = (l0: ChannelLayout, parts: number, where: string) => {
    const l = resolve(l0);
    const n = layoutLength(l);
    if (parts <= 1) return;
    const c = n / parts;
    const s = l[0]!;
    if (l.length === 1 && s.inner === 1 && s.start === 0 && s.count === sizes[s.group]) {
      // one group cut into equal chunks: channel i of every chunk is one choice
      if (!Number.isInteger(c)) return block(l, `${where} cuts ${n} channels into ${parts} unequal parts`);
      const r = uf.find(s.group);
      period[r] = gcd(period[r]!, c);
      return;
    }
    const chunks = Number.isInteger(c)
      ? Array.from({ length: parts }, (_, i) => sliceLayout(l, i * c, (i + 1) * c))
      : [];
    if (!chunks.length || chunks.some((x) => !x))
      return block(l, `${where} cuts the channels inside a repeated block`);
    for (const x of chunks.slice(1)) couple(chunks[0]!, x!, where);
  };

  for (const node of g.nodes) {
    const entry = lookup(node.opType, node.domain, m.opset(node.domain));
    const ins: (TracedAxis | undefined)[] = node.inputs.map((v) => (v ? traced.get(v) : undefined));
    const subgraphReads = node.subgraphs().length > 0;
    if (!entry?.prune || subgraphReads) {
      const why = `${node.opType} node "${node.label}" has no pruning rule`;
      for (const t of ins) if (t) block(t.layout, why);
      continue;
    }
    if (!entry.pruneSplit)
      ins.forEach((t, i) => {
        if (!t?.split) return;
        block(t.layout, `the channel axis split into [${t.split}, …] reaches ${node.opType} "${node.label}"`);
        ins[i] = undefined;
      });
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
      setOutput: (i, axis, layout, split) => {
        const v = node.outputs[i];
        if (v) traced.set(v, { axis, layout, ...(split ? { split } : {}) });
      },
      newGroup: (size) => {
        const id = uf.add();
        sizes.push(size);
        period.push(size);
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
      coupleChunks: (l, parts) => coupleChunks(l, parts, `${node.opType} "${node.label}"`),
      block,
      keepOne: (l) => keepOne.push(l),
      onPrune: (fix) => fixes.push((kept) => fix((l) => kept(resolve(l)))),
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
  for (const s of slices) s.layout = resolve(s.layout);
  keepOne.forEach((l, i) => (keepOne[i] = resolve(l)));
  for (let id = 0; id < sizes.length; id++) {
    if (alias.has(id)) continue;
    const r = uf.find(id);
    if (!roots.has(r))
      roots.set(r, {
        id: r,
        size: sizes[r]!,
        period: period[r]!,
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
    keepOne,
    fixes,
  };
}
