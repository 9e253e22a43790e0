// NumPy .npz files (zip archives of .npy entries, as np.savez / np.savez_compressed write them), and lazy .npy.
// The zip reader handles stored and deflated entries (node:zlib inflateRawSync) and zip64 sizes/offsets; the
// writer writes stored or deflated entries with CRC-32 (no zip64: entries and archives under 4 GiB).
//
// Arrays open lazily (ArrayReader): a .npy file or a stored .npz entry is read row range by row range from the
// file, so a large array is never held whole; a deflated entry is inflated into memory on first use.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { DataError, InputError, UnsupportedError } from '../errors.js';
import { writeAtomic } from '../util/fs.js';
import {
  encodeNpy,
  npyHeaderLength,
  NPY_DTYPES,
  NPY_PREAMBLE,
  parseNpy,
  parseNpyHeader,
  type NpyData,
  type NpyDType,
  type NpyInput,
} from './npy.js';
import { crc32 } from './png.js';

// ---------------------------------------------------------------- random-access files

class RandomFile {
  private fd: number | undefined;
  readonly size: number;
  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'r');
      this.size = fstatSync(this.fd).size;
    } catch (e) {
      throw new DataError(
        'data-unreadable',
        `${path}: cannot read: ${(e as Error).message}`,
        { file: path },
        { cause: e },
      );
    }
  }
  read(pos: number, len: number): Uint8Array {
    if (this.fd === undefined)
      throw new DataError('closed', `${this.path}: read after close`, { file: this.path });
    const buf = new Uint8Array(len);
    let got = 0;
    while (got < len) {
      const k = readSync(this.fd, buf, got, len - got, pos + got);
      if (k === 0)
        throw new DataError(
          'truncated',
          `${this.path}: truncated (wanted ${len} bytes at ${pos}, file has ${this.size})`,
          { file: this.path },
        );
      got += k;
    }
    return buf;
  }
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

// ---------------------------------------------------------------- arrays

/** A lazily read array: rows along the first axis. */
export interface ArrayReader {
  /** For messages: a path, or "archive.npz:name". */
  readonly file: string;
  readonly dtype: NpyDType;
  readonly shape: readonly number[];
  /** Values per row (product of shape[1:]). */
  readonly rowSize: number;
  /** Rows start..start+count-1 (a fresh array). */
  rows(start: number, count: number): NpyData;
  /** The rows `indices`, in order (a fresh array). */
  gather(indices: ArrayLike<number>): NpyData;
  /** The whole array. */
  all(): NpyData;
  close(): void;
}

function make(dtype: NpyDType, bytes: Uint8Array, count: number): NpyData {
  return NPY_DTYPES[dtype].make(bytes.buffer as ArrayBuffer, bytes.byteOffset, count);
}

/** An array whose data lies at `dataPos` in `file`. */
class FileArray implements ArrayReader {
  readonly rowSize: number;
  private readonly rowBytes: number;
  constructor(
    readonly file: string,
    private readonly f: RandomFile,
    private readonly dataPos: number,
    readonly dtype: NpyDType,
    readonly shape: readonly number[],
    private readonly owns: boolean,
  ) {
    this.rowSize = shape.slice(1).reduce((a, b) => a * b, 1);
    this.rowBytes = this.rowSize * NPY_DTYPES[dtype].size;
  }
  private check(start: number, count: number): void {
    const n = this.shape[0] ?? 1;
    if (start < 0 || count < 0 || start + count > n)
      throw new InputError(
        'bad-argument',
        `${this.file}: rows ${start}..${start + count - 1} outside 0..${n - 1}`,
        { file: this.file },
      );
  }
  rows(start: number, count: number): NpyData {
    this.check(start, count);
    return make(
      this.dtype,
      this.f.read(this.dataPos + start * this.rowBytes, count * this.rowBytes),
      count * this.rowSize,
    );
  }
  gather(indices: ArrayLike<number>): NpyData {
    const k = indices.length;
    const buf = new Uint8Array(k * this.rowBytes);
    for (let i = 0; i < k;) {
      // read runs of consecutive rows at once
      const s = indices[i]!;
      let j = i + 1;
      while (j < k && indices[j] === s + (j - i)) j++;
      this.check(s, j - i);
      buf.set(this.f.read(this.dataPos + s * this.rowBytes, (j - i) * this.rowBytes), i * this.rowBytes);
      i = j;
    }
    return make(this.dtype, buf, k * this.rowSize);
  }
  all(): NpyData {
    const count = this.shape.reduce((a, b) => a * b, 1);
    return make(this.dtype, this.f.read(this.dataPos, count * NPY_DTYPES[this.dtype].size), count);
  }
  close(): void {
    if (this.owns) this.f.close();
  }
}

