// Image folders as data: a folder of class subfolders of PNG/JPEG images (labels = class index), or a flat folder
// of images (unlabeled). Only the file list is held in memory; images are read, decoded and preprocessed per
// batch, ahead of the consumer, in a decoder worker thread (default) or on the main thread and sharp's threads.
//
// Classes are the subfolder names sorted by code point (as Python's sorted() / torchvision's ImageFolder); a
// `classes.txt` beside them (one name per line) sets the order instead — it may name classes that have no
// folder, but every folder must be listed. Images inside a class folder are found recursively; files that are not
// .png/.jpg/.jpeg and names starting with "." are ignored.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DataError, InputError } from '../errors.js';
import { decodePng, fastPngSupported, pngInfo, type DecodedImage } from './png.js';
import { itemSize, valueTable, writeItem, type PreprocessSpec } from './preprocess.js';
import { BaseSource, type InputSpec, type LoadedRows } from './source.js';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'] as const;
const IMAGE_RE = /\.(png|jpe?g)$/i;

export interface ImageListing {
  root: string;
  files: string[];
  /** Class index of each file (class folders), or undefined (flat folder: unlabeled). */
  labels?: Uint32Array;
  classNames?: string[];
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function listDir(dir: string): { dirs: string[]; images: string[] } {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new DataError(
      'data-unreadable',
      `${dir}: cannot read folder: ${(e as Error).message}`,
      { file: dir },
      { cause: e },
    );
  }
  const dirs: string[] = [];
  const images: string[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    if (isDir(p)) dirs.push(name);
    else if (IMAGE_RE.test(name)) images.push(name);
  }
  return { dirs, images };
}

function walkImages(dir: string, out: string[]): void {
  const { dirs, images } = listDir(dir);
  for (const f of images) out.push(join(dir, f));
  for (const d of dirs) walkImages(join(dir, d), out);
}

/** List an image folder (class subfolders, or a flat folder of images). Empty folders are InputErrors. */
export function listImageFolder(root: string): ImageListing {
  const { dirs, images } = listDir(root);
  const exts = IMAGE_EXTENSIONS.join(', ');
  if (!dirs.length) {
    if (!images.length)
      throw new InputError('empty-data', `${root}: no images (${exts}) and no class subfolders`, {
        file: root,
      });
    return { root, files: images.map((f) => join(root, f)) };
  }
  if (images.length)
    throw new InputError(
      'mixed-folder',
      `${root}: has both class subfolders (${dirs.slice(0, 3).join(', ')}${dirs.length > 3 ? ', …' : ''}) and loose images (${images.slice(0, 3).join(', ')}${images.length > 3 ? ', …' : ''}): use one or the other`,
      { file: root },
    );
  let classNames = dirs;
  const listFile = join(root, 'classes.txt');
  let hasList = false;
  try {
    hasList = statSync(listFile).isFile();
  } catch {
    /* no classes.txt */
  }
  if (hasList) {
    const names = readFileSync(listFile, 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '');
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n))
        throw new InputError('classes-file', `${listFile}: class "${n}" is listed twice`, { file: listFile });
      seen.add(n);
    }
    const unlisted = dirs.filter((d) => !seen.has(d));
    if (unlisted.length)
      throw new InputError(
        'classes-file',
        `${listFile}: does not list the class folder${unlisted.length > 1 ? 's' : ''} ${unlisted.map((d) => `"${d}"`).join(', ')}`,
        {
          file: listFile,
        },
      );
    if (!names.length)
      throw new InputError('classes-file', `${listFile}: lists no classes`, { file: listFile });
    classNames = names;
  }
  const files: string[] = [];
  const labels: number[] = [];
  classNames.forEach((c, k) => {
    const dir = join(root, c);
    if (!isDir(dir)) return; // named in classes.txt, no folder: a class without images here
    const before = files.length;
    walkImages(dir, files);
    if (files.length === before)
      throw new InputError('empty-class', `${dir}: class folder "${c}" has no images (${exts})`, {
        file: dir,
      });
    for (let i = before; i < files.length; i++) labels.push(k);
  });
  return { root, files, labels: Uint32Array.from(labels), classNames };
}

// ---------------------------------------------------------------- decoding

type SharpFn = typeof import('sharp').default;
let sharpModule: Promise<SharpFn> | undefined;

/** sharp, loaded once (its cache off: each image is read once). */
export function loadSharp(): Promise<SharpFn> {
  sharpModule ??= import('sharp').then((m) => {
    const s = m.default;
    s.cache(false);
    return s;
  });
  return sharpModule;
}

