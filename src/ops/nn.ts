// Neural-network ops: convolutions, pools, normalizations and recurrent layers.
import type { Attr, DType, Dim, Emitter, Node, TensorType, Value } from '../ir/index.js';
import { A, dtypeFromCode, Tensor } from '../ir/index.js';
import { constOf } from './const.js';
import { maxPoolOneHotGrad } from './maxpool_grad.js';
import type { GradCtx, InferCtx } from './registry.js';
import { register } from './table.js';
import { pruneChannelParams, pruneConv, pruneConvTranspose, pruneNormalized, prunePass } from './prune.js';
import { dimAdd, dimDivExact, dimMul, dimSub, formatDims } from './sym.js';
import { normAxis, tt, type WindowAttrs, windowAttrs, windowOut } from './util.js';

function spatialOf(ctx: InferCtx, x: TensorType, w?: TensorType): number | undefined {
  const r = x.shape?.length ?? w?.shape?.length;
  if (r === undefined) return undefined;
  if (r < 3)
    ctx.fail(
      `input must have rank ≥ 3 ([N, C, spatial…]), got ${formatDims(x.shape ?? w?.shape)}`,
      ctx.node.inputs[0]!,
    );
  return r - 2;
}

function checkDims(ctx: InferCtx, a: Dim, b: Dim, what: string, v?: Value | string | null): void {
  if (typeof a === 'number' && typeof b === 'number' && a !== b)
    ctx.fail(`${what} (${a} vs ${b})`, v ?? undefined);
}

// ---------------------------------------------------------------- Conv family

/** Sliding-window output size of spatial dim `i`; ShapeError when the (dilated) kernel does not fit. */
function checkedWindow(ctx: InferCtx, shape: readonly Dim[], i: number, wa: WindowAttrs, ceil: boolean): Dim {
  const inSize = shape[2 + i]!;
  const out = windowOut(inSize, i, wa, ceil);
  if (typeof out === 'number' && out <= 0)
    ctx.fail(
      `the kernel (${wa.kernel[i]}, dilation ${wa.dilations[i]}) does not fit spatial dim ${i} of ${formatDims(shape)} with pads [${wa.pads.join(', ')}]`,
      ctx.node.inputs[0]!,
    );
  return out;
}

/** Output shape of a Conv-like node: x [N, C, …], w [M, C/group, k…]. */
export function convShape(
  node: Node,
  ctx: InferCtx,
  x: TensorType,
  w: TensorType,
  bias?: TensorType,
): Dim[] | null {
  const spatial = spatialOf(ctx, x, w);
  if (spatial === undefined) return null;
  if (x.shape && w.shape && w.shape.length !== x.shape.length)
    ctx.fail(
      `weights ${formatDims(w.shape)} and input ${formatDims(x.shape)} differ in rank`,
      node.inputs[1] ?? undefined,
    );
  const group = node.attrInt('group', 1);
  if (group <= 0) ctx.fail(`group ${group} must be positive`, 'group');
  const wa = windowAttrs(ctx, node, spatial, w.shape ? w.shape.slice(2) : new Array<Dim>(spatial).fill(null));
  if (w.shape && node.attrInts('kernel_shape'))
    wa.kernel.forEach((k, i) =>
      checkDims(
        ctx,
        k,
        w.shape![2 + i]!,
        `kernel_shape disagrees with the weights ${formatDims(w.shape)}`,
        'kernel_shape',
      ),
    );
  const m = w.shape ? w.shape[0]! : null;
  if (x.shape && w.shape)
    checkDims(
      ctx,
      x.shape[1]!,
      dimMul(w.shape[1]!, group),
      `input channels ≠ weight channels × group ${group}`,
      node.inputs[1],
    );
  if (typeof m === 'number' && m % group !== 0)
    ctx.fail(`output channels ${m} are not divisible by group ${group}`, node.inputs[1] ?? undefined);
  if (bias?.shape) {
    if (bias.shape.length !== 1)
      ctx.fail(`bias must be 1-D, got ${formatDims(bias.shape)}`, node.inputs[2] ?? undefined);
    checkDims(ctx, bias.shape[0]!, m, 'bias length ≠ output channels', node.inputs[2]);
  }
  const out: Dim[] = [x.shape ? x.shape[0]! : null, m];
  for (let i = 0; i < spatial; i++) out.push(x.shape ? checkedWindow(ctx, x.shape, i, wa, false) : null);
  return out;
}

register({
  type: 'Conv',
  sinceVersion: [1, 11, 22],
  prune: pruneConv,
  sameDtype: 'all',
  grad: convGrad,
  quant: { weightInputs: [1], activationInputs: [0], biasInput: 2, channelAxis: () => 0 },
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt(x.dtype, convShape(node, ctx, x, ctx.inputType(1), ctx.optInputType(2)))];
  },
});

register({
  type: 'FusedConv',
  domain: 'com.microsoft',
  prune: pruneConv,
  sinceVersion: [1],
  sameDtype: 'all',
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt(x.dtype, convShape(node, ctx, x, ctx.inputType(1), ctx.optInputType(2)))];
  },
});

// ORT's internal NCHWc layout ops (domain com.microsoft.nchwc): the gradient rules and src/train/step.ts emit them
// for convolutions whose weights are graph values (ORT's own NCHWc rewrite only takes constant weights).
export const NCHWC_DOMAIN = 'com.microsoft.nchwc';
register({
  type: 'ReorderInput',
  domain: NCHWC_DOMAIN,
  sinceVersion: [1],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt(x.dtype, x.shape ? [...x.shape] : null)];
  },
});
register({
  type: 'ReorderOutput',
  domain: NCHWC_DOMAIN,
  sinceVersion: [1],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const c = node.attrInt('channels');
    return [tt(x.dtype, x.shape ? [x.shape[0]!, c ?? null, ...x.shape.slice(2)] : null)];
  },
});
register({
  type: 'Conv',
  domain: NCHWC_DOMAIN,
  sinceVersion: [1],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt(x.dtype, convShape(node, ctx, x, ctx.inputType(1), ctx.optInputType(2)))];
  },
});

register({
  type: 'ConvTranspose',
  prune: pruneConvTranspose,
  sinceVersion: [1, 11, 22],
  sameDtype: 'all',
  grad: convTransposeGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const w = ctx.inputType(1);
    const spatial = spatialOf(ctx, x, w);
    if (spatial === undefined) return [tt(x.dtype, null)];
    const group = node.attrInt('group', 1);
    if (group <= 0) ctx.fail(`group ${group} must be positive`, 'group');
    const wa = windowAttrs(
      ctx,
      node,
      spatial,
      w.shape ? w.shape.slice(2) : new Array<Dim>(spatial).fill(null),
    );
    if (x.shape && w.shape)
      checkDims(ctx, x.shape[1]!, w.shape[0]!, 'input channels ≠ weight dim 0', node.inputs[1]);
    const m = w.shape ? dimMul(w.shape[1]!, group) : null;
    const b = ctx.optInputType(2);
    if (b?.shape) checkDims(ctx, b.shape[0]!, m, 'bias length ≠ output channels', node.inputs[2]);
    const outPad = node.attrInts('output_padding') ?? new Array<number>(spatial).fill(0);
    if (outPad.length !== spatial)
      ctx.fail(`output_padding [${outPad.join(', ')}] needs ${spatial} entries`, 'output_padding');
    outPad.forEach((p, i) => {
      if (p < 0 || (p >= wa.strides[i]! && p >= wa.dilations[i]!))
        ctx.fail(
          `output_padding [${outPad.join(', ')}] must be smaller than the stride or the dilation`,
          'output_padding',
        );
    });
    let outShape = node.attrInts('output_shape');
    if (outShape && outShape.length === spatial + 2) outShape = outShape.slice(2);
    if (outShape && outShape.length !== spatial)
      ctx.fail(`output_shape [${outShape.join(', ')}] needs ${spatial} entries`, 'output_shape');
    const out: Dim[] = [x.shape ? x.shape[0]! : null, m];
    for (let i = 0; i < spatial; i++) {
      if (outShape) {
        out.push(outShape[i]!);
        continue;
      }
      const inSize = x.shape ? x.shape[2 + i]! : null;
      const k = wa.kernel[i]!;
      if (k < 0 || inSize === null) {
        out.push(null);
        continue;
      }
      if (wa.autoPad === 'SAME_UPPER' || wa.autoPad === 'SAME_LOWER') {
        out.push(dimMul(inSize, wa.strides[i]!));
        continue;
      }
      const pads = wa.autoPad === 'VALID' ? 0 : wa.pads[i]! + wa.pads[i + spatial]!;
      const eff = (k - 1) * wa.dilations[i]! + 1;
      out.push(dimAdd(dimMul(dimSub(inSize, 1), wa.strides[i]!), outPad[i]! + eff - pads));
    }
    return [tt(x.dtype, out)];
  },
});

