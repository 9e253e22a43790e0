// NumPy .npy files: read format versions 1.0, 2.0 (and 3.0, which only differs in the header's encoding);
// write 1.0, or 2.0 when the header does not fit 1.0's 16-bit length, byte for byte as numpy's np.save does.
// Little-endian, C-order arrays of the dtypes in NPY_DTYPES; the data come back as raw typed arrays
// (float16 as the Uint16Array of its bits, bool as a Uint8Array of 0/1).
import { endianness } from 'node:os';
import { DataError, InputError, UnsupportedError } from '../errors.js';
import { writeAtomic } from '../util/fs.js';
import { readDataFile } from './read.js';

export type NpyDType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool';

export type NpyData =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint16Array
  | Uint32Array;

export interface NpyArray {
  dtype: NpyDType;
  shape: number[];
  data: NpyData;
}

/** What encodeNpy/writeNpy accept: an NpyArray, possibly with a readonly shape. */
export type NpyInput = Omit<NpyArray, 'shape'> & { shape: readonly number[] };

interface DTypeInfo {
  /** numpy's descr as np.save writes it. */
  descr: string;
  size: number;
  make: (buf: ArrayBuffer, byteOffset: number, length: number) => NpyData;
  is: (d: NpyData) => boolean;
}

/** The supported dtypes and their numpy descr. */
export const NPY_DTYPES: Readonly<Record<NpyDType, DTypeInfo>> = {
  float32: {
    descr: '<f4',
    size: 4,
    make: (b, o, n) => new Float32Array(b, o, n),
    is: (d) => d instanceof Float32Array,
  },
  float64: {
    descr: '<f8',
    size: 8,
    make: (b, o, n) => new Float64Array(b, o, n),
    is: (d) => d instanceof Float64Array,
  },
  float16: {
    descr: '<f2',
    size: 2,
    make: (b, o, n) => new Uint16Array(b, o, n),
    is: (d) => d instanceof Uint16Array,
  },
  int64: {
    descr: '<i8',
    size: 8,
    make: (b, o, n) => new BigInt64Array(b, o, n),
    is: (d) => d instanceof BigInt64Array,
  },
  int32: {
    descr: '<i4',
    size: 4,
    make: (b, o, n) => new Int32Array(b, o, n),
    is: (d) => d instanceof Int32Array,
  },
  int16: {
    descr: '<i2',
    size: 2,
    make: (b, o, n) => new Int16Array(b, o, n),
    is: (d) => d instanceof Int16Array,
  },
  int8: {
    descr: '|i1',
    size: 1,
    make: (b, o, n) => new Int8Array(b, o, n),
    is: (d) => d instanceof Int8Array,
  },
  uint8: {
    descr: '|u1',
    size: 1,
    make: (b, o, n) => new Uint8Array(b, o, n),
    is: (d) => d instanceof Uint8Array,
  },
  uint16: {
    descr: '<u2',
    size: 2,
    make: (b, o, n) => new Uint16Array(b, o, n),
    is: (d) => d instanceof Uint16Array,
  },
  uint32: {
    descr: '<u4',
    size: 4,
    make: (b, o, n) => new Uint32Array(b, o, n),
    is: (d) => d instanceof Uint32Array,
  },
  uint64: {
    descr: '<u8',
    size: 8,
    make: (b, o, n) => new BigUint64Array(b, o, n),
    is: (d) => d instanceof BigUint64Array,
  },
  bool: {
    descr: '|b1',
    size: 1,
    make: (b, o, n) => new Uint8Array(b, o, n),
    is: (d) => d instanceof Uint8Array,
  },
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ALIGN = 64; // numpy's ARRAY_ALIGN
const GROWTH_AXIS_MAX_DIGITS = 21; // numpy pads the header so the shape can grow in place

function hostIsLittleEndian(): boolean {
  return endianness() === 'LE';
}

// ---------------------------------------------------------------- reading

type PyValue = string | boolean | number | PyValue[] | { [k: string]: PyValue };

/** A parser for the Python literal numpy writes as the header: a dict of str, bool, int, tuple, list. */
class HeaderParser {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly file: string,
  ) {}

  fail(why: string): never {
    throw new DataError(
      'npy-bad-header',
      `${this.file}: bad .npy header (${why}): ${JSON.stringify(this.s.length > 200 ? `${this.s.slice(0, 200)}...` : this.s)}`,
      {
        file: this.file,
      },
    );
  }

  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }

  private eat(ch: string): boolean {
    this.ws();
    if (this.s[this.i] === ch) {
      this.i++;
      return true;
    }
    return false;
  }

  parseAll(): PyValue {
    const v = this.value();
    this.ws();
    if (this.i !== this.s.length) this.fail(`unexpected text at ${this.i}`);
    return v;
  }

  private seq(close: string): PyValue[] {
    const out: PyValue[] = [];
    for (;;) {
      if (this.eat(close)) return out;
      out.push(this.value());
      if (this.eat(close)) return out;
      if (!this.eat(',')) this.fail(`expected "," or "${close}"`);
    }
  }

  private value(): PyValue {
    this.ws();
    const c = this.s[this.i];
    if (c === '{') {
      this.i++;
      const obj: { [k: string]: PyValue } = {};
      for (;;) {
        if (this.eat('}')) return obj;
        const k = this.value();
        if (typeof k !== 'string') this.fail('dict key is not a string');
        if (!this.eat(':')) this.fail('expected ":"');
        obj[k] = this.value();
        if (this.eat('}')) return obj;
        if (!this.eat(',')) this.fail('expected "," or "}"');
      }
    }
    if (c === '(') {
      this.i++;
      return this.seq(')');
    }
    if (c === '[') {
      this.i++;
      return this.seq(']');
    }
    if (c === "'" || c === '"') {
      const end = this.s.indexOf(c, this.i + 1);
      if (end < 0) this.fail('unterminated string');
      const str = this.s.slice(this.i + 1, end);
      if (str.includes('\\')) this.fail('escapes in strings are not supported');
      this.i = end + 1;
      return str;
    }
    const atom = /True|False|-?\d+L?/y;
    atom.lastIndex = this.i;
    const m = atom.exec(this.s);
    if (!m) this.fail(`unexpected text at ${this.i}`);
    this.i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    return Number(m[0].replace(/L$/, '')); // Python 2 wrote longs as 3L
  }
}

