// Augmentation: mixup blends each row with one other row of the batch (a convex combination), the label follows the
// larger weight, the draws depend on (seed, step) only; parsing and the description round-trip.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { augmentBatch, describeAugmentation, parseAugmentation } from './augment.js';

test('mixup: each row is λ·itself + (1 − λ)·one partner row, the label is the dominant row’s, seeded by (seed, step)', () => {
  const k = 6;
  const shape = [1, 4, 4];
  const row = 16;
  const fresh = () => {
    // row i is the constant image 10·(i + 1), label i
    const x = new Float32Array(k * row);
    for (let i = 0; i < k; i++) x.fill(10 * (i + 1), i * row, (i + 1) * row);
    return { x, y: BigInt64Array.from({ length: k }, (_, i) => BigInt(i)) };
  };
  const a = fresh();
  augmentBatch(a.x, k, shape, { mixup: true }, 7, 3, a.y);
  // the partner offset r is one per batch: find the r in [1, k) that explains every row
  const explains = (r: number) =>
    Array.from({ length: k }, (_, i) => {
      const j = (i + r) % k;
      const v = a.x[i * row]!;
      if (!a.x.subarray(i * row, (i + 1) * row).every((p) => Math.abs(p - v) < 1e-4)) return false;
      const lam = (v - 10 * (j + 1)) / (10 * (i + 1) - 10 * (j + 1));
      return lam >= -1e-6 && lam <= 1 + 1e-6 && a.y[i] === BigInt(lam >= 0.5 ? i : j);
    }).every(Boolean);
  const rs = [1, 2, 3, 4, 5].filter(explains);
  assert.equal(rs.length, 1, `one partner offset explains every row (found ${rs})`);
  assert.ok(
    [...a.y].some((l, i) => l !== BigInt(i)),
    'some rows take their partner’s label (seed 7, step 3)',
  );
  // the same (seed, step) gives the same batch; another step another one
  const b = fresh();
  augmentBatch(b.x, k, shape, { mixup: true }, 7, 3, b.y);
  assert.deepEqual(b.x, a.x);
  assert.deepEqual(b.y, a.y);
  const c = fresh();
  augmentBatch(c.x, k, shape, { mixup: true }, 7, 4, c.y);
  assert.notDeepEqual(c.x, a.x);
});

test('augmentation specs parse and describe themselves; bad parts are refused', () => {
  assert.deepEqual(parseAugmentation('shift=1,flip,mixup'), { shift: 1, flip: true, mixup: true });
  assert.equal(describeAugmentation(parseAugmentation('mixup,shift=2')), 'shift=2,mixup');
  assert.equal(describeAugmentation(parseAugmentation('none')), 'none');
  assert.throws(() => parseAugmentation('mixup=2'), /shift=N \(N ≤ 16\), flip or mixup/);
});
