// A data manifest (YAML) for models with several inputs: each model input name → a .npy file or an array of a
// .npz, plus optional labels and class names. Paths are relative to the manifest's folder.
//
//   inputs:
//     input_ids: ids.npy                      # a .npy file
//     attention_mask: batch.npz:mask          # array "mask" of batch.npz (also {file: batch.npz, array: mask})
//     token_type_ids: batch.npz               # a .npz: the array named like the input (or its only array)
//   labels: y.npy                             # optional: [n] integers (also batch.npz:y)
//   classes: [negative, positive]             # optional class names
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { InputError } from '../errors.js';
import { readDataFile } from './read.js';

export interface ArrayRef {
  /** Resolved path of the .npy or .npz. */
  file: string;
  /** The array inside a .npz (undefined: by the input's name, or the only one). */
  array?: string;
  /** YAML path, for messages. */
  path: string;
}

export interface Manifest {
  file: string;
  inputs: Map<string, ArrayRef>;
  labels?: ArrayRef;
  classes?: string[];
}

function fail(file: string, path: string, msg: string): never {
  throw new InputError('manifest', `${file}: ${path}: ${msg}`, { file, path });
}

function ref(v: unknown, file: string, path: string): ArrayRef {
  const base = dirname(file);
  const resolve = (p: string) => (isAbsolute(p) ? p : join(base, p));
  let f: string;
  let array: string | undefined;
  if (typeof v === 'string') {
    const m = /^(.*\.npz):([^:/\\]+)$/i.exec(v.trim());
    if (m) [f, array] = [m[1]!, m[2]!];
    else f = v.trim();
  } else if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (k !== 'file' && k !== 'array') fail(file, `${path}.${k}`, 'unknown key (known: file, array)');
    if (typeof o.file !== 'string') fail(file, `${path}.file`, 'expected a path to a .npy or .npz file');
    if (o.array !== undefined && typeof o.array !== 'string')
      fail(file, `${path}.array`, 'expected an array name');
    f = o.file;
    array = o.array as string | undefined;
  } else fail(file, path, 'expected a path (x.npy, data.npz, data.npz:name) or {file, array}');
  if (!/\.(npy|npz)$/i.test(f)) fail(file, path, `"${f}" is not a .npy or .npz file`);
  if (array !== undefined && !/\.npz$/i.test(f))
    fail(file, path, `an array name needs a .npz file, not "${f}"`);
  const r: ArrayRef = { file: resolve(f), path };
  if (array !== undefined) r.array = array;
  return r;
}

/** Read and validate a manifest file. */
export function readManifest(file: string): Manifest {
  let doc: unknown;
  try {
    doc = parse(readDataFile(file).toString('utf8'));
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError('manifest', `${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`, {
      file,
    });
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    fail(file, '(top)', 'expected a mapping with `inputs:` (model input name → array)');
  const o = doc as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['inputs', 'labels', 'classes'].includes(k))
      fail(file, k, 'unknown key (known: inputs, labels, classes)');
  const ins = o.inputs;
  if (!ins || typeof ins !== 'object' || Array.isArray(ins) || !Object.keys(ins).length)
    fail(file, 'inputs', 'expected a mapping of model input names to arrays');
  const inputs = new Map<string, ArrayRef>();
  for (const [name, v] of Object.entries(ins as Record<string, unknown>))
    inputs.set(name, ref(v, file, `inputs.${name}`));
  const m: Manifest = { file, inputs };
  if (o.labels !== undefined && o.labels !== null) m.labels = ref(o.labels, file, 'labels');
  if (o.classes !== undefined) {
    if (!Array.isArray(o.classes) || !o.classes.every((c) => typeof c === 'string' || typeof c === 'number'))
      fail(file, 'classes', 'expected a list of class names');
    m.classes = o.classes.map(String);
  }
  return m;
}
