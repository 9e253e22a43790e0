import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, InputError } from '../errors.js';
import {
  DATASET_NAMES,
  loadDataset,
  PIXEL_SCALE,
  scalePixels,
  subset,
  take,
  type Dataset,
} from './dataset.js';
import { readNpy } from './npy.js';
import { numpySkipReason, runPython } from '../testing/reference.js';

const mnistTest = loadDataset('mnist', 'test');

function hist(ds: Dataset): number[] {
  const h = new Array<number>(ds.numClasses).fill(0);
  for (const v of ds.y) h[Number(v)]++;
  return h;
}

function assertInputError(fn: () => unknown, code: string, ...inMessage: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, String(e));
    assert.ok(!(e instanceof DataError), 'argument errors are plain InputErrors');
    assert.equal(e.code, code);
    for (const s of inMessage) assert.ok(e.message.includes(s), e.message);
    return true;
  });
}

test('unknown dataset names and splits are InputErrors listing the known ones', () => {
  assert.deepEqual(DATASET_NAMES, ['mnist', 'fashion-mnist']);
  assertInputError(
    () => loadDataset('cifar10', 'test'),
    'unknown-dataset',
    'cifar10',
    'mnist',
    'fashion-mnist',
  );
  assertInputError(() => loadDataset('fashion', 'test'), 'unknown-dataset', 'fashion-mnist');
  assertInputError(() => loadDataset('mnist', 'val' as 'test'), 'bad-split', 'val', 'train, test');
  assertInputError(() => loadDataset('mnist', 'test', { limit: -1 }), 'bad-argument', 'limit');
  assertInputError(() => loadDataset('mnist', 'test', { limit: 2.5 }), 'bad-argument', 'limit');
});

test('PIXEL_SCALE is float32(k)/255 for every k: 0, 1 and monotone', () => {
  assert.equal(PIXEL_SCALE[0], 0);
  assert.equal(PIXEL_SCALE[255], 1);
  assert.equal(PIXEL_SCALE[51], Math.fround(0.2));
  for (let k = 1; k < 256; k++) assert.ok(PIXEL_SCALE[k]! > PIXEL_SCALE[k - 1]!);
  assert.deepEqual(Array.from(scalePixels(Uint8Array.of(0, 255, 51, 9), 3)), [0, 1, Math.fround(0.2)]);
});

test('PIXEL_SCALE equals numpy float32(k) / 255.0 bit for bit', async (t) => {
  const why = numpySkipReason();
  if (why) return t.skip(why);
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-scale-'));
  try {
    const path = join(dir, 'scale.npy');
    await runPython(
      'import sys, numpy as np; np.save(sys.argv[1], np.arange(256, dtype=np.uint8).astype(np.float32) / 255.0)',
      [path],
    );
    const a = readNpy(path);
    assert.equal(a.dtype, 'float32');
    assert.deepEqual(a.data, PIXEL_SCALE);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('subset: stratified in proportion to class sizes, deterministic per seed', () => {
  assert.deepEqual(hist(mnistTest), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  const s = subset(mnistTest, 100, 7);
  assert.equal(s.n, 100);
  // floor(100 * count / 10000) = [9,11,10,10,9,8,9,10,9,10] (95); the 5 left go to the largest remainders:
  // classes 5 (.92), 4 (.82), 0 (.80), 8 (.74), 6 (.58).
  assert.deepEqual(hist(s), [10, 11, 10, 10, 10, 9, 10, 10, 10, 10]);
  assert.deepEqual(s.indices, subset(mnistTest, 100, 7).indices);
  assert.notDeepEqual(s.indices, subset(mnistTest, 100, 8).indices);
  const idx = Array.from(s.indices!);
  assert.equal(new Set(idx).size, 100);
  for (let i = 0; i < s.n; i++) {
    const r = idx[i]!;
    assert.equal(s.y[i], mnistTest.y[r]);
    assert.deepEqual(s.x.subarray(i * 784, (i + 1) * 784), mnistTest.x.subarray(r * 784, (r + 1) * 784));
  }
  // Shuffled output: the first 20 rows are not all one class.
  assert.ok(new Set(Array.from(s.y.subarray(0, 20))).size > 3);
  assert.deepEqual(s.inputShape, [1, 28, 28]);
  assert.equal(s.name, 'mnist');
  assert.equal(s.split, 'test');
});

test('subset edge cases: n >= ds.n keeps every row, n = 0 is empty, nested subsets index the split', () => {
  const all = subset(mnistTest, 20000, 1);
  assert.equal(all.n, 10000);
  assert.deepEqual(
    Array.from(all.indices!).sort((a, b) => a - b),
    Array.from({ length: 10000 }, (_, i) => i),
  );
  assert.equal(subset(mnistTest, 0, 1).n, 0);
  const s = subset(mnistTest, 500, 3);
  const ss = subset(s, 50, 4);
  assert.equal(ss.n, 50);
  for (let i = 0; i < ss.n; i++) assert.equal(ss.y[i], mnistTest.y[ss.indices![i]!]);
  assertInputError(() => subset(mnistTest, -5, 1), 'bad-argument');
});

test('take copies the listed rows in order', () => {
  const t3 = take(mnistTest, [2, 0, 2]);
  assert.equal(t3.n, 3);
  assert.deepEqual(Array.from(t3.y, Number), [1, 7, 1]);
  assert.deepEqual(Array.from(t3.indices!), [2, 0, 2]);
  assert.deepEqual(t3.x.subarray(784, 1568), mnistTest.x.subarray(0, 784));
  t3.x[0] = 42;
  assert.notEqual(mnistTest.x[2 * 784], 42);
  assertInputError(() => take(mnistTest, [10000]), 'bad-argument', '10000');
});
