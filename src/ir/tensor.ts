// Constant tensor data (initializers, attribute tensors). Data is kept as raw little-endian bytes, exactly as ONNX
// stores `raw_data` (sub-byte types packed two or four to a byte, low bits first), so a round trip is exact for
// every dtype, including ones JavaScript has no typed array for. Typed views are made on demand.
import { type DType, dtypeByteLength, isFloat } from './dtype.js';
import { InternalError, ShapeError } from '../errors.js';

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** Where a tensor's bytes came from when it was read from an external data file (information only). */
export interface ExternalSource {
  location: string;
  offset: number;
  length: number;
}

export function numelOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export class Tensor {
  readonly dtype: DType;
  readonly dims: readonly number[];
  /** Raw little-endian bytes (empty for dtype 'string'). */
  readonly bytes: Uint8Array;
  /** Elements of a 'string' tensor, as raw bytes. */
  readonly strings: readonly Uint8Array[] | undefined;
  /** Name as stored in the file (initializer name or attribute tensor name); informational. */
  name: string;
  docString: string;
  external: ExternalSource | undefined;

  constructor(
    dtype: DType,
    dims: readonly number[],
    bytes: Uint8Array,
    opts: {
      strings?: readonly Uint8Array[];
      name?: string;
      docString?: string;
      external?: ExternalSource;
    } = {},
  ) {
    this.dtype = dtype;
    this.dims = Object.freeze([...dims]);
    this.bytes = bytes;
    this.strings = opts.strings;
    this.name = opts.name ?? '';
    this.docString = opts.docString ?? '';
    this.external = opts.external;
    const numel = numelOf(dims);
    if (dtype === 'string') {
      if ((opts.strings?.length ?? 0) !== numel)
        throw new ShapeError(
          'tensor-size',
          `Tensor "${this.name}" of dtype string has ${opts.strings?.length ?? 0} elements but dims [${dims}] need ${numel}`,
          { value: this.name },
        );
    } else if (bytes.byteLength !== dtypeByteLength(dtype, numel)) {
      throw new ShapeError(
        'tensor-size',
        `Tensor "${this.name}" of dtype ${dtype} and dims [${dims}] needs ${dtypeByteLength(dtype, numel)} bytes: it has ${bytes.byteLength}`,
        { value: this.name },
      );
    }
  }

  get numel(): number {
    return numelOf(this.dims);
  }

  get byteLength(): number {
    return this.bytes.byteLength;
  }

  /** Build from a typed array (copied unless `share` is true). */
  static from(dtype: DType, dims: readonly number[], data: TypedArray | number[], name = ''): Tensor {
    let bytes: Uint8Array;
    if (Array.isArray(data)) {
      const arr = typedArrayFor(dtype, data.length);
      if (arr instanceof BigInt64Array || arr instanceof BigUint64Array) {
        for (let i = 0; i < data.length; i++) arr[i] = BigInt(Math.trunc(data[i]!));
      } else {
        (arr as Float32Array).set(data);
      }
      bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
    } else {
      bytes = new Uint8Array(data.byteLength);
      bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    return new Tensor(dtype, dims, bytes, { name });
  }

  static scalar(dtype: DType, value: number, name = ''): Tensor {
    return Tensor.from(dtype, [], [value], name);
  }

  /**
   * A typed array over the data: Float32Array for float32, Uint16Array for float16/bfloat16, BigInt64Array for
   * int64, Uint8Array for bool, 8-bit floats and packed sub-byte types. Shares memory when aligned, else copies.
   * Do not write into the result: tensors are treated as immutable.
   */
  typed(): TypedArray {
    if (this.dtype === 'string')
      throw new InternalError('tensor-string', `Tensor "${this.name}" holds strings`);
    const ctor = typedCtor(this.dtype);
    const bpe = ctor.BYTES_PER_ELEMENT;
    const len = bpe === 1 ? this.bytes.byteLength : this.bytes.byteLength / bpe;
    if (this.bytes.byteOffset % bpe === 0) return new ctor(this.bytes.buffer, this.bytes.byteOffset, len);
    // copy into a fresh, aligned buffer (never Buffer#slice: on a Node Buffer it is a view, not a copy)
    const copy = new Uint8Array(this.bytes.byteLength);
    copy.set(this.bytes);
    return new ctor(copy.buffer, 0, len);
  }

  /** Values as float64 numbers (any numeric dtype; int64 converted with Number()). */
  toNumbers(): number[] {
    return Array.from(this.toFloat64());
  }

  /** Values converted to Float64Array (decodes float16/bfloat16 and sub-byte ints). */
  toFloat64(): Float64Array {
    const n = this.numel;
    const out = new Float64Array(n);
    switch (this.dtype) {
      case 'float16': {
        const u = this.typed() as Uint16Array;
        for (let i = 0; i < n; i++) out[i] = halfToFloat(u[i]!);
        return out;
      }
      case 'bfloat16': {
        const u = this.typed() as Uint16Array;
        const f = new Float32Array(1);
        const w = new Uint32Array(f.buffer);
        for (let i = 0; i < n; i++) {
          w[0] = u[i]! << 16;
          out[i] = f[0]!;
        }
        return out;
      }
      case 'int4':
      case 'uint4': {
        for (let i = 0; i < n; i++) {
          const b = this.bytes[i >> 1]!;
          let v = i & 1 ? b >> 4 : b & 15;
          if (this.dtype === 'int4' && v >= 8) v -= 16;
          out[i] = v;
        }
        return out;
      }
      case 'int2':
      case 'uint2': {
        for (let i = 0; i < n; i++) {
          const b = this.bytes[i >> 2]!;
          let v = (b >> ((i & 3) * 2)) & 3;
          if (this.dtype === 'int2' && v >= 2) v -= 4;
          out[i] = v;
        }
        return out;
      }
      case 'float8e4m3fn':
      case 'float8e4m3fnuz':
      case 'float8e5m2':
      case 'float8e5m2fnuz':
      case 'float4e2m1':
      case 'float8e8m0':
      case 'complex64':
      case 'complex128':
      case 'string':
        throw new InternalError(
          'tensor-convert',
          `Cannot convert tensor "${this.name}" of dtype ${this.dtype} to numbers`,
        );
      default: {
        const t = this.typed();
        for (let i = 0; i < n; i++) out[i] = Number(t[i]!);
        return out;
      }
    }
  }

  /** Float32 copy of a float tensor (float32/float16/bfloat16/float64). */
  toFloat32(): Float32Array {
    if (this.dtype === 'float32') return (this.typed() as Float32Array).slice();
    if (!isFloat(this.dtype) && this.dtype !== 'int64' && this.dtype !== 'int32')
      return Float32Array.from(this.toFloat64());
    return Float32Array.from(this.toFloat64());
  }

  equals(o: Tensor): boolean {
    if (this.dtype !== o.dtype || this.dims.length !== o.dims.length) return false;
    for (let i = 0; i < this.dims.length; i++) if (this.dims[i] !== o.dims[i]) return false;
    if (this.dtype === 'string') {
      const a = this.strings!;
      const b = o.strings!;
      return a.every((s, i) => Buffer.compare(s, b[i]!) === 0);
    }
    return Buffer.compare(this.bytes, o.bytes) === 0;
  }
}

type TypedCtor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray;
  new (length: number): TypedArray;
  BYTES_PER_ELEMENT: number;
};

