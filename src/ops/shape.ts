// Shape-manipulating ops: Reshape family, Transpose, Squeeze/Unsqueeze, Concat, Split, Slice, Gather family,
// Shape/Size, Constant/ConstantOfShape, Expand, Tile, Range, Pad, Resize, TopK, OneHot, NonZero and friends.
// Most of them also propagate known values, which is what makes torch's computed Reshape targets resolvable.
import type { DType, Dim, Emitter, Node, Value } from '../ir/index.js';
import { A, dtypeFromCode, Tensor } from '../ir/index.js';
import { constantNodeTensor, tensorToSym } from './const.js';
import {
  dOut,
  normAxisG,
  padZeros,
  requireConstInts,
  reshapeLike,
  sliceConst,
  splitConst,
  staticProduct,
  zerosLike,
  zerosOfShape,
} from './gradutil.js';
import type { GradCtx, InferCtx, SymValue } from './registry.js';
import { register } from './table.js';
import {
  pruneConcat,
  pruneFlatten,
  pruneGather,
  prunePad,
  prunePass,
  pruneReads,
  pruneReshape,
  pruneSplit,
  pruneSlice,
  pruneSqueeze,
  pruneTranspose,
} from './prune.js';
import { resizeGrad } from './resize.js';
import { dimAdd, dimDivExact, dimMul, dimProduct, dimSub, formatDims } from './sym.js';
import {
  axesArg,
  broadcast,
  elementwiseValue,
  MAX_VALUE_ELEMENTS,
  normAxes,
  normAxis,
  requireAttrInt,
  tt,
} from './util.js';

const passValue = (_n: Node, ctx: InferCtx) => [ctx.symbolicValue(0)];
const BIG = 2 ** 31 - 1; // torch and ONNX use INT64_MAX / INT32_MAX for "to the end"

// ---------------------------------------------------------------- Reshape

function reshapeTarget(node: Node, ctx: InferCtx): { target: SymValue | undefined; len: number | undefined } {
  if (ctx.opset < 5) {
    const s = node.attrInts('shape');
    return { target: s, len: s?.length };
  }
  const st = ctx.inputType(1);
  const target = ctx.symbolicValue(1);
  if (st.shape && st.shape.length !== 1)
    ctx.fail(`shape input must be 1-D, got ${formatDims(st.shape)}`, node.inputs[1]!);
  const len = st.shape && typeof st.shape[0] === 'number' ? st.shape[0] : target?.length;
  return { target, len };
}

register({
  type: 'Reshape',
  prune: pruneReshape,
  pruneSplit: true,
  sinceVersion: [1, 5, 13, 14, 19, 21],
  quantPassThrough: 0,
  grad: reshapeBackGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const { target, len } = reshapeTarget(node, ctx);
    if (!target) return [tt(x.dtype, len === undefined ? null : new Array<Dim>(len).fill(null))];
    const allowzero = ctx.opset >= 14 && node.attrInt('allowzero', 0) === 1;
    let minus = -1;
    let hasZero = false;
    const out: Dim[] = target.map((t, i) => {
      if (t === null || typeof t === 'string') return t;
      if (t === -1) {
        if (minus >= 0)
          ctx.fail(`shape ${formatDims(target)} has more than one -1`, node.inputs[1] ?? 'shape');
        minus = i;
        return null;
      }
      if (t < -1 || !Number.isInteger(t))
        ctx.fail(`shape ${formatDims(target)} has an invalid entry ${t}`, node.inputs[1] ?? 'shape');
      if (t === 0 && !allowzero) {
        if (x.shape && i >= x.shape.length)
          ctx.fail(
            `shape ${formatDims(target)} copies dim ${i} (a 0) but the input ${formatDims(x.shape)} has rank ${x.shape.length}`,
            node.inputs[1] ?? 'shape',
          );
        return x.shape ? x.shape[i]! : null;
      }
      if (t === 0) hasZero = true;
      return t;
    });
    if (allowzero && hasZero && minus >= 0)
      ctx.fail(`shape ${formatDims(target)} has both 0 and -1 with allowzero=1`, node.inputs[1] ?? 'shape');
    const total = x.shape ? dimProduct(x.shape) : null;
    if (minus >= 0) {
      const rest = out.filter((_, i) => i !== minus);
      const known = rest.every((d) => d !== null) ? dimProduct(rest) : null;
      out[minus] = total !== null && known !== null ? dimDivExact(total, known) : null;
      if (typeof total === 'number' && typeof known === 'number' && known !== 0 && total % known !== 0)
        ctx.fail(
          `cannot reshape ${formatDims(x.shape)} (${total} elements) into ${formatDims(target)}`,
          node.inputs[0]!,
        );
    } else if (typeof total === 'number' && out.every((d) => typeof d === 'number')) {
      const p = (out as number[]).reduce((a, b) => a * b, 1);
      if (p !== total)
        ctx.fail(
          `cannot reshape ${formatDims(x.shape)} (${total} elements) into ${formatDims(out)} (${p})`,
          node.inputs[0]!,
        );
    }
    return [tt(x.dtype, out)];
  },
  value: passValue,
});

register({
  type: 'Flatten',
  prune: pruneFlatten,
  sinceVersion: [1, 9, 11, 13, 21],
  quantPassThrough: 0,
  grad: reshapeBackGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const axis = node.attrInt('axis', 1);
    if (!x.shape) return [tt(x.dtype, [null, null])];
    const r = x.shape.length;
    if (axis < -r || axis > r)
      ctx.fail(`axis ${axis} is out of range for rank ${r} (allowed [${-r}, ${r}])`, 'axis');
    const a = axis < 0 ? axis + r : axis;
    return [tt(x.dtype, [dimProduct(x.shape.slice(0, a)), dimProduct(x.shape.slice(a))])];
  },
  value: passValue,
});

// ---------------------------------------------------------------- Transpose

register({
  type: 'Transpose',
  prune: pruneTranspose,
  pruneSplit: true,
  sinceVersion: [1, 13, 21],
  quantPassThrough: 0,
  grad: transposeGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const perm = node.attrInts('perm');
    if (!x.shape) return [tt(x.dtype, perm ? new Array<Dim>(perm.length).fill(null) : null)];
    const r = x.shape.length;
    const p = perm ?? [...Array(r).keys()].reverse();
    if (p.length !== r || new Set(p).size !== r || p.some((a) => !Number.isInteger(a) || a < 0 || a >= r))
      ctx.fail(
        `perm [${p.join(', ')}] is not a permutation of the ${r} axes of ${formatDims(x.shape)}`,
        'perm',
      );
    return [
      tt(
        x.dtype,
        p.map((a) => x.shape![a]!),
      ),
    ];
  },
  value: (node, ctx) => {
    const x = ctx.inputType(0);
    const v = ctx.symbolicValue(0);
    if (!v || !x.shape || !x.shape.every((d) => typeof d === 'number')) return [undefined];
    const shape = x.shape as number[];
    const r = shape.length;
    const perm = node.attrInts('perm') ?? [...Array(r).keys()].reverse();
    const outShape = perm.map((a) => shape[a]!);
    return [
      mapIndices(
        outShape,
        shape,
        (o) => perm.reduce((acc, a, i) => ((acc[a] = o[i]!), acc), new Array<number>(r)),
        v,
      ),
    ];
  },
});

