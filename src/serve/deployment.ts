// A loaded deployment: one model, or a backbone with several heads (a split deployment, see split.ts), with its
// ORT sessions, what each served model takes and returns, and the batcher its requests go through. The executor
// concatenates the batch's requests along dim 0, runs the model (the backbone once, then each requested head on
// its requests' rows) and hands each request exactly its own rows back.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InputError, InternalError } from '../errors.js';
import type { TypedArray } from '../ir/tensor.js';
import { createSession, type HostTensor, type Session, type ValueInfo } from '../runtime/index.js';
import { type BatchHooks, type BatchOptions, Batcher } from './batcher.js';
import { RequestError } from './errors.js';
import { type DeployedVersion, dataFileOf } from './registry.js';

type Tensors = Record<string, HostTensor>;

/** split.json: a backbone and heads that each take some backbone outputs (and maybe model inputs). */
export interface SplitManifest {
  format: 'edgefit-split';
  version: 1;
  backbone: { file: string; outputs: string[] };
  /** Per head: its input names → the backbone output (or model input) that feeds each. */
  heads: Record<string, { file: string; inputs: Record<string, string>; outputs: string[] }>;
}

export const SPLIT_FORMAT = 'edgefit-split';

export interface ServedModel {
  /** The name clients use in /v1/models/{name}. */
  name: string;
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
}

export interface Job {
  model: string;
  feeds: Tensors;
  rows: number;
}

export interface LoadOptions {
  batch: BatchOptions;
  threads?: number;
  mapWeights: boolean;
  hooks?: BatchHooks;
}

export class Deployment {
  readonly batcher: Batcher<Job, Tensors>;
  /** Why requests of this deployment are not batched (undefined when they are). */
  readonly unbatchable: string | undefined;

  private constructor(
    readonly name: string,
    readonly version: string,
    readonly path: string,
    /** Bytes of the files loaded (models and their external data). */
    readonly bytes: number,
    readonly models: ReadonlyMap<string, ServedModel>,
    private readonly sessions: Session[],
    execute: (jobs: Job[]) => Promise<Tensors[]>,
    opts: LoadOptions,
    unbatchable: string | undefined,
  ) {
    this.unbatchable = unbatchable;
    const batch = unbatchable ? { ...opts.batch, batching: false } : opts.batch;
    this.batcher = new Batcher(name, batch, execute, opts.hooks);
  }

  static async load(name: string, dv: DeployedVersion, opts: LoadOptions): Promise<Deployment> {
    const open = (file: string) =>
      createSession(file, { threads: opts.threads, mapWeights: opts.mapWeights, label: file });
    if (dv.path.endsWith('.json')) {
      const m = readManifest(dv.path);
      const dir = dirname(dv.path);
      const sessions: Session[] = [];
      try {
        const backbone = await open(join(dir, m.backbone.file));
        sessions.push(backbone);
        const heads = new Map<string, Head>();
        for (const [h, spec] of Object.entries(m.heads)) {
          const s = await open(join(dir, spec.file));
          sessions.push(s);
          for (const n of s.inputNames)
            if (!spec.inputs?.[n])
              throw new InputError('split-manifest', `${dv.path}: head "${h}" input "${n}" has no source`, {
                file: dv.path,
              });
          heads.set(h, { session: s, inputs: spec.inputs });
        }
        const models = new Map<string, ServedModel>(
          [...heads].map(([h, s]) => [
            h,
            { name: h, inputs: backbone.inputInfo, outputs: s.session.outputInfo },
          ]),
        );
        const files = [m.backbone.file, ...Object.values(m.heads).map((h) => h.file)].map((f) =>
          join(dir, f),
        );
        return new Deployment(
          name,
          dv.version,
          dv.path,
          fileBytes(files),
          models,
          sessions,
          (jobs) => runSplit(backbone, heads, jobs),
          opts,
          whyNotBatchable([backbone, ...[...heads.values()].map((h) => h.session)]),
        );
      } catch (e) {
        for (const s of sessions) await s.release();
        throw e;
      }
    }
    const s = await open(dv.path);
    const models = new Map([[name, { name, inputs: s.inputInfo, outputs: s.outputInfo }]]);
    return new Deployment(
      name,
      dv.version,
      dv.path,
      fileBytes([dv.path]),
      models,
      [s],
      (jobs) => runSingle(s, jobs),
      opts,
      whyNotBatchable([s]),
    );
  }

  /** Stop taking requests, answer the queued ones, release the sessions. */
  async drain(): Promise<void> {
    await this.batcher.close();
    for (const s of this.sessions) await s.release();
  }

  /** Queue a checked request; resolves with its own outputs. */
  infer(model: string, feeds: Tensors, timeoutMs: number): Promise<Tensors> {
    const spec = this.models.get(model);
    if (!spec) throw new InternalError('no-model', `Deployment ${this.name} has no model ${model}`, {});
    let rows = 1;
    let key = '';
    if (!this.unbatchable) {
      rows = feeds[spec.inputs[0]!.name]!.dims[0]!;
      for (const i of spec.inputs) {
        const d = feeds[i.name]!.dims;
        if (d[0] !== rows)
          throw new RequestError(
            'batch-dim',
            `Inputs of model "${model}" must have the same batch size (dim 0): "${spec.inputs[0]!.name}" has ${rows}, "${i.name}" has ${d[0]}`,
            { value: i.name },
          );
        key += `${d.slice(1).join('x')};`;
      }
    }
    return this.batcher.submit({ model, feeds, rows }, rows, key, timeoutMs);
  }
}

