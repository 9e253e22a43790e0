// Dynamic INT8: weights int8 offline (symmetric, per output column by default), activations quantized at run
// time. For each MatMul / Gemm with a constant 2-D weight it writes the standard-ONNX pattern
//   x → DynamicQuantizeLinear → MatMulInteger(x_q, W_q, x_zp) → Cast(float) → Mul(·, x_scale · W_scale) [→ Add(bias)]
// which ORT fuses into com.microsoft DynamicQuantizeMatMul (MatMulIntegerToFloat when the activation's
// quantization is shared). No calibration is needed: meant for MatMul/Gemm-heavy models (transformers, MLPs).
import type { Model, Node, Tensor } from '../../ir/index.js';
import { A, Emitter, Tensor as T, cleanup } from '../../ir/index.js';
import { defineModelPass } from '../manager.js';
import { constTensor, f64, isOp, replaceNodes, tryInferShapes } from '../util.js';
import { quantizeWeightInt8 } from './numeric.js';
import { checkFilter, filterFor, type NodeFilter } from './select.js';
import { keptFindings, type SkippedNode } from './static.js';

export interface DynamicQuantOptions extends NodeFilter {
  /** Per output column weight scales (default true). */
  perChannel?: boolean;
}

export interface DynamicResult {
  model: Model;
  nodes: string[];
  skipped: SkippedNode[];
  notes: string[];
}

function whyNot(n: Node): string | undefined {
  const w = constTensor(n.inputs[1]);
  if (!w) return `its weight "${n.inputs[1]?.name}" is not a constant`;
  if (w.dtype !== 'float32') return `its weight is ${w.dtype}, not float32`;
  if (w.dims.length !== 2) return `its weight has rank ${w.dims.length}, not 2`;
  const x = n.inputs[0];
  if (!x || constTensor(x)) return 'its first input is a constant';
  if (x.dtype && x.dtype !== 'float32') return `its input is ${x.dtype}, not float32`;
  if (n.opType === 'Gemm') {
    if (n.attrInt('transA', 0)) return 'transA = 1';
    if (x.shape && x.shape.length !== 2) return `its input has rank ${x.shape.length}`;
    const c = n.inputs[2];
    if (c && !constTensor(c)) return `its bias "${c.name}" is not a constant`;
  }
  return undefined;
}

/** Quantize every MatMul/Gemm with a constant weight for dynamic (run-time) activation quantization. */
export function quantizeDynamic(model: Model, opts: DynamicQuantOptions = {}): DynamicResult {
  const m = model.clone();
  tryInferShapes(m);
  checkFilter(m, opts);
  const ok = filterFor(m, opts);
  const g = m.graph;
  const e = new Emitter(g, { opset: m.opset('') ?? 13, prefix: '' });
  const nodes: string[] = [];
  const skipped: SkippedNode[] = [];
  const dq = new Map<
    string,
    { xq: ReturnType<Emitter['op']>; xs: ReturnType<Emitter['op']>; xzp: ReturnType<Emitter['op']> }
  >();
  const perChannel = opts.perChannel ?? true;
  for (const n of [...g.nodes]) {
    if (!isOp(n, 'MatMul', 'Gemm')) continue;
    if (!ok(n)) {
      skipped.push({ node: n.label, opType: n.opType, reason: 'excluded' });
      continue;
    }
    const why = whyNot(n);
    if (why) {
      skipped.push({ node: n.label, opType: n.opType, reason: why });
      continue;
    }
    const x = n.input(0);
    let w = constTensor(n.inputs[1])!;
    let bias: Tensor | undefined;
    if (n.opType === 'Gemm') {
      const alpha = n.attrFloat('alpha', 1);
      const beta = n.attrFloat('beta', 1);
      const wf = f64(w);
      const [r, c] = w.dims as [number, number];
      if (n.attrInt('transB', 0)) {
        // store as [K, N] for MatMulInteger
        const t = new Float32Array(r * c);
        for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = wf[i * c + j]! * alpha;
        w = T.from('float32', [c, r], t);
      } else if (alpha !== 1)
        w = T.from(
          'float32',
          [r, c],
          Float32Array.from(wf, (v) => v * alpha),
        );
      const ct = constTensor(n.inputs[2]);
      if (ct)
        bias = T.from(
          'float32',
          ct.dims,
          Float32Array.from(f64(ct), (v) => v * beta),
        );
    }
    const qw = quantizeWeightInt8(w, perChannel ? 1 : null);
    const label = n.label;
    e.prefix = label;
    let xs = dq.get(x.name);
    if (!xs) {
      const dql = e.node('DynamicQuantizeLinear', [x], {}, { outputs: 3 });
      xs = { xq: dql.output(0), xs: dql.output(1), xzp: dql.output(2) };
      dq.set(x.name, xs);
    }
    const wq = e.constant(
      new T('int8', w.dims, new Uint8Array(qw.q.buffer, qw.q.byteOffset, qw.q.byteLength)),
      'weight_quantized',
    );
    const mmi = e.op('MatMulInteger', [xs.xq, wq, xs.xzp]);
    const f = e.op('Cast', [mmi], { to: A.int(1) });
    const ws = e.constant(
      qw.scales.length === 1
        ? T.scalar('float32', qw.scales[0]!)
        : T.from('float32', [qw.scales.length], qw.scales),
      'weight_scale',
    );
    const scale = e.op('Mul', [xs.xs, ws]);
    const out = n.output(0);
    if (bias) {
      const y = e.op('Mul', [f, scale]);
      const b = e.constant(bias, 'bias');
      replaceNodes(g, [n], { opType: 'Add', inputs: [y, b], name: g.uniqueName(`${label}/Add`) }, [out]);
    } else
      replaceNodes(g, [n], { opType: 'Mul', inputs: [f, scale], name: g.uniqueName(`${label}/Mul`) }, [out]);
    nodes.push(label);
  }
  cleanup(m);
  const notes = [
    `Quantized ${nodes.length} MatMul/Gemm node(s) dynamically (${perChannel ? 'per-column' : 'per-tensor'} int8 weights, uint8 activations at run time)`,
  ];
  for (const s of skipped) notes.push(`Kept ${s.opType} "${s.node}" float: ${s.reason}`);
  return { model: m, nodes, skipped, notes };
}

/** `quantize-dynamic` as a pass (for pipelines). */
export const dynamicQuantPass = defineModelPass<DynamicQuantOptions>(
  'quantize-dynamic',
  'Dynamic INT8 quantization of MatMul/Gemm (int8 weights, activations quantized at run time)',
  (model, options) => {
    const r = quantizeDynamic(model, options);
    return {
      model: r.model,
      changed: r.nodes.length > 0,
      notes: r.notes,
      findings: keptFindings(r.skipped, 'quantize-dynamic'),
      counts: { 'quantize-dynamic': r.nodes.length },
    };
  },
  {},
);
