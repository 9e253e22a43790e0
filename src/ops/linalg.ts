// Matrix products: MatMul, Gemm, Einsum, and com.microsoft FusedMatMul.
import type { Dim, Emitter, Node, Value } from '../ir/index.js';
import { A } from '../ir/index.js';
import type { GradCtx, InferCtx } from './registry.js';
import { register } from './table.js';
import { pruneGemm, pruneMatMul } from './prune.js';
import { formatDims, mergeDim } from './sym.js';
import { broadcast, tt, unidirectional } from './util.js';

/** numpy matmul shape rule (1-D operands are promoted and the added dim removed). */
export function matmulShape(ctx: InferCtx, a: readonly Dim[] | null, b: readonly Dim[] | null): Dim[] | null {
  if (!a || !b) return null;
  if (a.length === 0 || b.length === 0)
    ctx.fail(`MatMul operands must have rank ≥ 1 (got ${formatDims(a)} and ${formatDims(b)})`);
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const k1 = a2[a2.length - 1]!;
  const k2 = b2[b2.length - 2]!;
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2)
    ctx.fail(`inner dims differ: ${formatDims(a)} × ${formatDims(b)} (${k1} vs ${k2})`);
  const batch = broadcast(ctx, [a2.slice(0, -2), b2.slice(0, -2)]);
  if (!batch) return null;
  const out = [...batch];
  if (a.length !== 1) out.push(a2[a2.length - 2]!);
  if (b.length !== 1) out.push(b2[b2.length - 1]!);
  return out;
}

register({
  type: 'MatMul',
  prune: pruneMatMul,
  sinceVersion: [1, 9, 13],
  sameDtype: 'all',
  grad: matmulGrad,
  // input 1 is a weight when constant; two activations (attention scores) are quantized only on request
  quant: { weightInputs: [1], activationInputs: [0], channelAxis: () => 1 },
  infer: (node, ctx) => {
    const a = ctx.inputType(0);
    const b = ctx.inputType(1);
    return [tt(a.dtype, matmulShape(ctx, a.shape, b.shape))];
  },
});

function transposeLast2(s: readonly Dim[] | null, yes: boolean): Dim[] | null {
  if (!s) return null;
  if (!yes || s.length < 2) return [...s];
  const o = [...s];
  [o[o.length - 2], o[o.length - 1]] = [o[o.length - 1]!, o[o.length - 2]!];
  return o;
}

register({
  type: 'FusedMatMul',
  domain: 'com.microsoft',
  sinceVersion: [1],
  sameDtype: 'all',
  grad: fusedMatmulGrad,
  infer: (node, ctx) => {
    const a = ctx.inputType(0);
    const b = ctx.inputType(1);
    if (node.attrInt('transBatchA', 0) || node.attrInt('transBatchB', 0)) return [tt(a.dtype, null)];
    const as = transposeLast2(a.shape, node.attrInt('transA', 0) === 1);
    const bs = transposeLast2(b.shape, node.attrInt('transB', 0) === 1);
    return [tt(a.dtype, matmulShape(ctx, as, bs))];
  },
});

/** Gemm-style [M, K] × [K, N] with transposes; validates ranks and the inner dim. */
export function gemmShape(
  ctx: InferCtx,
  node: Node,
  a: readonly Dim[] | null,
  b: readonly Dim[] | null,
  ai = 0,
  bi = 1,
): Dim[] {
  if (a && a.length !== 2) ctx.fail(`A must be 2-D, got ${formatDims(a)}`, node.inputs[ai] ?? undefined);
  if (b && b.length !== 2) ctx.fail(`B must be 2-D, got ${formatDims(b)}`, node.inputs[bi] ?? undefined);
  const ta = node.attrInt('transA', 0) === 1;
  const tb = node.attrInt('transB', 0) === 1;
  const m = a ? a[ta ? 1 : 0]! : null;
  const k1 = a ? a[ta ? 0 : 1]! : null;
  const k2 = b ? b[tb ? 1 : 0]! : null;
  const n = b ? b[tb ? 0 : 1]! : null;
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2)
    ctx.fail(
      `inner dims differ: A ${formatDims(a)}${ta ? 'ᵀ' : ''} × B ${formatDims(b)}${tb ? 'ᵀ' : ''} (${k1} vs ${k2})`,
      node.inputs[bi] ?? undefined,
    );
  return [m, n];
}

