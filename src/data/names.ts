// Names for --help and flag checks, in a module that imports nothing (the CLI loads it at start-up).
export type DatasetName = 'mnist' | 'fashion-mnist';
export const DATASET_NAMES: readonly DatasetName[] = ['mnist', 'fashion-mnist'];

export const DATA_FORMATS_HELP = `${DATASET_NAMES.join(' | ')} | an image folder | x.npy | d.npz | t.csv | manifest.yaml`;
