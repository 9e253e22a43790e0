// FP16 conversion: float32 tensors (initializers, activations, Constant data) become float16, while the model's
// inputs and outputs stay float32 (a Cast after each input, a Cast before each output that takes over the output's
// name) and chosen ops stay float32 (Casts around them, shared per value). Ops whose inputs ONNX fixes to float32
// (Resize scales/roi, quantization ops, com.microsoft ops, random generators) are always kept float32.
import type { Graph, Model, Node, Tensor, Value } from '../../ir/index.js';
import { A, Emitter, Tensor as T, cleanup, dtypeCode, floatToHalf } from '../../ir/index.js';
import { constantNodeTensor } from '../../ops/index.js';
import { defineModelPass } from '../manager.js';
import { f64, isOnnxDomain, tryInferShapes } from '../util.js';
import { checkFilterEntry, filterFor } from './select.js';

export interface Fp16Options {
  /** Node names or op types (`op:X`, `node:Y` to be explicit) that stay float32. */
  keepFloat32?: readonly string[];
}

export interface Fp16Result {
  model: Model;
  /** Nodes computing in float16: how many, and their names. */
  converted: number;
  nodes: string[];
  /** Nodes kept float32 (by request or by necessity), by op type. */
  kept: Record<string, number>;
  casts: number;
  notes: string[];
}

/** Ops always kept float32: their float inputs/outputs are fixed to float32 or carry no tensor data to convert. */
export const ALWAYS_FLOAT32: ReadonlySet<string> = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'Multinomial',
  'Bernoulli',
  'EyeLike',
  'If',
  'Loop',
  'Scan',
  // ORT's CPU recurrent kernels are float32 only
  'LSTM',
  'GRU',
  'RNN',
]);

/** Inputs that stay float32 even in a float16 node. */
const FIXED_FLOAT32_INPUTS: Readonly<Record<string, number[]>> = { Resize: [1, 2], Upsample: [1] };

const HALF_MAX = 65504;

function halfTensor(t: Tensor, name: string): { t: Tensor; clipped: number } {
  const x = f64(t);
  let clipped = 0;
  const h = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    let v = x[i]!;
    if (Math.abs(v) > HALF_MAX && Number.isFinite(v)) {
      v = Math.sign(v) * HALF_MAX;
      clipped++;
    }
    h[i] = floatToHalf(v);
  }
  return { t: T.from('float16', t.dims, h, name), clipped };
}

/**
 * Convert `model` to float16 compute with float32 inputs/outputs. Subgraphs (If branches, Loop/Scan bodies) are
 * converted too, each with float32 boundaries: the If/Loop/Scan node itself stays float32, so its subgraphs' outputs
 * are cast back to float32, and a value a subgraph reads from an outer scope is cast inside the subgraph to the
 * precision each reader needs (outer-scope values are kept, never moved).
 */
