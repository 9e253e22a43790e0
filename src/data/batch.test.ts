import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../errors.js';
import {
  batches,
  epochOrder,
  mixSeed,
  mulberry32,
  numBatches,
  permutation,
  type BatchSource,
} from './batch.js';
import { loadDataset } from './dataset.js';

/** n rows of shape [1,2,2]; row r holds r*10 + 0..3, label r. */
function toy(n: number): BatchSource {
  const x = new Float32Array(n * 4);
  for (let i = 0; i < x.length; i++) x[i] = Math.floor(i / 4) * 10 + (i % 4);
  const y = new BigInt64Array(n);
  for (let i = 0; i < n; i++) y[i] = BigInt(i);
  return { n, x, y, inputShape: [1, 2, 2] };
}

function isPermutation(p: ArrayLike<number>, n: number): boolean {
  const seen = new Uint8Array(n);
  for (let i = 0; i < p.length; i++) {
    if (p[i]! >= n || seen[p[i]!]) return false;
    seen[p[i]!] = 1;
  }
  return p.length === n;
}

test('mulberry32 gives the reference stream (same on every machine)', () => {
  const r0 = mulberry32(0);
  assert.deepEqual([r0(), r0(), r0()], [1144304738, 1416247, 958946056]); // 1144304738 / 2^32 = 0.26642920868471265
  const r42 = mulberry32(42);
  assert.deepEqual([r42(), r42(), r42()], [2581720956, 1925393290, 3661312704]);
  assert.deepEqual([mixSeed(42, 0), mixSeed(42, 1)], [3856264912, 3549116748]);
  // Seeds are taken modulo 2^32.
  const a = mulberry32(-1);
  const b = mulberry32(0xffffffff);
  assert.equal(a(), b());
  assert.throws(() => mulberry32(1.5), InputError);
});

test('seeded permutations: pinned, deterministic, every index exactly once', () => {
  assert.deepEqual(Array.from(permutation(10, 42)), [0, 7, 3, 5, 2, 1, 8, 9, 4, 6]);
  assert.deepEqual(Array.from(epochOrder(10, 42, 0)), [3, 0, 8, 1, 7, 6, 4, 9, 5, 2]);
  assert.deepEqual(Array.from(epochOrder(10, 42, 1)), [5, 8, 9, 0, 6, 4, 7, 1, 2, 3]);
  const p = permutation(60000, 1);
  assert.ok(isPermutation(p, 60000));
  assert.deepEqual(permutation(60000, 1), p);
  assert.notDeepEqual(permutation(60000, 2), p);
  assert.deepEqual(epochOrder(1000, 5, 3), epochOrder(1000, 5, 3));
  assert.notDeepEqual(epochOrder(1000, 5, 3), epochOrder(1000, 5, 4));
  assert.ok(isPermutation(epochOrder(1000, 5, 4), 1000));
  // Not the identity, and roughly uniform: each position's mean index over many seeds is near (n-1)/2.
  let fixed = 0;
  for (let i = 0; i < 60000; i++) if (p[i] === i) fixed++;
  assert.ok(fixed < 10, `${fixed} fixed points`);
  const mean = new Float64Array(8);
  for (let s = 0; s < 4000; s++) permutation(8, s).forEach((v, i) => (mean[i]! += v / 4000));
  for (const m of mean) assert.ok(Math.abs(m - 3.5) < 0.15, `position mean ${m}`);
  assert.deepEqual(Array.from(permutation(0, 1)), []);
  assert.deepEqual(Array.from(permutation(1, 1)), [0]);
});

