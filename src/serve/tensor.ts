// The wire format of tensors. JSON: `{"inputs": {"<name>": {"dtype": "float32", "shape": [1, 1, 28, 28], "data":
// [...]}}}` (data flat, row-major) answered by `{"outputs": {...}}` of the same form. Binary (Content-Type
// application/octet-stream): a UTF-8 JSON header of `Inference-Header-Content-Length` bytes in the same form but
// without `data`, then each tensor's raw little-endian bytes in the header's order (Triton's binary-tensor layout
// with edgefit's JSON). Everything a request holds is checked here, against the limits and the model's inputs,
// before anything runs.
import type { DType } from '../ir/dtype.js';
import type { TypedArray } from '../ir/tensor.js';
import type { HostTensor, ValueInfo } from '../runtime/index.js';
import { RequestError } from './errors.js';
import { NumberSpan, parseFloat32Span } from './json-body.js';

export const BINARY_CONTENT_TYPE = 'application/octet-stream';
export const HEADER_LENGTH = 'inference-header-content-length';

interface WireDType {
  bytes: number;
  make(n: number): TypedArray;
  view(b: ArrayBuffer, n: number): TypedArray;
  /** Integer range for JSON values (undefined: any number). */
  range?: [number, number];
  big?: boolean;
  bool?: boolean;
}

const DTYPES: Partial<Record<DType, WireDType>> = {
  float32: { bytes: 4, make: (n) => new Float32Array(n), view: (b, n) => new Float32Array(b, 0, n) },
  float64: { bytes: 8, make: (n) => new Float64Array(n), view: (b, n) => new Float64Array(b, 0, n) },
  // float16 travels as its 16-bit patterns (binary bodies only carry it faithfully)
  float16: {
    bytes: 2,
    make: (n) => new Uint16Array(n),
    view: (b, n) => new Uint16Array(b, 0, n),
    range: [0, 65535],
  },
  int8: {
    bytes: 1,
    make: (n) => new Int8Array(n),
    view: (b, n) => new Int8Array(b, 0, n),
    range: [-128, 127],
  },
  uint8: {
    bytes: 1,
    make: (n) => new Uint8Array(n),
    view: (b, n) => new Uint8Array(b, 0, n),
    range: [0, 255],
  },
  int16: {
    bytes: 2,
    make: (n) => new Int16Array(n),
    view: (b, n) => new Int16Array(b, 0, n),
    range: [-32768, 32767],
  },
  uint16: {
    bytes: 2,
    make: (n) => new Uint16Array(n),
    view: (b, n) => new Uint16Array(b, 0, n),
    range: [0, 65535],
  },
  int32: {
    bytes: 4,
    make: (n) => new Int32Array(n),
    view: (b, n) => new Int32Array(b, 0, n),
    range: [-2147483648, 2147483647],
  },
  uint32: {
    bytes: 4,
    make: (n) => new Uint32Array(n),
    view: (b, n) => new Uint32Array(b, 0, n),
    range: [0, 4294967295],
  },
  int64: {
    bytes: 8,
    make: (n) => new BigInt64Array(n),
    view: (b, n) => new BigInt64Array(b, 0, n),
    range: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    big: true,
  },
  uint64: {
    bytes: 8,
    make: (n) => new BigUint64Array(n),
    view: (b, n) => new BigUint64Array(b, 0, n),
    range: [0, Number.MAX_SAFE_INTEGER],
    big: true,
  },
  bool: {
    bytes: 1,
    make: (n) => new Uint8Array(n),
    view: (b, n) => new Uint8Array(b, 0, n),
    range: [0, 1],
    bool: true,
  },
};

export const WIRE_DTYPES = Object.keys(DTYPES) as DType[];

export interface Limits {
  /** Largest request body in bytes (default 64 MiB). */
  maxBodyBytes: number;
  /** Most tensor elements in one request, all inputs together (default 16 Mi). */
  maxElements: number;
}

export const DEFAULT_LIMITS: Limits = { maxBodyBytes: 64 << 20, maxElements: 16 << 20 };

type Tensors = Record<string, HostTensor>;