export function typedCtor(d: DType): TypedCtor {
  switch (d) {
    case 'float32':
      return Float32Array as unknown as TypedCtor;
    case 'float64':
      return Float64Array as unknown as TypedCtor;
    case 'int8':
      return Int8Array as unknown as TypedCtor;
    case 'int16':
      return Int16Array as unknown as TypedCtor;
    case 'uint16':
    case 'float16':
    case 'bfloat16':
      return Uint16Array as unknown as TypedCtor;
    case 'int32':
      return Int32Array as unknown as TypedCtor;
    case 'uint32':
      return Uint32Array as unknown as TypedCtor;
    case 'int64':
      return BigInt64Array as unknown as TypedCtor;
    case 'uint64':
      return BigUint64Array as unknown as TypedCtor;
    case 'complex64':
      return Float32Array as unknown as TypedCtor;
    case 'complex128':
      return Float64Array as unknown as TypedCtor;
    default:
      return Uint8Array as unknown as TypedCtor;
  }
}

export function typedArrayFor(d: DType, numel: number): TypedArray {
  const ctor = typedCtor(d);
  return new ctor(d === 'complex64' || d === 'complex128' ? numel * 2 : numel);
}

/** IEEE half → float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** float → IEEE half, round to nearest even. */
export function floatToHalf(v: number): number {
  const f32 = new Float32Array([v]);
  const x = new Uint32Array(f32.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}
