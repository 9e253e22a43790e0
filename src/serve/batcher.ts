// Dynamic batching for one model: requests wait in a queue for at most `maxDelayMs` (from the oldest waiting
// request) while more arrive; a batch is the oldest request plus the next ones of the same shape key, up to
// `maxBatch` rows, run as one call of the executor, which answers each request with its own rows. One batch runs
// at a time (ORT's kernels use the cores already). A full queue refuses at once (429 with Retry-After); a request
// still queued at its deadline is answered 504 and never runs; one whose deadline passes while its batch runs is
// answered 504 then (or, when the run holds the thread, as soon as it returns), and its rows are discarded. With
// batching off, every request runs alone, in arrival order, under the same queue limit and deadlines.
import { DeadlineError, QueueFullError, UnavailableError } from './errors.js';

export interface BatchOptions {
  /** Turn dynamic batching off (each request runs alone). */
  batching: boolean;
  /** Most rows (sum of the requests' batch dims) in one run. */
  maxBatch: number;
  /** Longest a request waits for others before its batch runs, ms. */
  maxDelayMs: number;
  /** Most requests waiting; more are refused with 429. */
  maxQueue: number;
}

export const DEFAULT_BATCH: BatchOptions = { batching: true, maxBatch: 32, maxDelayMs: 10, maxQueue: 256 };

export interface BatchHooks {
  /** After each run: rows and requests in it, run time in seconds. */
  onBatch?(rows: number, requests: number, seconds: number): void;
  onQueueDepth?(depth: number): void;
}

interface Item<P, R> {
  payload: P;
  rows: number;
  key: string;
  t0: number;
  deadline: number;
  timer: NodeJS.Timeout | undefined;
  /** Answered (by its batch or by its deadline). */
  done: boolean;
  resolve(r: R): void;
  reject(e: unknown): void;
}

export class Batcher<P, R> {
  private queue: Item<P, R>[] = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Smoothed seconds per request, for Retry-After. */
  private secondsPerRequest = 0.001;

  constructor(
    readonly name: string,
    readonly options: BatchOptions,
    private readonly execute: (payloads: P[]) => Promise<R[]>,
    private readonly hooks: BatchHooks = {},
  ) {}

  get depth(): number {
    return this.queue.length;
  }

  get busy(): boolean {
    return this.running || this.queue.length > 0;
  }

  /** Queue a request of `rows` rows; requests batch together only with the same `key` (their non-batch dims). */
  submit(payload: P, rows: number, key: string, timeoutMs: number): Promise<R> {
    if (this.closed)
      return Promise.reject(new UnavailableError('draining', `Model "${this.name}" is being unloaded`, {}));
    if (this.queue.length >= this.options.maxQueue) {
      const wait = Math.max(1, Math.ceil(this.queue.length * this.secondsPerRequest));
      return Promise.reject(
        new QueueFullError(
          `Model "${this.name}" has ${this.queue.length} requests waiting (the limit): retry after ${wait} s`,
          wait,
          this.name,
        ),
      );
    }
    return new Promise<R>((resolve, reject) => {
      const t0 = performance.now();
      const item: Item<P, R> = {
        payload,
        rows,
        key,
        t0,
        deadline: t0 + timeoutMs,
        timer: undefined,
        done: false,
        resolve,
        reject,
      };
      item.timer = setTimeout(() => this.expire(item), timeoutMs);
      this.queue.push(item);
      this.hooks.onQueueDepth?.(this.queue.length);
      this.schedule();
    });
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Refuse new requests; the queued ones still run. Resolves when all have been answered. */
  async close(): Promise<void> {
    this.closed = true;
    this.schedule();
    await this.idle();
  }

  private expire(item: Item<P, R>): void {
    if (item.done) return;
    const i = this.queue.indexOf(item);
    if (i < 0) {
      // its batch is running: answer now, drop its rows when the run returns
      this.late(item);
      return;
    }
    this.queue.splice(i, 1);
    this.hooks.onQueueDepth?.(this.queue.length);
    item.done = true;
    const waited = performance.now() - item.t0;
    item.reject(
      new DeadlineError(
        'deadline',
        `Model "${this.name}": the request's deadline passed after ${waited.toFixed(0)} ms in the queue`,
        { value: this.name },
      ),
    );
    this.settleIdle();
  }

  /** 504 for a request whose deadline passed while its batch ran. */
  private late(item: Item<P, R>): void {
    item.done = true;
    clearTimeout(item.timer);
    const waited = performance.now() - item.t0;
    item.reject(
      new DeadlineError(
        'deadline',
        `Model "${this.name}": the request's deadline passed after ${waited.toFixed(0)} ms, while its batch ran`,
        { value: this.name },
      ),
    );
  }

  private rowsWaiting(key: string): number {
    let n = 0;
    for (const it of this.queue) if (it.key === key) n += it.rows;
    return n;
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    const first = this.queue[0]!;
    const now = performance.now();
    const ready =
      !this.options.batching ||
      this.closed ||
      now - first.t0 >= this.options.maxDelayMs ||
      this.rowsWaiting(first.key) >= this.options.maxBatch;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (ready) void this.dispatch();
    else
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          this.schedule();
        },
        Math.max(0, first.t0 + this.options.maxDelayMs - now),
      );
  }

  private take(): Item<P, R>[] {
    const first = this.queue[0]!;
    if (!this.options.batching) return this.queue.splice(0, 1);
    const batch: Item<P, R>[] = [];
    const rest: Item<P, R>[] = [];
    let rows = 0;
    for (const it of this.queue) {
      if (it === first || (it.key === first.key && rows + it.rows <= this.options.maxBatch)) {
        batch.push(it);
        rows += it.rows;
      } else rest.push(it);
    }
    this.queue = rest;
    return batch;
  }

  private async dispatch(): Promise<void> {
    this.running = true;
    const batch = this.take();
    this.hooks.onQueueDepth?.(this.queue.length);
    const t = performance.now();
    try {
      const res = await this.execute(batch.map((b) => b.payload));
      const now = performance.now();
      batch.forEach((b, i) => {
        if (b.done) return;
        if (now > b.deadline) return this.late(b);
        b.done = true;
        clearTimeout(b.timer);
        b.resolve(res[i]!);
      });
    } catch (e) {
      for (const b of batch)
        if (!b.done) {
          b.done = true;
          clearTimeout(b.timer);
          b.reject(e);
        }
    } finally {
      const s = (performance.now() - t) / 1000;
      this.secondsPerRequest = 0.8 * this.secondsPerRequest + (0.2 * s) / batch.length;
      this.hooks.onBatch?.(
        batch.reduce((n, b) => n + b.rows, 0),
        batch.length,
        s,
      );
      this.running = false;
      // let the answers go out before the next run takes the thread (ORT runs synchronously on it)
      setImmediate(() => {
        this.schedule();
        this.settleIdle();
      });
    }
  }

  private settleIdle(): void {
    if (this.busy) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }
}
