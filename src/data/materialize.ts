// Load a whole labelled data source into memory as a Dataset: what training needs, since every epoch shuffles
// rows by random access and revisits them. Only for models with one float32 input.
import { InputError } from '../errors.js';
import type { Dataset } from './dataset.js';
import type { DataSource } from './source.js';
import type { Split } from './types.js';

/** Bytes of rows kept in memory at most (default 4 GiB): beyond that, subset the data first. */
export const MAX_IN_MEMORY_BYTES = 4 * 2 ** 30;

export async function materialize(
  src: DataSource,
  split: Split,
  opts: { maxBytes?: number; batchSize?: number } = {},
): Promise<Dataset> {
  const subject = { file: src.name };
  if (!src.labeled)
    throw new InputError(
      'labels-needed',
      `Training needs labels, and ${src.name} has none (give labels: class folders, --labels, a CSV label column or y in the .npz)`,
      subject,
    );
  if (src.inputs.length !== 1 || src.inputs[0]!.dtype !== 'float32')
    throw new InputError(
      'train-inputs',
      `Training takes data for one float32 model input; ${src.name} has ${src.inputs.map((i) => `${i.name} (${i.dtype})`).join(', ')}`,
      subject,
    );
  if (src.numClasses === undefined)
    throw new InputError('classes', `${src.name} does not say how many classes it has`, subject);
  const input = src.inputs[0]!;
  const row = input.shape.reduce((a, b) => a * b, 1);
  const bytes = src.n * row * 4;
  if (bytes > (opts.maxBytes ?? MAX_IN_MEMORY_BYTES))
    throw new InputError(
      'too-large',
      `${src.name} holds ${src.n} rows of ${row} values (${(bytes / 2 ** 30).toFixed(1)} GiB): too large to train from memory; use --limit`,
      subject,
    );
  const x = new Float32Array(src.n * row);
  const y = new BigInt64Array(src.n);
  let n = 0;
  for await (const b of src.batches({ batchSize: opts.batchSize ?? 1024 })) {
    x.set(b.feeds[input.name]!.data as Float32Array, n * row);
    y.set(b.labels!, n);
    n += b.n;
  }
  const ds: Dataset = {
    name: src.name,
    split,
    n,
    inputShape: [...input.shape],
    numClasses: src.numClasses,
    x: n === src.n ? x : x.slice(0, n * row), // skipped (corrupt) items leave fewer rows
    y: n === src.n ? y : y.slice(0, n),
    dropped: [...src.dropped],
  };
  if (src.classNames) ds.classNames = src.classNames;
  return ds;
}
