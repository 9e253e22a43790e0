// Structured-pruning rules shared by op entries (the `prune` field of an OpEntry): how the channels of a traced axis
// flow through an op. The dependency analysis (src/passes/prune/deps.ts) calls them in topological order; it has no
// switch on op types of its own. A layout lists which channels of which pruning group an axis carries (registry.ts).
import { A, Tensor } from '../ir/index.js';
import type { Dim } from '../ir/index.js';
import { constOf } from './const.js';
import type { Node } from '../ir/index.js';
import type { ChannelLayout, PruneCtx, PruneRule, TracedAxis } from './registry.js';

// ---------------------------------------------------------------- layout arithmetic

/** Elements along the axis a layout describes. */
export function layoutLength(l: ChannelLayout): number {
  let n = 0;
  for (const s of l) n += s.count * s.inner;
  return n;
}

/** Each channel repeated k more times (Flatten of the following dims, depthwise multiplier). */
export function repeatInner(l: ChannelLayout, k: number): ChannelLayout {
  return l.map((s) => ({ ...s, inner: s.inner * k }));
}

/** Elements [from, to) of a layout; undefined when a cut falls inside one channel's repeated block. */
export function sliceLayout(l: ChannelLayout, from: number, to: number): ChannelLayout | undefined {
  const out: ChannelLayout = [];
  let pos = 0;
  for (const s of l) {
    const len = s.count * s.inner;
    const a = Math.max(from, pos);
    const b = Math.min(to, pos + len);
    if (a < b) {
      if ((a - pos) % s.inner || (b - pos) % s.inner) return undefined;
      out.push({
        group: s.group,
        start: s.start + (a - pos) / s.inner,
        count: (b - a) / s.inner,
        inner: s.inner,
      });
    }
    pos += len;
  }
  return out;
}

const normAxis = (a: number, rank: number) => (a < 0 ? a + rank : a);
const isNum = (d: Dim | undefined): d is number => typeof d === 'number';
const prod = (ds: readonly Dim[]): number | undefined => {
  let n = 1;
  for (const d of ds) {
    if (!isNum(d)) return undefined;
    n *= d;
  }
  return n;
};

/** Block every traced input (the default of an op without a rule, and of rules that meet what they cannot map). */
export function blockAll(p: PruneCtx, reason: string): void {
  for (let i = 0; i < p.node.inputs.length; i++) {
    const t = p.traced(i);
    if (t) p.block(t.layout, reason);
  }
}

// ---------------------------------------------------------------- rules

/** Channels flow from input `data` to the listed outputs on the same axis (activations, pooling, Dropout, Cast). */
export function prunePass(data = 0, outputs: number[] = [0]): PruneRule {
  return (node, p) => {
    const t = p.traced(data);
    for (let i = 0; i < node.inputs.length; i++)
      if (i !== data && p.traced(i))
        p.block(p.traced(i)!.layout, `${node.opType} input ${i} is not channel-wise`);
    if (!t) return;
    for (const o of outputs) if (node.outputs[o]) p.setOutput(o, t.axis, t.layout);
  };
}

/**
 * Broadcasting element-wise ops (Add, Mul, Sub, Div, Max, Where, PRelu…): every traced input is coupled on the
 * aligned output axis (a residual Add, a squeeze-excitation Mul); constant inputs holding the channels (a bias
 * [C, 1, 1], a PRelu slope) are sliced.
 */
