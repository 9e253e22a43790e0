// ONNX files ↔ IR. The only module that knows protobuf (decode.ts / encode.ts) and external data files.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { checkWritable, writeAtomic } from '../util/fs.js';
import { checkAlignment } from '../util/align.js';
import { decodeModel } from './decode.js';
import { encodeModelParts } from './encode.js';
import { assertOpsetForms } from './opsets.js';

export { checkAlignment } from '../util/align.js';
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
  /**
   * Data file name, relative to the model's folder (default `<model file name>.<content hash>.data`, a new name for
   * new data, which is what makes replacing a model and its data one atomic step; a fixed name gives that up).
   */
  location?: string;
  /** Offset alignment in the data file (default 4096; a power of two ≥ 64, what ORT needs to map tensors). */
  align?: number;
  /** Tensors below this many bytes stay inline (default 1024). */
  threshold?: number;
  /** Called between writing the data file and replacing the model (tests simulate an interruption there). */
  afterDataWritten?: () => void;
}

export interface SaveResult {
  modelBytes: number;
  dataBytes: number;
  /** The data file, as `path` was given (relative stays relative). */
  dataFile?: string;
}

/** Data files edgefit writes for the model file `name`: `<name>.data` (older versions) and `<name>.<hash>.data`. */
function ownDataFiles(dir: string, name: string): string[] {
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^${esc}(?:\\.[0-9a-f]{8})?\\.data$`);
  try {
    return readdirSync(dir).filter((n) => re.test(n));
  } catch {
    return [];
  }
}

/** Which of `candidates` (file names) the model file now at `path` refers to (its bytes contain the name). */
function referencedBy(path: string, candidates: string[]): string[] {
  if (!candidates.length) return [];
  let bytes: Buffer;
  try {
    if (!statSync(path).isFile()) return [];
    bytes = readFileSync(path);
  } catch {
    return [];
  }
  return candidates.filter((c) => bytes.includes(Buffer.from(c, 'utf8')));
}

/**
 * Write a model atomically. With external data, the model and its data file are replaced as one unit: the data
 * goes to a file named by its content hash (`<model>.<hash8>.data`), so the model already on disk keeps its own
 * data file until the new model is renamed over it — the commit point — and the data file the old model used is
 * removed only after that. An interruption at any point leaves the old pair or the new pair, never a mix; a
 * failed model write removes the data file it wrote. A model with a node whose op or form does not exist at its
 * opset import is refused (GraphError naming the node) before any byte is written.
 */
export function saveModel(model: Model, path: string, opts: SaveOptions = {}): SaveResult {
  assertOpsetForms(model, path);
  const align = opts.align ?? 4096;
  if (opts.externalData) checkAlignment(align);
  const dir = dirname(path);
  const name = basename(path);
  if (!opts.externalData) {
    const { model: bytes } = encodeModelParts(model);
    const old = referencedBy(path, ownDataFiles(dir, name));
    writeAtomic(path, bytes);
    for (const n of old) rmQuiet(join(dir, n));
    return { modelBytes: bytes.byteLength, dataBytes: 0 };
  }
  if (opts.location !== undefined && (/[/\\]/.test(opts.location) || ['', '.', '..'].includes(opts.location)))
    throw new InputError(
      'location',
      `External data location must be a plain file name in the model's folder: current value is "${opts.location}"`,
      { value: 'location' },
    );
  checkWritable(path);
  const ext = { align, threshold: opts.threshold };
  let location = opts.location;
  if (location === undefined) {
    const h = createHash('sha256');
    for (const c of encodeModelParts(model, { ...ext, location: '' }).data) h.update(c);
    location = `${name}.${h.digest('hex').slice(0, 8)}.data`;
  }
  const parts = encodeModelParts(model, { ...ext, location });
  const dataFile = join(dir, location);
  const existed = existsSync(dataFile);
  // The data files the model now at `path` uses, to remove once the new model has replaced it.
  const old = referencedBy(
    path,
    ownDataFiles(dir, name).filter((n) => n !== location),
  );
  writeAtomic(dataFile, parts.data);
  try {
    opts.afterDataWritten?.();
    writeAtomic(path, parts.model);
  } catch (e) {
    if (!existed) rmQuiet(dataFile);
    throw e;
  }
  for (const n of old) rmQuiet(join(dir, n));
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

function rmQuiet(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    /* gone already */
  }
}
