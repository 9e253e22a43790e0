// shape-simplify: rules for chains of shape-only ops (shapes come from the op registry's inference, run first).
//   reshape-reshape        Reshape(Reshape|Flatten(x), s) → Reshape(x, s)      (s constant, no 0 copying a dim)
//   noop-reshape/-flatten/-expand   the op's inferred output shape equals its input shape → removed
//   transpose-transpose    Transpose(Transpose(x, p), q) → Transpose(x, p∘q), or x when that is the identity
//   transpose-identity     Transpose with perm [0, 1, …] → removed
//   unsqueeze-squeeze      Squeeze(Unsqueeze(x, a), a) → x;  squeeze-unsqueeze  Unsqueeze(Squeeze(x, a), a) → x
//   cast-same-type         Cast/CastLike to the dtype the input already has → removed
// Removed nodes keep graph output names (see `bypass`).
import type { Node, Value } from '../../ir/index.js';
import { A, dtypeFromCode } from '../../ir/index.js';
import { definePass } from '../manager.js';
import { applyRules, rule, type Rule, type RuleContext } from '../rule.js';
import { constInts } from '../../ops/index.js';
import { bypass, canBypass, isOp, sameShape, withShapes } from '../util.js';

/** The producer of input `i` of `n` when it is one of `ops` in the same graph. */
function producerOf(n: Node, i: number, ...ops: string[]): Node | undefined {
  const v = n.inputs[i];
  const p = v?.producer;
  return p && isOp(p, ...ops) && p.graph === n.graph ? p : undefined;
}

interface Bypass {
  node: Node;
  out: Value;
  to: Value;
}

const done = (b: Bypass, what: string): string | false =>
  bypass(b.out, b.to) ? `${what} ${b.node.opType} "${b.node.label}"` : false;

export const reshapeReshape = rule<{ outer: Node; inner: Node }>({
  name: 'reshape-reshape',
  anchors: ['Reshape'],
  match(outer) {
    const inner = producerOf(outer, 0, 'Reshape', 'Flatten');
    if (!inner || !inner.inputs[0]) return undefined;
    const s = constInts(outer.inputs[1], { fixedOnly: true });
    if (!s || (s.includes(0) && outer.attrInt('allowzero', 0) === 0)) return undefined;
    return { outer, inner };
  },
  rewrite({ outer, inner }) {
    outer.setInput(0, inner.input(0));
    return `Reshape "${outer.label}" reads the input of ${inner.opType} "${inner.label}"`;
  },
});

export const noopShapeOp = rule<Bypass>({
  name: 'noop-shape-op',
  anchors: ['Reshape', 'Flatten', 'Expand'],
  match(node) {
    const x = node.inputs[0];
    const out = node.outputs[0];
    if (!x || !out || !canBypass(out, x)) return undefined;
    if (x.dtype === undefined || x.dtype !== out.dtype || !sameShape(x.shape, out.shape)) return undefined;
    return { node, out, to: x };
  },
  rewrite(b) {
    return done(b, 'removed no-op');
  },
});

function perm(n: Node): number[] | undefined {
  const p = n.attrInts('perm');
  if (p) return p;
  const r = n.inputs[0]?.shape?.length;
  return r === undefined ? undefined : Array.from({ length: r }, (_, i) => r - 1 - i);
}

const isIdentityPerm = (p: number[]) => p.every((x, i) => x === i);

export const transposeTranspose = rule<{ outer: Node; inner: Node; q: number[] }>({
  name: 'transpose-transpose',
  anchors: ['Transpose'],
  match(outer) {
    const inner = producerOf(outer, 0, 'Transpose');
    if (!inner || !inner.inputs[0]) return undefined;
    const p1 = perm(inner);
    const p2 = perm(outer);
    if (!p1 || !p2 || p1.length !== p2.length) return undefined;
    const q = p2.map((i) => p1[i]!);
    if (isIdentityPerm(q) && !canBypass(outer.output(0), inner.input(0))) return undefined;
    return { outer, inner, q };
  },
  rewrite({ outer, inner, q }) {
    if (isIdentityPerm(q))
      return bypass(outer.output(0), inner.input(0))
        ? `Transpose "${inner.label}" ∘ "${outer.label}" cancel`
        : false;
    outer.setInput(0, inner.input(0));
    outer.setAttr('perm', A.ints(q));
    return `Transpose "${inner.label}" ∘ "${outer.label}" → one Transpose [${q}]`;
  },
});

