// `edgefit serve --registry http(s)://…`: the client of `edgefit registry serve` (src/pipeline/registry-server.ts).
//
//   GET /v1/models                        which versions are deployed (one deployment per name and device)
//   GET /v1/models/{name}/{device}        the deployed version now: { version, digest, files }
//   GET /v1/artifacts/{digest}/{file}     the artifact's files by content address (immutable)
//
// Each deployed artifact is downloaded once into a local cache folder, `<cache>/<digest>/`: its files go into a
// hidden temp folder, the model's digest (sha256 of its canonical encoding, as the registry computes it) is checked,
// and only then is the folder renamed into place, so a cache folder is complete and verified or absent. A folder
// already there is reused when its digest still matches (checked once per process); otherwise it is fetched again.
// The server asks `deployed()` on every poll and on POST /admin/reload: a promotion or rollback changes the version,
// the new artifact is fetched, and the server's hot reload switches to it. While the registry is unreachable the
// server keeps serving what it has (the poll logs the error).
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InputError } from '../errors.js';
import { fileDigest } from '../pipeline/registry.js';
import { type DeployedVersion, type ModelSource, deploymentNames } from './registry.js';
import { userCacheDir } from '../util/cache.js';

export interface RemoteRegistryOptions {
  /** Base URL of `edgefit registry serve`. */
  url: string;
  /** Its bearer token. */
  token?: string;
  /** Where downloaded artifacts are kept (default: $EDGEFIT_CACHE/registry or ~/.cache/edgefit/registry). */
  cacheDir?: string;
  /** Serve only the deployments of this device. */
  device?: string;
  /** Per request (default 30 s for metadata; downloads are not limited). */
  timeoutMs?: number;
}

interface DeployedEntry {
  name: string;
  device: string;
  version: number;
  digest: string;
}

interface DeployedMeta extends DeployedEntry {
  files: string[];
  bytes: number;
}

/** Where downloaded artifacts go by default: $EDGEFIT_CACHE, else ~/.cache/edgefit, then `registry/`. */
export function defaultRegistryCache(): string {
  return userCacheDir('registry');
}