// ---------------------------------------------------------------- Squeeze / Unsqueeze

register({
  type: 'Squeeze',
  prune: pruneSqueeze,
  sinceVersion: [1, 11, 13, 21],
  quantPassThrough: 0,
  grad: reshapeBackGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const { given, axes } = axesArg(node, ctx, { input: 1, inputSince: 13 });
    if (!x.shape) return [tt(x.dtype, null)];
    const r = x.shape.length;
    if (given && !axes) return [tt(x.dtype, null)];
    if (!axes) {
      if (!x.shape.every((d) => typeof d === 'number')) return [tt(x.dtype, null)];
      return [
        tt(
          x.dtype,
          x.shape.filter((d) => d !== 1),
        ),
      ];
    }
    const ax = normAxes(ctx, axes, r);
    for (const a of ax) {
      const d = x.shape[a]!;
      if (typeof d === 'number' && d !== 1)
        ctx.fail(
          `cannot squeeze axis ${a} of ${formatDims(x.shape)}: its size is ${d}, not 1`,
          node.inputs[0]!,
        );
    }
    return [
      tt(
        x.dtype,
        x.shape.filter((_, i) => !ax.includes(i)),
      ),
    ];
  },
  value: passValue,
});

register({
  type: 'Unsqueeze',
  prune: pruneSqueeze,
  sinceVersion: [1, 11, 13, 21],
  quantPassThrough: 0,
  grad: reshapeBackGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const { axes } = axesArg(node, ctx, { input: 1, inputSince: 13 });
    if (!axes) {
      if (ctx.opset < 13) ctx.fail('required attribute "axes" is missing', 'axes');
      const at = ctx.optInputType(1);
      const n = at?.shape?.[0];
      return [
        tt(x.dtype, x.shape && typeof n === 'number' ? new Array<Dim>(x.shape.length + n).fill(null) : null),
      ];
    }
    if (!x.shape) return [tt(x.dtype, null)];
    const outRank = x.shape.length + axes.length;
    const ax = normAxes(ctx, axes, outRank);
    const out: Dim[] = [];
    let j = 0;
    for (let i = 0; i < outRank; i++) out.push(ax.includes(i) ? 1 : x.shape[j++]!);
    return [tt(x.dtype, out)];
  },
  value: passValue,
});

// ---------------------------------------------------------------- Concat / Split

register({
  type: 'Concat',
  prune: pruneConcat,
  sinceVersion: [1, 4, 11, 13],
  quantQLinear: { op: 'QLinearConcat', inputs: 'all' },
  grad: concatGrad,
  sameDtype: 'all',
  infer: (node, ctx) => {
    const ins = node.inputs.map((_, i) => ctx.inputType(i));
    if (!ins.length) ctx.fail('Concat needs at least one input');
    const axis = requireAttrInt(ctx, node, 'axis');
    const known = ins.find((t) => t.shape);
    if (!known) return [tt(ins[0]!.dtype, null)];
    const r = known.shape!.length;
    const a = normAxis(ctx, axis, r);
    const out: Dim[] = [...known.shape!];
    let sum: Dim = 0;
    for (const [k, t] of ins.entries()) {
      if (!t.shape) {
        sum = null;
        continue;
      }
      if (t.shape.length !== r)
        ctx.fail(
          `input ${k} has rank ${t.shape.length} ${formatDims(t.shape)} but input 0 has rank ${r}`,
          node.inputs[k]!,
        );
      sum = dimAdd(sum, t.shape[a]!);
      t.shape.forEach((d, i) => {
        if (i === a) return;
        const o = out[i]!;
        if (typeof o === 'number' && typeof d === 'number' && o !== d)
          ctx.fail(
            `inputs disagree on dim ${i} (${o} vs ${d}); only the concat axis ${a} may differ`,
            node.inputs[k]!,
          );
        if (o === null || (typeof o === 'string' && typeof d === 'number')) out[i] = d;
      });
    }
    out[a] = sum;
    return [tt(ins[0]!.dtype, out)];
  },
  value: (node, ctx) => {
    const ins = node.inputs.map((_, i) => ctx.inputType(i));
    const r = ins[0]!.shape?.length;
    if (r === undefined || normAxis(ctx, node.attrInt('axis', 0), Math.max(r, 1)) !== 0) return [undefined];
    const out: Dim[] = [];
    for (let i = 0; i < ins.length; i++) {
      const v = ctx.symbolicValue(i);
      if (!v) return [undefined];
      out.push(...v);
    }
    return [out];
  },
});

function splitSizes(node: Node, ctx: InferCtx, dim: Dim, m: number): Dim[] {
  let split: number[] | undefined;
  let splitGiven = false;
  if (ctx.opset < 13) {
    split = node.attrInts('split');
    splitGiven = split !== undefined;
  } else if (ctx.hasInput(1)) {
    splitGiven = true;
    split = ctx.intsValue(1);
    if (!split) {
      const t = ctx.optInputType(1);
      if (t?.shape?.[0] !== undefined && typeof t.shape[0] === 'number' && t.shape[0] !== m)
        ctx.fail(`split has ${t.shape[0]} entries for ${m} outputs`, node.inputs[1]!);
      return new Array<Dim>(m).fill(null);
    }
  }
  if (splitGiven && split) {
    if (split.length !== m)
      ctx.fail(`split [${split.join(', ')}] has ${split.length} entries for ${m} outputs`, 'split');
    if (split.some((s) => s < 0)) ctx.fail(`split [${split.join(', ')}] has a negative size`, 'split');
    const total = split.reduce((a, b) => a + b, 0);
    if (typeof dim === 'number' && total !== dim)
      ctx.fail(`split [${split.join(', ')}] sums to ${total}, but the axis has size ${dim}`, 'split');
    return split;
  }
  const numOutputs = ctx.opset >= 18 ? node.attrInt('num_outputs') : undefined;
  if (ctx.opset >= 18 && numOutputs === undefined)
    ctx.fail('needs either the split input or the num_outputs attribute', 'num_outputs');
  if (numOutputs !== undefined && numOutputs !== m)
    ctx.fail(`num_outputs ${numOutputs} but the node has ${m} outputs`, 'num_outputs');
  if (typeof dim === 'number') {
    if (numOutputs !== undefined) {
      const chunk = Math.ceil(dim / m);
      return Array.from({ length: m }, (_, i) => Math.max(0, Math.min(chunk, dim - chunk * i)));
    }
    if (dim % m !== 0)
      ctx.fail(`axis of size ${dim} cannot be split evenly into ${m} outputs`, node.inputs[0]!);
    return new Array<Dim>(m).fill(dim / m);
  }
  return new Array<Dim>(m).fill(dimDivExact(dim, m));
}

register({
  type: 'Split',
  prune: pruneSplit,
  sinceVersion: [1, 2, 11, 13, 18],
  grad: splitGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const m = node.outputs.length;
    if (!x.shape) return node.outputs.map(() => tt(x.dtype, null));
    const a = normAxis(ctx, node.attrInt('axis', 0), x.shape.length);
    const sizes = splitSizes(node, ctx, x.shape[a]!, m);
    return sizes.map((s) => {
      const sh = [...x.shape!];
      sh[a] = s;
      return tt(x.dtype, sh);
    });
  },
  value: (node, ctx) => {
    const x = ctx.inputType(0);
    const v = ctx.symbolicValue(0);
    if (!v || !x.shape || x.shape.length !== 1) return [];
    const sizes = splitSizes(node, ctx, x.shape[0]!, node.outputs.length);
    if (!sizes.every((s) => typeof s === 'number')) return [];
    let off = 0;
    return (sizes as number[]).map((s) => v.slice(off, (off += s)));
  },
});

