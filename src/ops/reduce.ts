// Reductions: Reduce* (axes as attribute or input depending on op and opset), ArgMax/ArgMin.
import type { Dim, Node } from '../ir/index.js';
import { type InferCtx, register } from './registry.js';
import { dimAdd, dimMul, formatDims } from './sym.js';
import { normAxes, normAxis, tt } from './util.js';

/** Opset at which each reduction's axes moved from an attribute to an input. */
const AXES_INPUT_SINCE: Record<string, number> = {
  ReduceSum: 13,
  ReduceMean: 18,
  ReduceMax: 18,
  ReduceMin: 18,
  ReduceProd: 18,
  ReduceL1: 18,
  ReduceL2: 18,
  ReduceLogSum: 18,
  ReduceLogSumExp: 18,
  ReduceSumSquare: 18,
};

/** Reduced axes (normalized), 'noop' for the identity, or undefined when the axes are not known. */
function reducedAxes(node: Node, ctx: InferCtx, rank: number): number[] | 'noop' | undefined {
  const since = AXES_INPUT_SINCE[node.opType]!;
  let axes: number[] | undefined;
  if (ctx.opset < since) axes = node.attrInts('axes');
  else if (ctx.hasInput(1)) {
    axes = ctx.intsValue(1);
    if (!axes) {
      const t = ctx.optInputType(1);
      if (t?.shape?.[0] !== 0) return undefined;
      axes = [];
    }
    if (node.attrInts('axes'))
      ctx.fail(`axes must be an input from opset ${since}, not an attribute`, 'axes');
  }
  if (!axes || axes.length === 0) {
    if (ctx.opset >= since && node.attrInt('noop_with_empty_axes', 0) === 1) return 'noop';
    return [...Array(rank).keys()];
  }
  return normAxes(ctx, axes, rank);
}

for (const t of Object.keys(AXES_INPUT_SINCE)) {
  register({
    type: t,
    sinceVersion: t === 'ReduceSum' ? [1, 11, 13] : [1, 11, 13, 18],
    infer: (node, ctx) => {
      const x = ctx.inputType(0);
      const keep = node.attrInt('keepdims', 1) === 1;
      if (!x.shape) return [tt(x.dtype, null)];
      const axes = reducedAxes(node, ctx, x.shape.length);
      if (axes === 'noop') return [tt(x.dtype, x.shape)];
      if (!axes) {
        if (keep)
          return [
            tt(
              x.dtype,
              x.shape.map(() => null),
            ),
          ];
        const n = ctx.optInputType(1)?.shape?.[0];
        return [tt(x.dtype, typeof n === 'number' ? new Array<Dim>(x.shape.length - n).fill(null) : null)];
      }
      const out: Dim[] = [];
      x.shape.forEach((d, i) => {
        if (!axes.includes(i)) out.push(d);
        else if (keep) out.push(1);
      });
      return [tt(x.dtype, out)];
    },
    value:
      t === 'ReduceSum' || t === 'ReduceProd' || t === 'ReduceMax' || t === 'ReduceMin'
        ? (node, ctx) => {
            // reductions of a 1-D known value over its only axis (torch computes sizes with ReduceProd(Shape(x)))
            const x = ctx.inputType(0);
            const v = ctx.symbolicValue(0);
            if (!v || !x.shape || x.shape.length !== 1) return [undefined];
            const axes = reducedAxes(node, ctx, 1);
            if (axes === 'noop') return [v];
            if (!axes || axes.length !== 1) return [undefined];
            if (t === 'ReduceSum') return [[v.reduce<Dim>((a, b) => dimAdd(a, b), 0)]];
            if (t === 'ReduceProd') return [[v.reduce<Dim>((a, b) => dimMul(a, b), 1)]];
            if (!v.every((d) => typeof d === 'number') || v.length === 0) return [undefined];
            return [[t === 'ReduceMax' ? Math.max(...(v as number[])) : Math.min(...(v as number[]))]];
          }
        : undefined,
  });
}

for (const t of ['ArgMax', 'ArgMin']) {
  register({
    type: t,
    sinceVersion: [1, 11, 12, 13],
    infer: (node, ctx) => {
      const x = ctx.inputType(0);
      const keep = node.attrInt('keepdims', 1) === 1;
      if (!x.shape) return [tt('int64', null)];
      if (x.shape.length === 0)
        ctx.fail(`input must have rank ≥ 1, got ${formatDims(x.shape)}`, node.inputs[0]!);
      const a = normAxis(ctx, node.attrInt('axis', 0), x.shape.length);
      const out: Dim[] = [];
      x.shape.forEach((d, i) => {
        if (i !== a) out.push(d);
        else if (keep) out.push(1);
      });
      return [tt('int64', out)];
    },
  });
}
