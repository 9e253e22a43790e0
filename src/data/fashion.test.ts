import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DataError } from '../errors.js';
import { loadDataset, PIXEL_SCALE } from './dataset.js';
import {
  FASHION_MNIST_CLASSES,
  fashionDataDir,
  loadFashionRaw,
  readFashion,
  validClassRows,
} from './fashion.js';
import { assertImageSum, referenceSkipReason, REFERENCE_DIR, runPython, sum } from '../testing/reference.js';

const dir = fashionDataDir();

// The reference reader takes a few seconds: start it now, so it runs while this process parses the JSON.
const reference: Promise<string> | undefined = referenceSkipReason()
  ? undefined
  : runPython(
      `import sys, json, hashlib
sys.path.insert(0, sys.argv[1])
import datasets
(xtr, ytr), (xte, yte) = datasets.fashion_mnist(sys.argv[2])
h = lambda a: hashlib.sha256(a.tobytes()).hexdigest()
print(json.dumps({"train": [h(datasets.as_float(xtr)), h(ytr), len(ytr)], "test": [h(datasets.as_float(xte)), h(yte), len(yte)]}))`,
      [REFERENCE_DIR, dirname(dirname(dirname(dir)))],
    );
reference?.catch(() => {}); // reported by the test that awaits it

const train = loadDataset('fashion-mnist', 'train');
const testSet = loadDataset('fashion-mnist', 'test');

/** The `data` rows of class file c, parsed independently of the loader. */
function rawRows(c: number): number[][] {
  return (JSON.parse(readFileSync(join(dir, `${c}.json`), 'utf8')) as { data: number[][] }).data;
}

function assertRow(x: Float32Array, i: number, raw: number[]): void {
  assert.equal(raw.length, 784);
  for (let j = 0; j < 784; j++) {
    if (x[i * 784 + j] !== PIXEL_SCALE[raw[j]!])
      assert.fail(`row ${i} pixel ${j}: ${x[i * 784 + j]} vs ${raw[j]}/255`);
  }
}

test('split sizes: 60,000 train / 10,000 test of 28x28, 10 named classes', () => {
  assert.equal(train.n, 60000);
  assert.equal(testSet.n, 10000);
  for (const ds of [train, testSet]) {
    assert.equal(ds.name, 'fashion-mnist');
    assert.deepEqual(ds.inputShape, [1, 28, 28]);
    assert.equal(ds.numClasses, 10);
    assert.equal(ds.x.length, ds.n * 784);
    assert.deepEqual(ds.classNames, FASHION_MNIST_CLASSES);
  }
  assert.equal(FASHION_MNIST_CLASSES.length, 10);
  assert.equal(FASHION_MNIST_CLASSES[0], 'T-shirt/top');
  assert.equal(FASHION_MNIST_CLASSES[6], 'Shirt');
  assert.equal(FASHION_MNIST_CLASSES[9], 'Ankle boot');
});

test('exactly the two empty rows of class 0 are dropped and reported', () => {
  const expected = [
    { class: 0, index: 1000, length: 0 },
    { class: 0, index: 7001, length: 0 },
  ];
  assert.deepEqual(train.dropped, expected);
  assert.deepEqual(testSet.dropped, expected);
  assert.deepEqual(loadFashionRaw().dropped, expected);
});

test('class order and per-class counts: 6,000 train and 1,000 test each, class 0 first', () => {
  for (const [ds, per] of [
    [train, 6000],
    [testSet, 1000],
  ] as const) {
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < ds.n; i++) {
      const c = Number(ds.y[i]);
      counts[c]!++;
      assert.equal(c, Math.floor(i / per), `row ${i} of ${ds.split}`);
    }
    assert.deepEqual(counts, new Array(10).fill(per));
  }
});

