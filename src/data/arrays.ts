// Arrays as data: a .npy of inputs (with optional --labels y.npy), a .npz (arrays `x` and optional `y`, or arrays
// named after the model's inputs), or a manifest mapping each model input to a .npy/.npz array. Shapes and dtypes
// are checked against the model when the source opens; rows are read lazily per batch.
import { DataError, InputError } from '../errors.js';
import type { TypedArray } from '../ir/tensor.js';
import type { ArrayReader } from './npz.js';
import {
  BaseSource,
  fitItemShape,
  shapeText,
  type DataFormat,
  type InputSpec,
  type LoadedRows,
  type TensorSpec,
} from './source.js';

export interface BoundArray {
  spec: InputSpec;
  reader: ArrayReader;
}

/**
 * Check `reader` against model input `input` (undefined: no model) and give the input it feeds. The array's
 * first axis is the item axis; its dtype must be the input's; its item shape must fit the input's shape.
 */
export function bindArray(reader: ArrayReader, input: TensorSpec | undefined, name: string): BoundArray {
  const file = reader.file;
  if (reader.shape.length < 1)
    throw new InputError('data-shape', `${file}: a 0-d array holds no items (expected [n, ...])`, { file });
  const item = reader.shape.slice(1);
  if (!input) return { spec: { name, dtype: reader.dtype, shape: [...item] }, reader };
  if (input.dtype !== reader.dtype)
    throw new InputError(
      'data-dtype',
      `${file}: array is ${reader.dtype}, but model input "${input.name}" takes ${input.dtype}`,
      { file, value: input.name },
    );
  const shape = fitItemShape(input.shape, item);
  if (!shape)
    throw new InputError(
      'data-shape',
      `${file}: array of shape [${reader.shape.join(',')}] does not fit model input "${input.name}" of shape ${shapeText(input.shape)} (items of [${item.join(',')}])`,
      { file, value: input.name },
    );
  return { spec: { name: input.name, dtype: input.dtype, shape }, reader };
}

const INT_DTYPES = new Set(['int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64']);

/** Read a labels array ([n] or [n, 1], integer dtype) as int64. */
export function readLabels(reader: ArrayReader, n: number): BigInt64Array {
  const file = reader.file;
  if (!INT_DTYPES.has(reader.dtype))
    throw new InputError('labels-dtype', `${file}: labels must be integers: the array is ${reader.dtype}`, {
      file,
    });
  const s = reader.shape;
  if (!(s.length === 1 || (s.length === 2 && s[1] === 1)))
    throw new InputError(
      'labels-shape',
      `${file}: labels must have shape [n] or [n, 1]: the array has [${s.join(',')}]`,
      { file },
    );
  if (s[0] !== n) throw new InputError('labels-count', `${file}: ${s[0]} labels for ${n} items`, { file });
  const d = reader.all();
  if (d instanceof BigInt64Array) return d;
  const out = new BigInt64Array(n);
  for (let i = 0; i < n; i++) out[i] = BigInt(d[i] as number | bigint);
  return out;
}

export interface ArraySourceOptions {
  name: string;
  format: DataFormat;
  arrays: BoundArray[];
  labels?: BigInt64Array;
  numClasses?: number;
  classNames?: readonly string[];
  /** Closed with the source (archives holding the arrays). */
  resources?: { close(): void }[];
}

export class ArraySource extends BaseSource {
  readonly name: string;
  readonly format: DataFormat;
  readonly n: number;
  readonly inputs: readonly InputSpec[];
  readonly labeled: boolean;
  private readonly readers: ArrayReader[];
  private readonly labels: BigInt64Array | undefined;
  private readonly resources: { close(): void }[];

  constructor(o: ArraySourceOptions) {
    super();
    this.name = o.name;
    this.format = o.format;
    if (!o.arrays.length) throw new InputError('data-empty', `${o.name}: no input arrays`, { file: o.name });
    const n0 = o.arrays[0]!.reader.shape[0]!;
    for (const a of o.arrays)
      if (a.reader.shape[0] !== n0)
        throw new InputError(
          'data-count',
          `${a.reader.file}: has ${a.reader.shape[0]} items, but ${o.arrays[0]!.reader.file} has ${n0}`,
          { file: a.reader.file },
        );
    if (n0 === 0)
      throw new InputError('data-empty', `${o.arrays[0]!.reader.file}: the array has no items`, {
        file: o.arrays[0]!.reader.file,
      });
    this.n = n0;
    this.inputs = o.arrays.map((a) => a.spec);
    this.readers = o.arrays.map((a) => a.reader);
    this.labels = o.labels?.subarray(0, this.n);
    this.labeled = !!o.labels;
    if (o.numClasses !== undefined) this.numClasses = o.numClasses;
    if (o.classNames) this.classNames = o.classNames;
    this.resources = o.resources ?? [];
    this.prefetch = 1;
  }

  protected async load(idx: Uint32Array): Promise<LoadedRows> {
    const k = idx.length;
    let contiguous = k > 0;
    for (let i = 1; i < k; i++) if (idx[i] !== idx[0]! + i) contiguous = false;
    let arrays: TypedArray[];
    try {
      arrays = this.readers.map((r) => (contiguous ? r.rows(idx[0]!, k) : r.gather(idx)) as TypedArray);
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw new DataError(
        'data-unreadable',
        `${this.name}: cannot read: ${(e as Error).message}`,
        { file: this.name },
        { cause: e },
      );
    }
    const out: LoadedRows = { n: k, arrays, indices: idx };
    if (this.labels) {
      const l = new BigInt64Array(k);
      for (let j = 0; j < k; j++) l[j] = this.labels[idx[j]!]!;
      out.labels = l;
    }
    return out;
  }

  override async close(): Promise<void> {
    for (const r of this.readers) r.close();
    for (const r of this.resources) r.close();
    this.resources.length = 0;
  }
}