export function convertFp16(model: Model, opts: Fp16Options = {}): Fp16Result {
  const m = model.clone();
  tryInferShapes(m);
  for (const e of opts.keepFloat32 ?? []) checkFilterEntry(m, e, 'keep-fp32');
  const userKeep = opts.keepFloat32?.length ? filterFor(m, { include: opts.keepFloat32 }) : () => false;
  const keep = (n: Node) =>
    !isOnnxDomain(n) || ALWAYS_FLOAT32.has(n.opType) || n.subgraphs().length > 0 || userKeep(n);
  const opset = m.opset('') ?? 13;
  /** Values now holding float16 data, in any graph. */
  const isHalf = new Set<Value>();
  const notes: string[] = [];
  const st = { clipped: 0, casts: 0 };
  const nodes: string[] = [];
  const kept: Record<string, number> = {};

  // Inside Loop/Scan bodies only the MatMul/Gemm/Conv nodes compute in float16 (Casts around each): ORT 1.30's
  // CPU cast insertion fails on a float16 value carried out of a Scan body (measured).
  const COMPUTE = new Set(['MatMul', 'Gemm', 'Conv']);
  const convertGraph = (g: Graph, main: boolean, inLoop: boolean): void => {
    const e = new Emitter(g, { opset, prefix: 'fp16' });
    const to16 = new Map<Value, Value>();
    const to32 = new Map<Value, Value>();
    const halfInit = new Map<Value, Value>();
    const cast16 = (v: Value): Value => {
      let c = halfInit.get(v) ?? to16.get(v);
      if (c) return c;
      if (v.const && !v.isGraphInput && v.graph === g) {
        const { t, clipped } = halfTensor(v.const, `${v.name}_fp16`);
        st.clipped += clipped;
        c = g.addInitializer(`${v.name}_fp16`, t);
        halfInit.set(v, c);
        return c;
      }
      c = e.op('Cast', [v], { to: A.int(dtypeCode('float16')) }, { name: `${v.name}_to_fp16` });
      c.type = { kind: 'tensor', dtype: 'float16', shape: v.shape ? [...v.shape] : null };
      st.casts++;
      to16.set(v, c);
      return c;
    };
    const cast32 = (v: Value): Value => {
      let c = to32.get(v);
      if (c) return c;
      c = e.op('Cast', [v], { to: A.int(dtypeCode('float32')) }, { name: `${v.name}_to_fp32` });
      c.type = { kind: 'tensor', dtype: 'float32', shape: v.shape ? [...v.shape] : null };
      st.casts++;
      to32.set(v, c);
      return c;
    };
    for (const n of [...g.nodes]) {
      if (n.opType === 'Cast' && n.name.startsWith('fp16/')) continue;
      const hasFloat = [...n.inputs, ...n.outputs].some(
        (v) => v?.dtype === 'float32' || (v && isHalf.has(v)),
      );
      if (!hasFloat && !(isOnnxDomain(n) && n.opType === 'Constant')) continue;
      // an input of unknown type (shape inference did not reach it) may be float32: the node stays float32
      const unknownInput = n.inputs.some((v) => v && v.dtype === undefined && !isHalf.has(v));
      if (keep(n) || unknownInput || (inLoop && !(isOnnxDomain(n) && COMPUTE.has(n.opType)))) {
        kept[n.opType] = (kept[n.opType] ?? 0) + 1;
        n.inputs.forEach((v, i) => {
          if (v && isHalf.has(v)) n.setInput(i, cast32(v));
        });
        continue;
      }
      const fixed = (isOnnxDomain(n) && FIXED_FLOAT32_INPUTS[n.opType]) || [];
      n.inputs.forEach((v, i) => {
        if (!v) return;
        if (fixed.includes(i)) {
          if (isHalf.has(v)) n.setInput(i, cast32(v));
          return;
        }
        if (v.dtype === 'float32' && !isHalf.has(v)) n.setInput(i, cast16(v));
      });
      if (n.opType === 'Cast' && n.attrInt('to') === dtypeCode('float32'))
        n.setAttr('to', A.int(dtypeCode('float16')));
      if (n.opType === 'ConstantOfShape') {
        const t = n.attrTensor('value');
        if (t?.dtype === 'float32') n.setAttr('value', A.tensor(halfTensor(t, t.name).t));
      }
      let constHalf = false;
      if (n.opType === 'Constant') {
        const t = constantNodeTensor(n);
        if (t?.dtype === 'float32') {
          for (const k of ['value', 'value_float', 'value_floats']) n.setAttr(k, undefined);
          n.setAttr('value', A.tensor(halfTensor(t, t.name).t));
          constHalf = true;
        }
      }
      for (const o of n.outputs)
        // (a MatMul/Gemm/Conv output of unknown type in a Loop/Scan body, which shape inference may not reach)
        if (
          o?.dtype === 'float32' ||
          (o && constHalf) ||
          (o && o.dtype === undefined && inLoop && COMPUTE.has(n.opType))
        ) {
          o.type = { kind: 'tensor', dtype: 'float16', shape: o.shape ? [...o.shape] : null };
          isHalf.add(o);
        }
      nodes.push(n.name);
    }
    // a half value read by a node of a subgraph (outer scope) is cast there, by convertGraph on that subgraph;
    // outputs stay float32: a Cast takes over each half output's name (subgraph outputs: the If/Loop is float32)
    g.outputs = g.outputs.map((o) => {
      if (!isHalf.has(o)) return o;
      if (!main) return cast32(o);
      const name = o.name;
      o.name = g.uniqueName(`${name}_fp16`);
      const c = cast32(o);
      c.name = name;
      return c;
    });
    for (const n of [...g.nodes])
      for (const sub of n.subgraphs())
        convertGraph(sub, false, inLoop || n.opType === 'Loop' || n.opType === 'Scan');
    if (!main) g.removeUnused();
  };
  convertGraph(m.graph, true, false);
  cleanup(m);
  const converted = nodes.length;
  notes.push(
    `Converted ${converted} node(s) to float16; kept float32: ${
      Object.entries(kept)
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ') || 'none'
    }; ${st.casts} Cast(s) added`,
  );
  if (st.clipped)
    notes.push(`${st.clipped} constant value(s) beyond ±${HALF_MAX} were clipped to the float16 range`);
  return { model: m, converted, nodes, kept, casts: st.casts, notes };
}

/** `convert-fp16` as a pass. */
export const fp16Pass = defineModelPass<Fp16Options>(
  'convert-fp16',
  'Float16 weights and compute, float32 model inputs/outputs',
  (model, options) => {
    const r = convertFp16(model, options);
    return {
      model: r.model,
      changed: r.converted > 0,
      notes: r.notes,
      counts: { 'convert-fp16': r.converted },
    };
  },
  {},
);
