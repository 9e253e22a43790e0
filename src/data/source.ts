// DataSource: what every command that reads data (eval, train, quantize calibration, prune, distill) iterates.
// A source knows how many items it has, which model inputs it feeds (name, dtype, per-item shape), whether it has
// labels, and yields batches lazily: `batches()` is an AsyncIterable of feeds for every model input plus optional
// int64 labels, loading the next batches ahead while the consumer runs the model. `read(indices)` gives random
// access by item index (training shuffles through `batches({shuffle, seed, epoch})`, which uses it).
//
// Items a source cannot decode (a corrupt image) are skipped, listed in `skipped` and left out of the batches;
// batches are refilled from the following items, so every batch but the last has exactly batchSize rows.
import { DataError, InputError } from '../errors.js';
import type { DType } from '../ir/dtype.js';
import type { Dim, Model } from '../ir/graph.js';
import type { TypedArray } from '../ir/tensor.js';
import type { HostTensor } from '../runtime/index.js';
import { epochOrder, permutation } from './batch.js';
import type { PreprocessSpec } from './preprocess.js';
import type { DroppedRow } from './types.js';

/** A model input or output as declared in the graph. */
export interface TensorSpec {
  name: string;
  dtype: DType;
  /** null when the rank is unknown; dims are numbers, symbolic names, or null. */
  shape: Dim[] | null;
}

/** What a data source needs to know of a model. */
export interface ModelIO {
  /** Graph inputs that are not initializers, in order. */
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** One model input a source feeds. */
export interface InputSpec {
  name: string;
  dtype: DType;
  /** Shape of one item (the batch of k items has dims [k, ...shape]). */
  shape: number[];
}

/** An item the source could not read (corrupt or unreadable image). */
export interface SkippedItem {
  file: string;
  reason: string;
}

export type DataFormat = 'builtin' | 'memory' | 'image-folder' | 'npy' | 'npz' | 'csv' | 'manifest';

export interface DataBatch {
  /** Rows in this batch. */
  n: number;
  /** One tensor per model input, dims [n, ...InputSpec.shape]. Treat as read-only (may be views of the source). */
  feeds: Record<string, HostTensor>;
  /** n int64 labels when the source is labeled. */
  labels?: BigInt64Array;
  /** The item index of each row. */
  indices: Uint32Array;
}

export interface SourceBatchOptions {
  batchSize: number;
  /** Shuffle the items (order = epochOrder(n, seed, epoch), the same as the in-memory batches()). Default false. */
  shuffle?: boolean;
  seed?: number;
  epoch?: number;
  /** Drop a last batch smaller than batchSize. Default false. */
  dropLast?: boolean;
  /** Batches loaded ahead of the one being consumed (default: the source's choice, 2 for images). */
  prefetch?: number;
}

export interface DataSource {
  /** What the user named: a built-in dataset name or a path. */
  readonly name: string;
  readonly format: DataFormat;
  /** Items listed (images skipped while reading are still counted here; see `skipped`). */
  readonly n: number;
  /** The model inputs this source feeds. */
  readonly inputs: readonly InputSpec[];
  readonly labeled: boolean;
  /** Number of classes (labeled sources): the model's output classes when known, else from the data. */
  readonly numClasses?: number;
  readonly classNames?: readonly string[];
  /** The image preprocessing used (image folders only): JSON-serialisable, to print and store with artifacts. */
  readonly preprocess?: PreprocessSpec;
  /** Rows a built-in dataset's loader dropped (Fashion-MNIST's empty rows). */
  readonly dropped: readonly DroppedRow[];
  /** Items skipped so far (grows while batches are read; each item listed once). */
  readonly skipped: readonly SkippedItem[];
  /** The items `indices` (any order, repeats allowed); items that cannot be read are skipped (n may be smaller). */
  read(indices: ArrayLike<number>): Promise<DataBatch>;
  /** Lazy batches, loaded ahead of the consumer. */
  batches(opts: SourceBatchOptions): AsyncIterable<DataBatch>;
  /** Release files and decoder threads. Safe to call more than once. */
  close(): Promise<void>;
}

export function isDataSource(x: unknown): x is DataSource {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as DataSource).batches === 'function' &&
    typeof (x as DataSource).read === 'function'
  );
}

