// Progress reporting on stderr: a redrawn bar with counts, rate and ETA on a TTY; plain periodic lines elsewhere
// (CI logs, pipes); nothing when quiet. stdout is left to results (tables, or one JSON object).

export interface Progress {
  /** Advance by `n` items; `info` is shown after the counts (e.g. "loss 0.41"). */
  tick(n?: number, info?: string): void;
  done(info?: string): void;
}

export interface ProgressOptions {
  quiet?: boolean;
  /** Where to write (default process.stderr). */
  stream?: NodeJS.WriteStream;
  /** Seconds between plain lines when not a TTY (default 5). */
  interval?: number;
}

export function progress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  if (opts.quiet) return { tick() {}, done() {} };
  const out = opts.stream ?? process.stderr;
  const tty = !!out.isTTY;
  const start = Date.now();
  let n = 0;
  let lastDraw = 0;
  let lastInfo = '';
  const line = (final: boolean) => {
    const secs = (Date.now() - start) / 1000;
    const rate = secs > 0 ? n / secs : 0;
    const eta = rate > 0 && total > n ? (total - n) / rate : 0;
    const pct = total ? Math.min(1, n / total) : 0;
    const width = 24;
    const bar = tty ? `[${'#'.repeat(Math.round(pct * width)).padEnd(width, '.')}] ` : '';
    const tail = final ? `${secs.toFixed(1)}s` : `ETA ${eta.toFixed(0)}s`;
    return `${label} ${bar}${n}/${total} ${fmtRate(rate)}/s ${tail}${lastInfo ? `  ${lastInfo}` : ''}`;
  };
  return {
    tick(k = 1, info) {
      n += k;
      if (info !== undefined) lastInfo = info;
      const now = Date.now();
      if (tty) {
        if (now - lastDraw > 100) {
          out.write(`\r${line(false)}\x1b[K`);
          lastDraw = now;
        }
      } else if (now - lastDraw > (opts.interval ?? 5) * 1000) {
        if (lastDraw) out.write(`${line(false)}\n`);
        lastDraw = now;
      }
    },
    done(info) {
      if (info !== undefined) lastInfo = info;
      out.write(tty ? `\r${line(true)}\x1b[K\n` : `${line(true)}\n`);
    },
  };
}

function fmtRate(r: number): string {
  return r >= 1000 ? `${(r / 1000).toFixed(1)}k` : r.toFixed(r >= 10 ? 0 : 1);
}