// ---------------------------------------------------------------- Slice

interface SliceSpec {
  starts: number[];
  ends: number[];
  axes: number[];
  steps: number[];
}

function sliceSpec(node: Node, ctx: InferCtx, rank: number): SliceSpec | undefined | 'unknown-axes' {
  let starts: number[] | undefined,
    ends: number[] | undefined,
    axes: number[] | undefined,
    steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = node.attrInts('starts');
    ends = node.attrInts('ends');
    axes = node.attrInts('axes');
    if (!starts || !ends) ctx.fail('required attributes "starts" and "ends" are missing', 'starts');
  } else {
    starts = ctx.intsValue(1);
    ends = ctx.intsValue(2);
    const axesGiven = ctx.hasInput(3);
    axes = axesGiven ? ctx.intsValue(3) : undefined;
    steps = ctx.hasInput(4) ? ctx.intsValue(4) : undefined;
    if ((axesGiven && !axes) || (ctx.hasInput(4) && !steps))
      return axesGiven && !axes ? 'unknown-axes' : undefined;
    if (!starts || !ends) {
      if (!axesGiven) return 'unknown-axes';
      return undefined;
    }
  }
  const n = starts.length;
  axes ??= [...Array(n).keys()];
  steps ??= new Array<number>(n).fill(1);
  if (ends.length !== n || axes.length !== n || steps.length !== n)
    ctx.fail(
      `starts/ends/axes/steps have different lengths (${n}, ${ends.length}, ${axes.length}, ${steps.length})`,
      'starts',
    );
  if (steps.some((s) => s === 0)) ctx.fail(`steps [${steps.join(', ')}] has a 0`, 'steps');
  return { starts, ends, axes: normAxes(ctx, axes, rank), steps };
}

/**
 * Length of one sliced dim. For a symbolic dim the common torch forms are handled (x[k:], x[:-k], x[-k:], x[a:b]),
 * assuming the dim is long enough for the bounds (as symbolic shape inference tools do).
 */
export function sliceLen(d: Dim, start: number, end: number, step: number): Dim {
  if (typeof d === 'number') {
    let s = start < 0 ? start + d : start;
    let e = end < 0 ? end + d : end;
    if (step > 0) {
      s = Math.min(Math.max(s, 0), d);
      e = Math.min(Math.max(e, 0), d);
      return Math.max(0, Math.ceil((e - s) / step));
    }
    s = Math.min(Math.max(s, 0), d - 1);
    e = Math.min(Math.max(e, -1), d - 1);
    return Math.max(0, Math.ceil((s - e) / -step));
  }
  if (d === null) return null;
  if (step === 1) {
    if (start >= 0 && end >= BIG) return dimSub(d, start);
    if (start >= 0 && end < 0 && end > -BIG) return dimSub(dimAdd(d, end), start);
    if (start < 0 && end >= BIG) return -start;
    if (start < 0 && end < 0 && end > -BIG) return Math.max(0, end - start);
    if (start >= 0 && end >= 0 && end < BIG) return Math.max(0, end - start); // assumes the dim holds `end` elements
  }
  if (step === -1 && start === -1 && end <= -BIG) return d;
  return null;
}

register({
  type: 'Slice',
  prune: pruneSlice,
  sinceVersion: [1, 10, 11, 13],
  quantPassThrough: 0,
  grad: sliceGrad,
  check: (n, ins) =>
    ins[1] && ins[2] && ins[1].dtype !== ins[2].dtype
      ? [
          {
            kind: 'dtype-mismatch',
            message: `Node "${n.label}" (Slice): starts is ${ins[1].dtype} but ends is ${ins[2].dtype}`,
          },
        ]
      : [],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    if (!x.shape) return [tt(x.dtype, null)];
    const spec = sliceSpec(node, ctx, x.shape.length);
    if (spec === 'unknown-axes')
      return [
        tt(
          x.dtype,
          x.shape.map(() => null),
        ),
      ];
    if (!spec) {
      const axes = ctx.opset >= 10 && ctx.hasInput(3) ? ctx.intsValue(3) : undefined;
      const ax = axes ? normAxes(ctx, axes, x.shape.length) : undefined;
      return [
        tt(
          x.dtype,
          x.shape.map((d, i) => (ax && !ax.includes(i) ? d : null)),
        ),
      ];
    }
    const out = [...x.shape];
    spec.axes.forEach((a, k) => {
      out[a] = sliceLen(x.shape![a]!, spec.starts[k]!, spec.ends[k]!, spec.steps[k]!);
    });
    return [tt(x.dtype, out)];
  },
  value: (node, ctx) => {
    const x = ctx.inputType(0);
    const v = ctx.symbolicValue(0);
    if (!v || !x.shape || !x.shape.every((d) => typeof d === 'number')) return [undefined];
    const shape = x.shape as number[];
    const spec = sliceSpec(node, ctx, shape.length);
    if (!spec || spec === 'unknown-axes') return [undefined];
    // per axis: first index and step of the kept elements
    const first = shape.map(() => 0);
    const step = shape.map(() => 1);
    const outShape = [...shape];
    spec.axes.forEach((a, k) => {
      const d = shape[a]!;
      let s = spec.starts[k]!;
      const st = spec.steps[k]!;
      if (s < 0) s += d;
      s = st > 0 ? Math.min(Math.max(s, 0), d) : Math.min(Math.max(s, 0), d - 1);
      first[a] = s;
      step[a] = st;
      outShape[a] = sliceLen(d, spec.starts[k]!, spec.ends[k]!, st) as number;
    });
    return [mapIndices(outShape, shape, (o) => o.map((i, a) => first[a]! + i * step[a]!), v)];
  },
});

