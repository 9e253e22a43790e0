// Device profiles: what an edge device offers a model, and the choice of a student that fits it. A profile (YAML)
// names the memory the model may use (weights + peak activations), the storage for its weights, threads, a
// latency budget per inference and traits; the choice takes the families in the order the traits prefer and, in
// the first family where anything fits, the largest size (most parameters) whose float32 weights, weights + peak
// activation memory (src/summary's estimate at the profile's batch) and estimated latency (MACs at the profile's
// sustained rate) fit. Every family skipped and why is kept in `reasons`.
//
//   name: cortex-a53            # optional
//   ram: 64MB                   # memory for the model: weights + peak activations (B, KB, MB, GB; 1024-based)
//   storage: 1MB                # bytes for the weights file
//   threads: 4
//   latency_ms: 2               # per inference at `batch` (optional)
//   gmacs_per_thread: 1         # sustained multiply-accumulates per thread, ×10⁹/s (default 1)
//   batch: 1                    # default 1
//   max_params: 50000           # optional cap
//   traits: [no-matrix-units]   # see TRAITS
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { InputError } from '../errors.js';
import { summarize } from '../summary/index.js';
import {
  FAMILIES,
  FAMILY_INFO,
  type Family,
  type StudentShape,
  type StudentSpec,
  buildStudent,
  formatStudent,
  studentParams,
} from './students.js';

/** Traits a profile may name, and what they do to the family order. */
export const TRAITS: Readonly<Record<string, string>> = {
  'no-matrix-units': 'no fast matrix units: attention-free families only (transformer excluded)',
  'matrix-units': 'fast matrix units (NPU/GEMM engine): dense token families first (transformer, mixer)',
  'no-depthwise': 'depthwise convolution is slow on this device: dsconv excluded',
  'conv-accelerator': 'convolutions are accelerated: convolutional families first',
};

export interface DeviceProfile {
  name?: string;
  /** Bytes the model may use while running: weights + peak activations. */
  ramBytes: number;
  /** Bytes for the weights. */
  storageBytes: number;
  threads: number;
  /** Budget per inference at `batch`, ms. */
  latencyMs?: number;
  /** Sustained MACs per thread per second (default 1e9). */
  macsPerSecondPerThread: number;
  batch: number;
  maxParams?: number;
  traits: string[];
}

const UNITS: Record<string, number> = { b: 1, kb: 2 ** 10, mb: 2 ** 20, gb: 2 ** 30, tb: 2 ** 40 };

/** "512KB", "1.5 MB", "2GB", or a number of bytes. */
export function parseBytes(v: unknown, what: string, file?: string): number {
  const m =
    typeof v === 'number'
      ? [String(v), String(v), 'b']
      : String(v)
          .trim()
          .match(/^([\d.]+)\s*([kmgt]?b)?$/i);
  const n = m ? Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]! : NaN;
  if (!Number.isFinite(n) || n <= 0)
    throw new InputError(
      'profile',
      `Device profile: ${what} must be a size like 512KB or 2GB: got "${String(v)}"`,
      {
        value: what,
        ...(file ? { file } : {}),
      },
    );
  return Math.floor(n);
}

function positive(v: unknown, what: string, file?: string, int = false): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n <= 0 || (int && !Number.isInteger(n)))
    throw new InputError(
      'profile',
      `Device profile: ${what} must be a positive ${int ? 'integer' : 'number'}: got "${String(v)}"`,
      {
        value: what,
        ...(file ? { file } : {}),
      },
    );
  return n;
}

const KEYS = [
  'name',
  'ram',
  'storage',
  'threads',
  'latency_ms',
  'gmacs_per_thread',
  'batch',
  'max_params',
  'traits',
];

