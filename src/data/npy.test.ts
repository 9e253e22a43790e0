import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, InputError, UnsupportedError } from '../errors.js';
import { encodeNpy, NPY_DTYPES, parseNpy, readNpy, writeNpy, type NpyArray, type NpyDType } from './npy.js';
import { numpySkipReason, runPython } from '../testing/reference.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-npy-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** One array per dtype, with edge values; JSON-safe (no NaN) so numpy can rebuild them. */
function cases(): NpyArray[] {
  const f = [0, -0.5, 1.25, -3, 65504, 1e-3, -1e-7, 0.1, 1 / 3, 123456.75, 1e30, -2];
  return [
    { dtype: 'float32', shape: [3, 4], data: Float32Array.from(f) },
    { dtype: 'float64', shape: [2, 2, 3], data: Float64Array.from([...f.slice(0, 11), 1e300]) },
    { dtype: 'float16', shape: [6], data: Uint16Array.of(0x0000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555) },
    {
      dtype: 'int64',
      shape: [5],
      data: BigInt64Array.of(0n, -1n, 9007199254740993n, -(2n ** 63n), 2n ** 63n - 1n),
    },
    { dtype: 'int32', shape: [2, 3], data: Int32Array.of(0, 1, -1, 2147483647, -2147483648, 12345) },
    { dtype: 'int16', shape: [4], data: Int16Array.of(0, -1, 32767, -32768) },
    { dtype: 'int8', shape: [1, 4], data: Int8Array.of(0, -1, 127, -128) },
    { dtype: 'uint8', shape: [2, 2], data: Uint8Array.of(0, 1, 128, 255) },
    { dtype: 'uint16', shape: [3], data: Uint16Array.of(0, 1, 65535) },
    { dtype: 'uint32', shape: [2], data: Uint32Array.of(0, 4294967295) },
    { dtype: 'uint64', shape: [2], data: BigUint64Array.of(0n, 2n ** 64n - 1n) },
    { dtype: 'bool', shape: [5], data: Uint8Array.of(1, 0, 0, 1, 1) },
    { dtype: 'float32', shape: [], data: Float32Array.of(2.5) },
    { dtype: 'int64', shape: [0], data: new BigInt64Array(0) },
    { dtype: 'float32', shape: [2, 0, 3], data: new Float32Array(0) },
    { dtype: 'uint8', shape: [1234567, 0], data: new Uint8Array(0) },
  ];
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function assertSameArray(actual: NpyArray, expected: NpyArray): void {
  assert.equal(actual.dtype, expected.dtype);
  assert.deepEqual(actual.shape, expected.shape);
  assert.equal(actual.data.constructor, expected.data.constructor);
  assert.deepEqual(bytesOf(actual.data), bytesOf(expected.data));
}

function expectError(cls: new (...a: never[]) => Error, path: string, code: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.ok(e.message.includes(path), e.message);
    assert.equal((e as DataError).subject.file, path);
    assert.equal((e as DataError).code, code);
    return true;
  };
}

test('round trip of every dtype (and 0-d, empty arrays) through writeNpy/readNpy', () => {
  const seen = new Set<NpyDType>();
  for (const [i, c] of cases().entries()) {
    const p = join(dir, `rt${i}.npy`);
    writeNpy(p, c);
    const bytes = readFileSync(p);
    assert.equal(bytes[6], 1, 'format 1.0');
    const headerLen = 10 + bytes.readUInt16LE(8);
    assert.equal(headerLen % 64, 0, 'data aligned to 64 bytes');
    assert.equal(bytes.length, headerLen + c.data.byteLength);
    assertSameArray(readNpy(p), c);
    seen.add(c.dtype);
  }
  assert.deepEqual([...seen].sort(), Object.keys(NPY_DTYPES).sort());
  // NaN and -0 survive bit for bit.
  const p = join(dir, 'nan.npy');
  const special: NpyArray = { dtype: 'float64', shape: [3], data: Float64Array.of(NaN, -0, -Infinity) };
  writeNpy(p, special);
  assertSameArray(readNpy(p), special);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no temp files left by writeAtomic',
  );
});