/** Gather elements of a known value into a new shape: `src(outIndex)` gives the source multi-index. */
function mapIndices(
  outShape: number[],
  inShape: number[],
  src: (o: number[]) => number[],
  v: SymValue,
): SymValue | undefined {
  const n = outShape.reduce((a, b) => a * b, 1);
  if (n > MAX_VALUE_ELEMENTS) return undefined;
  const out: Dim[] = new Array(n);
  const idx = outShape.map(() => 0);
  for (let e = 0; e < n; e++) {
    const si = src(idx);
    let f = 0;
    for (let a = 0; a < inShape.length; a++) f = f * inShape[a]! + si[a]!;
    out[e] = v[f] ?? null;
    for (let a = outShape.length - 1; a >= 0; a--) {
      if (++idx[a]! < outShape[a]!) break;
      idx[a] = 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------- Gather family

register({
  type: 'Gather',
  prune: pruneGather,
  sinceVersion: [1, 11, 13],
  grad: gatherGrad,
  check: (n, ins) =>
    ins[1] && ins[1].dtype !== 'int64' && ins[1].dtype !== 'int32'
      ? [
          {
            kind: 'dtype-mismatch',
            message: `Node "${n.label}" (Gather): indices "${n.inputs[1]!.name}" are ${ins[1].dtype}; they must be int32 or int64`,
          },
        ]
      : [],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const idx = ctx.inputType(1);
    if (!x.shape || !idx.shape) return [tt(x.dtype, null)];
    const a = normAxis(ctx, node.attrInt('axis', 0), x.shape.length);
    const iv = ctx.intsValue(1);
    const d = x.shape[a]!;
    if (iv && typeof d === 'number')
      for (const i of iv)
        if (i < -d || i >= d)
          ctx.fail(`index ${i} is out of range for axis ${a} of size ${d}`, node.inputs[1]!);
    return [tt(x.dtype, [...x.shape.slice(0, a), ...idx.shape, ...x.shape.slice(a + 1)])];
  },
  value: (node, ctx) => {
    const x = ctx.inputType(0);
    const v = ctx.symbolicValue(0);
    const iv = ctx.intsValue(1);
    if (!v || !iv || !x.shape || x.shape.length !== 1 || typeof x.shape[0] !== 'number') return [undefined];
    const d = x.shape[0];
    return [iv.map((i) => v[i < 0 ? i + d : i] ?? null)];
  },
});

register({
  type: 'GatherElements',
  sinceVersion: [11, 13],
  grad: gatherElementsGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const idx = ctx.inputType(1);
    if (x.shape) normAxis(ctx, node.attrInt('axis', 0), x.shape.length);
    if (x.shape && idx.shape && x.shape.length !== idx.shape.length)
      ctx.fail(`indices rank ${idx.shape.length} differs from data rank ${x.shape.length}`, node.inputs[1]!);
    return [tt(x.dtype, idx.shape)];
  },
});

register({
  type: 'GatherND',
  sinceVersion: [11, 12, 13],
  grad: gatherNDGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const idx = ctx.inputType(1);
    const b = node.attrInt('batch_dims', 0);
    if (!x.shape || !idx.shape) return [tt(x.dtype, null)];
    const last = idx.shape[idx.shape.length - 1];
    if (typeof last !== 'number') return [tt(x.dtype, null)];
    if (b + last > x.shape.length)
      ctx.fail(`indices of depth ${last} exceed data rank ${x.shape.length}`, node.inputs[1]!);
    return [tt(x.dtype, [...idx.shape.slice(0, -1), ...x.shape.slice(b + last)])];
  },
});

for (const [t, since] of [
  ['ScatterElements', [11, 13, 16, 18]],
  ['ScatterND', [11, 13, 16, 18]],
  ['Scatter', [9, 11]],
] as [string, number[]][]) {
  register({
    type: t,
    sinceVersion: since,
    sameDtype: [0, 2],
    infer: (node, ctx) => {
      const x = ctx.inputType(0);
      if (t !== 'ScatterND' && x.shape) normAxis(ctx, node.attrInt('axis', 0), x.shape.length);
      return [tt(x.dtype, x.shape)];
    },
  });
}

// ---------------------------------------------------------------- Shape / Size

function shapeRange(node: Node, ctx: InferCtx, r: number): [number, number] {
  if (ctx.opset < 15) return [0, r];
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  return [clamp(node.attrInt('start', 0)), clamp(node.attrInt('end', r))];
}

register({
  type: 'Shape',
  prune: pruneReads,
  sinceVersion: [1, 13, 15, 19, 21],
  grad: noGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    if (!x.shape) return [tt('int64', [null])];
    const [s, e] = shapeRange(node, ctx, x.shape.length);
    return [tt('int64', [Math.max(0, e - s)])];
  },
  value: (node, ctx) => {
    const x = ctx.inputType(0);
    if (!x.shape) return [undefined];
    const [s, e] = shapeRange(node, ctx, x.shape.length);
    return [x.shape.slice(s, Math.max(s, e))];
  },
});

register({
  type: 'Size',
  prune: pruneReads,
  sinceVersion: [1, 13, 19, 21],
  grad: noGrad,
  infer: () => [tt('int64', [])],
  value: (node, ctx) => {
    const x = ctx.inputType(0);
    return [x.shape ? [dimProduct(x.shape)] : undefined];
  },
});

// ---------------------------------------------------------------- constants

const constantTensorOf = constantNodeTensor;

register({
  type: 'Constant',
  sinceVersion: [1, 9, 11, 12, 13, 19, 21],
  grad: noGrad,
  infer: (node, ctx) => {
    const set = [...node.attrs.keys()].filter(
      (k) => k === 'value' || k.startsWith('value_') || k === 'sparse_value',
    );
    if (set.length !== 1)
      ctx.fail(
        `needs exactly one of value, value_*, sparse_value (has ${set.length ? set.join(', ') : 'none'})`,
      );
    const t = constantTensorOf(node);
    if (!t) return [undefined];
    return [tt(t.dtype, [...t.dims])];
  },
  value: (node) => {
    const t = constantTensorOf(node);
    return [t ? tensorToSym(t) : undefined];
  },
});

function constantOfShapeDtype(node: Node) {
  return node.attrTensor('value')?.dtype ?? 'float32';
}

register({
  type: 'ConstantOfShape',
  sinceVersion: [9, 20, 21],
  grad: noGrad,
  infer: (node, ctx) => {
    const st = ctx.inputType(0);
    const v = ctx.symbolicValue(0);
    const dtype = constantOfShapeDtype(node);
    const val = node.attrTensor('value');
    if (val && val.numel !== 1) ctx.fail(`value must hold one element, has ${val.numel}`, 'value');
    if (v) {
      for (const d of v)
        if (typeof d === 'number' && d < 0)
          ctx.fail(`shape ${formatDims(v)} has a negative dim`, node.inputs[0]!);
      return [tt(dtype, [...v])];
    }
    const n = st.shape?.[0];
    return [tt(dtype, typeof n === 'number' ? new Array<Dim>(n).fill(null) : null)];
  },
  value: (node, ctx) => {
    const v = ctx.intsValue(0);
    if (!v) return [undefined];
    const n = v.reduce((a, b) => a * b, 1);
    if (n > MAX_VALUE_ELEMENTS) return [undefined];
    const t = node.attrTensor('value');
    const fill = t ? (tensorToSym(t)?.[0] ?? null) : 0;
    return [new Array<Dim>(n).fill(fill)];
  },
});

// ---------------------------------------------------------------- Expand / Tile

register({
  type: 'Expand',
  sinceVersion: [8, 13],
  grad: expandGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const v = ctx.symbolicValue(1);
    if (!v) {
      const n = ctx.inputType(1).shape?.[0];
      if (typeof n !== 'number' || !x.shape) return [tt(x.dtype, null)];
      return [tt(x.dtype, new Array<Dim>(Math.max(n, x.shape.length)).fill(null))];
    }
    return [tt(x.dtype, broadcast(ctx, [x.shape, v]))];
  },
  value: (node, ctx) => {
    const x = ctx.inputType(0);
    const v = ctx.symbolicValue(1);
    if (!v) return [undefined];
    return [elementwiseValue(ctx, [0], broadcast(ctx, [x.shape, v]), ([a]) => a!)];
  },
});

