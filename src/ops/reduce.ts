// Reductions: Reduce* (axes as attribute or input depending on op and opset), ArgMax/ArgMin.
import type { DType, Dim, Emitter, Node, Value } from '../ir/index.js';
import {
  constInts,
  dOut,
  expandLike,
  geq,
  type GradRule,
  leq,
  maskOf,
  normAxisG,
  restoreAxes,
  signOf,
  staticProduct,
} from './gradutil.js';
import type { GradCtx, InferCtx } from './registry.js';
import { register } from './table.js';
import { pruneReduce } from './prune.js';
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
    prune: pruneReduce,
    grad: reduceGrad(t),
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

// ---------------------------------------------------------------- gradient rules

/** The reduced axes of a node being differentiated (normalized, sorted), or 'noop'. Axes must be constants. */
function gradAxes(node: Node, g: GradCtx, rank: number): number[] | 'noop' {
  const since = AXES_INPUT_SINCE[node.opType]!;
  let axes: number[] | undefined;
  if (g.opset < since) axes = node.attrInts('axes');
  else if (node.inputs[1]) {
    axes = constInts(node.inputs[1]);
    if (!axes) g.fail(`axes (input 1 "${node.inputs[1].name}") must be a constant to build the gradient`);
  }
  if (!axes || axes.length === 0) {
    if (g.opset >= since && node.attrInt('noop_with_empty_axes', 0) === 1) return 'noop';
    return [...Array(rank).keys()];
  }
  return [...new Set(axes.map((a) => normAxisG(g, a, rank, 'axes')))].sort((a, b) => a - b);
}

interface ReduceParts {
  e: Emitter;
  g: GradCtx;
  x: Value;
  /** The output, with the reduced axes present (size 1): emitted on first use. */
  y: () => Value;
  /** The output gradient, with the reduced axes present. */
  d: Value;
  node: Node;
  axes: number[];
  dt: DType;
}

function reduceGrad(t: string): GradRule | undefined {
  const rule =
    (f: (p: ReduceParts) => Value): GradRule =>
    (n, g) => {
      const x = n.input(0);
      const rank = g.shapeOf(x).length;
      const axes = gradAxes(n, g, rank);
      if (axes === 'noop') {
        if (['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin'].includes(t)) return [dOut(g), null];
        return g.fail('noop_with_empty_axes with empty axes is not supported for this reduction');
      }
      const keep = n.attrInt('keepdims', 1) === 1;
      const e = g.e;
      let yb: Value | undefined;
      const y = () => (yb ??= restoreAxes(e, n.output(0), axes, keep));
      const d = restoreAxes(e, dOut(g), axes, keep);
      return [f({ e, g, x, y, d, node: n, axes, dt: g.dtypeOf(x) }), null];
    };
  switch (t) {
    case 'ReduceSum':
      return rule(({ e, g, x, d, axes }) => expandLike(e, g, d, x, axes));
    case 'ReduceMean':
      return rule(({ e, g, x, d, node, axes, dt }) => {
        const xs = g.shapeOf(x);
        const count = staticProduct(axes.map((a) => xs[a]!));
        const inv =
          count !== undefined
            ? e.scalar(1 / count, dt)
            : e.div(e.cast(e.op('Size', [node.output(0)]), dt), e.cast(e.op('Size', [x]), dt)); // outputs / inputs
        return expandLike(e, g, e.mul(d, inv), x, axes);
      });
    case 'ReduceMax':
    case 'ReduceMin': // split evenly between tied extremes (as torch.amax / amin)
      return rule(({ e, x, y, d, axes, dt }) => {
        const m = maskOf(e, t === 'ReduceMax' ? geq(e, x, y()) : leq(e, x, y()), dt);
        return e.mul(e.div(d, e.reduceSum(m, axes, true)), m);
      });
    case 'ReduceSumSquare':
      return rule(({ e, x, d, dt }) => e.mul(e.mul(x, e.scalar(2, dt)), d));
    case 'ReduceL1':
      return rule(({ e, x, d, dt }) => e.mul(signOf(e, x, dt), d));
    case 'ReduceL2': // x / ‖x‖
      return rule(({ e, x, y, d }) => e.mul(x, e.div(d, y())));
    case 'ReduceLogSumExp': // softmax over the axes
      return rule(({ e, x, y, d }) => e.mul(e.op('Exp', [e.sub(x, y())]), d));
    case 'ReduceLogSum': // 1 / Σx
      return rule(({ e, g, x, y, d, axes }) => expandLike(e, g, e.div(d, e.op('Exp', [y()])), x, axes));
    case 'ReduceProd': // y / x (inputs must be non-zero)
      return rule(({ e, x, y, d }) => e.mul(e.div(y(), x), d));
    default:
      return undefined;
  }
}