// ---------------------------------------------------------------- pools

function poolShape(
  node: Node,
  ctx: InferCtx,
  x: TensorType,
  opts: { ceil: boolean; dilations: boolean },
): Dim[] | null {
  const spatial = spatialOf(ctx, x);
  if (spatial === undefined) return null;
  if (!opts.dilations && node.attrInts('dilations'))
    ctx.fail(`dilations are not supported by ${node.opType} at opset ${ctx.opset}`, 'dilations');
  const wa = windowAttrs(ctx, node, spatial);
  const ceil = opts.ceil && node.attrInt('ceil_mode', 0) === 1;
  const out: Dim[] = [x.shape![0]!, x.shape![1]!];
  for (let i = 0; i < spatial; i++) {
    const pb = wa.pads[i]!;
    const pe = wa.pads[i + spatial]!;
    const k = wa.kernel[i]!;
    if (pb >= k || pe >= k)
      ctx.fail(
        `pads [${wa.pads.join(', ')}] must be smaller than the kernel [${wa.kernel.join(', ')}]`,
        'pads',
      );
    out.push(checkedWindow(ctx, x.shape!, i, wa, ceil));
  }
  return out;
}

register({
  type: 'MaxPool',
  prune: prunePass(0),
  sinceVersion: [1, 8, 10, 11, 12, 22],
  grad: maxPoolGrad,
  quantPassThrough: 0,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const so = node.attrInt('storage_order', 0);
    if (so !== 0 && so !== 1) ctx.fail(`storage_order ${so} must be 0 or 1`, 'storage_order');
    const s = poolShape(node, ctx, x, { ceil: ctx.opset >= 10, dilations: ctx.opset >= 10 });
    return [tt(x.dtype, s), tt('int64', s ? [...s] : null)];
  },
});

register({
  type: 'AveragePool',
  prune: prunePass(),
  sinceVersion: [1, 7, 10, 11, 19, 22],
  quantQLinear: { op: 'QLinearAveragePool', inputs: [0] },
  grad: averagePoolGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt(x.dtype, poolShape(node, ctx, x, { ceil: ctx.opset >= 10, dilations: ctx.opset >= 19 }))];
  },
});

register({
  type: 'LpPool',
  prune: prunePass(),
  sinceVersion: [1, 2, 11, 18, 22],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt(x.dtype, poolShape(node, ctx, x, { ceil: ctx.opset >= 18, dilations: ctx.opset >= 18 }))];
  },
});

for (const t of ['GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool']) {
  register({
    type: t,
    sinceVersion: [1, 2, 22],
    ...(t === 'GlobalAveragePool'
      ? { grad: globalAveragePoolGrad, quantQLinear: { op: 'QLinearGlobalAveragePool', inputs: [0] } }
      : {}),
    prune: prunePass(),
    infer: (node, ctx) => {
      const x = ctx.inputType(0);
      const spatial = spatialOf(ctx, x);
      if (spatial === undefined) return [tt(x.dtype, null)];
      return [tt(x.dtype, [x.shape![0]!, x.shape![1]!, ...new Array<Dim>(spatial).fill(1)])];
    },
  });
}

register({
  type: 'MaxRoiPool',
  sinceVersion: [1],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const rois = ctx.inputType(1);
    const ps = node.attrInts('pooled_shape');
    if (!ps) ctx.fail('required attribute "pooled_shape" is missing', 'pooled_shape');
    return [tt(x.dtype, [rois.shape?.[0] ?? null, x.shape?.[1] ?? null, ...ps!])];
  },
});

// ---------------------------------------------------------------- normalizations

function channelCheck(ctx: InferCtx, node: Node, x: TensorType, idx: number[]): void {
  const c = x.shape?.[1];
  for (const i of idx) {
    const t = ctx.optInputType(i);
    if (!t?.shape) continue;
    if (t.shape.length !== 1)
      ctx.fail(`input ${i} must be 1-D [C], got ${formatDims(t.shape)}`, node.inputs[i]!);
    if (c !== undefined)
      checkDims(
        ctx,
        t.shape[0]!,
        c,
        `input ${i} length ≠ channels of ${formatDims(x.shape)}`,
        node.inputs[i],
      );
  }
}

/** Inference-mode BatchNormalization as y = a·x + b per channel (a = γ/√(σ² + ε), b = β − μ·a). */
function batchNormAffine(n: Node): { scale: Float64Array; bias: Float64Array } | undefined {
  if (n.attrInt('training_mode', 0) || n.outputs.slice(1).some((o) => o && o.uses.length)) return undefined;
  const [g, b, m, v] = [1, 2, 3, 4].map((i) => constOf(n.inputs[i]));
  if (!g || !b || !m || !v) return undefined;
  const eps = n.attrFloat('epsilon', 1e-5);
  const [gv, bv, mv, vv] = [g, b, m, v].map((t) => t.toFloat64());
  const scale = Float64Array.from(gv!, (x, c) => x / Math.sqrt(vv![c]! + eps));
  const bias = Float64Array.from(bv!, (x, c) => x - mv![c]! * scale[c]!);
  return { scale, bias };
}

register({
  type: 'BatchNormalization',
  prune: pruneChannelParams([1, 2, 3, 4]),
  sinceVersion: [1, 6, 7, 9, 14, 15],
  check: (n, ins) => {
    const out: { kind: 'dtype-mismatch'; message: string }[] = [];
    const pairs: [number, number][] = [
      [1, 2],
      [3, 4],
    ];
    for (const [a, b] of pairs)
      if (ins[a] && ins[b] && ins[a].dtype !== ins[b].dtype)
        out.push({
          kind: 'dtype-mismatch',
          message: `Node "${n.label}" (BatchNormalization): input ${b} "${n.inputs[b]!.name}" is ${ins[b].dtype} but input ${a} "${n.inputs[a]!.name}" is ${ins[a].dtype}`,
        });
    return out;
  },
  grad: batchNormGrad,
  quantAffine: batchNormAffine,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    if (x.shape && x.shape.length < 2)
      ctx.fail(`input must have rank ≥ 2, got ${formatDims(x.shape)}`, node.inputs[0]!);
    channelCheck(ctx, node, x, [1, 2, 3, 4]);
    const c: Dim = x.shape ? x.shape[1]! : (ctx.optInputType(1)?.shape?.[0] ?? null);
    const statDtype: DType = ctx.optInputType(3)?.dtype ?? x.dtype;
    const out = [tt(x.dtype, x.shape)];
    const training = ctx.opset >= 14 ? node.attrInt('training_mode', 0) === 1 : true;
    if (ctx.opset >= 14 && !training && node.outputs.slice(1).some(Boolean))
      ctx.fail(
        'running_mean/running_var outputs need training_mode=1',
        node.outputs.find((o, i) => i > 0 && o) ?? undefined,
      );
    const nStats = ctx.opset >= 14 ? 2 : 4;
    for (let i = 0; i < nStats; i++) out.push(tt(statDtype, [c]));
    return out;
  },
});

