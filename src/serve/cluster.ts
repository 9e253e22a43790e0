// `serve()`: the one call behind `edgefit serve`. One process, or with `workers` > 1 a node:cluster primary that
// forks that many server processes listening on one port (connections are handed out round-robin). Each worker
// opens its own ORT sessions; with weights in page-aligned external data files and `mapWeights`, they all map the
// same file pages, so the weights are in memory once (PSS per worker in /metrics: edgefit_process_pss_bytes).
// The primary aggregates the workers' metrics (prom-client's AggregatorRegistry), passes an admin reload on to
// every worker, and replaces a worker that dies.
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import { EdgefitError, InputError, InternalError, UnsupportedError } from '../errors.js';
import { type InferenceServer, type ServeOptions, startServer } from './server.js';

export interface ServeClusterOptions extends ServeOptions {
  /** Server processes on the one port (default 1: serve in this process). */
  workers?: number;
}

export interface ServeHandle {
  url: string;
  port: number;
  workers: number;
  /** Process ids of the workers (this process's own with one worker). */
  pids(): number[];
  close(): Promise<void>;
  /** The in-process server (one worker only). */
  server?: InferenceServer;
}

/** Messages between the primary and its workers. */
type Msg =
  | { edgefit: 'listening'; port: number }
  | { edgefit: 'failed'; message: string; code: string; exitCode: number }
  | { edgefit: 'metrics'; id: number }
  | { edgefit: 'metrics-reply'; id: number; text: string }
  | { edgefit: 'reload'; names: string[] }
  | { edgefit: 'close' };

export const WORKER_OPTIONS_ENV = 'EDGEFIT_SERVE_OPTIONS';

export async function serve(opts: ServeClusterOptions): Promise<ServeHandle> {
  const n = opts.workers ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new InputError('option', `--workers must be an integer from 1 to 64: it is ${n}`, {
      value: 'workers',
    });
  if (n === 1) {
    const s = await startServer(opts);
    const host = opts.host ?? '127.0.0.1';
    return {
      url: `http://${host}:${s.port}`,
      port: s.port,
      workers: 1,
      pids: () => [process.pid],
      close: () => s.close(),
      server: s,
    };
  }
  if (!cluster.isPrimary)
    throw new InternalError('cluster', 'serve() with workers is called in a worker', {});
  return startPrimary(opts, n);
}

