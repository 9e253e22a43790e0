// The teacher: any ONNX classifier (ours or another framework's export), run by ORT. Its logits over a training
// set are computed once and cached on disk, keyed by the teacher's hash (its serialized graph and weights), the
// data's hash (shape and every input value) and the augmentation; a later run with the same three reads them
// back instead of running the teacher again. With random augmentation the inputs differ every step, so the
// teacher runs online on each augmented batch instead (`TeacherRunner.logits`).
//
// Cache file: `<dir>/<key>.logits` = "EFTLOGIT" (8 bytes) · uint32 rows · uint32 classes · rows×classes float32
// (little endian), written atomically. A file that does not match its header is recomputed and replaced.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, InputError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { encodeModel, loadModel } from '../onnx/index.js';
import { type HostTensor, Session } from '../runtime/index.js';
import { writeAtomic } from '../util/fs.js';
import { resolveTensor } from './loss.js';
import { userCacheDir } from '../util/cache.js';

const MAGIC = 'EFTLOGIT';
const HEADER = 16;

export interface Teacher {
  model: Model;
  /** sha256 of the serialized model (graph and weights), hex. */
  hash: string;
  /** The file it was read from (for messages). */
  file?: string;
  inputName: string;
  outputName: string;
}

/** Rows of images the teacher reads: x holds n rows of `inputShape`. */
export interface TeacherData {
  n: number;
  inputShape: readonly number[];
  x: Float32Array;
  name?: string;
}

/** sha256 of a model's serialized bytes (inline tensors, so a change of any weight changes it). */
export function modelHash(model: Model): string {
  return createHash('sha256').update(encodeModel(model)).digest('hex');
}

/** sha256 of the data rows: their shape and every input value. */
export function dataHash(data: TeacherData): string {
  const h = createHash('sha256');
  h.update(`${data.n}|${data.inputShape.join('x')}|`);
  const x = data.x;
  h.update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  return h.digest('hex');
}

/** A teacher from an ONNX file or an in-memory model; its logits are the output `outputName` (default the first). */
export function loadTeacher(
  src: string | Model,
  o: { inputName?: string; outputName?: string } = {},
): Teacher {
  const model = typeof src === 'string' ? loadModel(src) : src;
  const g = model.graph;
  const input = o.inputName
    ? g.inputs.find((v) => v.name === o.inputName)
    : g.inputs.find((v) => !v.const && !g.initializers.has(v.name));
  const output = o.outputName ? g.outputs.find((v) => v.name === o.outputName) : g.outputs[0];
  const subject = typeof src === 'string' ? { file: src } : {};
  if (!input)
    throw new InputError(
      'teacher-input',
      `The teacher has no input ${o.inputName ?? 'to feed the data to'}`,
      subject,
    );
  if (!output)
    throw new InputError(
      'teacher-output',
      `The teacher has no output ${o.outputName ?? 'to read logits from'}`,
      subject,
    );
  const t: Teacher = { model, hash: modelHash(model), inputName: input.name, outputName: output.name };
  if (typeof src === 'string') t.file = src;
  return t;
}

/** Where cached logits go by default: $EDGEFIT_CACHE, else ~/.cache/edgefit, then `teacher-logits/`. */
export function defaultCacheDir(): string {
  return userCacheDir('teacher-logits');
}

/** Runs the teacher on batches; `features` adds named intermediate tensors as outputs (feature distillation). */
export class TeacherRunner {
  private constructor(
    readonly teacher: Teacher,
    private readonly session: Session,
    readonly features: readonly string[],
  ) {}

  static async create(
    teacher: Teacher,
    o: { threads?: number; features?: readonly string[] } = {},
  ): Promise<TeacherRunner> {
    let model = teacher.model;
    const features: string[] = [];
    if (o.features?.length) {
      model = model.clone();
      const g = model.graph;
      for (const f of o.features) {
        const v = resolveTensor(model, f);
        if (!v)
          throw new InputError(
            'teacher-feature',
            `The teacher has no tensor or node "${f}" in its main graph`,
            {
              value: f,
              ...(teacher.file ? { file: teacher.file } : {}),
            },
          );
        if (!v.isGraphOutput) g.outputs.push(v);
        features.push(v.name);
      }
    }
    const session = await Session.create(model, { threads: o.threads, label: teacher.file ?? 'teacher' });
    return new TeacherRunner(teacher, session, features);
  }

