// Test helpers for the op rules (used by the *.test.ts files here; not part of the library surface): build a
// one-node model from a compact case description, infer it, run it in ORT, and compare every output's inferred
// dtype and shape with what ORT returns. Also the whole-model check: expose every intermediate value whose inferred
// shape resolves under the input dims as a graph output and compare with ORT.
import assert from 'node:assert/strict';
import {
  type Attr,
  type DType,
  type Dim,
  dtypeBits,
  dtypeByteLength,
  Graph,
  Model,
  type Node,
  Tensor,
  type Value,
  tensorType,
} from '../ir/index.js';
import { type HostTensor, runModel } from '../runtime/index.js';
import { inferShapes, type InferReport } from '../ops/infer.js';
import { evalDim, formatDims } from '../ops/sym.js';

export type AttrV = number | number[] | string | string[] | Attr;
export const F = (value: number): Attr => ({ type: 'float', value });
export const FS = (value: number[]): Attr => ({ type: 'floats', value });
export const TA = (value: Tensor): Attr => ({ type: 'tensor', value });
export const G = (value: Graph): Attr => ({ type: 'graph', value });

export interface InSpec {
  dtype: DType;
  shape: Dim[];
  /** Constant data (the input becomes an initializer). */
  value?: number[];
  /** Feed data (otherwise generated). */
  feed?: number[];
}
export const inp = (dtype: DType, ...shape: Dim[]): InSpec => ({ dtype, shape });
export const f32 = (...shape: Dim[]): InSpec => inp('float32', ...shape);
export const cst = (dtype: DType, value: number[], shape?: number[]): InSpec => ({
  dtype,
  shape: shape ?? [value.length],
  value,
});
export const i64 = (value: number[], shape?: number[]) => cst('int64', value, shape);

export interface OpCase {
  name?: string;
  op: string;
  opset?: number;
  domain?: string;
  inputs: (InSpec | null)[];
  attrs?: Record<string, AttrV>;
  /** Number of outputs, or names (null = omitted optional output). Default 1. */
  outputs?: number | (string | null)[];
  /** Values for symbolic input dims (default: N=2, others 3). */
  bind?: Record<string, number>;
  /** Allow inferred dims that do not resolve (data-dependent sizes); rank and known dims are still checked. */
  free?: boolean;
}

export function toAttr(v: AttrV): Attr {
  if (typeof v === 'number') return { type: 'int', value: v };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (Array.isArray(v))
    return v.length && typeof v[0] === 'string'
      ? { type: 'strings', value: v as string[] }
      : { type: 'ints', value: v as number[] };
  return v;
}

export function caseName(c: OpCase): string {
  if (c.name) return c.name;
  const ins = c.inputs
    .map((i) =>
      i ? `${i.value ? 'c' : ''}${i.dtype === 'float32' ? '' : i.dtype}${formatDims(i.shape)}` : '-',
    )
    .join(' ');
  const attrs = Object.entries(c.attrs ?? {})
    .map(
      ([k, v]) =>
        `${k}=${typeof v === 'object' && !Array.isArray(v) ? JSON.stringify((v as { value: unknown }).value) : JSON.stringify(v)}`,
    )
    .join(' ');
  const outs =
    c.outputs === undefined || c.outputs === 1
      ? ''
      : ` → ${typeof c.outputs === 'number' ? c.outputs : `[${c.outputs.map((o) => o ?? '-').join(', ')}]`} outputs`;
  return `${c.domain ? c.domain + '.' : ''}${c.op}-${c.opset ?? 17} ${ins}${attrs ? ' ' + attrs : ''}${outs}`;
}

export function buildCase(c: OpCase): { model: Model; node: Node } {
  const g = new Graph('main');
  const m = new Model(g);
  m.irVersion = 10;
  m.opsetImports.set('', c.opset ?? 17);
  if (c.domain) m.opsetImports.set(c.domain, 1);
  const ins: (Value | null)[] = c.inputs.map((s, i) => {
    if (!s) return null;
    const name = `in${i}`;
    if (s.value) return g.addInitializer(name, constTensor(s.dtype, s.shape as number[], s.value));
    return g.addInput(name, tensorType(s.dtype, [...s.shape]));
  });
  const outs = c.outputs ?? 1;
  const node = g.addNode({
    opType: c.op,
    domain: c.domain,
    name: 'n0',
    inputs: ins,
    outputs: typeof outs === 'number' ? Array.from({ length: outs }, (_, i) => `out${i}`) : outs,
    attrs: Object.fromEntries(Object.entries(c.attrs ?? {}).map(([k, v]) => [k, toAttr(v)])),
  });
  g.outputs = node.outputs.filter((o): o is Value => !!o);
  return { model: m, node };
}

