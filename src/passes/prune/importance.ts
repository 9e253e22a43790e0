// Channel importance per pruning group: L1 / L2 magnitude of the weights that produce the channels, BatchNorm scale,
// and first-order Taylor: |Σ_{w in channel} w · ∂L/∂w| per batch (the first-order change of the loss when the
// channel's weights are removed), summed over a few calibration batches, from gradient graphs (src/autodiff through
// src/train's gradient runner) run by ORT.
import { type BatchSource, batches } from '../../data/batch.js';
import { InputError } from '../../errors.js';
import { type Model, Tensor } from '../../ir/index.js';
import { inferShapes } from '../../ops/index.js';
import type { ChannelLayout } from '../../ops/index.js';
import type { HostTensor } from '../../runtime/index.js';
import { createGradientRunner } from '../../train/step.js';
import type { DependencyGraph, PruneGroup, SliceMember } from './deps.js';

import type { ImportanceKind } from '../names.js';
export { IMPORTANCE_KINDS, type ImportanceKind } from '../names.js';

/** Labelled batches for data-driven importance. */
export interface CalibrationData extends BatchSource {}

export interface ImportanceOptions {
  kind: ImportanceKind;
  /** Labelled data (taylor). */
  data?: CalibrationData;
  /** Calibration batches (default 4) of `batchSize` rows (default 32), drawn with `seed`. */
  batches?: number;
  batchSize?: number;
  seed?: number;
  threads?: number;
}

export interface ImportanceResult {
  /** Per group (root id): one score per channel. */
  scores: Map<number, Float64Array>;
  /** The kind used per group (bn falls back to l1 for groups without a BatchNorm). */
  kinds: Map<number, ImportanceKind>;
}

/** Σ f(element) per index of `axis` (Float64Array of dims[axis]). */
function axisSums(dims: readonly number[], axis: number, f: (i: number) => number): Float64Array {
  const n = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  let i = 0;
  for (let o = 0; o < outer; o++)
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let k = 0; k < inner; k++, i++) s += f(i);
      out[c]! += s;
    }
  return out;
}

/** Add per-index sums of a member (along its axis) into a group's per-channel scores. */
function addToChannels(
  deps: DependencyGraph,
  grp: PruneGroup,
  layout: ChannelLayout,
  sums: Float64Array,
  into: Float64Array,
): void {
  let offset = 0;
  for (const s of layout) {
    if (deps.find(s.group) === grp.id)
      for (let c = 0; c < s.count; c++)
        for (let k = 0; k < s.inner; k++) into[s.start + c]! += sums[offset + c * s.inner + k]!;
    offset += s.count * s.inner;
  }
}

function floats(t: Tensor): Float32Array | undefined {
  return t.dtype === 'float32' ? (t.typed() as Float32Array) : undefined;
}

function magnitude(deps: DependencyGraph, grp: PruneGroup, p: 1 | 2): Float64Array {
  const out = new Float64Array(grp.size);
  let members = grp.members.filter((m) => m.role === 'out' && m.value.const!.dims.length >= 2);
  if (!members.length) members = grp.members.filter((m) => m.value.const!.dims.length >= 2);
  for (const m of members) {
    const w = floats(m.value.const!);
    if (!w) continue;
    const sums = axisSums(
      m.value.const!.dims,
      m.axis,
      p === 1 ? (i) => Math.abs(w[i]!) : (i) => w[i]! * w[i]!,
    );
    addToChannels(deps, grp, m.layout, sums, out);
  }
  if (p === 2) for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(out[i]!);
  return out;
}

function bnScale(deps: DependencyGraph, grp: PruneGroup): Float64Array | undefined {
  const members = grp.members.filter((m) => m.node.opType === 'BatchNormalization' && m.input === 1);
  if (!members.length) return undefined;
  const out = new Float64Array(grp.size);
  for (const m of members) {
    const w = floats(m.value.const!);
    if (!w) continue;
    addToChannels(
      deps,
      grp,
      m.layout,
      axisSums(m.value.const!.dims, 0, (i) => Math.abs(w[i]!)),
      out,
    );
  }
  return out;
}

/** Members whose constants are trainable float parameters (running statistics carry no gradient). */
function taylorMembers(grp: PruneGroup): SliceMember[] {
  return grp.members.filter(
    (m) =>
      m.value.const!.dtype === 'float32' &&
      !(m.node.opType === 'BatchNormalization' && (m.input === 3 || m.input === 4)),
  );
}

/** Labelled batches [x, y] drawn (seeded) from `data`. */
export function* calibrationBatches(
  data: BatchSource,
  opts: { batches?: number; batchSize?: number; seed?: number },
): Generator<{ x: HostTensor; y: HostTensor }> {
  const count = opts.batches ?? 4;
  let k = 0;
  for (const b of batches(data, {
    batchSize: Math.min(opts.batchSize ?? 32, data.n),
    shuffle: true,
    seed: opts.seed ?? 0,
  })) {
    if (k++ >= count) return;
    yield { x: { dtype: 'float32', dims: b.dims, data: b.x }, y: { dtype: 'int64', dims: [b.n], data: b.y } };
  }
}

