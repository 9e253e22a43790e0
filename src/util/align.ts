// External-data alignment: what ORT can map (kept light: the CLI checks --align before loading any engine).
import { InputError } from '../errors.js';

/** Refuse an external-data alignment ORT cannot map tensors at: a power of two ≥ 64 is required. */
export function checkAlignment(align: number): void {
  if (!Number.isInteger(align) || align < 64 || (align & (align - 1)) !== 0)
    throw new InputError(
      'align',
      `--align must be a power of two from 64 (ORT maps external tensors at such offsets; the default 4096 is the page size): current value is "${align}"`,
      { value: 'align' },
    );
}
