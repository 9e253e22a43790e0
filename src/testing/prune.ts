// Test support for structured pruning: prune a model and check it in ORT against the original whose removed
// channels are cut off by zeroing the weights that read them (what slicing the original weights leaves).
import assert from 'node:assert/strict';
import type { Model } from '../ir/index.js';
import { Tensor } from '../ir/index.js';
import { applyPruning, keepNonEmpty, keptIndices, type KeepMap } from '../passes/prune/apply.js';
import { analyzeDependencies, type DependencyGraph } from '../passes/prune/deps.js';
import { groupImportance } from '../passes/prune/importance.js';
import { findAttention, pruneHeads } from '../passes/prune/heads.js';
import { selectChannels } from '../passes/prune/select.js';
import { type HostTensor, runModel } from '../runtime/index.js';
import { maxAbsDiff, randomFeeds } from './fixtures.js';

/** The original model with every weight slice that reads a removed channel set to zero. */
export function zeroRemoved(model: Model, deps: DependencyGraph, keep: KeepMap): Model {
  const ref = model.clone();
  for (const s of deps.slices) {
    if (s.role !== 'in') continue;
    const v = ref.graph.initializers.get(s.value.name)!;
    const t = v.const!;
    const kept = new Set(keptIndices(deps, s.layout, keep));
    const data = Float32Array.from(t.typed() as Float32Array);
    const dims = t.dims;
    const n = dims[s.axis]!;
    const inner = dims.slice(s.axis + 1).reduce((a, b) => a * b, 1);
    for (let i = 0; i < data.length; i++) if (!kept.has(Math.floor(i / inner) % n)) data[i] = 0;
    ref.graph.setInitializer(v, Tensor.from('float32', [...dims], data));
  }
  return ref;
}

export interface PruneCheck {
  deps: DependencyGraph;
  keep: KeepMap;
  pruned: Model;
  maxDiff: number;
  paramsBefore: number;
  paramsAfter: number;
}

export function paramCount(m: Model): number {
  let n = 0;
  for (const v of m.graph.initializers.values())
    if (v.const && v.const.dtype.startsWith('float')) n += v.const.numel;
  return n;
}

/**
 * Prune `ratio` of every prunable group by L1 (no rounding), run both models in ORT, assert identical outputs
 * (same shapes, max |diff| ≤ tol) against the zeroed original.
 */
export async function checkPrune(
  model: Model,
  opts: { ratio?: number; tol?: number; feeds?: Record<string, HostTensor>; expectGroups?: number } = {},
): Promise<PruneCheck> {
  const deps = analyzeDependencies(model);
  const prunable = deps.groups.filter((g) => g.prunable);
  if (opts.expectGroups !== undefined) assert.equal(prunable.length, opts.expectGroups, 'prunable groups');
  assert.ok(prunable.length > 0, 'some group is prunable');
  const imp = await groupImportance(model, deps, { kind: 'l1' });
  const keep = selectChannels(deps.groups, imp.scores, {
    ratio: opts.ratio ?? 0.5,
    roundTo: 1,
    minChannels: 1,
  });
  keepNonEmpty(deps, keep);
  const ref = zeroRemoved(model, deps, keep);
  const pruned = applyPruning(deps, keep);
  const feeds = opts.feeds ?? randomFeeds(model, 7, 2);
  const a = await runModel(ref, feeds);
  const b = await runModel(pruned, feeds);
  let maxDiff = 0;
  for (const [k, t] of Object.entries(a)) {
    assert.deepEqual(b[k]!.dims, t.dims, `output ${k} keeps its shape`);
    maxDiff = Math.max(maxDiff, maxAbsDiff(t.data, b[k]!.data));
  }
  assert.ok(maxDiff <= (opts.tol ?? 1e-4), `pruned outputs differ from the zeroed original by ${maxDiff}`);
  const paramsBefore = paramCount(model);
  const paramsAfter = paramCount(pruned);
  assert.ok(paramsAfter < paramsBefore, `parameters shrink: ${paramsBefore} → ${paramsAfter}`);
  return { deps, keep, pruned, maxDiff, paramsBefore, paramsAfter };
}

/** The original with the removed heads' output-projection rows zeroed: what removing the heads must compute. */
export function zeroHeads(model: Model, kept: number[][]): Model {
  const ref = model.clone();
  const { blocks } = findAttention(ref);
  blocks.forEach((b, i) => {
    const w = b.out.weight.const!;
    const d = Float32Array.from(w.typed() as Float32Array);
    const [r, c] = w.dims as [number, number];
    for (let y = 0; y < r; y++)
      for (let x = 0; x < c; x++) {
        const f = b.out.inAxis === 0 ? y : x;
        if (!kept[i]!.includes(Math.floor(f / b.headDim))) d[y * c + x] = 0;
      }
    ref.graph.setInitializer(b.out.weight, Tensor.from('float32', [r, c], d));
  });
  return ref;
}

/** Remove half the heads of every block; outputs must equal the original with those heads' rows zeroed. */
export async function checkHeads(model: Model, expectBlocks: number, heads: number) {
  const { blocks } = findAttention(model.clone());
  assert.equal(blocks.length, expectBlocks);
  assert.ok(blocks.every((b) => b.heads === heads));
  const r = await pruneHeads(model, { ratio: 0.5 });
  assert.equal(r.report.skipped.length, 0, r.report.skipped.join('; '));
  const kept = r.report.blocks.map((b) => b.kept);
  assert.ok(kept.every((k) => k.length === heads / 2));
  const feeds = randomFeeds(model, 5, 3);
  const a = await runModel(zeroHeads(model, kept), feeds);
  const b = await runModel(r.model, feeds);
  for (const k of Object.keys(a)) {
    assert.deepEqual(b[k]!.dims, a[k]!.dims);
    assert.ok(maxAbsDiff(a[k]!.data, b[k]!.data) < 1e-4, `${k}: ${maxAbsDiff(a[k]!.data, b[k]!.data)}`);
  }
  return r;
}
