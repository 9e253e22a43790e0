// Neural-network ops: convolutions, pools, normalizations and recurrent layers.
import type { DType, Dim, Node, TensorType, Value } from '../ir/index.js';
import { dtypeFromCode } from '../ir/index.js';
import { type InferCtx, register } from './registry.js';
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
  sameDtype: 'all',
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt(x.dtype, convShape(node, ctx, x, ctx.inputType(1), ctx.optInputType(2)))];
  },
});

register({
  type: 'FusedConv',
  domain: 'com.microsoft',
  sinceVersion: [1],
  sameDtype: 'all',
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt(x.dtype, convShape(node, ctx, x, ctx.inputType(1), ctx.optInputType(2)))];
  },
});

register({
  type: 'ConvTranspose',
  sinceVersion: [1, 11, 22],
  sameDtype: 'all',
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
  sinceVersion: [1, 8, 10, 11, 12, 22],
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
  sinceVersion: [1, 7, 10, 11, 19, 22],
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    return [tt(x.dtype, poolShape(node, ctx, x, { ceil: ctx.opset >= 10, dilations: ctx.opset >= 19 }))];
  },
});

register({
  type: 'LpPool',
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

register({
  type: 'BatchNormalization',
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
  sinceVersion: [1, 6, 22],
  sameDtype: 'all',
  infer: (node, ctx) => {
    const x = ctx.inputType(0);
    channelCheck(ctx, node, x, [1, 2]);
    return [tt(x.dtype, x.shape)];
  },
});

register({
  type: 'LayerNormalization',
  sinceVersion: [17],
  sameDtype: [0, 1, 2],
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