/** A constant tensor; sub-byte dtypes (int4/uint4/…) are packed (values are taken mod 16 / 4). */
export function constTensor(dtype: DType, dims: number[], values: number[]): Tensor {
  const bits = dtypeBits(dtype);
  if (bits >= 8) return Tensor.from(dtype, dims, values);
  const bytes = new Uint8Array(dtypeByteLength(dtype, values.length));
  const per = 8 / bits;
  values.forEach((v, i) => (bytes[Math.floor(i / per)]! |= (v & ((1 << bits) - 1)) << ((i % per) * bits)));
  return new Tensor(dtype, dims, bytes);
}

/** Deterministic feed data for a dtype. */
export function feedFor(dtype: DType, dims: number[], seed: number, data?: number[]): HostTensor {
  const n = dims.reduce((a, b) => a * b, 1);
  let s = (seed * 2654435761) >>> 0;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0), (s >>> 8) / 16777216);
  const vals =
    data ??
    Array.from({ length: n }, (_, i) =>
      dtype === 'bool' ? i % 2 : dtype.startsWith('float') ? rnd() * 2 - 1 : 0,
    );
  const t = constTensor(dtype, dims, vals);
  return { dtype, dims, data: t.typed() };
}

export function resolveDims(dims: readonly Dim[], bind: Record<string, number>): (number | undefined)[] {
  return dims.map((d) => evalDim(d, bind));
}

/** Build, infer, run in ORT and compare (dtype, rank and every dim). Returns the inferred output types. */
export async function checkCase(c: OpCase): Promise<void> {
  const { model, node } = buildCase(c);
  inferShapes(model);
  const inferred = node.outputs.map((o) => o?.type);
  const bind: Record<string, number> = { N: 2, ...c.bind };
  const feeds: Record<string, HostTensor> = {};
  c.inputs.forEach((s, i) => {
    if (!s || s.value) return;
    const dims = s.shape.map((d) =>
      typeof d === 'number' ? d : typeof d === 'string' ? (bind[d] ??= 3) : 3,
    );
    feeds[`in${i}`] = feedFor(s.dtype, dims, i + 1, s.feed);
  });
  // ORT sees the model without our inferred output types
  for (const o of node.outputs) if (o) o.type = undefined;
  const res = await runModel(model, feeds, { optimizationLevel: 'disabled', threads: 1 });
  node.outputs.forEach((o, i) => {
    if (!o) return;
    const got = res[o.name];
    assert.ok(got, `ORT did not return output ${o.name}`);
    const t = inferred[i];
    assert.ok(t && t.kind === 'tensor', `output ${i}: no tensor type inferred`);
    assert.equal(t.dtype, got.dtype, `output ${i}: dtype inferred ${t.dtype}, ORT ${got.dtype}`);
    assert.ok(t.shape, `output ${i}: rank not inferred (ORT [${got.dims}])`);
    const dims = resolveDims(t.shape, bind);
    const msg = `output ${i}: inferred ${formatDims(t.shape)} → [${dims.map((d) => d ?? '?')}], ORT [${got.dims}]`;
    assert.equal(dims.length, got.dims.length, msg);
    dims.forEach((d, k) => {
      if (d === undefined && c.free) return;
      assert.equal(d, got.dims[k], msg);
    });
  });
}

// ---------------------------------------------------------------- whole-model check

export interface ModelCheck {
  /** Node outputs in the main graph. */
  total: number;
  /** Values whose inferred shape resolved and was compared with ORT. */
  checked: number;
  /** Values left out (unresolved dims), with their inferred shapes. */
  skipped: string[];
  report: InferReport;
}

/**
 * Infer `model` (a clone is made), expose every main-graph node output whose inferred shape resolves under the
 * feeds' input dims as an extra graph output, run ORT and assert each exposed value's dtype and dims.
 */
