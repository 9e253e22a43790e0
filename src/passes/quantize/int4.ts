// INT4 weight-only quantization into com.microsoft MatMulNBits.
//
// Every MatMul (and Gemm with transA = 0) whose second input is a constant 2-D float32 weight becomes
// MatMulNBits(A, B, scales[, zero_points][, bias]) with bits = 4 and blocks of `blockSize` (a power of two ≥ 16)
// along K, one scale (and, asymmetric, one 4-bit zero point) per block and output column. Two ways to round:
//   rtn   round to nearest, block by block;
//   gptq  GPTQ (Frantar et al., 2022): columns of K are quantized in order and the rounding error of each is
//         spread over the not-yet-quantized ones through the inverse Hessian H⁻¹ of the layer's inputs,
//         H = 2·XᵀX over the calibration activations X (collected by ORT; see calibrate.ts `collectGram`). Block
//         scales are chosen from the updated weights when a block starts ("lazy" groups).
// The packing follows MatMulNBits' layout (numeric.ts `packMatMulNBits`).
import { InputError } from '../../errors.js';
import type { Model, Node, Tensor } from '../../ir/index.js';
import { A, allGraphs, Tensor as T, cleanup } from '../../ir/index.js';
import { defineModelPass } from '../manager.js';
import { constTensor, f64, isOp, replaceNodes, tryInferShapes } from '../util.js';
import { collectGram, type Feeds } from './calibrate.js';
import {
  blockParams,
  packMatMulNBits,
  quantizeBlocksRtn,
  quantizeToCode,
  type BlockQuantized,
} from './numeric.js';
import { checkFilter, filterFor, type NodeFilter } from './select.js';
import { keptFindings, type SkippedNode } from './static.js';

import type { Int4Method } from '../names.js';
export { INT4_METHODS, type Int4Method } from '../names.js';

export interface Int4Options extends NodeFilter {
  method?: Int4Method;
  /** Block size along K: 32, 64, 128 … (power of two ≥ 16; default 32). */
  blockSize?: number;
  /** Symmetric blocks (no zero points stored; default true). */
  symmetric?: boolean;
  /** MatMulNBits accuracy_level: 0 keeps A in float32; 4 lets ORT quantize A to int8 (faster, less exact). */
  accuracyLevel?: number;
  /** GPTQ: calibration batches (feeds of the model's inputs). */
  calibration?: readonly Feeds[];
  /** GPTQ: damping as a fraction of the mean diagonal of H (default 0.01). */
  damp?: number;
  threads?: number;
}

export interface Int4Result {
  model: Model;
  nodes: string[];
  skipped: SkippedNode[];
  /** Bytes of the float32 weights replaced, and of their packed replacement (B + scales + zero points). */
  weightBytesBefore: number;
  weightBytesAfter: number;
  notes: string[];
}

interface Target {
  node: Node;
  K: number;
  N: number;
  /** Weight as float64, laid out [K, N] (transposed = false) or [N, K] (transposed = true). */
  w: Float64Array;
  transposed: boolean;
  bias: Tensor | undefined;
  weightBytes: number;
}

function target(n: Node): Target | string {
  const wt = constTensor(n.inputs[1]);
  if (!wt) return `its weight "${n.inputs[1]?.name}" is not a constant`;
  if (wt.dtype !== 'float32') return `its weight is ${wt.dtype}, not float32`;
  if (wt.dims.length !== 2) return `its weight has rank ${wt.dims.length}, not 2`;
  const a = n.inputs[0];
  if (!a || constTensor(a)) return 'its first input is a constant';
  if (a.dtype && a.dtype !== 'float32') return `its input is ${a.dtype}, not float32`;
  if (a.shape && a.shape.length < 2) return `its input has rank ${a.shape.length}`;
  let w = f64(wt);
  let transposed = false;
  let [K, N] = wt.dims as [number, number];
  let bias: Tensor | undefined;
  if (n.opType === 'Gemm') {
    if (n.attrInt('transA', 0)) return 'transA = 1';
    if (a.shape && a.shape.length !== 2) return `its input has rank ${a.shape.length}`;
    const alpha = n.attrFloat('alpha', 1);
    const beta = n.attrFloat('beta', 1);
    if (alpha !== 1) w = w.map((v) => v * alpha);
    if (n.attrInt('transB', 0)) {
      transposed = true;
      [N, K] = wt.dims as [number, number];
    }
    const c = n.inputs[2];
    if (c) {
      const ct = constTensor(c);
      if (!ct) return `its bias "${c.name}" is not a constant`;
      if (ct.numel !== N || ct.dims.length > 2 || (ct.dims.length === 2 && ct.dims[0] !== 1))
        return `its bias has shape [${ct.dims}], not [${N}]`;
      bias = T.from(
        'float32',
        [N],
        Float32Array.from(f64(ct), (v) => v * beta),
      );
    }
  }
  return { node: n, K, N, w, transposed, bias, weightBytes: wt.byteLength };
}