register({
  type: 'Gemm',
  prune: pruneGemm,
  sinceVersion: [1, 6, 7, 9, 11, 13],
  sameDtype: 'all',
  grad: gemmGrad,
  quant: {
    weightInputs: [1],
    activationInputs: [0],
    biasInput: 2,
    channelAxis: (n) => (n.attrInt('transB', 0) ? 0 : 1),
  },
  infer: (node, ctx) => {
    const a = ctx.inputType(0);
    const b = ctx.inputType(1);
    const out = gemmShape(ctx, node, a.shape, b.shape);
    const c = ctx.optInputType(2);
    if (!ctx.hasInput(2) && ctx.opset < 11) ctx.fail('input C is required before opset 11', node.inputs[0]!);
    if (c?.shape) unidirectional(ctx, out, c.shape, `C`);
    return [tt(a.dtype, out)];
  },
});

// ---------------------------------------------------------------- Einsum

register({
  type: 'Einsum',
  sinceVersion: [12],
  sameDtype: 'all',
  infer: (node, ctx) => {
    const eq = node.attrString('equation');
    if (!eq) ctx.fail('required attribute "equation" is missing', 'equation');
    const ins = node.inputs.map((_, i) => ctx.inputType(i));
    const dtype = ins[0]!.dtype;
    const [lhs, rhs] = eq!.replace(/\s+/g, '').split('->') as [string, string | undefined];
    const terms = lhs.split(',');
    if (terms.length !== ins.length)
      ctx.fail(`equation "${eq}" names ${terms.length} operands; the node has ${ins.length}`, 'equation');
    if (ins.some((t) => !t.shape)) return [tt(dtype, null)];
    const letters = new Map<string, Dim>();
    const counts = new Map<string, number>();
    const ellipses: Dim[][] = [];
    terms.forEach((term, k) => {
      const shape = ins[k]!.shape!;
      const hasEll = term.includes('...');
      const labels = term.replace('...', '').split('');
      if (labels.some((l) => !/[a-zA-Z]/.test(l)))
        ctx.fail(`equation "${eq}" has an invalid label in "${term}"`, 'equation');
      const nEll = shape.length - labels.length;
      if (nEll < 0 || (!hasEll && nEll !== 0))
        ctx.fail(`term "${term}" does not fit input ${k} of shape ${formatDims(shape)}`, node.inputs[k]!);
      const before = hasEll ? term.indexOf('...') : labels.length;
      labels.forEach((l, j) => {
        const d = shape[j < before ? j : j + nEll]!;
        const prev = letters.get(l);
        if (typeof prev === 'number' && typeof d === 'number' && prev !== d && prev !== 1 && d !== 1)
          ctx.fail(`label "${l}" has sizes ${prev} and ${d}`, node.inputs[k]!);
        letters.set(l, prev === undefined ? d : prev === 1 ? d : d === 1 ? prev : mergeDim(prev, d));
        counts.set(l, (counts.get(l) ?? 0) + 1);
      });
      if (hasEll) ellipses.push(shape.slice(before, before + nEll));
    });
    const ell = broadcast(ctx, ellipses) ?? [];
    const out =
      rhs ??
      (ellipses.length ? '...' : '') +
        [...counts.keys()]
          .filter((l) => counts.get(l) === 1)
          .sort()
          .join('');
    const shape: Dim[] = [];
    for (let i = 0; i < out.length; i++) {
      if (out.startsWith('...', i)) {
        shape.push(...ell);
        i += 2;
        continue;
      }
      const l = out[i]!;
      if (!letters.has(l))
        ctx.fail(`output label "${l}" does not appear in the inputs of "${eq}"`, 'equation');
      shape.push(letters.get(l)!);
    }
    return [tt(dtype, shape)];
  },
});

// ================================================================ gradient rules