test('rows are the right rows of the raw JSON (the last 1,000 VALID rows are test)', () => {
  const c0 = rawRows(0);
  assert.equal(c0.length, 7002);
  assert.deepEqual([c0[1000]!.length, c0[7001]!.length], [0, 0]);
  // Valid rows of class 0: raw 0..999 and 1001..7000. Train = valid[0..5999] = raw 0..999, 1001..6000;
  // test = valid[6000..6999] = raw 6001..7000 (a naive "last 1,000 raw rows" would take raw 6002..7001).
  const valid = c0.filter((r) => r.length === 784);
  assert.equal(valid.length, 7000);
  assert.equal(sum(valid[6000]!), 46480);
  assertImageSum(testSet.x, 0, 46480);
  assert.equal(sum(valid[0]!), 79892);
  assertImageSum(train.x, 0, 79892);
  assertRow(testSet.x, 0, c0[6001]!);
  assertRow(testSet.x, 999, c0[7000]!);
  assertRow(train.x, 999, c0[999]!);
  assertRow(train.x, 1000, c0[1001]!);
  assertRow(train.x, 5999, c0[6000]!);
  const c9 = rawRows(9);
  assert.equal(c9.length, 7000);
  assertRow(testSet.x, 9999, c9[6999]!);
  assertRow(testSet.x, 9000, c9[6000]!);
  assertRow(train.x, 59999, c9[5999]!);
  assertRow(train.x, 54000, c9[0]!);
});

test('pixels are k/255: max exactly 1, min 0', () => {
  let max = -Infinity;
  let min = Infinity;
  for (const v of testSet.x) {
    if (v > max) max = v;
    if (v < min) min = v;
    if (PIXEL_SCALE[Math.round(v * 255)] !== v) assert.fail(`${v} is not a float32 k/255`);
  }
  assert.deepEqual([min, max], [0, 1]);
});

test('the JSON is parsed once per process (both splits cached)', () => {
  const t0 = performance.now();
  const a = loadFashionRaw();
  assert.equal(loadFashionRaw(), a);
  assert.ok(performance.now() - t0 < 50);
  const small = loadDataset('fashion-mnist', 'test', { limit: 3 });
  assert.equal(small.n, 3);
  assert.deepEqual(small.x, testSet.x.subarray(0, 3 * 784));
});

test('validClassRows drops and reports rows of the wrong length, rejects bad pixels', () => {
  const good = new Array<number>(784).fill(7);
  const r = validClassRows([good, [], [1, 2], new Array(784).fill(255), new Array(785).fill(0)], 3, 'x.json');
  assert.equal(r.count, 2);
  assert.equal(r.pixels.length, 2 * 784);
  assert.deepEqual([r.pixels[0], r.pixels[784]], [7, 255]);
  assert.deepEqual(r.dropped, [
    { class: 3, index: 1, length: 0 },
    { class: 3, index: 2, length: 2 },
    { class: 3, index: 4, length: 785 },
  ]);
  for (const bad of [256, -1, 1.5, '3', null]) {
    const row: unknown[] = new Array(784).fill(0);
    row[10] = bad;
    assert.throws(
      () => validClassRows([row], 0, '/data/0.json'),
      (e: unknown) =>
        e instanceof DataError && e.message.includes('/data/0.json') && e.subject.file === '/data/0.json',
    );
  }
  assert.throws(() => validClassRows({}, 0, 'y.json'), DataError);
  assert.throws(() => validClassRows([5], 0, 'y.json'), DataError);
});

test('a broken or missing class file is a DataError naming it', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'edgefit-fashion-'));
  try {
    assert.throws(
      () => readFashion(tmp),
      (e: unknown) => e instanceof DataError && e.message.includes(join(tmp, '0.json')),
    );
    writeFileSync(join(tmp, '0.json'), '{"data": [[1,2,');
    assert.throws(
      () => readFashion(tmp),
      (e: unknown) =>
        e instanceof DataError && e.code === 'fashion-bad-json' && e.subject.file === join(tmp, '0.json'),
    );
    writeFileSync(join(tmp, '0.json'), JSON.stringify({ data: [new Array(784).fill(0)] }));
    assert.throws(
      () => readFashion(tmp),
      (e: unknown) =>
        e instanceof DataError && e.code === 'fashion-too-few-rows' && e.message.includes('0.json'),
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('matches shared/reference/datasets.py bit for bit (float32 x, int64 y)', async (t) => {
  if (!reference) return t.skip(referenceSkipReason());
  const ref = JSON.parse(await reference) as Record<string, [string, string, number]>;
  const h = (a: ArrayBufferView) =>
    createHash('sha256')
      .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
      .digest('hex');
  assert.deepEqual(ref.train, [h(train.x), h(train.y), 60000]);
  assert.deepEqual(ref.test, [h(testSet.x), h(testSet.y), 10000]);
});