register({
  type: 'Tile',
  sinceVersion: [1, 6, 13],
  grad: tileGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    if (!x.shape) return [tt(x.dtype, null)];
    const reps = ctx.symbolicValue(1);
    if (!reps)
      return [
        tt(
          x.dtype,
          x.shape.map(() => null),
        ),
      ];
    if (reps.length !== x.shape.length)
      ctx.fail(`repeats has ${reps.length} entries for rank ${x.shape.length}`, node.inputs[1]!);
    return [
      tt(
        x.dtype,
        x.shape.map((d, i) => dimMul(d, reps[i]!)),
      ),
    ];
  },
});

// ---------------------------------------------------------------- Range / NonZero / data-dependent sizes

register({
  type: 'Range',
  sinceVersion: [11],
  sameDtype: 'all',
  infer: (node, ctx) => {
    const t = ctx.inputType(0);
    for (let i = 0; i < 3; i++) {
      const s = ctx.inputType(i).shape;
      if (s && s.length !== 0 && !(s.length === 1 && s[0] === 1))
        ctx.fail(`input ${i} must be a scalar, got ${formatDims(s)}`, node.inputs[i]!);
    }
    const [s, l, d] = [0, 1, 2].map((i) => ctx.symbolicValue(i)?.[0] ?? null);
    if (d === 0) ctx.fail('delta is 0', node.inputs[2]!);
    let n: Dim = null;
    if (typeof s === 'number' && typeof l === 'number' && typeof d === 'number')
      n = Math.max(0, Math.ceil((l - s) / d));
    else if (d === 1 && s !== null && l !== null) n = dimSub(l, s);
    return [tt(t.dtype, [n])];
  },
  value: (node, ctx) => {
    const [s, l, d] = [0, 1, 2].map((i) => ctx.intsValue(i)?.[0]);
    if (s === undefined || l === undefined || d === undefined || d === 0) return [undefined];
    const n = Math.max(0, Math.ceil((l - s) / d));
    if (n > MAX_VALUE_ELEMENTS) return [undefined];
    return [Array.from({ length: n }, (_, i) => s + i * d)];
  },
});

register({
  type: 'NonZero',
  sinceVersion: [9, 13],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt('int64', [x.shape ? x.shape.length : null, ctx.freshDim('nonzero')])];
  },
});

register({
  type: 'NonMaxSuppression',
  sinceVersion: [10, 11],
  infer: (node, ctx) => [tt('int64', [ctx.freshDim('nms'), 3])],
});

register({
  type: 'Compress',
  sinceVersion: [9, 11],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const axis = node.attrInt('axis');
    if (axis === undefined) return [tt(x.dtype, [ctx.freshDim('compress')])];
    if (!x.shape) return [tt(x.dtype, null)];
    const a = normAxis(ctx, axis, x.shape.length);
    const out = [...x.shape];
    out[a] = ctx.freshDim('compress');
    return [tt(x.dtype, out)];
  },
});

// ---------------------------------------------------------------- Pad

register({
  type: 'Pad',
  prune: prunePad,
  sinceVersion: [1, 2, 11, 13, 18, 19, 21],
  grad: padGrad,
  check: (n, ins) =>
    ins[2] && ins[0] && ins[0].dtype !== ins[2].dtype
      ? [
          {
            kind: 'dtype-mismatch',
            message: `Node "${n.label}" (Pad): constant_value "${n.inputs[2]!.name}" is ${ins[2].dtype} but data is ${ins[0].dtype}`,
          },
        ]
      : [],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const mode = node.attrString('mode', 'constant');
    if (!['constant', 'reflect', 'edge', 'wrap'].includes(mode))
      ctx.fail(`mode "${mode}" is not valid`, 'mode');
    if (!x.shape) return [tt(x.dtype, null)];
    const r = x.shape.length;
    let pads: number[] | undefined;
    let axes: number[] = [...Array(r).keys()];
    if (ctx.opset < 11) {
      pads = node.attrInts(ctx.opset < 2 ? 'paddings' : 'pads');
      if (!pads) ctx.fail('required attribute "pads" is missing', 'pads');
    } else {
      pads = ctx.intsValue(1);
      if (ctx.opset >= 18 && ctx.hasInput(3)) {
        const ax = ctx.intsValue(3);
        if (!ax)
          return [
            tt(
              x.dtype,
              x.shape.map(() => null),
            ),
          ];
        axes = normAxes(ctx, ax, r);
      }
      if (!pads) {
        const pt = ctx.inputType(1).shape;
        if (pt && typeof pt[0] === 'number' && pt[0] !== 2 * axes.length)
          ctx.fail(`pads has ${pt[0]} entries; needs ${2 * axes.length}`, node.inputs[1]!);
        return [
          tt(
            x.dtype,
            x.shape.map((d, i) => (axes.includes(i) ? null : d)),
          ),
        ];
      }
    }
    if (pads!.length !== 2 * axes.length)
      ctx.fail(
        `pads [${pads!.join(', ')}] has ${pads!.length} entries; needs ${2 * axes.length} (begin and end per axis)`,
        node.inputs[1] ?? 'pads',
      );
    const out = [...x.shape];
    axes.forEach((a, k) => {
      const d = dimAdd(dimAdd(out[a]!, pads![k]!), pads![k + axes.length]!);
      if (typeof d === 'number' && d < 0)
        ctx.fail(`pads [${pads!.join(', ')}] remove more than axis ${a} holds`, node.inputs[1] ?? 'pads');
      out[a] = d;
    });
    return [tt(x.dtype, out)];
  },
});

// ---------------------------------------------------------------- Resize / Upsample

function scaledDim(d: Dim, scale: number): Dim {
  if (typeof d === 'number') return Math.trunc(Math.fround(Math.fround(scale) * d));
  if (Number.isInteger(scale)) return dimMul(d, scale);
  return null;
}

