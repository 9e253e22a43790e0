// Element-wise ops: unary math and activations, broadcasting binary/variadic arithmetic, comparisons and logic,
// Where, Clip, Cast, the softmax family, Dropout and other shape-preserving ops.
import type { DType, Dim, Emitter, Node, Value } from '../ir/index.js';
import { A, dtypeFromCode, isFloat } from '../ir/index.js';
import { constOf } from './const.js';
import { constInts, dOut, geq, type GradRule, leq, maskOf, normAxisG, signOf } from './gradutil.js';
import type { GradCtx, InferCtx, SymValue } from './registry.js';
import { register, registerAll } from './table.js';
import { prunePass, pruneElementwise, pruneNormalized } from './prune.js';
import { dimAdd, dimEquals, dimFloorDiv, dimMul, dimSub } from './sym.js';
import { broadcast, castNumber, elementwiseValue, normAxis, num1, num2, tt, unidirectional } from './util.js';

const same = (node: Node, ctx: InferCtx) => {
  const x = ctx.inputType(0);
  return [tt(x.dtype, x.shape)];
};

const passValue = (_n: Node, ctx: InferCtx) => [ctx.symbolicValue(0)];

// ---------------------------------------------------------------- unary, same type and shape

const UNARY: Record<string, number[]> = {
  Abs: [1, 6, 13],
  Neg: [1, 6, 13],
  Sqrt: [1, 6, 13],
  Exp: [1, 6, 13],
  Log: [1, 6, 13],
  Reciprocal: [1, 6, 13],
  Floor: [1, 6, 13],
  Ceil: [1, 6, 13],
  Round: [11],
  Sign: [9, 13],
  Relu: [1, 6, 13, 14],
  LeakyRelu: [1, 6, 16],
  Sigmoid: [1, 6, 13],
  HardSigmoid: [1, 6],
  HardSwish: [14],
  Tanh: [1, 6, 13],
  Erf: [9, 13],
  Elu: [1, 6],
  Selu: [1, 6],
  Celu: [12],
  ThresholdedRelu: [10],
  Softplus: [1],
  Softsign: [1],
  Mish: [18],
  Shrink: [9],
  Sin: [7],
  Cos: [7],
  Tan: [7],
  Asin: [7],
  Acos: [7],
  Atan: [7],
  Sinh: [9],
  Cosh: [9],
  Asinh: [9],
  Acosh: [9],
  Atanh: [9],
  BitwiseNot: [18],
  LpNormalization: [1],
  MeanVarianceNormalization: [9, 13],
  LRN: [1, 13],
  Trilu: [14],
  Identity: [1, 13, 14, 16, 19, 21],
};