/**
 * First-order Taylor scores of every prunable group: per batch, per channel |Σ w·g| over the group's members,
 * summed over the batches. Gradients in inference mode (BatchNorm with its running statistics) of the mean
 * cross-entropy, so a channel's signed sum is the first-order change of that loss when its weights are zeroed.
 */
export async function taylorScores(
  model: Model,
  deps: DependencyGraph,
  groups: PruneGroup[],
  opts: ImportanceOptions,
  signed = false,
): Promise<Map<number, Float64Array>> {
  if (!opts.data)
    throw new InputError('prune-data', 'Taylor importance needs labelled data (--data)', { value: 'data' });
  const names = new Set<string>();
  for (const grp of groups) for (const m of taylorMembers(grp)) names.add(m.value.name);
  const runner = await createGradientRunner(model, {
    loss: { kind: 'cross-entropy' },
    wrt: (n) => names.has(n),
    training: false,
    threads: opts.threads,
  });
  const out = new Map<number, Float64Array>(groups.map((g) => [g.id, new Float64Array(g.size)]));
  try {
    for (const batch of calibrationBatches(opts.data, opts)) {
      const r = await runner.run(batch);
      for (const grp of groups) {
        const acc = new Float64Array(grp.size);
        for (const m of taylorMembers(grp)) {
          const g = r.grads[m.value.name];
          if (!g) continue;
          const w = m.value.const!.typed() as Float32Array;
          const gd = g.data as Float32Array;
          addToChannels(
            deps,
            grp,
            m.layout,
            axisSums(m.value.const!.dims, m.axis, (i) => w[i]! * gd[i]!),
            acc,
          );
        }
        const into = out.get(grp.id)!;
        for (let c = 0; c < grp.size; c++) into[c]! += signed ? acc[c]! : Math.abs(acc[c]!);
      }
    }
  } finally {
    await runner.release();
  }
  return out;
}

/** Scores for every prunable group. */
export async function groupImportance(
  model: Model,
  deps: DependencyGraph,
  opts: ImportanceOptions,
): Promise<ImportanceResult> {
  const groups = deps.groups.filter((g) => g.prunable);
  const scores = new Map<number, Float64Array>();
  const kinds = new Map<number, ImportanceKind>();
  if (opts.kind === 'taylor') {
    const t = await taylorScores(model, deps, groups, opts);
    for (const g of groups) {
      scores.set(g.id, t.get(g.id)!);
      kinds.set(g.id, 'taylor');
    }
    return { scores, kinds };
  }
  for (const g of groups) {
    const bn = opts.kind === 'bn' ? bnScale(deps, g) : undefined;
    const kind: ImportanceKind = bn ? 'bn' : opts.kind === 'l2' ? 'l2' : 'l1';
    scores.set(g.id, bn ?? magnitude(deps, g, kind === 'l2' ? 2 : 1));
    kinds.set(g.id, kind);
  }
  return { scores, kinds };
}

/** Where a ones-mask multiplies a value: node `node` (index in the graph's node list) reads it as input `input`. */
export interface MaskSite {
  node: number;
  input: number;
  /** Mask shape (broadcast against the value): [C] per feature, [1] for a whole branch. */
  dims: number[];
}

/**
 * Gradients of the mean cross-entropy with respect to ones-masks inserted at `sites` (on a clone of `model`), one
 * calibration batch at a time: `each(site index, gradient)` per batch. What head-mask and block-mask scores sum.
 */
export async function maskGradients(
  model: Model,
  sites: readonly MaskSite[],
  opts: Omit<ImportanceOptions, 'kind'>,
  each: (site: number, grad: Float32Array) => void,
): Promise<void> {
  if (!opts.data)
    throw new InputError('prune-data', 'Mask gradients need labelled data (--data)', { value: 'data' });
  const m = model.clone();
  const g = m.graph;
  const names = sites.map((s, i) => {
    const node = g.nodes[s.node]!;
    const v = node.input(s.input);
    const numel = s.dims.reduce((a, b) => a * b, 1);
    const mask = g.addInitializer(
      g.uniqueName(`prune_mask_${i}`),
      Tensor.from('float32', s.dims, new Float32Array(numel).fill(1)),
    );
    const mul = g.addNode({ opType: 'Mul', inputs: [v, mask], name: g.uniqueName(`prune_mask_${i}/Mul`) });
    node.setInput(s.input, mul.output(0));
    return mask.name;
  });
  g.toposort();
  inferShapes(m, { strict: false });
  const runner = await createGradientRunner(m, {
    loss: { kind: 'cross-entropy' },
    wrt: names,
    training: false,
    threads: opts.threads,
  });
  try {
    for (const batch of calibrationBatches(opts.data, opts)) {
      const r = await runner.run(batch);
      names.forEach((n, i) => each(i, r.grads[n]!.data as Float32Array));
    }
  } finally {
    await runner.release();
  }
}