function bad(code: string, message: string, value?: string): RequestError {
  return new RequestError(code, message, value === undefined ? {} : { value });
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function readHeader(
  name: string,
  t: unknown,
  withData: boolean,
  limits: Limits,
  seen: { elements: number },
): { dtype: DType; dims: number[]; n: number; d: WireDType } {
  if (!isObject(t))
    throw bad('tensor', `Input "${name}" must be an object {dtype, shape${withData ? ', data' : ''}}`, name);
  const dtype = t.dtype;
  if (typeof dtype !== 'string' || !DTYPES[dtype as DType])
    throw bad(
      'dtype',
      `Input "${name}" has dtype ${JSON.stringify(dtype)}: expected one of ${WIRE_DTYPES.join(', ')}`,
      name,
    );
  const shape = t.shape;
  if (!Array.isArray(shape) || !shape.every((x) => Number.isInteger(x) && x >= 0) || shape.length > 16)
    throw bad('shape', `Input "${name}" needs "shape": an array of non-negative integers (at most 16)`, name);
  let n = 1;
  for (const x of shape as number[]) n *= x;
  seen.elements += n;
  if (seen.elements > limits.maxElements)
    throw bad(
      'too-many-elements',
      `The request holds more than ${limits.maxElements} tensor elements (the server's limit); input "${name}" has ${n}`,
      name,
    );
  return { dtype: dtype as DType, dims: shape as number[], n, d: DTYPES[dtype as DType]! };
}

function fromJsonData(name: string, dtype: DType, d: WireDType, data: unknown, n: number): TypedArray {
  if (data instanceof NumberSpan) {
    // straight from the body's bytes (json-body.ts); anything the fast path does not take is parsed as before
    if (dtype === 'float32') {
      const out = new Float32Array(n);
      const got = parseFloat32Span(data, out);
      if (got === n) return out;
      if (got >= 0)
        throw bad('data-length', `Input "${name}" has ${got} values in "data"; its shape holds ${n}`, name);
    }
    try {
      data = data.parse();
    } catch (e) {
      throw bad(
        'json',
        `The body is not valid JSON: "data" of input "${name}": ${(e as Error).message}`,
        name,
      );
    }
  }
  if (!Array.isArray(data))
    throw bad('data', `Input "${name}" needs "data": a flat array of ${n} numbers in row-major order`, name);
  if (data.length !== n)
    throw bad(
      'data-length',
      `Input "${name}" has ${data.length} values in "data"; its shape holds ${n}`,
      name,
    );
  if (dtype === 'float16')
    throw bad('dtype', `Input "${name}" is float16: send float16 tensors in a binary body`, name);
  const out = d.make(n);
  const [lo, hi] = d.range ?? [-Infinity, Infinity];
  for (let i = 0; i < n; i++) {
    let v = data[i];
    if (d.bool && typeof v === 'boolean') v = v ? 1 : 0;
    if (typeof v !== 'number' || (d.range && (!Number.isInteger(v) || v < lo || v > hi)))
      throw bad(
        'data-value',
        `Input "${name}" data[${i}] is ${JSON.stringify(v)}: expected ${d.range ? `an integer from ${lo} to ${hi}` : 'a number'} for ${dtype}`,
        name,
      );
    if (d.big) (out as BigInt64Array)[i] = BigInt(v);
    else out[i] = v;
  }
  return out;
}

/** The inputs of a JSON body (already parsed). */
export function decodeJsonInputs(body: unknown, limits: Limits): Tensors {
  if (!isObject(body) || !isObject(body.inputs))
    throw bad(
      'body',
      'The body must be a JSON object {"inputs": {"<input name>": {"dtype", "shape", "data"}}}',
    );
  const seen = { elements: 0 };
  const out: Tensors = {};
  for (const [name, t] of Object.entries(body.inputs)) {
    const h = readHeader(name, t, true, limits, seen);
    out[name] = {
      dtype: h.dtype,
      dims: h.dims,
      data: fromJsonData(name, h.dtype, h.d, (t as { data: unknown }).data, h.n),
    };
  }
  return out;
}

/** The inputs of a binary body: JSON header of `headerLength` bytes, then raw tensor bytes in header order. */
export function decodeBinaryInputs(
  body: Uint8Array,
  headerLength: string | undefined,
  limits: Limits,
): Tensors {
  const hl = Number(headerLength);
  if (headerLength === undefined || !/^\d+$/.test(headerLength) || hl > body.byteLength)
    throw bad(
      'binary-header',
      `A binary body needs the header "Inference-Header-Content-Length: <bytes of its JSON header>" (at most the body's ${body.byteLength} bytes)`,
    );
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(0, hl)));
  } catch {
    throw bad('binary-header', `The first ${hl} bytes of the binary body are not a JSON header`);
  }
  if (!isObject(header) || !isObject(header.inputs))
    throw bad(
      'body',
      'The binary body\'s JSON header must be {"inputs": {"<input name>": {"dtype", "shape"}}}',
    );
  const seen = { elements: 0 };
  const out: Tensors = {};
  let off = hl;
  for (const [name, t] of Object.entries(header.inputs)) {
    const h = readHeader(name, t, false, limits, seen);
    const len = h.n * h.d.bytes;
    if (off + len > body.byteLength)
      throw bad(
        'binary-data',
        `Input "${name}" needs ${len} bytes of ${h.dtype} data; the body has ${body.byteLength - off} left`,
        name,
      );
    // copy into a fresh buffer: the body's bytes need not be aligned for a typed-array view
    const buf = new ArrayBuffer(len);
    new Uint8Array(buf).set(body.subarray(off, off + len));
    off += len;
    out[name] = { dtype: h.dtype, dims: h.dims, data: h.d.view(buf, h.n) };
  }
  if (off !== body.byteLength)
    throw bad('binary-data', `The binary body has ${body.byteLength - off} bytes after its last tensor`);
  return out;
}