/** An array held in memory (an inflated .npz entry). */
class MemoryArray implements ArrayReader {
  readonly rowSize: number;
  constructor(
    readonly file: string,
    readonly dtype: NpyDType,
    readonly shape: readonly number[],
    private readonly data: NpyData,
  ) {
    this.rowSize = shape.slice(1).reduce((a, b) => a * b, 1);
  }
  rows(start: number, count: number): NpyData {
    return this.data.slice(start * this.rowSize, (start + count) * this.rowSize) as NpyData;
  }
  gather(indices: ArrayLike<number>): NpyData {
    const out = new (this.data.constructor as new (n: number) => NpyData)(indices.length * this.rowSize);
    for (let i = 0; i < indices.length; i++)
      (out as Float32Array).set(
        (this.data as Float32Array).subarray(indices[i]! * this.rowSize, (indices[i]! + 1) * this.rowSize),
        i * this.rowSize,
      );
    return out;
  }
  all(): NpyData {
    return this.data;
  }
  close(): void {}
}

function npyAt(f: RandomFile, pos: number, avail: number, file: string, owns: boolean): FileArray {
  const first = f.read(pos, Math.min(NPY_PREAMBLE, avail));
  const hlen = Math.min(npyHeaderLength(first), avail);
  const h = parseNpyHeader(f.read(pos, hlen), file);
  const rest = avail - h.dataStart;
  if (rest < h.nbytes)
    throw new DataError(
      'npy-truncated',
      `${file}: truncated .npy file (data needs ${h.nbytes} bytes, file has ${rest})`,
      { file },
    );
  if (rest > h.nbytes)
    throw new DataError('npy-trailing-bytes', `${file}: ${rest - h.nbytes} bytes after the array data`, {
      file,
    });
  return new FileArray(file, f, pos + h.dataStart, h.dtype, h.shape, owns);
}

/** Open a .npy file lazily (the header is read now, rows on demand). */
export function openNpy(path: string): ArrayReader {
  const f = new RandomFile(path);
  try {
    return npyAt(f, 0, f.size, path, true);
  } catch (e) {
    f.close();
    throw e;
  }
}

// ---------------------------------------------------------------- zip

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

function badZip(file: string, why: string): never {
  throw new DataError('npz-bad-zip', `${file}: not a readable .npz (zip) file: ${why}`, { file });
}

function readCentralDirectory(f: RandomFile, file: string): ZipEntry[] {
  const tailLen = Math.min(f.size, 22 + 0xffff);
  if (tailLen < 22) badZip(file, `${f.size} bytes`);
  const tail = f.read(f.size - tailLen, tailLen);
  const tv = new DataView(tail.buffer);
  let e = -1;
  for (let i = tailLen - 22; i >= 0; i--)
    if (tv.getUint32(i, true) === 0x06054b50) {
      e = i;
      break;
    }
  if (e < 0) badZip(file, 'no end of central directory');
  let count = tv.getUint16(e + 10, true);
  let cdSize = tv.getUint32(e + 12, true);
  let cdOffset = tv.getUint32(e + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // zip64: the locator sits just before the end record
    const locPos = f.size - tailLen + e - 20;
    if (locPos < 0) badZip(file, 'no zip64 locator');
    const loc = new DataView(f.read(locPos, 20).buffer);
    if (loc.getUint32(0, true) !== 0x07064b50) badZip(file, 'no zip64 locator');
    const endPos = Number(loc.getBigUint64(8, true));
    const end = new DataView(f.read(endPos, 56).buffer);
    if (end.getUint32(0, true) !== 0x06064b50) badZip(file, 'bad zip64 end record');
    count = Number(end.getBigUint64(32, true));
    cdSize = Number(end.getBigUint64(40, true));
    cdOffset = Number(end.getBigUint64(48, true));
  }
  if (cdOffset + cdSize > f.size) badZip(file, 'central directory outside the file');
  const cd = f.read(cdOffset, cdSize);
  const v = new DataView(cd.buffer);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > cd.length || v.getUint32(p, true) !== 0x02014b50)
      badZip(file, `bad central directory entry ${k}`);
    const method = v.getUint16(p + 10, true);
    const crc = v.getUint32(p + 16, true);
    let compressedSize = v.getUint32(p + 20, true);
    let size = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let localOffset = v.getUint32(p + 42, true);
    const name = Buffer.from(cd.subarray(p + 46, p + 46 + nameLen)).toString('utf8');
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = v.getUint16(x, true);
      const len = v.getUint16(x + 2, true);
      if (id === 0x0001) {
        let q = x + 4;
        if (size === 0xffffffff) ((size = Number(v.getBigUint64(q, true))), (q += 8));
        if (compressedSize === 0xffffffff) ((compressedSize = Number(v.getBigUint64(q, true))), (q += 8));
        if (localOffset === 0xffffffff) localOffset = Number(v.getBigUint64(q, true));
      }
      x += 4 + len;
    }
    entries.push({ name, method, crc, compressedSize, size, localOffset });
    p = xEnd + commentLen;
  }
  return entries;
}

