// The inference server (fastify): loads every deployment, then listens.
//   POST /v1/models/{name}/infer   JSON or binary tensors in, the same form out (tensor.ts)
//   GET  /v1/models, /v1/models/{name}   what each model takes and returns, version, batching
//   GET  /health/live, /health/ready     liveness; readiness (503 until loaded and while shutting down)
//   GET  /metrics                        Prometheus text (metrics.ts)
//   POST /admin/reload                   check the sources for a new deployed version now (bearer token)
// Requests are checked (body size, element count, names, dtypes, shapes) before anything runs; errors are JSON
// {"error": {"code", "message"}} with a 4xx/5xx status and never a stack.
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { InputError } from '../errors.js';
import type { HostTensor } from '../runtime/index.js';
import { type BatchOptions, DEFAULT_BATCH } from './batcher.js';
import { Deployment } from './deployment.js';
import { AuthError, NotFoundError, RequestError, UnavailableError, errorResponse } from './errors.js';
import { parseJsonBody } from './json-body.js';
import { ServerMetrics } from './metrics.js';
import { type ModelSource, pathSource, registrySources } from './registry.js';
import {
  BINARY_CONTENT_TYPE,
  DEFAULT_LIMITS,
  HEADER_LENGTH,
  type Limits,
  checkInputs,
  decodeBinaryInputs,
  decodeJsonInputs,
  encodeBinaryOutputs,
  encodeJsonOutputs,
} from './tensor.js';

export interface ServeOptions {
  /** Models from paths: deployment name → .onnx file or split.json. */
  models?: { name: string; path: string }[];
  /** A registry folder or an `edgefit registry serve` URL (registry.ts, registry-client.ts). */
  registry?: string;
  /** Bearer token of a registry URL. */
  registryToken?: string;
  /** Cache folder for artifacts downloaded from a registry URL (default ~/.cache/edgefit/registry). */
  cacheDir?: string;
  /** Serve only this device's deployments of the registry. */
  device?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  batch?: Partial<BatchOptions>;
  /** Default per-request deadline, ms (a request may ask for less with the X-Deadline-Ms header). */
  timeoutMs?: number;
  /** ORT intra-op threads per session. */
  threads?: number;
  /** Bearer token for /admin; without one the admin endpoints are off. */
  token?: string;
  limits?: Partial<Limits>;
  /** Poll registry sources every this many ms (0: never; default 2000). */
  pollMs?: number;
  /** Map weights from external data files and keep ORT from pre-packing copies (default true). */
  mapWeights?: boolean;
  /** Log lines (default: none). */
  log?: (line: string) => void;
  /** Called after this process reloaded because of /admin/reload (the cluster tells the other workers). */
  onAdminReload?: (names: string[]) => void;
  /** Answers /metrics instead of this process's registry (the cluster's aggregate). */
  metricsText?: () => Promise<string>;
}

export const DEFAULT_TIMEOUT_MS = 5000;

interface Slot {
  source: ModelSource;
  current: Deployment;
  /** Serialises reloads of this deployment. */
  reloading: Promise<unknown>;
}

export interface ReloadResult {
  name: string;
  from: string;
  to: string;
  changed: boolean;
}

export class InferenceServer {
  readonly app: FastifyInstance;
  readonly metrics = new ServerMetrics();
  private slots = new Map<string, Slot>();
  /** Served model name → deployment name. */
  private routes = new Map<string, string>();
  private ready = false;
  private closing = false;
  private pollTimer: NodeJS.Timeout | undefined;
  /** The last poll's error, logged once. */
  private pollError: string | undefined;
  private readonly limits: Limits;
  private readonly batch: BatchOptions;
  private readonly timeoutMs: number;

  constructor(private readonly opts: ServeOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.batch = { ...DEFAULT_BATCH, ...opts.batch };
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    checkOptions(this.batch, this.limits, this.timeoutMs);
    this.app = Fastify({ bodyLimit: this.limits.maxBodyBytes, logger: false, return503OnClosing: true });
    this.routesSetup();
  }

