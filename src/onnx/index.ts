// ONNX files ↔ IR. The only module that knows protobuf (decode.ts / encode.ts) and external data files.
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { InputError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { writeAtomic } from '../util/fs.js';
import { decodeModel } from './decode.js';
import { encodeModelParts } from './encode.js';
import { assertOpsetForms } from './opsets.js';

export { decodeModel, type DecodeOptions } from './decode.js';
export { encodeModel, encodeModelParts, type ExternalDataOptions, type EncodedModel } from './encode.js';

/** Read an ONNX file (external data is read relative to its folder). */
export function loadModel(path: string): Model {
  let bytes: Uint8Array;
  try {
    if (statSync(path).isDirectory())
      throw new InputError('not-a-file', `${path} is a folder, not an ONNX file`, { file: path });
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      'read-model',
      code === 'ENOENT'
        ? `Model file ${path} does not exist`
        : `Cannot read model file ${path}: ${(e as Error).message}`,
      { file: path },
    );
  }
  return decodeModel(bytes, { file: path, baseDir: dirname(resolve(path)) });
}

export interface SaveOptions {
  /** Store large tensors in a separate data file next to the model (default: inline). */
  externalData?: boolean;
  /** Data file name, relative to the model's folder (default `<model file name>.data`). */
  location?: string;
  /** Offset alignment in the data file (default 4096). */
  align?: number;
  /** Tensors below this many bytes stay inline (default 1024). */
  threshold?: number;
}

export interface SaveResult {
  modelBytes: number;
  dataBytes: number;
  dataFile?: string;
}

/**
 * Write a model atomically; with external data the data file is written first, the model last. A model with a
 * node whose op or form does not exist at its opset import is refused (GraphError naming the node) before any
 * byte is written.
 */
export function saveModel(model: Model, path: string, opts: SaveOptions = {}): SaveResult {
  assertOpsetForms(model, path);
  const align = opts.align ?? 4096;
  if (!Number.isInteger(align) || align < 1)
    throw new InputError('align', `Alignment must be a positive integer: current value is ${align}`, {
      value: 'align',
    });
  if (!opts.externalData) {
    const { model: bytes } = encodeModelParts(model);
    writeAtomic(path, bytes);
    return { modelBytes: bytes.byteLength, dataBytes: 0 };
  }
  const location = opts.location ?? `${basename(path)}.data`;
  if (location.includes('/') || location.includes('\\') || location === '.' || location === '..')
    throw new InputError(
      'location',
      `External data location must be a plain file name in the model's folder: current value is "${location}"`,
      {
        value: 'location',
      },
    );
  const parts = encodeModelParts(model, { location, align, threshold: opts.threshold });
  const dataFile = resolve(dirname(path), location);
  writeAtomic(dataFile, parts.data);
  writeAtomic(path, parts.model);
  return { modelBytes: parts.model.byteLength, dataBytes: parts.dataBytes, dataFile };
}
export {
  assertOpsetForms,
  opsetProblems,
  nodeOpsetProblems,
  opVersionAt,
  opSince,
  MAX_KNOWN_OPSET,
  MIN_CONVERT_OPSET,
} from './opsets.js';
