// Seeded parameter initialisation for the model builder.
//
// Determinism: every parameter draws from its own stream, derived from (seed, parameter name), so a parameter's
// values do not depend on which layers were built before it. The generator (xoshiro128**, seeded through
// splitmix32 from a 32-bit FNV-1a hash of the name) uses only 32-bit integer arithmetic; a uniform draw is
// (u32 >>> 8) / 2^24, which is exact in float64, and the final float32 rounding is IEEE round-to-nearest. So the
// uniform initialisers give the same bytes on every machine. Normal draws use Box–Muller (Math.log, Math.sqrt,
// Math.cos); V8 implements log/cos with its own fdlibm port, so these are also the same on every platform Node
// runs on.
//
// The distributions follow PyTorch (torch.nn.init):
//   'kaiming-uniform'  nn.Linear / nn.Conv2d default: kaiming_uniform_(a=√5) → U(−1/√fan_in, 1/√fan_in)
//   'xavier-uniform'   xavier_uniform_(gain=1) → U(−√(6/(fan_in+fan_out)), +…)
//   'kaiming-normal'   kaiming_normal_(a=0, mode='fan_in', nonlinearity='leaky_relu') → N(0, 2/fan_in)
//   (bias)             nn.Linear / nn.Conv2d default bias U(−1/√fan_in, 1/√fan_in), fan_in of the weight: the
//                      builder passes it as { uniform: [−b, b] }
//   'normal'           N(0, 1), nn.Embedding's default
// Fans are torch's _calculate_fan_in_and_fan_out of the weight in torch layout [out, in, *kernel].
import { InputError } from '../errors.js';

export type InitSpec =
  | 'kaiming-uniform'
  | 'xavier-uniform'
  | 'kaiming-normal'
  | 'normal'
  | 'zeros'
  | 'ones'
  | { uniform: [number, number] }
  | { normal: [number, number] }
  | { constant: number };

/** torch.nn.init._calculate_fan_in_and_fan_out for a weight of shape [out, in, *kernel]. */
export function fans(dims: readonly number[]): { fanIn: number; fanOut: number } {
  if (dims.length < 2) return { fanIn: dims[0] ?? 1, fanOut: dims[0] ?? 1 };
  let receptive = 1;
  for (let i = 2; i < dims.length; i++) receptive *= dims[i]!;
  return { fanIn: dims[1]! * receptive, fanOut: dims[0]! * receptive };
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  const bytes = new TextEncoder().encode(s);
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Check a seed: a non-negative safe integer. */
export function checkSeed(seed: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new InputError('seed', `Seed must be a non-negative integer: current value is ${seed}`, {
      value: 'seed',
    });
  return seed;
}

/** xoshiro128** over a stream derived from (seed, name). */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | undefined;

  constructor(seed: number, stream = '') {
    checkSeed(seed);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    const st = { s: (lo ^ fnv1a(stream)) >>> 0 };
    const s2 = { s: (hi ^ 0x6a09e667) >>> 0 };
    this.a = splitmix32(st) ^ splitmix32(s2);
    this.b = splitmix32(st) ^ splitmix32(s2);
    this.c = splitmix32(st) ^ splitmix32(s2);
    this.d = splitmix32(st) ^ splitmix32(s2);
    if ((this.a | this.b | this.c | this.d) === 0) this.d = 1;
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d >>> 0, 11);
    this.a >>>= 0;
    this.b >>>= 0;
    this.c >>>= 0;
    return result;
  }

  /** Uniform in [0, 1), 24 random bits (exact in float32 and float64). */
  uniform(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }

  /** Standard normal (Box–Muller; the second draw of each pair is kept for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u1 = ((this.nextU32() >>> 8) + 1) / 16777216; // (0, 1]
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const t = 2 * Math.PI * u2;
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export interface InitContext {
  seed: number;
  /** Stream name: the parameter's name. */
  name: string;
  /** Fans of the weight this parameter belongs to (defaults: computed from `dims`). */
  fanIn?: number;
  fanOut?: number;
}

/** Values of a parameter of shape `dims` (row-major, torch layout), as float32. */
export function initValues(dims: readonly number[], spec: InitSpec, ctx: InitContext): Float32Array {
  let n = 1;
  for (const d of dims) n *= d;
  const out = new Float32Array(n);
  const f = fans(dims);
  const fanIn = ctx.fanIn ?? f.fanIn;
  const fanOut = ctx.fanOut ?? f.fanOut;
  const uniform = (lo: number, hi: number) => {
    const rng = new Rng(ctx.seed, ctx.name);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng.uniform();
  };
  const normal = (mean: number, std: number) => {
    const rng = new Rng(ctx.seed, ctx.name);
    for (let i = 0; i < n; i++) out[i] = mean + std * rng.normal();
  };
  if (spec === 'zeros') return out;
  if (spec === 'ones') return out.fill(1);
  if (spec === 'kaiming-uniform') {
    const bound = 1 / Math.sqrt(fanIn);
    uniform(-bound, bound);
  } else if (spec === 'xavier-uniform') {
    const bound = Math.sqrt(6 / (fanIn + fanOut));
    uniform(-bound, bound);
  } else if (spec === 'kaiming-normal') {
    normal(0, Math.sqrt(2) / Math.sqrt(fanIn));
  } else if (spec === 'normal') {
    normal(0, 1);
  } else if ('uniform' in spec) {
    uniform(spec.uniform[0], spec.uniform[1]);
  } else if ('normal' in spec) {
    normal(spec.normal[0], spec.normal[1]);
  } else if ('constant' in spec) {
    out.fill(spec.constant);
  }
  return out;
}