  /** Logits (and the features, keyed by `features[i]`: the resolved tensor names) of k rows of `rowShape`. */
  async run(x: Float32Array, k: number, rowShape: readonly number[]): Promise<Record<string, HostTensor>> {
    const r = await this.session.run(
      { [this.teacher.inputName]: { dtype: 'float32', dims: [k, ...rowShape], data: x } },
      [this.teacher.outputName, ...this.features],
    );
    const logits = r[this.teacher.outputName]!;
    if (logits.dims.length !== 2 || logits.dims[0] !== k || logits.dtype !== 'float32')
      throw new DataError(
        'teacher-output',
        `The teacher's output "${this.teacher.outputName}" is ${logits.dtype}[${logits.dims}]: expected float32 logits [${k}, classes]`,
        { value: this.teacher.outputName, ...(this.teacher.file ? { file: this.teacher.file } : {}) },
      );
    return r;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

export interface TeacherLogitsOptions {
  /** Cache folder (default defaultCacheDir()); false: compute, never read or write a cache. */
  cacheDir?: string | false;
  /** Names the (deterministic) augmentation applied to the rows, part of the cache key (default "none"). */
  augmentation?: string;
  threads?: number;
  /** Rows per teacher run (default 1000). */
  batchSize?: number;
}

export interface TeacherLogits {
  /** rows × classes logits, row-major, in data row order. */
  logits: Float32Array;
  classes: number;
  /** Read from the cache (true) or computed now. */
  cached: boolean;
  /** The cache file (when caching is on). */
  file?: string;
  key: string;
  seconds: number;
}

/** The cache key of (teacher, data, augmentation). */
export function cacheKey(teacher: Teacher, data: TeacherData, augmentation = 'none'): string {
  return createHash('sha256')
    .update(`${teacher.hash}|${teacher.outputName}|${dataHash(data)}|${augmentation}`)
    .digest('hex')
    .slice(0, 32);
}

function readCache(file: string, n: number): { logits: Float32Array; classes: number } | undefined {
  if (!existsSync(file)) return undefined;
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch {
    return undefined;
  }
  if (buf.length < HEADER || buf.toString('latin1', 0, 8) !== MAGIC) return undefined;
  const rows = buf.readUInt32LE(8);
  const classes = buf.readUInt32LE(12);
  if (rows !== n || classes < 1 || buf.length !== HEADER + rows * classes * 4) return undefined;
  const logits = new Float32Array(rows * classes);
  new Uint8Array(logits.buffer).set(buf.subarray(HEADER));
  return { logits, classes };
}

function writeCache(file: string, logits: Float32Array, n: number, classes: number): void {
  const head = Buffer.alloc(HEADER);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(n, 8);
  head.writeUInt32LE(classes, 12);
  writeAtomic(file, [head, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength)]);
}

/** The teacher's logits over every row of `data`: from the cache when (teacher, data, augmentation) was seen. */
export async function teacherLogits(
  teacher: Teacher,
  data: TeacherData,
  o: TeacherLogitsOptions = {},
): Promise<TeacherLogits> {
  const t0 = performance.now();
  const key = cacheKey(teacher, data, o.augmentation);
  const dir = o.cacheDir === undefined ? defaultCacheDir() : o.cacheDir;
  const file = dir === false ? undefined : join(dir, `${key}.logits`);
  if (file) {
    const hit = readCache(file, data.n);
    if (hit) return { ...hit, cached: true, file, key, seconds: (performance.now() - t0) / 1000 };
  }
  const row = data.inputShape.reduce((a, b) => a * b, 1);
  const bs = o.batchSize ?? 1000;
  const runner = await TeacherRunner.create(teacher, { threads: o.threads });
  let logits: Float32Array | undefined;
  let classes = 0;
  try {
    for (let s = 0; s < data.n; s += bs) {
      const k = Math.min(bs, data.n - s);
      const r = (await runner.run(data.x.subarray(s * row, (s + k) * row), k, data.inputShape))[
        teacher.outputName
      ]!;
      if (!logits) {
        classes = r.dims[1]!;
        logits = new Float32Array(data.n * classes);
      }
      const v = r.data as Float32Array;
      for (let i = 0; i < v.length; i++)
        if (!Number.isFinite(v[i]!))
          throw new DataError(
            'teacher-nan',
            `The teacher's logits for row ${s + Math.floor(i / classes)} of ${data.name ?? 'the data'} are not finite (${v[i]})`,
            { value: teacher.outputName, ...(teacher.file ? { file: teacher.file } : {}) },
          );
      logits.set(v, s * classes);
    }
  } finally {
    await runner.release();
  }
  if (!logits)
    throw new InputError('empty-data', 'The teacher got no rows to label', { value: data.name ?? 'data' });
  if (file) writeCache(file, logits, data.n, classes);
  return {
    logits,
    classes,
    cached: false,
    ...(file ? { file } : {}),
    key,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Rows `indices` of row-major [n, c] values, gathered into a new [k, c] tensor. */
export function gatherRows(values: Float32Array, c: number, indices: ArrayLike<number>): HostTensor {
  const k = indices.length;
  const out = new Float32Array(k * c);
  for (let i = 0; i < k; i++) {
    const r = indices[i]!;
    out.set(values.subarray(r * c, (r + 1) * c), i * c);
  }
  return { dtype: 'float32', dims: [k, c], data: out };
}
