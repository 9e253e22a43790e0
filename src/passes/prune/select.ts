// Which channels to keep: per-layer (every group loses the same fraction) or global ranking (scores normalised by
// their group's mean, the lowest fraction of all channels removed), then a minimum per group and rounding of the
// kept count to a multiple (8 by default: vector widths and INT8 kernels like multiples of 8).
import { InputError } from '../../errors.js';
import type { KeepMap } from './apply.js';
import type { PruneGroup } from './deps.js';

export interface SelectOptions {
  /** Fraction of each group's channels (per-layer) or of all prunable channels (global) to remove, in [0, 1). */
  ratio: number;
  /** Default 'layer'. */
  scope?: 'layer' | 'global';
  /** Never keep fewer channels in a group (default 8, or the group size when smaller). */
  minChannels?: number;
  /** Round kept counts to a multiple of this (default 8; 1 = no rounding). */
  roundTo?: number;
  /** Per group: the channel count to start from (iterative schedules prune a fraction of the original size). */
  baseSize?: Map<number, number>;
}

export function checkRatio(name: string, r: number, max = 1): number {
  if (!Number.isFinite(r) || r < 0 || r >= max)
    throw new InputError('prune-ratio', `${name} must be in [0, ${max}): got ${r}`, { value: name });
  return r;
}

/** Kept count after rounding and the minimum. */
export function keptCount(size: number, want: number, minChannels: number, roundTo: number): number {
  let k = roundTo > 1 ? Math.round(want / roundTo) * roundTo : Math.round(want);
  k = Math.max(k, Math.min(minChannels, size), Math.min(roundTo, size), 1);
  return Math.min(k, size);
}

/** Indices of the `k` highest scores, ascending. */
export function topK(scores: Float64Array, k: number): number[] {
  const idx = Array.from(scores.keys());
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

export function selectChannels(
  groups: readonly PruneGroup[],
  scores: Map<number, Float64Array>,
  opts: SelectOptions,
): KeepMap {
  checkRatio('ratio', opts.ratio);
  const minC = opts.minChannels ?? 8;
  const round = opts.roundTo ?? 8;
  const keep: KeepMap = new Map();
  const prunable = groups.filter((g) => g.prunable && scores.has(g.id));
  const want = new Map<number, number>();
  if ((opts.scope ?? 'layer') === 'layer') {
    for (const g of prunable) want.set(g.id, (opts.baseSize?.get(g.id) ?? g.size) * (1 - opts.ratio));
  } else {
    const all: { g: number; s: number }[] = [];
    let total = 0;
    for (const g of prunable) {
      const s = scores.get(g.id)!;
      const mean = s.reduce((a, b) => a + b, 0) / s.length || 1;
      for (const v of s) all.push({ g: g.id, s: v / mean });
      total += opts.baseSize?.get(g.id) ?? g.size;
    }
    all.sort((a, b) => a.s - b.s);
    const removed = new Map<number, number>();
    const drop = Math.round(total * opts.ratio);
    const target = all.length - (total - drop);
    for (let i = 0; i < Math.min(Math.max(target, 0), all.length); i++)
      removed.set(all[i]!.g, (removed.get(all[i]!.g) ?? 0) + 1);
    for (const g of prunable) want.set(g.id, g.size - (removed.get(g.id) ?? 0));
  }
  for (const g of prunable) {
    const s = scores.get(g.id)!;
    const p = g.period ?? g.size;
    if (p >= g.size) {
      const k = keptCount(g.size, want.get(g.id)!, minC, round);
      if (k < g.size) keep.set(g.id, topK(s, k));
      continue;
    }
    // periodic: one choice of channels within a period, repeated; scores summed over the repeats
    const reps = g.size / p;
    const folded = new Float64Array(p);
    for (let i = 0; i < g.size; i++) folded[i % p]! += s[i]!;
    const k = keptCount(p, want.get(g.id)! / reps, Math.ceil(minC / reps), round);
    if (k >= p) continue;
    const local = topK(folded, k);
    const kept: number[] = [];
    for (let r = 0; r < reps; r++) for (const i of local) kept.push(r * p + i);
    keep.set(g.id, kept);
  }
  return keep;
}
