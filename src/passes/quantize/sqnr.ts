// Per-layer SQNR between a reference model and a changed one (quantized, float16, …): the layer outputs both
// models share by name are exposed as graph outputs of clones, both run in ORT on the same feeds, and the SQNR
// 10·log10(Σ ref² / Σ (ref − test)²) is accumulated over the batches. In a QDQ model a tensor that is quantized
// (name → QuantizeLinear → DequantizeLinear) is read after the DequantizeLinear: the value its readers see.
import { ShapeError } from '../../errors.js';
import type { Model, Value } from '../../ir/index.js';
import { A, Emitter, dtypeCode } from '../../ir/index.js';
import { Session } from '../../runtime/index.js';
import { halfToFloat } from '../../ir/index.js';
import { isOp, tryInferShapes } from '../util.js';
import type { Feeds } from './calibrate.js';
import { SqnrAccumulator } from './numeric.js';

export interface LayerSqnr {
  /** Tensor name (the layer's output). */
  name: string;
  /** The node of the reference model that computes it. */
  node: string;
  opType: string;
  /** dB; Infinity when identical; NaN when the two tensors differ in size (see `mismatch`). */
  sqnr: number;
  /** Set when b's tensor of this name has another size than a's ("[64, 32, 28, 28] vs [64, 16, 28, 28]"). */
  mismatch?: string;
}

/** Op types whose outputs are reported as "layers". */
export const LAYER_OPS: ReadonlySet<string> = new Set([
  'Conv',
  'ConvTranspose',
  'Gemm',
  'MatMul',
  'Relu',
  'Clip',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'Add',
  'Mul',
  'HardSigmoid',
  'HardSwish',
  'Sigmoid',
  'LayerNormalization',
  'Softmax',
]);

/** The value readers of `v` see in a QDQ graph: the DequantizeLinear output when v → Q → DQ, else v. */
function seenValue(v: Value): Value {
  for (const u of v.uses) {
    if (!isOp(u.node, 'QuantizeLinear') || u.index !== 0) continue;
    const q = u.node.outputs[0];
    const d = q?.uses.find((x) => isOp(x.node, 'DequantizeLinear') && x.index === 0)?.node.outputs[0];
    if (d) return d;
  }
  return v;
}

/** Expose `names` (as float32) on a clone of `m`; returns the clone and the output name of each. */
function expose(
  m: Model,
  names: readonly string[],
  view: (v: Value) => Value,
): { model: Model; outs: Map<string, string> } {
  const c = m.clone();
  tryInferShapes(c);
  const g = c.graph;
  const e = new Emitter(g, { opset: c.opset('') ?? 13, prefix: 'sqnr' });
  const byName = g.valuesByName();
  const outs = new Map<string, string>();
  for (const n of names) {
    const v0 = byName.get(n);
    if (!v0) continue;
    let v = view(v0);
    if (v.dtype && v.dtype !== 'float32') {
      v = e.op('Cast', [v], { to: A.int(dtypeCode('float32')) });
      v.type = { kind: 'tensor', dtype: 'float32', shape: null };
    }
    if (!v.type) v.type = { kind: 'tensor', dtype: 'float32', shape: null };
    if (!g.outputs.includes(v)) g.outputs.push(v);
    outs.set(n, v.name);
  }
  return { model: c, outs };
}

function floats(t: { dtype: string; data: ArrayLike<number | bigint> }): ArrayLike<number> {
  if (t.dtype === 'float16') return Array.from(t.data as Uint16Array, halfToFloat);
  return t.data as ArrayLike<number>;
}

/**
 * SQNR of every layer output of `ref` (ops in LAYER_OPS, float tensors, and the graph outputs) that `test` also
 * has, over `batches`. `names` restricts the tensors.
 */
