import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadDataset, PIXEL_SCALE } from './dataset.js';
import { loadMnistRaw, mnistDataDir } from './mnist.js';
import { assertImageSum, referenceSkipReason, REFERENCE_DIR, runPython, sum } from '../testing/reference.js';

const dir = mnistDataDir();
const train = loadDataset('mnist', 'train');
const testSet = loadDataset('mnist', 'test');

test('official split sizes and shapes', () => {
  assert.equal(train.n, 60000);
  assert.equal(testSet.n, 10000);
  for (const ds of [train, testSet]) {
    assert.equal(ds.name, 'mnist');
    assert.deepEqual(ds.inputShape, [1, 28, 28]);
    assert.equal(ds.numClasses, 10);
    assert.equal(ds.classNames, undefined);
    assert.deepEqual(ds.dropped, []);
    assert.equal(ds.x.length, ds.n * 784);
    assert.equal(ds.y.length, ds.n);
  }
  assert.equal(train.split, 'train');
  assert.equal(testSet.split, 'test');
});

test('first labels and label histograms', () => {
  assert.deepEqual(Array.from(testSet.y.subarray(0, 10), Number), [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
  assert.deepEqual(Array.from(train.y.subarray(0, 5), Number), [5, 0, 4, 1, 9]);
  const hist = (ds: typeof train) => {
    const h = new Array<number>(10).fill(0);
    for (const v of ds.y) h[Number(v)]++;
    return h;
  };
  assert.deepEqual(hist(testSet), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  assert.deepEqual(hist(train), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
});

test('pixels match the raw IDX bytes read independently', () => {
  const rawTest = readFileSync(join(dir, 't10k-images-idx3-ubyte')).subarray(16);
  const rawTrain = readFileSync(join(dir, 'train-images-idx3-ubyte')).subarray(16);
  const rawLabels = readFileSync(join(dir, 't10k-labels-idx1-ubyte')).subarray(8);
  // Test image 0 (a 7): its raw byte sum, and the same from the float tensor.
  assert.equal(sum(rawTest, 0, 784), 18454);
  assertImageSum(testSet.x, 0, 18454);
  assert.equal(sum(rawTrain, 0, 784), 27525);
  assertImageSum(train.x, 0, 27525);
  for (const [ds, raw, i] of [
    [testSet, rawTest, 9999],
    [testSet, rawTest, 1234],
    [train, rawTrain, 59999],
  ] as const) {
    for (let j = 0; j < 784; j++) assert.equal(ds.x[i * 784 + j], PIXEL_SCALE[raw[i * 784 + j]!]);
  }
  for (let i = 0; i < 10000; i++) assert.equal(testSet.y[i], BigInt(rawLabels[i]!));
});

test('pixels are k/255: max exactly 1, min 0', () => {
  let max = -Infinity;
  let min = Infinity;
  for (const v of testSet.x) {
    if (v > max) max = v;
    if (v < min) min = v;
    const k = Math.round(v * 255);
    if (PIXEL_SCALE[k] !== v) assert.fail(`${v} is not float32(${k}/255)`);
  }
  assert.equal(max, 1);
  assert.equal(min, 0);
});

test('limit takes the first rows', () => {
  const small = loadDataset('mnist', 'test', { limit: 5 });
  assert.equal(small.n, 5);
  assert.deepEqual(Array.from(small.y, Number), [7, 2, 1, 0, 4]);
  assert.deepEqual(small.x, testSet.x.subarray(0, 5 * 784));
  assert.equal(loadDataset('mnist', 'test', { limit: 1e6 }).n, 10000);
  assert.equal(loadDataset('mnist', 'test', { limit: 0 }).n, 0);
});

test('raw splits are read once per process', () => {
  assert.equal(loadMnistRaw('test'), loadMnistRaw('test'));
});

test('matches shared/reference/datasets.py bit for bit (float32 x, int64 y)', async (t) => {
  const why = referenceSkipReason();
  if (why) return t.skip(why);
  const out = await runPython(
    `import sys, json, hashlib
sys.path.insert(0, sys.argv[1])
import datasets
(xtr, ytr), (xte, yte) = datasets.mnist(sys.argv[2])
h = lambda a: hashlib.sha256(a.tobytes()).hexdigest()
print(json.dumps({"train": [h(datasets.as_float(xtr)), h(ytr), len(ytr)], "test": [h(datasets.as_float(xte)), h(yte), len(yte)]}))`,
    [REFERENCE_DIR, dirname(dirname(dir))],
  );
  const ref = JSON.parse(out) as Record<string, [string, string, number]>;
  const h = (a: ArrayBufferView) =>
    createHash('sha256')
      .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
      .digest('hex');
  assert.deepEqual(ref.train, [h(train.x), h(train.y), 60000]);
  assert.deepEqual(ref.test, [h(testSet.x), h(testSet.y), 10000]);
});