register({
  type: 'InstanceNormalization',
  prune: pruneChannelParams([1, 2]),
  sinceVersion: [1, 6, 22],
  sameDtype: 'all',
  grad: instanceNormGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    channelCheck(ctx, node, x, [1, 2]);
    return [tt(x.dtype, x.shape)];
  },
});

register({
  type: 'LayerNormalization',
  prune: pruneNormalized,
  sinceVersion: [17],
  sameDtype: [0, 1, 2],
  grad: layerNormGrad,
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const stash = node.attrInt('stash_type', 1);
    const u = dtypeFromCode(stash)!;
    if (!dtypeFromCode(stash)) ctx.fail(`stash_type ${stash} is not an element type`, 'stash_type');
    if (!x.shape) return [tt(x.dtype, null), tt(u, null), tt(u, null)];
    const r = x.shape.length;
    const a = normAxis(ctx, node.attrInt('axis', -1), r);
    const sc = ctx.optInputType(1);
    if (sc?.shape) {
      const norm = x.shape.slice(a);
      // scale must be broadcastable to the normalized dims
      if (sc.shape.length > norm.length)
        ctx.fail(
          `scale ${formatDims(sc.shape)} has more dims than the normalized part ${formatDims(norm)}`,
          node.inputs[1]!,
        );
      sc.shape.forEach((d, i) => {
        const e = norm[norm.length - sc.shape!.length + i]!;
        if (typeof d === 'number' && d !== 1)
          checkDims(
            ctx,
            d,
            e,
            `scale ${formatDims(sc.shape)} does not fit ${formatDims(norm)}`,
            node.inputs[1],
          );
      });
    }
    const stat = [...x.shape.slice(0, a), ...new Array<Dim>(r - a).fill(1)];
    return [tt(x.dtype, x.shape), tt(u, stat), tt(u, [...stat])];
  },
});

register({
  type: 'GroupNormalization',
  sinceVersion: [18, 21],
  sameDtype: 'all',
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    const g = node.attrInt('num_groups');
    if (g === undefined || g <= 0) ctx.fail(`num_groups ${g ?? 'missing'} must be positive`, 'num_groups');
    const c = x.shape?.[1];
    if (typeof c === 'number' && c % g! !== 0)
      ctx.fail(`channels ${c} are not divisible by num_groups ${g}`, 'num_groups');
    return [tt(x.dtype, x.shape)];
  },
});

for (const t of ['SkipLayerNormalization', 'SkipSimplifiedLayerNormalization']) {
  register({
    type: t,
    domain: 'com.microsoft',
    sinceVersion: [1],
    infer: (node, ctx) => {
      const x = ctx.inputType(0);
      const stat = x.shape ? [...x.shape.slice(0, -1), 1] : null;
      return [tt(x.dtype, x.shape), tt('float32', stat), tt('float32', stat), tt(x.dtype, x.shape)];
    },
  });
}

// ---------------------------------------------------------------- recurrent layers

const GATES: Record<string, number> = { LSTM: 4, GRU: 3, RNN: 1 };

for (const t of ['LSTM', 'GRU', 'RNN']) {
  register({
    type: t,
    sinceVersion: t === 'LSTM' ? [1, 7, 14, 22] : t === 'GRU' ? [1, 3, 7, 14, 22] : [1, 7, 14, 22],
    sameDtype: t === 'LSTM' ? [0, 1, 2, 3, 5, 6, 7] : [0, 1, 2, 3, 5],
    infer: (node, ctx) => {
      const x = ctx.inputType(0);
      const w = ctx.inputType(1);
      const r = ctx.optInputType(2);
      const g = GATES[t]!;
      const dir = node.attrString('direction', 'forward');
      if (!['forward', 'reverse', 'bidirectional'].includes(dir))
        ctx.fail(`direction "${dir}" is not valid`, 'direction');
      const dirs = dir === 'bidirectional' ? 2 : 1;
      const layout = ctx.opset >= 14 ? node.attrInt('layout', 0) : 0;
      if (layout !== 0 && layout !== 1) ctx.fail(`layout ${layout} must be 0 or 1`, 'layout');
      let hidden: Dim = node.attrInt('hidden_size') ?? null;
      if (hidden === null && r?.shape) hidden = r.shape[2] ?? null;
      if (hidden === null && w.shape) hidden = dimDivExact(w.shape[1]!, g);
      if (x.shape && x.shape.length !== 3)
        ctx.fail(`X must be 3-D, got ${formatDims(x.shape)}`, node.inputs[0]!);
      if (w.shape) {
        if (w.shape.length !== 3) ctx.fail(`W must be 3-D, got ${formatDims(w.shape)}`, node.inputs[1]!);
        checkDims(ctx, w.shape[0]!, dirs, `W dim 0 ≠ number of directions ${dirs}`, node.inputs[1]);
        checkDims(ctx, w.shape[1]!, dimMul(hidden, g), `W dim 1 ≠ ${g} × hidden_size`, node.inputs[1]);
        if (x.shape) checkDims(ctx, w.shape[2]!, x.shape[2]!, 'W dim 2 ≠ input size', node.inputs[1]);
      }
      const seq: Dim = x.shape ? x.shape[layout === 0 ? 0 : 1]! : null;
      const batch: Dim = x.shape ? x.shape[layout === 0 ? 1 : 0]! : null;
      const y = layout === 0 ? [seq, dirs, batch, hidden] : [batch, seq, dirs, hidden];
      const yh = layout === 0 ? [dirs, batch, hidden] : [batch, dirs, hidden];
      const outs = [tt(x.dtype, y), tt(x.dtype, yh)];
      if (t === 'LSTM') outs.push(tt(x.dtype, [...yh]));
      return outs;
    },
  });
}

// ================================================================ gradient rules
// Every rule emits ONNX nodes only (ORT computes the gradients); shapes of the forward values are read statically
// from their inferred types. Channel and spatial dims must be known numbers; the batch dim may be symbolic.

/** Shape of `v` with every dim from index `from` on a known number (dims before it may be symbolic). */
function knownDims(g: GradCtx, v: Value, from: number, what: string): Dim[] {
  const s = g.shapeOf(v);
  for (let i = from; i < s.length; i++)
    if (typeof s[i] !== 'number')
      g.fail(`${what} needs known ${from ? 'channel and spatial dims' : 'dims'}, got ${formatDims(s)}`);
  return s;
}
const numsFrom = (s: Dim[], from: number) => s.slice(from) as number[];
const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);
const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
/** Slice `ends` for a reversed axis (clamped by ORT to "before the first element"). */
const REV_END = Number.MIN_SAFE_INTEGER;

/** A per-channel vector [C] as [1, C, 1, …] for broadcasting against an [N, C, spatial…] tensor of rank `r`. */
function perChannel(e: Emitter, v: Value, r: number): Value {
  return e.reshape(v, [1, -1, ...new Array<number>(r - 2).fill(1)]);
}

interface ConvGeo {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Explicit begin/end pads (auto_pad resolved). */
  pb: number[];
  pe: number[];
  group: number;
}

const effKernel = (geo: ConvGeo, i: number) => (geo.kernel[i]! - 1) * geo.dilations[i]! + 1;

/** Window attributes of a Conv/pool node with auto_pad resolved against the static input sizes. */
function windowGeo(g: GradCtx, node: Node, inSizes: number[], kernel: number[]): ConvGeo {
  const sp = inSizes.length;
  const strides = node.attrInts('strides') ?? new Array<number>(sp).fill(1);
  const dilations = node.attrInts('dilations') ?? new Array<number>(sp).fill(1);
  const pads = node.attrInts('pads') ?? new Array<number>(2 * sp).fill(0);
  const auto = node.attrString('auto_pad', 'NOTSET');
  const geo: ConvGeo = {
    kernel,
    strides,
    dilations,
    pb: pads.slice(0, sp),
    pe: pads.slice(sp, 2 * sp),
    group: node.attrInt('group', 1),
  };
  if (auto === 'VALID') {
    geo.pb.fill(0);
    geo.pe.fill(0);
  } else if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    for (let i = 0; i < sp; i++) {
      const out = Math.ceil(inSizes[i]! / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + effKernel(geo, i) - inSizes[i]!);
      const small = Math.floor(total / 2);
      geo.pb[i] = auto === 'SAME_UPPER' ? small : total - small;
      geo.pe[i] = total - geo.pb[i]!;
    }
  } else if (auto !== 'NOTSET') g.fail(`auto_pad "${auto}" is not supported`);
  return geo;
}