export async function checkModel(model: Model, feeds: Record<string, HostTensor>): Promise<ModelCheck> {
  const m = model.clone();
  const report = inferShapes(m);
  const g = m.graph;
  // bind input symbols from the feeds
  const bind: Record<string, number> = {};
  for (const v of g.inputs) {
    const f = feeds[v.name];
    const s = v.tensorType?.shape;
    if (!f || !s) continue;
    s.forEach((d, i) => {
      if (typeof d === 'string') bind[d] = f.dims[i]!;
    });
  }
  const expected = new Map<Value, { dtype: DType; dims: number[] }>();
  const skipped: string[] = [];
  let total = 0;
  for (const n of g.nodes)
    for (const o of n.outputs) {
      if (!o) continue;
      total++;
      const t = o.tensorType;
      const dims = t?.shape ? resolveDims(t.shape, bind) : undefined;
      if (!t || !dims || dims.some((d) => d === undefined)) {
        skipped.push(`${o.name} ${t ? `${t.dtype}${formatDims(t.shape)}` : 'untyped'}`);
        continue;
      }
      expected.set(o, { dtype: t.dtype, dims: dims as number[] });
    }
  // ORT runs the model with no inferred types on intermediates (only what the file declared for its inputs)
  const original = new Map<string, Value>();
  for (const n of model.graph.nodes) for (const o of n.outputs) if (o) original.set(o.name, o);
  for (const n of g.nodes)
    for (const o of n.outputs) {
      if (!o) continue;
      const orig = original.get(o.name);
      o.type = orig?.isGraphOutput ? orig.type : undefined;
    }
  const outs = new Set(g.outputs);
  for (const v of expected.keys()) if (!outs.has(v)) g.outputs.push(v);
  const res = await runModel(m, feeds, { optimizationLevel: 'disabled', threads: 1 });
  const bad: string[] = [];
  for (const [v, e] of expected) {
    const got = res[v.name];
    if (!got) {
      bad.push(`${v.name}: not returned by ORT`);
      continue;
    }
    if (
      got.dtype !== e.dtype ||
      got.dims.length !== e.dims.length ||
      got.dims.some((d, i) => d !== e.dims[i])
    )
      bad.push(
        `${v.name} (${v.producer?.opType} "${v.producer?.label}"): inferred ${e.dtype}[${e.dims}], ORT ${got.dtype}[${got.dims}]`,
      );
  }
  assert.deepEqual(
    bad,
    [],
    `${bad.length} of ${expected.size} values disagree with ORT:\n${bad.slice(0, 30).join('\n')}`,
  );
  return { total, checked: expected.size, skipped, report };
}

// ---------------------------------------------------------------- model specialization (for If-heavy models)

/** Turn graph input `name` into an initializer holding `t` (so conditions that test it become known). */
export function freezeInput(m: Model, name: string, t: Tensor): void {
  const g = m.graph;
  const v = g.inputs.find((x) => x.name === name);
  if (!v) throw new Error(`no input ${name}`);
  g.inputs = g.inputs.filter((x) => x !== v);
  v.const = t;
  v.type = tensorType(t.dtype, [...t.dims]);
  g.initializers.set(v.name, v);
}

/**
 * Replace every If of the main graph whose condition inference knows by the nodes of the branch that runs, then
 * infer again, until no such If is left. Returns the number of Ifs inlined. (A test device: it lets the whole-model
 * check see inside Silero's branches; edgefit's real passes live in src/passes.)
 */
export function inlineKnownIfs(m: Model): number {
  let total = 0;
  for (;;) {
    const report = inferShapes(m, { strict: false });
    const g = m.graph;
    const n = g.nodes.find((x) => {
      if (x.opType !== 'If') return false;
      const c =
        report.values.get(x.inputs[0]!) ?? (x.inputs[0]!.const ? x.inputs[0]!.const.toNumbers() : undefined);
      return c !== undefined && c.length === 1 && typeof c[0] === 'number';
    });
    if (!n) return total;
    const cv = report.values.get(n.inputs[0]!) ?? n.inputs[0]!.const!.toNumbers();
    const branchAttr = n.attr(cv[0] ? 'then_branch' : 'else_branch');
    if (!branchAttr || branchAttr.type !== 'graph') throw new Error('If without branch');
    const b = branchAttr.value;
    const map = new Map<Value, Value>();
    for (const v of g.valuesByName().values()) map.set(v, v);
    for (const [name, v] of b.initializers) map.set(v, g.addInitializer(name, v.const!));
    let at = g.nodes.indexOf(n);
    for (const bn of b.nodes) {
      const attrs: Record<string, Attr> = {};
      for (const [k, a] of bn.attrs)
        attrs[k] =
          a.type === 'graph'
            ? { type: 'graph', value: a.value.clone(g, map) }
            : a.type === 'graphs'
              ? { type: 'graphs', value: a.value.map((s) => s.clone(g, map)) }
              : a;
      const nn = g.addNode(
        {
          opType: bn.opType,
          domain: bn.domain,
          name: bn.name ? g.uniqueName(bn.name) : undefined,
          inputs: bn.inputs.map((v) => (v ? (map.get(v) ?? v) : null)),
          outputs: bn.outputs.map((o) => (o ? o.name : null)),
          attrs,
        },
        at++,
      );
      bn.outputs.forEach((o, i) => {
        const no = nn.outputs[i];
        if (o && no) {
          no.type = o.type;
          map.set(o, no);
        }
      });
    }
    const outs = n.outputs;
    g.removeNode(n, true);
    outs.forEach((o, i) => {
      if (!o) return;
      const src = b.outputs[i]!;
      const id = g.addNode({ opType: 'Identity', inputs: [map.get(src) ?? src], outputs: [] }, at++);
      g.attachOutput(id, o);
    });
    g.toposort();
    total++;
  }
}