  /** Load every deployment (all or nothing). */
  async load(): Promise<void> {
    const sources = [
      ...(this.opts.models ?? []).map((m) => pathSource(m.name, m.path)),
      ...(this.opts.registry
        ? await registrySources(this.opts.registry, {
            token: this.opts.registryToken,
            cacheDir: this.opts.cacheDir,
            device: this.opts.device,
          })
        : []),
    ];
    if (sources.length === 0)
      throw new InputError(
        'no-models',
        'Nothing to serve: give --model NAME=PATH or --registry PATH|URL',
        {},
      );
    const seen = new Set<string>();
    for (const s of sources) {
      if (seen.has(s.name))
        throw new InputError('duplicate-model', `Two deployments are named "${s.name}"`, { value: s.name });
      seen.add(s.name);
    }
    try {
      for (const s of sources) {
        const d = await this.open(s, await s.deployed());
        this.slots.set(s.name, { source: s, current: d, reloading: Promise.resolve() });
        this.opts.log?.(`loaded ${s.name} version ${d.version} from ${s.origin} (${d.bytes} bytes)`);
      }
      this.rebuildRoutes();
    } catch (e) {
      for (const s of this.slots.values()) await s.current.drain();
      this.slots.clear();
      throw e;
    }
    this.ready = true;
    const poll = this.opts.pollMs ?? 2000;
    if (poll > 0 && sources.some((s) => s.polled))
      this.pollTimer = setInterval(() => {
        // a failing poll (say, the registry is down) is logged when its error changes, not on every poll
        void this.reload([...this.slots.keys()].filter((n) => this.slots.get(n)!.source.polled)).then(
          () => {
            if (this.pollError) this.opts.log?.('poll: the sources answer again');
            this.pollError = undefined;
          },
          (e) => {
            const m = (e as Error).message;
            if (m !== this.pollError) this.opts.log?.(`reload failed (serving the loaded versions): ${m}`);
            this.pollError = m;
          },
        );
      }, poll);
  }

  /** Listen; resolves with the URL. */
  async listen(port = this.opts.port ?? 8080, host = this.opts.host ?? '127.0.0.1'): Promise<string> {
    return this.app.listen({ port, host });
  }

