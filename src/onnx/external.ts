// External tensor data: resolving a tensor's `location` safely relative to the model's folder, and reading it.
// ORT refuses absolute locations and locations outside the model's folder; we refuse first, with our own error.
import { closeSync, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { InputError, ModelFormatError } from '../errors.js';

export interface ExternalRef {
  location: string;
  offset: number;
  length: number | undefined;
}

/** Parse a TensorProto's external_data key/value list. */
export function parseExternalEntries(
  entries: { key: string; value: string }[],
  tensor: string,
  file: string,
): ExternalRef {
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  for (const { key, value } of entries) {
    if (key === 'location') location = value;
    else if (key === 'offset' || key === 'length') {
      if (!/^\d+$/.test(value))
        throw new ModelFormatError(
          'external-data',
          `Tensor "${tensor}" in ${file} has external_data ${key} "${value}": not a non-negative integer`,
          {
            file,
            value: tensor,
          },
        );
      if (key === 'offset') offset = Number(value);
      else length = Number(value);
    }
  }
  if (location === undefined || location === '')
    throw new ModelFormatError(
      'external-data',
      `Tensor "${tensor}" in ${file} is stored externally but names no location`,
      { file, value: tensor },
    );
  return { location, offset, length };
}

/**
 * The absolute path of an external data location, refusing any location that is absolute or that escapes the
 * model's folder (by `..` or by a symbolic link).
 */
export function resolveExternalPath(baseDir: string, location: string, tensor: string, file: string): string {
  const subject = { file, value: tensor, path: location };
  if (
    location.includes('\0') ||
    isAbsolute(location) ||
    /^[a-zA-Z]:[\\/]/.test(location) ||
    location.startsWith('\\')
  )
    throw new InputError(
      'external-path',
      `Tensor "${tensor}" in ${file} has an absolute external data location "${location}": only paths inside the model's folder are allowed`,
      subject,
    );
  const norm = normalize(location.replace(/\\/g, '/'));
  if (norm === '..' || norm.startsWith(`..${sep}`) || norm.startsWith('../'))
    throw new InputError(
      'external-path',
      `Tensor "${tensor}" in ${file} has external data location "${location}" outside the model's folder`,
      subject,
    );
  const base = resolve(baseDir);
  const full = join(base, norm);
  let real: string;
  try {
    real = realpathSync(full);
  } catch {
    throw new InputError(
      'external-missing',
      `External data file "${location}" for tensor "${tensor}" of ${file} does not exist`,
      subject,
    );
  }
  const realBase = realpathSync(base);
  const rel = relative(realBase, real);
  if (rel.startsWith('..') || isAbsolute(rel))
    throw new InputError(
      'external-path',
      `Tensor "${tensor}" in ${file} has external data location "${location}" that leads outside the model's folder`,
      subject,
    );
  return real;
}

/** Reads byte ranges of external data files, opening each file once. */
export class ExternalReader {
  private fds = new Map<string, { fd: number; size: number }>();

  read(
    path: string,
    offset: number,
    length: number | undefined,
    tensor: string,
    file: string,
    expected: number,
  ): Uint8Array {
    let f = this.fds.get(path);
    if (!f) {
      const fd = openSync(path, 'r');
      f = { fd, size: fstatSync(fd).size };
      this.fds.set(path, f);
    }
    const len = length ?? expected;
    if (len !== expected)
      throw new ModelFormatError(
        'external-data',
        `Tensor "${tensor}" in ${file} declares external length ${len} but its dtype and dims need ${expected} bytes`,
        {
          file,
          value: tensor,
        },
      );
    if (offset + len > f.size)
      throw new ModelFormatError(
        'external-data',
        `Tensor "${tensor}" in ${file} reads bytes ${offset}..${offset + len} of external file "${path.split(sep).pop()}", which has only ${f.size}`,
        {
          file,
          value: tensor,
        },
      );
    const out = new Uint8Array(len);
    let got = 0;
    while (got < len) {
      const n = readSync(f.fd, out, got, len - got, offset + got);
      if (n <= 0) break;
      got += n;
    }
    return out;
  }

  close(): void {
    for (const { fd } of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}
