// Helpers shared by the op rules: broadcasting, axes, attribute validation, conv/pool arithmetic and the
// element-wise evaluation of small known values.
import type { DType, Dim, Node, TensorType } from '../ir/index.js';
import { isFloat } from '../ir/index.js';
import type { InferCtx, SymValue } from './registry.js';
import { dimAdd, dimCeilDiv, dimEquals, dimFloorDiv, dimMul, dimProduct, dimSub, formatDims } from './sym.js';

export const MAX_VALUE_ELEMENTS = 4096;

export function tt(dtype: DType, shape: Dim[] | null): TensorType {
  return { kind: 'tensor', dtype, shape };
}

/** Normalize a possibly negative axis into [0, rank); ShapeError when out of range. */
export function normAxis(ctx: InferCtx, axis: number, rank: number, what = 'axis'): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank)
    ctx.fail(`${what} ${axis} is out of range for rank ${rank} (allowed [${-rank}, ${rank - 1}])`, what);
  return axis < 0 ? axis + rank : axis;
}

/** Normalize a list of axes; rejects duplicates. */
export function normAxes(ctx: InferCtx, axes: readonly number[], rank: number, what = 'axes'): number[] {
  const out = axes.map((a) => normAxis(ctx, a, rank, what));
  if (new Set(out).size !== out.length) ctx.fail(`${what} [${axes.join(', ')}] has a repeated axis`, what);
  return out;
}

/** ONNX multidirectional (numpy) broadcasting over symbolic dims. null shape (unknown rank) → null. */
export function broadcast(ctx: InferCtx, shapes: (readonly Dim[] | null)[]): Dim[] | null {
  if (shapes.some((s) => s === null)) return null;
  const ss = shapes as (readonly Dim[])[];
  const rank = Math.max(0, ...ss.map((s) => s.length));
  const out: Dim[] = [];
  for (let k = rank; k >= 1; k--) {
    const dims: Dim[] = [];
    for (const s of ss) if (k <= s.length) dims.push(s[s.length - k]!);
    out.push(broadcastDim(ctx, dims, shapes));
  }
  return out;
}

function broadcastDim(ctx: InferCtx, dims: Dim[], shapes: (readonly Dim[] | null)[]): Dim {
  const nums = new Set<number>();
  const syms = new Set<string>();
  let unknown = false;
  for (const d of dims) {
    if (d === 1) continue;
    if (typeof d === 'number') nums.add(d);
    else if (typeof d === 'string') syms.add(d);
    else unknown = true;
  }
  if (nums.size > 1)
    ctx.fail(
      `shapes ${shapes.map((s) => formatDims(s)).join(', ')} cannot be broadcast (dims ${[...nums].join(' vs ')})`,
    );
  if (nums.size === 1) return [...nums][0]!;
  if (unknown) return null;
  if (syms.size === 0) return 1;
  if (syms.size === 1) return [...syms][0]!;
  return null;
}

/** Unidirectional broadcast of `b` onto `a` (PRelu slope, Gemm C): the result has `a`'s shape. */
export function unidirectional(
  ctx: InferCtx,
  a: readonly Dim[] | null,
  b: readonly Dim[] | null,
  what: string,
): Dim[] | null {
  if (a === null) return null;
  if (b === null) return [...a];
  if (b.length > a.length)
    ctx.fail(`${what} of shape ${formatDims(b)} cannot be broadcast to ${formatDims(a)}`);
  for (let k = 1; k <= b.length; k++) {
    const x = a[a.length - k]!;
    const y = b[b.length - k]!;
    if (typeof x === 'number' && typeof y === 'number' && y !== 1 && x !== y)
      ctx.fail(`${what} of shape ${formatDims(b)} cannot be broadcast to ${formatDims(a)}`);
  }
  return [...a];
}

/** Merge two shapes of one tensor (e.g. If branches, Concat non-axis dims): numbers beat symbols beat null. */
export function mergeShapes(a: readonly Dim[] | null, b: readonly Dim[] | null): Dim[] | null {
  if (a === null || b === null || a.length !== b.length) return null;
  return a.map((d, i) => {
    const e = b[i]!;
    if (d === e) return d;
    if (typeof d === 'number' && typeof e === 'number') return null;
    return dimEquals(d, e) ? d : null;
  });
}

