// Resolve a `--data` (or `--calib-data`) argument to a DataSource: a built-in dataset name, an image folder,
// .npy/.npz, CSV or a manifest (see src/data/open.ts), with the shared data flags of ./dataflags.ts.
import {
  DATA_FORMATS_HELP,
  DATASET_NAMES,
  isDatasetName,
  loadDataset,
  openData,
  type DataSource,
  type Dataset,
  type ModelIO,
  type OpenDataOptions,
  type Split,
} from '../data/index.js';
import { InputError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import type { Parsed } from './command.js';
import { dataOptions } from './dataflags.js';

export interface ResolveDataOptions {
  /** The flag holding the spec (default "data"). */
  flag?: string;
  model?: Model | ModelIO;
  split?: Split;
  limit?: number;
  /** Seed of the `limit` sample (default 0). */
  limitSeed?: number;
  /** The command, when it needs labels (e.g. "edgefit eval"). */
  needLabels?: string;
  decodeThreads?: number;
}

/** Open the data named by `--<flag>` with the shared data flags. Close the source when done. */
export async function openDataArg(p: Parsed, o: ResolveDataOptions = {}): Promise<DataSource> {
  const flag = o.flag ?? 'data';
  const spec = p.values[flag];
  if (typeof spec !== 'string' || spec === '')
    throw new InputError('usage', `--${flag} is required: ${DATA_FORMATS_HELP}`, { value: flag });
  const opts: OpenDataOptions = { ...dataOptions(p) };
  if (o.model) opts.model = o.model;
  if (o.split) opts.split = o.split;
  if (o.limit !== undefined) opts.limit = o.limit;
  if (o.limitSeed !== undefined) opts.limitSeed = o.limitSeed;
  if (o.needLabels) opts.needLabels = o.needLabels;
  if (o.decodeThreads !== undefined) opts.decodeThreads = o.decodeThreads;
  return openData(spec, opts);
}

/**
 * A built-in dataset in memory (for code that still needs a whole Dataset, e.g. training's validation split).
 * Prefer openDataArg(), which takes every kind of --data.
 */
export function resolveData(spec: string | undefined, split: Split, limit?: number): Dataset {
  if (!spec)
    throw new InputError('usage', `--data is required: one of ${DATASET_NAMES.join(', ')}`, {
      value: 'data',
    });
  if (!isDatasetName(spec))
    throw new InputError(
      'unknown-dataset',
      `Unknown dataset "${spec}": built-in datasets are ${DATASET_NAMES.join(', ')}`,
      { value: spec },
    );
  return loadDataset(spec, split, { limit });
}