/**
 * The K = Π kernel windows of `xp` (spatial axes from 2 on, already padded) that a sliding kernel reads for
 * `outSizes` outputs: window k holds, for every output position, the input element under kernel offset k.
 * Offsets come in row-major kernel order.
 */
function kernelWindows(e: Emitter, xp: Value, xpSizes: number[], geo: ConvGeo, outSizes: number[]): Value[] {
  const sp = outSizes.length;
  const axes = range(2, 2 + sp);
  const out: Value[] = [];
  const k = new Array<number>(sp).fill(0);
  for (let n = prod(geo.kernel); n > 0; n--) {
    const starts = k.map((ki, i) => ki * geo.dilations[i]!);
    const ends = starts.map((s, i) => s + (outSizes[i]! - 1) * geo.strides[i]! + 1);
    const whole = starts.every((s, i) => s === 0 && ends[i] === xpSizes[i] && geo.strides[i] === 1);
    if (whole) out.push(xp);
    else {
      const args = [xp, e.ints(starts), e.ints(ends), e.ints(axes)];
      if (geo.strides.some((s) => s !== 1)) args.push(e.ints(geo.strides));
      out.push(e.op('Slice', args));
    }
    for (let i = sp - 1; i >= 0; i--) {
      if (++k[i]! < geo.kernel[i]!) break;
      k[i] = 0;
    }
  }
  return out;
}

/** True when a 2-D, group-1 conv from `cin` to `cout` channels can run as an NCHWc Conv with channel block `block`. */
export function nchwcFits(cin: number, cout: number, spatial: number, group: number, block: number): boolean {
  return block > 0 && spatial === 2 && group === 1 && cin % block === 0 && cout % block === 0;
}

/**
 * Conv(x, w[, bias]) (2-D, group 1, channels multiples of the block) through ORT's NCHWc kernels, which ORT itself
 * uses only for constant weights: ReorderInput(x) → nchwc Conv with w reordered in the graph to the blocked
 * OIHWBiBo layout (w[ob·B+bo, ib·B+bi, h, w] at [ob, ib, h, w, bi, bo]) → ReorderOutput. On cnn-s's conv2
 * shapes it is ~30 % faster than the plain Conv with weights as inputs (BENCHMARKS.md "Train step performance").
 */
export function nchwcConv(
  e: Emitter,
  x: Value,
  w: Value,
  bias: Value | null,
  cin: number,
  cout: number,
  kernel: number[],
  attrs: Record<string, Attr | undefined>,
  B: number,
): Value {
  const blocked = e.reshape(
    e.transpose(e.reshape(w, [cout / B, B, cin / B, B, ...kernel]), [0, 2, 4, 5, 3, 1]),
    [cout, cin, ...kernel],
  );
  const xi = e.op('ReorderInput', [x], {}, { domain: NCHWC_DOMAIN });
  const yc = e.op('Conv', bias ? [xi, blocked, bias] : [xi, blocked], attrs, { domain: NCHWC_DOMAIN });
  return e.op('ReorderOutput', [yc], { channels: A.int(cout) }, { domain: NCHWC_DOMAIN });
}

export type { ConvInputGradForm, ConvWeightGradForm } from './registry.js';

/**
 * ∂L/∂W of Y = Conv(inp, W) given gout = ∂L/∂Y: inp [N, C, S…], gout [N, M, O…] → [M, C/group, k…].
 * An explicit im2col (Slices of the padded input, one per kernel offset) contracted with gout over the batch
 * and the output positions by MatMul/Gemm, in one of these forms:
 * - 'offset-gemms': inputᵀ [C, N, S…]; per kernel offset one Gemm(goutᵀ [M, N·P], window [C, N·P], transB);
 * - 'cols-batched': the windows concatenated in the natural layout [N, C·K, P], MatMul per sample, ReduceSum N;
 * - 'cols-gemm': the windows concatenated as [C·K, N·P] and one Gemm;
 * - 'batch-conv': one Conv over the batch axis (group 1, 1-D/2-D only; see batchConvWeightGrad).
 */
function convWeightGrad(
  g: GradCtx,
  inp: Value,
  gout: Value,
  inShape: Dim[],
  outShape: Dim[],
  geo: ConvGeo,
): Value {
  const e = g.e;
  const sp = inShape.length - 2;
  const C = inShape[1] as number;
  const M = outShape[1] as number;
  const S = numsFrom(inShape, 2);
  const O = numsFrom(outShape, 2);
  const G = geo.group;
  const Cg = C / G;
  const Mg = M / G;
  const K = prod(geo.kernel);
  const wShape = [M, Cg, ...geo.kernel];
  const padded = geo.pb.some((p) => p) || geo.pe.some((p) => p);
  const xpSizes = S.map((s, i) => s + geo.pb[i]! + geo.pe[i]!);
  const padsOf = () => [0, 0, ...geo.pb, 0, 0, ...geo.pe];
  let form = g.forms.convWeight;
  // measured (bench/grad_conv.ts): per-offset products win from 8 input channels per group (GEMMs with at least
  // 8 columns); below, the batched product over one im2col wins (per-offset products degenerate into GEMVs)
  if (form === 'auto') form = Cg >= 8 ? 'offset-gemms' : 'cols-batched';

  if (form === 'batch-conv' && G === 1 && sp <= 2)
    return batchConvWeightGrad(g, inp, gout, inShape, outShape, geo);
  if (form === 'batch-conv') form = 'offset-gemms';

  if (form === 'cols-batched') {
    // cols [N, C, K, O…] in the natural layout; per-sample products summed over N
    const xp = padded ? e.op('Pad', [inp, e.ints(padsOf())]) : inp;
    const wins = kernelWindows(e, xp, xpSizes, geo, O);
    const cols =
      K === 1
        ? wins[0]!
        : e.op(
            'Concat',
            wins.map((w) => e.unsqueeze(w, [2])),
            { axis: A.int(2) },
          );
    const P = prod(O);
    const colsR = e.reshape(cols, G === 1 ? [0, Cg * K, P] : [0, G, Cg * K, P]);
    const goutR = e.reshape(gout, G === 1 ? [0, Mg, P] : [0, G, Mg, P]);
    const perm = G === 1 ? [0, 2, 1] : [0, 1, 3, 2];
    const p = e.op('MatMul', [goutR, e.transpose(colsR, perm)]); // [N, (G,) Mg, Cg·K]
    return e.reshape(e.reduceSum(p, [0], false), wShape);
  }

  // transposed layouts: inputᵀ [C, N, S…] so that each window reshapes for free to [G, Cg, N·P]
  const toCN = (v: Value, ch: number, rest: number[]) =>
    ch === 1 ? e.reshape(v, [1, -1, ...rest]) : e.transpose(v, [1, 0, ...range(2, 2 + sp)]);
  const xt = toCN(inp, C, S);
  const xp = padded ? e.op('Pad', [xt, e.ints(padsOf())]) : xt;
  const wins = kernelWindows(e, xp, xpSizes, geo, O);
  const goutT = e.reshape(toCN(gout, M, O), G === 1 ? [Mg, -1] : [G, Mg, -1]);
  const contract = (cols: Value, rows: number): Value =>
    G === 1
      ? e.op('Gemm', [goutT, e.reshape(cols, [rows, -1])], { transB: A.int(1) })
      : e.op('MatMul', [goutT, e.transpose(e.reshape(cols, [G, rows, -1]), [0, 2, 1])]);
  if (form === 'cols-gemm' || K === 1) {
    const cols =
      K === 1
        ? wins[0]!
        : e.op(
            'Concat',
            wins.map((w) => e.unsqueeze(w, [1])),
            { axis: A.int(1) },
          ); // [C, K, N, O…]
    return e.reshape(contract(cols, Cg * K), wShape);
  }
  // 'offset-gemms': one product per kernel offset (no Concat of the big windows), then a small Concat
  const parts = wins.map((w) => e.unsqueeze(contract(w, Cg), [G === 1 ? 2 : 3]));
  return e.reshape(e.op('Concat', parts, { axis: A.int(G === 1 ? 2 : 3) }), wShape);
}