/** Outputs as `{"outputs": {...}}` (int64 as JSON numbers). */
export function encodeJsonOutputs(outputs: Tensors, extra: Record<string, unknown> = {}): string {
  const o: Record<string, { dtype: string; shape: number[]; data: unknown[] }> = {};
  for (const [name, t] of Object.entries(outputs)) {
    const data =
      t.data instanceof BigInt64Array || t.data instanceof BigUint64Array
        ? Array.from(t.data, (v) => Number(v))
        : Array.from(t.data as ArrayLike<number>);
    o[name] = { dtype: t.dtype, shape: [...t.dims], data };
  }
  return JSON.stringify({ ...extra, outputs: o });
}

/** Outputs as a binary body: the JSON header (without data) and its length, then the raw bytes. */
export function encodeBinaryOutputs(
  outputs: Tensors,
  extra: Record<string, unknown> = {},
): { body: Buffer; headerLength: number } {
  const o: Record<string, { dtype: string; shape: number[] }> = {};
  const parts: Uint8Array[] = [];
  for (const [name, t] of Object.entries(outputs)) {
    o[name] = { dtype: t.dtype, shape: [...t.dims] };
    parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  const header = Buffer.from(JSON.stringify({ ...extra, outputs: o }), 'utf8');
  return { body: Buffer.concat([header, ...parts]), headerLength: header.byteLength };
}

/** Check inputs against the model: names, dtypes, ranks and fixed dims; a named dim takes one size everywhere. */
export function checkInputs(model: string, specs: readonly ValueInfo[], inputs: Tensors): void {
  for (const name of Object.keys(inputs))
    if (!specs.some((s) => s.name === name))
      throw bad(
        'unknown-input',
        `Model "${model}" has no input "${name}" (its inputs: ${specs.map((s) => s.name).join(', ')})`,
        name,
      );
  const sizes = new Map<string, number>();
  for (const s of specs) {
    const t = inputs[s.name];
    if (!t) throw bad('missing-input', `Input "${s.name}" of model "${model}" was not given`, s.name);
    if (s.dtype !== t.dtype)
      throw bad(
        'dtype',
        `Input "${s.name}" of model "${model}" must be ${s.dtype}: it is ${t.dtype}`,
        s.name,
      );
    const want = `[${s.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : d === -1 ? '?' : d)).join(', ')}]`;
    const ok =
      s.shape.length === t.dims.length &&
      s.shape.every((d, i) => {
        if (typeof d === 'number') return d < 0 || d === t.dims[i];
        const seen = sizes.get(d);
        if (seen !== undefined && seen !== t.dims[i]) return false;
        sizes.set(d, t.dims[i]!);
        return true;
      });
    if (!ok)
      throw bad(
        'shape',
        `Input "${s.name}" of model "${model}" must have shape ${want}: it has [${t.dims.join(', ')}]`,
        s.name,
      );
  }
}
