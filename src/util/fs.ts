// Atomic file writes: every writer in edgefit goes through writeAtomic, so a crash or an error never leaves a
// half-written output. The data goes to a temp file in the same folder, is fsynced, then renamed over the target.
import { openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync, mkdirSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export type Chunk = Uint8Array | string;

/** Write `data` (one buffer, or chunks written in order) to `path` atomically. */
export function writeAtomic(path: string, data: Chunk | Iterable<Chunk>): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    const chunks: Iterable<Chunk> = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
    for (const c of chunks) {
      const buf = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
      let off = 0;
      while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
    }
    fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
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
    throw e;
  }
  renameSync(tmp, path);
}
