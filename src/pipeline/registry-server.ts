// `edgefit registry serve`: the registry's deployed artifacts and manifests, read-only over HTTP, so an edge device
// pulls the version deployed for its name and device. Every request needs `Authorization: Bearer <token>`.
//
//   GET /v1/models                                       [{ name, device, version, digest, bytes, accuracy }] deployed
//   GET /v1/models/{name}/{device}                       the deployed version: { version, digest, files, manifest }
//   GET /v1/models/{name}/{device}/files/{file}          a file of the deployed artifact (model.onnx, its data file)
//   GET /v1/artifacts/{digest}/{file}                    any artifact's file by content address (immutable)
//
// Files carry an ETag (the artifact digest) and Content-Length; a device that has the digest already skips the
// download with If-None-Match.
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { Registry } from './registry.js';

export interface RegistryServerOptions {
  /** Registry folder. */
  dir: string;
  /** Bearer token every request must carry. */
  token: string;
  port?: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
}

export interface RunningRegistryServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

function authorized(req: IncomingMessage, token: string): boolean {
  const h = req.headers.authorization ?? '';
  const m = /^Bearer (.+)$/.exec(h);
  if (!m) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

const SAFE_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function artifactFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => SAFE_FILE.test(f))
    .sort();
}

function sendFile(
  req: IncomingMessage,
  res: ServerResponse,
  dir: string,
  file: string,
  digest: string,
): void {
  if (!SAFE_FILE.test(file) || !artifactFiles(dir).includes(file)) {
    send(res, 404, { error: `no file ${JSON.stringify(file)} in artifact ${digest}` });
    return;
  }
  const etag = `"${digest}:${file}"`;
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, { etag });
    res.end();
    return;
  }
  const path = join(dir, file);
  res.writeHead(200, {
    'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream',
    'content-length': String(statSync(path).size),
    etag,
    'cache-control': 'public, max-age=31536000, immutable',
  });
  createReadStream(path).pipe(res);
}

/** Start the read-only registry server; resolves once it listens. */
export async function serveRegistry(o: RegistryServerOptions): Promise<RunningRegistryServer> {
  if (!o.token || o.token.length < 8)
    throw new InputError('token', 'edgefit registry serve needs --token of at least 8 characters', {
      value: 'token',
    });
  const reg = Registry.open(o.dir);
  const server = createServer((req, res) => {
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        send(res, 405, { error: 'the registry server is read-only: GET only' }, { allow: 'GET, HEAD' });
        return;
      }
      if (!authorized(req, o.token)) {
        send(res, 401, { error: 'missing or wrong bearer token' }, { 'www-authenticate': 'Bearer' });
        return;
      }
      const url = new URL(req.url ?? '/', 'http://registry');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (parts[0] !== 'v1') {
        send(res, 404, { error: `no route ${url.pathname}` });
        return;
      }
      if (parts.length === 2 && parts[1] === 'models') {
        const deployed = reg.list().filter((v) => v.state === 'deployed');
        send(
          res,
          200,
          deployed.map((v) => ({
            name: v.name,
            device: v.device,
            version: v.version,
            digest: v.digest,
            bytes: v.bytes,
            accuracy: v.accuracy,
          })),
        );
        return;
      }
      if (parts[1] === 'models' && (parts.length === 4 || (parts.length === 6 && parts[4] === 'files'))) {
        const v = reg.deployed(parts[2]!, parts[3]!);
        if (!v) {
          send(res, 404, { error: `nothing of ${parts[2]} is deployed on device ${parts[3]}` });
          return;
        }
        const dir = reg.artifactDir(v.digest);
        if (parts.length === 6) {
          sendFile(req, res, dir, parts[5]!, v.digest);
          return;
        }
        send(res, 200, {
          name: v.name,
          device: v.device,
          version: v.version,
          digest: v.digest,
          bytes: v.bytes,
          files: artifactFiles(dir),
          manifest: reg.manifest(v),
        });
        return;
      }
      if (parts[1] === 'artifacts' && parts.length === 4 && /^[0-9a-f]{64}$/.test(parts[2]!)) {
        const dir = reg.artifactDir(parts[2]!);
        if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
          send(res, 404, { error: `no artifact ${parts[2]}` });
          return;
        }
        sendFile(req, res, dir, parts[3]!, parts[2]!);
        return;
      }
      send(res, 404, { error: `no route ${url.pathname}` });
    } catch (e) {
      send(res, 500, { error: `registry error: ${(e as Error).message}` });
    }
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new InputError(
          'listen',
          `Cannot listen on ${o.host ?? '127.0.0.1'}:${o.port ?? 0}: ${e.code ?? e.message}`,
          {
            value: String(o.port ?? 0),
          },
        ),
      ),
    );
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolveListen());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (o.port ?? 0);
  return {
    server,
    url: `http://${o.host ?? '127.0.0.1'}:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => {
          reg.close();
          r();
        });
        server.closeAllConnections?.();
      }),
  };
}