/** Transpose the last two axes of a value of rank `r`. */
function swapLast2(e: Emitter, v: Value, r: number): Value {
  const perm = Array.from({ length: r }, (_, i) => i);
  [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
  return e.transpose(v, perm);
}

/**
 * Gemm: Y = α·op(A)·op(B) + β·C. Each input gradient is one Gemm whose transposes absorb those of the forward
 * (no Transpose nodes); C's gradient is β·dY summed over the axes C was broadcast along.
 */
function gemmGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy) return [null, null, null];
  const e = g.e;
  const a = node.input(0);
  const b = node.input(1);
  const ta = node.attrInt('transA', 0) === 1;
  const tb = node.attrInt('transB', 0) === 1;
  const alpha = node.attrFloat('alpha', 1);
  const beta = node.attrFloat('beta', 1);
  const dt = g.dtypeOf(node.output(0));
  // C is optional from opset 11; before that a scalar zero stands in (broadcast explicitly before opset 7)
  const noC = g.opset >= 11 ? [] : [e.scalar(0, dt)];
  const gemm = (x: Value, y: Value, tx: boolean, ty: boolean) =>
    e.op('Gemm', [x, y, ...noC], {
      transA: A.int(tx ? 1 : 0),
      transB: A.int(ty ? 1 : 0),
      ...(alpha !== 1 ? { alpha: A.float(alpha) } : {}),
      ...(g.opset < 7 ? { broadcast: A.int(1) } : {}),
    });
  const out: (Value | null)[] = [null, null, null];
  // op(A) = A or Aᵀ; d op(A) = α dY op(B)ᵀ; dA = d op(A) or its transpose = α op(B) dYᵀ
  if (g.needsGrad(0)) out[0] = ta ? gemm(b, dy, tb, true) : gemm(dy, b, false, !tb);
  // d op(B) = α op(A)ᵀ dY; dB = that or α dYᵀ op(A)
  if (g.needsGrad(1)) out[1] = tb ? gemm(dy, a, true, ta) : gemm(a, dy, !ta, false);
  if (node.inputs[2] && g.needsGrad(2)) {
    let dc = g.unbroadcast(dy, 2);
    if (beta !== 1) dc = e.mul(dc, e.scalar(beta, dt));
    out[2] = dc;
  }
  return out;
}

/**
 * MatMul with numpy semantics: 1-D operands are promoted ([K] → [1, K] for A, [K, 1] for B) and dY gets the
 * removed axis back; dA = dY·Bᵀ and dB = Aᵀ·dY are then summed over broadcast batch axes and reshaped back.
 */
function matmulGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy) return [null, null];
  const e = g.e;
  const a = node.input(0);
  const b = node.input(1);
  const as = g.shapeOf(a);
  const bs = g.shapeOf(b);
  if (as.length === 1 && bs.length === 1) {
    // dot product: dY is a scalar
    return [g.needsGrad(0) ? e.mul(dy, b) : null, g.needsGrad(1) ? e.mul(dy, a) : null];
  }
  const a2 = as.length === 1 ? e.unsqueeze(a, [0]) : a;
  const b2 = bs.length === 1 ? e.unsqueeze(b, [1]) : b;
  const a2s: Dim[] = as.length === 1 ? [1, as[0]!] : as;
  const b2s: Dim[] = bs.length === 1 ? [bs[0]!, 1] : bs;
  const ys = g.shapeOf(node.output(0));
  let dy2 = dy;
  let y2s: Dim[] = ys;
  if (as.length === 1) {
    dy2 = e.unsqueeze(dy2, [ys.length - 1]);
    y2s = [...ys.slice(0, -1), 1, ys[ys.length - 1]!];
  }
  if (bs.length === 1) {
    dy2 = e.unsqueeze(dy2, [y2s.length]);
    y2s = [...y2s, 1];
  }
  const r = y2s.length;
  const batch = y2s.slice(0, -2);
  const out: (Value | null)[] = [null, null];
  if (g.needsGrad(0)) {
    // [batch…, M, K]
    const full = e.op('MatMul', [dy2, swapLast2(e, b2, b2s.length)]);
    let ga = reduceTo(g, full, [...batch, y2s[r - 2]!, a2s[a2s.length - 1]!], a2s);
    if (as.length === 1) ga = e.reshape(ga, [-1]);
    out[0] = ga;
  }
  const K = b2s[0];
  const Nb = b2s[1];
  if (
    g.needsGrad(1) &&
    b2s.length === 2 &&
    a2s.length > 2 &&
    typeof K === 'number' &&
    typeof Nb === 'number'
  ) {
    // 2-D B under a batched A (a Linear layer on [batch…, M, K] activations): dB = Σ_batch Aᵀ·dY is ONE Gemm over
    // the rows of every batch, [batch·M, K]ᵀ·[batch·M, N], instead of a batched MatMul and a ReduceSum over batch
    let gb = e.op('Gemm', [e.reshape(a2, [-1, K]), e.reshape(dy2, [-1, Nb])], { transA: A.int(1) });
    if (bs.length === 1) gb = e.reshape(gb, [-1]);
    out[1] = gb;
  } else if (g.needsGrad(1)) {
    // [batch…, K, N]
    const full = e.op('MatMul', [swapLast2(e, a2, a2s.length), dy2]);
    let gb = reduceTo(g, full, [...batch, b2s[b2s.length - 2]!, y2s[r - 1]!], b2s);
    if (bs.length === 1) gb = e.reshape(gb, [-1]);
    out[1] = gb;
  }
  return out;
}

