// Test helpers for the gradient rules (used by grad_*.test.ts; not part of the library surface): describe a small
// model as a table row, feed it seeded random inputs kept away from the op's kinks, and run `gradCheck` (analytic
// gradient graph vs central finite differences, both through ORT).
import assert from 'node:assert/strict';
import { gradCheck, type GradCheckResult } from '../autodiff/check.js';
import type { GradForms } from '../ops/registry.js';
import { A, type DType, type Graph, type Model, type Value, Tensor, tensorType } from '../ir/index.js';
import type { HostTensor } from '../runtime/index.js';
import { buildCase, type AttrV, type OpCase } from './ops.js';
import { prng } from '../util/random.js';

export type Rand = () => number;
/** Makes `n` values for an input. */
export type Gen = (n: number, rnd: Rand) => number[];

export const uni =
  (lo = -1, hi = 1): Gen =>
  (n, rnd) =>
    Array.from({ length: n }, () => lo + (hi - lo) * rnd());

/** Uniform in [lo, hi] but at least `gap` away from each kink. */
export const away =
  (kinks: number[], gap = 0.1, lo = -1, hi = 1): Gen =>
  (n, rnd) =>
    Array.from({ length: n }, () => {
      for (;;) {
        const v = lo + (hi - lo) * rnd();
        if (kinks.every((k) => Math.abs(v - k) >= gap)) return v;
      }
    });

/** Distinct values (a shuffled grid of spacing `step` around 0, with a little jitter): no ties within a tensor. */
export const distinct =
  (step = 0.1): Gen =>
  (n, rnd) => {
    const vals = Array.from({ length: n }, (_, i) => (i - n / 2) * step + step * 0.2 * (rnd() - 0.5));
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [vals[i], vals[j]] = [vals[j]!, vals[i]!];
    }
    return vals;
  };

/** Values on the lattice step·(k + slot/slots) + small jitter: inputs with different slots never come close. */
export const lattice =
  (slot: number, slots: number, step = 0.3): Gen =>
  (n, rnd) =>
    Array.from(
      { length: n },
      () => step * (Math.floor(rnd() * 8) - 4 + slot / slots) + (step / slots) * 0.2 * (rnd() - 0.5),
    );

export interface GIn {
  shape: number[];
  dtype?: DType;
  /** Generator for fed inputs (default uniform in [-1, 1]). */
  gen?: Gen;
  /** Constant data: the input becomes an initializer (never differentiated). */
  value?: number[];
  /** Differentiate with respect to this input (default: true for fed float inputs). */
  diff?: boolean;
}

/** A differentiated float input. */
export const X = (shape: number[], gen?: Gen): GIn => ({ shape, gen });
/** A fed float input that is not differentiated. */
export const N = (shape: number[], gen?: Gen): GIn => ({ shape, gen, diff: false });
/** A constant (initializer). */
export const C = (dtype: DType, value: number[], shape?: number[]): GIn => ({
  dtype,
  shape: shape ?? [value.length],
  value,
});
export const I64 = (value: number[], shape?: number[]) => C('int64', value, shape);
/** A fed integer / bool input with fixed data (not differentiated). */
export const Fed = (dtype: DType, value: number[], shape?: number[]): GIn => ({
  dtype,
  shape: shape ?? [value.length],
  gen: () => value,
  diff: false,
});