/** The inputs (non-initializer graph inputs) and outputs of a model. */
export function modelIO(model: Model | ModelIO): ModelIO {
  if (!('graph' in model)) return model;
  const spec = (v: {
    name: string;
    dtype: DType | undefined;
    shape: Dim[] | null | undefined;
  }): TensorSpec => ({
    name: v.name,
    dtype: v.dtype ?? 'float32',
    shape: v.shape ?? null,
  });
  return {
    inputs: model.graph.inputs.filter((v) => !v.const).map(spec),
    outputs: model.graph.outputs.map(spec),
  };
}

/** Output classes of a classifier: the static last dim of its first output (rank 2), else undefined. */
export function modelClasses(io: ModelIO): number | undefined {
  const s = io.outputs[0]?.shape;
  if (!s || s.length !== 2) return undefined;
  const c = s[1];
  return typeof c === 'number' ? c : undefined;
}

export function shapeText(s: readonly (Dim | undefined)[] | null): string {
  return s ? `[${s.map((d) => (d === null || d === undefined ? '?' : d)).join(',')}]` : '[?]';
}

function squeeze(s: readonly number[]): number[] {
  return s.filter((d) => d !== 1);
}

/**
 * The per-item shape to feed a model input of declared shape `declared` (batch dim first) from items of shape
 * `item`; undefined when they do not fit. Static dims must agree; symbolic dims take the item's. A different
 * shape with the same element count is accepted when the difference is only size-1 dims ([28,28] for
 * [1,28,28]), or when either side is flat ([784] ↔ [1,28,28], read in C order).
 */
export function fitItemShape(declared: Dim[] | null, item: readonly number[]): number[] | undefined {
  if (!declared) return [...item];
  const rest = declared.slice(1);
  if (rest.length === item.length && rest.every((d, i) => typeof d !== 'number' || d === item[i]))
    return rest.map((d, i) => (typeof d === 'number' ? d : item[i]!));
  if (!rest.every((d): d is number => typeof d === 'number')) return undefined;
  const a = rest.reduce((x, y) => x * y, 1);
  const b = item.reduce((x, y) => x * y, 1);
  if (a !== b) return undefined;
  if (rest.length === 1 || item.length === 1) return rest; // flat rows ↔ a shaped input: C-order reshape
  const sa = squeeze(rest);
  const sb = squeeze(item);
  return sa.length === sb.length && sa.every((d, i) => d === sb[i]) ? rest : undefined;
}

/** Rows loaded by a source: one typed array per input (kept rows only, contiguous), labels, item indices. */
export interface LoadedRows {
  n: number;
  arrays: TypedArray[];
  labels?: BigInt64Array;
  indices: Uint32Array;
}

type TypedArrayCtor = new (n: number) => TypedArray;

function alloc(like: TypedArray, n: number): TypedArray {
  return new (like.constructor as TypedArrayCtor)(n);
}

/**
 * The common machinery of every source: argument checks, batches with prefetch and refill, read(). A subclass
 * implements `load(indices)` (and `close()` if it holds resources).
 */
export abstract class BaseSource implements DataSource {
  abstract readonly name: string;
  abstract readonly format: DataFormat;
  abstract readonly n: number;
  abstract readonly inputs: readonly InputSpec[];
  abstract readonly labeled: boolean;
  numClasses?: number;
  classNames?: readonly string[];
  preprocess?: PreprocessSpec;
  dropped: DroppedRow[] = [];
  /** In item order, whatever order the decoding workers finished in. */
  readonly skipped: SkippedItem[] = [];
  private readonly skippedIdx: number[] = [];
  /** Default batches loaded ahead. */
  protected prefetch = 1;

  /** Load the items `indices` (each 0 <= i < n); skipped items are left out (and reported with skip()). */
  protected abstract load(indices: Uint32Array): Promise<LoadedRows>;

