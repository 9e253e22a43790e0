// NaN/Inf in input data: found once, before a run, and reported by file and row — not as a diverged loss that
// blames the learning rate.
import { DataError } from '../errors.js';

/**
 * Throw a DataError naming the first row of `x` (rows of `rowSize` values) holding NaN or ±Infinity: the row as
 * numbered in the file (`indices` maps a subset's rows back, as take/subset set it), the column and the value.
 */
export function checkFinite(
  x: Float32Array,
  rowSize: number,
  data: { name?: string; indices?: Uint32Array },
  role = 'the data',
): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v - v === 0) continue; // finite (NaN - NaN and Inf - Inf are NaN)
    const row = Math.floor(i / rowSize);
    const fileRow = data.indices?.[row] ?? row;
    const name = data.name ?? role;
    throw new DataError(
      'non-finite',
      `${name}: row ${fileRow} (0-based) holds ${v} at value ${i % rowSize} of the row; ${role} must be finite (NaN or infinite inputs make every loss NaN): fix or drop that row`,
      { file: name, index: fileRow, value: String(v) },
    );
  }
}
