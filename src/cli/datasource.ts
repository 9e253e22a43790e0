// Resolve a `--data` argument to labelled data. Built-in names today; paths (image folders, .npy/.npz, CSV) later.
import { loadDataset, DATASET_NAMES, isDatasetName, type Dataset, type Split } from '../data/index.js';
import { InputError } from '../errors.js';

export function resolveData(spec: string | undefined, split: Split, limit?: number): Dataset {
  if (!spec) throw new InputError('usage', `--data is required: one of ${DATASET_NAMES.join(', ')}`, { value: 'data' });
  if (!isDatasetName(spec))
    throw new InputError('unknown-dataset', `Unknown dataset "${spec}": built-in datasets are ${DATASET_NAMES.join(', ')}`, { value: spec });
  return loadDataset(spec, split, { limit });
}