async function startPrimary(opts: ServeClusterOptions, n: number): Promise<ServeHandle> {
  const { log, onAdminReload: _a, metricsText: _m, workers: _w, ...plain } = opts;
  const aggregate = new AggregatorRegistry();
  cluster.setupPrimary({
    // compiled (dist/…/cluster.js): the compiled entry; from the sources: the .mjs entry that loads it through tsx
    exec: fileURLToPath(
      new URL(
        import.meta.url.endsWith('.js') ? './cluster-entry.js' : './cluster-worker.mjs',
        import.meta.url,
      ),
    ),
    args: [],
    // the worker reads its options here (functions stay behind)
  });
  const env = { [WORKER_OPTIONS_ENV]: JSON.stringify(plain) };
  let closing = false;
  /** Set once every worker listens: a worker that dies before that fails the start instead of being replaced. */
  let started = false;
  const live = new Set<Worker>();

  const onMessage = (w: Worker, msg: Msg) => {
    if (msg?.edgefit === 'metrics')
      aggregate.clusterMetrics().then(
        (text) => w.send({ edgefit: 'metrics-reply', id: msg.id, text } satisfies Msg),
        (e) =>
          w.send({
            edgefit: 'metrics-reply',
            id: msg.id,
            text: `# cluster metrics failed: ${(e as Error).message}\n`,
          }),
      );
    else if (msg?.edgefit === 'reload')
      for (const o of live) if (o !== w) o.send({ edgefit: 'reload', names: msg.names } satisfies Msg);
  };

  const fork = () =>
    new Promise<{ worker: Worker; port: number }>((resolve, reject) => {
      const w = cluster.fork(env);
      live.add(w);
      const first = (msg: Msg) => {
        if (msg?.edgefit === 'listening') {
          w.off('message', first);
          resolve({ worker: w, port: msg.port });
        } else if (msg?.edgefit === 'failed') {
          w.off('message', first);
          const E = msg.exitCode === 2 ? InputError : msg.exitCode === 3 ? UnsupportedError : EdgefitError;
          reject(new E(msg.code, msg.message, {}));
        }
      };
      w.on('message', first);
      w.on('message', (msg: Msg) => onMessage(w, msg));
      w.on('exit', (code, signal) => {
        live.delete(w);
        reject(
          new InternalError('worker-exit', `A server worker exited while starting (${signal ?? code})`, {}),
        );
        if (!closing && started) {
          log?.(`worker ${w.process.pid} exited (${signal ?? code}); starting another`);
          fork().catch((e) => log?.(`could not replace a worker: ${(e as Error).message}`));
        }
      });
    });

  let port = 0;
  try {
    // every worker listens with the same options (cluster shares one handle per address and port, and gives
    // them all the same port when it is 0)
    const first = await fork();
    port = first.port;
    await Promise.all(Array.from({ length: n - 1 }, fork));
    started = true;
  } catch (e) {
    closing = true;
    for (const w of live) w.kill();
    throw e;
  }
  const host = opts.host ?? '127.0.0.1';
  log?.(`${n} workers listening on http://${host}:${port}`);
  return {
    url: `http://${host}:${port}`,
    port,
    workers: n,
    pids: () => [...live].map((w) => w.process.pid!).filter((p) => p !== undefined),
    async close() {
      closing = true;
      await Promise.all(
        [...live].map(
          (w) =>
            new Promise<void>((r) => {
              w.once('exit', () => r());
              w.send({ edgefit: 'close' } satisfies Msg);
            }),
        ),
      );
    },
  };
}

/** The body of a worker process (cluster-entry.ts compiled, cluster-worker.mjs from the sources). */
export async function runWorker(): Promise<void> {
  const opts = JSON.parse(process.env[WORKER_OPTIONS_ENV] ?? '{}') as ServeOptions;
  const send = (m: Msg) => process.send?.(m);
  let seq = 0;
  const pending = new Map<number, (t: string) => void>();
  let server: InferenceServer;
  try {
    server = await startServer({
      ...opts,
      log: (s) => process.stderr.write(`[worker ${process.pid}] ${s}\n`),
      onAdminReload: (names) => send({ edgefit: 'reload', names }),
      metricsText: () =>
        new Promise((resolve) => {
          const id = seq++;
          pending.set(id, resolve);
          send({ edgefit: 'metrics', id });
        }),
    });
  } catch (e) {
    const ee = e instanceof EdgefitError ? e : undefined;
    send({
      edgefit: 'failed',
      message: ee ? ee.message : `internal error: ${(e as Error)?.message ?? String(e)}`,
      code: ee?.code ?? 'internal',
      exitCode: ee?.exitCode ?? 1,
    });
    process.disconnect?.();
    return;
  }
  AggregatorRegistry.setRegistries([server.metrics.registry]);
  new AggregatorRegistry(); // answers the primary's metric requests
  process.on('message', (msg: Msg) => {
    if (msg?.edgefit === 'metrics-reply') {
      pending.get(msg.id)?.(msg.text);
      pending.delete(msg.id);
    } else if (msg?.edgefit === 'reload')
      server.reload(msg.names).catch((e) => process.stderr.write(`reload failed: ${(e as Error).message}\n`));
    else if (msg?.edgefit === 'close') void server.close().then(() => process.exit(0));
  });
  // Ctrl-C reaches the whole process group: the primary closes the workers in order, so they ignore it
  process.on('SIGINT', () => {});
  process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
  send({ edgefit: 'listening', port: server.port });
}