/**
 * The weight gradient as one Conv over the batch axis (group 1, 1-D or 2-D): the batch becomes the input channels,
 * gout (transposed to [M, N, O…]) the kernel, and the input's channels × last-axis kernel offsets are laid side
 * by side along the width, read with a stride of one output row: dW comes out as [1, M, kH, C·kW]. ORT then does
 * the im2col inside its (multithreaded) Conv.
 */
function batchConvWeightGrad(
  g: GradCtx,
  inp: Value,
  gout: Value,
  inShape: Dim[],
  outShape: Dim[],
  geo: ConvGeo,
): Value {
  const e = g.e;
  const sp = inShape.length - 2;
  const C = inShape[1] as number;
  const M = outShape[1] as number;
  const S = numsFrom(inShape, 2);
  const O = numsFrom(outShape, 2);
  const last = sp - 1; // the spatial axis laid out along the width
  const kW = geo.kernel[last]!;
  const Wo = O[last]!;
  // input laid out [N, (H,) C, W]: the channel axis next to the width
  let xt =
    sp === 2 && C > 1
      ? e.transpose(inp, [0, 2, 1, 3])
      : sp === 2
        ? e.reshape(inp, [-1, S[0]!, 1, S[1]!])
        : inp;
  const wAxis = sp === 2 ? 3 : 2;
  const pw = [geo.pb[last]!, geo.pe[last]!];
  if (pw[0] || pw[1]) {
    const pads = new Array<number>(2 * (wAxis + 1)).fill(0);
    pads[wAxis] = pw[0]!;
    pads[2 * wAxis + 1] = pw[1]!;
    xt = e.op('Pad', [xt, e.ints(pads)]);
  }
  const Wp = S[last]! + pw[0]! + pw[1]!;
  const parts: Value[] = [];
  for (let k = 0; k < kW; k++) {
    const start = k * geo.dilations[last]!;
    const end = start + (Wo - 1) * geo.strides[last]! + 1;
    const whole = start === 0 && end === Wp && geo.strides[last] === 1;
    const args = [xt, e.ints([start]), e.ints([end]), e.ints([wAxis])];
    if (geo.strides[last] !== 1) args.push(e.ints([geo.strides[last]!]));
    parts.push(e.unsqueeze(whole ? xt : e.op('Slice', args), [wAxis]));
  }
  const stacked = kW === 1 ? parts[0]! : e.op('Concat', parts, { axis: A.int(wAxis) }); // [N, (H,) C, kW, Wo]
  const input = e.reshape(stacked, sp === 2 ? [1, -1, S[0]!, C * kW * Wo] : [1, -1, C * kW * Wo]);
  const kernel = e.transpose(gout, [1, 0, ...range(2, 2 + sp)]); // [M, N, O…]
  if (sp === 1) {
    const r = e.op('Conv', [input, kernel], { strides: A.ints([Wo]) }); // [1, M, C·kW]
    return e.reshape(r, [M, C, kW]);
  }
  const kH = geo.kernel[0]!;
  const r = e.op('Conv', [input, kernel], {
    strides: A.ints([geo.dilations[0]!, Wo]),
    dilations: A.ints([geo.strides[0]!, 1]),
    pads: A.ints([geo.pb[0]!, 0, geo.pe[0]!, 0]),
  }); // [1, M, ≥ kH, C·kW]
  const rows =
    Math.floor((S[0]! + geo.pb[0]! + geo.pe[0]! - (geo.strides[0]! * (O[0]! - 1) + 1)) / geo.dilations[0]!) +
    1;
  const rk = rows > kH ? e.op('Slice', [r, e.ints([0]), e.ints([kH]), e.ints([2])]) : r;
  return e.transpose(e.reshape(rk, [M, kH, C, kW]), [0, 2, 1, 3]);
}

/**
 * ∂L/∂X of Y = Conv(X, W) given gout: ConvTranspose(gout, W) with the end padding or output_padding that brings
 * it back to X's size, or, with unit strides and channels not expanding, a Conv of gout with the flipped,
 * in/out-swapped weights (the faster of the two in ORT for those shapes).
 */
function convInputGrad(
  g: GradCtx,
  gout: Value,
  w: Value,
  inShape: Dim[],
  outShape: Dim[],
  geo: ConvGeo,
): Value {
  const e = g.e;
  const sp = inShape.length - 2;
  const S = numsFrom(inShape, 2);
  const O = numsFrom(outShape, 2);
  const C = inShape[1] as number;
  const M = outShape[1] as number;
  const G = geo.group;
  const eff = range(0, sp).map((i) => effKernel(geo, i));
  const flipPads = [...geo.pb.map((p, i) => eff[i]! - 1 - p), ...geo.pe.map((p, i) => eff[i]! - 1 - p)];
  const canFlip = geo.strides.every((s) => s === 1) && flipPads.every((p) => p >= 0);
  let form = g.forms.convInput;
  // measured with weights as graph inputs (as in a train step, so no NCHWc kernels): the flipped Conv wins when
  // the conv does not expand the channels (its GEMM then has ≥ as many rows as the forward's), ConvTranspose
  // otherwise (1 thread, ConvTranspose vs flipped: 32→64 on 14×14 3.7 vs 4.4 ms, 64→32 4.8 vs 3.3 ms; BENCHMARKS.md)
  // with NCHWc kernels available the flipped Conv runs on them and beats ConvTranspose at every measured shape
  if (form === 'auto')
    form = C / G >= M / G || nchwcFits(M, C, sp, G, g.forms.nchwcBlock) ? 'flipped-conv' : 'conv-transpose';
  if (canFlip && form === 'flipped-conv') {
    const Cg = C / G;
    const Mg = M / G;
    let wt: Value;
    if (G === 1) wt = e.transpose(w, [1, 0, ...range(2, 2 + sp)]);
    else if (Cg === 1 || Mg === 1) wt = e.reshape(w, [C, Mg, ...geo.kernel]);
    else
      wt = e.reshape(e.transpose(e.reshape(w, [G, Mg, Cg, ...geo.kernel]), [0, 2, 1, ...range(3, 3 + sp)]), [
        C,
        Mg,
        ...geo.kernel,
      ]);
    const axes = range(2, 2 + sp);
    const flipped = e.op('Slice', [
      wt,
      e.ints(axes.map(() => -1)),
      e.ints(axes.map(() => REV_END)),
      e.ints(axes),
      e.ints(axes.map(() => -1)),
    ]);
    if (nchwcFits(M, C, sp, G, g.forms.nchwcBlock))
      return nchwcConv(
        e,
        gout,
        flipped,
        null,
        M,
        C,
        geo.kernel,
        {
          dilations: A.ints(geo.dilations),
          pads: A.ints(flipPads),
          strides: A.ints(geo.strides),
          kernel_shape: A.ints(geo.kernel),
          group: A.int(1),
        },
        g.forms.nchwcBlock,
      );
    return e.op('Conv', [gout, flipped], {
      group: A.int(G),
      dilations: A.ints(geo.dilations),
      pads: A.ints(flipPads),
      kernel_shape: A.ints(geo.kernel),
    });
  }
  return transposeBack(e, gout, w, S, O, geo);
}