  protected skip(index: number, file: string, reason: string): void {
    let at = this.skippedIdx.length;
    while (at > 0 && this.skippedIdx[at - 1]! > index) at--;
    if (this.skippedIdx[at - 1] === index) return;
    this.skippedIdx.splice(at, 0, index);
    this.skipped.splice(at, 0, { file, reason });
  }

  protected rowSize(i: number): number {
    return this.inputs[i]!.shape.reduce((a, b) => a * b, 1);
  }

  async close(): Promise<void> {}

  /** load() for a view over this source (SampledSource); not for callers outside src/data. */
  loadRows(indices: Uint32Array): Promise<LoadedRows> {
    return this.load(indices);
  }

  /** Batches loaded ahead by default (a view over this source keeps it). */
  get defaultPrefetch(): number {
    return this.prefetch;
  }

  async read(indices: ArrayLike<number>): Promise<DataBatch> {
    const idx = Uint32Array.from(indices as ArrayLike<number>);
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i]!;
      if (!Number.isInteger(r) || r < 0 || r >= this.n)
        throw new InputError(
          'bad-argument',
          `item index ${r} is out of range 0..${this.n - 1} of ${this.name}`,
          { value: String(r) },
        );
    }
    return this.toBatch(await this.load(idx));
  }

  protected toBatch(rows: LoadedRows): DataBatch {
    const feeds: Record<string, HostTensor> = {};
    this.inputs.forEach((inp, i) => {
      feeds[inp.name] = { dtype: inp.dtype, dims: [rows.n, ...inp.shape], data: rows.arrays[i]! };
    });
    const b: DataBatch = { n: rows.n, feeds, indices: rows.indices };
    if (rows.labels) b.labels = rows.labels;
    return b;
  }

  private slice(r: LoadedRows, from: number, to: number): LoadedRows {
    const out: LoadedRows = {
      n: to - from,
      arrays: r.arrays.map((a, i) => a.subarray(from * this.rowSize(i), to * this.rowSize(i)) as TypedArray),
      indices: r.indices.subarray(from, to),
    };
    if (r.labels) out.labels = r.labels.subarray(from, to);
    return out;
  }

  private concat(a: LoadedRows, b: LoadedRows): LoadedRows {
    const n = a.n + b.n;
    const arrays = a.arrays.map((x, i) => {
      const y = alloc(x, n * this.rowSize(i));
      (y as Float32Array).set(x as Float32Array);
      (y as Float32Array).set(b.arrays[i] as Float32Array, x.length);
      return y;
    });
    const indices = new Uint32Array(n);
    indices.set(a.indices);
    indices.set(b.indices, a.n);
    const out: LoadedRows = { n, arrays, indices };
    if (a.labels && b.labels) {
      out.labels = new BigInt64Array(n);
      out.labels.set(a.labels);
      out.labels.set(b.labels, a.n);
    }
    return out;
  }

  async *batches(opts: SourceBatchOptions): AsyncGenerator<DataBatch, void, undefined> {
    const { batchSize, shuffle = false, seed = 0, epoch = 0, dropLast = false } = opts;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1)
      throw new InputError('bad-argument', `batchSize must be a positive integer, got ${batchSize}`, {
        value: String(batchSize),
      });
    const prefetch = opts.prefetch ?? this.prefetch;
    if (!Number.isSafeInteger(prefetch) || prefetch < 0)
      throw new InputError('bad-argument', `prefetch must be a non-negative integer, got ${prefetch}`, {
        value: String(prefetch),
      });
    const n = this.n;
    const order = shuffle ? epochOrder(n, seed, epoch) : undefined;
    const chunks = Math.ceil(n / batchSize);
    const pending: Promise<LoadedRows>[] = [];
    let next = 0;
    const top = (limit: number) => {
      while (pending.length < limit && next < chunks) {
        const start = next * batchSize;
        const end = Math.min(n, start + batchSize);
        next++;
        let idx: Uint32Array;
        if (order) idx = order.slice(start, end);
        else {
          idx = new Uint32Array(end - start);
          for (let i = 0; i < idx.length; i++) idx[i] = start + i;
        }
        const p = this.load(idx);
        p.catch(() => {}); // rejections surface when awaited below; keep an abandoned one from being unhandled
        pending.push(p);
      }
    };
    let carry: LoadedRows | undefined;
    let loaded = 0;
    while (pending.length || next < chunks) {
      top(1);
      const got = await pending.shift()!;
      top(prefetch); // before yielding: the next `prefetch` loads run while the consumer works on this batch
      loaded += got.n;
      let cur = carry && carry.n ? this.concat(carry, got) : got;
      carry = undefined;
      let from = 0;
      while (cur.n - from >= batchSize) {
        const b = from === 0 && cur.n === batchSize ? cur : this.slice(cur, from, from + batchSize);
        from += batchSize;
        yield this.toBatch(b);
      }
      if (from < cur.n) carry = from === 0 ? cur : this.slice(cur, from, cur.n);
    }
    if (carry && carry.n && !dropLast) yield this.toBatch(carry);
    if (n > 0 && loaded === 0 && this.skipped.length > 0)
      throw new DataError(
        'no-readable-items',
        `${this.name}: none of its ${n} items could be read (first: ${this.skipped[0]!.file}: ${this.skipped[0]!.reason})`,
        {
          file: this.name,
        },
      );
  }
}