export function rankOf(t: TensorType): number | undefined {
  return t.shape ? t.shape.length : undefined;
}

/** Axes given by an attribute (before `inputSince`) or by an input (from `inputSince`). */
export function axesArg(
  node: Node,
  ctx: InferCtx,
  opts: { attr?: string; input: number; inputSince: number },
): { given: boolean; axes: number[] | undefined } {
  if (ctx.opset < opts.inputSince) {
    const a = node.attrInts(opts.attr ?? 'axes');
    return { given: a !== undefined, axes: a };
  }
  if (!ctx.hasInput(opts.input)) return { given: false, axes: undefined };
  return { given: true, axes: ctx.intsValue(opts.input) };
}

export function requireAttrInt(ctx: InferCtx, node: Node, name: string): number {
  const v = node.attrInt(name);
  if (v === undefined) ctx.fail(`required attribute "${name}" is missing`, name);
  return v;
}

// ---------------------------------------------------------------- conv / pool arithmetic

export interface WindowAttrs {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  autoPad: string;
}

/** Read and validate kernel_shape/strides/dilations/pads/auto_pad for `spatial` spatial dims. */
export function windowAttrs(
  ctx: InferCtx,
  node: Node,
  spatial: number,
  kernelFromWeights?: Dim[],
): WindowAttrs {
  let kernel = node.attrInts('kernel_shape');
  if (!kernel) {
    if (kernelFromWeights && kernelFromWeights.every((d) => typeof d === 'number'))
      kernel = kernelFromWeights as number[];
    else if (kernelFromWeights) kernel = kernelFromWeights.map(() => -1);
    else ctx.fail('required attribute "kernel_shape" is missing', 'kernel_shape');
  }
  if (kernel.length !== spatial)
    ctx.fail(
      `kernel_shape [${kernel.join(', ')}] has ${kernel.length} entries; the input has ${spatial} spatial dims`,
      'kernel_shape',
    );
  kernel.forEach((k) => {
    if (k === -1 && !node.attrInts('kernel_shape')) return;
    if (!Number.isInteger(k) || k <= 0)
      ctx.fail(`kernel_shape [${kernel!.join(', ')}] must be positive`, 'kernel_shape');
  });
  const strides = node.attrInts('strides') ?? new Array<number>(spatial).fill(1);
  if (strides.length !== spatial)
    ctx.fail(`strides [${strides.join(', ')}] needs ${spatial} entries`, 'strides');
  if (strides.some((s) => !Number.isInteger(s) || s <= 0))
    ctx.fail(`strides [${strides.join(', ')}] must be positive`, 'strides');
  const dilations = node.attrInts('dilations') ?? new Array<number>(spatial).fill(1);
  if (dilations.length !== spatial)
    ctx.fail(`dilations [${dilations.join(', ')}] needs ${spatial} entries`, 'dilations');
  if (dilations.some((s) => !Number.isInteger(s) || s <= 0))
    ctx.fail(`dilations [${dilations.join(', ')}] must be positive`, 'dilations');
  const autoPad = node.attrString('auto_pad', 'NOTSET');
  if (!['NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID'].includes(autoPad))
    ctx.fail(`auto_pad "${autoPad}" is not valid`, 'auto_pad');
  let pads = node.attrInts('pads');
  if (pads && autoPad !== 'NOTSET' && pads.some((p) => p !== 0))
    ctx.fail(`pads and auto_pad=${autoPad} cannot both be set`, 'pads');
  pads ??= new Array<number>(2 * spatial).fill(0);
  if (pads.length !== 2 * spatial)
    ctx.fail(
      `pads [${pads.join(', ')}] needs ${2 * spatial} entries (begin and end per spatial dim)`,
      'pads',
    );
  if (pads.some((p) => !Number.isInteger(p) || p < 0))
    ctx.fail(`pads [${pads.join(', ')}] must be non-negative`, 'pads');
  return { kernel, strides, dilations, pads, autoPad };
}