/** An open .npz archive: its array names, and lazy readers for them. */
export class NpzFile {
  readonly names: string[];
  private readonly f: RandomFile;
  private readonly entries = new Map<string, ZipEntry>();
  private readonly opened: ArrayReader[] = [];

  constructor(readonly path: string) {
    this.f = new RandomFile(path);
    try {
      for (const e of readCentralDirectory(this.f, path)) {
        if (!e.name.endsWith('.npy')) continue;
        this.entries.set(e.name.slice(0, -4), e);
      }
    } catch (e) {
      this.f.close();
      throw e;
    }
    this.names = [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The array `name` (without ".npy"). Stored entries are read lazily; deflated ones are inflated now. */
  get(name: string): ArrayReader {
    const e = this.entries.get(name);
    const file = `${this.path}:${name}`;
    if (!e)
      throw new InputError(
        'npz-missing-array',
        `${this.path}: has no array "${name}" (arrays: ${this.names.join(', ') || 'none'})`,
        { file: this.path, value: name },
      );
    const lh = new DataView(this.f.read(e.localOffset, 30).buffer);
    if (lh.getUint32(0, true) !== 0x04034b50) badZip(this.path, `bad local header for ${e.name}`);
    const dataPos = e.localOffset + 30 + lh.getUint16(26, true) + lh.getUint16(28, true);
    if (dataPos + e.compressedSize > this.f.size)
      badZip(this.path, `${e.name} runs past the end of the file`);
    let r: ArrayReader;
    if (e.method === 0) r = npyAt(this.f, dataPos, e.size, file, false);
    else if (e.method === 8) {
      let bytes: Uint8Array;
      try {
        bytes = inflateRawSync(this.f.read(dataPos, e.compressedSize));
      } catch (err) {
        throw new DataError('npz-bad-zip', `${file}: cannot inflate: ${(err as Error).message}`, { file });
      }
      if (bytes.length !== e.size || crc32(bytes) !== e.crc)
        throw new DataError('npz-bad-zip', `${file}: damaged entry (size or CRC mismatch)`, { file });
      const a = parseNpy(bytes, file);
      r = new MemoryArray(file, a.dtype, a.shape, a.data);
    } else
      throw new UnsupportedError(
        'npz-compression',
        `${file}: zip compression method ${e.method} is not supported (stored or deflated only)`,
        { file },
      );
    this.opened.push(r);
    return r;
  }

  close(): void {
    this.f.close();
  }
}

export function openNpz(path: string): NpzFile {
  return new NpzFile(path);
}

/** Read every array of a .npz into memory. */
export function readNpz(path: string): Record<string, { dtype: NpyDType; shape: number[]; data: NpyData }> {
  const z = openNpz(path);
  try {
    const out: Record<string, { dtype: NpyDType; shape: number[]; data: NpyData }> = {};
    for (const n of z.names) {
      const a = z.get(n);
      out[n] = { dtype: a.dtype, shape: [...a.shape], data: a.all() };
    }
    return out;
  } finally {
    z.close();
  }
}

/** The bytes of a .npz holding `arrays` (entries "<name>.npy"), stored or deflated (`compress`). */
export function encodeNpz(arrays: Record<string, NpyInput>, opts: { compress?: boolean } = {}): Uint8Array[] {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const names = Object.keys(arrays);
  for (const name of names) {
    const [h, d] = encodeNpy(arrays[name]!);
    const raw = Buffer.concat([h, d]);
    const body = opts.compress ? deflateRawSync(raw) : raw;
    const crc = crc32(raw);
    const fname = Buffer.from(`${name}.npy`, 'utf8');
    if (offset + 30 + fname.length + body.length > 0xfffffffe || raw.length > 0xfffffffe)
      throw new UnsupportedError(
        'npz-too-large',
        `cannot write "${name}": .npz files over 4 GiB need zip64, which the writer does not do`,
        { value: name },
      );
    const method = opts.compress ? 8 : 0;
    const local = new Uint8Array(30 + fname.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, method, true);
    lv.setUint16(12, 0x21, true); // 1980-01-01 00:00 (DOS date), fixed for reproducible files
    lv.setUint32(14, crc, true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, raw.length, true);
    lv.setUint16(26, fname.length, true);
    local.set(fname, 30);
    const cen = new Uint8Array(46 + fname.length);
    const cv = new DataView(cen.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(10, method, true);
    cv.setUint16(14, 0x21, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, raw.length, true);
    cv.setUint16(28, fname.length, true);
    cv.setUint32(42, offset, true);
    cen.set(fname, 46);
    parts.push(local, body);
    central.push(cen);
    offset += local.length + body.length;
  }
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, names.length, true);
  ev.setUint16(10, names.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return [...parts, ...central, end];
}

/** Write `arrays` to `path` as a .npz (atomically); numpy's np.load reads it. */
export function writeNpz(
  path: string,
  arrays: Record<string, NpyInput>,
  opts: { compress?: boolean } = {},
): void {
  writeAtomic(path, encodeNpz(arrays, opts));
}
