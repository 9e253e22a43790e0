// Checking a rewrite numerically: random inputs for a model, and the largest absolute difference between two
// models' outputs under ONNX Runtime.
import { InputError, ShapeError } from '../errors.js';
import type { DType, Model, TypedArray } from '../ir/index.js';
import { floatToHalf, halfToFloat } from '../ir/index.js';
import { runModel, type HostTensor } from '../runtime/index.js';
import { prng } from '../util/random.js';

export interface RandomInputOptions {
  seed?: number;
  /** Value of every symbolic or unknown dim not named in `dims` (default 1). */
  batch?: number;
  /** Values of named symbolic dims. */
  dims?: Record<string, number>;
  /** Shapes of named inputs (overriding their declared shapes). */
  shapes?: Record<string, number[]>;
  /** Inputs filled with one value (e.g. a sample rate: { sr: 16000 }) instead of random numbers. */
  values?: Record<string, number>;
  /** Integer inputs are drawn from [0, intHigh) (default 4). */
  intHigh?: number;
}

/** Random feeds for every input of `model` that is not an initializer: floats in [-1, 1), ints in [0, intHigh). */
/** Names in --shapes/--values/--dims that are no input (or symbolic dim) of the model: refused, not ignored. */
function checkInputNames(model: Model, opts: RandomInputOptions): void {
  const inputs = model.graph.inputs.filter((v) => !v.const);
  const names = inputs.map((v) => v.name);
  for (const [flag, o] of [
    ['shapes', opts.shapes],
    ['values', opts.values],
  ] as const)
    for (const k of Object.keys(o ?? {}))
      if (!names.includes(k))
        throw new InputError(
          'random-input',
          `--${flag} names "${k}", which is not an input of the model (inputs: ${names.join(', ') || 'none'})`,
          { value: k },
        );
  const symbols = new Set(
    inputs.flatMap((v) => (v.tensorType?.shape ?? []).filter((d) => typeof d === 'string')),
  );
  for (const k of Object.keys(opts.dims ?? {}))
    if (!symbols.has(k))
      throw new InputError(
        'random-input',
        `--dims names "${k}", which is not a symbolic dimension of the model's inputs (${[...symbols].join(', ') || 'none'})`,
        { value: k },
      );
}

export function randomInputs(model: Model, opts: RandomInputOptions = {}): Record<string, HostTensor> {
  const r = prng(opts.seed ?? 1);
  const hi = opts.intHigh ?? 4;
  const feeds: Record<string, HostTensor> = {};
  checkInputNames(model, opts);
  for (const v of model.graph.inputs) {
    if (v.const) continue;
    const t = v.tensorType;
    if (!t || !t.shape)
      throw new ShapeError(
        'random-input',
        `Input "${v.name}" has no known tensor shape: random inputs cannot be made for it`,
        { value: v.name },
      );
    const given = opts.shapes?.[v.name];
    if (given && given.length !== t.shape.length)
      throw new ShapeError(
        'random-input',
        `Input "${v.name}" has rank ${t.shape.length}: the shape [${given.join(', ')}] given for it has rank ${given.length}`,
        { value: v.name },
      );
    const dims = given
      ? [...given]
      : t.shape.map((d) =>
          typeof d === 'number'
            ? d
            : typeof d === 'string' && opts.dims?.[d] !== undefined
              ? opts.dims[d]!
              : (opts.batch ?? 1),
        );
    const n = dims.reduce((a, b) => a * b, 1);
    const fill = opts.values?.[v.name];
    const gen = fill === undefined ? r : () => 0;
    const data = randomData(t.dtype, n, gen, hi, v.name);
    if (fill !== undefined) {
      if (data instanceof BigInt64Array || data instanceof BigUint64Array)
        data.fill(BigInt(Math.trunc(fill)));
      else if (t.dtype === 'float16') (data as Uint16Array).fill(floatToHalf(fill));
      else data.fill(fill);
    }
    feeds[v.name] = { dtype: t.dtype, dims, data };
  }
  return feeds;
}

function randomData(d: DType, n: number, r: () => number, hi: number, name: string): TypedArray {
  const f = () => r() * 2 - 1;
  const i = () => Math.floor(r() * hi);
  switch (d) {
    case 'float32':
      return Float32Array.from({ length: n }, f);
    case 'float64':
      return Float64Array.from({ length: n }, f);
    case 'float16':
      return Uint16Array.from({ length: n }, () => floatToHalf(f()));
    case 'int64':
      return BigInt64Array.from({ length: n }, () => BigInt(i()));
    case 'uint64':
      return BigUint64Array.from({ length: n }, () => BigInt(i()));
    case 'int32':
      return Int32Array.from({ length: n }, i);
    case 'uint32':
      return Uint32Array.from({ length: n }, i);
    case 'int16':
      return Int16Array.from({ length: n }, i);
    case 'uint16':
      return Uint16Array.from({ length: n }, i);
    case 'int8':
      return Int8Array.from({ length: n }, i);
    case 'uint8':
      return Uint8Array.from({ length: n }, i);
    case 'bool':
      return Uint8Array.from({ length: n }, () => (r() < 0.5 ? 0 : 1));
    default:
      throw new ShapeError(
        'random-input',
        `Input "${name}" has dtype ${d}: random inputs are not made for it`,
        { value: name },
      );
  }
}

export interface CompareResult {
  /** Largest |a − b| over every output (Infinity when shapes differ or an output is missing; NaN = NaN). */
  maxAbsDiff: number;
  outputs: { name: string; dims: readonly number[]; maxAbsDiff: number }[];
}

function numbers(h: HostTensor): ArrayLike<number | bigint> {
  if (h.dtype === 'float16') return Array.from(h.data as Uint16Array, halfToFloat);
  return h.data as ArrayLike<number | bigint>;
}

/** Largest absolute difference between two outputs (NaN vs NaN counts as equal). */
export function maxAbsDiff(a: HostTensor, b: HostTensor): number {
  if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) return Infinity;
  const x = numbers(a);
  const y = numbers(b);
  if (x.length !== y.length) return Infinity;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const p = Number(x[i]);
    const q = Number(y[i]);
    if (Number.isNaN(p) && Number.isNaN(q)) continue;
    if (p === q) continue;
    const d = Math.abs(p - q);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Run both models on `feeds` (1 thread) and compare every output of `a` with the same-named output of `b`. */
export async function compareModels(
  a: Model,
  b: Model,
  feeds: Record<string, HostTensor>,
): Promise<CompareResult> {
  const ra = await runModel(a, feeds, { threads: 1, label: 'the model before' });
  const rb = await runModel(b, feeds, { threads: 1, label: 'the model after' });
  const outputs = Object.entries(ra).map(([name, t]) => ({
    name,
    dims: t.dims,
    maxAbsDiff: rb[name] ? maxAbsDiff(t, rb[name]!) : Infinity,
  }));
  return { maxAbsDiff: outputs.reduce((m, o) => Math.max(m, o.maxAbsDiff), 0), outputs };
}
