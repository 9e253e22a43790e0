// Training checkpoints: one file holding everything needed to continue a run bit for bit — the train-step state
// (parameters, BN running statistics, optimizer slots, step counter: TrainState), the trainer's position (epoch,
// batch, shuffle seed, partial-epoch sums, early-stopping counter, history) and, with keepBest, the best state.
//
// Layout (little-endian):
//   0   8 bytes  magic "EFCKPT01"
//   8   uint32   header length H (bytes of UTF-8 JSON)
//   12  H bytes  header JSON: { format, version, position, meta, step, bestStep?, tensors: [entry…], dataBytes }
//   …   zero padding to a multiple of 64
//   data         raw tensor bytes, each tensor at header offset (relative to the start of data), 64-byte aligned
// A tensor entry is { group: 'state'|'optimizer'|'best'|'bestOptimizer', name, dtype, dims, offset, bytes }.
// Files are written through writeAtomic (temp file, fsync, rename), chunk by chunk: a failure at any point leaves
// the previous file (or none) in place.
import { readFileSync } from 'node:fs';
import { DataError, InputError } from '../errors.js';
import { DTYPES, type DType, dtypeByteLength } from '../ir/dtype.js';
import { type TypedArray, typedCtor } from '../ir/tensor.js';
import type { HostTensor } from '../runtime/index.js';
import { type Chunk, writeAtomic } from '../util/fs.js';
import type { TrainState } from './types.js';

export const CHECKPOINT_MAGIC = 'EFCKPT01';
export const CHECKPOINT_VERSION = 1;
const ALIGN = 64;

/** One epoch of training, as the trainer reports it. */
export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  /** Mean training loss over the epoch's batches (as the step graph computed it, training mode). */
  trainLoss: number;
  /** Accuracy of the training-mode logits over the epoch's rows (labels needed; NaN-free: 0 when none). */
  trainAccuracy: number;
  /** Mean cross-entropy of the exported model on the validation set. */
  valLoss?: number;
  valAccuracy?: number;
  /** Learning rate of the epoch's last step. */
  lr: number;
  /** Wall time of the epoch, validation included. */
  seconds: number;
  steps: number;
  /** Training rows per second (steps only, no validation). */
  rowsPerSecond: number;
}

/** Where the trainer is, and what it has seen: enough to continue exactly. */
export interface TrainerPosition {
  /** Epoch in progress or next to run (0-based). */
  epoch: number;
  /** Next batch of `epoch` (0 at an epoch boundary). */
  batch: number;
  /** Global optimiser steps done (the schedule's step counter). */
  step: number;
  /** Shuffle stream: epoch e uses epochOrder(rows, seed, e); with (epoch, batch) this is the RNG position. */
  seed: number;
  batchSize: number;
  dropLast: boolean;
  /** Training rows (checked on resume: the order depends on it). */
  rows: number;
  /** Sums of the epoch in progress (all zero at an epoch boundary). */
  partial: {
    lossSum: number;
    lossRows: number;
    correct: number;
    labelled: number;
    seconds: number;
    trainSeconds: number;
  };
  /** Best validation metric so far (with keepBest or early stopping). */
  best?: { metric: string; value: number; epoch: number };
  /** Early stopping: the metric value of the last epoch that improved on the one before by more than minDelta. */
  improvedRef?: number;
  /** Epochs since then. */
  sinceImproved: number;
  history: EpochRecord[];
  stopped?: 'early-stopping' | 'callback';
}

export interface Checkpoint {
  state: TrainState;
  position: TrainerPosition;
  /** The best-by-validation state (keepBest). */
  best?: TrainState;
  /** Free-form JSON about the run (model name, options), for people and for checks on resume. */
  meta: Record<string, unknown>;
}

type Group = 'state' | 'optimizer' | 'best' | 'bestOptimizer';

interface Entry {
  group: Group;
  name: string;
  dtype: DType;
  dims: number[];
  offset: number;
  bytes: number;
}

interface Header {
  format: 'edgefit-checkpoint';
  version: number;
  step: number;
  bestStep?: number;
  position: TrainerPosition;
  meta: Record<string, unknown>;
  tensors: Entry[];
  dataBytes: number;
}

const pad = (n: number) => (ALIGN - (n % ALIGN)) % ALIGN;

function expectedBytes(t: HostTensor): number {
  return dtypeByteLength(
    t.dtype,
    t.dims.reduce((a, b) => a * b, 1),
  );
}

function tensorsOf(c: Checkpoint): [Group, string, HostTensor][] {
  const out: [Group, string, HostTensor][] = [];
  const add = (g: Group, rec: Record<string, HostTensor>) => {
    for (const name of Object.keys(rec).sort()) out.push([g, name, rec[name]!]);
  };
  add('state', c.state.tensors);
  add('optimizer', c.state.optimizer);
  if (c.best) {
    add('best', c.best.tensors);
    add('bestOptimizer', c.best.optimizer);
  }
  return out;
}

/**
 * The file's bytes as chunks, produced lazily: the header is computed from dtypes and dims, and each tensor's
 * data is checked when its turn comes, so a bad tensor fails the write part-way (writeAtomic then removes the
 * temp file).
 */
