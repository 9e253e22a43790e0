import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { buildModel } from '../models/index.js';
import { permutation } from './batch.js';
import { loadDataset, subset } from './dataset.js';
import { ImageFolderSource } from './images.js';
import { fromDataset, openData } from './open.js';
import { encodePng } from './png.js';
import {
  BaseSource,
  MemorySource,
  modelIO,
  SampledSource,
  takeFeeds,
  type DataBatch,
  type LoadedRows,
} from './source.js';

let dir = '';
const fm = subset(loadDataset('fashion-mnist', 'test'), 300, 11);
const cnn = modelIO(buildModel('cnn-s'));

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-open-'));
  const px = new Uint8Array(784);
  for (let i = 0; i < fm.n; i++) {
    for (let j = 0; j < 784; j++) px[j] = Math.round(fm.x[i * 784 + j]! * 255);
    const cls = join(dir, 'png', String(fm.y[i]));
    mkdirSync(cls, { recursive: true });
    writeFileSync(join(cls, `${String(i).padStart(4, '0')}.png`), encodePng(px, 28, 28, 1));
    if (i < 40) {
      mkdirSync(join(dir, 'flat'), { recursive: true });
      writeFileSync(join(dir, 'flat', `${String(i).padStart(4, '0')}.png`), encodePng(px, 28, 28, 1));
    }
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function collect(it: AsyncIterable<DataBatch>): Promise<DataBatch[]> {
  const out: DataBatch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

test('an image folder decodes to exactly the dataset rows, in order and shuffled, on the main thread and in a worker', async () => {
  for (const decodeThreads of [0, 1]) {
    const src = await openData(join(dir, 'png'), { model: cnn, decodeThreads });
    try {
      assert.ok(src instanceof ImageFolderSource);
      assert.deepEqual(
        [src.n, src.labeled, src.numClasses, src.inputs],
        [300, true, 10, [{ name: 'input', dtype: 'float32', shape: [1, 28, 28] }]],
      );
      for (const shuffle of [false, true]) {
        const bs = await collect(src.batches({ batchSize: 64, shuffle, seed: 4, epoch: 1 }));
        assert.deepEqual(
          bs.map((b) => b.n),
          [64, 64, 64, 64, 44],
        );
        const seen = new Set<number>();
        for (const b of bs) {
          assert.deepEqual(b.feeds.input!.dims, [b.n, 1, 28, 28]);
          const x = b.feeds.input!.data as Float32Array;
          for (let r = 0; r < b.n; r++) {
            const item = b.indices[r]!;
            seen.add(item);
            // files are listed class by class, then by name: recover the dataset row from the file name
            const row: number = Number((src as ImageFolderSource).file(item).slice(-8, -4));
            assert.equal(b.labels![r], fm.y[row]);
            assert.deepEqual(x.subarray(r * 784, (r + 1) * 784), fm.x.subarray(row * 784, (row + 1) * 784));
          }
        }
        assert.equal(seen.size, 300);
        if (shuffle)
          assert.notDeepEqual(Array.from(bs[0]!.indices.subarray(0, 10)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      }
      const r = await src.read([299, 0, 299]);
      assert.deepEqual(Array.from(r.indices), [299, 0, 299]);
      await assert.rejects(src.read([300]), InputError);
    } finally {
      await src.close();
    }
  }
});

test('batches load lazily: at most prefetch + 1 batches ahead of the consumer', async () => {
  class Counting extends MemorySource {
    requested = 0;
    protected override async load(idx: Uint32Array): Promise<LoadedRows> {
      this.requested += idx.length;
      return super.load(idx);
    }
  }
  const src = new Counting({
    name: 'c',
    format: 'memory',
    n: 1000,
    inputs: [{ name: 'x', dtype: 'float32', shape: [2] }],
    arrays: [new Float32Array(2000)],
  });
  let k = 0;
  for await (const b of src.batches({ batchSize: 10, prefetch: 2 })) {
    k++;
    assert.ok(src.requested <= (k + 2) * 10, `after ${k} batches ${src.requested} items were requested`);
    assert.equal(b.n, 10);
    if (k === 5) break;
  }
  assert.equal(src.requested, 70);
});

test('skipped items are refilled from the next ones, listed once; a source of only bad items is a DataError', async () => {
  class Flaky extends BaseSource {
    readonly name = 'flaky';
    readonly format = 'memory' as const;
    readonly n: number;
    readonly inputs = [{ name: 'x', dtype: 'float32' as const, shape: [1] }];
    readonly labeled = true;
    constructor(
      n: number,
      private readonly bad: (i: number) => boolean,
    ) {
      super();
      this.n = n;
    }
    protected async load(idx: Uint32Array): Promise<LoadedRows> {
      const keep = Array.from(idx).filter((i) => {
        if (this.bad(i)) this.skip(i, `f${i}`, 'broken');
        return !this.bad(i);
      });
      return {
        n: keep.length,
        arrays: [Float32Array.from(keep)],
        labels: BigInt64Array.from(keep, BigInt),
        indices: Uint32Array.from(keep),
      };
    }
  }
  const src = new Flaky(25, (i) => i % 4 === 1);
  for (let epoch = 0; epoch < 2; epoch++) {
    const bs = await collect(src.batches({ batchSize: 5 }));
    assert.deepEqual(
      bs.map((b) => b.n),
      [5, 5, 5, 4],
    );
    const xs = bs.flatMap((b) => Array.from(b.feeds.x!.data as Float32Array));
    assert.deepEqual(
      xs,
      Array.from({ length: 25 }, (_, i) => i).filter((i) => i % 4 !== 1),
    );
    assert.deepEqual(
      bs.flatMap((b) => Array.from(b.labels!, Number)),
      xs,
    );
  }
  assert.equal(src.skipped.length, 6);
  assert.deepEqual(src.skipped[0], { file: 'f1', reason: 'broken' });
  assert.deepEqual(
    (await collect(src.batches({ batchSize: 5, dropLast: true }))).map((b) => b.n),
    [5, 5, 5],
  );
  await assert.rejects(
    collect(new Flaky(6, () => true).batches({ batchSize: 4 })),
    /flaky: none of its 6 items could be read/,
  );

  // a sampled view (what --limit gives): the inner items it drew, in order; the inner source's skips, in item order
  const inner = new Flaky(40, (i) => i % 4 === 1);
  const view = new SampledSource(inner, 12, 3);
  const drawn = [...view.items];
  assert.equal(drawn.length, 12);
  assert.ok(drawn.every((v, i) => i === 0 || v > drawn[i - 1]!));
  const vb = await collect(view.batches({ batchSize: 4 }));
  const good = drawn.filter((i) => i % 4 !== 1);
  assert.deepEqual(
    vb.flatMap((b) => Array.from(b.feeds.x!.data as Float32Array)),
    good,
  );
  // batch indices are view positions
  assert.deepEqual(
    vb.flatMap((b) => Array.from(b.indices)),
    good.map((g) => drawn.indexOf(g)),
  );
  assert.deepEqual(
    view.skipped.map((x) => x.file),
    drawn.filter((i) => i % 4 === 1).map((i) => `f${i}`),
  );
});

test('a flat folder is unlabeled data (calibration); classes.txt sets the class order', async () => {
  const flat = await openData(join(dir, 'flat'), { model: cnn });
  assert.deepEqual([flat.n, flat.labeled, flat.numClasses], [40, false, undefined]);
  const bs = await collect(flat.batches({ batchSize: 16 }));
  assert.deepEqual(
    bs.map((b) => [b.n, b.labels]),
    [
      [16, undefined],
      [16, undefined],
      [8, undefined],
    ],
  );
  assert.deepEqual(bs[0]!.feeds.input!.data.subarray(0, 784), fm.x.subarray(0, 784));
  await flat.close();
  await assert.rejects(
    openData(join(dir, 'flat'), { model: cnn, needLabels: 'edgefit train' }),
    /edgefit train needs labelled data/,
  );

  writeFileSync(join(dir, 'png', 'classes.txt'), '9\n8\n7\n6\n5\n4\n3\n2\n1\n0\n');
  try {
    const src = await openData(join(dir, 'png'), { model: cnn, limit: 50 });
    assert.deepEqual(src.classNames, ['9', '8', '7', '6', '5', '4', '3', '2', '1', '0']);
    const b = (await collect(src.batches({ batchSize: 50 })))[0]!;
    // --limit draws its 50 items across the folder, in item order: class folder "9" (class index 0 now) first
    assert.equal(b.labels![0], 0n);
    assert.ok(new Set(b.labels!).size >= 8, `classes among 50 sampled items: ${new Set(b.labels!).size}`);
    assert.ok(b.labels!.every((y, i) => i === 0 || y >= b.labels![i - 1]!));
    assert.equal(Number(src.n), 50);
    writeFileSync(join(dir, 'png', 'classes.txt'), '0\n1\n2\n3\n4\n5\n6\n7\n8\n');
    await assert.rejects(
      openData(join(dir, 'png'), { model: cnn }),
      (e: unknown) =>
        e instanceof InputError &&
        /classes\.txt: does not list the class folder "9"/.test((e as Error).message),
    );
  } finally {
    rmSync(join(dir, 'png', 'classes.txt'));
  }
});

test('built-in datasets and in-memory Datasets are DataSources; flags that do not apply are refused', async () => {
  const b = await openData('fashion-mnist', { model: cnn, limit: 100 });
  assert.deepEqual([b.format, b.n, b.dropped.length, b.classNames?.[6]], ['builtin', 100, 2, 'Shirt']);
  // the test split is sorted by class: a limit samples it (seeded, in item order) rather than taking class 0 only
  const whole = loadDataset('fashion-mnist', 'test');
  const items = permutation(whole.n, 0).subarray(0, 100).sort();
  const got = (await collect(b.batches({ batchSize: 64 }))).flatMap((x) => [...x.labels!]);
  assert.deepEqual(
    got,
    [...items].map((i) => whole.y[i]!),
  );
  assert.equal(new Set(got).size, 10);
  const again = await openData('fashion-mnist', { model: cnn, limit: 100 });
  const r = await again.read([5, 0, 99]);
  assert.deepEqual([...r.indices], [5, 0, 99]);
  assert.deepEqual(
    r.feeds.input!.data.subarray(784, 1568),
    whole.x.subarray(items[0]! * 784, (items[0]! + 1) * 784),
  );
  await assert.rejects(openData('fashion-mnist', { limit: 0 }), /limit must be a positive integer/);
  const first = (await collect(b.batches({ batchSize: 100 })))[0]!;
  assert.equal(first.feeds.input!.data.buffer, (first.feeds.input!.data as Float32Array).buffer); // a view, no copy
  const mlpFlat = {
    inputs: [{ name: 'x', dtype: 'float32' as const, shape: ['N', 784] }],
    outputs: [{ name: 'y', dtype: 'float32' as const, shape: ['N', 10] }],
  };
  const m = fromDataset(fm, { model: mlpFlat });
  assert.deepEqual(m.inputs[0]!.shape, [784]);
  await assert.rejects(
    openData('mnist', { labels: 'y.npy' }),
    /--labels \(for \.npy data\) do not apply to mnist/,
  );
  await assert.rejects(openData('mnist', { preprocess: { resize: 3 } }), /preprocessing options/);
  await assert.rejects(
    openData('mnist', {
      model: { inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 3, 28, 28] }], outputs: [] },
    }),
    /model input "x" has shape \[N,3,28,28\], which does not fit mnist items of shape \[1,28,28\]/,
  );
});

test('takeFeeds: a shuffled calibration set of exactly `count` items from a class-ordered folder', async () => {
  const src = await openData(join(dir, 'png'), { model: cnn });
  const feeds = await takeFeeds(src, { count: 150, batchSize: 64, seed: 1 });
  await src.close();
  assert.deepEqual(
    feeds.map((f) => f.input!.dims),
    [
      [64, 1, 28, 28],
      [64, 1, 28, 28],
      [22, 1, 28, 28],
    ],
  );
  assert.equal(feeds[2]!.input!.data.length, 22 * 784);
  // shuffled: the first batch mixes classes (the folder lists class 0 first)
  const rows = new Set<string>();
  const x = feeds[0]!.input!.data as Float32Array;
  for (let r = 0; r < 64; r++)
    for (let i = 0; i < fm.n; i++)
      if (x[r * 784 + 300] === fm.x[i * 784 + 300] && x[r * 784 + 400] === fm.x[i * 784 + 400])
        rows.add(String(fm.y[i]));
  assert.ok(rows.size > 5, `classes in the first batch: ${[...rows]}`);
});