/** A profile from its YAML/JSON object form. */
export function profileFrom(o: unknown, file?: string): DeviceProfile {
  const subject = file ? { file } : {};
  if (!o || typeof o !== 'object' || Array.isArray(o))
    throw new InputError(
      'profile',
      'Device profile: expected a mapping with ram, storage, threads, …',
      subject,
    );
  const r = o as Record<string, unknown>;
  for (const k of Object.keys(r))
    if (!KEYS.includes(k))
      throw new InputError('profile', `Device profile: unknown key "${k}" (known: ${KEYS.join(', ')})`, {
        value: k,
        ...subject,
      });
  for (const k of ['ram', 'storage'])
    if (r[k] === undefined)
      throw new InputError('profile', `Device profile: "${k}" is required`, { value: k, ...subject });
  const traits = r.traits === undefined ? [] : r.traits;
  if (!Array.isArray(traits) || !traits.every((t) => typeof t === 'string'))
    throw new InputError('profile', 'Device profile: traits must be a list of names', {
      value: 'traits',
      ...subject,
    });
  for (const t of traits)
    if (!(t in TRAITS))
      throw new InputError(
        'profile',
        `Device profile: unknown trait "${t}" (known: ${Object.keys(TRAITS).join(', ')})`,
        {
          value: t,
          ...subject,
        },
      );
  const p: DeviceProfile = {
    ramBytes: parseBytes(r.ram, 'ram', file),
    storageBytes: parseBytes(r.storage, 'storage', file),
    threads: r.threads === undefined ? 1 : positive(r.threads, 'threads', file, true),
    macsPerSecondPerThread:
      (r.gmacs_per_thread === undefined ? 1 : positive(r.gmacs_per_thread, 'gmacs_per_thread', file)) * 1e9,
    batch: r.batch === undefined ? 1 : positive(r.batch, 'batch', file, true),
    traits: [...traits],
  };
  if (typeof r.name === 'string') p.name = r.name;
  if (r.latency_ms !== undefined) p.latencyMs = positive(r.latency_ms, 'latency_ms', file);
  if (r.max_params !== undefined) p.maxParams = positive(r.max_params, 'max_params', file, true);
  return p;
}

/** Read a profile file (YAML or JSON). */
export function loadProfile(file: string): DeviceProfile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError('read-profile', `Cannot read device profile ${file}: ${(e as Error).message}`, {
      file,
    });
  }
  let o: unknown;
  try {
    o = parseYaml(text);
  } catch (e) {
    throw new InputError(
      'profile',
      `Device profile ${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`,
      {
        file,
      },
    );
  }
  return profileFrom(o, file);
}

/** Family order for the profile's traits, and the reasons for it. */
export function familyOrder(p: DeviceProfile): { order: Family[]; reasons: string[] } {
  const reasons: string[] = [];
  let order: Family[] = ['dsconv', 'cnn', 'mixer', 'transformer', 'mlp'];
  if (p.traits.includes('matrix-units')) {
    order = ['transformer', 'mixer', 'cnn', 'mlp', 'dsconv'];
    reasons.push(`trait matrix-units: ${TRAITS['matrix-units']}`);
  }
  if (p.traits.includes('conv-accelerator')) {
    order = [
      ...order.filter((f) => f === 'cnn' || f === 'dsconv'),
      ...order.filter((f) => f !== 'cnn' && f !== 'dsconv'),
    ];
    reasons.push(`trait conv-accelerator: ${TRAITS['conv-accelerator']}`);
  }
  if (p.traits.includes('no-matrix-units')) {
    order = order.filter((f) => !FAMILY_INFO[f].attention);
    reasons.push(`trait no-matrix-units: ${TRAITS['no-matrix-units']}`);
  }
  if (p.traits.includes('no-depthwise')) {
    order = order.filter((f) => !FAMILY_INFO[f].depthwise);
    reasons.push(`trait no-depthwise: ${TRAITS['no-depthwise']}`);
  }
  if (!p.traits.length)
    reasons.push('no traits: depthwise-separable convolutions first (fewest MACs per parameter on CPUs)');
  return { order, reasons };
}

/** What one candidate costs on the device. */
export interface Candidate {
  spec: StudentSpec;
  params: number;
  weightBytes: number;
  peakActivationBytes: number;
  macs: number;
  /** Estimated ms per inference at the profile's batch. */
  latencyMs: number;
}