register({
  type: 'Resize',
  prune: prunePass(0),
  sinceVersion: [10, 11, 13, 18, 19],
  quantPassThrough: 0,
  grad: resizeGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    if (!x.shape) return [tt(x.dtype, null)];
    const r = x.shape.length;
    let axes = [...Array(r).keys()];
    if (ctx.opset >= 18 && node.attrInts('axes')) axes = normAxes(ctx, node.attrInts('axes')!, r);
    const out = [...x.shape];
    const unknown = () => [
      tt(
        x.dtype,
        x.shape!.map((d, i) => (axes.includes(i) ? null : d)),
      ),
    ];
    if (ctx.opset < 11) {
      const sc = ctx.symbolicValue(1);
      if (!sc) return unknown();
      if (sc.length !== r) ctx.fail(`scales has ${sc.length} entries for rank ${r}`, node.inputs[1]!);
      return [
        tt(
          x.dtype,
          x.shape.map((d, i) => (typeof sc[i] === 'number' ? scaledDim(d, sc[i] as number) : null)),
        ),
      ];
    }
    const scalesT = ctx.hasInput(2) ? ctx.optInputType(2) : undefined;
    const sizesGiven = ctx.hasInput(3);
    const scalesEmpty = scalesT?.shape?.[0] === 0;
    if (sizesGiven && (!ctx.hasInput(2) || scalesEmpty)) {
      const sizes = ctx.symbolicValue(3);
      if (!sizes) return unknown();
      if (sizes.length !== axes.length)
        ctx.fail(`sizes has ${sizes.length} entries for ${axes.length} axes`, node.inputs[3]!);
      const policy = ctx.opset >= 18 ? node.attrString('keep_aspect_ratio_policy', 'stretch') : 'stretch';
      if (policy === 'stretch') {
        axes.forEach((a, k) => (out[a] = sizes[k]!));
        return [tt(x.dtype, out)];
      }
      if (!sizes.every((s) => typeof s === 'number') || !axes.every((a) => typeof x.shape![a] === 'number'))
        return unknown();
      const ratios = axes.map((a, k) => (sizes[k] as number) / (x.shape![a] as number));
      const scale = policy === 'not_larger' ? Math.min(...ratios) : Math.max(...ratios);
      axes.forEach((a) => (out[a] = Math.round(scale * (x.shape![a] as number))));
      return [tt(x.dtype, out)];
    }
    if (!ctx.hasInput(2)) ctx.fail('needs scales or sizes', node.inputs[0]!);
    if (sizesGiven && !scalesEmpty && scalesT?.shape && typeof scalesT.shape[0] === 'number')
      ctx.fail('only one of scales and sizes may be given', node.inputs[3]!);
    const sc = ctx.symbolicValue(2);
    if (!sc) return unknown();
    if (sc.length !== axes.length)
      ctx.fail(`scales has ${sc.length} entries for ${axes.length} axes`, node.inputs[2]!);
    axes.forEach((a, k) => {
      const s = sc[k];
      if (typeof s === 'number' && s <= 0)
        ctx.fail(`scales [${sc.join(', ')}] must be positive`, node.inputs[2]!);
      out[a] = typeof s === 'number' ? scaledDim(out[a]!, s) : null;
    });
    return [tt(x.dtype, out)];
  },
});

register({
  type: 'Upsample',
  prune: prunePass(0),
  sinceVersion: [7, 9],
  grad: resizeGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    if (!x.shape) return [tt(x.dtype, null)];
    const sc = ctx.opset >= 9 ? ctx.symbolicValue(1) : node.attrFloats('scales');
    if (!sc)
      return [
        tt(
          x.dtype,
          x.shape.map(() => null),
        ),
      ];
    return [
      tt(
        x.dtype,
        x.shape.map((d, i) => (typeof sc[i] === 'number' ? scaledDim(d, sc[i] as number) : null)),
      ),
    ];
  },
});

// ---------------------------------------------------------------- TopK / OneHot / space-depth / misc

register({
  type: 'TopK',
  sinceVersion: [1, 10, 11],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    if (!x.shape) return [tt(x.dtype, null), tt('int64', null)];
    const a = normAxis(ctx, node.attrInt('axis', -1), x.shape.length);
    let k: Dim;
    if (ctx.opset < 10) k = requireAttrInt(ctx, node, 'k');
    else {
      const kt = ctx.inputType(1);
      if (kt.shape && !(kt.shape.length === 1 && (kt.shape[0] === 1 || kt.shape[0] === null)))
        ctx.fail(`K must be a 1-D tensor of one element, got ${formatDims(kt.shape)}`, node.inputs[1]!);
      k = ctx.symbolicValue(1)?.[0] ?? null;
    }
    const d = x.shape[a]!;
    if (typeof k === 'number' && (k < 0 || (typeof d === 'number' && k > d)))
      ctx.fail(`K ${k} is out of range for axis ${a} of size ${d}`, node.inputs[1] ?? 'k');
    const out = [...x.shape];
    out[a] = k;
    return [tt(x.dtype, out), tt('int64', [...out])];
  },
});

register({
  type: 'OneHot',
  sinceVersion: [9, 11],
  infer: (node, ctx) => {
    const idx = ctx.inputType(0);
    const vals = ctx.inputType(2);
    if (vals.shape && !(vals.shape.length === 1 && (vals.shape[0] === 2 || vals.shape[0] === null)))
      ctx.fail(`values must have shape [2], got ${formatDims(vals.shape)}`, node.inputs[2]!);
    if (!idx.shape) return [tt(vals.dtype, null)];
    const outRank = idx.shape.length + 1;
    const a = normAxis(ctx, node.attrInt('axis', -1), outRank);
    const depth = ctx.symbolicValue(1)?.[0] ?? null;
    const out = [...idx.shape];
    out.splice(a, 0, typeof depth === 'number' ? Math.trunc(depth) : depth);
    return [tt(vals.dtype, out)];
  },
});

register({
  type: 'DepthToSpace',
  sinceVersion: [1, 11, 13],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const b = requireAttrInt(ctx, node, 'blocksize');
    if (b <= 0) ctx.fail(`blocksize ${b} must be positive`, 'blocksize');
    if (!x.shape) return [tt(x.dtype, [null, null, null, null])];
    if (x.shape.length !== 4) ctx.fail(`input must be 4-D, got ${formatDims(x.shape)}`, node.inputs[0]!);
    const [n, c, h, w] = x.shape as Dim[];
    if (typeof c === 'number' && c % (b * b) !== 0)
      ctx.fail(`channels ${c} are not divisible by blocksize² ${b * b}`, node.inputs[0]!);
    return [tt(x.dtype, [n!, dimDivExact(c!, b * b), dimMul(h!, b), dimMul(w!, b)])];
  },
});

register({
  type: 'SpaceToDepth',
  sinceVersion: [1, 13],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const b = requireAttrInt(ctx, node, 'blocksize');
    if (b <= 0) ctx.fail(`blocksize ${b} must be positive`, 'blocksize');
    if (!x.shape) return [tt(x.dtype, [null, null, null, null])];
    if (x.shape.length !== 4) ctx.fail(`input must be 4-D, got ${formatDims(x.shape)}`, node.inputs[0]!);
    const [n, c, h, w] = x.shape as Dim[];
    return [tt(x.dtype, [n!, dimMul(c!, b * b), dimDivExact(h!, b), dimDivExact(w!, b)])];
  },
});

register({
  type: 'ReverseSequence',
  sinceVersion: [10],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt(x.dtype, x.shape)];
  },
});

register({
  type: 'EyeLike',
  sinceVersion: [9, 22],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const d = node.attrInt('dtype');
    return [tt(d !== undefined ? (dtypeFromCode(d) ?? x.dtype) : x.dtype, x.shape)];
  },
});

// ---------------------------------------------------------------- gradient rules
// Function declarations, so the `register` calls above can name them. Integer inputs (shapes, axes, indices,
// pads, repeats) get no gradient; the ones a rule needs to know (slice bounds, pads, repeats) must be constants.

/** Reshape-like ops (Reshape, Flatten, Squeeze, Unsqueeze): reshape the gradient back to the input's shape. */
function reshapeBackGrad(n: Node, g: GradCtx): (Value | null)[] {
  return [g.needsGrad(0) ? reshapeLike(g.e, g, dOut(g), n.input(0)) : null, null];
}

function transposeGrad(n: Node, g: GradCtx): (Value | null)[] {
  const r = g.shapeOf(n.input(0)).length;
  const perm = n.attrInts('perm') ?? [...Array(r).keys()].reverse();
  const inv = new Array<number>(r);
  perm.forEach((p, i) => (inv[p] = i));
  return [g.e.transpose(dOut(g), inv)];
}