/** Output size of a sliding window over one dim (Conv, pools). */
export function windowOut(inSize: Dim, i: number, w: WindowAttrs, ceilMode = false): Dim {
  const k = w.kernel[i]!;
  if (k < 0) return null;
  const s = w.strides[i]!;
  const d = w.dilations[i]!;
  const eff = d * (k - 1) + 1;
  if (w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER') return dimCeilDiv(inSize, s);
  const pb = w.autoPad === 'VALID' ? 0 : w.pads[i]!;
  const pe = w.autoPad === 'VALID' ? 0 : w.pads[i + w.kernel.length]!;
  const num = dimSub(dimAdd(inSize, pb + pe), eff); // in + pads - eff  (= numerator - 1 + 1)
  if (typeof num === 'number' && num < 0 && !ceilMode) return Math.max(0, Math.floor(num / s) + 1);
  let out = dimAdd(ceilMode ? dimCeilDiv(num, s) : dimFloorDiv(num, s), 1);
  if (ceilMode && out !== null) {
    // the last window must start inside the input or the left padding
    const lastStart = dimMul(dimSub(out, 1), s);
    const limit = dimAdd(inSize, pb);
    const diff = dimSub(lastStart, limit);
    if (typeof diff === 'number') {
      if (diff >= 0) out = dimSub(out, 1);
    } else if (s !== 1) out = null;
  }
  return out;
}

// ---------------------------------------------------------------- known values

/** Element-wise evaluation over broadcast inputs whose values are known. */
export function elementwiseValue(
  ctx: InferCtx,
  inputs: number[],
  outShape: Dim[] | null,
  f: (xs: Dim[]) => Dim,
): SymValue | undefined {
  if (!outShape || !outShape.every((d) => typeof d === 'number')) return undefined;
  const os = outShape as number[];
  const n = os.reduce((a, b) => a * b, 1);
  if (n > MAX_VALUE_ELEMENTS) return undefined;
  const vals: SymValue[] = [];
  const shapes: number[][] = [];
  for (const i of inputs) {
    const v = ctx.symbolicValue(i);
    const t = ctx.optInputType(i);
    if (!v || !t?.shape || !t.shape.every((d) => typeof d === 'number')) return undefined;
    vals.push(v);
    shapes.push(t.shape as number[]);
  }
  const out: Dim[] = new Array(n);
  const idx = new Array<number>(os.length).fill(0);
  for (let e = 0; e < n; e++) {
    const xs: Dim[] = vals.map((v, j) => v[flatIndex(idx, shapes[j]!)] ?? null);
    out[e] = f(xs);
    for (let a = os.length - 1; a >= 0; a--) {
      if (++idx[a]! < os[a]!) break;
      idx[a] = 0;
    }
  }
  return out;
}

function flatIndex(outIdx: number[], shape: number[]): number {
  let f = 0;
  const off = outIdx.length - shape.length;
  for (let a = 0; a < shape.length; a++) f = f * shape[a]! + (shape[a] === 1 ? 0 : outIdx[a + off]!);
  return f;
}

/** Numeric-only element function lifted to dims (null when an element is not a number). */
export function num2(f: (a: number, b: number) => number): (xs: Dim[]) => Dim {
  return ([a, b]) => (typeof a === 'number' && typeof b === 'number' ? f(a, b) : null);
}

export function num1(f: (a: number) => number): (xs: Dim[]) => Dim {
  return ([a]) => (typeof a === 'number' ? f(a) : null);
}

/** Round a number the way a store into `dtype` would (integer truncation, float32 rounding). */
export function castNumber(v: number, dtype: DType): number {
  if (dtype === 'bool') return v !== 0 ? 1 : 0;
  if (isFloat(dtype)) return dtype === 'float32' ? Math.fround(v) : v;
  if (!Number.isFinite(v)) return v;
  return Math.trunc(v);
}

export function isIntDtype(d: DType): boolean {
  return (
    d === 'int64' ||
    d === 'int32' ||
    d === 'int16' ||
    d === 'int8' ||
    d === 'uint8' ||
    d === 'uint16' ||
    d === 'uint32' ||
    d === 'uint64'
  );
}

export { dimProduct };
