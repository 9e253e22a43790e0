// A bounded load generator for loopback servers (used by `npm run bench -- serve` and the tests): `concurrency`
// clients, each sending its next request when the previous one is answered, until `requests` are sent or
// `durationMs` has passed, whichever is first. It refuses any host but the loopback.
import http from 'node:http';
import { InputError } from '../errors.js';

export interface LoadGenOptions {
  /** http://127.0.0.1:<port>/v1/models/<name>/infer */
  url: string;
  body: Buffer;
  headers: Record<string, string>;
  concurrency: number;
  /** Most requests in all (default 10,000). */
  requests?: number;
  /** Most time, ms (default 10,000). */
  durationMs?: number;
  /** Requests sent first and not counted (default 0). */
  warmup?: number;
  /** Called with each answer (status and body), e.g. to check outputs. */
  onResponse?: (status: number, body: Buffer, index: number) => void;
}

export interface LoadResult {
  requests: number;
  ok: number;
  /** Answers by HTTP status (transport failures under "error"). */
  statuses: Record<string, number>;
  seconds: number;
  throughput: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export async function runLoad(o: LoadGenOptions): Promise<LoadResult> {
  const u = new URL(o.url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname))
    throw new InputError('load-host', `The load tool only talks to the loopback: ${u.hostname} is not`, {
      value: o.url,
    });
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const total = o.requests ?? 10_000;
  const until = performance.now() + (o.durationMs ?? 10_000);
  const headers = { ...o.headers, 'content-length': String(o.body.byteLength) };
  const one = (index: number) =>
    new Promise<{ status: number; ms: number }>((resolve) => {
      const t = performance.now();
      const req = http.request(
        { host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', headers, agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            o.onResponse?.(status, Buffer.concat(chunks), index);
            resolve({ status, ms: performance.now() - t });
          });
          res.on('error', () => resolve({ status: -1, ms: performance.now() - t }));
        },
      );
      req.on('error', () => resolve({ status: -1, ms: performance.now() - t }));
      req.end(o.body);
    });
  for (let i = 0; i < (o.warmup ?? 0); i += o.concurrency)
    await Promise.all(Array.from({ length: Math.min(o.concurrency, (o.warmup ?? 0) - i) }, () => one(-1)));
  const lat: number[] = [];
  const statuses: Record<string, number> = {};
  let sent = 0;
  const t0 = performance.now();
  const client = async () => {
    while (sent < total && performance.now() < until) {
      const r = await one(sent++);
      const k = r.status < 0 ? 'error' : String(r.status);
      statuses[k] = (statuses[k] ?? 0) + 1;
      lat.push(r.ms);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, client));
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  lat.sort((a, b) => a - b);
  return {
    requests: lat.length,
    ok: statuses['200'] ?? 0,
    statuses,
    seconds,
    throughput: (statuses['200'] ?? 0) / seconds,
    p50Ms: quantile(lat, 0.5),
    p90Ms: quantile(lat, 0.9),
    p99Ms: quantile(lat, 0.99),
    maxMs: lat[lat.length - 1] ?? NaN,
  };
}