export const pruneElementwise: PruneRule = (node, p) => {
  const out = p.outShape(0);
  if (!out) return blockAll(p, `${node.opType} output rank unknown`);
  const R = out.length;
  let ref: { axis: number; layout: ChannelLayout } | undefined;
  for (let i = 0; i < node.inputs.length; i++) {
    const t = p.traced(i);
    if (!t) continue;
    const r = p.inShape(i)?.length ?? R;
    const axis = t.axis + (R - r);
    if (!ref) ref = { axis, layout: t.layout };
    else if (ref.axis !== axis) {
      const why = `${node.opType} combines channels on different axes (${ref.axis} and ${axis})`;
      p.block(ref.layout, why);
      p.block(t.layout, why);
      return;
    } else p.couple(ref.layout, t.layout);
  }
  if (!ref) return;
  const C = layoutLength(ref.layout);
  for (let i = 0; i < node.inputs.length; i++) {
    if (!node.inputs[i] || p.traced(i)) continue;
    const s = p.inShape(i);
    if (!s) return p.block(ref.layout, `${node.opType} input ${i} has an unknown shape`);
    const a = ref.axis - (R - s.length);
    if (a < 0 || s[a] === 1) continue;
    if (s[a] !== C)
      return p.block(ref.layout, `${node.opType} input ${i} has dim ${s[a]} on the channel axis`);
    if (p.isConst(i)) p.slice(i, a, ref.layout);
    else return p.block(ref.layout, `${node.opType} input ${i} carries the channels but is not traced`);
  }
  p.setOutput(0, ref.axis, ref.layout);
};

/** Per-channel parameters on axis 1 (BatchNormalization: scale, bias, mean, var; InstanceNormalization). */
export function pruneChannelParams(params: number[]): PruneRule {
  return (node, p) => {
    const t = p.traced(0);
    if (!t) return;
    if (t.axis !== 1) return p.block(t.layout, `${node.opType} normalises axis 1, channels are on ${t.axis}`);
    for (const i of params) if (node.inputs[i]) p.slice(i, 0, t.layout);
    p.setOutput(0, 1, t.layout);
  };
}

/** Conv (group 1, depthwise with a multiplier) and the com.microsoft FusedConv. */
export const pruneConv: PruneRule = (node, p) => {
  const t = p.traced(0);
  const w = p.inShape(1);
  if (!p.isConst(1) || !w || !isNum(w[0]) || !isNum(w[1]))
    return blockAll(p, `${node.opType} weights are not a constant of known shape`);
  if (t && t.axis !== 1) return p.block(t.layout, `${node.opType} input traced on axis ${t.axis}`);
  const group = node.attrInt('group', 1);
  const O = w[0];
  const bias = node.inputs[2] ? 2 : -1;
  if (group === 1) {
    if (t) p.slice(1, 1, t.layout);
    const g = p.newGroup(O);
    p.slice(1, 0, g);
    if (bias > 0) p.slice(bias, 0, g);
    p.setOutput(0, 1, g);
    return;
  }
  const C = p.inShape(0)?.[1];
  if (w[1] === 1 && C === group && O % group === 0) {
    // depthwise: output channel o reads input channel floor(o / multiplier)
    if (!t) {
      const g = p.newGroup(O);
      p.block(g, `depthwise ${node.opType} on channels that are not prunable`);
      p.setOutput(0, 1, g);
      return;
    }
    const out = repeatInner(t.layout, O / group);
    p.slice(1, 0, out);
    if (bias > 0) p.slice(bias, 0, out);
    p.setOutput(0, 1, out);
    p.onPrune((kept) => node.setAttr('group', A.int(kept(t.layout))));
    return;
  }
  // grouped: output channel o of conv group k = ⌊o / (O/G)⌋ reads input channels k·(C/G) … through weight column
  // o, input channel k·(C/G) + i through weight column i. Slicing the weight per axis keeps the same columns i (and
  // rows j of every group's O/G) in every group: input channels couple across the conv groups, output channels too.
  if (!isNum(C) || C !== w[1] * group || O % group !== 0)
    return blockAll(p, `grouped ${node.opType} (group=${group}) of unknown or inconsistent channel counts`);
  if (t) {
    p.coupleChunks(t.layout, group);
    p.slice(1, 1, t.layout.length ? firstChunk(t.layout, group) : t.layout);
  }
  const g = p.newGroup(O);
  p.coupleChunks(g, group);
  p.slice(1, 0, g);
  if (bias > 0) p.slice(bias, 0, g);
  p.setOutput(0, 1, g);
};

