// Quantization arithmetic that runs once per model (DESIGN.md allows JS loops here): scales and zero points from
// ranges, per-channel symmetric weights, int32 biases, round-to-nearest-even as ONNX QuantizeLinear does it, and
// the 4-bit block packing of com.microsoft MatMulNBits. Nothing here runs per inference.
import { InternalError } from '../../errors.js';
import type { Tensor } from '../../ir/index.js';
import { Tensor as T } from '../../ir/index.js';
import { f64 } from '../util.js';

export type QType = 'uint8' | 'int8';

export const QRANGE: Record<QType, { min: number; max: number }> = {
  uint8: { min: 0, max: 255 },
  int8: { min: -128, max: 127 },
};

/** Round half to even (ONNX QuantizeLinear's rounding, numpy's `rint`). */
export function rint(x: number): number {
  const r = Math.round(x);
  // Math.round rounds .5 up; bring exact halves to the even neighbour
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

export interface QParams {
  /** float32-representable scale (> 0). */
  scale: number;
  zeroPoint: number;
  qtype: QType;
}

/** Smallest scale we emit: keeps 1/scale finite and a constant tensor's scale valid. */
const MIN_SCALE = 1e-12;

/**
 * Scale and zero point covering [min, max] (widened to include 0, as every ONNX quantizer does so that zero is
 * exact). Symmetric: zero point 0 (int8) or 128 (uint8) and the range ±max(|min|, |max|).
 */
export function rangeParams(min: number, max: number, qtype: QType, symmetric = false): QParams {
  if (!Number.isFinite(min) || !Number.isFinite(max))
    throw new InternalError('quant-range', `Cannot quantize the range [${min}, ${max}]`);
  let lo = Math.min(min, 0);
  let hi = Math.max(max, 0);
  const { min: qmin, max: qmax } = QRANGE[qtype];
  if (symmetric) {
    const a = Math.max(-lo, hi);
    const scale = Math.fround(Math.max(a / ((qmax - qmin) / 2), MIN_SCALE));
    return { scale, zeroPoint: qtype === 'uint8' ? 128 : 0, qtype };
  }
  if (hi - lo < MIN_SCALE) {
    lo = 0;
    hi = MIN_SCALE * (qmax - qmin);
  }
  const scale = Math.fround((hi - lo) / (qmax - qmin));
  const zeroPoint = clamp(rint(qmin - lo / scale), qmin, qmax);
  return { scale, zeroPoint, qtype };
}

export function quantizeValue(x: number, p: QParams): number {
  const { min, max } = QRANGE[p.qtype];
  return clamp(rint(x / p.scale) + p.zeroPoint, min, max);
}

export function dequantizeValue(q: number, p: QParams): number {
  return (q - p.zeroPoint) * p.scale;
}

/** Quantize an array per tensor (returns the integer codes). */
export function quantizeArray(x: ArrayLike<number>, p: QParams): Int8Array | Uint8Array {
  const out = p.qtype === 'int8' ? new Int8Array(x.length) : new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = quantizeValue(x[i]!, p);
  return out;
}

export function dequantizeArray(q: ArrayLike<number>, p: QParams): Float32Array {
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) out[i] = dequantizeValue(q[i]!, p);
  return out;
}

/** A weight quantized symmetrically to int8, per tensor (scales.length 1) or per channel along `axis`. */
export interface QuantizedWeight {
  q: Int8Array;
  /** One scale per channel (or one). */
  scales: Float32Array;
  axis: number;
  dims: readonly number[];
}

/**
 * Symmetric int8 weights: scale = max|w| / 127 per channel of `axis` (or per tensor), zero point 0, codes in
 * [-127, 127] (the -128 code is left unused so that the range is symmetric, as ORT's tools do). A channel of zeros
 * gets scale 1.
 */
export function quantizeWeightInt8(w: Tensor, axis: number | null): QuantizedWeight {
  const x = f64(w);
  const dims = w.dims;
  const ax = axis === null ? -1 : axis < 0 ? axis + dims.length : axis;
  const channels = ax < 0 ? 1 : dims[ax]!;
  const inner = ax < 0 ? x.length : dims.slice(ax + 1).reduce((a, b) => a * b, 1);
  const chan = (i: number) => (ax < 0 ? 0 : Math.floor(i / inner) % channels);
  const amax = new Float64Array(channels);
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    const c = chan(i);
    if (a > amax[c]!) amax[c] = a;
  }
  const scales = Float32Array.from(amax, (a) => (a > 0 ? Math.max(a / 127, MIN_SCALE) : 1));
  const q = new Int8Array(x.length);
  for (let i = 0; i < x.length; i++) q[i] = clamp(rint(x[i]! / scales[chan(i)]!), -127, 127);
  return { q, scales, axis: ax, dims };
}

