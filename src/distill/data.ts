// The rows a distillation run trains on, in memory: a built-in split (a seeded class-balanced subset with `limit`),
// or any data source read whole (a seeded sample with `limit`). Unlabeled sources are welcome: distillation can
// learn from the teacher alone, so rows without labels get placeholder labels that only `unlabeled` runs accept.
// The distill stage reads an unlabeled training source with sourceRows().
import {
  type DataSource,
  type Dataset,
  type OpenDataOptions,
  type Split,
  isDatasetName,
  loadDataset,
  openData,
  subset,
} from '../data/index.js';
import { InputError } from '../errors.js';

export interface DistillDataOptions extends Omit<
  OpenDataOptions,
  'split' | 'limit' | 'limitSeed' | 'needLabels'
> {
  split: Split;
  limit?: number;
  seed?: number;
  /** Accept data without labels (their `y` is all 0 and `labeled` false). */
  allowUnlabeled?: boolean;
}

/** Rows of `spec` in memory, with whether they carry labels. */
export async function loadDistillData(
  spec: string,
  o: DistillDataOptions,
): Promise<{ data: Dataset; labeled: boolean }> {
  if (isDatasetName(spec)) {
    let d = loadDataset(spec, o.split);
    if (o.limit !== undefined && o.limit < d.n) d = subset(d, o.limit, o.seed ?? 0);
    return { data: d, labeled: true };
  }
  const { split, limit, seed, allowUnlabeled, ...open } = o;
  const src = await openData(spec, {
    ...open,
    split,
    ...(limit !== undefined ? { limit, limitSeed: seed ?? 0 } : {}),
  });
  try {
    return await sourceRows(src, { split, ...(allowUnlabeled ? { allowUnlabeled } : {}) });
  } finally {
    await src.close();
  }
}

/**
 * The rows of an open source in memory (the caller closes it), labelled or not: without labels `y` is all 0 and
 * `labeled` false, which only `allowUnlabeled` accepts (the student then learns from the teacher alone).
 */
export async function sourceRows(
  src: DataSource,
  o: { split: Split; allowUnlabeled?: boolean },
): Promise<{ data: Dataset; labeled: boolean }> {
  const spec = src.name;
  if (!src.labeled && !o.allowUnlabeled)
    throw new InputError(
      'needs-labels',
      `${spec} has no labels: distil from unlabeled data with --unlabeled (the student then learns from the teacher alone)`,
      { file: spec },
    );
  if (src.inputs.length !== 1 || src.inputs[0]!.dtype !== 'float32')
    throw new InputError(
      'distill-inputs',
      `Distillation reads one float32 model input; ${spec} feeds ${src.inputs.map((i) => `${i.name} (${i.dtype})`).join(', ')}`,
      { file: spec },
    );
  const input = src.inputs[0]!;
  const row = input.shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(src.n * row);
  const y = new BigInt64Array(src.n);
  let n = 0;
  for await (const b of src.batches({ batchSize: 1024 })) {
    x.set(b.feeds[input.name]!.data as Float32Array, n * row);
    if (b.labels) y.set(b.labels, n);
    n += b.n;
  }
  const data: Dataset = {
    name: spec,
    split: o.split,
    n,
    inputShape: [...input.shape],
    numClasses: src.numClasses ?? 0,
    x: n === src.n ? x : x.slice(0, n * row),
    y: n === src.n ? y : y.slice(0, n),
    dropped: [...src.dropped],
  };
  if (src.classNames) data.classNames = src.classNames;
  return { data, labeled: src.labeled };
}