/** The first of `parts` equal chunks of a layout (the channels one conv group reads). */
function firstChunk(l: ChannelLayout, parts: number): ChannelLayout {
  return sliceLayout(l, 0, layoutLength(l) / parts) ?? l;
}

/** ConvTranspose with group 1: weight [C_in, C_out, k…]. */
export const pruneConvTranspose: PruneRule = (node, p) => {
  const t = p.traced(0);
  const w = p.inShape(1);
  if (!p.isConst(1) || !w || !isNum(w[1]) || node.attrInt('group', 1) !== 1)
    return blockAll(p, `${node.opType} with computed weights or groups`);
  if (t && t.axis !== 1) return p.block(t.layout, `${node.opType} input traced on axis ${t.axis}`);
  if (t) p.slice(1, 0, t.layout);
  const g = p.newGroup(w[1]);
  p.slice(1, 1, g);
  if (node.inputs[2]) p.slice(2, 0, g);
  p.setOutput(0, 1, g);
};

/** Gemm: A [M, K] (transA), B constant [K, N] (or [N, K] with transB), C broadcast to [M, N]. */
export const pruneGemm: PruneRule = (node, p) => {
  const b = p.inShape(1);
  const transA = node.attrInt('transA', 0) === 1;
  const transB = node.attrInt('transB', 0) === 1;
  const t = p.traced(0);
  if (!p.isConst(1) || !b || !isNum(b[transB ? 0 : 1])) return blockAll(p, 'Gemm weights are not constant');
  if (t && t.axis !== (transA ? 0 : 1)) return p.block(t.layout, 'Gemm input traced on its rows');
  if (p.traced(2)) return blockAll(p, 'Gemm C is computed from pruned channels');
  if (t) p.slice(1, transB ? 1 : 0, t.layout);
  const N = b[transB ? 0 : 1] as number;
  const g = p.newGroup(N);
  p.slice(1, transB ? 0 : 1, g);
  const c = node.inputs[2] ? p.inShape(2) : undefined;
  if (c && c.length && c[c.length - 1] === N && N !== 1) p.slice(2, c.length - 1, g);
  p.setOutput(0, 1, g);
};

/** MatMul by a constant 2-D weight [K, N] (a Linear as torch exports it): contracts the last axis. */
export const pruneMatMul: PruneRule = (node, p) => {
  const a = p.inShape(0);
  const b = p.inShape(1);
  const t = p.traced(0);
  if (!p.isConst(1) || !a || !b || b.length !== 2 || !isNum(b[1]))
    return blockAll(p, 'MatMul of two activations (attention scores/values) or of an unknown shape');
  if (t && t.axis !== a.length - 1) return p.block(t.layout, `MatMul over a non-channel axis (${t.axis})`);
  if (t) p.slice(1, 0, t.layout);
  const g = p.newGroup(b[1]);
  p.slice(1, 1, g);
  p.setOutput(0, Math.max(a.length, 2) - 1, g);
};

/** Concat: along the channel axis the layouts are concatenated (index mapping); across it they are coupled. */
export const pruneConcat: PruneRule = (node, p) => {
  const out = p.outShape(0);
  if (!out) return blockAll(p, 'Concat output rank unknown');
  const axis = normAxis(node.attrInt('axis', 0), out.length);
  const traced = node.inputs.map((_, i) => p.traced(i));
  const first = traced.find((t) => t);
  if (!first) return;
  if (traced.some((t) => t && t.axis !== first.axis))
    return blockAll(p, 'Concat of channels on different axes');
  if (first.axis !== axis) {
    for (const t of traced) if (t && t !== first) p.couple(first.layout, t.layout);
    for (let i = 0; i < node.inputs.length; i++)
      if (!traced[i] && p.inShape(i)?.[first.axis] !== 1)
        return p.block(first.layout, `Concat input ${i} carries the channels but is not traced`);
    p.setOutput(0, axis === first.axis ? axis : first.axis, first.layout);
    return;
  }
  const layout: ChannelLayout = [];
  for (let i = 0; i < node.inputs.length; i++) {
    const t = traced[i];
    if (t) layout.push(...t.layout);
    else {
      const n = p.inShape(i)?.[axis];
      if (!isNum(n)) return blockAll(p, `Concat input ${i} has an unknown size on the concat axis`);
      if (n === 0) continue;
      const g = p.newGroup(n);
      p.block(g, `concatenated with ${node.inputs[i]!.name}, which is not prunable`);
      layout.push(...g);
    }
  }
  p.setOutput(0, axis, layout);
};