export function dequantizeWeight(w: QuantizedWeight): Float32Array {
  const channels = w.scales.length;
  const inner = w.axis < 0 ? w.q.length : w.dims.slice(w.axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(w.q.length);
  for (let i = 0; i < w.q.length; i++)
    out[i] = w.q[i]! * w.scales[w.axis < 0 ? 0 : Math.floor(i / inner) % channels]!;
  return out;
}

/**
 * Bias quantized to int32 with scale inputScale · weightScale[c] (the scale the integer kernels accumulate in),
 * zero point 0. Values beyond int32 are clamped (they cannot occur with calibrated scales unless a bias is huge).
 */
export function quantizeBias(
  bias: Tensor,
  inputScale: number,
  weightScales: Float32Array,
): { q: Int32Array; scales: Float32Array } {
  const b = f64(bias);
  const n = b.length;
  const scales = new Float32Array(n);
  const q = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const s = Math.fround(inputScale * weightScales[weightScales.length === 1 ? 0 : i]!);
    scales[i] = s;
    q[i] = s > 0 ? clamp(rint(b[i]! / s), -2147483648, 2147483647) : 0;
  }
  return { q, scales };
}

/** Signal-to-quantization-noise ratio in dB: 10·log10(Σ ref² / Σ (ref − test)²); Infinity when equal. */
export function sqnr(ref: ArrayLike<number>, test: ArrayLike<number>): number {
  if (ref.length !== test.length)
    throw new InternalError('sqnr-length', `SQNR of arrays of lengths ${ref.length} and ${test.length}`);
  let s = 0;
  let e = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const d = r - test[i]!;
    s += r * r;
    e += d * d;
  }
  if (e === 0) return Infinity;
  if (s === 0) return -Infinity;
  return 10 * Math.log10(s / e);
}

/** Accumulates SQNR over several batches. */
export class SqnrAccumulator {
  signal = 0;
  noise = 0;
  add(ref: ArrayLike<number>, test: ArrayLike<number>): void {
    const n = Math.min(ref.length, test.length);
    for (let i = 0; i < n; i++) {
      const r = ref[i]!;
      const d = r - test[i]!;
      this.signal += r * r;
      this.noise += d * d;
    }
  }
  get db(): number {
    if (this.noise === 0) return Infinity;
    if (this.signal === 0) return -Infinity;
    return 10 * Math.log10(this.signal / this.noise);
  }
}

// ------------------------------------------------------------------------------------------------------------
// 4-bit blocks for com.microsoft MatMulNBits
// ------------------------------------------------------------------------------------------------------------

/**
 * A [K, N] weight (as MatMul reads it) quantized to `bits` in blocks of `blockSize` along K, per output column n.
 * `codes` holds unsigned codes 0..2^bits−1 in MatMulNBits order: [N][kBlocks·blockSize] (K padded with zero codes
 * at the zero point). Dequantized value = (code − zeroPoint) · scale.
 */
export interface BlockQuantized {
  K: number;
  N: number;
  bits: number;
  blockSize: number;
  kBlocks: number;
  /** N · kBlocks · blockSize unsigned codes. */
  codes: Uint8Array;
  /** N · kBlocks scales (row n, block b at n·kBlocks + b). */
  scales: Float32Array;
  /** N · kBlocks zero points (unsigned codes); all 2^(bits−1) when symmetric. */
  zeroPoints: Uint8Array;
  symmetric: boolean;
}

/** Scale and zero point of one block of values (4-bit codes 0..15). */
export function blockParams(
  values: ArrayLike<number>,
  bits: number,
  symmetric: boolean,
): { scale: number; zeroPoint: number } {
  const qmax = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (symmetric) {
    // zero point 2^(bits−1): codes reach −mid below it and mid−1 above, so the scale is the smallest that keeps
    // both extremes in range (the negative side can use the extra code)
    const scale = Math.max(-lo / mid, hi / (mid - 1));
    if (scale === 0) return { scale: 1, zeroPoint: mid };
    return { scale: Math.fround(scale), zeroPoint: mid };
  }
  if (hi - lo === 0) return { scale: 1, zeroPoint: mid };
  const scale = Math.fround((hi - lo) / qmax);
  return { scale, zeroPoint: clamp(rint(-lo / scale), 0, qmax) };
}

export function quantizeToCode(x: number, scale: number, zeroPoint: number, bits: number): number {
  return clamp(rint(x / scale) + zeroPoint, 0, (1 << bits) - 1);
}

/**
 * Round-to-nearest block quantization of a [K, N] matrix given as float64 `w` (row-major, w[k·N + n]) or, with
 * `transposed`, as [N, K] (w[n·K + k], Gemm transB = 1 / torch Linear layout).
 */