/** Arrays held in memory (a built-in dataset, a CSV file, an in-memory Dataset): zero-copy views for in-order batches. */
export class MemorySource extends BaseSource {
  readonly name: string;
  readonly format: DataFormat;
  readonly n: number;
  readonly inputs: readonly InputSpec[];
  readonly labeled: boolean;
  private readonly arrays: TypedArray[];
  private readonly labels: BigInt64Array | undefined;

  constructor(o: {
    name: string;
    format: DataFormat;
    n: number;
    inputs: InputSpec[];
    arrays: TypedArray[];
    labels?: BigInt64Array;
    numClasses?: number;
    classNames?: readonly string[];
    dropped?: DroppedRow[];
  }) {
    super();
    this.name = o.name;
    this.format = o.format;
    this.n = o.n;
    this.inputs = o.inputs;
    this.arrays = o.arrays;
    this.labels = o.labels;
    this.labeled = !!o.labels;
    if (o.numClasses !== undefined) this.numClasses = o.numClasses;
    if (o.classNames) this.classNames = o.classNames;
    if (o.dropped) this.dropped = o.dropped;
    this.prefetch = 0;
    o.inputs.forEach((inp, i) => {
      if (o.arrays[i]!.length !== o.n * this.rowSize(i))
        throw new InputError(
          'bad-argument',
          `${o.name}: input "${inp.name}" has ${o.arrays[i]!.length} values, not ${o.n} rows of ${shapeText(inp.shape)}`,
          {
            value: inp.name,
          },
        );
    });
    if (o.labels && o.labels.length !== o.n)
      throw new InputError('bad-argument', `${o.name}: ${o.labels.length} labels for ${o.n} rows`, {
        value: 'labels',
      });
  }

  protected async load(idx: Uint32Array): Promise<LoadedRows> {
    const k = idx.length;
    let contiguous = true;
    for (let i = 1; i < k; i++) if (idx[i] !== idx[0]! + i) contiguous = false;
    if (contiguous && k > 0) {
      const s = idx[0]!;
      const out: LoadedRows = {
        n: k,
        arrays: this.arrays.map(
          (a, i) => a.subarray(s * this.rowSize(i), (s + k) * this.rowSize(i)) as TypedArray,
        ),
        indices: idx,
      };
      if (this.labels) out.labels = this.labels.subarray(s, s + k);
      return out;
    }
    const arrays = this.arrays.map((a, i) => {
      const rs = this.rowSize(i);
      const out = alloc(a, k * rs);
      for (let j = 0; j < k; j++)
        (out as Float32Array).set((a as Float32Array).subarray(idx[j]! * rs, (idx[j]! + 1) * rs), j * rs);
      return out;
    });
    const out: LoadedRows = { n: k, arrays, indices: idx };
    if (this.labels) {
      const l = new BigInt64Array(k);
      for (let j = 0; j < k; j++) l[j] = this.labels[idx[j]!]!;
      out.labels = l;
    }
    return out;
  }
}

