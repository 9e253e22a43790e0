// Element-wise ops: unary math and activations, broadcasting binary/variadic arithmetic, comparisons and logic,
// Where, Clip, Cast, the softmax family, Dropout and other shape-preserving ops.
import type { DType, Dim, Node } from '../ir/index.js';
import { dtypeFromCode, isFloat } from '../ir/index.js';
import { type InferCtx, register, registerAll, type SymValue } from './registry.js';
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
  infer: same,
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
  infer: (node, ctx) => {
    const ap = node.attrString('approximate', 'none');
    if (ap !== 'none' && ap !== 'tanh')
      ctx.fail(`approximate "${ap}" must be "none" or "tanh"`, 'approximate');
    return same(node, ctx);
  },
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
  sameDtype: 'all',
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
  infer: (n, ctx) => [tt(castTarget(ctx, n), ctx.inputType(0).shape)],
  value: (n, ctx) => [castValue(ctx, castTarget(ctx, n))],
});

register({
  type: 'CastLike',
  sinceVersion: [15, 19, 21],
  infer: (n, ctx) => [tt(ctx.inputType(1).dtype, ctx.inputType(0).shape)],
  value: (n, ctx) => [castValue(ctx, ctx.inputType(1).dtype)],
});

// ---------------------------------------------------------------- softmax family

for (const t of ['Softmax', 'LogSoftmax', 'Hardmax']) {
  register({
    type: t,
    sinceVersion: [1, 11, 13],
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
  infer: (n, ctx) => {
    const x = ctx.inputType(0);
    const axis = ctx.intsValue(1)?.[0];
    if (axis !== undefined && x.shape) normAxis(ctx, axis, x.shape.length);
    return [tt(x.dtype, x.shape)];
  },
});
