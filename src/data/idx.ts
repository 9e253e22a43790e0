// IDX reader (the MNIST file format): a big-endian header, then raw uint8 values.
//   images: magic 2051 (0x00000803), n, rows, cols, then n*rows*cols bytes
//   labels: magic 2049 (0x00000801), n, then n bytes
// Matches `_idx` in shared/reference/datasets.py, but stricter: a body that is shorter or longer than the header
// says is a DataError naming the file (the reference would fail in reshape, or silently keep extra label bytes).
import { DataError } from '../errors.js';
import { readDataFile } from './read.js';

export const IDX_IMAGES_MAGIC = 2051;
export const IDX_LABELS_MAGIC = 2049;

export interface IdxImages {
  kind: 'images';
  n: number;
  rows: number;
  cols: number;
  /** n*rows*cols pixels, row-major; a view into the file's bytes. */
  data: Uint8Array;
}

export interface IdxLabels {
  kind: 'labels';
  n: number;
  /** n labels; a view into the file's bytes. */
  data: Uint8Array;
}

export type IdxFile = IdxImages | IdxLabels;

/** Parse IDX bytes; `file` names the source in errors. */
export function parseIdx(bytes: Uint8Array, file: string): IdxFile {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8) {
    throw new DataError('idx-truncated', `${file}: truncated IDX header (${bytes.byteLength} bytes)`, {
      file,
    });
  }
  const magic = view.getUint32(0, false);
  const n = view.getUint32(4, false);
  let header: number;
  let count: number;
  let rows = 0;
  let cols = 0;
  if (magic === IDX_IMAGES_MAGIC) {
    if (bytes.byteLength < 16) {
      throw new DataError(
        'idx-truncated',
        `${file}: truncated IDX image header (${bytes.byteLength} bytes)`,
        {
          file,
        },
      );
    }
    rows = view.getUint32(8, false);
    cols = view.getUint32(12, false);
    header = 16;
    count = n * rows * cols;
  } else if (magic === IDX_LABELS_MAGIC) {
    header = 8;
    count = n;
  } else {
    throw new DataError(
      'idx-bad-magic',
      `${file}: not an IDX image or label file (magic ${magic}, expected ${IDX_IMAGES_MAGIC} or ${IDX_LABELS_MAGIC})`,
      { file, value: String(magic) },
    );
  }
  const body = bytes.byteLength - header;
  if (body < count) {
    throw new DataError(
      'idx-truncated',
      `${file}: truncated IDX file: header promises ${count} bytes of data, file has ${body}`,
      { file },
    );
  }
  if (body > count) {
    throw new DataError(
      'idx-trailing-bytes',
      `${file}: IDX file has ${body - count} bytes after the ${count} the header promises`,
      { file },
    );
  }
  const data = bytes.subarray(header, header + count);
  return magic === IDX_IMAGES_MAGIC ? { kind: 'images', n, rows, cols, data } : { kind: 'labels', n, data };
}

/** Read an IDX file (images or labels). */
export function readIdx(path: string): IdxFile {
  return parseIdx(readDataFile(path), path);
}

/** Read an IDX image file; a label file (or anything else) is a DataError. */
export function readIdxImages(path: string): IdxImages {
  const f = readIdx(path);
  if (f.kind !== 'images') {
    throw new DataError(
      'idx-bad-magic',
      `${path}: expected an IDX image file (magic 2051), found a label file`,
      {
        file: path,
      },
    );
  }
  return f;
}

/** Read an IDX label file; an image file (or anything else) is a DataError. */
export function readIdxLabels(path: string): IdxLabels {
  const f = readIdx(path);
  if (f.kind !== 'labels') {
    throw new DataError(
      'idx-bad-magic',
      `${path}: expected an IDX label file (magic 2049), found an image file`,
      {
        file: path,
      },
    );
  }
  return f;
}