function truncated(file: string, why: string): never {
  throw new DataError('npy-truncated', `${file}: truncated .npy file (${why})`, { file });
}

/** Where an array's data starts in a .npy file, and what it holds (from its header). */
export interface NpyHeader {
  dtype: NpyDType;
  shape: number[];
  /** Byte offset of the data from the start of the .npy bytes. */
  dataStart: number;
  /** Elements (product of shape). */
  count: number;
  /** Bytes of data (count × element size). */
  nbytes: number;
}

/** Bytes needed to read a .npy header: the first 12, then `headerLength(first12)`. */
export const NPY_PREAMBLE = 12;

/**
 * Parse the header of .npy bytes; `bytes` must hold at least the whole header (the data may be absent, so a
 * large file can be read lazily). `file` names the source in errors.
 */
export function parseNpyHeader(bytes: Uint8Array, file: string): NpyHeader {
  if (bytes.byteLength < MAGIC.length || MAGIC.some((b, i) => bytes[i] !== b)) {
    if (bytes.byteLength < MAGIC.length && MAGIC.slice(0, bytes.byteLength).every((b, i) => bytes[i] === b)) {
      truncated(file, `${bytes.byteLength} bytes`);
    }
    throw new DataError('npy-bad-magic', `${file}: not a .npy file (bad magic)`, { file });
  }
  if (bytes.byteLength < 8) truncated(file, 'no version');
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (!((major === 1 || major === 2 || major === 3) && minor === 0)) {
    throw new UnsupportedError('npy-version', `${file}: unsupported .npy format version ${major}.${minor}`, {
      file,
      value: `${major}.${minor}`,
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenSize = major === 1 ? 2 : 4;
  if (bytes.byteLength < 8 + lenSize) truncated(file, 'no header length');
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lenSize + headerLen;
  if (bytes.byteLength < dataStart)
    truncated(file, `header of ${headerLen} bytes, file has ${bytes.byteLength}`);
  const headerBytes = bytes.subarray(8 + lenSize, dataStart);
  const text = Buffer.from(headerBytes.buffer, headerBytes.byteOffset, headerBytes.byteLength).toString(
    major === 3 ? 'utf8' : 'latin1',
  );
  const parser = new HeaderParser(text, file);
  const header = parser.parseAll();
  if (typeof header !== 'object' || Array.isArray(header)) parser.fail('not a dict');
  const keys = Object.keys(header).sort();
  if (keys.join(',') !== 'descr,fortran_order,shape') parser.fail(`keys ${keys.join(', ')}`);
  const {
    descr,
    fortran_order: fortran,
    shape,
  } = header as { descr: PyValue; fortran_order: PyValue; shape: PyValue };
  if (typeof fortran !== 'boolean') parser.fail('fortran_order is not a bool');
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
  ) {
    parser.fail('shape is not a tuple of non-negative integers');
  }
  if (typeof descr !== 'string') {
    throw new UnsupportedError('npy-dtype', `${file}: structured dtypes are not supported`, {
      file,
      value: JSON.stringify(descr),
    });
  }
  const dtype = dtypeOfDescr(descr, file);
  const dims = shape as number[];
  if (fortran) {
    throw new UnsupportedError(
      'npy-fortran-order',
      `${file}: Fortran-order arrays are not supported (C order only)`,
      {
        file,
      },
    );
  }
  if (!hostIsLittleEndian()) {
    throw new UnsupportedError('npy-host-endian', `${file}: reading .npy needs a little-endian host`, {
      file,
    });
  }
  const info = NPY_DTYPES[dtype];
  const count = dims.reduce((a, b) => a * b, 1);
  const nbytes = count * info.size;
  if (!Number.isSafeInteger(nbytes)) parser.fail('array too large');
  return { dtype, shape: dims, dataStart, count, nbytes };
}

/** The full header length of .npy bytes from their first NPY_PREAMBLE bytes (magic and version are checked later). */
export function npyHeaderLength(first: Uint8Array): number {
  if (first.byteLength < 10) return NPY_PREAMBLE;
  const view = new DataView(first.buffer, first.byteOffset, first.byteLength);
  if (first[6] === 1) return 10 + view.getUint16(8, true);
  return first.byteLength < 12 ? NPY_PREAMBLE : 12 + view.getUint32(8, true);
}

/** Parse .npy bytes; `file` names the source in errors. The data is a view of `bytes` when aligned, else a copy. */
export function parseNpy(bytes: Uint8Array, file: string): NpyArray {
  const { dtype, shape: dims, dataStart, count, nbytes } = parseNpyHeader(bytes, file);
  const info = NPY_DTYPES[dtype];
  const avail = bytes.byteLength - dataStart;
  if (avail < nbytes) truncated(file, `data needs ${nbytes} bytes, file has ${avail}`);
  if (avail > nbytes) {
    throw new DataError('npy-trailing-bytes', `${file}: ${avail - nbytes} bytes after the array data`, {
      file,
    });
  }
  const off = bytes.byteOffset + dataStart;
  let data: NpyData;
  if (off % info.size === 0) {
    data = info.make(bytes.buffer as ArrayBuffer, off, count);
  } else {
    const copy = new Uint8Array(nbytes); // (Buffer#slice would be a view, not a copy)
    copy.set(bytes.subarray(dataStart, dataStart + nbytes));
    data = info.make(copy.buffer, 0, count);
  }
  return { dtype, shape: dims, data };
}

function dtypeOfDescr(descr: string, file: string): NpyDType {
  const m = /^([<>|=])([a-zA-Z])(\d+)$/.exec(descr);
  if (m) {
    const [, order, kind, size] = m;
    const key = `${kind}${size}`;
    const found = (Object.keys(NPY_DTYPES) as NpyDType[]).find((d) => NPY_DTYPES[d].descr.slice(1) === key);
    if (found) {
      if (order === '>' && NPY_DTYPES[found].size > 1) {
        throw new UnsupportedError(
          'npy-big-endian',
          `${file}: big-endian arrays are not supported (dtype ${descr})`,
          {
            file,
            value: descr,
          },
        );
      }
      return found;
    }
  }
  throw new UnsupportedError(
    'npy-dtype',
    `${file}: unsupported .npy dtype ${descr} (supported: ${Object.values(NPY_DTYPES)
      .map((d) => d.descr)
      .join(' ')})`,
    { file, value: descr },
  );
}

/** Read a .npy file. */
export function readNpy(path: string): NpyArray {
  return parseNpy(readDataFile(path), path);
}

// ---------------------------------------------------------------- writing

function pyTuple(shape: readonly number[]): string {
  if (shape.length === 0) return '()';
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/** The .npy bytes of `arr` as [header, data] (data is a view of arr.data). Identical to numpy's np.save. */
export function encodeNpy(arr: NpyInput): [Uint8Array, Uint8Array] {
  const info = NPY_DTYPES[arr.dtype];
  if (!info) {
    throw new InputError(
      'npy-dtype',
      `cannot write dtype ${arr.dtype} (supported: ${Object.keys(NPY_DTYPES).join(', ')})`,
      {
        value: String(arr.dtype),
      },
    );
  }
  if (!info.is(arr.data)) {
    throw new InputError(
      'npy-dtype',
      `dtype ${arr.dtype} needs a ${info.make(new ArrayBuffer(0), 0, 0).constructor.name}`,
      {
        value: arr.dtype,
      },
    );
  }
  if (!arr.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InputError(
      'bad-shape',
      `shape [${arr.shape.join(', ')}] is not a list of non-negative integers`,
    );
  }
  const count = arr.shape.reduce((a, b) => a * b, 1);
  if (count !== arr.data.length) {
    throw new InputError(
      'bad-shape',
      `shape [${arr.shape.join(', ')}] holds ${count} values, data has ${arr.data.length}`,
    );
  }
  if (arr.dtype === 'bool' && (arr.data as Uint8Array).some((v) => v > 1)) {
    throw new InputError('bad-value', 'bool data must be 0 or 1');
  }
  if (!hostIsLittleEndian()) {
    throw new UnsupportedError('npy-host-endian', 'writing .npy needs a little-endian host');
  }
  // Same text as numpy's _write_array_header: sorted keys, repr values, then spare room for the first axis.
  let dict = `{'descr': '${info.descr}', 'fortran_order': False, 'shape': ${pyTuple(arr.shape)}, }`;
  if (arr.shape.length > 0)
    dict += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(arr.shape[0]).length));
  const text = Buffer.from(dict, 'latin1');
  const hlen = text.length + 1; // + '\n'
  let version = 1;
  let lenSize = 2;
  let pad = ALIGN - ((MAGIC.length + 2 + lenSize + hlen) % ALIGN);
  if (hlen + pad > 0xffff) {
    version = 2;
    lenSize = 4;
    pad = ALIGN - ((MAGIC.length + 2 + lenSize + hlen) % ALIGN);
  }
  const header = new Uint8Array(MAGIC.length + 2 + lenSize + hlen + pad);
  header.set(MAGIC, 0);
  header[6] = version;
  header[7] = 0;
  const view = new DataView(header.buffer);
  if (version === 1) view.setUint16(8, hlen + pad, true);
  else view.setUint32(8, hlen + pad, true);
  const start = 8 + lenSize;
  header.set(text, start);
  header.fill(0x20, start + text.length, header.length - 1);
  header[header.length - 1] = 0x0a;
  const d = arr.data;
  return [header, new Uint8Array(d.buffer, d.byteOffset, d.byteLength)];
}

/** Write `arr` to `path` as .npy (atomically). */
export function writeNpy(path: string, arr: NpyInput): void {
  writeAtomic(path, encodeNpy(arr));
}