/** Decode with sharp: colour conversion, alpha dropped, then the shorter side resized to spec.resize. */
async function decodeWithSharp(bytes: Uint8Array, spec: PreprocessSpec): Promise<DecodedImage> {
  const sharp = await loadSharp();
  let img = sharp(bytes, { failOn: 'warning' });
  img = spec.channels === 1 ? img.greyscale() : img.toColourspace('srgb');
  let { data, info } = await img.removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (Math.min(info.width, info.height) !== spec.resize) {
    // a second pass, so alpha (already dropped) does not weigh the resampling
    const r = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
      .resize({ width: spec.resize, height: spec.resize, fit: 'outside', kernel: 'linear' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    data = r.data;
    info = r.info;
  }
  const channels = info.channels as number;
  if (channels !== 1 && channels !== 3) throw new Error(`decoded to ${channels} channels`);
  return {
    width: info.width,
    height: info.height,
    channels: channels as 1 | 3,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/** How an image will be decoded: by the built-in PNG decoder (no resize, trivial colour) or by sharp. */
export function decodePath(bytes: Uint8Array, spec: PreprocessSpec): 'fast' | 'sharp' {
  const info = pngInfo(bytes);
  if (!info || !fastPngSupported(info) || Math.min(info.width, info.height) !== spec.resize) return 'sharp';
  const grey = info.colorType === 0 || info.colorType === 4;
  return grey || spec.channels === 3 ? 'fast' : 'sharp';
}

/** Decode image bytes to 8-bit pixels of spec.channels (or 1 for grey feeding RGB), resized for the crop. */
export async function decodeImage(bytes: Uint8Array, spec: PreprocessSpec): Promise<DecodedImage> {
  return decodePath(bytes, spec) === 'fast' ? decodePng(bytes) : decodeWithSharp(bytes, spec);
}

export interface DecodedFiles {
  /** files.length items of itemSize(spec) floats; rows of failed files are left zero. */
  data: Float32Array;
  /** 1 where the file decoded. */
  ok: Uint8Array;
  /** Why a file failed ('' where it decoded). */
  reasons: string[];
}

const lutCache = new WeakMap<PreprocessSpec, Float32Array>();

/** Read, decode and preprocess `files` into one buffer of items; failures are reported, not thrown. */
export async function decodeFiles(files: readonly string[], spec: PreprocessSpec): Promise<DecodedFiles> {
  let lut = lutCache.get(spec);
  if (!lut) lutCache.set(spec, (lut = valueTable(spec)));
  const size = itemSize(spec);
  const data = new Float32Array(files.length * size);
  const ok = new Uint8Array(files.length);
  const reasons = new Array<string>(files.length).fill('');
  const pending: Promise<void>[] = [];
  const put = (i: number, img: DecodedImage) => {
    writeItem(img.data, img.width, img.height, img.channels, spec, lut, data, i * size);
    ok[i] = 1;
  };
  files.forEach((f, i) => {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(f);
    } catch (e) {
      reasons[i] = `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
      return;
    }
    if (decodePath(bytes, spec) === 'fast') {
      try {
        put(i, decodePng(bytes));
      } catch (e) {
        reasons[i] = `corrupt PNG: ${(e as Error).message}`;
      }
      return;
    }
    pending.push(
      decodeWithSharp(bytes, spec).then(
        (img) => put(i, img),
        (e: Error) => {
          reasons[i] = `cannot decode: ${e.message.split('\n')[0]!.replace(/[:\s]+$/, '')}`;
        },
      ),
    );
  });
  await Promise.all(pending);
  return { data, ok, reasons };
}

// ---------------------------------------------------------------- decoder threads

interface Task {
  resolve: (r: DecodedFiles) => void;
  reject: (e: Error) => void;
  worker: PoolWorker;
}

interface PoolWorker {
  w: Worker;
  busy: number;
}

/** Worker threads running decodeFiles(), so decoding runs while the main thread is inside ORT. */
export class DecodePool {
  private readonly workers: PoolWorker[] = [];
  private readonly tasks = new Map<number, Task>();
  private nextId = 0;
  private failed: Error | undefined;
  private started = 0;
  /** True once every worker has loaded its code (starting one takes ~0.3–1 s: tsx compiles the decoder). */
  ready = false;
  /** Resolves when ready (never rejects; a failed start shows in decode()). */
  readonly whenReady: Promise<void>;

  constructor(size: number, spec: PreprocessSpec) {
    // compiled (dist/…/images.js): the compiled worker; from the sources: the .mjs entry that loads it through tsx
    const url = new URL(
      import.meta.url.endsWith('.js') ? './decode-worker.js' : './decode-worker.mjs',
      import.meta.url,
    );
    let markReady!: () => void;
    this.whenReady = new Promise<void>((r) => (markReady = r));
    for (let i = 0; i < size; i++) {
      const w = new Worker(url, { workerData: { spec } });
      const pw: PoolWorker = { w, busy: 0 };
      w.unref();
      w.on(
        'message',
        (m: { ready?: true; id: number; data: Float32Array; ok: Uint8Array; reasons: string[] }) => {
          if (m.ready) {
            if (++this.started === size) {
              this.ready = true;
              markReady();
            }
            return;
          }
          const t = this.tasks.get(m.id);
          if (!t) return;
          this.tasks.delete(m.id);
          if (--pw.busy === 0) w.unref();
          t.resolve({ data: m.data, ok: m.ok, reasons: m.reasons });
        },
      );
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`decoder thread exited with code ${code}`));
      });
      this.workers.push(pw);
    }
    void this.whenReady;
  }

  private fail(e: Error): void {
    this.failed ??= e;
    for (const [id, t] of this.tasks) {
      this.tasks.delete(id);
      t.reject(e);
    }
  }

  decode(files: string[]): Promise<DecodedFiles> {
    if (this.failed) return Promise.reject(this.failed);
    const pw = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    return new Promise<DecodedFiles>((resolve, reject) => {
      this.tasks.set(id, { resolve, reject, worker: pw });
      if (pw.busy++ === 0) pw.w.ref(); // keep the process alive while a task is out
      pw.w.postMessage({ id, files });
    });
  }

  async close(): Promise<void> {
    this.failed ??= new Error('decoder pool closed');
    await Promise.all(this.workers.map((p) => p.w.terminate()));
    this.workers.length = 0;
  }
}

/** Below this many images, `decodeThreads: undefined` (auto) decodes on the main thread: a worker's start costs more. */
export const AUTO_THREAD_MIN_ITEMS = 4096;

// ---------------------------------------------------------------- the source

export interface ImageSourceOptions {
  name: string;
  listing: ImageListing;
  spec: PreprocessSpec;
  input: InputSpec;
  numClasses?: number;
  /**
   * Decoder worker threads. Undefined (auto): one thread for folders of AUTO_THREAD_MIN_ITEMS images or more,
   * started at once and used as soon as it is up (batches before that decode on the main thread); none below.
   * A number N > 0: N threads, always used; 0: decode on the main thread (and sharp's own threads).
   */
  decodeThreads?: number;
  /** Batches decoded ahead (default 2). */
  prefetch?: number;
}

export class ImageFolderSource extends BaseSource {
  readonly name: string;
  readonly format = 'image-folder' as const;
  readonly n: number;
  readonly inputs: readonly InputSpec[];
  readonly labeled: boolean;
  private readonly files: string[];
  private readonly labels: Uint32Array | undefined;
  private readonly threads: number;
  private readonly adaptive: boolean;
  private pool: DecodePool | undefined;
  private closed = false;

  constructor(o: ImageSourceOptions) {
    super();
    this.name = o.name;
    this.files = o.listing.files;
    this.labels = o.listing.labels;
    this.n = this.files.length;
    this.inputs = [o.input];
    this.labeled = !!o.listing.labels;
    this.preprocess = o.spec;
    if (o.listing.classNames) this.classNames = o.listing.classNames;
    if (o.numClasses !== undefined) this.numClasses = o.numClasses;
    this.adaptive = o.decodeThreads === undefined;
    this.threads = o.decodeThreads ?? (this.n >= AUTO_THREAD_MIN_ITEMS ? 1 : 0);
    this.prefetch = o.prefetch ?? 2;
    if (this.adaptive && this.threads > 0) this.pool = new DecodePool(this.threads, this.preprocess!);
  }

  /** Where decoding runs: 'main' (this thread and sharp's), or 'workers' once a pool is up. */
  get decoder(): 'main' | 'workers' {
    return this.pool?.ready ? 'workers' : 'main';
  }

  /** The file of item i. */
  file(i: number): string {
    return this.files[i]!;
  }

  protected async load(idx: Uint32Array): Promise<LoadedRows> {
    if (this.closed)
      throw new InputError('closed', `${this.name}: the data source was closed`, { file: this.name });
    const files = Array.from(idx, (i) => this.files[i]!);
    let r: DecodedFiles;
    if (this.threads > 0 && !this.adaptive && !this.pool)
      this.pool = new DecodePool(this.threads, this.preprocess!);
    if (this.pool && (this.pool.ready || !this.adaptive)) {
      await this.pool.whenReady;
      r = await this.pool.decode(files);
    } else r = await decodeFiles(files, this.preprocess!);
    const size = itemSize(this.preprocess!);
    let k = 0;
    for (let i = 0; i < files.length; i++) if (r.ok[i]) k++;
    const indices = new Uint32Array(k);
    const labels = this.labels ? new BigInt64Array(k) : undefined;
    let data = r.data;
    if (k < files.length) data = new Float32Array(k * size);
    let j = 0;
    for (let i = 0; i < files.length; i++) {
      if (!r.ok[i]) {
        this.skip(idx[i]!, files[i]!, r.reasons[i]!);
        continue;
      }
      if (data !== r.data) data.set(r.data.subarray(i * size, (i + 1) * size), j * size);
      indices[j] = idx[i]!;
      if (labels) labels[j] = BigInt(this.labels![idx[i]!]!);
      j++;
    }
    const out: LoadedRows = { n: k, arrays: [data], indices };
    if (labels) out.labels = labels;
    return out;
  }

  override async close(): Promise<void> {
    this.closed = true;
    const p = this.pool;
    this.pool = undefined;
    if (p) await p.close();
  }
}