test('unshuffled batches are zero-copy views covering every row in order', () => {
  const ds = toy(10);
  const bs = [...batches(ds, { batchSize: 4 })];
  assert.deepEqual(
    bs.map((b) => b.n),
    [4, 4, 2],
  );
  assert.deepEqual(
    bs.map((b) => b.dims),
    [
      [4, 1, 2, 2],
      [4, 1, 2, 2],
      [2, 1, 2, 2],
    ],
  );
  for (const [i, b] of bs.entries()) {
    assert.equal(b.x.buffer, ds.x.buffer);
    assert.equal(b.x.byteOffset, i * 4 * 16);
    assert.equal(b.y.buffer, ds.y.buffer);
    assert.equal(b.x.length, b.n * 4);
  }
  assert.deepEqual(
    bs.flatMap((b) => Array.from(b.y, Number)),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.deepEqual(new Float32Array(bs.flatMap((b) => Array.from(b.x))), ds.x);
});

test('dropLast drops only a short last batch', () => {
  const ds = toy(10);
  assert.deepEqual(
    [...batches(ds, { batchSize: 4, dropLast: true })].map((b) => b.n),
    [4, 4],
  );
  assert.deepEqual(
    [...batches(ds, { batchSize: 5, dropLast: true })].map((b) => b.n),
    [5, 5],
  );
  assert.deepEqual(
    [...batches(ds, { batchSize: 11, dropLast: true })].map((b) => b.n),
    [],
  );
  assert.deepEqual(
    [...batches(ds, { batchSize: 11 })].map((b) => b.n),
    [10],
  );
  assert.equal([...batches(toy(0), { batchSize: 3 })].length, 0);
  assert.deepEqual(
    [numBatches(10, 4), numBatches(10, 4, true), numBatches(0, 4), numBatches(8, 4, true)],
    [3, 2, 0, 2],
  );
  for (const bad of [0, -1, 2.5, NaN]) assert.throws(() => [...batches(ds, { batchSize: bad })], InputError);
});

test('shuffled batches follow epochOrder, gather the right rows into fresh buffers', () => {
  const ds = toy(10);
  const order = Array.from(epochOrder(10, 9, 2));
  const bs = [...batches(ds, { batchSize: 3, shuffle: true, seed: 9, epoch: 2 })];
  assert.deepEqual(
    bs.map((b) => b.n),
    [3, 3, 3, 1],
  );
  const ys = bs.flatMap((b) => Array.from(b.y, Number));
  assert.deepEqual(ys, order);
  for (const b of bs) {
    assert.notEqual(b.x.buffer, ds.x.buffer);
    for (let i = 0; i < b.n; i++) {
      const r = Number(b.y[i]);
      assert.deepEqual(Array.from(b.x.subarray(i * 4, i * 4 + 4)), [
        r * 10,
        r * 10 + 1,
        r * 10 + 2,
        r * 10 + 3,
      ]);
    }
  }
  const again = [...batches(ds, { batchSize: 3, shuffle: true, seed: 9, epoch: 2 })];
  assert.deepEqual(
    again.flatMap((b) => Array.from(b.y, Number)),
    order,
  );
  const other = [...batches(ds, { batchSize: 3, shuffle: true, seed: 10, epoch: 2 })];
  assert.notDeepEqual(
    other.flatMap((b) => Array.from(b.y, Number)),
    order,
  );
  const dropped = [...batches(ds, { batchSize: 3, shuffle: true, seed: 9, epoch: 2, dropLast: true })];
  assert.deepEqual(
    dropped.flatMap((b) => Array.from(b.y, Number)),
    order.slice(0, 9),
  );
});

test('batches of the MNIST test split: 157 batches of 64 cover all 10,000 rows once', () => {
  const ds = loadDataset('mnist', 'test');
  let rows = 0;
  let count = 0;
  let last = 0;
  for (const b of batches(ds, { batchSize: 64 })) {
    rows += b.n;
    count++;
    last = b.n;
    assert.deepEqual(b.dims.slice(1), [1, 28, 28]);
  }
  assert.deepEqual([rows, count, last], [10000, 157, 16]);
  // Shuffled with dropLast: 156 full batches; the rows kept plus the 16 left at the end of epochOrder are
  // the whole split (label histograms add up).
  const hist = new Array<number>(10).fill(0);
  let n = 0;
  for (const b of batches(ds, { batchSize: 64, shuffle: true, seed: 1, dropLast: true })) {
    assert.equal(b.n, 64);
    n += b.n;
    for (const v of b.y) hist[Number(v)]++;
  }
  assert.equal(n, 9984);
  for (const r of epochOrder(10000, 1, 0).subarray(9984)) hist[Number(ds.y[r])]++;
  assert.deepEqual(hist, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
});