  get port(): number {
    const a = this.app.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /** Check the sources of these deployments (default all) and switch the ones whose deployed version changed. */
  async reload(names?: string[]): Promise<ReloadResult[]> {
    const list = names ?? [...this.slots.keys()];
    for (const n of list)
      if (!this.slots.has(n)) throw new NotFoundError('no-model', `No deployment named "${n}"`, { value: n });
    return Promise.all(list.map((n) => this.reloadOne(this.slots.get(n)!)));
  }

  private reloadOne(slot: Slot): Promise<ReloadResult> {
    const run = slot.reloading.then(async () => {
      const old = slot.current;
      const dv = await slot.source.deployed();
      if (dv.version === old.version)
        return { name: old.name, from: old.version, to: dv.version, changed: false };
      const next = await this.open(slot.source, dv);
      // the switch: new requests go to `next` from here on; the old one answers what it has queued, then closes
      slot.current = next;
      this.rebuildRoutes();
      this.metrics.modelBytes.remove({ model: old.name, version: old.version });
      this.metrics.reloads.inc({ model: old.name });
      this.opts.log?.(`${old.name}: version ${old.version} → ${next.version}`);
      await old.drain();
      return { name: old.name, from: old.version, to: next.version, changed: true };
    });
    slot.reloading = run.catch(() => undefined);
    return run;
  }

  private async open(source: ModelSource, dv: { version: string; path: string }): Promise<Deployment> {
    const name = source.name;
    const d = await Deployment.load(name, dv, {
      batch: this.batch,
      threads: this.opts.threads,
      mapWeights: this.opts.mapWeights ?? true,
      hooks: {
        onBatch: (rows, requests) => {
          this.metrics.batchRows.observe({ model: name }, rows);
          this.metrics.batchRequests.observe({ model: name }, requests);
        },
        onQueueDepth: (n) => this.metrics.queueDepth.set({ model: name }, n),
      },
    });
    for (const m of d.models.keys()) {
      const owner = [...this.slots.values()].find((s) => s.source.name !== name && s.current.models.has(m));
      if (owner) {
        await d.drain();
        throw new InputError(
          'duplicate-model',
          `Model "${m}" of ${source.origin} is also served by deployment "${owner.source.name}"`,
          { value: m },
        );
      }
    }
    this.metrics.modelBytes.set({ model: name, version: d.version }, d.bytes);
    return d;
  }

  private rebuildRoutes(): void {
    const r = new Map<string, string>();
    for (const [n, s] of this.slots) for (const m of s.current.models.keys()) r.set(m, n);
    this.routes = r;
  }

  /** Stop listening, answer what is queued, release every session. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    await this.app.close();
    for (const s of this.slots.values()) {
      await s.reloading;
      await s.current.drain();
    }
  }

  private deployment(model: string): Deployment {
    const d = this.routes.get(model);
    if (d === undefined)
      throw new NotFoundError(
        'no-model',
        `No model named "${model}" (served: ${[...this.routes.keys()].join(', ') || 'none'})`,
        { value: model },
      );
    return this.slots.get(d)!.current;
  }

  private checkToken(req: FastifyRequest): void {
    const token = this.opts.token;
    if (!token) throw new AuthError(403, 'Admin endpoints are off: start the server with --token');
    const h = req.headers.authorization;
    if (!h) throw new AuthError(401, 'Admin endpoints need "Authorization: Bearer <token>"');
    const m = /^Bearer (.+)$/.exec(h);
    const given = Buffer.from(m?.[1] ?? '', 'utf8');
    const want = Buffer.from(token, 'utf8');
    if (!m || given.length !== want.length || !timingSafeEqual(given, want))
      throw new AuthError(403, 'Wrong bearer token');
  }

  private routesSetup(): void {
    const app = this.app;
    // JSON.parse's own message says where the body stops being JSON
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(BINARY_CONTENT_TYPE, { parseAs: 'buffer' }, (_req, body, done) =>
      done(null, body),
    );
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
      if ((body as Buffer).length === 0)
        return done(new RequestError('json', 'The body is empty: send a JSON object'), undefined);
      try {
        done(null, parseJsonBody(body as Buffer));
      } catch (e) {
        done(new RequestError('json', `The body is not valid JSON: ${(e as Error).message}`), undefined);
      }
    });

    app.setErrorHandler((err: unknown, req, reply) => {
      const fe = err as { code?: string; statusCode?: number; message?: string };
      let e = err;
      if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
        e = new RequestError(
          'body-too-large',
          `The body is larger than the server's limit of ${this.limits.maxBodyBytes} bytes`,
        );
      else if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
        e = new RequestError(
          'content-type',
          `Unsupported Content-Type "${req.headers['content-type'] ?? ''}": send application/json or ${BINARY_CONTENT_TYPE}`,
        );
      else if (
        typeof fe.statusCode === 'number' &&
        fe.statusCode >= 400 &&
        fe.statusCode < 500 &&
        fe.code?.startsWith('FST_')
      )
        e = new RequestError('request', fe.message ?? 'bad request');
      const r = errorResponse(e);
      if (r.status >= 500 && r.code === 'internal')
        this.opts.log?.(`internal error on ${req.url}: ${(err as Error)?.stack ?? String(err)}`);
      const model = (req.params as { name?: string } | undefined)?.name;
      if (model) this.metrics.errors.inc({ model, code: r.code });
      if (r.retryAfter !== undefined) void reply.header('retry-after', String(r.retryAfter));
      void reply.code(r.status).send({ error: { code: r.code, message: r.message } });
    });
    app.setNotFoundHandler((req, reply) => {
      void reply
        .code(404)
        .send({ error: { code: 'not-found', message: `No route ${req.method} ${req.url}` } });
    });

    app.get('/health/live', async () => ({ status: 'live' }));
    app.get('/health/ready', async (_req, reply) => {
      if (!this.ready || this.closing)
        return reply.code(503).send({ status: this.closing ? 'closing' : 'loading' });
      return { status: 'ready', models: [...this.routes.keys()] };
    });
    app.get('/metrics', async (_req, reply) => {
      const text = this.opts.metricsText
        ? await this.opts.metricsText()
        : await this.metrics.registry.metrics();
      return reply.type(this.metrics.registry.contentType).send(text);
    });
    app.get('/v1/models', async () => ({ models: [...this.routes.keys()].map((m) => this.metadata(m)) }));
    app.get<{ Params: { name: string } }>('/v1/models/:name', async (req) => this.metadata(req.params.name));
    app.post<{ Params: { name: string } }>('/v1/models/:name/infer', async (req, reply) =>
      this.infer(req, reply),
    );
    app.post('/admin/reload', async (req) => {
      this.checkToken(req);
      const body = req.body as { models?: unknown } | undefined;
      const names = body?.models;
      if (names !== undefined && (!Array.isArray(names) || !names.every((n) => typeof n === 'string')))
        throw new RequestError(
          'body',
          'The reload body is {"models": ["<deployment>", ...]} (or empty for all)',
        );
      const res = await this.reload(names as string[] | undefined);
      this.opts.onAdminReload?.(res.map((r) => r.name));
      return { reloaded: res };
    });
  }

  private metadata(model: string): object {
    const d = this.deployment(model);
    const m = d.models.get(model)!;
    const spec = (v: { name: string; dtype: unknown; shape: unknown }) => ({
      name: v.name,
      dtype: v.dtype,
      shape: v.shape,
    });
    return {
      name: model,
      deployment: d.name,
      version: d.version,
      inputs: m.inputs.map(spec),
      outputs: m.outputs.map(spec),
      bytes: d.bytes,
      batching: d.unbatchable
        ? { enabled: false, reason: d.unbatchable }
        : {
            enabled: d.batcher.options.batching,
            maxBatch: d.batcher.options.maxBatch,
            maxDelayMs: d.batcher.options.maxDelayMs,
            maxQueue: d.batcher.options.maxQueue,
          },
    };
  }

  private async infer(
    req: FastifyRequest<{ Params: { name: string } }>,
    reply: FastifyReply,
  ): Promise<FastifyReply> {
    const t0 = performance.now();
    const model = req.params.name;
    let status = 200;
    try {
      if (this.closing) throw new UnavailableError('closing', 'The server is shutting down', {});
      const d = this.deployment(model);
      const spec = d.models.get(model)!;
      const binary = (req.headers['content-type'] ?? '').startsWith(BINARY_CONTENT_TYPE);
      let inputs: Record<string, HostTensor>;
      if (binary) {
        const h = req.headers[HEADER_LENGTH];
        inputs = decodeBinaryInputs(req.body as Buffer, Array.isArray(h) ? h[0] : h, this.limits);
      } else inputs = decodeJsonInputs(req.body, this.limits);
      checkInputs(model, spec.inputs, inputs);
      const timeout = this.requestTimeout(req);
      const out = await d.infer(model, inputs, timeout);
      const extra = { model, version: d.version };
      const wantBinary = binary || (req.headers.accept ?? '').includes(BINARY_CONTENT_TYPE);
      if (wantBinary) {
        const { body, headerLength } = encodeBinaryOutputs(out, extra);
        return reply.header(HEADER_LENGTH, String(headerLength)).type(BINARY_CONTENT_TYPE).send(body);
      }
      return reply.type('application/json').send(encodeJsonOutputs(out, extra));
    } catch (e) {
      status = errorResponse(e).status;
      throw e;
    } finally {
      this.metrics.latency.observe({ model, status: String(status) }, (performance.now() - t0) / 1000);
      this.metrics.served();
    }
  }

  private requestTimeout(req: FastifyRequest): number {
    const h = req.headers['x-deadline-ms'];
    if (h === undefined) return this.timeoutMs;
    const v = Array.isArray(h) ? h[0]! : h;
    if (!/^\d+$/.test(v) || Number(v) < 1)
      throw new RequestError(
        'deadline-header',
        `X-Deadline-Ms must be a positive integer (ms): it is "${v}"`,
      );
    return Math.min(Number(v), this.timeoutMs);
  }
}

function checkOptions(b: BatchOptions, l: Limits, timeoutMs: number): void {
  const pos = (v: number, what: string, min = 1) => {
    if (!Number.isInteger(v) || v < min)
      throw new InputError('option', `${what} must be an integer ≥ ${min}: it is ${v}`, { value: what });
  };
  pos(b.maxBatch, 'max batch');
  pos(b.maxDelayMs, 'max delay (ms)', 0);
  pos(b.maxQueue, 'max queue');
  pos(l.maxBodyBytes, 'max body bytes');
  pos(l.maxElements, 'max elements');
  pos(timeoutMs, 'timeout (ms)');
}

/** Load the deployments and listen. */
export async function startServer(opts: ServeOptions): Promise<InferenceServer> {
  const s = new InferenceServer(opts);
  await s.load();
  try {
    await s.listen();
  } catch (e) {
    await s.close();
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      'listen',
      `Cannot listen on ${opts.host ?? '127.0.0.1'}:${opts.port ?? 8080}: ${code ?? (e as Error).message}`,
      { value: 'port' },
    );
  }
  return s;
}