/** Split: along the channel axis each output takes its slice of the layout; the sizes are rewritten after pruning. */
export const pruneSplit: PruneRule = (node, p) => {
  const t = p.traced(0);
  if (!t) return;
  const shape = p.inShape(0);
  if (!shape) return p.block(t.layout, 'Split input rank unknown');
  const axis = normAxis(node.attrInt('axis', 0), shape.length);
  if (axis !== t.axis) {
    for (let o = 0; o < node.outputs.length; o++) if (node.outputs[o]) p.setOutput(o, t.axis, t.layout);
    return;
  }
  const sizes: number[] = [];
  for (let o = 0; o < node.outputs.length; o++) {
    const n = p.outShape(o)?.[axis];
    if (!isNum(n)) return p.block(t.layout, `Split output ${o} size unknown`);
    sizes.push(n);
  }
  const parts: ChannelLayout[] = [];
  let pos = 0;
  for (const n of sizes) {
    const part = sliceLayout(t.layout, pos, pos + n);
    if (!part) return p.block(t.layout, 'Split cuts inside a channel block');
    parts.push(part);
    pos += n;
  }
  parts.forEach((l, o) => p.setOutput(o, axis, l));
  p.onPrune((kept) => {
    const ns = parts.map((l) => kept(l));
    const g = node.graph;
    if (node.attrInts('split') !== undefined || (node.inputs.length < 2 && !node.attrs.has('num_outputs')))
      node.setAttr('split', A.ints(ns));
    else {
      node.setAttr('num_outputs', undefined);
      const v = g.addInitializer(g.uniqueName(`${node.label}/split`), Tensor.from('int64', [ns.length], ns));
      node.setInput(1, v);
    }
  });
};

/** Flatten: channels on the first flattened axis become channel × (the following dims) on axis 1. */
export const pruneFlatten: PruneRule = (node, p) => {
  const t = p.traced(0);
  const s = p.inShape(0);
  if (!t || !s) return;
  const axis = normAxis(node.attrInt('axis', 1), s.length);
  if (t.axis !== axis)
    return p.block(t.layout, `Flatten(axis=${axis}) mixes the channel axis ${t.axis} into others`);
  const rest = prod(s.slice(axis + 1));
  if (rest === undefined) return p.block(t.layout, 'Flatten of a dynamic spatial size');
  p.setOutput(0, 1, repeatInner(t.layout, rest));
};

/**
 * Reshape with static shapes: the channel axis may stay whole (same size after equal leading dims) or merge with
 * the dims after it (a view(N, -1) before a Linear: channel × spatial); splitting it (attention heads, channel
 * shuffle) blocks. A literal size in a constant target is rewritten after pruning.
 */
