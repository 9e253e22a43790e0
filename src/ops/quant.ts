// Quantization ops: QuantizeLinear / DequantizeLinear (per-tensor, per-axis, blocked), DynamicQuantizeLinear,
// integer and QLinear* kernels, and the com.microsoft quantized ops ORT fuses into (QGemm, MatMulNBits, …).
import type { DType, Dim, Node, TensorType } from '../ir/index.js';
import { dtypeFromCode, isFloat } from '../ir/index.js';
import { matmulShape, gemmShape } from './linalg.js';
import { convShape } from './nn.js';
import type { InferCtx } from './registry.js';
import { register } from './table.js';
import { dimCeilDiv, formatDims } from './sym.js';
import { broadcast, normAxis, tt } from './util.js';

/** Validate a scale (or zero point) against x for per-tensor, per-axis or blocked quantization. */
function checkQuantParam(
  ctx: InferCtx,
  node: Node,
  x: TensorType,
  p: TensorType | undefined,
  idx: number,
): void {
  if (!p?.shape || !x.shape) return;
  const r = x.shape.length;
  const blockSize = ctx.opset >= 21 ? node.attrInt('block_size', 0) : 0;
  if (blockSize < 0) ctx.fail(`block_size ${blockSize} must be non-negative`, 'block_size');
  const isScalar = p.shape.length === 0 || (p.shape.length === 1 && p.shape[0] === 1);
  if (blockSize === 0 && isScalar) return;
  if (ctx.opset < 13 && !isScalar)
    ctx.fail(`input ${idx} must be a scalar before opset 13, got ${formatDims(p.shape)}`, node.inputs[idx]!);
  const a = normAxis(ctx, node.attrInt('axis', 1), r);
  if (blockSize === 0) {
    if (p.shape.length !== 1)
      ctx.fail(
        `input ${idx} must be a scalar or 1-D for per-axis quantization, got ${formatDims(p.shape)}`,
        node.inputs[idx]!,
      );
    const d = x.shape[a]!;
    const e = p.shape[0]!;
    if (typeof d === 'number' && typeof e === 'number' && d !== e)
      ctx.fail(
        `input ${idx} has ${e} entries but axis ${a} of ${formatDims(x.shape)} has ${d}`,
        node.inputs[idx]!,
      );
    return;
  }
  if (p.shape.length !== r)
    ctx.fail(
      `blocked quantization needs input ${idx} of rank ${r}, got ${formatDims(p.shape)}`,
      node.inputs[idx]!,
    );
  p.shape.forEach((e, i) => {
    const want = i === a ? dimCeilDiv(x.shape![i]!, blockSize) : x.shape![i]!;
    if (typeof e === 'number' && typeof want === 'number' && e !== want)
      ctx.fail(
        `input ${idx} ${formatDims(p.shape)} does not fit ${formatDims(x.shape)} with block_size ${blockSize} on axis ${a}`,
        node.inputs[idx]!,
      );
  });
}

function attrDtype(ctx: InferCtx, node: Node, name: string): DType | undefined {
  const c = node.attrInt(name, 0);
  if (c === 0) return undefined;
  const d = dtypeFromCode(c);
  if (!d) ctx.fail(`${name} ${c} is not an element type`, name);
  return d;
}

for (const domain of ['', 'com.microsoft']) {
  register({
    type: 'QuantizeLinear',
    domain,
    sinceVersion: domain ? [1] : [10, 13, 19, 21, 23],
    infer: (node, ctx) => {
      const x = ctx.inputType(0);
      const s = ctx.inputType(1);
      const zp = ctx.hasInput(2) ? ctx.inputType(2) : undefined;
      checkQuantParam(ctx, node, x, s, 1);
      checkQuantParam(ctx, node, x, zp, 2);
      if (zp?.shape && s.shape && zp.shape.length !== s.shape.length)
        ctx.fail(
          `y_zero_point ${formatDims(zp.shape)} and y_scale ${formatDims(s.shape)} differ in shape`,
          node.inputs[2]!,
        );
      const od = ctx.opset >= 21 && !domain ? attrDtype(ctx, node, 'output_dtype') : undefined;
      if (od && zp && od !== zp.dtype)
        ctx.fail(`output_dtype ${od} disagrees with y_zero_point ${zp.dtype}`, 'output_dtype');
      return [tt(zp?.dtype ?? od ?? 'uint8', x.shape)];
    },
    check: (n, ins) =>
      ins[0] && ins[1] && isFloat(ins[0].dtype) && ins[0].dtype !== ins[1].dtype && ins[0].dtype !== 'float32'
        ? [
            {
              kind: 'dtype-mismatch',
              message: `Node "${n.label}" (QuantizeLinear): x is ${ins[0].dtype} but y_scale is ${ins[1].dtype}`,
            },
          ]
        : [],
  });

  register({
    type: 'DequantizeLinear',
    domain,
    sinceVersion: domain ? [1] : [10, 13, 19, 21, 23],
    sameDtype: [0, 2],
    infer: (node, ctx) => {
      const x = ctx.inputType(0);
      const s = ctx.inputType(1);
      const zp = ctx.hasInput(2) ? ctx.inputType(2) : undefined;
      checkQuantParam(ctx, node, x, s, 1);
      checkQuantParam(ctx, node, x, zp, 2);
      if (
        x.dtype === 'int32' &&
        zp &&
        ctx.constValue(2) &&
        ctx
          .constValue(2)!
          .toNumbers()
          .some((v) => v !== 0)
      )
        ctx.fail('int32 input needs a zero x_zero_point', node.inputs[2]!);
      const od = ctx.opset >= 23 && !domain ? attrDtype(ctx, node, 'output_dtype') : undefined;
      return [tt(od ?? (ctx.opset >= 19 || domain ? s.dtype : 'float32'), x.shape)];
    },
  });
}