/** Concat: split the gradient by the inputs' static sizes along the axis. */
function concatGrad(n: Node, g: GradCtx): (Value | null)[] {
  const d = dOut(g);
  if (n.inputs.length === 1) return [d];
  const r = g.shapeOf(n.output(0)).length;
  const axis = normAxisG(g, n.attrInt('axis', g.opset < 4 ? 1 : 0), r);
  const sizes = n.inputs.map((v, i) => {
    const s = v ? g.shapeOf(v)[axis] : 0;
    if (typeof s !== 'number')
      g.fail(`input ${i} has a symbolic size (${String(s)}) along the concat axis ${axis}`);
    return s as number;
  });
  const parts = splitConst(g.e, d, axis, sizes);
  return n.inputs.map((_, i) => (g.needsGrad(i) ? parts[i]! : null));
}

/** Split: concatenate the output gradients (zeros for outputs without one). */
function splitGrad(n: Node, g: GradCtx): (Value | null)[] {
  const x = n.input(0);
  const dt = g.dtypeOf(x);
  const axis = normAxisG(g, n.attrInt('axis', 0), g.shapeOf(x).length);
  const parts = n.outputs.map((o, j) => {
    if (!o) return g.fail(`output ${j} is omitted`);
    return g.outputGrad(j) ?? zerosLike(g.e, o, dt);
  });
  return [parts.length === 1 ? parts[0]! : g.e.op('Concat', parts, { axis: A.int(axis) }), null];
}

/**
 * Slice: axes with step 1 get one zero Pad (their pads only need static sizes, except for x[k:] / x[k:-m] which
 * work on symbolic dims too); other steps (including negative ones) scatter the gradient into zeros along the axis.
 */
function sliceGrad(n: Node, g: GradCtx): (Value | null)[] {
  const e = g.e;
  const x = n.input(0);
  const xs = g.shapeOf(x);
  const r = xs.length;
  const dt = g.dtypeOf(x);
  let starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined;
  if (g.opset < 10) {
    starts = n.attrInts('starts') ?? g.fail('attribute "starts" is missing');
    ends = n.attrInts('ends') ?? g.fail('attribute "ends" is missing');
    axes = n.attrInts('axes');
  } else {
    starts = requireConstInts(n, g, 1, 'starts');
    ends = requireConstInts(n, g, 2, 'ends');
    if (n.inputs[3]) axes = requireConstInts(n, g, 3, 'axes');
    if (n.inputs[4]) steps = requireConstInts(n, g, 4, 'steps');
  }
  axes ??= starts.map((_, i) => i);
  steps ??= starts.map(() => 1);
  let cur = dOut(g);
  const curShape: Dim[] = [...g.shapeOf(n.output(0))];
  const begins = new Array<number>(r).fill(0);
  const endPads = new Array<number>(r).fill(0);
  axes.forEach((a0, k) => {
    const a = normAxisG(g, a0, r, 'axes');
    const st = steps![k]!;
    const start = starts[k]!;
    const end = ends[k]!;
    const D = xs[a]!;
    if (st === 1) {
      if (typeof D === 'number') {
        const s = Math.min(Math.max(start < 0 ? start + D : start, 0), D);
        const en = Math.min(Math.max(end < 0 ? end + D : end, 0), D);
        begins[a] = s;
        endPads[a] = D - s - Math.max(0, en - s);
      } else if (start >= 0 && end >= BIG) begins[a] = start;
      else if (start >= 0 && end < 0 && end > -BIG) [begins[a], endPads[a]] = [start, -end];
      else
        g.fail(
          `cannot pad the gradient back along axis ${a} of symbolic size ${String(D)} (start ${start}, end ${end})`,
        );
      return;
    }
    if (typeof D !== 'number')
      g.fail(`a step ${st} slice along axis ${a} needs a static size, got ${String(D)}`);
    const Dn = D as number;
    let s = start < 0 ? start + Dn : start;
    s = st > 0 ? Math.min(Math.max(s, 0), Dn) : Math.min(Math.max(s, 0), Dn - 1);
    const len = sliceLen(Dn, start, end, st) as number;
    const pos = Array.from({ length: len }, (_, i) => s + i * st);
    cur = scatterAlongAxis(e, cur, curShape, a, pos, Dn, dt);
    curShape[a] = Dn;
  });
  return [padZeros(e, cur, begins, endPads, dt), null, null, null, null];
}

/** Place slice `v` (shape `shape`) at positions `pos` of axis `a` of a zero tensor whose axis `a` has size D. */
function scatterAlongAxis(
  e: Emitter,
  v: Value,
  shape: Dim[],
  a: number,
  pos: number[],
  D: number,
  dt: DType,
): Value {
  const scatter = e.opset >= 11 ? 'ScatterElements' : 'Scatter';
  let vShape: Value;
  let outShape: Value;
  if (shape.every((d) => typeof d === 'number')) {
    vShape = e.ints(shape as number[]);
    outShape = e.ints(shape.map((d, i) => (i === a ? D : (d as number))));
  } else {
    vShape = e.op('Shape', [v]);
    outShape = e.op(scatter, [vShape, e.ints([a]), e.ints([D])], { axis: A.int(0) });
  }
  const idxDims = shape.map((_, i) => (i === a ? pos.length : 1));
  const idx = e.op('Expand', [e.constant(Tensor.from('int64', idxDims, pos), 'slice_positions'), vShape]);
  return e.op(scatter, [zerosOfShape(e, outShape, dt), idx, v], { axis: A.int(a) });
}

/**
 * Gather: the gradient to data sums the output gradient into zeros at the gathered indices (repeated indices add
 * up). Opset ≥ 16: ScatterND (axis 0) / ScatterElements (other axes) with reduction="add". Opsets 9–15 have no
 * scatter-add: a OneHot of the indices contracted with the gradient by MatMul instead.
 */
function gatherGrad(n: Node, g: GradCtx): (Value | null)[] {
  if (!g.needsGrad(0)) return [null, null];
  const e = g.e;
  const data = n.input(0);
  let idx = n.input(1);
  const d = dOut(g);
  const dt = g.dtypeOf(data);
  const ds = g.shapeOf(data);
  const q = g.shapeOf(idx).length;
  const a = normAxisG(g, n.attrInt('axis', 0), ds.length);
  const S = ds.slice(a + 1);
  if (e.opset >= 16) {
    if (g.dtypeOf(idx) !== 'int64') idx = e.cast(idx, 'int64');
    if (a === 0)
      return [
        e.op('ScatterND', [zerosLike(e, data, dt), e.unsqueeze(idx, [q]), d], { reduction: A.string('add') }),
        null,
      ];
    // flatten the index dims of the gradient to one axis at `a`, then ScatterElements with expanded indices
    let flat: Value;
    if (q === 1) flat = d;
    else if (q === 0) flat = e.unsqueeze(d, [a]);
    else {
      if (!S.every((s) => typeof s === 'number'))
        g.fail(`the dims after axis ${a} must be static to flatten the indices, got [${ds.join(', ')}]`);
      flat = e.reshape(d, [...new Array<number>(a).fill(0), -1, ...(S as number[])]);
    }
    const idxShaped = e.reshape(idx, [...new Array<number>(a).fill(1), -1, ...S.map(() => 1)]);
    const idxE = e.op('Expand', [idxShaped, e.shape(flat)]);
    return [
      e.op('ScatterElements', [zerosLike(e, data, dt), idxE, flat], {
        axis: A.int(a),
        reduction: A.string('add'),
      }),
      null,
    ];
  }
  if (e.opset < 9)
    g.fail('the Gather gradient needs OneHot (opset 9) or ScatterND with reduction (opset 16)');
  const V = ds[a];
  if (typeof V !== 'number') g.fail(`axis ${a} of the data has a symbolic size (${String(V)})`);
  const Sp = staticProduct(S);
  if (Sp === undefined) g.fail(`the dims after axis ${a} must be static, got [${ds.join(', ')}]`);
  const oh = e.op(
    'OneHot',
    [e.reshape(idx, [-1]), e.ints([V as number]), e.constant(Tensor.from(dt, [2], [0, 1]), 'onehot_values')],
    {
      axis: A.int(-1),
    },
  ); // [K, V]
  const d3 = e.reshape(d, [...new Array<number>(a).fill(0), -1, Sp!]); // P + [K, S']
  const gv = e.op('MatMul', [e.transpose(oh, [1, 0]), d3]); // P + [V, S']
  return [reshapeLike(e, g, gv, data), null];
}