export const pruneReshape: PruneRule = (node, p) => {
  const t = p.traced(0);
  if (!t) return;
  const s = p.inShape(0);
  const o = p.outShape(0);
  if (!s || !o) return p.block(t.layout, 'Reshape with an unknown shape');
  if (t.split) return mergeSplit(node, p, t, s, o);
  const split = splitChannels(t, s, o);
  if (split) {
    // [.., C, ..] → [.., g, C/g, ..] (the first half of a channel shuffle): every row of C/g keeps the same channels
    const target = p.constInts(1);
    if (!target) return p.block(t.layout, 'Reshape of the channels into rows to a computed shape');
    p.coupleChunks(t.layout, split);
    p.setOutput(0, t.axis, t.layout, split);
    p.onPrune((kept) => rewriteTarget(node, t.axis + 1, kept(t.layout) / split));
    return;
  }
  const lead = prod(s.slice(0, t.axis));
  const C = s[t.axis];
  let j = 0;
  let acc = 1;
  while (j < o.length && isNum(o[j]) && lead !== undefined && acc < lead) acc *= o[j++] as number;
  if (lead === undefined) {
    // a symbolic batch: match dims one for one up to the channel axis
    for (j = 0; j < t.axis; j++) if (s[j] !== o[j]) return p.block(t.layout, 'Reshape of the leading dims');
  } else if (acc !== lead) return p.block(t.layout, `Reshape splits the channel axis into [${o.join(', ')}]`);
  const out = o[j];
  if (!isNum(out) || !isNum(C) || out % C !== 0)
    return p.block(
      t.layout,
      `Reshape splits the channel axis (${C}) into [${o.slice(j).join(', ')}] (attention heads or a channel shuffle)`,
    );
  const rest = out / C;
  let k = t.axis + 1;
  let m = 1;
  while (m < rest && k < s.length && isNum(s[k])) m *= s[k++] as number;
  if (m !== rest) return p.block(t.layout, `Reshape regroups the channel axis (${C} → ${out})`);
  const layout = repeatInner(t.layout, rest);
  const target = p.constInts(1);
  if (!target && node.inputs[1]) return p.block(t.layout, `Reshape to a computed shape`);
  p.setOutput(0, j, layout);
  p.onPrune((kept) => rewriteTarget(node, j, kept(layout)));
};

/** Write `n` at position `j` of a Reshape's constant target (a literal size; 0 and -1 stay). */
function rewriteTarget(node: Node, j: number, n: number): void {
  const tgt = constOf(node.inputs[1])?.toNumbers();
  if (!tgt || !(tgt[j]! > 0)) return;
  tgt[j] = n;
  const g = node.graph;
  node.setInput(
    1,
    g.addInitializer(g.uniqueName(`${node.label}/shape`), Tensor.from('int64', [tgt.length], tgt)),
  );
}

/** Rows g when a Reshape splits the channel axis alone into [g, C/g] (the other dims unchanged), else undefined. */
function splitChannels(t: TracedAxis, s: Dim[], o: Dim[]): number | undefined {
  const a = t.axis;
  const C = s[a];
  const [g, c] = [o[a], o[a + 1]];
  if (o.length !== s.length + 1 || !isNum(C) || !isNum(g) || !isNum(c) || g * c !== C || g < 2)
    return undefined;
  for (let i = 0; i < s.length; i++)
    if (i !== a && (i < a ? o[i] : o[i + 1]) !== s[i] && isNum(s[i])) return undefined;
  return g;
}

/** A Reshape of a split channel axis: merging the two axes back gives the (possibly permuted) channels. */
function mergeSplit(node: Node, p: PruneCtx, t: TracedAxis, s: Dim[], o: Dim[]): void {
  const a = t.axis;
  const n = layoutLength(t.layout);
  const same = (i: number) => (i < a ? o[i] === s[i] || !isNum(s[i]) : o[i] === s[i + 1]);
  if (o.length !== s.length - 1 || !(o[a] === n) || !o.every((_, i) => i === a || same(i)))
    return p.block(
      t.layout,
      `Reshape of the channels split into [${t.split}, ${n / t.split!}] into [${o.join(', ')}]`,
    );
  if (!p.constInts(1)) return p.block(t.layout, 'Reshape of split channels to a computed shape');
  p.setOutput(0, a, t.layout);
  p.onPrune((kept) => rewriteTarget(node, a, kept(t.layout)));
}

