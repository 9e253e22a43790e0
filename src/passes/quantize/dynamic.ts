// Dynamic INT8: weights int8 offline (symmetric, per output column by default), activations quantized at run
// time. For each MatMul / Gemm with a constant 2-D weight it writes the standard-ONNX pattern
//   x → DynamicQuantizeLinear → MatMulInteger(x_q, W_q, x_zp) → Cast(float) → Mul(·, x_scale · W_scale) [→ Add(bias)]
// which ORT fuses into com.microsoft DynamicQuantizeMatMul (MatMulIntegerToFloat when the activation's
// quantization is shared). No calibration is needed: meant for MatMul/Gemm-heavy models (transformers, MLPs).
import type { Attr, Graph, Model, Node, Tensor, Value } from '../../ir/index.js';
import { A, allGraphs, Emitter, Tensor as T, cleanup } from '../../ir/index.js';
import { defineModelPass } from '../manager.js';
import { ensureOpset, upgradeNote, type OpsetUpgrade } from '../opset/require.js';
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
  opsetUpgrade?: OpsetUpgrade;
}

function whyNot(n: Node): string | undefined {
  const w = constTensor(n.inputs[1]);
  if (!w) return `its weight "${n.inputs[1]?.name}" is not a constant`;
  if (w.dtype !== 'float32') return `its weight is ${w.dtype}, not float32`;
  if (n.opType === 'Conv') {
    if (w.dims.length < 3) return `its weight has rank ${w.dims.length}`;
    const b = n.inputs[2];
    if (b && !constTensor(b)) return `its bias "${b.name}" is not a constant`;
  } else if (w.dims.length !== 2) return `its weight has rank ${w.dims.length}, not 2`;
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

/**
 * Quantize every MatMul/Gemm with a constant weight for dynamic (run-time) activation quantization, and every
 * Conv with a constant weight as DynamicQuantizeLinear → ConvInteger (uint8 weights around zero point 128 with
 * per-output-channel scales, applied after the integer convolution) → Cast → Mul. Nodes inside If/Loop/Scan
 * subgraphs are quantized in place (their outer-scope inputs are read where they are; each subgraph quantizes its
 * own activations).
 */
export function quantizeDynamic(model: Model, opts: DynamicQuantOptions = {}): DynamicResult {
  // DynamicQuantizeLinear exists from opset 11: an older model is upgraded first (outputs kept)
  const up = ensureOpset(model, 11, 'DynamicQuantizeLinear needs opset 11');
  const m = up.upgrade ? up.model : model.clone();
  tryInferShapes(m);
  checkFilter(m, opts);
  const ok = filterFor(m, opts);
  const nodes: string[] = [];
  const skipped: SkippedNode[] = [];
  const perChannel = opts.perChannel ?? true;
  for (const g of [...allGraphs(m.graph)]) {
    const e = new Emitter(g, { opset: m.opset('') ?? 13, prefix: '' });
    const dq = new Map<Value, { xq: Value; xs: Value; xzp: Value }>();
    const dynamicQuant = (x: Value) => {
      let xs = dq.get(x);
      if (!xs) {
        const dql = e.node('DynamicQuantizeLinear', [x], {}, { outputs: 3 });
        xs = { xq: dql.output(0), xs: dql.output(1), xzp: dql.output(2) };
        dq.set(x, xs);
      }
      return xs;
    };
    let changed = false;
    for (const n of [...g.nodes]) {
      if (!isOp(n, 'MatMul', 'Gemm', 'Conv')) continue;
      if (!ok(n)) {
        skipped.push({ node: n.label, opType: n.opType, reason: 'excluded' });
        continue;
      }
      const why = whyNot(n);
      if (why) {
        skipped.push({ node: n.label, opType: n.opType, reason: why });
        continue;
      }
      const label = n.label;
      e.prefix = label;
      changed = true;
      nodes.push(label);
      if (n.opType === 'Conv') {
        quantizeConv(g, e, n, dynamicQuant(n.input(0)), perChannel);
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
      const xs = dynamicQuant(x);
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
        replaceNodes(g, [n], { opType: 'Mul', inputs: [f, scale], name: g.uniqueName(`${label}/Mul`) }, [
          out,
        ]);
    }
    if (changed) {
      g.toposort();
      g.removeUnused();
    }
  }
  cleanup(m);
  const notes = [
    `Quantized ${nodes.length} MatMul/Gemm/Conv node(s) dynamically (${perChannel ? 'per-channel' : 'per-tensor'} int8 weights, uint8 activations at run time)`,
  ];
  for (const s of skipped) notes.push(`Kept ${s.opType} "${s.node}" float: ${s.reason}`);
  if (up.upgrade) notes.unshift(upgradeNote(up.upgrade));
  return { model: m, nodes, skipped, notes, ...(up.upgrade ? { opsetUpgrade: up.upgrade } : {}) };
}

/** Conv → ConvInteger on the dynamically quantized input, uint8 weights (zero point 128), float rescale after. */
function quantizeConv(
  g: Graph,
  e: Emitter,
  n: Node,
  xs: { xq: Value; xs: Value; xzp: Value },
  perChannel: boolean,
): void {
  const w = constTensor(n.inputs[1])!;
  const M = w.dims[0]!;
  const qw = quantizeWeightInt8(w, perChannel ? 0 : null);
  const u8 = Uint8Array.from(qw.q, (v) => v + 128);
  const wq = e.constant(new T('uint8', w.dims, u8), 'weight_quantized');
  const wzp = e.constant(T.scalar('uint8', 128), 'weight_zero_point');
  const attrs: Record<string, Attr> = {};
  for (const k of ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides']) {
    const a = n.attr(k);
    if (a) attrs[k] = a;
  }
  const ci = e.op('ConvInteger', [xs.xq, wq, xs.xzp, wzp], attrs);
  const f = e.op('Cast', [ci], { to: A.int(1) });
  const bshape = [1, M, ...new Array<number>(w.dims.length - 2).fill(1)];
  const ws = e.constant(
    qw.scales.length === 1 ? T.scalar('float32', qw.scales[0]!) : T.from('float32', bshape, qw.scales),
    'weight_scale',
  );
  const scale = e.op('Mul', [xs.xs, ws]);
  const out = n.output(0);
  const bt = constTensor(n.inputs[2]);
  if (bt) {
    const y = e.op('Mul', [f, scale]);
    const b = e.constant(T.from('float32', bshape, Float32Array.from(f64(bt))), 'bias');
    replaceNodes(g, [n], { opType: 'Add', inputs: [y, b], name: g.uniqueName(`${n.label}/Add`) }, [out]);
  } else
    replaceNodes(g, [n], { opType: 'Mul', inputs: [f, scale], name: g.uniqueName(`${n.label}/Mul`) }, [out]);
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