/** ConvTranspose(gout, W) sized back to the spatial sizes `S` of the forward input. */
function transposeBack(e: Emitter, gout: Value, w: Value, S: number[], O: number[], geo: ConvGeo): Value {
  const pe: number[] = [];
  const outPad: number[] = [];
  S.forEach((s, i) => {
    const t = s + geo.pb[i]! - geo.strides[i]! * (O[i]! - 1) - effKernel(geo, i);
    outPad.push(Math.max(0, t));
    pe.push(Math.max(0, -t));
  });
  return e.op('ConvTranspose', [gout, w], {
    group: A.int(geo.group),
    strides: A.ints(geo.strides),
    dilations: A.ints(geo.dilations),
    pads: A.ints([...geo.pb, ...pe]),
    kernel_shape: A.ints(geo.kernel),
    ...(outPad.some((p) => p) ? { output_padding: A.ints(outPad) } : {}),
  });
}

/**
 * Σ of `v` [N, C, spatial…] over every axis but the channels, as [C] (or [1, C, 1, …] with `keepdims`). With known
 * C and spatial dims it reduces in two steps, each over the innermost axis of a 2-D view (rows of the spatial plane,
 * then the batch; `s` is v's shape, that of a forward value): ORT's ReduceSum over axes [0, 2, 3] at once is ~3× slower (0.46 vs 0.16 ms on [64,32,28,28],
 * 1 thread; BENCHMARKS.md "Train step performance").
 */
function channelSum(g: GradCtx, v: Value, s: readonly Dim[], keepdims: boolean): Value {
  const e = g.e;
  const r = s.length;
  const C = s[1];
  const spatial = s.slice(2);
  if (typeof C !== 'number' || !spatial.every((d): d is number => typeof d === 'number'))
    return keepdims ? e.reduceSum(v, [0, ...range(2, r)], true) : e.reduceSum(v, [0, ...range(2, r)], false);
  const P = prod(spatial as number[]);
  const perRow =
    P === 1 ? e.reshape(v, [-1, C]) : e.reshape(e.reduceSum(e.reshape(v, [-1, P]), [1], false), [-1, C]);
  const sum = e.reduceSum(perRow, [0], false); // [C]
  return keepdims ? e.reshape(sum, [1, C, ...new Array<number>(r - 2).fill(1)]) : sum;
}

/** Σ of the output gradient over all axes but the channels; `ys` is the shape of the forward output. */
function biasGrad(g: GradCtx, gout: Value, ys: readonly Dim[]): Value {
  return ys.length >= 3
    ? channelSum(g, gout, ys, false)
    : g.e.reduceSum(gout, [0, ...range(2, ys.length)], false);
}

function convGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy) return [null, null, null];
  const x = node.input(0);
  const w = node.input(1);
  const xs = knownDims(g, x, 1, 'the Conv input');
  const ws = knownDims(g, w, 0, 'the Conv weights');
  const ys = knownDims(g, node.output(0), 1, 'the Conv output');
  const geo = windowGeo(g, node, numsFrom(xs, 2), numsFrom(ws, 2));
  return [
    g.needsGrad(0) ? convInputGrad(g, dy, w, xs, ys, geo) : null,
    g.needsGrad(1) ? convWeightGrad(g, x, dy, xs, ys, geo) : null,
    node.inputs[2] && g.needsGrad(2) ? biasGrad(g, dy, ys) : null,
  ];
}

/**
 * Y = ConvTranspose(X, W) is the adjoint of Z = Conv(U, W) (same strides, pads, dilations, group; U shaped like
 * Y), so ∂L/∂X = Conv(∂L/∂Y, W) and ∂L/∂W is the Conv weight gradient with input ∂L/∂Y and output gradient X.
 */
function convTransposeGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy) return [null, null, null];
  const x = node.input(0);
  const w = node.input(1);
  const xs = knownDims(g, x, 1, 'the ConvTranspose input');
  const ws = knownDims(g, w, 0, 'the ConvTranspose weights');
  const ys = knownDims(g, node.output(0), 1, 'the ConvTranspose output');
  const sp = xs.length - 2;
  const I = numsFrom(xs, 2);
  const Y = numsFrom(ys, 2);
  const geo = windowGeo(g, node, I, numsFrom(ws, 2));
  const auto = node.attrString('auto_pad', 'NOTSET');
  if (node.attrInts('output_shape') || auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    // pads implied by the output size: split evenly; an odd total is split differently across ORT versions
    const op = node.attrInts('output_padding') ?? new Array<number>(sp).fill(0);
    for (let i = 0; i < sp; i++) {
      const total = geo.strides[i]! * (I[i]! - 1) + op[i]! + effKernel(geo, i) - Y[i]!;
      if (total % 2 !== 0)
        g.fail(
          `its output size implies an odd total padding (${total}) on spatial axis ${i}: give explicit pads`,
        );
      geo.pb[i] = geo.pe[i] = total / 2;
    }
  }
  const common = {
    group: A.int(geo.group),
    strides: A.ints(geo.strides),
    dilations: A.ints(geo.dilations),
    pads: A.ints([...geo.pb, ...geo.pe]),
    kernel_shape: A.ints(geo.kernel),
  };
  return [
    g.needsGrad(0) ? g.e.op('Conv', [dy, w], common) : null,
    g.needsGrad(1) ? convWeightGrad(g, dy, x, ys, xs, geo) : null,
    node.inputs[2] && g.needsGrad(2) ? biasGrad(g, dy, ys) : null,
  ];
}

// ---------------------------------------------------------------- pool gradients

/** Attach a new output at `index` of a forward node (for values a gradient rule needs, e.g. MaxPool Indices). */
function addForwardOutput(g: GradCtx, node: Node, index: number, name: string, type: TensorType): Value {
  const v = g.graph.newValue(`${node.label}/${name}`, type);
  while (node.outputs.length < index) g.graph.attachOutput(node, null);
  if (node.outputs.length === index) g.graph.attachOutput(node, v);
  else {
    v.producer = node;
    v.producerIndex = index;
    node.outputs[index] = v;
  }
  return v;
}

/**
 * MaxPool. Non-overlapping windows (kernel = strides, no pads or dilations, no partial ceil-mode window: cnn-s's
 * 2×2/2) take a mask path: m = (X == upsample(Y)), and each output gradient is split over the tied maxima of its
 * window, dX = m · upsample(dY / count). With ties this is the mean of the one-hot subgradients (PyTorch and ORT's
 * Indices pick the first maximum instead); without ties, which is everywhere MaxPool is differentiable, it is the
 * exact gradient. It is ~3× cheaper in ORT than Indices + ScatterElements at cnn-s's shapes (bench/grad_conv.ts
 * --group pool), because MaxPool with an Indices output runs a slow kernel and the upsampling here runs in ORT's
 * NCHWc layout. Other windows use the forward node's Indices output (flat positions in X) with
 * ScatterElements(reduction="add") summing where windows overlap; when the node has no Indices output the rule adds
 * one to the forward node (cheaper than a second MaxPool).
 */
function maxPoolGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy || !g.needsGrad(0)) return [null];
  const x = node.input(0);
  const xs = knownDims(g, x, 1, 'the MaxPool input');
  const ys = knownDims(g, node.output(0), 1, 'the MaxPool output');
  const S = numsFrom(xs, 2);
  const O = numsFrom(ys, 2);
  const kernel = node.attrInts('kernel_shape') ?? g.fail('kernel_shape is missing');
  const geo = windowGeo(g, node, S, kernel);
  const tiles =
    g.opset >= 11 &&
    kernel.every(
      (k, i) =>
        k === geo.strides[i] && geo.dilations[i] === 1 && !geo.pb[i] && !geo.pe[i] && O[i]! * k <= S[i]!,
    );
  return [
    tiles && g.forms.maxPoolMask
      ? maxPoolMaskGrad(g, x, node.output(0), dy, S, O, kernel)
      : maxPoolIndicesGrad(node, g, x, dy, O, geo),
  ];
}