export interface ProfileChoice {
  spec: StudentSpec;
  candidate: Candidate;
  /** Why this family and size: trait effects, families skipped, the binding limit. */
  reasons: string[];
  /** Candidates evaluated (all families tried). */
  evaluated: number;
}

export const WIDTHS = [4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512];
export const DEPTHS = [1, 2, 3, 4];

/** Cost of one student on the device. */
export function measureCandidate(spec: StudentSpec, shape: StudentShape, p: DeviceProfile): Candidate {
  const m = buildStudent(spec, shape);
  const s = summarize(m, { batch: p.batch });
  return {
    spec,
    params: studentParams(m),
    weightBytes: s.bytes,
    peakActivationBytes: s.peakActivationBytes,
    macs: s.macs,
    latencyMs: (1000 * s.macs) / (p.macsPerSecondPerThread * p.threads),
  };
}

/** Why `c` does not fit `p` (undefined when it fits). */
export function misfit(c: Candidate, p: DeviceProfile): string | undefined {
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(b < 2 ** 20 ? 3 : 1)} MB`;
  if (c.weightBytes > p.storageBytes) return `weights ${mb(c.weightBytes)} > storage ${mb(p.storageBytes)}`;
  if (c.weightBytes + c.peakActivationBytes > p.ramBytes)
    return `weights + peak activations ${mb(c.weightBytes + c.peakActivationBytes)} > ram ${mb(p.ramBytes)}`;
  if (p.latencyMs !== undefined && c.latencyMs > p.latencyMs)
    return `estimated ${c.latencyMs.toFixed(2)} ms > latency budget ${p.latencyMs} ms`;
  if (p.maxParams !== undefined && c.params > p.maxParams)
    return `${c.params} params > max_params ${p.maxParams}`;
  return undefined;
}

/** Choose the family and the largest size that fits the profile. */
export function chooseStudent(p: DeviceProfile, shape: StudentShape): ProfileChoice {
  const { order, reasons } = familyOrder(p);
  const seen = new Map<string, Candidate>();
  const measure = (spec: StudentSpec) => {
    const k = formatStudent(spec);
    let c = seen.get(k);
    if (!c) seen.set(k, (c = measureCandidate(spec, shape, p)));
    return c;
  };
  for (const family of order) {
    let best: Candidate | undefined;
    let smallestMisfit: string | undefined;
    for (const depth of DEPTHS) {
      // every cost grows with the width: binary search for the widest that fits
      let lo = -1;
      let hi = WIDTHS.length;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (misfit(measure({ family, width: WIDTHS[mid]!, depth }), p)) hi = mid;
        else lo = mid;
      }
      if (lo < 0) {
        smallestMisfit ??= misfit(measure({ family, width: WIDTHS[0]!, depth }), p);
        continue;
      }
      const c = measure({ family, width: WIDTHS[lo]!, depth });
      if (!best || c.params > best.params || (c.params === best.params && c.macs < best.macs)) best = c;
    }
    if (!best) {
      reasons.push(
        `${family} (${FAMILY_INFO[family].what}): even the smallest does not fit (${smallestMisfit})`,
      );
      continue;
    }
    const up = WIDTHS.find((x) => x > best!.spec.width);
    const limit = up ? misfit(measure({ ...best.spec, width: up }), p) : undefined;
    reasons.push(
      `${family} (${FAMILY_INFO[family].what}): largest fit ${formatStudent(best.spec)} — ${best.params} params, ${best.weightBytes} B weights, ${best.peakActivationBytes} B peak activations at batch ${p.batch}, ~${best.latencyMs.toFixed(2)} ms${limit ? `; width ${up} would not fit: ${limit}` : ''}`,
    );
    return { spec: best.spec, candidate: best, reasons, evaluated: seen.size };
  }
  throw new InputError(
    'profile-nothing-fits',
    `No student fits the device profile${p.name ? ` "${p.name}"` : ''}: ${reasons.join('; ')}`,
    { value: 'device' },
  );
}

export { FAMILIES };