/** Lower Cholesky factor of a symmetric positive definite K×K matrix (row-major); undefined when not PD. */
export function cholesky(h: Float64Array, K: number): Float64Array | undefined {
  const L = new Float64Array(K * K);
  for (let i = 0; i < K; i++) {
    for (let j = 0; j <= i; j++) {
      let s = h[i * K + j]!;
      for (let k = 0; k < j; k++) s -= L[i * K + k]! * L[j * K + k]!;
      if (i === j) {
        if (!(s > 0)) return undefined;
        L[i * K + i] = Math.sqrt(s);
      } else L[i * K + j] = s / L[j * K + j]!;
    }
  }
  return L;
}

/** The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), with damping raised until H is positive definite. */
function inverseHessianFactor(h: Float64Array, K: number, damp: number): Float64Array {
  let mean = 0;
  for (let i = 0; i < K; i++) mean += h[i * K + i]!;
  mean = mean / K || 1;
  for (let d = damp; d < 1e6; d *= 10) {
    const H = Float64Array.from(h);
    for (let i = 0; i < K; i++) H[i * K + i]! += d * mean;
    const L = cholesky(H, K);
    if (!L) continue;
    // L⁻¹ (lower) by forward substitution, then H⁻¹ = L⁻ᵀ L⁻¹
    const Li = new Float64Array(K * K);
    for (let c = 0; c < K; c++) {
      Li[c * K + c] = 1 / L[c * K + c]!;
      for (let i = c + 1; i < K; i++) {
        let s = 0;
        for (let k = c; k < i; k++) s -= L[i * K + k]! * Li[k * K + c]!;
        Li[i * K + c] = s / L[i * K + i]!;
      }
    }
    const Hi = new Float64Array(K * K);
    for (let i = 0; i < K; i++)
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let k = i; k < K; k++) s += Li[k * K + i]! * Li[k * K + j]!;
        Hi[i * K + j] = s;
        Hi[j * K + i] = s;
      }
    const L2 = cholesky(Hi, K);
    if (!L2) continue;
    const U = new Float64Array(K * K);
    for (let i = 0; i < K; i++) for (let j = 0; j <= i; j++) U[j * K + i] = L2[i * K + j]!;
    return U;
  }
  throw new InputError(
    'gptq-hessian',
    'GPTQ: the input statistics of a layer are degenerate even with heavy damping',
    {},
  );
}

/**
 * GPTQ block quantization of a weight (see the file header). `w` is [K, N] (or [N, K] when `transposed`),
 * `gram` = XᵀX of the layer's inputs (K×K).
 */