function maxPoolMaskGrad(
  g: GradCtx,
  x: Value,
  y: Value,
  dy: Value,
  S: number[],
  O: number[],
  kernel: number[],
): Value {
  const e = g.e;
  const dt = g.dtypeOf(x);
  const sp = S.length;
  const covered = O.map((o, i) => o * kernel[i]!);
  const crop = covered.some((c, i) => c !== S[i]);
  const xc = crop
    ? e.op('Slice', [x, e.ints(new Array<number>(sp).fill(0)), e.ints(covered), e.ints(range(2, 2 + sp))])
    : x;
  // nearest upsampling by the window size; asymmetric/floor lets ORT run it as its NCHWc Upsample
  const scales = e.constant(Tensor.from('float32', [2 + sp], [1, 1, ...kernel]), 'scales');
  const roi = g.opset < 13 ? e.constant(Tensor.from('float32', [0], []), 'roi') : null;
  const up = (v: Value) =>
    e.op('Resize', [v, roi, scales], {
      mode: A.string('nearest'),
      coordinate_transformation_mode: A.string('asymmetric'),
      nearest_mode: A.string('floor'),
    });
  const m = e.cast(e.op('Equal', [xc, up(y)]), dt);
  // fraction of the window holding the maximum (≥ 1/K: Y is one of the window's elements)
  const frac = e.op('AveragePool', [m], { kernel_shape: A.ints(kernel), strides: A.ints(kernel) });
  const share = e.mul(e.div(dy, frac), e.scalar(1 / prod(kernel), dt));
  const dx = e.mul(m, up(share));
  if (!crop) return dx;
  return e.op('Pad', [
    dx,
    e.ints([...new Array<number>(sp + 2).fill(0), 0, 0, ...S.map((s, i) => s - covered[i]!)]),
  ]);
}

function maxPoolIndicesGrad(node: Node, g: GradCtx, x: Value, dy: Value, O: number[], geo: ConvGeo): Value {
  if (node.attrInt('storage_order', 0) !== 0) g.fail('storage_order=1 indices are not supported');
  const xs = knownDims(g, x, 0, 'the MaxPool input') as number[];
  const e = g.e;
  const ind =
    node.outputs[1] ??
    addForwardOutput(g, node, 1, 'indices', {
      kind: 'tensor',
      dtype: 'int64',
      shape: [...g.shapeOf(node.output(0))],
    });
  if (g.opset < 16 || g.forms.maxPoolOverlap === 'onehot')
    return maxPoolOneHotGrad(g, node, ind, dy, xs, O, geo);
  const dt = g.dtypeOf(x);
  const zeros = e.op('ConstantOfShape', [e.ints([prod(xs)])], { value: A.tensor(Tensor.from(dt, [1], [0])) });
  const sc = e.op('ScatterElements', [zeros, e.reshape(ind, [-1]), e.reshape(dy, [-1])], {
    axis: A.int(0),
    reduction: A.string('add'),
  });
  return e.reshape(sc, xs);
}

/**
 * AveragePool: each output gradient divided by its window's divisor (a constant computed from the static shapes:
 * the padded window size or the count of real input elements, clipped the way ORT clips ceil-mode windows), then
 * spread back over its window by a single-channel ConvTranspose with a ones kernel.
 */
function averagePoolGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy || !g.needsGrad(0)) return [null];
  const x = node.input(0);
  const xs = knownDims(g, x, 1, 'the AveragePool input');
  const ys = knownDims(g, node.output(0), 1, 'the AveragePool output');
  const e = g.e;
  const dt = g.dtypeOf(x);
  const S = numsFrom(xs, 2);
  const O = numsFrom(ys, 2);
  const sp = S.length;
  const kernel = node.attrInts('kernel_shape') ?? g.fail('kernel_shape is missing');
  const geo = windowGeo(g, node, S, kernel);
  const include = node.attrInt('count_include_pad', 0) === 1;
  // per-axis divisor factors: the window is a product of per-axis ranges
  const factors = range(0, sp).map((i) =>
    range(0, O[i]!).map((o) => {
      let c = 0;
      for (let j = 0; j < kernel[i]!; j++) {
        const p = o * geo.strides[i]! - geo.pb[i]! + j * geo.dilations[i]!;
        if (include ? p < S[i]! + geo.pe[i]! : p >= 0 && p < S[i]!) c++;
      }
      return c;
    }),
  );
  let scaled: Value;
  if (factors.every((f) => f.every((c) => c === f[0]))) {
    scaled = e.mul(dy, e.scalar(1 / prod(factors.map((f) => f[0]!)), dt));
  } else {
    const inv: number[] = [];
    const idx = new Array<number>(sp).fill(0);
    for (let n = prod(O); n > 0; n--) {
      const c = prod(idx.map((o, i) => factors[i]![o]!));
      inv.push(c ? 1 / c : 0);
      for (let i = sp - 1; i >= 0; i--) {
        if (++idx[i]! < O[i]!) break;
        idx[i] = 0;
      }
    }
    scaled = e.mul(dy, e.constant(Tensor.from(dt, O, inv), 'inv_count'));
  }
  const C = xs[1] as number;
  const ones = e.constant(
    Tensor.from(dt, [1, 1, ...kernel], new Array<number>(prod(kernel)).fill(1)),
    'ones_kernel',
  );
  const flat = e.reshape(scaled, [-1, 1, ...O]);
  const back = transposeBack(e, flat, ones, S, O, { ...geo, group: 1 });
  return [e.reshape(back, [-1, C, ...S])];
}

function globalAveragePoolGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy || !g.needsGrad(0)) return [null];
  const x = node.input(0);
  const xs = knownDims(g, x, 1, 'the GlobalAveragePool input');
  const e = g.e;
  const P = prod(numsFrom(xs, 2));
  const scaled = e.mul(dy, e.scalar(1 / P, g.dtypeOf(x)));
  return [e.op('Expand', [scaled, e.shape(x)])];
}

// ---------------------------------------------------------------- normalization gradients

/**
 * BatchNormalization. Inference form (fixed statistics): Y = X·a + b with a = scale/√(var+ε) per channel.
 * Training form (training_mode=1, or opset < 14 with the statistics outputs present): the batch mean and
 * (biased) variance (read from the node's outputs when momentum is 0, else recomputed) and the gradient goes
 * through them:
 *   ∂L/∂X = scale·inv/M · (M·dY − Σ dY − x̂ Σ dY·x̂),  x̂ = (X − μ)·inv,  M = N·spatial.
 * The running-statistics outputs carry no gradient (the rule refuses one flowing into them).
 */
function batchNormGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy) return [null, null, null, null, null];
  if (node.outputs.slice(1).some((o, i) => o && g.outputGrad(i + 1)))
    g.fail('a gradient flows into its running mean/variance outputs');
  const training =
    g.opset >= 14 ? node.attrInt('training_mode', 0) === 1 : node.outputs.slice(1).some(Boolean);
  if (g.opset < 9 && node.attrInt('spatial', 1) !== 1) g.fail('spatial=0 is not supported');
  const e = g.e;
  const x = node.input(0);
  const xs = knownDims(g, x, 1, 'the BatchNormalization input');
  const r = xs.length;
  const axes = [0, ...range(2, r)];
  const dt = g.dtypeOf(x);
  const eps = node.attrFloat('epsilon', 1e-5);
  const scaleB = perChannel(e, node.input(1), r);
  const sumDy = r >= 3 ? channelSum(g, dy, xs, true) : e.reduceSum(dy, axes, true);
  const out: (Value | null)[] = [null, null, null, null, null];
  if (g.needsGrad(2)) out[2] = e.reshape(sumDy, [-1]);

  if (!training) {
    const meanB = perChannel(e, node.input(3), r);
    const varEps = e.add(perChannel(e, node.input(4), r), e.scalar(eps, dt));
    const inv = e.op('Reciprocal', [e.op('Sqrt', [varEps])]);
    const xc = e.sub(x, meanB);
    const a = e.mul(scaleB, inv);
    if (g.needsGrad(0)) out[0] = e.mul(dy, a);
    const needsXc = g.needsGrad(1) || g.needsGrad(4);
    const sumDyXc = needsXc ? e.reduceSum(e.mul(dy, xc), axes, true) : null;
    if (g.needsGrad(1)) out[1] = e.reshape(e.mul(sumDyXc!, inv), [-1]);
    if (g.needsGrad(3)) out[3] = e.reshape(e.neg(e.mul(sumDy, a)), [-1]);
    if (g.needsGrad(4))
      // ∂/∂var of scale·xc·(var+ε)^(-1/2) = −½·scale·xc·inv³
      out[4] = e.reshape(
        e.mul(e.mul(sumDyXc!, scaleB), e.mul(e.scalar(-0.5, dt), e.mul(inv, e.mul(inv, inv)))),
        [-1],
      );
    return out;
  }

  // training form: input_mean / input_var only feed the running statistics, which carry no gradient.
  // With momentum 0 (how src/train/mode.ts runs it) the node's outputs 1/2 are exactly the batch mean and biased
  // variance ORT normalised with: read them instead of recomputing two reductions and a full-size product.
  const direct = g.opset >= 14 && node.attrFloat('momentum', 0.9) === 0 && node.outputs[1] && node.outputs[2];
  const stat = (i: number) => {
    const v = perChannel(e, node.output(i), r);
    return g.dtypeOf(node.output(i)) === dt ? v : e.cast(v, dt);
  };
  const mean = direct ? stat(1) : e.reduceMean(x, axes, true);
  // with the statistics read from the node, the centred input xc = X − μ is never formed (one full-size pass
  // fewer): Σ dY·xc = Σ dY·X − μ·Σ dY, and b·xc in dX below becomes b·X with −b·μ folded into the per-channel c
  const fold = direct && r >= 3;
  const xc = fold ? null : e.sub(x, mean);
  const variance = direct ? stat(2) : e.reduceMean(e.mul(xc!, xc!), axes, true);
  const inv = e.op('Reciprocal', [e.op('Sqrt', [e.add(variance, e.scalar(eps, dt))])]);
  const sumDyXc = fold
    ? e.sub(channelSum(g, e.mul(dy, x), xs, true), e.mul(mean, sumDy))
    : r >= 3
      ? channelSum(g, e.mul(dy, xc!), xs, true)
      : e.reduceSum(e.mul(dy, xc!), axes, true); // Σ dY·x̂ = inv·Σ dY·xc
  if (g.needsGrad(1)) out[1] = e.reshape(e.mul(sumDyXc, inv), [-1]);
  if (g.needsGrad(0)) {
    // dX = (a·dY + c) + b·xc with a = scale·inv, b = −a·inv²·Σ(dY·xc)/M, c = −a·Σ(dY)/M (per channel);
    // a·dY + c is one inference-form BatchNormalization (mean 0, var 1, ε 0): one pass instead of Mul + Add
    const a = e.mul(scaleB, inv);
    const aM = e.div(a, countOf(g, x, axes));
    const b = e.neg(e.mul(e.mul(aM, e.mul(inv, inv)), sumDyXc));
    const c0 = e.neg(e.mul(aM, sumDy));
    const c = fold ? e.sub(c0, e.mul(b, mean)) : c0;
    out[0] = e.add(
      channelAffine(e, dy, e.reshape(a, [-1]), e.reshape(c, [-1]), xs[1] as number, dt),
      e.mul(fold ? x : xc!, b),
    );
  }
  return out;
}

/** s·t + β per channel (s, β of shape [C]) as one inference-form BatchNormalization with mean 0, var 1, ε 0. */
function channelAffine(e: Emitter, t: Value, s: Value, beta: Value, C: number, dt: DType): Value {
  const zeros = e.constant(Tensor.from(dt, [C], new Array<number>(C).fill(0)), 'zeros');
  const ones = e.constant(Tensor.from(dt, [C], new Array<number>(C).fill(1)), 'ones');
  return e.op('BatchNormalization', [t, s, beta, zeros, ones], { epsilon: A.float(0) });
}

/** Number of elements of `x` over `axes` as a scalar of x's dtype (a constant when those dims are known). */
function countOf(g: GradCtx, x: Value, axes: number[]): Value {
  const e = g.e;
  const dt = g.dtypeOf(x);
  const dims = axes.map((a) => g.shapeOf(x)[a]!);
  if (dims.every((d): d is number => typeof d === 'number')) return e.scalar(prod(dims), dt);
  const n = e.op('ReduceProd', [e.op('Gather', [e.shape(x), e.ints(axes)])], { keepdims: A.int(0) });
  return e.cast(n, dt);
}

/** ∂L/∂X of x̂·γ (x̂ = (X − μ)·inv over `axes`): inv · (gx − mean(gx) − x̂·mean(gx·x̂)), gx = dY·γ. */
function normInputGrad(e: Emitter, gx: Value, xhat: Value, inv: Value, axes: number[]): Value {
  const m1 = e.reduceMean(gx, axes, true);
  const m2 = e.reduceMean(e.mul(gx, xhat), axes, true);
  return e.mul(inv, e.sub(e.sub(gx, m1), e.mul(xhat, m2)));
}

/**
 * LayerNormalization over axes [axis, rank). Uses the node's Mean and InvStdDev outputs, adding them to the
 * forward node when absent (ORT computes them anyway); scale/bias gradients are summed to their shapes.
 */
function layerNormGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy) return [null, null, null];
  if (g.outputGrad(1) || g.outputGrad(2)) g.fail('a gradient flows into its Mean/InvStdDev outputs');
  const e = g.e;
  const x = node.input(0);
  const xs = g.shapeOf(x);
  const r = xs.length;
  let axis = node.attrInt('axis', -1);
  if (axis < 0) axis += r;
  const axes = range(axis, r);
  const dt = g.dtypeOf(x);
  const stash = dtypeFromCode(node.attrInt('stash_type', 1)) ?? 'float32';
  const statShape = [...xs.slice(0, axis), ...new Array<Dim>(r - axis).fill(1)];
  const statType: TensorType = { kind: 'tensor', dtype: stash, shape: statShape };
  let mean = node.outputs[1] ?? addForwardOutput(g, node, 1, 'mean', statType);
  let inv =
    node.outputs[2] ?? addForwardOutput(g, node, 2, 'inv_std', { ...statType, shape: [...statShape] });
  if (stash !== dt) {
    mean = e.cast(mean, dt);
    inv = e.cast(inv, dt);
  }
  const xhat = e.mul(e.sub(x, mean), inv);
  const out: (Value | null)[] = [null, null, null];
  if (g.needsGrad(0)) out[0] = normInputGrad(e, e.mul(dy, node.input(1)), xhat, inv, axes);
  if (g.needsGrad(1)) out[1] = g.unbroadcast(e.mul(dy, xhat), 1);
  if (node.inputs[2] && g.needsGrad(2)) out[2] = g.unbroadcast(dy, 2);
  return out;
}

/** InstanceNormalization: per-(sample, channel) statistics over the spatial axes, recomputed here. */
function instanceNormGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy) return [null, null, null];
  const e = g.e;
  const x = node.input(0);
  const xs = knownDims(g, x, 1, 'the InstanceNormalization input');
  const r = xs.length;
  const dt = g.dtypeOf(x);
  const sAxes = range(2, r);
  const eps = node.attrFloat('epsilon', 1e-5);
  const mean = e.reduceMean(x, sAxes, true);
  const xc = e.sub(x, mean);
  const inv = e.op('Reciprocal', [
    e.op('Sqrt', [e.add(e.reduceMean(e.mul(xc, xc), sAxes, true), e.scalar(eps, dt))]),
  ]);
  const xhat = e.mul(xc, inv);
  const out: (Value | null)[] = [null, null, null];
  if (g.needsGrad(0)) out[0] = normInputGrad(e, e.mul(dy, perChannel(e, node.input(1), r)), xhat, inv, sAxes);
  if (g.needsGrad(1)) out[1] = e.reduceSum(e.mul(dy, xhat), [0, ...sAxes], false);
  if (g.needsGrad(2)) out[2] = biasGrad(g, dy, xs);
  return out;
}
