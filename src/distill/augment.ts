// Random image augmentation for distillation: each training batch is shifted by up to `shift` pixels (zeros
// shifted in) and/or mirrored left-right, and with `mixup` each row blended with another row of the batch
// (λ·a + (1 − λ)·b, λ uniform in [0, 1]; its label becomes the dominant image's), seeded by (seed, step) so a run is
// reproducible. The teacher then sees the same augmented images as the student, so its logits are computed online
// per batch (a cached per-row logit would be the teacher's opinion of a different image) — for a blend, the
// teacher's soft opinion describes the image where a single label cannot.
import { InputError } from '../errors.js';
import { mixSeed, mulberry32 } from '../data/batch.js';

export interface Augmentation {
  /** Maximum shift in pixels along each spatial axis (0: none). */
  shift?: number;
  /** Mirror left-right with probability ½. */
  flip?: boolean;
  /** Blend each row with another row of the batch (λ uniform; the label follows the larger weight). */
  mixup?: boolean;
}

/** Parse `shift=2,flip` (or `none`). */
export function parseAugmentation(text: string): Augmentation {
  const a: Augmentation = {};
  if (text.trim() === 'none' || text.trim() === '') return a;
  for (const part of text.split(',').map((s) => s.trim())) {
    const [k, v] = part.split('=');
    if (k === 'flip' && v === undefined) a.flip = true;
    else if (k === 'mixup' && v === undefined) a.mixup = true;
    else if (k === 'shift' && v !== undefined && /^\d+$/.test(v) && Number(v) <= 16) a.shift = Number(v);
    else
      throw new InputError(
        'augment',
        `--augment "${text}": "${part}" is not shift=N (N ≤ 16), flip or mixup`,
        {
          value: 'augment',
        },
      );
  }
  return a;
}

export function describeAugmentation(a: Augmentation | undefined): string {
  const parts: string[] = [];
  if (a?.shift) parts.push(`shift=${a.shift}`);
  if (a?.flip) parts.push('flip');
  if (a?.mixup) parts.push('mixup');
  return parts.join(',') || 'none';
}

export function isAugmenting(a: Augmentation | undefined): boolean {
  return !!a && (!!a.shift || !!a.flip || !!a.mixup);
}

/**
 * Augment k rows of [C, H, W] images in `x` in place (and, with mixup, their `labels`); the random draws depend on
 * (seed, step) only.
 */
export function augmentBatch(
  x: Float32Array,
  k: number,
  shape: readonly number[],
  a: Augmentation,
  seed: number,
  step: number,
  labels?: BigInt64Array,
): void {
  if (!isAugmenting(a)) return;
  if (shape.length !== 3)
    throw new InputError('augment', `Augmentation takes images [C, H, W]: rows are [${shape.join(', ')}]`, {
      value: 'augment',
    });
  const [c, h, w] = shape as [number, number, number];
  const rnd = mulberry32(mixSeed(seed, step));
  const u = () => rnd() / 2 ** 32;
  const s = a.shift ?? 0;
  const plane = h * w;
  const tmp = new Float32Array(plane);
  for (let i = 0; i < k; i++) {
    const dy = s ? Math.floor(u() * (2 * s + 1)) - s : 0;
    const dx = s ? Math.floor(u() * (2 * s + 1)) - s : 0;
    const flip = a.flip ? u() < 0.5 : false;
    if (!dy && !dx && !flip) continue;
    for (let ch = 0; ch < c; ch++) {
      const o = (i * c + ch) * plane;
      const img = x.subarray(o, o + plane);
      tmp.set(img);
      for (let y = 0; y < h; y++) {
        const sy = y - dy;
        for (let xx = 0; xx < w; xx++) {
          const tx = flip ? w - 1 - xx : xx;
          const sx = tx - dx;
          img[y * w + xx] = sy >= 0 && sy < h && sx >= 0 && sx < w ? tmp[sy * w + sx]! : 0;
        }
      }
    }
  }
  if (a.mixup && k > 1) {
    // row i blends with row (i + r) mod k of the (shifted/flipped) batch, r in [1, k) drawn once per batch
    const row = c * plane;
    const src = x.slice(0, k * row);
    const ys = labels?.slice(0, k);
    const r = 1 + Math.floor(u() * (k - 1));
    for (let i = 0; i < k; i++) {
      const j = (i + r) % k;
      const lam = u();
      for (let p = 0; p < row; p++) x[i * row + p] = lam * src[i * row + p]! + (1 - lam) * src[j * row + p]!;
      if (labels && ys && lam < 0.5) labels[i] = ys[j]!;
    }
  }
}