test('the header text is what numpy writes', () => {
  const [h] = encodeNpy({ dtype: 'float32', shape: [3, 4], data: new Float32Array(12) });
  const text = Buffer.from(h).toString('latin1');
  assert.equal(text.slice(0, 10), '\x93NUMPY\x01\x00v\x00');
  assert.equal(
    text.slice(10),
    "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }" +
      ' '.repeat(20) +
      ' '.repeat(128 - 10 - 59 - 20 - 1) +
      '\n',
  );
  const [h0] = encodeNpy({ dtype: 'bool', shape: [], data: Uint8Array.of(1) });
  assert.ok(
    Buffer.from(h0).toString('latin1').includes("{'descr': '|b1', 'fortran_order': False, 'shape': (), }"),
  );
  const [h1] = encodeNpy({ dtype: 'int64', shape: [7], data: new BigInt64Array(7) });
  assert.ok(Buffer.from(h1).toString('latin1').includes("'shape': (7,), }"));
});

test('format 2.0 is written when the header needs it, and read back', () => {
  const shape = new Array<number>(30000).fill(1); // '1, ' * 30000 > 65535 bytes
  const arr: NpyArray = { dtype: 'int16', shape, data: Int16Array.of(-7) };
  const p = join(dir, 'v2.npy');
  writeNpy(p, arr);
  const bytes = readFileSync(p);
  assert.deepEqual([bytes[6], bytes[7]], [2, 0]);
  const headerLen = 12 + bytes.readUInt32LE(8);
  assert.ok(headerLen > 65535);
  assert.equal(headerLen % 64, 0);
  assertSameArray(readNpy(p), arr);
});

test('reads headers written by hand: 2.0, Python 2 longs, double quotes, unaligned data', () => {
  const make = (version: 1 | 2, dict: string, data: Uint8Array): Uint8Array => {
    const text = Buffer.from(dict + '\n', 'latin1');
    const len = Buffer.alloc(version === 1 ? 2 : 4);
    if (version === 1) len.writeUInt16LE(text.length);
    else len.writeUInt32LE(text.length);
    // A fresh Uint8Array (byteOffset 0, unlike a pooled Buffer), so the data offset alone decides alignment.
    return new Uint8Array(
      Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]), len, text, data]),
    );
  };
  const f4 = bytesOf(Float32Array.of(1.5, -2));
  // Data at byte 12 + 57 = 69: not 4-aligned, so the reader copies.
  let a = parseNpy(make(2, `{"descr": "<f4", "fortran_order": False, "shape": (2L,)}`, f4), 'h1');
  assert.deepEqual([a.dtype, a.shape, Array.from(a.data as Float32Array)], ['float32', [2], [1.5, -2]]);
  // Data at byte 10 + 51 = 61: not aligned either.
  a = parseNpy(make(1, "{'shape':(2,),'descr':'<f4','fortran_order':False}", f4), 'h2');
  assert.deepEqual(Array.from(a.data as Float32Array), [1.5, -2]);
  a = parseNpy(make(1, "{'descr': '>u1', 'fortran_order': False, 'shape': ()}", Uint8Array.of(9)), 'h3');
  assert.deepEqual([a.dtype, Array.from(a.data as Uint8Array)], ['uint8', [9]]);
});