export const pruneTranspose: PruneRule = (node, p) => {
  const t = p.traced(0);
  if (!t) return;
  const r = p.inShape(0)?.length;
  if (r === undefined) return p.block(t.layout, 'Transpose of unknown rank');
  const perm = node.attrInts('perm') ?? Array.from({ length: r }, (_, i) => r - 1 - i);
  const j = perm.indexOf(t.axis);
  if (!t.split) return p.setOutput(0, j, t.layout);
  // split channels [g, C/g]: kept in order, or swapped — the channel shuffle: element b·g + a ← a·(C/g) + b
  if (perm[j + 1] === t.axis + 1) return p.setOutput(0, j, t.layout, t.split);
  const k = perm.indexOf(t.axis + 1);
  if (perm[k + 1] !== t.axis) return p.block(t.layout, 'Transpose separates the split channel axes');
  const g = t.split;
  const cg = layoutLength(t.layout) / g;
  const out: ChannelLayout = [];
  for (let b = 0; b < cg; b++)
    for (let a = 0; a < g; a++) {
      const e = sliceLayout(t.layout, a * cg + b, a * cg + b + 1);
      if (!e) return p.block(t.layout, 'Transpose of split channels that repeat inside a block');
      out.push(...e);
    }
  p.setOutput(0, k, out, cg);
};

/** Slice: on another axis the channels pass; on the channel axis (step 1, constant bounds) the layout is cut. */
export const pruneSlice: PruneRule = (node, p) => {
  const t = p.traced(0);
  for (let i = 1; i < node.inputs.length; i++) {
    const b = p.traced(i);
    if (b) p.block(b.layout, 'Slice bounds computed from channels');
  }
  if (!t) return;
  const r = p.inShape(0)?.length;
  if (r === undefined) return p.block(t.layout, 'Slice of unknown rank');
  const attrs = node.inputs.length < 3;
  const starts = attrs ? node.attrInts('starts') : p.constInts(1);
  const ends = attrs ? node.attrInts('ends') : p.constInts(2);
  const axes =
    (attrs ? node.attrInts('axes') : node.inputs[3] ? p.constInts(3) : undefined) ??
    (starts ? starts.map((_, i) => i) : undefined);
  const steps = attrs || !node.inputs[4] ? starts?.map(() => 1) : p.constInts(4);
  if (!starts || !ends || !axes || !steps) return p.block(t.layout, 'Slice with computed bounds');
  const k = axes.findIndex((a) => normAxis(a, r) === t.axis);
  if (k < 0) return p.setOutput(0, t.axis, t.layout);
  if (steps[k] !== 1) return p.block(t.layout, 'Slice with a step along the channel axis');
  const n = layoutLength(t.layout);
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
  const from = clamp(starts[k]!);
  const to = Math.max(from, clamp(ends[k]!));
  const before = sliceLayout(t.layout, 0, from);
  const part = sliceLayout(t.layout, from, to);
  if (!before || !part) return p.block(t.layout, 'Slice cuts inside a channel block');
  p.setOutput(0, t.axis, part);
  p.keepOne(part);
  p.onPrune((kept) => {
    const a = kept(before);
    const b = a + kept(part);
    if (attrs) {
      const s2 = [...starts];
      const e2 = [...ends];
      s2[k] = a;
      e2[k] = b;
      node.setAttr('starts', A.ints(s2));
      node.setAttr('ends', A.ints(e2));
      return;
    }
    const g = node.graph;
    for (const [i, v] of [
      [1, a],
      [2, b],
    ] as const) {
      const cur = constOf(node.inputs[i])!;
      const vals = cur.toNumbers();
      vals[k] = v;
      node.setInput(
        i,
        g.addInitializer(
          g.uniqueName(`${node.label}/${i === 1 ? 'starts' : 'ends'}`),
          Tensor.from(cur.dtype as 'int64', [vals.length], vals),
        ),
      );
    }
  });
};