export function gptqBlocks(
  w: Float64Array,
  K: number,
  N: number,
  gram: Float64Array,
  opts: { blockSize: number; symmetric: boolean; transposed?: boolean; damp?: number; bits?: number },
): BlockQuantized {
  const bits = opts.bits ?? 4;
  const bs = opts.blockSize;
  const kBlocks = Math.ceil(K / bs);
  // working copy W[k][n]
  const W = new Float64Array(K * N);
  for (let k = 0; k < K; k++)
    for (let n = 0; n < N; n++) W[k * N + n] = opts.transposed ? w[n * K + k]! : w[k * N + n]!;
  const H = Float64Array.from(gram);
  for (let k = 0; k < K; k++)
    if (H[k * K + k] === 0) {
      H[k * K + k] = 1; // an input that is always 0: its weights do not matter
      for (let n = 0; n < N; n++) W[k * N + n] = 0;
    }
  const U = inverseHessianFactor(H, K, opts.damp ?? 0.01);
  const codes = new Uint8Array(N * kBlocks * bs);
  const scales = new Float32Array(N * kBlocks);
  const zeroPoints = new Uint8Array(N * kBlocks);
  const err = new Float64Array(N);
  const col = new Float64Array(bs);
  for (let k = 0; k < K; k++) {
    const b = Math.floor(k / bs);
    if (k % bs === 0) {
      const len = Math.min(bs, K - k);
      for (let n = 0; n < N; n++) {
        for (let i = 0; i < len; i++) col[i] = W[(k + i) * N + n]!;
        const p = blockParams(col.subarray(0, len), bits, opts.symmetric);
        scales[n * kBlocks + b] = p.scale;
        zeroPoints[n * kBlocks + b] = p.zeroPoint;
      }
    }
    const d = U[k * K + k]!;
    for (let n = 0; n < N; n++) {
      const s = scales[n * kBlocks + b]!;
      const z = zeroPoints[n * kBlocks + b]!;
      const x = W[k * N + n]!;
      const c = quantizeToCode(x, s, z, bits);
      codes[(n * kBlocks + b) * bs + (k % bs)] = c;
      err[n] = (x - (c - z) * s) / d;
    }
    for (let j = k + 1; j < K; j++) {
      const u = U[k * K + j]!;
      if (u === 0) continue;
      const row = j * N;
      for (let n = 0; n < N; n++) W[row + n]! -= err[n]! * u;
    }
  }
  // padding codes of the last block sit at the zero point
  for (let n = 0; n < N; n++)
    for (let k = K; k < kBlocks * bs; k++)
      codes[(n * kBlocks + kBlocks - 1) * bs + (k % bs)] = zeroPoints[n * kBlocks + kBlocks - 1]!;
  return { K, N, bits, blockSize: bs, kBlocks, codes, scales, zeroPoints, symmetric: opts.symmetric };
}