export const transposeIdentity = rule<Bypass>({
  name: 'transpose-identity',
  anchors: ['Transpose'],
  match(node) {
    const p = node.attrInts('perm');
    const x = node.inputs[0];
    const out = node.outputs[0];
    if (!p || !isIdentityPerm(p) || !x || !out || !canBypass(out, x)) return undefined;
    return { node, out, to: x };
  },
  rewrite(b) {
    return done(b, 'removed identity');
  },
});

/** Axes of a Squeeze/Unsqueeze (attribute before opset 13, input from 13); undefined when not constant/absent. */
function axesOf(n: Node, ctx: RuleContext): number[] | undefined {
  if (ctx.opset >= 13) return n.inputs[1] ? constInts(n.inputs[1], { fixedOnly: true }) : undefined;
  return n.attrInts('axes');
}

const norm = (axes: number[], rank: number | undefined): number[] | undefined => {
  if (axes.some((a) => a < 0) && rank === undefined) return undefined;
  return axes.map((a) => (a < 0 ? a + rank! : a)).sort((x, y) => x - y);
};

const sameAxes = (a: number[] | undefined, b: number[] | undefined) =>
  !!a && !!b && a.length === b.length && a.every((x, i) => x === b[i]);

export const unsqueezeSqueeze = rule<Bypass>({
  name: 'unsqueeze-squeeze',
  anchors: ['Squeeze'],
  match(sq, ctx) {
    const un = producerOf(sq, 0, 'Unsqueeze');
    if (!un || !un.inputs[0] || !sq.outputs[0]) return undefined;
    const a = axesOf(un, ctx);
    const b = axesOf(sq, ctx);
    if (!a || !b) return undefined;
    const xr = un.inputs[0].shape?.length;
    const r = xr === undefined ? undefined : xr + a.length;
    if (!sameAxes(norm(a, r), norm(b, r))) return undefined;
    const b0 = { node: sq, out: sq.outputs[0], to: un.inputs[0] };
    return canBypass(b0.out, b0.to) ? b0 : undefined;
  },
  rewrite(b) {
    return done(b, 'cancelled Unsqueeze→');
  },
});

export const squeezeUnsqueeze = rule<Bypass>({
  name: 'squeeze-unsqueeze',
  anchors: ['Unsqueeze'],
  match(un, ctx) {
    const sq = producerOf(un, 0, 'Squeeze');
    if (!sq || !sq.inputs[0] || !un.outputs[0]) return undefined;
    const a = axesOf(un, ctx);
    const b = axesOf(sq, ctx);
    if (!a || !b) return undefined;
    const r = sq.inputs[0].shape?.length;
    if (!sameAxes(norm(a, r), norm(b, r))) return undefined;
    const b0 = { node: un, out: un.outputs[0], to: sq.inputs[0] };
    return canBypass(b0.out, b0.to) ? b0 : undefined;
  },
  rewrite(b) {
    return done(b, 'cancelled Squeeze→');
  },
});

export const castSameType = rule<Bypass>({
  name: 'cast-same-type',
  anchors: ['Cast', 'CastLike'],
  match(node) {
    const x = node.inputs[0];
    const out = node.outputs[0];
    if (!x?.dtype || !out) return undefined;
    const to = node.opType === 'Cast' ? dtypeFromCode(node.attrInt('to', -1)) : node.inputs[1]?.dtype;
    if (to !== x.dtype || !canBypass(out, x)) return undefined;
    return { node, out, to: x };
  },
  rewrite(b) {
    return done(b, 'removed same-type');
  },
});

export const SHAPE_RULES: readonly Rule<any>[] = [
  reshapeReshape,
  noopShapeOp,
  transposeTranspose,
  transposeIdentity,
  unsqueezeSqueeze,
  squeezeUnsqueeze,
  castSameType,
];

export const shapeSimplify = definePass(
  'shape-simplify',
  'Simplify shape-op chains: Reshape∘Reshape, no-op Reshape/Flatten/Expand, Transpose∘Transpose, identity Transpose, Squeeze/Unsqueeze pairs, same-type Cast.',
  (m) => withShapes(m, (shapes) => applyRules(m, SHAPE_RULES, { shapes })),
  {},
);