/** Reductions over axes other than the channel axis keep the channels (ReduceMean over H, W or tokens). */
export const pruneReduce: PruneRule = (node, p) => {
  const t = p.traced(0);
  if (!t) return;
  const r = p.inShape(0)?.length;
  if (r === undefined) return p.block(t.layout, `${node.opType} of unknown rank`);
  let axes = node.attrInts('axes');
  if (!axes && node.inputs[1]) {
    axes = p.constInts(1);
    if (!axes) return p.block(t.layout, `${node.opType} over computed axes`);
  }
  const all = !axes || axes.length === 0;
  if (all && node.attrInt('noop_with_empty_axes', 0) === 1) return p.setOutput(0, t.axis, t.layout);
  const norm = all ? Array.from({ length: r }, (_, i) => i) : axes!.map((a) => normAxis(a, r));
  if (norm.includes(t.axis)) return p.block(t.layout, `${node.opType} reduces over the channel axis`);
  const keep = node.attrInt('keepdims', 1) === 1;
  p.setOutput(0, keep ? t.axis : t.axis - norm.filter((a) => a < t.axis).length, t.layout);
};

/**
 * Ops normalising over the axes from `axis` on (Softmax family — below opset 13 every axis from `axis` on, at 13 only
 * `axis`: treated alike, conservatively — and LayerNormalization): pass when the channels come before them.
 */
export const pruneNormalized: PruneRule = (node, p) => {
  const t = p.traced(0);
  if (!t) return;
  const axis = normAxis(node.attrInt('axis', -1), p.inShape(0)?.length ?? 0);
  if (t.axis >= axis) return p.block(t.layout, `${node.opType} normalises over the channel axis`);
  p.setOutput(0, t.axis, t.layout);
};

/** Pad: pass when nothing is padded on the channel axis. */
export const prunePad: PruneRule = (node, p) => {
  const t = p.traced(0);
  if (!t) return;
  const r = p.inShape(0)?.length ?? 0;
  const pads = node.attrInts('pads') ?? (node.inputs[1] ? p.constInts(1) : undefined);
  if (!pads || node.inputs[3]) return p.block(t.layout, 'Pad with computed pads or axes');
  if (pads[t.axis] || pads[t.axis + r]) return p.block(t.layout, 'Pad pads the channel axis');
  p.setOutput(0, t.axis, t.layout);
};

/** Gather on another axis moves the channel axis; gathering channels blocks. */
export const pruneGather: PruneRule = (node, p) => {
  const t = p.traced(0);
  if (p.traced(1)) p.block(p.traced(1)!.layout, 'Gather indices');
  if (!t) return;
  const r = p.inShape(0)?.length ?? 0;
  const q = p.inShape(1)?.length;
  const axis = normAxis(node.attrInt('axis', 0), r);
  if (axis === t.axis || q === undefined) return p.block(t.layout, 'Gather selects channels');
  p.setOutput(0, t.axis < axis ? t.axis : t.axis + q - 1, t.layout);
};

/** Squeeze / Unsqueeze: the channel axis moves by the axes removed or added before it. */
export const pruneSqueeze: PruneRule = (node, p) => {
  const t = p.traced(0);
  if (!t) return;
  const s = p.inShape(0);
  const o = p.outShape(0);
  if (!s || !o) return p.block(t.layout, `${node.opType} of unknown rank`);
  const before = s.slice(0, t.axis).filter((d) => d !== 1).length;
  // the channel axis is the (before)-th non-1 dim both sides (channels of size 1 never reach here)
  let seen = 0;
  for (let j = 0; j < o.length; j++) {
    if (o[j] === 1) continue;
    if (seen === before)
      return o[j] === s[t.axis] ? p.setOutput(0, j, t.layout) : p.block(t.layout, node.opType);
    seen++;
  }
  p.block(t.layout, `${node.opType} removes the channel axis`);
};

/** Shape / Size read channels without carrying them. */
export const pruneReads: PruneRule = () => {};
