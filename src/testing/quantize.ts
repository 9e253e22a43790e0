// Helpers for the quantization tests: fixture models, calibration batches, running models in ORT.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../ir/index.js';
import { buildModel } from '../models/index.js';
import { loadModel } from '../onnx/index.js';
import { Session, type HostTensor, type OptimizationLevel } from '../runtime/index.js';
import { REPO_ROOT, readIo, torchFixtures } from './fixtures.js';
import { randomInputs } from '../passes/check.js';
import { cnnSWithStats } from './passes.js';
import type { Feeds } from '../passes/quantize/calibrate.js';
import { prepareForQuantization } from '../passes/quantize/index.js';

export const QUANT_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'quant');

/** ONNX models from scripts/fixtures/gen_quant_models.py. */
export function quantFixtures(): { name: string; path: string; io: string }[] {
  return readdirSync(QUANT_FIXTURES)
    .filter((f) => f.endsWith('.onnx'))
    .sort()
    .map((f) => ({
      name: f.replace(/\.onnx$/, ''),
      path: join(QUANT_FIXTURES, f),
      io: join(QUANT_FIXTURES, f.replace(/\.onnx$/, '.io.json')),
    }));
}

/** A fixture by name: torch/<name>, quant/<name>, or builder/<mlp|cnn-s|vit-t> (cnn-s with BatchNorm statistics). */
export function fixture(name: string): { model: Model; feeds: Record<string, HostTensor> } {
  const [kind, n] = name.split('/') as [string, string];
  if (kind === 'builder') {
    const model = n === 'cnn-s' ? cnnSWithStats() : buildModel(n, { seed: 1 });
    return { model, feeds: imageFeeds(model, 2, 5) };
  }
  const f = (kind === 'torch' ? torchFixtures() : quantFixtures()).find((x) => x.name === n);
  if (!f) throw new Error(`no fixture ${name}`);
  return { model: loadModel(f.path), feeds: readIo(f.io).inputs };
}

/** Random feeds in [0, 1) (image-like) for every float input; other inputs as randomInputs makes them. */
export function imageFeeds(model: Model, batch: number, seed: number): Record<string, HostTensor> {
  const f = randomInputs(model, { batch, seed });
  for (const t of Object.values(f))
    if (t.dtype === 'float32') t.data = (t.data as Float32Array).map((v) => (v + 1) / 2);
  return f;
}

/**
 * `count` calibration batches of `batch` rows: image-like [0, 1) values, or, given sample feeds (a fixture's
 * inputs), values spread over the samples' range, plus the samples themselves.
 */
export function calibrationBatches(
  model: Model,
  count = 4,
  batch = 16,
  seed = 100,
  like?: Record<string, HostTensor>,
): Feeds[] {
  const out: Feeds[] = Array.from({ length: count }, (_, i) => imageFeeds(model, batch, seed + i));
  if (!like) return out;
  for (const f of out)
    for (const [k, t] of Object.entries(f)) {
      const s = like[k];
      if (!s || t.dtype !== 'float32') continue;
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of s.data as Float32Array) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      t.data = (t.data as Float32Array).map((v) => lo + v * (hi - lo));
    }
  out.push(like);
  return out;
}

/** The model after the clean-up and fusion pipeline (what `quantize` starts from). */
export async function prepared(model: Model): Promise<Model> {
  return (await prepareForQuantization(model)).model;
}

/** Run a model (first output, as float32) at an optimisation level. */
export async function run(
  model: Model,
  feeds: Record<string, HostTensor>,
  level: OptimizationLevel = 'all',
): Promise<Float32Array> {
  const s = await Session.create(model, { threads: 1, optimizationLevel: level });
  try {
    const out = await s.run(feeds, [s.outputNames[0]!]);
    return Float32Array.from(out[s.outputNames[0]!]!.data as Float32Array);
  } finally {
    await s.release();
  }
}

export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function amax(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
