// Matrix products: MatMul, Gemm, Einsum, and com.microsoft FusedMatMul.
import type { Dim, Node } from '../ir/index.js';
import { type InferCtx, register } from './registry.js';
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
  sinceVersion: [1, 9, 13],
  sameDtype: 'all',
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
  sinceVersion: [1, 6, 7, 9, 11, 13],
  sameDtype: 'all',
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