/** Quantize the MatMul/Gemm weights of `model` to 4-bit blocks in MatMulNBits nodes. */
export async function quantizeInt4(model: Model, opts: Int4Options = {}): Promise<Int4Result> {
  const method = opts.method ?? 'rtn';
  const blockSize = opts.blockSize ?? 32;
  if (!Number.isInteger(blockSize) || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0)
    throw new InputError(
      'block-size',
      `--block-size must be a power of two ≥ 16 (e.g. 32, 64, 128): current value is ${blockSize}`,
      { value: 'block-size' },
    );
  const symmetric = opts.symmetric ?? true;
  const m = model.clone();
  tryInferShapes(m);
  checkFilter(m, opts);
  const ok = filterFor(m, opts);
  const targets: Target[] = [];
  const skipped: SkippedNode[] = [];
  // MatMul/Gemm inside If/Loop/Scan subgraphs too (their weights are replaced in their own graph)
  for (const n of [...allGraphs(m.graph)].flatMap((sg) => sg.nodes)) {
    if (!isOp(n, 'MatMul', 'Gemm')) continue;
    if (!ok(n)) {
      skipped.push({ node: n.label, opType: n.opType, reason: 'excluded' });
      continue;
    }
    const t = target(n);
    if (typeof t === 'string') skipped.push({ node: n.label, opType: n.opType, reason: t });
    else targets.push(t);
  }
  let grams: Map<string, { gram: Float64Array; rows: number }> | undefined;
  if (method === 'gptq' && targets.length) {
    if (!opts.calibration?.length)
      throw new InputError('calib-missing', 'INT4 with GPTQ needs calibration data (--calib-data)', {
        value: 'calib-data',
      });
    const inputs = new Map<string, number>();
    for (const t of targets) if (t.node.graph === m.graph) inputs.set(t.node.input(0).name, t.K);
    grams = await collectGram(
      m,
      [...inputs].map(([name, K]) => ({ name, K })),
      opts.calibration,
      { threads: opts.threads },
    );
  }
  m.opsetImports.set('com.microsoft', m.opset('com.microsoft') ?? 1);
  let before = 0;
  let after = 0;
  const nodes: string[] = [];
  const clamped: string[] = [];
  const rtnInSubgraphs: string[] = [];
  for (const t of targets) {
    const n = t.node;
    const label = n.label;
    // a block longer than K would be mostly padding: use the smallest power of two ≥ K (at least 16) instead
    const bs = Math.min(blockSize, Math.max(16, 2 ** Math.ceil(Math.log2(t.K))));
    if (bs !== blockSize) clamped.push(`${label} (K ${t.K}: block ${bs})`);
    const g = n.graph;
    // GPTQ's input statistics are collected on the main graph; nodes of subgraphs are rounded to nearest
    if (method === 'gptq' && g !== m.graph) rtnInSubgraphs.push(label);
    const q =
      method === 'gptq' && g === m.graph
        ? gptqBlocks(t.w, t.K, t.N, grams!.get(n.input(0).name)!.gram, {
            blockSize: bs,
            symmetric,
            transposed: t.transposed,
            damp: opts.damp,
          })
        : quantizeBlocksRtn(t.w, t.K, t.N, { blockSize: bs, symmetric, transposed: t.transposed });
    const base = n.inputs[1]!.name;
    const packed = packMatMulNBits(q, {
      b: `${base}_Q4`,
      scales: `${base}_scales`,
      zeroPoints: `${base}_zero_points`,
    });
    const B = g.addInitializer(`${base}_Q4`, packed.B);
    const S = g.addInitializer(`${base}_scales`, packed.scales);
    const Z = packed.zeroPoints ? g.addInitializer(`${base}_zero_points`, packed.zeroPoints) : null;
    const bias = t.bias ? g.addInitializer(`${n.inputs[2]!.name}_bias`, t.bias) : null;
    before += t.weightBytes;
    after += packed.B.byteLength + packed.scales.byteLength + (packed.zeroPoints?.byteLength ?? 0);
    const inputs = [n.input(0), B, S, Z];
    if (bias) inputs.push(null, bias);
    replaceNodes(
      g,
      [n],
      {
        opType: 'MatMulNBits',
        domain: 'com.microsoft',
        name: n.name ? g.uniqueName(`${n.name}_Q4`) : undefined,
        inputs,
        attrs: {
          K: A.int(t.K),
          N: A.int(t.N),
          bits: A.int(4),
          block_size: A.int(bs),
          ...(opts.accuracyLevel ? { accuracy_level: A.int(opts.accuracyLevel) } : {}),
        },
      },
      [n.outputs[0]!],
    );
    nodes.push(label);
  }
  for (const g of allGraphs(m.graph)) {
    for (const n of g.nodes) if (n.opType === 'MatMulNBits') n.trimInputs();
    g.removeUnused();
  }
  cleanup(m);
  const notes = [
    `Quantized ${nodes.length} MatMul/Gemm weight(s) to 4 bits (${method}, block ${blockSize}, ${symmetric ? 'symmetric' : 'asymmetric'}): ${before} → ${after} bytes (${before ? ((after / before) * 100).toFixed(1) : '0'} %)`,
  ];
  if (clamped.length) notes.push(`Smaller blocks where K < ${blockSize}: ${clamped.join(', ')}`);
  if (rtnInSubgraphs.length)
    notes.push(
      `Rounded to nearest (GPTQ needs main-graph inputs) inside subgraphs: ${rtnInSubgraphs.join(', ')}`,
    );
  for (const s of skipped) notes.push(`Kept ${s.opType} "${s.node}" float: ${s.reason}`);
  return { model: m, nodes, skipped, weightBytesBefore: before, weightBytesAfter: after, notes };
}

/** `quantize-int4` as a pass (for pipelines). */
export const int4QuantPass = defineModelPass<Int4Options>(
  'quantize-int4',
  'INT4 weight-only quantization of MatMul/Gemm weights into com.microsoft MatMulNBits',
  async (model, options) => {
    const r = await quantizeInt4(model, options);
    return {
      model: r.model,
      changed: r.nodes.length > 0,
      notes: r.notes,
      findings: keptFindings(r.skipped, 'quantize-int4'),
      counts: { 'quantize-int4': r.nodes.length },
    };
  },
  {},
);