/** Check labels against the class count; the error names `file` (and the row). */
export function checkLabels(
  labels: BigInt64Array,
  numClasses: number,
  file: string,
  rowName: (i: number) => string = (i) => `row ${i}`,
): void {
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i]!;
    if (v < 0n || v >= BigInt(numClasses))
      throw new DataError(
        'label-range',
        `${file}: label ${v} at ${rowName(i)} is outside the model's ${numClasses} output classes (0..${numClasses - 1})`,
        {
          file,
          index: i,
        },
      );
  }
}

/** Largest label + 1 (0 for no labels). */
export function labelCount(labels: BigInt64Array): number {
  let m = -1n;
  for (const v of labels) if (v > m) m = v;
  return Number(m + 1n);
}

/**
 * Up to `count` items of `src` as a list of feed batches (e.g. a calibration set for static quantization:
 * `calibrate(model, names, await takeFeeds(src, { count: 512, batchSize: 64 }))`). Items are drawn in a seeded
 * shuffled order by default, so a class-ordered image folder gives a mix of classes.
 */
export async function takeFeeds(
  src: DataSource,
  o: { count: number; batchSize: number; shuffle?: boolean; seed?: number },
): Promise<Record<string, HostTensor>[]> {
  if (!Number.isSafeInteger(o.count) || o.count < 1)
    throw new InputError('bad-argument', `count must be a positive integer, got ${o.count}`, {
      value: String(o.count),
    });
  const out: Record<string, HostTensor>[] = [];
  let got = 0;
  for await (const b of src.batches({
    batchSize: o.batchSize,
    shuffle: o.shuffle ?? true,
    seed: o.seed ?? 0,
  })) {
    const k = Math.min(b.n, o.count - got);
    const feeds: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(b.feeds)) {
      const per = t.data.length / b.n;
      feeds[name] = {
        dtype: t.dtype,
        dims: [k, ...t.dims.slice(1)],
        data: t.data.slice(0, k * per) as TypedArray,
      };
    }
    out.push(feeds);
    got += k;
    if (got >= o.count) break;
  }
  return out;
}

/**
 * `k` items of `inner` drawn at random (seeded), in item order: what `--limit` gives, so a limit over a folder or
 * dataset sorted by class still spans the classes. Item i of the view is item `items[i]` of `inner`; skipped items
 * are the inner source's.
 */
export class SampledSource extends BaseSource {
  readonly name: string;
  readonly format: DataFormat;
  readonly n: number;
  readonly inputs: readonly InputSpec[];
  readonly labeled: boolean;
  /** The inner source's item indices, ascending. */
  readonly items: Uint32Array;

  constructor(
    private readonly inner: BaseSource,
    k: number,
    seed = 0,
  ) {
    super();
    this.items = permutation(inner.n, seed).subarray(0, Math.min(k, inner.n)).sort();
    this.name = inner.name;
    this.format = inner.format;
    this.n = this.items.length;
    this.inputs = inner.inputs;
    this.labeled = inner.labeled;
    if (inner.numClasses !== undefined) this.numClasses = inner.numClasses;
    if (inner.classNames) this.classNames = inner.classNames;
    if (inner.preprocess) this.preprocess = inner.preprocess;
    this.dropped = inner.dropped;
    this.prefetch = inner.defaultPrefetch;
  }

  protected async load(indices: Uint32Array): Promise<LoadedRows> {
    const rows = await this.inner.loadRows(indices.map((i) => this.items[i]!));
    this.skipped.splice(0, this.skipped.length, ...this.inner.skipped);
    // back to view positions: binary search in the ascending item list
    const back = rows.indices.map((j) => {
      let lo = 0;
      let hi = this.items.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.items[mid]! < j) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    });
    return { ...rows, indices: back };
  }

  override close(): Promise<void> {
    return this.inner.close();
  }
}
