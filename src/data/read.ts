// Reading a data file whole, with a DataError naming the file when it is missing or unreadable.
import { readFileSync } from 'node:fs';
import { DataError } from '../errors.js';

/** The bytes of `path`; a missing or unreadable file is a DataError whose subject names it. */
export function readDataFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new DataError(
      'data-unreadable',
      `${path}: cannot read: ${(e as Error).message}`,
      { file: path },
      {
        cause: e,
      },
    );
  }
}