/** GatherElements: ScatterElements with reduction="add" (opset ≥ 16), else OneHot along the axis summed. */
function gatherElementsGrad(n: Node, g: GradCtx): (Value | null)[] {
  if (!g.needsGrad(0)) return [null, null];
  const e = g.e;
  const data = n.input(0);
  let idx = n.input(1);
  const d = dOut(g);
  const dt = g.dtypeOf(data);
  const ds = g.shapeOf(data);
  const a = normAxisG(g, n.attrInt('axis', 0), ds.length);
  if (e.opset >= 16) {
    if (g.dtypeOf(idx) !== 'int64') idx = e.cast(idx, 'int64');
    return [
      e.op('ScatterElements', [zerosLike(e, data, dt), idx, d], {
        axis: A.int(a),
        reduction: A.string('add'),
      }),
      null,
    ];
  }
  const D = ds[a];
  if (typeof D !== 'number') g.fail(`axis ${a} of the data has a symbolic size (${String(D)})`);
  const oh = e.op(
    'OneHot',
    [idx, e.ints([D as number]), e.constant(Tensor.from(dt, [2], [0, 1]), 'onehot_values')],
    {
      axis: A.int(a + 1),
    },
  ); // idx dims with D inserted after axis a
  let gx = e.reduceSum(e.mul(oh, e.unsqueeze(d, [a + 1])), [a], false);
  // indices may be shorter than the data on the other axes
  const is = g.shapeOf(idx);
  const ends = ds.map((dd, i) => {
    if (i === a || dd === is[i]) return 0;
    if (typeof dd !== 'number' || typeof is[i] !== 'number')
      g.fail(`cannot pad the gradient from ${String(is[i])} to ${String(dd)} on axis ${i}`);
    return (dd as number) - (is[i] as number);
  });
  gx = padZeros(
    e,
    gx,
    ends.map(() => 0),
    ends,
    dt,
  );
  return [gx, null];
}

/** GatherND (batch_dims 0): ScatterND with reduction="add" into zeros (opset ≥ 16). */
function gatherNDGrad(n: Node, g: GradCtx): (Value | null)[] {
  if (!g.needsGrad(0)) return [null, null];
  if (n.attrInt('batch_dims', 0) !== 0) g.fail('batch_dims ≠ 0 is not supported');
  if (g.opset < 16) g.fail('the GatherND gradient needs ScatterND with reduction="add" (opset 16)');
  const data = n.input(0);
  const dt = g.dtypeOf(data);
  return [
    g.e.op('ScatterND', [zerosLike(g.e, data, dt), n.input(1), dOut(g)], { reduction: A.string('add') }),
    null,
  ];
}

function expandGrad(n: Node, g: GradCtx): (Value | null)[] {
  return [g.needsGrad(0) ? g.unbroadcast(dOut(g), 0) : null, null];
}

/** Tile: view the gradient as [r0, D0, r1, D1, …] and sum over the repeats (static shape and repeats). */
function tileGrad(n: Node, g: GradCtx): (Value | null)[] {
  if (g.opset < 6) g.fail('Tile before opset 6 (tiles/axis inputs) is not supported');
  const xs = g.shapeOf(n.input(0));
  const reps = requireConstInts(n, g, 1, 'repeats');
  if (!xs.every((d) => typeof d === 'number'))
    g.fail(`the input shape must be static, got [${xs.join(', ')}]`);
  const d = dOut(g);
  if (reps.every((r) => r === 1)) return [d, null];
  const inter = (xs as number[]).flatMap((s, i) => [reps[i]!, s]);
  return [
    g.e.reduceSum(
      g.e.reshape(d, inter),
      xs.map((_, i) => 2 * i),
      false,
    ),
    null,
  ];
}

/** Pad (constant mode): slice the gradient back (pads may be negative: pad those back with zeros). */
function padGrad(n: Node, g: GradCtx): (Value | null)[] {
  const e = g.e;
  const mode = n.attrString('mode', 'constant');
  if (mode !== 'constant') g.fail(`mode "${mode}" has no gradient rule (only "constant")`);
  const x = n.input(0);
  const r = g.shapeOf(x).length;
  const dt = g.dtypeOf(x);
  let pads: number[];
  let axes = [...Array(r).keys()];
  if (g.opset < 11)
    pads = n.attrInts(g.opset < 2 ? 'paddings' : 'pads') ?? g.fail('attribute "pads" is missing');
  else {
    pads = requireConstInts(n, g, 1, 'pads');
    if (g.opset >= 18 && n.inputs[3])
      axes = requireConstInts(n, g, 3, 'axes').map((a) => normAxisG(g, a, r, 'axes'));
  }
  if (pads.length !== 2 * axes.length) g.fail(`pads has ${pads.length} entries for ${axes.length} axes`);
  const sAxes: number[] = [];
  const sStarts: number[] = [];
  const sEnds: number[] = [];
  const back0 = new Array<number>(r).fill(0);
  const back1 = new Array<number>(r).fill(0);
  axes.forEach((a, k) => {
    const b = pads[k]!;
    const en = pads[k + axes.length]!;
    if (b > 0 || en > 0) {
      sAxes.push(a);
      sStarts.push(Math.max(b, 0));
      sEnds.push(en > 0 ? -en : BIG);
    }
    back0[a] = Math.max(-b, 0);
    back1[a] = Math.max(-en, 0);
  });
  const d = dOut(g);
  const inner = sliceConst(e, d, sStarts, sEnds, sAxes);
  const gx = g.needsGrad(0) ? padZeros(e, inner, back0, back1, dt) : null;
  let gc: Value | null = null;
  if (g.opset >= 11 && n.inputs[2] && g.needsGrad(2)) {
    const all = [...Array(r).keys()];
    gc = e.sub(e.reduceSum(d, all, false), e.reduceSum(inner, all, false));
    const cs = g.shapeOf(n.inputs[2]);
    if (cs.length)
      gc = e.reshape(
        gc,
        cs.map((v) => (typeof v === 'number' ? v : 1)),
      );
  }
  return [gx, null, gc, null];
}

/** Ops whose outputs are integers or constants: nothing flows back. */
function noGrad(n: Node): (Value | null)[] {
  return n.inputs.map(() => null);
}