test('truncated, wrong-magic and malformed files are DataErrors naming the file', () => {
  const good = join(dir, 'good.npy');
  writeNpy(good, { dtype: 'float64', shape: [4], data: Float64Array.of(1, 2, 3, 4) });
  const bytes = readFileSync(good);
  const write = (name: string, b: Uint8Array | string): string => {
    const p = join(dir, name);
    writeFileSync(p, b);
    return p;
  };
  let p = write('trunc-data.npy', bytes.subarray(0, bytes.length - 1));
  assert.throws(() => readNpy(p), expectError(DataError, p, 'npy-truncated'));
  p = write('trunc-header.npy', bytes.subarray(0, 40));
  assert.throws(() => readNpy(p), expectError(DataError, p, 'npy-truncated'));
  p = write('trunc-magic.npy', bytes.subarray(0, 4));
  assert.throws(() => readNpy(p), expectError(DataError, p, 'npy-truncated'));
  p = write('empty.npy', new Uint8Array(0));
  assert.throws(() => readNpy(p), expectError(DataError, p, 'npy-truncated'));
  p = write('magic.npy', Buffer.concat([Buffer.from('PK\x03\x04'), bytes.subarray(4)]));
  assert.throws(() => readNpy(p), expectError(DataError, p, 'npy-bad-magic'));
  p = write('text.npy', 'hello world, not numpy');
  assert.throws(() => readNpy(p), expectError(DataError, p, 'npy-bad-magic'));
  p = write('trailing.npy', Buffer.concat([bytes, Uint8Array.of(0)]));
  assert.throws(() => readNpy(p), expectError(DataError, p, 'npy-trailing-bytes'));
  const h = Buffer.from(bytes);
  h.write("{'descr': '<f8', 'fortran_order': False, 'shape': [4, }", 10, 'latin1');
  p = write('badheader.npy', h);
  assert.throws(() => readNpy(p), expectError(DataError, p, 'npy-bad-header'));
  const h2 = Buffer.from(bytes.toString('latin1').replace("'shape'", "'shapf'"), 'latin1');
  p = write('badkeys.npy', h2);
  assert.throws(() => readNpy(p), expectError(DataError, p, 'npy-bad-header'));
  p = join(dir, 'missing.npy');
  assert.throws(() => readNpy(p), expectError(DataError, p, 'data-unreadable'));
});

test('Fortran order, big-endian, unknown dtypes and versions are UnsupportedErrors', () => {
  const good = join(dir, 'g.npy');
  writeNpy(good, { dtype: 'float32', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) });
  const text = readFileSync(good).toString('latin1');
  const variant = (name: string, from: string, to: string): string => {
    assert.equal(from.length, to.length);
    const p = join(dir, name);
    writeFileSync(p, Buffer.from(text.replace(from, to), 'latin1'));
    return p;
  };
  let p = variant('fortran.npy', "'fortran_order': False", "'fortran_order': True ");
  assert.throws(() => readNpy(p), expectError(UnsupportedError, p, 'npy-fortran-order'));
  p = variant('be.npy', "'<f4'", "'>f4'");
  assert.throws(() => readNpy(p), expectError(UnsupportedError, p, 'npy-big-endian'));
  p = variant('c8.npy', "'<f4'", "'<c8'");
  assert.throws(() => readNpy(p), expectError(UnsupportedError, p, 'npy-dtype'));
  p = variant('obj.npy', "'<f4'", "'|O8'");
  assert.throws(() => readNpy(p), expectError(UnsupportedError, p, 'npy-dtype'));
  p = variant('v4.npy', '\x93NUMPY\x01', '\x93NUMPY\x04');
  assert.throws(() => readNpy(p), expectError(UnsupportedError, p, 'npy-version'));
  // Single-byte types have no byte order: '>u1' is fine.
  p = join(dir, 'u1.npy');
  writeNpy(p, { dtype: 'uint8', shape: [3], data: Uint8Array.of(1, 2, 3) });
  const q = join(dir, 'u1be.npy');
  writeFileSync(q, Buffer.from(readFileSync(p).toString('latin1').replace("'|u1'", "'>u1'"), 'latin1'));
  assert.deepEqual(Array.from(readNpy(q).data as Uint8Array), [1, 2, 3]);
});

