// Seeded shuffling and batching. Everything here is integer arithmetic on uint32 (Math.imul, shifts), so the
// same seed gives the same order on every machine and every Node version.
//   PRNG: mulberry32 (src/util/random.ts), with the seed checked.
//   Shuffle: Fisher-Yates from the end, j = floor(u32 / 2^32 * (i + 1)) for i = n-1 .. 1.
//   Seeds of (seed, k) pairs, for epochs and per-class streams: splitmix32-style finalizer of seed ^ k·golden.
import { InputError } from '../errors.js';
import { mulberry32 as mulberry32Stream } from '../util/random.js';

function checkSeed(seed: number): number {
  if (!Number.isSafeInteger(seed)) {
    throw new InputError('bad-argument', `seed must be an integer, got ${seed}`, { value: String(seed) });
  }
  return seed >>> 0; // seeds are taken modulo 2^32
}

/** mulberry32 (src/util/random.ts): the next uint32 of the stream seeded by `seed` (an integer, taken modulo 2^32). */
export function mulberry32(seed: number): () => number {
  return mulberry32Stream(checkSeed(seed));
}

/** A uint32 seed derived from (seed, k): different k give unrelated streams. */
export function mixSeed(seed: number, k: number): number {
  let z = (checkSeed(seed) ^ Math.imul(checkSeed(k) + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A seeded permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, seed: number): Uint32Array {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) {
    throw new InputError('bad-argument', `permutation size must be a non-negative integer, got ${n}`, {
      value: String(n),
    });
  }
  const next = mulberry32(seed);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor((next() / 4294967296) * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** The row order of epoch `epoch` (0, 1, ...) of a seeded run: a fresh permutation per epoch. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  return permutation(n, mixSeed(seed, epoch));
}

/** What batches() needs of a dataset. */
export interface BatchSource {
  n: number;
  /** n * prod(inputShape) values. */
  x: Float32Array;
  y: BigInt64Array;
  inputShape: readonly number[];
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle the rows (order = epochOrder(n, seed, epoch)). Default false: rows in order. */
  shuffle?: boolean;
  /** Default 0. */
  seed?: number;
  /** Default 0. */
  epoch?: number;
  /** Drop the last batch if it has fewer than batchSize rows. Default false. */
  dropLast?: boolean;
}

export interface Batch {
  /** n * prod(inputShape) float32 values. */
  x: Float32Array;
  /** n int64 labels. */
  y: BigInt64Array;
  /** Rows in this batch. */
  n: number;
  /** [n, ...inputShape], e.g. [n, 1, 28, 28]. */
  dims: number[];
}

/** Number of batches batches() yields. */
export function numBatches(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/**
 * Batches of `ds`. Unshuffled batches are zero-copy subarray views of ds.x / ds.y (do not write to them);
 * shuffled batches are gathered into freshly allocated arrays, so a consumer may keep any batch.
 */
export function* batches(ds: BatchSource, opts: BatchOptions): Generator<Batch, void, undefined> {
  const { batchSize, shuffle = false, seed = 0, epoch = 0, dropLast = false } = opts;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new InputError('bad-argument', `batchSize must be a positive integer, got ${batchSize}`, {
      value: String(batchSize),
    });
  }
  const px = ds.inputShape.reduce((a, b) => a * b, 1);
  if (ds.x.length !== ds.n * px || ds.y.length !== ds.n) {
    throw new InputError(
      'bad-argument',
      `dataset arrays do not match n=${ds.n}, inputShape=[${ds.inputShape.join(',')}]: x has ${ds.x.length} values, y ${ds.y.length}`,
    );
  }
  const order = shuffle ? epochOrder(ds.n, seed, epoch) : undefined;
  const count = numBatches(ds.n, batchSize, dropLast);
  for (let b = 0; b < count; b++) {
    const start = b * batchSize;
    const k = Math.min(batchSize, ds.n - start);
    const dims = [k, ...ds.inputShape];
    if (!order) {
      yield {
        x: ds.x.subarray(start * px, (start + k) * px),
        y: ds.y.subarray(start, start + k),
        n: k,
        dims,
      };
      continue;
    }
    const x = new Float32Array(k * px);
    const y = new BigInt64Array(k);
    for (let i = 0; i < k; i++) {
      const r = order[start + i]!;
      x.set(ds.x.subarray(r * px, (r + 1) * px), i * px);
      y[i] = ds.y[r]!;
    }
    yield { x, y, n: k, dims };
  }
}
