// Physical removal: slice every constant a dependency graph lists to the kept channels, let the op rules rewrite
// their attributes and shape constants (depthwise group, Split sizes, Reshape targets), then re-infer shapes. The
// result is a dense, smaller model; its outputs keep their shape (groups reaching an output are never pruned).
import { InternalError } from '../../errors.js';
import { Tensor, type Model, type Value } from '../../ir/index.js';
import { type ChannelLayout, inferShapes } from '../../ops/index.js';
import type { DependencyGraph } from './deps.js';

/** Kept channel indices (ascending) per root group id; a group not in the map keeps every channel. */
export type KeepMap = Map<number, number[]>;

/** Element indices along an axis that survive, for a layout. */
export function keptIndices(deps: DependencyGraph, l: ChannelLayout, keep: KeepMap): number[] {
  const out: number[] = [];
  let offset = 0;
  for (const s of l) {
    const kept = keep.get(deps.find(s.group));
    for (let c = s.start; c < s.start + s.count; c++) {
      if (kept && !hasSorted(kept, c)) continue;
      const base = offset + (c - s.start) * s.inner;
      for (let k = 0; k < s.inner; k++) out.push(base + k);
    }
    offset += s.count * s.inner;
  }
  return out;
}

function hasSorted(a: number[], x: number): boolean {
  let lo = 0;
  let hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] === x) return true;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** A tensor's slices at `indices` along `axis` (any fixed-width dtype). */
export function gatherAxis(t: Tensor, axis: number, indices: readonly number[]): Tensor {
  const dims = [...t.dims];
  const esize = t.numel ? t.bytes.byteLength / t.numel : 0;
  if (!Number.isInteger(esize)) throw new InternalError('prune-dtype', `Cannot slice a ${t.dtype} tensor`);
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const n = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1) * esize;
  const out = new Uint8Array(outer * indices.length * inner);
  let w = 0;
  for (let o = 0; o < outer; o++)
    for (const i of indices) {
      const from = (o * n + i) * inner;
      out.set(t.bytes.subarray(from, from + inner), w);
      w += inner;
    }
  dims[axis] = indices.length;
  return new Tensor(t.dtype, dims, out, { name: t.name, docString: t.docString });
}

/**
 * Where a choice leaves a layout that must keep a channel (deps.keepOne: a Slice's part) empty, keep its first
 * channel too (with the channels of its period), in `keep` itself.
 */
export function keepNonEmpty(deps: DependencyGraph, keep: KeepMap): void {
  for (const l of deps.keepOne) {
    if (!l.length || keptIndices(deps, l, keep).length) continue;
    const s = l[0]!;
    const r = deps.find(s.group);
    const kept = keep.get(r);
    if (!kept) continue;
    const grp = deps.group(r);
    const add = new Set(kept);
    for (let c = s.start % grp.period; c < grp.size; c += grp.period) add.add(c);
    keep.set(
      r,
      [...add].sort((a, b) => a - b),
    );
  }
}

/**
 * Prune `deps.model` in place to the kept channels and return it. Refuses (InternalError) when a constant shared by
 * two readers would be sliced two different ways.
 */
export function applyPruning(deps: DependencyGraph, keep: KeepMap): Model {
  const m = deps.model;
  const g = m.graph;
  keepNonEmpty(deps, keep);
  for (const [id, kept] of keep) {
    const grp = deps.group(id);
    if (!grp.prunable && kept.length !== grp.size)
      throw new InternalError('prune-blocked', `Group ${id} is not prunable: ${grp.reasons.join('; ')}`);
    if (!kept.length) throw new InternalError('prune-empty', `Group ${id} would keep no channel`);
  }
  // every constant: its slicing per axis (several readers must agree)
  const plan = new Map<Value, Map<number, number[]>>();
  for (const s of deps.slices) {
    const idx = keptIndices(deps, s.layout, keep);
    let axes = plan.get(s.value);
    if (!axes) plan.set(s.value, (axes = new Map()));
    const prev = axes.get(s.axis);
    if (prev && (prev.length !== idx.length || prev.some((x, i) => x !== idx[i])))
      throw new InternalError(
        'prune-shared',
        `Constant "${s.value.name}" is read by several nodes that prune axis ${s.axis} differently`,
      );
    axes.set(s.axis, idx);
  }
  for (const [v, axes] of plan) {
    let t = v.const!;
    let changed = false;
    for (const [axis, idx] of axes)
      if (idx.length !== t.dims[axis]) {
        t = gatherAxis(t, axis, idx);
        changed = true;
      }
    if (changed) g.setInitializer(v, t);
  }
  const kept = (l: ChannelLayout) => keptIndices(deps, l, keep).length;
  for (const fix of deps.fixes) fix(kept);
  // shapes: forget every inferred intermediate type, infer again from the (unchanged) inputs
  const outputs = new Set(g.outputs);
  for (const n of g.nodes) for (const o of n.outputs) if (o && !outputs.has(o)) o.type = undefined;
  g.removeUnused();
  inferShapes(m, { strict: false });
  return m;
}