export async function layerSqnr(
  ref: Model,
  test: Model,
  batches: readonly Feeds[],
  opts: { names?: readonly string[]; threads?: number } = {},
): Promise<LayerSqnr[]> {
  const r = ref.clone();
  tryInferShapes(r);
  const testNames = new Set(test.graph.valuesByName().keys());
  const layers: { name: string; node: string; opType: string }[] = [];
  const outputs = new Set(r.graph.outputs.map((v) => v.name));
  for (const n of r.graph.nodes) {
    const o = n.outputs[0];
    if (!o || !testNames.has(o.name)) continue;
    if (opts.names ? !opts.names.includes(o.name) : !(LAYER_OPS.has(n.opType) || outputs.has(o.name)))
      continue;
    if (o.dtype && o.dtype !== 'float32' && o.dtype !== 'float16') continue;
    layers.push({ name: o.name, node: n.label, opType: n.opType });
  }
  const names = layers.map((l) => l.name);
  const a = expose(ref, names, (v) => v);
  const b = expose(test, names, seenValue);
  const sa = await Session.create(a.model, { threads: opts.threads, label: 'the reference model' });
  const sb = await Session.create(b.model, { threads: opts.threads, label: 'the compared model' });
  const acc = new Map<string, SqnrAccumulator>(names.map((n) => [n, new SqnrAccumulator()]));
  const mismatch = new Map<string, string>();
  try {
    for (const f of batches) {
      const fetchA = names.filter((n) => a.outs.has(n) && b.outs.has(n));
      const ra = await sa.run(
        f,
        fetchA.map((n) => a.outs.get(n)!),
      );
      const rb = await sb.run(
        f,
        fetchA.map((n) => b.outs.get(n)!),
      );
      for (const n of fetchA) {
        const x = ra[a.outs.get(n)!]!;
        const y = rb[b.outs.get(n)!]!;
        if (x.data.length !== y.data.length) {
          // a tensor of another size is a mismatch, never "identical"
          if (!mismatch.has(n)) mismatch.set(n, `[${x.dims.join(', ')}] vs [${y.dims.join(', ')}]`);
          continue;
        }
        acc.get(n)!.add(floats(x), floats(y));
      }
    }
  } finally {
    await sa.release();
    await sb.release();
  }
  return layers
    .filter((l) => a.outs.has(l.name) && b.outs.has(l.name))
    .map((l) =>
      mismatch.has(l.name)
        ? { ...l, sqnr: NaN, mismatch: mismatch.get(l.name)! }
        : { ...l, sqnr: acc.get(l.name)!.db },
    );
}

/** SQNR of the first output of two models over `batches` (dB). */
export async function outputSqnr(
  ref: Model,
  test: Model,
  batches: readonly Feeds[],
  opts: { threads?: number; reference?: ArrayLike<number>[] } = {},
): Promise<number> {
  const acc = new SqnrAccumulator();
  const sb = await Session.create(test, { threads: opts.threads, label: 'the compared model' });
  const sa = opts.reference
    ? undefined
    : await Session.create(ref, { threads: opts.threads, label: 'the reference model' });
  try {
    for (let i = 0; i < batches.length; i++) {
      const out = sb.outputNames[0]!;
      const y = floats((await sb.run(batches[i]!, [out]))[out]!);
      const x = opts.reference
        ? opts.reference[i]!
        : floats((await sa!.run(batches[i]!, [sa!.outputNames[0]!]))[sa!.outputNames[0]!]!);
      if (x.length !== y.length)
        throw new ShapeError(
          'output-size',
          `The compared model's first output has ${y.length} values on batch ${i + 1} where the reference's has ${x.length}: the models do not compute the same thing`,
          { value: sb.outputNames[0]! },
        );
      acc.add(x, y);
    }
  } finally {
    await sb.release();
    await sa?.release();
  }
  return acc.db;
}

/** The first output of `model` on each batch (float32), to compare many variants against once. */
export async function referenceOutputs(
  model: Model,
  batches: readonly Feeds[],
  opts: { threads?: number } = {},
): Promise<Float32Array[]> {
  const s = await Session.create(model, { threads: opts.threads, label: 'the reference model' });
  try {
    const out: Float32Array[] = [];
    for (const b of batches) {
      const r = await s.run(b, [s.outputNames[0]!]);
      out.push(Float32Array.from(floats(r[s.outputNames[0]!]!)));
    }
    return out;
  } finally {
    await s.release();
  }
}