test('writeNpy rejects data that does not match dtype or shape', () => {
  const p = join(dir, 'bad.npy');
  assert.throws(() => writeNpy(p, { dtype: 'int32', shape: [2], data: Float32Array.of(1, 2) }), InputError);
  assert.throws(() => writeNpy(p, { dtype: 'float32', shape: [3], data: Float32Array.of(1, 2) }), InputError);
  assert.throws(
    () => writeNpy(p, { dtype: 'float32', shape: [-2], data: Float32Array.of(1, 2) }),
    InputError,
  );
  assert.throws(() => writeNpy(p, { dtype: 'bool', shape: [1], data: Uint8Array.of(2) }), InputError);
  assert.throws(
    () => writeNpy(p, { dtype: 'complex64' as NpyDType, shape: [1], data: Float32Array.of(1) }),
    InputError,
  );
  assert.deepEqual(
    readdirSync(dir).filter((f) => f === 'bad.npy' || f.endsWith('.tmp')),
    [],
  );
});

test('cross-check with numpy: numpy reads our files, we read numpy files, bytes identical', async (t) => {
  const why = numpySkipReason();
  if (why) return t.skip(why);
  const sub = mkdtempSync(join(dir, 'np-'));
  const list = cases();
  const spec = list.map((c, i) => {
    writeNpy(join(sub, `ours${i}.npy`), c);
    const values =
      c.data instanceof BigInt64Array || c.data instanceof BigUint64Array
        ? Array.from(c.data, String)
        : Array.from(c.data as ArrayLike<number>);
    return { i, descr: NPY_DTYPES[c.dtype].descr, shape: c.shape, values };
  });
  writeFileSync(join(sub, 'spec.json'), JSON.stringify(spec));
  const out = await runPython(
    `import sys, json, os
import numpy as np
d = sys.argv[1]
spec = json.load(open(os.path.join(d, 'spec.json')))
res = []
for s in spec:
    dt = np.dtype(s['descr'])
    if dt.kind == 'f' and dt.itemsize == 2:
        ref = np.array(s['values'], np.uint16).view(dt)
    elif dt.kind in 'iu':
        ref = np.array([int(v) for v in s['values']], dt)
    else:
        ref = np.array(s['values'], dt)
    ref = ref.reshape(s['shape'])
    np.save(os.path.join(d, 'np%d.npy' % s['i']), ref)
    # one file in format 2.0 too
    with open(os.path.join(d, 'np2_%d.npy' % s['i']), 'wb') as f:
        np.lib.format.write_array(f, ref, version=(2, 0))
    ours = np.load(os.path.join(d, 'ours%d.npy' % s['i']))
    same_bytes = open(os.path.join(d, 'ours%d.npy' % s['i']), 'rb').read() == open(os.path.join(d, 'np%d.npy' % s['i']), 'rb').read()
    res.append({'i': s['i'], 'dtype': str(ours.dtype), 'shape': list(ours.shape),
                'equal': bool(ours.dtype == ref.dtype and ours.shape == ref.shape and ours.tobytes() == ref.tobytes()),
                'same_bytes': same_bytes})
print(json.dumps(res))`,
    [sub],
  );
  const res = JSON.parse(out) as {
    i: number;
    dtype: string;
    shape: number[];
    equal: boolean;
    same_bytes: boolean;
  }[];
  assert.equal(res.length, list.length);
  for (const r of res) {
    const c = list[r.i]!;
    assert.ok(r.equal, `numpy read ours${r.i}.npy (${c.dtype}) as ${r.dtype} ${JSON.stringify(r.shape)}`);
    assert.ok(r.same_bytes, `ours${r.i}.npy (${c.dtype}) differs from np.save's bytes`);
    assertSameArray(readNpy(join(sub, `np${r.i}.npy`)), c);
    const v2 = join(sub, `np2_${r.i}.npy`);
    assert.equal(readFileSync(v2)[6], 2);
    assertSameArray(readNpy(v2), c);
  }
});
