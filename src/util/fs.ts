// Atomic file writes: every writer in edgefit goes through writeAtomic, so a crash, an error or a signal never
// leaves a half-written output. The data goes to a hidden temp file in the same folder, is fsynced, then renamed
// over the target; any failure (including the rename) removes the temp file and becomes an InputError naming the
// path. Temp files are named `.<target>.<pid>-<hex>.tmp`: a later write to the same target removes those of dead
// processes (a run killed by SIGKILL or a power cut), and SIGINT/SIGTERM/SIGHUP remove the live ones.
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EdgefitError, InputError } from '../errors.js';

export type Chunk = Uint8Array | string;

/** Temp files being written by this process (removed by the signal handlers). */
const liveTemps = new Set<string>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let handlersInstalled = false;

function removeLiveTemps(): void {
  for (const t of liveTemps) {
    try {
      unlinkSync(t);
    } catch {
      /* already gone */
    }
  }
  liveTemps.clear();
}

function onSignal(sig: NodeJS.Signals): void {
  removeLiveTemps();
  // Only ours: die of the signal as Node would without a handler (exit status 128 + n).
  if (process.listenerCount(sig) === 1) {
    for (const s of SIGNALS) process.removeListener(s, onSignal);
    handlersInstalled = false;
    process.kill(process.pid, sig);
  }
}

/**
 * Signal handlers that remove this process's temp files, installed on the first write and kept: a signal that
 * arrives during a (synchronous) write is then handled after the write has completed or been rolled back, never
 * in the middle of it. With no other listener the process then dies of the signal as before.
 */
function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const s of SIGNALS) process.on(s, onSignal);
  process.once('exit', removeLiveTemps);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Temp file name pattern for `target` (pid, random part) — also matches the older `.<target>.<hex>.tmp`. */
function tempPattern(name: string): RegExp {
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\.${esc}\\.(?:(\\d+)-)?[0-9a-f]{12}\\.tmp$`);
}

/**
 * Remove temp files of `path` left by processes that no longer run (killed before they could clean up). Temp files
 * of live processes (a concurrent writer) are left alone; those of the older pid-less form only when over an hour
 * old. Never throws: stale temp files are hidden and never read, so failing to remove one is harmless.
 */
export function removeStaleTemps(path: string): string[] {
  const dir = dirname(path);
  const re = tempPattern(basename(path));
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const n of names) {
    const m = re.exec(n);
    if (!m) continue;
    const full = join(dir, n);
    try {
      const stale =
        m[1] !== undefined ? !alive(Number(m[1])) : Date.now() - statSync(full).mtimeMs > 3600_000;
      if (stale && !liveTemps.has(full)) {
        unlinkSync(full);
        removed.push(full);
      }
    } catch {
      /* raced with its owner, or not ours to remove */
    }
  }
  return removed;
}

/** Why a path cannot be written, in words, from a Node error code. */
function reason(code: string | undefined, dir: string): string {
  switch (code) {
    case 'EISDIR':
      return 'it is a folder';
    case 'ENOTDIR':
    case 'EEXIST':
      return `${nonFolder(dir) ?? dir} is a file, not a folder`;
    case 'EACCES':
    case 'EPERM':
      return `no permission to write in ${dir}`;
    case 'EROFS':
      return `${dir} is on a read-only file system`;
    case 'ENOENT':
      return `folder ${dir} does not exist and cannot be created`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `no space left on the device of ${dir}`;
    case 'ENAMETOOLONG':
      return 'the path is too long';
    default:
      return code ?? 'unknown error';
  }
}

/** The first ancestor of `dir` (or dir itself) that exists and is not a folder. */
function nonFolder(dir: string): string | undefined {
  let d = resolve(dir);
  for (;;) {
    try {
      return statSync(d).isDirectory() ? undefined : d;
    } catch {
      const up = dirname(d);
      if (up === d) return undefined;
      d = up;
    }
  }
}

/** A file-system error as an InputError naming `path`; anything else (a data error of the writer) unchanged. */
function writeError(path: string, e: unknown, dir: string): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (e instanceof EdgefitError || typeof (e as NodeJS.ErrnoException)?.syscall !== 'string') return e;
  return new InputError('write-output', `Cannot write ${path}: ${reason(code, dir)}`, {
    file: path,
    value: code,
  });
}

/** Refuse an output path that is an existing folder (before anything is computed or written). */
function refuseFolder(path: string): void {
  if (path === '') throw new InputError('write-output', 'The output path is empty', { value: 'output' });
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    /* absent: fine */
  }
  if (isDir)
    throw new InputError('write-output', `Cannot write ${path}: it is a folder`, {
      file: path,
      value: 'EISDIR',
    });
}

function ensureDir(path: string, dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw writeError(path, e, dir);
  }
}

/** A new temp file path for `path`, registered for removal on signals. */
function newTemp(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Check, before a long computation, that `path` can be written: not a folder, its folder exists or can be
 * created, and a file can be created there (a probe temp file, removed at once). Throws the InputError the
 * final write would throw.
 */
export function checkWritable(path: string): void {
  const dir = dirname(path);
  refuseFolder(path);
  ensureDir(path, dir);
  installSignalHandlers();
  const tmp = newTemp(path);
  liveTemps.add(tmp);
  try {
    closeSync(openSync(tmp, 'wx'));
    unlinkSync(tmp);
  } catch (e) {
    throw writeError(path, e, dir);
  } finally {
    liveTemps.delete(tmp);
  }
}

/** Write `data` (one buffer, or chunks written in order) to `path` atomically. */
export function writeAtomic(path: string, data: Chunk | Iterable<Chunk>): void {
  const dir = dirname(path);
  refuseFolder(path);
  ensureDir(path, dir);
  removeStaleTemps(path);
  installSignalHandlers();
  const tmp = newTemp(path);
  let fd: number | undefined;
  liveTemps.add(tmp);
  try {
    fd = openSync(tmp, 'wx');
    const chunks: Iterable<Chunk> = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
    for (const c of chunks) {
      const buf = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
      let off = 0;
      while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined)
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
    try {
      unlinkSync(tmp);
    } catch {
      /* nothing to remove */
    }
    throw writeError(path, e, dir);
  } finally {
    liveTemps.delete(tmp);
  }
}

/**
 * Check, before a long run, every file it will write: two options naming the same file are refused (a checkpoint
 * written over the output model, say), and each path must be writable (checkWritable).
 */
export function checkOutputs(outputs: { what: string; path: string }[]): void {
  const seen = new Map<string, string>();
  for (const o of outputs) {
    const key = resolve(o.path);
    const prev = seen.get(key);
    if (prev !== undefined)
      throw new InputError(
        'same-output',
        `${prev} and ${o.what} name the same file ${o.path}: each needs its own`,
        { file: o.path, value: o.what },
      );
    seen.set(key, o.what);
  }
  for (const o of outputs) checkWritable(o.path);
}