function fileBytes(files: string[]): number {
  let n = 0;
  for (const f of files)
    for (const p of [f, dataFileOf(f)]) if (p !== undefined && existsSync(p)) n += statSync(p).size;
  return n;
}

function readManifest(path: string): SplitManifest {
  let m: SplitManifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as SplitManifest;
  } catch (e) {
    throw new InputError('split-manifest', `Cannot read split manifest ${path}: ${(e as Error).message}`, {
      file: path,
    });
  }
  if (m?.format !== SPLIT_FORMAT || m.version !== 1 || !m.backbone?.file || typeof m.heads !== 'object')
    throw new InputError(
      'split-manifest',
      `${path} is not a split manifest written by \`edgefit split\` (format "${SPLIT_FORMAT}", version 1)`,
      { file: path },
    );
  return m;
}

/** Batching needs dim 0 of every input and output to be a free (symbolic) dim. */
function whyNotBatchable(sessions: Session[]): string | undefined {
  for (const s of sessions)
    for (const v of [...s.inputInfo, ...s.outputInfo]) {
      const d0 = v.shape[0];
      if (d0 === undefined || (typeof d0 === 'number' && d0 >= 0))
        return `${v.name} of ${s.label} has a fixed dim 0 (${v.shape.length ? d0 : 'scalar'})`;
    }
  return undefined;
}

function rowSize(t: HostTensor): number {
  let n = 1;
  for (let i = 1; i < t.dims.length; i++) n *= t.dims[i]!;
  return n;
}

/** Concatenate the named tensors of several requests along dim 0. */
export function concatRows(parts: Tensors[], names: readonly string[]): Tensors {
  const out: Tensors = {};
  for (const name of names) {
    const ts = parts.map((p) => p[name]!);
    const first = ts[0]!;
    const rs = rowSize(first);
    const rows = ts.reduce((n, t) => n + t.dims[0]!, 0);
    const Ctor = first.data.constructor as new (n: number) => TypedArray;
    const data = new Ctor(rows * rs);
    let off = 0;
    for (const t of ts) {
      (data as Float32Array).set(t.data as Float32Array, off);
      off += t.data.length;
    }
    out[name] = { dtype: first.dtype, dims: [rows, ...first.dims.slice(1)], data };
  }
  return out;
}

/** Rows [a, b) of a tensor (a view, no copy). */
export function sliceRows(t: HostTensor, a: number, b: number): HostTensor {
  const rs = rowSize(t);
  return {
    dtype: t.dtype,
    dims: [b - a, ...t.dims.slice(1)],
    data: t.data.subarray(a * rs, b * rs) as TypedArray,
  };
}

/** Split every output along dim 0 into consecutive pieces of `rows` rows. */
export function splitRows(out: Tensors, rows: readonly number[]): Tensors[] {
  const total = rows.reduce((a, b) => a + b, 0);
  const res: Tensors[] = rows.map(() => ({}));
  for (const [name, t] of Object.entries(out)) {
    if (t.dims[0] !== total)
      throw new InternalError(
        'batch-split',
        `Output "${name}" has ${t.dims[0]} rows for a batch of ${total}: the model is not batchable`,
        { value: name },
      );
    let a = 0;
    rows.forEach((r, i) => {
      res[i]![name] = sliceRows(t, a, a + r);
      a += r;
    });
  }
  return res;
}

async function runSingle(s: Session, jobs: Job[]): Promise<Tensors[]> {
  if (jobs.length === 1) return [await s.run(jobs[0]!.feeds)];
  const out = await s.run(
    concatRows(
      jobs.map((j) => j.feeds),
      s.inputNames,
    ),
  );
  return splitRows(
    out,
    jobs.map((j) => j.rows),
  );
}

/** The backbone once over the whole batch, then each head over its requests' rows. */
interface Head {
  session: Session;
  inputs: Record<string, string>;
}

async function runSplit(backbone: Session, heads: Map<string, Head>, jobs: Job[]): Promise<Tensors[]> {
  const order = jobs
    .map((_, i) => i)
    .sort((a, b) => (jobs[a]!.model < jobs[b]!.model ? -1 : jobs[a]!.model > jobs[b]!.model ? 1 : a - b));
  const sorted = order.map((i) => jobs[i]!);
  const feeds =
    sorted.length === 1
      ? sorted[0]!.feeds
      : concatRows(
          sorted.map((j) => j.feeds),
          backbone.inputNames,
        );
  const mid = { ...feeds, ...(await backbone.run(feeds)) };
  const res: Tensors[] = new Array(jobs.length);
  let a = 0;
  while (a < sorted.length) {
    let b = a;
    let rowsA = 0;
    for (let k = 0; k < a; k++) rowsA += sorted[k]!.rows;
    let rowsB = rowsA;
    while (b < sorted.length && sorted[b]!.model === sorted[a]!.model) rowsB += sorted[b++]!.rows;
    const head = heads.get(sorted[a]!.model)!;
    const hf: Tensors = {};
    // one request (batching may be off, with rows counted as 1): its tensors as they are
    for (const n of head.session.inputNames) {
      const t = mid[head.inputs[n]!]!;
      hf[n] = sorted.length === 1 ? t : sliceRows(t, rowsA, rowsB);
    }
    const out = await head.session.run(hf);
    const parts =
      b - a === 1
        ? [out]
        : splitRows(
            out,
            sorted.slice(a, b).map((j) => j.rows),
          );
    parts.forEach((p, k) => (res[order[a + k]!] = p));
    a = b;
  }
  return res;
}
