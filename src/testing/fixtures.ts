// Shared helpers for tests: the external models we test on, their sample inputs, and numeric comparison.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { Model } from '../ir/graph.js';
import type { TypedArray } from '../ir/tensor.js';
import type { HostTensor } from '../runtime/index.js';
import { prng } from '../util/random.js';

export { prng };

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TORCH_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'torch');

function pkgDir(name: string): string {
  return join(REPO_ROOT, 'node_modules', name);
}

/** ONNX models from `scripts/fixtures/gen_torch_models.py` (with `.io.json` torch outputs). */
export function torchFixtures(): { name: string; path: string; io: string }[] {
  return readdirSync(TORCH_FIXTURES)
    .filter((f) => f.endsWith('.onnx'))
    .sort()
    .map((f) => ({
      name: f.replace(/\.onnx$/, ''),
      path: join(TORCH_FIXTURES, f),
      io: join(TORCH_FIXTURES, f.replace(/\.onnx$/, '.io.json')),
    }));
}

/** ONNX files shipped inside npm packages (dev dependencies), with inputs that make them run. */
export function packageModels(): {
  name: string;
  path: string;
  feeds: (m: Model) => Record<string, HostTensor>;
}[] {
  const oww = join(pkgDir('openwakeword-js'), 'models');
  const vad = join(pkgDir('@ricky0123/vad-web'), 'dist');
  const audio = (n: number, seed: number) => randomFloat([1, n], seed, 0.1);
  const out: { name: string; path: string; feeds: (m: Model) => Record<string, HostTensor> }[] = [];
  for (const f of readdirSync(oww)
    .filter((f) => f.endsWith('.onnx'))
    .sort())
    out.push({ name: `openwakeword/${f}`, path: join(oww, f), feeds: (m) => randomFeeds(m, 7, 1) });
  const sr = { dtype: 'int64' as const, dims: [], data: BigInt64Array.from([16000n]) };
  out.push({
    name: 'silero_vad_legacy',
    path: join(vad, 'silero_vad_legacy.onnx'),
    feeds: () => ({
      input: audio(1536, 1),
      sr,
      h: randomFloat([2, 1, 64], 2, 0.1),
      c: randomFloat([2, 1, 64], 3, 0.1),
    }),
  });
  for (const v of ['silero_vad_v5', 'silero_vad_v6'])
    out.push({
      name: v,
      path: join(vad, `${v}.onnx`),
      feeds: () => ({ input: audio(512, 4), state: randomFloat([2, 1, 128], 5, 0.1), sr }),
    });
  return out;
}

interface IoEntry {
  dtype: 'float32' | 'int64';
  shape: number[];
  data: number[];
}

/** Read a `<name>.io.json`: torch's inputs and outputs as HostTensors. */
export function readIo(path: string): {
  inputs: Record<string, HostTensor>;
  outputs: Record<string, HostTensor>;
} {
  const j = JSON.parse(readFileSync(path, 'utf8')) as {
    inputs: Record<string, IoEntry>;
    outputs: Record<string, IoEntry>;
  };
  const conv = (e: IoEntry): HostTensor => ({
    dtype: e.dtype,
    dims: e.shape,
    data: e.dtype === 'int64' ? BigInt64Array.from(e.data.map((x) => BigInt(x))) : Float32Array.from(e.data),
  });
  const map = (o: Record<string, IoEntry>) =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, conv(v)]));
  return { inputs: map(j.inputs), outputs: map(j.outputs) };
}

export function randomFloat(dims: number[], seed: number, scale = 1): HostTensor {
  const r = prng(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (r() * 2 - 1) * scale;
  return { dtype: 'float32', dims, data };
}

/** Random feeds for every non-initializer input of a model; symbolic or unknown dims become `batch`. */
export function randomFeeds(m: Model, seed = 1, batch = 2): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  let s = seed;
  for (const v of m.graph.inputs) {
    if (v.const) continue;
    const t = v.tensorType;
    if (!t || !t.shape) throw new Error(`input ${v.name} has no shape`);
    const dims = t.shape.map((d) => (typeof d === 'number' ? d : batch));
    if (t.dtype === 'float32') feeds[v.name] = randomFloat(dims, s++);
    else if (t.dtype === 'int64') {
      const n = dims.reduce((a, b) => a * b, 1);
      const r = prng(s++);
      feeds[v.name] = {
        dtype: 'int64',
        dims,
        data: BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * 4))),
      };
    } else throw new Error(`no random feed for dtype ${t.dtype}`);
  }
  return feeds;
}

export function maxAbsDiff(a: TypedArray, b: TypedArray): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(Number(a[i]) - Number(b[i]));
    if (Number.isNaN(d)) return Infinity;
    if (d > m) m = d;
  }
  return m;
}

/** True when two typed arrays hold the same bytes (bit-identical, NaNs included). */
export function bitEqual(a: TypedArray, b: TypedArray): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

/**
 * sha256 over initializers sorted by name: name + "\0" + raw bytes — the `initializer_sha256` of the PyTorch
 * fixtures (scripts/fixtures/gen_builder_reference.py computes the same), to check a model's weights first.
 */
export function initializerDigest(m: Model): string {
  const h = createHash('sha256');
  for (const name of [...m.graph.initializers.keys()].sort()) {
    h.update(Buffer.from(name, 'utf8'));
    h.update(Buffer.from([0]));
    h.update(m.graph.initializers.get(name)!.const!.bytes);
  }
  return h.digest('hex');
}
