// Test helpers for src/train (not part of the library surface): the PyTorch fixtures of test/fixtures/grad,
// digests, tolerances.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PIXEL_SCALE } from '../data/index.js';
import type { HostTensor } from '../runtime/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const GRAD_FIXTURES = join(root, 'test', 'fixtures', 'grad');

export interface FxTensor {
  dtype: string;
  shape: number[];
  data: number[];
}

export interface FxHeader {
  model: string;
  initializer_sha256: string;
  transposed: string[];
  rows: number[];
  pixels: FxTensor;
  labels: number[];
}

export function readFixture<T>(file: string): T {
  return JSON.parse(readFileSync(join(GRAD_FIXTURES, file), 'utf8')) as T;
}

export { initializerDigest } from './fixtures.js';

/** Rows [from, to) of the fixture's pixels as a float32 NCHW batch (p / 255), with int64 labels. */
export function fixtureBatch(
  fx: FxHeader,
  from = 0,
  to = fx.labels.length,
): { x: HostTensor; y: HostTensor } {
  const [, c, h, w] = fx.pixels.shape as [number, number, number, number];
  const per = c * h * w;
  const n = to - from;
  const x = new Float32Array(n * per);
  for (let i = 0; i < n * per; i++) x[i] = PIXEL_SCALE[fx.pixels.data[from * per + i]!]!;
  const y = BigInt64Array.from(fx.labels.slice(from, to), (v) => BigInt(v));
  return { x: { dtype: 'float32', dims: [n, c, h, w], data: x }, y: { dtype: 'int64', dims: [n], data: y } };
}

/** Rows of the fixture batch given by train-row index (the `rows` of a step). */
export function rowsBatch(fx: FxHeader, rows: readonly number[]): { x: HostTensor; y: HostTensor } {
  const [, c, h, w] = fx.pixels.shape as [number, number, number, number];
  const per = c * h * w;
  const x = new Float32Array(rows.length * per);
  const y = new BigInt64Array(rows.length);
  rows.forEach((r, i) => {
    const k = fx.rows.indexOf(r);
    assert.ok(k >= 0, `row ${r} is not in the fixture`);
    for (let j = 0; j < per; j++) x[i * per + j] = PIXEL_SCALE[fx.pixels.data[k * per + j]!]!;
    y[i] = BigInt(fx.labels[k]!);
  });
  return {
    x: { dtype: 'float32', dims: [rows.length, c, h, w], data: x },
    y: { dtype: 'int64', dims: [rows.length], data: y },
  };
}

export function sumStats(d: ArrayLike<number>): { sum: number; sum_sq: number; abs_max: number } {
  let s = 0;
  let q = 0;
  let m = 0;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    s += v;
    q += v * v;
    m = Math.max(m, Math.abs(v));
  }
  return { sum: s, sum_sq: q, abs_max: m };
}

/** Largest |a − b| over two arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** |a − b| ≤ tol · max(1e-30, |b|) */
export function assertRel(a: number, b: number, tol: number, what: string): void {
  assert.ok(
    Math.abs(a - b) <= tol * Math.max(Math.abs(b), 1e-30),
    `${what}: ${a} vs ${b} (relative error ${(Math.abs(a - b) / Math.abs(b)).toExponential(2)} > ${tol})`,
  );
}
