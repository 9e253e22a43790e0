// Small building blocks shared by the gradient rules (the `grad` slots of elementwise.ts, reduce.ts, shape.ts):
// each one emits a few ONNX nodes through the rule's Emitter and picks the form the graph's opset allows.
import { A, type DType, type Dim, type Emitter, type Node, Tensor, type Value } from '../ir/index.js';
import { constInts } from './const.js';
import type { GradCtx } from './registry.js';

/** A gradient rule as stored in `OpEntry.grad`. */
export type GradRule = (node: Node, g: GradCtx) => (Value | null)[];

/** The gradient flowing into output `i` (a rule is only called when some output has one). */
export function dOut(g: GradCtx, i = 0): Value {
  return g.outputGrad(i) ?? g.fail(`no gradient reaches output ${i}`);
}

export function allNumbers(s: readonly Dim[]): s is number[] {
  return s.every((d) => typeof d === 'number');
}

export { constFloats, constInts } from './const.js';

/** Constant integer elements of input `i`, failing clearly when it is computed at run time. */
export function requireConstInts(node: Node, g: GradCtx, i: number, what: string): number[] {
  const v = node.inputs[i];
  const ints = constInts(v);
  if (!ints) g.fail(`${what} (input ${i} "${v?.name}") must be a constant to build the gradient`);
  return ints!;
}

export function normAxisG(g: GradCtx, axis: number, rank: number, what = 'axis'): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank)
    g.fail(`${what} ${axis} is out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** Cast a bool tensor to `dtype` (0/1). */
export function maskOf(e: Emitter, cond: Value, dtype: DType): Value {
  return e.cast(cond, dtype);
}

/** x ≥ y elementwise (as bool), with ops every opset has (Equal on floats needs opset 11). */
export function geq(e: Emitter, x: Value, y: Value): Value {
  return e.op('Not', [e.op('Less', [x, y])]);
}
export function leq(e: Emitter, x: Value, y: Value): Value {
  return e.op('Not', [e.op('Greater', [x, y])]);
}

/** sign(x) in x's dtype (Sign needs opset 9). */
export function signOf(e: Emitter, x: Value, dtype: DType): Value {
  if (e.opset >= 9) return e.op('Sign', [x]);
  const zero = e.scalar(0, dtype);
  return e.sub(maskOf(e, e.op('Greater', [x, zero]), dtype), maskOf(e, e.op('Less', [x, zero]), dtype));
}

/** Zeros shaped like `v`: ConstantOfShape of a constant shape when static, of Shape(v) otherwise. */
export function zerosLike(e: Emitter, v: Value, dtype: DType): Value {
  const s = v.shape;
  const shape = s && allNumbers(s) ? e.ints(s) : e.shape(v);
  return zerosOfShape(e, shape, dtype);
}

export function zerosOfShape(e: Emitter, shape: Value, dtype: DType): Value {
  return e.op('ConstantOfShape', [shape], { value: A.tensor(Tensor.from(dtype, [1], [0])) });
}

/** A shape value for `v`: a constant when its static shape is all numbers, else Shape(v). */
export function shapeValue(e: Emitter, v: Value): Value {
  const s = v.shape;
  return s && allNumbers(s) && !s.includes(0) ? e.ints(s) : e.shape(v);
}

/** Reshape `d` to the shape of `x` (static shape when known; the attribute form before opset 5). */
export function reshapeLike(e: Emitter, g: GradCtx, d: Value, x: Value): Value {
  if (e.opset < 5) {
    const s = g.shapeOf(x);
    if (!allNumbers(s)) g.fail(`Reshape before opset 5 needs the static shape of "${x.name}"`);
    return e.op('Reshape', [d], { shape: A.ints(s as number[]) });
  }
  return e.reshape(d, shapeValue(e, x));
}

/**
 * Expand `d` (x's shape with size 1 on `axes`) to the shape of `x`: Expand from opset 8, Tile with static repeats
 * before.
 */
export function expandLike(e: Emitter, g: GradCtx, d: Value, x: Value, axes: readonly number[]): Value {
  if (e.opset >= 8) return e.op('Expand', [d, shapeValue(e, x)]);
  if (e.opset < 6) g.fail('broadcasting the gradient needs Expand (opset 8) or Tile (opset 6)');
  const xs = g.shapeOf(x);
  const reps = xs.map((s, i) => (axes.includes(i) ? s : 1));
  if (!allNumbers(reps))
    g.fail(`broadcasting the gradient before opset 8 (no Expand) needs static sizes, got [${xs.join(', ')}]`);
  return e.op('Tile', [d, e.ints(reps as number[])]);
}

/** Pad with zeros: `begins`/`ends` per axis (full rank). Attribute form before opset 11 ('paddings' before 2). */
export function padZeros(
  e: Emitter,
  x: Value,
  begins: readonly number[],
  ends: readonly number[],
  dtype: DType,
): Value {
  if (begins.every((b) => b === 0) && ends.every((b) => b === 0)) return x;
  const pads = [...begins, ...ends];
  if (e.opset < 2)
    return e.op('Pad', [x], { paddings: A.ints(pads), mode: A.string('constant'), value: A.float(0) });
  if (e.opset < 11)
    return e.op('Pad', [x], { pads: A.ints(pads), mode: A.string('constant'), value: A.float(0) });
  return e.op('Pad', [x, e.ints(pads), e.scalar(0, dtype)], { mode: A.string('constant') });
}

/** Slice with constant starts/ends/axes (steps 1). Attribute form before opset 10. */
export function sliceConst(
  e: Emitter,
  x: Value,
  starts: readonly number[],
  ends: readonly number[],
  axes: readonly number[],
): Value {
  if (!axes.length) return x;
  if (e.opset < 10)
    return e.op('Slice', [x], { starts: A.ints(starts), ends: A.ints(ends), axes: A.ints(axes) });
  return e.op('Slice', [x, e.ints(starts), e.ints(ends), e.ints(axes)]);
}

/** Split `x` along `axis` into parts of the given sizes (split as attribute before opset 13, input after). */
export function splitConst(e: Emitter, x: Value, axis: number, sizes: readonly number[]): Value[] {
  const node =
    e.opset >= 13
      ? e.node('Split', [x, e.ints(sizes)], { axis: A.int(axis) }, { outputs: sizes.length })
      : e.node('Split', [x], { axis: A.int(axis), split: A.ints(sizes) }, { outputs: sizes.length });
  return node.outputs.map((o) => o!);
}

/** Unsqueeze `d` at the (sorted, normalized) reduced axes when the reduction dropped them. */
export function restoreAxes(e: Emitter, d: Value, axes: readonly number[], keepdims: boolean): Value {
  if (keepdims || !axes.length) return d;
  return e.unsqueeze(
    d,
    [...axes].sort((a, b) => a - b),
  );
}

/** Product of static dims, or undefined when one is symbolic. */
export function staticProduct(dims: readonly Dim[]): number | undefined {
  let p = 1;
  for (const d of dims) {
    if (typeof d !== 'number') return undefined;
    p *= d;
  }
  return p;
}
