// The seeded ways of choosing rows that training, QAT and calibration share: the validation split of a training
// set, the default size of that split, and a seeded sample of a data source as feed batches (calibration, SQNR).
import { InputError } from '../errors.js';
import type { HostTensor } from '../runtime/index.js';
import { mixSeed, permutation } from './batch.js';
import { take, type Dataset } from './dataset.js';
import type { DataSource } from './source.js';

/** Rows held out for validation when none is asked for: 5,000, or 10 % of a set below 50,000 rows. */
export function defaultValRows(n: number): number {
  return n >= 50_000 ? 5000 : Math.floor(n / 10);
}

/**
 * Train / validation split of in-memory rows: a seeded permutation of the rows, the last `valRows` of it held
 * out for validation (both parts keep the dataset's row order). `valRows` 0 holds nothing out.
 */
export function splitValidation(
  ds: Dataset,
  valRows: number,
  seed: number,
): { train: Dataset; val?: Dataset } {
  if (valRows === 0) return { train: ds };
  if (valRows >= ds.n)
    throw new InputError(
      'option',
      `--val-split ${valRows} leaves no training rows (the training data has ${ds.n} rows)`,
      { value: 'val-split' },
    );
  const perm = permutation(ds.n, mixSeed(seed, 0x7a1d));
  const isVal = new Uint8Array(ds.n);
  for (let i = ds.n - valRows; i < ds.n; i++) isVal[perm[i]!] = 1;
  const tr: number[] = [];
  const va: number[] = [];
  for (let i = 0; i < ds.n; i++) (isVal[i] ? va : tr).push(i);
  return { train: take(ds, tr), val: take(ds, va) };
}

/** Feed batches: one tensor per model input. */
export type FeedBatch = Record<string, HostTensor>;

/** `samples` items of a data source (a seeded random choice, in item order), as feed batches of `batch` rows. */
export async function sampleFeeds(
  src: DataSource,
  samples: number,
  seed: number,
  batch = 64,
): Promise<FeedBatch[]> {
  const n = Math.min(samples, src.n);
  const idx = Array.from(permutation(src.n, seed).subarray(0, n)).sort((a, b) => a - b);
  const out: FeedBatch[] = [];
  for (let i = 0; i < idx.length; i += batch) {
    const b = await src.read(idx.slice(i, i + batch));
    if (b.n) out.push(b.feeds);
  }
  return out;
}

/** Rows in a list of feed batches (the first dim of their first tensor). */
export function feedRows(feeds: readonly FeedBatch[]): number {
  return feeds.reduce((a, f) => a + (Object.values(f)[0]?.dims[0] ?? 0), 0);
}