export function* encodeCheckpoint(c: Checkpoint): Generator<Uint8Array, void, undefined> {
  const list = tensorsOf(c);
  const entries: Entry[] = [];
  let offset = 0;
  for (const [group, name, t] of list) {
    if (t.dtype === 'string' || !(t.dtype in DTYPES))
      throw new InputError('checkpoint-dtype', `Cannot checkpoint tensor "${name}" of dtype ${t.dtype}`, {
        value: name,
      });
    const bytes = expectedBytes(t);
    entries.push({ group, name, dtype: t.dtype, dims: [...t.dims], offset, bytes });
    offset += bytes + pad(bytes);
  }
  const header: Header = {
    format: 'edgefit-checkpoint',
    version: CHECKPOINT_VERSION,
    step: c.state.step,
    ...(c.best ? { bestStep: c.best.step } : {}),
    position: c.position,
    meta: c.meta,
    tensors: entries,
    dataBytes: offset,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const pre = Buffer.alloc(12);
  pre.write(CHECKPOINT_MAGIC, 0, 'latin1');
  pre.writeUInt32LE(json.byteLength, 8);
  yield pre;
  yield json;
  yield new Uint8Array(pad(12 + json.byteLength));
  for (let i = 0; i < list.length; i++) {
    const [, name, t] = list[i]!;
    const e = entries[i]!;
    const d = t.data as TypedArray;
    if (!ArrayBuffer.isView(d) || d.byteLength !== e.bytes)
      throw new InputError(
        'checkpoint-tensor',
        `Tensor "${name}" (${e.group}) has ${ArrayBuffer.isView(d) ? d.byteLength : 'no'} data bytes; dtype ${t.dtype} and dims [${t.dims}] need ${e.bytes}`,
        { value: name },
      );
    yield new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    if (pad(e.bytes)) yield new Uint8Array(pad(e.bytes));
  }
}

/** Write a checkpoint atomically. */
export function saveCheckpoint(path: string, c: Checkpoint): void {
  writeAtomic(path, encodeCheckpoint(c) as Iterable<Chunk>);
}

function corrupt(file: string | undefined, why: string): never {
  throw new DataError(
    'checkpoint-format',
    `${file ?? 'checkpoint'} is not a valid edgefit checkpoint: ${why}`,
    { file },
  );
}

/** Parse checkpoint bytes (copies every tensor into its own aligned array). */
export function decodeCheckpoint(bytes: Uint8Array, file?: string): Checkpoint {
  if (bytes.byteLength < 12) corrupt(file, `only ${bytes.byteLength} bytes`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.toString('latin1', 0, 8) !== CHECKPOINT_MAGIC) corrupt(file, 'wrong magic bytes');
  const hlen = b.readUInt32LE(8);
  if (12 + hlen > b.byteLength) corrupt(file, 'truncated header');
  let h: Header;
  try {
    h = JSON.parse(b.toString('utf8', 12, 12 + hlen)) as Header;
  } catch (e) {
    corrupt(file, `header is not JSON (${(e as Error).message})`);
  }
  if (h.format !== 'edgefit-checkpoint' || !Array.isArray(h.tensors) || typeof h.position !== 'object')
    corrupt(file, 'header lacks format/tensors/position');
  if (h.version !== CHECKPOINT_VERSION)
    corrupt(file, `version ${h.version} (this edgefit reads version ${CHECKPOINT_VERSION})`);
  const start = 12 + hlen + pad(12 + hlen);
  if (b.byteLength !== start + h.dataBytes)
    corrupt(file, `size ${b.byteLength} bytes, header says ${start + h.dataBytes} (truncated or extended)`);
  const groups: Record<Group, Record<string, HostTensor>> = {
    state: {},
    optimizer: {},
    best: {},
    bestOptimizer: {},
  };
  for (const e of h.tensors) {
    if (!(e.dtype in DTYPES) || e.dtype === 'string')
      corrupt(file, `tensor "${e.name}" has dtype ${e.dtype}`);
    if (!(e.group in groups)) corrupt(file, `tensor "${e.name}" has group ${e.group}`);
    const numel = e.dims.reduce((a, x) => a * x, 1);
    if (dtypeByteLength(e.dtype, numel) !== e.bytes || e.offset < 0 || e.offset + e.bytes > h.dataBytes)
      corrupt(file, `tensor "${e.name}" has inconsistent size/offset`);
    const ctor = typedCtor(e.dtype);
    const copy = new Uint8Array(e.bytes);
    copy.set(b.subarray(start + e.offset, start + e.offset + e.bytes));
    const len = ctor.BYTES_PER_ELEMENT === 1 ? e.bytes : e.bytes / ctor.BYTES_PER_ELEMENT;
    groups[e.group][e.name] = { dtype: e.dtype, dims: e.dims, data: new ctor(copy.buffer, 0, len) };
  }
  const c: Checkpoint = {
    state: { step: h.step, tensors: groups.state, optimizer: groups.optimizer },
    position: h.position,
    meta: h.meta ?? {},
  };
  if (h.bestStep !== undefined)
    c.best = { step: h.bestStep, tensors: groups.best, optimizer: groups.bestOptimizer };
  return c;
}

/** Read a checkpoint file. */
export function loadCheckpoint(path: string): Checkpoint {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      'read-checkpoint',
      code === 'ENOENT'
        ? `Checkpoint ${path} does not exist`
        : `Cannot read checkpoint ${path}: ${(e as Error).message}`,
      { file: path },
    );
  }
  return decodeCheckpoint(bytes, path);
}