const DIGEST = /^[0-9a-f]{64}$/;
const SAFE_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export class RegistryClient {
  readonly base: string;
  readonly cacheDir: string;
  /** Digests whose cache folder this process has verified. */
  private readonly verified = new Set<string>();
  /** Downloads in flight, by digest (two deployments of one artifact share one download). */
  private readonly fetching = new Map<string, Promise<string>>();

  constructor(private readonly o: RemoteRegistryOptions) {
    this.base = o.url.replace(/\/+$/, '');
    this.cacheDir = o.cacheDir ?? defaultRegistryCache();
  }

  private async get(path: string, timeout = true): Promise<Response> {
    const url = `${this.base}${path}`;
    let r: Response;
    try {
      r = await fetch(url, {
        headers: this.o.token ? { authorization: `Bearer ${this.o.token}` } : {},
        signal: timeout ? AbortSignal.timeout(this.o.timeoutMs ?? 30_000) : undefined,
      });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const why = err.cause?.code ?? err.cause?.message ?? err.message;
      throw new InputError(
        'registry-unreachable',
        `Cannot reach the registry at ${this.base}: ${why} (GET ${url})`,
        {
          value: this.base,
        },
      );
    }
    if (r.ok) return r;
    let detail = '';
    try {
      detail = ((await r.json()) as { error?: string }).error ?? '';
    } catch {
      /* not JSON */
    }
    const hint =
      r.status === 401
        ? ' (give its token with --registry-token or EDGEFIT_REGISTRY_TOKEN)'
        : detail
          ? `: ${detail}`
          : '';
    throw new InputError(
      'registry-http',
      `Registry ${this.base} answered ${r.status} to GET ${path}${hint}`,
      {
        value: url,
      },
    );
  }

  private async json<T>(path: string): Promise<T> {
    const r = await this.get(path);
    try {
      return (await r.json()) as T;
    } catch (e) {
      throw new InputError(
        'registry-http',
        `Registry ${this.base}: GET ${path} is not JSON: ${(e as Error).message}`,
        { value: this.base },
      );
    }
  }

  /** The deployed versions (of `device`, when given). */
  async list(): Promise<DeployedEntry[]> {
    const all = await this.json<DeployedEntry[]>('/v1/models');
    if (!Array.isArray(all))
      throw new InputError('registry-http', `Registry ${this.base}: GET /v1/models is not a list`, {
        value: this.base,
      });
    return all.filter((v) => this.o.device === undefined || v.device === this.o.device);
  }

  /** The version deployed now for a name on a device. */
  async deployed(name: string, device: string): Promise<DeployedMeta> {
    const m = await this.json<DeployedMeta>(
      `/v1/models/${encodeURIComponent(name)}/${encodeURIComponent(device)}`,
    );
    if (
      typeof m?.digest !== 'string' ||
      !DIGEST.test(m.digest) ||
      !Array.isArray(m.files) ||
      !m.files.includes('model.onnx') ||
      !m.files.every((f) => typeof f === 'string' && SAFE_FILE.test(f))
    )
      throw new InputError(
        'registry-http',
        `Registry ${this.base}: the deployed version of ${name} on ${device} has no digest or model.onnx`,
        { value: this.base },
      );
    return m;
  }

  /** The local model.onnx of an artifact: the cached copy when its digest matches, else downloaded and checked. */
  artifact(meta: DeployedMeta): Promise<string> {
    const pending = this.fetching.get(meta.digest);
    if (pending) return pending;
    const p = this.ensure(meta).finally(() => this.fetching.delete(meta.digest));
    this.fetching.set(meta.digest, p);
    return p;
  }

  private async ensure(meta: DeployedMeta): Promise<string> {
    const dir = join(this.cacheDir, meta.digest);
    const model = join(dir, 'model.onnx');
    if (existsSync(model)) {
      if (this.verified.has(meta.digest)) return model;
      if (digestOf(model) === meta.digest) {
        this.verified.add(meta.digest);
        return model;
      }
      // a damaged cache folder: fetch it again
      rmSync(dir, { recursive: true, force: true });
    }
    mkdirSync(this.cacheDir, { recursive: true });
    removeDeadTemps(this.cacheDir);
    const tmp = join(this.cacheDir, `.${meta.digest}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    mkdirSync(tmp);
    try {
      for (const f of meta.files) {
        const path = `/v1/artifacts/${meta.digest}/${encodeURIComponent(f)}`;
        const r = await this.get(path, false);
        const target = join(tmp, f);
        await pipeline(Readable.fromWeb(r.body! as never), createWriteStream(target));
        const expected = Number(r.headers.get('content-length') ?? NaN);
        const got = statSync(target).size;
        if (Number.isFinite(expected) && expected !== got)
          throw new InputError(
            'registry-download',
            `Registry ${this.base}: ${f} of ${meta.digest} arrived with ${got} of ${expected} bytes`,
            { value: `${this.base}${path}` },
          );
      }
      const got = digestOf(join(tmp, 'model.onnx'));
      if (got !== meta.digest)
        throw new InputError(
          'registry-digest',
          `Registry ${this.base}: the model of ${meta.name} version ${meta.version} has digest ${got}, not ${meta.digest}`,
          { value: this.base },
        );
      try {
        renameSync(tmp, dir);
      } catch (e) {
        // another process put the same artifact there first: theirs is verified too
        if (!existsSync(model)) throw e;
        rmSync(tmp, { recursive: true, force: true });
      }
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      if (e instanceof InputError) throw e;
      throw new InputError(
        'registry-download',
        `Cannot download ${meta.digest} from registry ${this.base} into ${this.cacheDir}: ${(e as Error).message}`,
        { value: this.base },
      );
    }
    this.verified.add(meta.digest);
    return model;
  }
}

function digestOf(model: string): string | undefined {
  try {
    return fileDigest(model);
  } catch {
    return undefined;
  }
}

/** Remove temp folders of processes that no longer run (a download killed half way). */
function removeDeadTemps(cache: string): void {
  for (const n of readdirSync(cache)) {
    const m = /^\.[0-9a-f]{64}\.(\d+)-[0-9a-f]+\.tmp$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = pid === process.pid;
    if (!alive)
      try {
        process.kill(pid, 0);
        alive = true;
      } catch (e) {
        alive = (e as NodeJS.ErrnoException).code === 'EPERM';
      }
    if (!alive) rmSync(join(cache, n), { recursive: true, force: true });
  }
}

/**
 * One source per deployed name and device of a registry server, named like the folder registry's deployments
 * (`<name>`, or `<name>.<device>` when the name is deployed on several devices).
 */
export async function urlRegistrySources(o: RemoteRegistryOptions): Promise<ModelSource[]> {
  const client = new RegistryClient(o);
  const deployed = await client.list();
  if (deployed.length === 0)
    throw new InputError(
      'registry',
      `Registry ${client.base} has nothing deployed${o.device ? ` on device ${o.device}` : ''} (edgefit registry promote deploys a version)`,
      { value: client.base },
    );
  const names = deploymentNames(deployed);
  return deployed.map((v, i) => ({
    name: names[i]!,
    origin: `${client.base} (${v.name} on ${v.device})`,
    polled: true,
    async deployed(): Promise<DeployedVersion> {
      const meta = await client.deployed(v.name, v.device);
      return { version: String(meta.version), path: await client.artifact(meta) };
    },
  }));
}