export interface GCase {
  name?: string;
  op: string;
  opset?: number;
  domain?: string;
  inputs: (GIn | null)[];
  /** Attributes (undefined entries are left out). */
  attrs?: Record<string, AttrV | undefined>;
  /** Number of outputs, or names (null = omitted). Default 1. */
  outputs?: number | (string | null)[];
  /** Which outputs enter the loss (default all). */
  lossOutputs?: number[];
  /** Extra nodes after the op: gets the graph and the op's outputs, returns the values that enter the loss. */
  after?: (g: Graph, outs: Value[]) => Value[];
  eps?: number;
  rtol?: number;
  atol?: number;
  seed?: number;
  /** Gradient formulations to build with (default: `selectGradForms()`'s). */
  forms?: Partial<GradForms>;
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

export function gcaseName(c: GCase): string {
  if (c.name) return `${c.op}-${c.opset ?? 17} ${c.name}`;
  const ins = c.inputs.map((i) => (i ? `${i.value ? 'c' : ''}[${i.shape.join(',')}]` : '-')).join(' ');
  const attrs = Object.entries(c.attrs ?? {})
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${JSON.stringify(typeof v === 'object' && !Array.isArray(v) ? v.value : v)}`)
    .join(' ');
  return `${c.domain ? c.domain + '.' : ''}${c.op}-${c.opset ?? 17} ${ins}${attrs ? ' ' + attrs : ''}`;
}

/** Build the model of a case and its feeds; `wrt` lists the inputs to differentiate. */
export function buildGradCase(c: GCase): { model: Model; feeds: Record<string, HostTensor>; wrt: string[] } {
  const oc: OpCase = {
    op: c.op,
    opset: c.opset ?? 17,
    domain: c.domain,
    inputs: c.inputs.map((s) => (s ? { dtype: s.dtype ?? 'float32', shape: s.shape, value: s.value } : null)),
    attrs: Object.fromEntries(
      Object.entries(c.attrs ?? {}).filter((kv): kv is [string, AttrV] => kv[1] !== undefined),
    ),
    outputs: c.outputs,
  };
  const { model, node } = buildCase(oc);
  const g = model.graph;
  const outs = node.outputs.filter((o): o is Value => !!o);
  if (c.lossOutputs) g.outputs = c.lossOutputs.map((i) => node.output(i));
  if (c.after) g.outputs = c.after(g, outs);
  const rnd = prng(c.seed ?? hash(gcaseName(c)));
  const feeds: Record<string, HostTensor> = {};
  const wrt: string[] = [];
  c.inputs.forEach((s, i) => {
    if (!s || s.value) return;
    const dtype = s.dtype ?? 'float32';
    const n = s.shape.reduce((a, b) => a * b, 1);
    const vals = (s.gen ?? uni())(n, rnd);
    feeds[`in${i}`] = { dtype, dims: [...s.shape], data: Tensor.from(dtype, s.shape, vals).typed() };
    if (s.diff ?? dtype.startsWith('float')) wrt.push(`in${i}`);
  });
  return { model, feeds, wrt };
}

export async function runGradCase(c: GCase): Promise<GradCheckResult> {
  const { model, feeds, wrt } = buildGradCase(c);
  return gradCheck(model, {
    feeds,
    wrt,
    eps: c.eps,
    rtol: c.rtol,
    atol: c.atol,
    directions: 3,
    forms: c.forms,
  });
}

/** Run a case and assert it passes; records the worst error ratio under the op's name in `worst`. */
export async function checkGradCase(c: GCase, worst?: Map<string, number>): Promise<void> {
  const res = await runGradCase(c);
  const key = `${c.domain ? c.domain + '.' : ''}${c.op}`;
  if (worst) worst.set(key, Math.max(worst.get(key) ?? 0, res.worst));
  assert.ok(res.rows.length > 0, 'no gradient rows were checked');
  assert.ok(
    res.ok,
    `gradient check failed (worst ${res.worst.toFixed(3)}):\n${res.rows
      .map(
        (r) =>
          `  ${r.wrt}: analytic ${r.analytic.toPrecision(6)} numeric ${r.numeric.toPrecision(6)} ratio ${r.error.toFixed(3)}`,
      )
      .join('\n')}`,
  );
}

/** Print the worst error ratio per op (a table for the test log). */
export function printWorst(title: string, worst: Map<string, number>): void {
  const rows = [...worst.entries()].sort(([a], [b]) => a.localeCompare(b));
  console.log(`# ${title}: worst error ratio per op (≤ 1 passes)`);
  for (const [k, v] of rows) console.log(`#   ${k.padEnd(24)} ${v.toFixed(4)}`);
}

/** A scalar loss for gradient tests: the sum of every element of `v` (a ReduceSum node added to `g`). */
export function sumLoss(g: Graph, v: Value): Value {
  const out = g
    .addNode({ opType: 'ReduceSum', inputs: [v], outputs: ['loss'], attrs: { keepdims: A.int(0) } })
    .output();
  out.type = tensorType('float32', []);
  return out;
}
