// Control flow: If and Loop. Their bodies are inferred through `ctx.inferSubgraph` (shape errors inside a body
// become report problems, since a branch that never runs need not fit). An If whose condition is known at inference
// time (e.g. it compares a static dim with a constant) takes the types — and known values — of the branch that runs.
import type { Graph, Node, ValueType } from '../ir/index.js';
import type { InferCtx, SymValue } from './registry.js';
import { register } from './table.js';
import { formatDims } from './sym.js';
import { mergeShapes, tt } from './util.js';

function graphAttr(ctx: InferCtx, node: Node, name: string): Graph {
  const a = node.attr(name);
  if (!a || a.type !== 'graph') ctx.fail(`required graph attribute "${name}" is missing`, name);
  return a.value;
}

/** The union of two possible types of one value. */
function unionType(a: ValueType | undefined, b: ValueType | undefined): ValueType | undefined {
  if (!a || !b) {
    const t = a ?? b;
    return t?.kind === 'tensor' ? tt(t.dtype, null) : undefined;
  }
  if (a.kind !== 'tensor' || b.kind !== 'tensor') return a.kind === b.kind ? a : undefined;
  if (a.dtype !== b.dtype) return undefined;
  return tt(a.dtype, mergeShapes(a.shape, b.shape));
}

function ifCond(ctx: InferCtx): boolean | undefined {
  const c = ctx.symbolicValue(0);
  if (!c || c.length !== 1 || typeof c[0] !== 'number') return undefined;
  return c[0] !== 0;
}

register({
  type: 'If',
  sinceVersion: [1, 11, 13, 16, 19, 21],
  check: (n, ins) =>
    ins[0] && ins[0].dtype !== 'bool'
      ? [
          {
            kind: 'dtype-mismatch',
            message: `Node "${n.label}" (If): condition "${n.inputs[0]!.name}" is ${ins[0].dtype}; it must be bool`,
          },
        ]
      : [],
  infer: (node, ctx) => {
    const thenG = graphAttr(ctx, node, 'then_branch');
    const elseG = graphAttr(ctx, node, 'else_branch');
    const m = node.outputs.length;
    if (thenG.outputs.length !== m || elseG.outputs.length !== m)
      ctx.fail(
        `branches have ${thenG.outputs.length} and ${elseG.outputs.length} outputs; the node has ${m}`,
      );
    const c = ctx.symbolicValue(0) ? ifCond(ctx) : undefined;
    if (c !== undefined) return ctx.inferSubgraph(c ? thenG : elseG, []);
    const a = ctx.inferSubgraph(thenG, []);
    const b = ctx.inferSubgraph(elseG, []);
    return node.outputs.map((_, i) => unionType(a[i], b[i]));
  },
  value: (node, ctx) => {
    const c = ifCond(ctx);
    if (c === undefined) return [];
    const g = graphAttr(ctx, node, c ? 'then_branch' : 'else_branch');
    return node.outputs.map((_, i) => ctx.subgraphOutputValue(g, i) as SymValue | undefined);
  },
});

register({
  type: 'Loop',
  sinceVersion: [1, 11, 13, 16, 19, 21],
  infer: (node, ctx) => {
    const body = graphAttr(ctx, node, 'body');
    const nCarried = node.inputs.length - 2;
    if (nCarried < 0)
      ctx.fail('Loop needs the M and cond inputs (possibly omitted) before the loop-carried values');
    if (body.inputs.length !== nCarried + 2)
      ctx.fail(
        `body has ${body.inputs.length} inputs; expected ${nCarried + 2} (iteration, cond, ${nCarried} carried)`,
      );
    const nScan = body.outputs.length - 1 - nCarried;
    if (nScan < 0) ctx.fail(`body has ${body.outputs.length} outputs; expected at least ${nCarried + 1}`);
    if (node.outputs.length > nCarried + nScan)
      ctx.fail(`node has ${node.outputs.length} outputs; the body gives ${nCarried + nScan}`);
    let carried: (ValueType | undefined)[] = [];
    for (let i = 0; i < nCarried; i++) carried.push(ctx.optInputType(2 + i));
    const inputs = () => [tt('int64', []), tt('bool', []), ...carried];
    let outs = ctx.inferSubgraph(body, inputs());
    // a carried value may change shape from one iteration to the next: widen and infer again
    const widened = carried.map((t, i) => unionType(t, outs[1 + i]));
    if (widened.some((t, i) => JSON.stringify(t) !== JSON.stringify(carried[i]))) {
      carried = widened;
      outs = ctx.inferSubgraph(body, inputs());
      carried = carried.map((t, i) => unionType(t, outs[1 + i]));
    }
    const trips = ctx.hasInput(0) && !ctx.hasInput(1) ? (ctx.symbolicValue(0)?.[0] ?? null) : null;
    const res: (ValueType | undefined)[] = [...carried];
    for (let k = 0; k < nScan; k++) {
      const t = outs[1 + nCarried + k];
      if (!t || t.kind !== 'tensor') res.push(undefined);
      else
        res.push(
          tt(
            t.dtype,
            t.shape
              ? [typeof trips === 'number' || typeof trips === 'string' ? trips : null, ...t.shape]
              : null,
          ),
        );
    }
    return res.slice(0, node.outputs.length);
  },
  check: (n, ins) =>
    ins[1] && ins[1].dtype !== 'bool'
      ? [
          {
            kind: 'dtype-mismatch',
            message: `Node "${n.label}" (Loop): cond "${n.inputs[1]!.name}" is ${ins[1].dtype} ${formatDims(ins[1].shape)}; it must be bool`,
          },
        ]
      : [],
});
