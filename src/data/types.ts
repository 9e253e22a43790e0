// Types shared by the dataset loaders.

export type Split = 'train' | 'test';
export const SPLITS: readonly Split[] = ['train', 'test'];

/** One split as raw uint8 pixels and labels, in the reference reader's row order. Shared cache: do not mutate. */
export interface RawSplit {
  n: number;
  rows: number;
  cols: number;
  /** n*rows*cols pixels 0..255, row-major. */
  images: Uint8Array;
  /** n labels 0..numClasses-1. */
  labels: Uint8Array;
}

/** A source row the loader dropped (Fashion-MNIST: rows that are not 784 values long). */
export interface DroppedRow {
  /** Class (file `<class>.json`) the row came from. */
  class: number;
  /** Row index inside that class file's `data` array (0-based, counting every row). */
  index: number;
  /** The row's length (784 expected). */
  length: number;
}
