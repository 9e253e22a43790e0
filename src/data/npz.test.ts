import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, InputError } from '../errors.js';
import { openNpy, openNpz, readNpz, writeNpz } from './npz.js';
import { writeNpy } from './npy.js';
import { numpySkipReason, runPython } from '../testing/reference.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-npz-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const x = Float32Array.from({ length: 5 * 2 * 3 }, (_, i) => i * 0.5 - 3);
const y = BigInt64Array.from([0n, 2n, 1n, 1n, 0n]);

test('writeNpz → readNpz round trip, stored and deflated; lazy rows and gather', () => {
  for (const compress of [false, true]) {
    const p = join(dir, `rt-${compress}.npz`);
    writeNpz(
      p,
      { x: { dtype: 'float32', shape: [5, 2, 3], data: x }, y: { dtype: 'int64', shape: [5], data: y } },
      { compress },
    );
    const all = readNpz(p);
    assert.deepEqual(Object.keys(all), ['x', 'y']);
    assert.deepEqual(all.x!.shape, [5, 2, 3]);
    assert.deepEqual(all.x!.data, x);
    assert.deepEqual(all.y!.data, y);
    const z = openNpz(p);
    const r = z.get('x');
    assert.equal(r.rowSize, 6);
    assert.deepEqual(r.rows(1, 2), x.subarray(6, 18));
    assert.deepEqual(
      r.gather([4, 0, 1]),
      Float32Array.from([...x.subarray(24, 30), ...x.subarray(0, 6), ...x.subarray(6, 12)]),
    );
    assert.throws(
      () => z.get('nope'),
      (e: unknown) =>
        e instanceof InputError && /has no array "nope" \(arrays: x, y\)/.test((e as Error).message),
    );
    z.close();
  }
});

test('numpy reads our .npz, and we read np.savez / np.savez_compressed', async (t) => {
  const why = numpySkipReason();
  if (why) return t.skip(why);
  const ours = join(dir, 'ours.npz');
  writeNpz(
    ours,
    { x: { dtype: 'float32', shape: [5, 2, 3], data: x }, y: { dtype: 'int64', shape: [5], data: y } },
    { compress: true },
  );
  const out = await runPython(
    'import sys, numpy as np; d = np.load(sys.argv[1]); print(sorted(d.files), d["x"].sum(), d["x"].shape, d["y"].tolist())',
    [ours],
  );
  assert.equal(out.trim(), `['x', 'y'] ${x.reduce((a, b) => a + b, 0)} (5, 2, 3) [0, 2, 1, 1, 0]`);
  for (const fn of ['savez', 'savez_compressed']) {
    const p = join(dir, `${fn}.npz`);
    await runPython(
      `import sys, numpy as np; np.${fn}(sys.argv[1], x=np.arange(24, dtype=np.float32).reshape(4, 6) / 7, y=np.array([3, 1, 2, 0], dtype=np.int32), extra=np.ones((2, 2), dtype=np.uint8))`,
      [p],
    );
    const z = openNpz(p);
    assert.deepEqual(z.names.sort(), ['extra', 'x', 'y']);
    const r = z.get('x');
    assert.equal(r.dtype, 'float32');
    assert.deepEqual(r.shape, [4, 6]);
    const expect = Float32Array.from({ length: 24 }, (_, i) => Math.fround(Math.fround(i) / 7));
    assert.deepEqual(r.all(), expect);
    assert.deepEqual(r.rows(2, 1), expect.subarray(12, 18));
    assert.deepEqual(Array.from(z.get('y').all() as Int32Array), [3, 1, 2, 0]);
    z.close();
  }
});

test('lazy .npy reads row ranges from the file; damaged archives are DataErrors naming the file', () => {
  const p = join(dir, 'big.npy');
  writeNpy(p, { dtype: 'float32', shape: [5, 2, 3], data: x });
  const r = openNpy(p);
  assert.deepEqual(r.shape, [5, 2, 3]);
  assert.deepEqual(r.rows(4, 1), x.subarray(24, 30));
  assert.deepEqual(r.gather([3, 4, 0]), Float32Array.from([...x.subarray(18, 30), ...x.subarray(0, 6)]));
  assert.throws(() => r.rows(4, 2), InputError);
  r.close();
  // a truncated .npy is caught when opened, before any row is read
  const full = readFileSync(p);
  const cut = join(dir, 'cut.npy');
  writeFileSync(cut, full.subarray(0, full.length - 8));
  assert.throws(
    () => openNpy(cut),
    (e: unknown) =>
      e instanceof DataError &&
      (e as DataError).subject.file === cut &&
      /truncated/.test((e as Error).message),
  );
  const junk = join(dir, 'junk.npz');
  writeFileSync(junk, 'PK this is not really a zip file at all'.repeat(3));
  assert.throws(
    () => openNpz(junk),
    (e: unknown) => e instanceof DataError && (e as DataError).subject.file === junk,
  );
  const ok = join(dir, 'ok.npz');
  writeNpz(ok, { x: { dtype: 'float32', shape: [5, 2, 3], data: x } }, { compress: true });
  const bytes = Buffer.from(readFileSync(ok));
  bytes[60] ^= 0x55; // inside the deflated data
  const bad = join(dir, 'bad.npz');
  writeFileSync(bad, bytes);
  assert.throws(
    () => openNpz(bad).get('x'),
    (e: unknown) => e instanceof DataError && String((e as DataError).subject.file).startsWith(bad),
  );
});