const UNARY_VALUE: Record<string, (a: number) => number> = {
  Abs: Math.abs,
  Neg: (a) => -a,
  Sqrt: Math.sqrt,
  Reciprocal: (a) => 1 / a,
  Floor: Math.floor,
  Ceil: Math.ceil,
  Round: (a) => {
    const r = Math.round(a);
    return Math.abs(a % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; // half to even
  },
  Sign: Math.sign,
  Relu: (a) => Math.max(0, a),
  Exp: Math.exp,
  Log: Math.log,
};

registerAll(Object.keys(UNARY), (t) => ({
  sinceVersion: UNARY[t]!,
  quantFusedActivation: t === 'Relu' || undefined,
  // LpNormalization / MeanVarianceNormalization / LRN / Trilu mix channels: no rule (they block)
  prune: ['LpNormalization', 'MeanVarianceNormalization', 'LRN', 'Trilu'].includes(t)
    ? undefined
    : prunePass(),
  ...(t === 'Sigmoid' || t === 'LeakyRelu' ? { quantQLinear: { op: `QLinear${t}`, inputs: [0] } } : {}),
  infer: same,
  grad: unaryGrad(t),
  value:
    t === 'Identity'
      ? passValue
      : t === 'Neg' || t === 'Abs'
        ? (n, ctx) => {
            const x = ctx.inputType(0);
            const f = UNARY_VALUE[t]!;
            return [
              elementwiseValue(ctx, [0], x.shape, ([a]) =>
                typeof a === 'number' ? f(a) : t === 'Neg' ? dimMul(a!, -1) : null,
              ),
            ];
          }
        : UNARY_VALUE[t]
          ? (n, ctx) => [elementwiseValue(ctx, [0], ctx.inputType(0).shape, num1(UNARY_VALUE[t]!))]
          : undefined,
}));

// com.microsoft activations with the same shape
for (const t of ['Gelu', 'FastGelu', 'QuickGelu', 'BiasGelu']) {
  register({
    type: t,
    domain: 'com.microsoft',
    sinceVersion: [1],
    sameDtype: 'all',
    grad: msGeluGrad(t),
    prune: t === 'BiasGelu' ? pruneElementwise : prunePass(),
    infer: (node, ctx) => {
      const x = ctx.inputType(0);
      const b = ctx.optInputType(1);
      return [tt(x.dtype, b ? broadcast(ctx, [x.shape, b.shape]) : x.shape)];
    },
  });
}

register({
  type: 'Gelu',
  sinceVersion: [20],
  prune: prunePass(),
  infer: (node, ctx) => {
    const ap = node.attrString('approximate', 'none');
    if (ap !== 'none' && ap !== 'tanh')
      ctx.fail(`approximate "${ap}" must be "none" or "tanh"`, 'approximate');
    return same(node, ctx);
  },
  grad: (n, g) =>
    geluGrad((e, z, dt) =>
      n.attrString('approximate', 'none') === 'tanh' ? geluTanhDeriv(e, z, dt) : geluErfDeriv(e, z, dt),
    )(n, g),
});

register({
  type: 'Not',
  sinceVersion: [1],
  infer: (n, ctx) => [tt('bool', ctx.inputType(0).shape)],
  value: (n, ctx) => [
    elementwiseValue(
      ctx,
      [0],
      ctx.inputType(0).shape,
      num1((a) => (a ? 0 : 1)),
    ),
  ],
  check: (n, ins) => boolCheck(n, ins, [0]),
});

registerAll(['IsNaN', 'IsInf'], () => ({
  sinceVersion: [9, 10, 13, 20],
  infer: (n, ctx) => [tt('bool', ctx.inputType(0).shape)],
}));

// ---------------------------------------------------------------- binary / variadic broadcasting arithmetic

function intDiv(a: number, b: number): number {
  return Math.trunc(a / b);
}

function arith(op: string, dtype: DType, fmod = false): (xs: Dim[]) => Dim {
  const int = !isFloat(dtype);
  return ([a, b]) => {
    if (a === null || b === null || a === undefined || b === undefined) return null;
    const nums = typeof a === 'number' && typeof b === 'number';
    let r: Dim;
    switch (op) {
      case 'Add':
        r = dimAdd(a, b);
        break;
      case 'Sub':
        r = dimSub(a, b);
        break;
      case 'Mul':
        r = dimMul(a, b);
        break;
      case 'Div':
        if (nums) r = int ? intDiv(a, b) : a / b;
        else r = int ? dimFloorDiv(a, b) : null;
        break;
      case 'Mod': // fmod=0 (integers): the sign follows the divisor; fmod=1: C fmod
        r = nums ? (int && !fmod ? a - Math.floor(a / b) * b : a % b) : null;
        break;
      case 'Pow':
        r = nums ? a ** b : null;
        break;
      default:
        r = null;
    }
    return typeof r === 'number' ? castNumber(r, dtype) : r;
  };
}

/** Mul by / Div by a positive float scalar constant: the activation input and the factor it is multiplied by. */
function positiveScalarFactor(t: string) {
  return (n: Node): { input: number; factor: number } | undefined => {
    for (const i of t === 'Div' ? [1] : [0, 1]) {
      const c = constOf(n.inputs[i]);
      if (!c || c.numel !== 1 || c.dtype !== 'float32' || constOf(n.inputs[1 - i])) continue;
      const x = c.toFloat64()[0]!;
      const factor = t === 'Div' ? 1 / x : x;
      if (Number.isFinite(factor) && factor > 0) return { input: 1 - i, factor };
    }
    return undefined;
  };
}

for (const [t, since] of [
  ['Add', [1, 6, 7, 13, 14]],
  ['Sub', [1, 6, 7, 13, 14]],
  ['Mul', [1, 6, 7, 13, 14]],
  ['Div', [1, 6, 7, 13, 14]],
  ['Mod', [10, 13]],
  ['BitShift', [11]],
  ['BitwiseAnd', [18]],
  ['BitwiseOr', [18]],
  ['BitwiseXor', [18]],
] as [string, number[]][]) {
  register({
    type: t,
    sinceVersion: since,
    sameDtype: 'all',
    ...(t === 'Add' || t === 'Mul' ? { quantQLinear: { op: `QLinear${t}`, inputs: [0, 1] } } : {}),
    ...(t === 'Mul' || t === 'Div' ? { quantScale: positiveScalarFactor(t) } : {}),
    grad: binaryGrad(t),
    prune: pruneElementwise,
    infer: (n, ctx) => {
      const a = ctx.inputType(0);
      const b = ctx.inputType(1);
      return [tt(a.dtype, broadcast(ctx, [a.shape, b.shape]))];
    },
    value: (n, ctx) => {
      const a = ctx.inputType(0);
      const b = ctx.inputType(1);
      return [
        elementwiseValue(
          ctx,
          [0, 1],
          broadcast(ctx, [a.shape, b.shape]),
          arith(t, a.dtype, n.attrInt('fmod', 0) === 1),
        ),
      ];
    },
  });
}

register({
  type: 'Pow',
  sinceVersion: [1, 7, 12, 13, 15],
  grad: powGrad,
  prune: pruneElementwise,
  infer: (n, ctx) => {
    const a = ctx.inputType(0);
    const b = ctx.inputType(1);
    return [tt(a.dtype, broadcast(ctx, [a.shape, b.shape]))];
  },
  value: (n, ctx) => {
    const a = ctx.inputType(0);
    const b = ctx.inputType(1);
    return [elementwiseValue(ctx, [0, 1], broadcast(ctx, [a.shape, b.shape]), arith('Pow', a.dtype))];
  },
});

register({
  type: 'PRelu',
  sinceVersion: [1, 6, 7, 9, 16],
  sameDtype: 'all',
  grad: preluGrad,
  prune: pruneElementwise,
  infer: (n, ctx) => {
    const x = ctx.inputType(0);
    const s = ctx.inputType(1);
    return [tt(x.dtype, unidirectional(ctx, x.shape, s.shape, 'slope'))];
  },
});

for (const t of ['Min', 'Max', 'Sum', 'Mean']) {
  register({
    type: t,
    sinceVersion: [1, 6, 8, 12, 13],
    sameDtype: 'all',
    grad: variadicGrad(t),
    prune: pruneElementwise,
    infer: (n, ctx) => {
      if (!n.inputs.some(Boolean)) ctx.fail(`${t} needs at least one input`);
      const ts = n.inputs.map((_, i) => ctx.inputType(i));
      return [
        tt(
          ts[0]!.dtype,
          broadcast(
            ctx,
            ts.map((x) => x.shape),
          ),
        ),
      ];
    },
    value: (n, ctx) => {
      if (t === 'Mean') return [undefined];
      const ts = n.inputs.map((_, i) => ctx.inputType(i));
      const f = (xs: Dim[]): Dim => {
        if (t === 'Sum') return xs.reduce<Dim>((a, b) => dimAdd(a, b), 0);
        if (!xs.every((x) => typeof x === 'number')) {
          const nonNull = xs.filter((x) => x !== null);
          return nonNull.length === xs.length && nonNull.every((x) => dimEquals(x, nonNull[0]!))
            ? nonNull[0]!
            : null;
        }
        return t === 'Min' ? Math.min(...(xs as number[])) : Math.max(...(xs as number[]));
      };
      return [
        elementwiseValue(
          ctx,
          ts.map((_, i) => i),
          broadcast(
            ctx,
            ts.map((x) => x.shape),
          ),
          f,
        ),
      ];
    },
  });
}

// ---------------------------------------------------------------- comparisons and logic

const CMP: Record<string, [number[], (a: number, b: number) => boolean]> = {
  Equal: [[1, 7, 11, 13, 19], (a, b) => a === b],
  Greater: [[1, 7, 9, 13], (a, b) => a > b],
  Less: [[1, 7, 9, 13], (a, b) => a < b],
  GreaterOrEqual: [[12, 16], (a, b) => a >= b],
  LessOrEqual: [[12, 16], (a, b) => a <= b],
};
for (const [t, [since, f]] of Object.entries(CMP)) {
  register({
    type: t,
    sinceVersion: since,
    sameDtype: 'all',
    infer: (n, ctx) => [tt('bool', broadcast(ctx, [ctx.inputType(0).shape, ctx.inputType(1).shape]))],
    value: (n, ctx) => {
      const shape = broadcast(ctx, [ctx.inputType(0).shape, ctx.inputType(1).shape]);
      return [
        elementwiseValue(ctx, [0, 1], shape, ([a, b]) => {
          if (typeof a === 'number' && typeof b === 'number') return f(a, b) ? 1 : 0;
          if (t === 'Equal') {
            const e = dimEquals(a!, b!);
            return e === undefined ? null : e ? 1 : 0;
          }
          return null;
        }),
      ];
    },
  });
}

const LOGIC: Record<string, (a: number, b: number) => boolean> = {
  And: (a, b) => !!a && !!b,
  Or: (a, b) => !!a || !!b,
  Xor: (a, b) => !!a !== !!b,
};
for (const [t, f] of Object.entries(LOGIC)) {
  register({
    type: t,
    sinceVersion: [1, 7],
    sameDtype: 'all',
    infer: (n, ctx) => [tt('bool', broadcast(ctx, [ctx.inputType(0).shape, ctx.inputType(1).shape]))],
    value: (n, ctx) => {
      const shape = broadcast(ctx, [ctx.inputType(0).shape, ctx.inputType(1).shape]);
      return [
        elementwiseValue(
          ctx,
          [0, 1],
          shape,
          num2((a, b) => (f(a, b) ? 1 : 0)),
        ),
      ];
    },
    check: (n, ins) => boolCheck(n, ins, [0, 1]),
  });
}

function boolCheck(n: Node, ins: (import('../ir/index.js').TensorType | undefined)[], idx: number[]) {
  const out: { kind: 'dtype-mismatch'; message: string }[] = [];
  for (const i of idx) {
    const t = ins[i];
    if (t && t.dtype !== 'bool')
      out.push({
        kind: 'dtype-mismatch',
        message: `Node "${n.label}" (${n.opType}): input ${i} "${n.inputs[i]!.name}" is ${t.dtype}; ${n.opType} needs bool`,
      });
  }
  return out;
}

register({
  type: 'Where',
  sinceVersion: [9, 16],
  sameDtype: [1, 2],
  grad: whereGrad,
  prune: pruneElementwise,
  infer: (n, ctx) => {
    const c = ctx.inputType(0);
    const x = ctx.inputType(1);
    const y = ctx.inputType(2);
    return [tt(x.dtype, broadcast(ctx, [c.shape, x.shape, y.shape]))];
  },
  value: (n, ctx) => {
    const shape = broadcast(ctx, [ctx.inputType(0).shape, ctx.inputType(1).shape, ctx.inputType(2).shape]);
    return [
      elementwiseValue(ctx, [0, 1, 2], shape, ([c, x, y]) => (typeof c === 'number' ? (c ? x! : y!) : null)),
    ];
  },
  check: (n, ins) => boolCheck(n, ins, [0]),
});

// ---------------------------------------------------------------- Clip, Cast, CastLike

register({
  type: 'Clip',
  sinceVersion: [1, 6, 11, 12, 13],
  quantFusedActivation: true,
  prune: prunePass(0),
  sameDtype: 'all',
  grad: clipGrad,
  infer: same,
  value: (n, ctx) => {
    if (ctx.opset < 11) return [undefined];
    const lo = ctx.hasInput(1) ? ctx.intsValue(1)?.[0] : -Infinity;
    const hi = ctx.hasInput(2) ? ctx.intsValue(2)?.[0] : Infinity;
    if (lo === undefined || hi === undefined) return [undefined];
    return [
      elementwiseValue(
        ctx,
        [0],
        ctx.inputType(0).shape,
        num1((a) => Math.min(hi, Math.max(lo, a))),
      ),
    ];
  },
});

function castTarget(ctx: InferCtx, node: Node): DType {
  const to = node.attr('to');
  let d: DType | undefined;
  if (to?.type === 'int') d = dtypeFromCode(to.value);
  else if (to?.type === 'string')
    d = (to.value.toLowerCase() === 'float' ? 'float32' : to.value.toLowerCase()) as DType;
  if (!d)
    ctx.fail(
      `attribute "to" (${to ? JSON.stringify(to.value) : 'missing'}) is not a known element type`,
      'to',
    );
  return d;
}

function castValue(ctx: InferCtx, to: DType): SymValue | undefined {
  const v = ctx.symbolicValue(0);
  const from = ctx.inputType(0).dtype;
  if (!v) return undefined;
  if (from === to || (!isFloat(to) && to !== 'bool' && !isFloat(from))) return v; // int ↔ int keeps symbols
  return v.map((d) => (typeof d === 'number' ? castNumber(d, to) : !isFloat(from) && isFloat(to) ? d : null));
}

register({
  type: 'Cast',
  sinceVersion: [1, 6, 9, 13, 19, 21],
  grad: castGrad,
  prune: prunePass(),
  infer: (n, ctx) => [tt(castTarget(ctx, n), ctx.inputType(0).shape)],
  value: (n, ctx) => [castValue(ctx, castTarget(ctx, n))],
});

register({
  type: 'CastLike',
  sinceVersion: [15, 19, 21],
  grad: castGrad,
  infer: (n, ctx) => [tt(ctx.inputType(1).dtype, ctx.inputType(0).shape)],
  value: (n, ctx) => [castValue(ctx, ctx.inputType(1).dtype)],
});

// ---------------------------------------------------------------- softmax family

for (const t of ['Softmax', 'LogSoftmax', 'Hardmax']) {
  register({
    type: t,
    sinceVersion: [1, 11, 13],
    grad: t === 'Softmax' ? softmaxGrad : t === 'LogSoftmax' ? logSoftmaxGrad : undefined,
    prune: pruneNormalized,
    infer: (n, ctx) => {
      const x = ctx.inputType(0);
      const axis = n.attrInt('axis', ctx.opset >= 13 ? -1 : 1);
      if (x.shape) normAxis(ctx, axis, x.shape.length);
      return [tt(x.dtype, x.shape)];
    },
  });
}

// ---------------------------------------------------------------- Dropout

register({
  type: 'Dropout',
  sinceVersion: [1, 6, 7, 10, 12, 13],
  grad: dropoutGrad,
  prune: prunePass(0, [0, 1]),
  infer: (n, ctx) => {
    const x = ctx.inputType(0);
    if (ctx.opset >= 12 && ctx.hasInput(1)) {
      const r = ctx.intsValue(1)?.[0];
      if (r !== undefined && (r < 0 || r >= 1)) ctx.fail(`ratio ${r} must be in [0, 1)`, n.inputs[1]!);
    } else {
      const r = n.attrFloat('ratio');
      if (r !== undefined && (r < 0 || r >= 1)) ctx.fail(`ratio ${r} must be in [0, 1)`, 'ratio');
    }
    return [tt(x.dtype, x.shape), tt(ctx.opset >= 10 ? 'bool' : x.dtype, x.shape)];
  },
  value: passValue,
});

// ---------------------------------------------------------------- CumSum

register({
  type: 'CumSum',
  sinceVersion: [11, 14],
  grad: cumsumGrad,
  infer: (n, ctx) => {
    const x = ctx.inputType(0);
    const axis = ctx.intsValue(1)?.[0];
    if (axis !== undefined && x.shape) normAxis(ctx, axis, x.shape.length);
    return [tt(x.dtype, x.shape)];
  },
});

// ---------------------------------------------------------------- gradient rules
// Each rule emits ONNX nodes for the input gradients (null where none flows). Function declarations, so the
// `register` calls above can name them. Kinks (Relu/Abs at 0, Clip at its bounds, Max/Min ties) take the
// subgradient PyTorch takes, except Max/Min ties, where the first input that attains the extreme gets it.

/** A rule for a one-input op: `f(e, x, y, d, dtype, node)` returns dx. */
function unary(f: (e: Emitter, x: Value, y: Value, d: Value, dt: DType, n: Node) => Value | null): GradRule {
  return (n, g) => [
    g.needsGrad(0) ? f(g.e, n.input(0), n.output(0), dOut(g), g.dtypeOf(n.input(0)), n) : null,
  ];
}

/** `cond ? a : b` elementwise (Where from opset 9, a mask blend before). */
function select(e: Emitter, cond: Value, a: Value, b: Value, dt: DType): Value {
  if (e.opset >= 9) return e.op('Where', [cond, a, b]);
  const m = maskOf(e, cond, dt);
  return e.add(e.mul(a, m), e.mul(b, e.sub(e.scalar(1, dt), m)));
}

const sq = (e: Emitter, x: Value) => e.mul(x, x);

function unaryGrad(t: string): GradRule | undefined {
  switch (t) {
    case 'Identity':
      return unary((e, x, y, d) => d);
    case 'Neg':
      return unary((e, x, y, d) => e.neg(d));
    case 'Abs':
      return unary((e, x, y, d, dt) => e.mul(d, signOf(e, x, dt)));
    case 'Sqrt': // d / (2√x)
      return unary((e, x, y, d, dt) => e.div(e.mul(d, e.scalar(0.5, dt)), y));
    case 'Exp':
      return unary((e, x, y, d) => e.mul(d, y));
    case 'Log':
      return unary((e, x, y, d) => e.div(d, x));
    case 'Reciprocal': // -d / x² = -d·y²
      return unary((e, x, y, d) => e.neg(e.mul(d, sq(e, y))));
    case 'Floor':
    case 'Ceil':
    case 'Round':
    case 'Sign': // piecewise constant: zero gradient
      return unary(() => null);
    case 'Relu':
      // the mask from the output (y > 0 ⇔ x > 0), so x need not stay alive or be laid out for the backward (in
      // cnn-s's step the pooled x was reordered out of ORT's NCHWc layout only for this mask). Greater → Cast → Mul
      // is faster in ORT than Where(y > 0, d, 0) (scalar-branch Where: 0.95 vs 0.60 ms on [64,32,28,28], 1
      // thread) or d·Sign(y) (Sign is not vectorised: 1.19 ms)
      return unary((e, x, y, d, dt) => e.mul(d, maskOf(e, e.op('Greater', [y, e.scalar(0, dt)]), dt)));
    case 'LeakyRelu':
      return unary((e, x, y, d, dt, n) => {
        const alpha = n.attrFloat('alpha', 0.01);
        return select(e, e.op('Greater', [x, e.scalar(0, dt)]), d, e.mul(d, e.scalar(alpha, dt)), dt);
      });
    case 'Sigmoid': // d·y·(1 − y)
      return unary((e, x, y, d, dt) => e.mul(e.mul(d, y), e.sub(e.scalar(1, dt), y)));
    case 'Tanh': // d·(1 − y²)
      return unary((e, x, y, d, dt) => e.mul(d, e.sub(e.scalar(1, dt), sq(e, y))));
    case 'Erf': // d·2/√π·exp(−x²)
      return unary((e, x, y, d, dt) =>
        e.mul(e.mul(d, e.scalar(2 / Math.sqrt(Math.PI), dt)), e.op('Exp', [e.neg(sq(e, x))])),
      );
    case 'HardSigmoid': // alpha where 0 < alpha·x + beta < 1
      return unary((e, x, y, d, dt, n) => {
        const inside = e.op('And', [
          e.op('Greater', [y, e.scalar(0, dt)]),
          e.op('Less', [y, e.scalar(1, dt)]),
        ]);
        return e.mul(e.mul(d, maskOf(e, inside, dt)), e.scalar(n.attrFloat('alpha', 0.2), dt));
      });
    case 'HardSwish': // 0 below −3, x/3 + 1/2 inside, 1 from 3 on
      return unary((e, x, y, d, dt) => {
        const three = e.scalar(3, dt);
        const inside = e.op('And', [e.op('Greater', [x, e.scalar(-3, dt)]), e.op('Less', [x, three])]);
        const slope = e.add(e.div(x, three), e.scalar(0.5, dt));
        const f = e.add(e.mul(maskOf(e, inside, dt), slope), maskOf(e, geq(e, x, three), dt));
        return e.mul(d, f);
      });
    case 'Elu': // x > 0: 1, else y + alpha
      return unary((e, x, y, d, dt, n) => {
        const alpha = n.attrFloat('alpha', 1);
        return select(
          e,
          e.op('Greater', [x, e.scalar(0, dt)]),
          d,
          e.mul(d, e.add(y, e.scalar(alpha, dt))),
          dt,
        );
      });
    case 'Selu': // x > 0: gamma, else y + gamma·alpha
      return unary((e, x, y, d, dt, n) => {
        const alpha = n.attrFloat('alpha', 1.67326319217681884765625);
        const gamma = n.attrFloat('gamma', 1.05070102214813232421875);
        const neg = e.add(y, e.scalar(gamma * alpha, dt));
        return e.mul(d, select(e, e.op('Greater', [x, e.scalar(0, dt)]), e.scalar(gamma, dt), neg, dt));
      });
    case 'Celu': // x > 0: 1, else exp(x/alpha)
      return unary((e, x, y, d, dt, n) => {
        const alpha = n.attrFloat('alpha', 1);
        const ex = e.op('Exp', [e.div(x, e.scalar(alpha, dt))]);
        return e.mul(d, select(e, e.op('Greater', [x, e.scalar(0, dt)]), e.scalar(1, dt), ex, dt));
      });
    case 'ThresholdedRelu':
      return unary((e, x, y, d, dt, n) =>
        e.mul(d, maskOf(e, e.op('Greater', [x, e.scalar(n.attrFloat('alpha', 1), dt)]), dt)),
      );
    case 'Softplus': // d·sigmoid(x)
      return unary((e, x, y, d) => e.mul(d, e.op('Sigmoid', [x])));
    case 'Softsign': // d / (1 + |x|)²
      return unary((e, x, y, d, dt) => e.div(d, sq(e, e.add(e.op('Abs', [x]), e.scalar(1, dt)))));
    case 'Mish': // tanh(sp) + x·sigmoid(x)·(1 − tanh(sp)²), sp = softplus(x)
      return unary((e, x, y, d, dt) => {
        const t = e.op('Tanh', [e.op('Softplus', [x])]);
        const f = e.add(t, e.mul(e.mul(x, e.op('Sigmoid', [x])), e.sub(e.scalar(1, dt), sq(e, t))));
        return e.mul(d, f);
      });
    case 'Shrink': // 1 outside [−lambd, lambd]
      return unary((e, x, y, d, dt, n) => {
        const l = n.attrFloat('lambd', 0.5);
        const out = e.op('Or', [e.op('Less', [x, e.scalar(-l, dt)]), e.op('Greater', [x, e.scalar(l, dt)])]);
        return e.mul(d, maskOf(e, out, dt));
      });
    case 'Sin':
      return unary((e, x, y, d) => e.mul(d, e.op('Cos', [x])));
    case 'Cos':
      return unary((e, x, y, d) => e.neg(e.mul(d, e.op('Sin', [x]))));
    case 'Tan': // d·(1 + y²)
      return unary((e, x, y, d, dt) => e.mul(d, e.add(e.scalar(1, dt), sq(e, y))));
    case 'Asin':
      return unary((e, x, y, d, dt) => e.div(d, e.op('Sqrt', [e.sub(e.scalar(1, dt), sq(e, x))])));
    case 'Acos':
      return unary((e, x, y, d, dt) => e.neg(e.div(d, e.op('Sqrt', [e.sub(e.scalar(1, dt), sq(e, x))]))));
    case 'Atan':
      return unary((e, x, y, d, dt) => e.div(d, e.add(e.scalar(1, dt), sq(e, x))));
    case 'Sinh':
      return unary((e, x, y, d) => e.mul(d, e.op('Cosh', [x])));
    case 'Cosh':
      return unary((e, x, y, d) => e.mul(d, e.op('Sinh', [x])));
    case 'Asinh':
      return unary((e, x, y, d, dt) => e.div(d, e.op('Sqrt', [e.add(sq(e, x), e.scalar(1, dt))])));
    case 'Acosh':
      return unary((e, x, y, d, dt) => e.div(d, e.op('Sqrt', [e.sub(sq(e, x), e.scalar(1, dt))])));
    case 'Atanh':
      return unary((e, x, y, d, dt) => e.div(d, e.sub(e.scalar(1, dt), sq(e, x))));
    case 'Trilu': // the same triangle of the gradient; k (input 1) is an integer
      return (n, g) => [
        g.e.op('Trilu', [dOut(g), n.inputs[1] ?? null], { upper: A.int(n.attrInt('upper', 1)) }),
      ];
    default:
      return undefined;
  }
}

/** Legacy (< opset 7) broadcasting with an `axis` attribute aligns B inside A: not numpy-style. */
function checkLegacyBroadcast(n: Node, g: GradCtx): void {
  if (g.opset < 7 && n.attrInt('broadcast', 0) === 1 && n.attrInt('axis') !== undefined)
    g.fail('legacy broadcasting with an "axis" attribute (before opset 7) is not supported');
}

function binaryGrad(t: string): GradRule | undefined {
  const wrap =
    (
      f: (g: GradCtx, a: Value, b: Value, y: Value, d: Value, dt: DType) => [Value | null, Value | null],
    ): GradRule =>
    (n, g) => {
      checkLegacyBroadcast(n, g);
      const [ga, gb] = f(g, n.input(0), n.input(1), n.output(0), dOut(g), g.dtypeOf(n.output(0)));
      return [
        ga && g.needsGrad(0) ? g.unbroadcast(ga, 0) : null,
        gb && g.needsGrad(1) ? g.unbroadcast(gb, 1) : null,
      ];
    };
  switch (t) {
    case 'Add':
      return wrap((g, a, b, y, d) => [d, d]);
    case 'Sub':
      return wrap((g, a, b, y, d) => [d, g.needsGrad(1) ? g.e.neg(d) : null]);
    case 'Mul':
      return wrap((g, a, b, y, d) => [
        g.needsGrad(0) ? g.e.mul(d, b) : null,
        g.needsGrad(1) ? g.e.mul(d, a) : null,
      ]);
    case 'Div': // da = d/b, db = −(d/b)·y
      return wrap((g, a, b, y, d) => {
        const q = g.e.div(d, b);
        return [q, g.needsGrad(1) ? g.e.neg(g.e.mul(q, y)) : null];
      });
    default:
      return undefined;
  }
}

/** Pow: da = d·b·a^(b−1); db = d·y·ln a (0 where a = 0, as PyTorch; NaN for a < 0). The exponent may be another dtype. */
function powGrad(n: Node, g: GradCtx): (Value | null)[] {
  checkLegacyBroadcast(n, g);
  const e = g.e;
  const a = n.input(0);
  const b0 = n.input(1);
  const y = n.output(0);
  const d = dOut(g);
  const dt = g.dtypeOf(a);
  const b = g.dtypeOf(b0) === dt ? b0 : e.cast(b0, dt);
  const ga = g.needsGrad(0)
    ? g.unbroadcast(e.mul(e.mul(d, b), e.op('Pow', [a, e.sub(b, e.scalar(1, dt))])), 0)
    : null;
  let gb: Value | null = null;
  if (g.needsGrad(1)) {
    const zero = e.scalar(0, dt);
    const isZero =
      e.opset >= 11
        ? e.op('Equal', [a, zero])
        : e.op('Not', [e.op('Or', [e.op('Less', [a, zero]), e.op('Greater', [a, zero])])]);
    const ylog = select(e, isZero, zero, e.mul(y, e.op('Log', [a])), dt);
    gb = g.unbroadcast(e.mul(d, ylog), 1);
    if (g.dtypeOf(b0) !== dt) gb = e.cast(gb, g.dtypeOf(b0));
  }
  return [ga, gb];
}

/** PRelu: dx = d where x > 0, d·slope elsewhere; dslope = Σ d·x where x ≤ 0. */
function preluGrad(n: Node, g: GradCtx): (Value | null)[] {
  const e = g.e;
  const x = n.input(0);
  const s = n.input(1);
  const d = dOut(g);
  const dt = g.dtypeOf(x);
  const pos = e.op('Greater', [x, e.scalar(0, dt)]);
  const gx = g.needsGrad(0) ? select(e, pos, d, e.mul(d, s), dt) : null;
  const gs = g.needsGrad(1) ? g.unbroadcast(e.mul(e.mul(d, x), maskOf(e, e.op('Not', [pos]), dt)), 1) : null;
  return [gx, gs];
}

function variadicGrad(t: string): GradRule {
  return (n, g) => {
    const e = g.e;
    const d = dOut(g);
    const y = n.output(0);
    const dt = g.dtypeOf(y);
    if (t === 'Sum' || t === 'Mean') {
      const dd = t === 'Mean' && n.inputs.length > 1 ? e.mul(d, e.scalar(1 / n.inputs.length, dt)) : d;
      return n.inputs.map((_, i) => (g.needsGrad(i) ? g.unbroadcast(dd, i) : null));
    }
    // Max / Min: the gradient goes to the first input that attains the result
    let taken: Value | null = null;
    const out: (Value | null)[] = [];
    n.inputs.forEach((xi, i) => {
      if (!xi) return out.push(null);
      const hit = t === 'Max' ? geq(e, xi, y) : leq(e, xi, y);
      const sel: Value = taken ? e.op('And', [hit, e.op('Not', [taken])]) : hit;
      out.push(g.needsGrad(i) ? g.unbroadcast(e.mul(d, maskOf(e, sel, dt)), i) : null);
      if (i < n.inputs.length - 1) taken = taken ? e.op('Or', [taken, hit]) : hit;
    });
    return out;
  };
}

function whereGrad(n: Node, g: GradCtx): (Value | null)[] {
  const e = g.e;
  const c = n.input(0);
  const d = dOut(g);
  const zero = e.scalar(0, g.dtypeOf(n.output(0)));
  return [
    null,
    g.needsGrad(1) ? g.unbroadcast(e.op('Where', [c, d, zero]), 1) : null,
    g.needsGrad(2) ? g.unbroadcast(e.op('Where', [c, zero, d]), 2) : null,
  ];
}

/** Clip: the gradient passes where min ≤ x ≤ max (as torch.clamp); min/max get Σ d where x is below/above them. */
function clipGrad(n: Node, g: GradCtx): (Value | null)[] {
  const e = g.e;
  const x = n.input(0);
  const d = dOut(g);
  const dt = g.dtypeOf(x);
  let lo: Value | null = null;
  let hi: Value | null = null;
  if (g.opset < 11) {
    const mn = n.attrFloat('min');
    const mx = n.attrFloat('max');
    if (mn !== undefined) lo = e.scalar(mn, dt);
    if (mx !== undefined) hi = e.scalar(mx, dt);
  } else {
    lo = n.inputs[1] ?? null;
    hi = n.inputs[2] ?? null;
  }
  let inside: Value | null = null;
  if (lo) inside = geq(e, x, lo);
  if (hi) inside = inside ? e.op('And', [inside, leq(e, x, hi)]) : leq(e, x, hi);
  const gx = g.needsGrad(0) ? (inside ? e.mul(d, maskOf(e, inside, dt)) : d) : null;
  const bound = (b: Value, outside: Value): Value => {
    const all = [...Array(g.shapeOf(x).length).keys()];
    const s = e.reduceSum(e.mul(d, maskOf(e, outside, dt)), all, false);
    const bs = g.shapeOf(b);
    return bs.length === 0
      ? s
      : e.reshape(
          s,
          bs.map((v) => (typeof v === 'number' ? v : 1)),
        );
  };
  const glo = lo && g.opset >= 11 && g.needsGrad(1) ? bound(lo, e.op('Less', [x, lo])) : null;
  const ghi = hi && g.opset >= 11 && g.needsGrad(2) ? bound(hi, e.op('Greater', [x, hi])) : null;
  return [gx, glo, ghi];
}

/** Cast between float types: cast the gradient back to the input's dtype. */
function castGrad(n: Node, g: GradCtx): (Value | null)[] {
  if (!g.needsGrad(0)) return [null];
  const d = dOut(g);
  const dt = g.dtypeOf(n.input(0));
  return [g.dtypeOf(n.output(0)) === dt ? d : g.e.cast(d, dt), null];
}

/** Softmax / LogSoftmax: axis per op semantics (before opset 13 the input is coerced to 2-D at `axis`). */
function softmaxAxes(n: Node, g: GradCtx): number[] {
  const r = g.shapeOf(n.input(0)).length;
  const axis = normAxisG(g, n.attrInt('axis', g.opset >= 13 ? -1 : 1), Math.max(r, 1));
  if (g.opset >= 13) return [axis];
  return [...Array(r - axis).keys()].map((k) => k + axis);
}

function softmaxGrad(n: Node, g: GradCtx): (Value | null)[] {
  const e = g.e;
  const y = n.output(0);
  const d = dOut(g);
  const dy = e.mul(d, y);
  return [e.sub(dy, e.mul(y, e.reduceSum(dy, softmaxAxes(n, g), true)))]; // y·(d − Σ d·y)
}

function logSoftmaxGrad(n: Node, g: GradCtx): (Value | null)[] {
  const e = g.e;
  const y = n.output(0);
  const d = dOut(g);
  return [e.sub(d, e.mul(e.op('Exp', [y]), e.reduceSum(d, softmaxAxes(n, g), true)))]; // d − softmax·Σ d
}

/**
 * Dropout: identity in inference mode; in training mode d·mask/(1 − ratio), read from the node's mask output.
 * training_mode and ratio may be constants or computed at run time (then the scale is computed by nodes too).
 */
function dropoutGrad(n: Node, g: GradCtx): (Value | null)[] {
  const e = g.e;
  const d = dOut(g);
  const dt = g.dtypeOf(n.input(0));
  if (g.opset < 7) {
    if (n.attrInt('is_test', 0) === 0)
      g.fail('training-mode Dropout before opset 7 (is_test = 0) is not supported; ORT runs opset ≥ 7');
    return [d];
  }
  if (g.opset < 12) return [d]; // opsets 7–11 have no training mode: the op is the identity
  const tmIn = n.inputs[2] ?? null;
  const tmConst = tmIn ? constInts(tmIn) : [0];
  if (tmConst && !tmConst[0]) return [d, null, null];
  const mask = n.outputs[1];
  if (!mask)
    g.fail('training-mode Dropout needs its mask output (output 1) to differentiate: add it to the node');
  const ratioIn = n.inputs[1] ?? null;
  const ratioConst = ratioIn ? constOf(ratioIn)?.toNumbers()[0] : 0.5;
  let scale: Value;
  if (ratioConst !== undefined) scale = e.scalar(1 / (1 - ratioConst), dt);
  else {
    const r = g.dtypeOf(ratioIn!) === dt ? ratioIn! : e.cast(ratioIn!, dt);
    scale = e.op('Reciprocal', [e.sub(e.scalar(1, dt), r)]);
  }
  if (!tmConst) scale = e.op('Where', [tmIn!, scale, e.scalar(1, dt)]);
  return [e.mul(e.mul(d, maskOf(e, mask!, dt)), scale), null, null];
}

/** CumSum: the reverse cumulative sum of the gradient (same exclusive flag). */
function cumsumGrad(n: Node, g: GradCtx): (Value | null)[] {
  const rev = n.attrInt('reverse', 0) ? 0 : 1;
  return [
    g.e.op('CumSum', [dOut(g), n.input(1)], {
      exclusive: A.int(n.attrInt('exclusive', 0)),
      reverse: A.int(rev),
    }),
    null,
  ];
}

// ---- GELU family: derivatives as functions of the pre-activation z

/** d/dz of 0.5·z·(1 + erf(z/√2)). */
function geluErfDeriv(e: Emitter, z: Value, dt: DType): Value {
  const cdf = e.mul(
    e.add(e.op('Erf', [e.mul(z, e.scalar(Math.SQRT1_2, dt))]), e.scalar(1, dt)),
    e.scalar(0.5, dt),
  );
  const pdf = e.mul(
    e.op('Exp', [e.mul(sq(e, z), e.scalar(-0.5, dt))]),
    e.scalar(1 / Math.sqrt(2 * Math.PI), dt),
  );
  return e.add(cdf, e.mul(z, pdf));
}

/** d/dz of 0.5·z·(1 + tanh(c·(z + k·z³))), c = √(2/π), k = 0.044715. */
function geluTanhDeriv(e: Emitter, z: Value, dt: DType): Value {
  const c = Math.sqrt(2 / Math.PI);
  const k = 0.044715;
  const z2 = sq(e, z);
  const u = e.mul(e.mul(z, e.add(e.mul(z2, e.scalar(k, dt)), e.scalar(1, dt))), e.scalar(c, dt));
  const t = e.op('Tanh', [u]);
  const half = e.scalar(0.5, dt);
  const a = e.mul(e.add(t, e.scalar(1, dt)), half);
  const du = e.mul(e.add(e.mul(z2, e.scalar(3 * k * c, dt)), e.scalar(c, dt)), half); // 0.5·c·(1 + 3k z²)
  return e.add(a, e.mul(e.mul(z, e.sub(e.scalar(1, dt), sq(e, t))), du));
}

/** d/dz of z·sigmoid(alpha·z). */
function quickGeluDeriv(e: Emitter, z: Value, dt: DType, alpha: number): Value {
  const s = e.op('Sigmoid', [e.mul(z, e.scalar(alpha, dt))]);
  return e.add(s, e.mul(e.mul(e.mul(z, s), e.sub(e.scalar(1, dt), s)), e.scalar(alpha, dt)));
}

/** GELU-like op with an optional bias input added before the activation. */
function geluGrad(deriv: (e: Emitter, z: Value, dt: DType, n: Node) => Value): GradRule {
  return (n, g) => {
    const e = g.e;
    const x = n.input(0);
    const bias = n.inputs[1] ?? null;
    const dt = g.dtypeOf(x);
    const z = bias ? e.add(x, bias) : x;
    const gz = e.mul(dOut(g), deriv(e, z, dt, n));
    return [
      g.needsGrad(0) ? (bias ? g.unbroadcast(gz, 0) : gz) : null,
      bias && g.needsGrad(1) ? g.unbroadcast(gz, 1) : null,
    ];
  };
}

function msGeluGrad(t: string): GradRule {
  switch (t) {
    case 'FastGelu':
      return geluGrad((e, z, dt) => geluTanhDeriv(e, z, dt));
    case 'QuickGelu':
      return geluGrad((e, z, dt, n) => quickGeluDeriv(e, z, dt, n.attrFloat('alpha', 1.702)));
    default: // Gelu, BiasGelu
      return geluGrad((e, z, dt) => geluErfDeriv(e, z, dt));
  }
}