register({
  type: 'DynamicQuantizeLinear',
  sinceVersion: [11],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt('uint8', x.shape), tt('float32', []), tt('uint8', [])];
  },
});

register({
  type: 'MatMulInteger',
  sinceVersion: [10],
  sameDtype: [0, 2],
  infer: (node, ctx) => [tt('int32', matmulShape(ctx, ctx.inputType(0).shape, ctx.inputType(1).shape))],
});

register({
  type: 'ConvInteger',
  sinceVersion: [10],
  infer: (node, ctx) => [tt('int32', convShape(node, ctx, ctx.inputType(0), ctx.inputType(1)))],
});

register({
  type: 'QLinearConv',
  sinceVersion: [10],
  sameDtype: [0, 2],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const w = ctx.inputType(3);
    const yzp = ctx.optInputType(7);
    return [tt(yzp?.dtype ?? x.dtype, convShape(node, ctx, x, w, ctx.optInputType(8)))];
  },
});

register({
  type: 'QLinearMatMul',
  sinceVersion: [10, 21],
  sameDtype: [0, 2],
  infer: (node, ctx) => {
    const a = ctx.inputType(0);
    const yzp = ctx.optInputType(7);
    return [tt(yzp?.dtype ?? a.dtype, matmulShape(ctx, a.shape, ctx.inputType(3).shape))];
  },
});

// ---------------------------------------------------------------- com.microsoft

register({
  type: 'QGemm',
  domain: 'com.microsoft',
  sinceVersion: [1],
  infer: (node, ctx) => {
    const a = ctx.inputType(0);
    const b = ctx.inputType(3);
    const out = gemmShape(ctx, node, a.shape, b.shape, 0, 3);
    const ys = ctx.optInputType(7);
    const yzp = ctx.optInputType(8);
    return [tt(ys ? (yzp?.dtype ?? 'uint8') : 'float32', out)];
  },
});

register({
  type: 'MatMulNBits',
  domain: 'com.microsoft',
  sinceVersion: [1],
  infer: (node, ctx) => {
    const a = ctx.inputType(0);
    const k = node.attrInt('K');
    const n = node.attrInt('N');
    if (k === undefined || n === undefined)
      ctx.fail('attributes K and N are required', k === undefined ? 'K' : 'N');
    const bits = node.attrInt('bits', 4);
    if (![2, 3, 4, 5, 6, 7, 8].includes(bits)) ctx.fail(`bits ${bits} is not supported`, 'bits');
    const bs = node.attrInt('block_size');
    if (bs === undefined || bs < 16 || (bs & (bs - 1)) !== 0)
      ctx.fail(`block_size ${bs ?? 'missing'} must be a power of 2 ≥ 16`, 'block_size');
    if (!a.shape) return [tt(a.dtype, null)];
    const last = a.shape[a.shape.length - 1];
    if (typeof last === 'number' && last !== k) ctx.fail(`A's last dim ${last} ≠ K ${k}`, node.inputs[0]!);
    return [tt(a.dtype, [...a.shape.slice(0, -1), n!])];
  },
});

register({
  type: 'MatMulIntegerToFloat',
  domain: 'com.microsoft',
  sinceVersion: [1],
  infer: (node, ctx) => [
    tt(ctx.inputType(2).dtype, matmulShape(ctx, ctx.inputType(0).shape, ctx.inputType(1).shape)),
  ],
});

register({
  type: 'DynamicQuantizeMatMul',
  domain: 'com.microsoft',
  sinceVersion: [1],
  infer: (node, ctx) => [
    tt(ctx.inputType(0).dtype, matmulShape(ctx, ctx.inputType(0).shape, ctx.inputType(1).shape)),
  ],
});

for (const t of ['QLinearAdd', 'QLinearMul']) {
  register({
    type: t,
    domain: 'com.microsoft',
    sinceVersion: [1],
    sameDtype: [0, 2, 3, 5],
    infer: (node, ctx) => {
      const a = ctx.inputType(0);
      return [tt(a.dtype, broadcast(ctx, [a.shape, ctx.inputType(3).shape]))];
    },
  });
}

for (const t of ['QLinearSigmoid', 'QLinearLeakyRelu', 'QLinearGlobalAveragePool', 'QLinearAveragePool']) {
  if (t === 'QLinearGlobalAveragePool') {
    register({
      type: t,
      domain: 'com.microsoft',
      sinceVersion: [1],
      infer: (node, ctx) => {
        const x = ctx.inputType(0);
        if (!x.shape) return [tt(x.dtype, null)];
        const cl = node.attrInt('channels_last', 0) === 1;
        const r = x.shape.length;
        const out: Dim[] = cl
          ? [x.shape[0]!, ...new Array<Dim>(r - 2).fill(1), x.shape[r - 1]!]
          : [x.shape[0]!, x.shape[1]!, ...new Array<Dim>(r - 2).fill(1)];
        return [tt(x.dtype, out)];
      },
    });
    continue;
  }
  if (t === 'QLinearAveragePool') continue;
  register({
    type: t,
    domain: 'com.microsoft',
    sinceVersion: [1],
    infer: (node, ctx) => [tt(ctx.inputType(0).dtype, ctx.inputType(0).shape)],
  });
}