/** Sum `v` (shape `from`, the broadcast batch dims + a matrix) down to `to` (numpy broadcasting in reverse). */
function reduceTo(g: GradCtx, v: Value, from: Dim[], to: Dim[]): Value {
  const e = g.e;
  const lead = from.length - to.length;
  const axes: number[] = [];
  for (let k = 0; k < lead; k++) axes.push(k);
  for (let k = 0; k < to.length - 2; k++) {
    const f = from[k + lead]!;
    const t = to[k]!;
    if (t === f) continue;
    if (t === 1) axes.push(k + lead);
    else if (typeof t === 'number' && typeof f !== 'number') continue;
    else g.fail(`cannot tell how batch dim ${k} (${String(t)}) broadcasts to ${String(f)}`);
  }
  if (!axes.length) return v;
  let r = e.reduceSum(v, axes, true);
  if (lead > 0)
    r = e.squeeze(
      r,
      axes.filter((x) => x < lead),
    );
  return r;
}

/**
 * com.microsoft FusedMatMul: Y = α·op(A)·op(B) with transA/transB on the last two axes (rank ≥ 2 operands,
 * no transBatch). The gradients are FusedMatMuls with the transposes folded in, summed over broadcast axes.
 */
function fusedMatmulGrad(node: Node, g: GradCtx): (Value | null)[] {
  const dy = g.outputGrad(0);
  if (!dy) return [null, null];
  if (node.attrInt('transBatchA', 0) || node.attrInt('transBatchB', 0))
    g.fail('transBatchA/transBatchB are not supported');
  const e = g.e;
  const a = node.input(0);
  const b = node.input(1);
  const as = g.shapeOf(a);
  const bs = g.shapeOf(b);
  if (as.length < 2 || bs.length < 2) g.fail('1-D operands are not supported');
  const ta = node.attrInt('transA', 0) === 1;
  const tb = node.attrInt('transB', 0) === 1;
  const alpha = node.attrFloat('alpha', 1);
  const ys = g.shapeOf(node.output(0));
  const batch = ys.slice(0, -2);
  const fmm = (x: Value, y: Value, tx: boolean, ty: boolean) =>
    e.op(
      'FusedMatMul',
      [x, y],
      { transA: A.int(tx ? 1 : 0), transB: A.int(ty ? 1 : 0), alpha: A.float(alpha) },
      { domain: 'com.microsoft' },
    );
  const last2 = (s: Dim[]) => s.slice(-2);
  const out: (Value | null)[] = [null, null];
  if (g.needsGrad(0)) {
    const full = ta ? fmm(b, dy, tb, true) : fmm(dy, b, false, !tb);
    out[0] = reduceTo(g, full, [...batch, ...last2(as)], as);
  }
  if (g.needsGrad(1)) {
    const full = tb ? fmm(dy, a, true, ta) : fmm(a, dy, !ta, false);
    out[1] = reduceTo(g, full, [...batch, ...last2(bs)], bs);
  }
  return out;
}