export function quantizeBlocksRtn(
  w: ArrayLike<number>,
  K: number,
  N: number,
  opts: { bits?: number; blockSize: number; symmetric: boolean; transposed?: boolean },
): BlockQuantized {
  const bits = opts.bits ?? 4;
  const bs = opts.blockSize;
  const kBlocks = Math.ceil(K / bs);
  const codes = new Uint8Array(N * kBlocks * bs);
  const scales = new Float32Array(N * kBlocks);
  const zeroPoints = new Uint8Array(N * kBlocks);
  const at = opts.transposed
    ? (k: number, n: number) => w[n * K + k]!
    : (k: number, n: number) => w[k * N + n]!;
  const block = new Float64Array(bs);
  for (let n = 0; n < N; n++)
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * bs;
      const len = Math.min(bs, K - k0);
      for (let i = 0; i < len; i++) block[i] = at(k0 + i, n);
      const { scale, zeroPoint } = blockParams(block.subarray(0, len), bits, opts.symmetric);
      scales[n * kBlocks + b] = scale;
      zeroPoints[n * kBlocks + b] = zeroPoint;
      const base = (n * kBlocks + b) * bs;
      for (let i = 0; i < bs; i++)
        codes[base + i] = i < len ? quantizeToCode(block[i]!, scale, zeroPoint, bits) : zeroPoint;
    }
  return { K, N, bits, blockSize: bs, kBlocks, codes, scales, zeroPoints, symmetric: opts.symmetric };
}

/** The dequantized [K, N] matrix (row-major) of block-quantized weights. */
export function dequantizeBlocks(q: BlockQuantized): Float32Array {
  const { K, N, kBlocks, blockSize: bs } = q;
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / bs);
      const s = q.scales[n * kBlocks + b]!;
      const z = q.zeroPoints[n * kBlocks + b]!;
      out[k * N + n] = Math.fround((q.codes[(n * kBlocks + b) * bs + (k % bs)]! - z) * s);
    }
  return out;
}

/**
 * MatMulNBits tensors: B uint8 [N, kBlocks, blockSize·bits/8] (within a byte the lower-index element in the low
 * bits), scales float32 [N·kBlocks], zero points uint8 [N·ceil(kBlocks·bits/8)] (two 4-bit zero points per byte,
 * low nibble first, each row padded to whole bytes) — omitted when symmetric (MatMulNBits then uses 2^(bits−1)).
 */
export function packMatMulNBits(
  q: BlockQuantized,
  names: { b: string; scales: string; zeroPoints: string },
): {
  B: Tensor;
  scales: Tensor;
  zeroPoints: Tensor | undefined;
} {
  if (q.bits !== 4) throw new InternalError('nbits', `Only 4-bit packing is implemented, not ${q.bits}`);
  const blob = (q.blockSize * q.bits) / 8;
  const bytes = new Uint8Array(q.N * q.kBlocks * blob);
  for (let i = 0; i < bytes.length; i++)
    bytes[i] = (q.codes[2 * i]! & 15) | ((q.codes[2 * i + 1]! & 15) << 4);
  const B = new T('uint8', [q.N, q.kBlocks, blob], bytes, { name: names.b });
  const scales = T.from('float32', [q.N * q.kBlocks], q.scales, names.scales);
  let zeroPoints: Tensor | undefined;
  if (!q.symmetric) {
    const perRow = Math.ceil((q.kBlocks * q.bits) / 8);
    const zp = new Uint8Array(q.N * perRow);
    for (let n = 0; n < q.N; n++)
      for (let b = 0; b < q.kBlocks; b++) {
        const v = q.zeroPoints[n * q.kBlocks + b]! & 15;
        zp[n * perRow + (b >> 1)]! |= b & 1 ? v << 4 : v;
      }
    zeroPoints = new T('uint8', [q.N * perRow], zp, { name: names.zeroPoints });
  }
  return { B, scales, zeroPoints };
}

/** Inverse of packMatMulNBits (for tests and reports): codes, scales and zero points back from the tensors. */
export function unpackMatMulNBits(
  B: Tensor,
  scales: Tensor,
  zeroPoints: Tensor | undefined,
  K: number,
  N: number,
  blockSize: number,
  bits = 4,
): BlockQuantized {
  if (bits !== 4) throw new InternalError('nbits', `Only 4-bit unpacking is implemented, not ${bits}`);
  const kBlocks = Math.ceil(K / blockSize);
  const raw = new Uint8Array(B.bytes);
  const codes = new Uint8Array(N * kBlocks * blockSize);
  for (let i = 0; i < raw.length; i++) {
    codes[2 * i] = raw[i]! & 15;
    codes[2 * i + 1] = raw[i]! >> 4;
  }
  const s = Float32Array.from(f64(scales));
  const zeroPointsOut = new Uint8Array(N * kBlocks).fill(1 << (bits - 1));
  if (zeroPoints) {
    const perRow = Math.ceil((kBlocks * bits) / 8);
    const z = new Uint8Array(zeroPoints.bytes);
    for (let n = 0; n < N; n++)
      for (let b = 0; b < kBlocks; b++) {
        const byte = z[n * perRow + (b >> 1)]!;
        zeroPointsOut[n * kBlocks + b] = b & 1 ? byte >> 4 : byte & 15;
      }
  }
  return {
    K,
    N,
    bits,
    blockSize,
    kBlocks,
    codes,
    scales: s,
    zeroPoints: zeroPointsOut,
    symmetric: !zeroPoints,
  };
}
