// Where served models come from. A ModelSource names the version deployed now and the file to load (an ONNX
// model, or the split.json of a backbone + heads deployment); the server asks it again on reload and on every
// poll, and loads a new session only when the version changed.
//
// Four sources exist: a path given on the command line, a registry URL (`edgefit registry serve`, whose artifacts
// are downloaded into a local cache: registry-client.ts), the pipeline's registry (a folder holding `registry.db`,
// src/pipeline/registry.ts: every version deployed there is served, under its name — `<name>.<device>` when the
// name is deployed on several devices — and a promotion or rollback is picked up on reload or poll), and a plain
// registry folder, which another tool keeps in this layout:
//
//   <registry>/<name>/deployed.json   {"version": "<any string>", "path": "<file, relative to <registry>/<name>>"}
//
// one subfolder per deployment name; `deployed.json` is replaced atomically (write a temp file, rename) when a
// version is promoted or rolled back, after the files it points to are complete. `writeDeployed` does that.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import { InputError, UnsupportedError } from '../errors.js';
import { writeAtomic } from '../util/fs.js';
import { Registry } from '../pipeline/registry.js';

export interface DeployedVersion {
  version: string;
  /** Absolute path of the file to load: an .onnx model or a split deployment's split.json. */
  path: string;
}

export interface ModelSource {
  /** The deployment name (the unit that reloads). */
  readonly name: string;
  /** For messages: where the model comes from. */
  readonly origin: string;
  /** Whether the server should poll this source for a new deployed version. */
  readonly polled: boolean;
  deployed(): Promise<DeployedVersion>;
}

export const DEPLOYED_FILE = 'deployed.json';

/** A fingerprint of the files' sizes and modification times (a rewritten model gets a new version). */
function fingerprint(paths: string[]): string {
  const h = createHash('sha256');
  for (const p of paths) {
    try {
      const s = statSync(p);
      h.update(`${p}:${s.size}:${s.mtimeMs};`);
    } catch {
      h.update(`${p}:missing;`);
    }
  }
  return h.digest('hex').slice(0, 12);
}

/**
 * The external data file written with a model (`<file>.data`, or `<file>.<hash>.data` as saveModel names it):
 * the newest such file in the model's folder, or undefined.
 */
export function dataFileOf(model: string): string | undefined {
  const dir = dirname(model);
  const base = basename(model);
  let best: { path: string; t: number } | undefined;
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  for (const n of names) {
    if (
      !n.startsWith(`${base}.`) ||
      !n.endsWith('.data') ||
      !/^(\.[0-9a-f]+)?\.data$/.test(n.slice(base.length))
    )
      continue;
    const p = join(dir, n);
    const t = statSync(p).mtimeMs;
    if (!best || t > best.t) best = { path: p, t };
  }
  return best?.path;
}

/** A model served from a path; its version is a fingerprint of the file (and its external data file). */
export function pathSource(name: string, path: string): ModelSource {
  const abs = resolve(path);
  return {
    name,
    origin: path,
    polled: false,
    async deployed() {
      if (!existsSync(abs))
        throw new InputError('model-missing', `Model file ${path} does not exist`, { file: path });
      return { version: fingerprint([abs, dataFileOf(abs) ?? `${abs}.data`]), path: abs };
    },
  };
}

function folderSource(root: string, name: string): ModelSource {
  const dir = join(root, name);
  const file = join(dir, DEPLOYED_FILE);
  return {
    name,
    origin: file,
    polled: true,
    async deployed() {
      let j: unknown;
      try {
        j = JSON.parse(readFileSync(file, 'utf8'));
      } catch (e) {
        throw new InputError('registry', `Cannot read ${file}: ${(e as Error).message}`, { file });
      }
      const o = j as { version?: unknown; path?: unknown };
      if (typeof o?.version !== 'string' || typeof o.path !== 'string' || !o.version || !o.path)
        throw new InputError('registry', `${file} must be {"version": "<string>", "path": "<file>"}`, {
          file,
        });
      const rel = normalize(o.path);
      if (isAbsolute(rel) || rel.startsWith('..'))
        throw new InputError('registry', `${file} points outside its folder: "${o.path}"`, { file });
      return { version: o.version, path: join(dir, rel) };
    },
  };
}

/** Deployment names of deployed versions: `<name>`, or `<name>.<device>` when the name is on several devices. */
export function deploymentNames(deployed: readonly { name: string; device: string }[]): string[] {
  const devices = new Map<string, number>();
  for (const v of deployed) devices.set(v.name, (devices.get(v.name) ?? 0) + 1);
  return deployed.map((v) => (devices.get(v.name)! > 1 ? `${v.name}.${v.device}` : v.name));
}

/** The versions deployed in the pipeline's SQLite registry (src/pipeline/registry.ts), one source per name/device. */
function pipelineRegistrySources(root: string, device: string | undefined): ModelSource[] {
  const reg = Registry.open(root);
  let deployed;
  try {
    deployed = reg
      .list()
      .filter((v) => v.state === 'deployed' && (device === undefined || v.device === device));
  } finally {
    reg.close();
  }
  if (deployed.length === 0)
    throw new InputError(
      'registry',
      `Registry ${root} has no deployed version${device ? ` on device ${device}` : ''} (edgefit registry promote deploys one)`,
      {
        file: root,
      },
    );
  const names = deploymentNames(deployed);
  return deployed.map((v, i) => {
    const name = names[i]!;
    return {
      name,
      origin: `${join(root, 'registry.db')} (${v.name} on ${v.device})`,
      polled: true,
      async deployed() {
        const r = Registry.open(root);
        try {
          const d = r.deployed(v.name, v.device);
          if (!d)
            throw new InputError(
              'registry',
              `Nothing of ${v.name} is deployed on ${v.device} in ${root} any more`,
              {
                file: root,
              },
            );
          return { version: String(d.version), path: r.modelPath(d) };
        } finally {
          r.close();
        }
      },
    };
  });
}

export interface RegistrySourceOptions {
  /** Bearer token of a registry URL. */
  token?: string;
  /** Cache folder for artifacts downloaded from a registry URL. */
  cacheDir?: string;
  /** Serve only this device's deployments (pipeline registry or URL). */
  device?: string;
}

/**
 * Every deployment of a registry: a `edgefit registry serve` URL (registry-client.ts), the pipeline's registry
 * folder, or subfolders holding a deployed.json.
 */
export async function registrySources(
  registry: string,
  o: RegistrySourceOptions = {},
): Promise<ModelSource[]> {
  if (/^https?:\/\//i.test(registry)) {
    const { urlRegistrySources } = await import('./registry-client.js');
    return urlRegistrySources({ url: registry, token: o.token, cacheDir: o.cacheDir, device: o.device });
  }
  if (existsSync(join(registry, 'registry.db'))) return pipelineRegistrySources(registry, o.device);
  if (o.device !== undefined)
    throw new UnsupportedError(
      'registry-device',
      `--device ${o.device}: registry folder ${registry} has no registry.db, so its deployments have no device`,
      { value: o.device },
    );
  let names: string[];
  try {
    names = readdirSync(registry).filter((n) => existsSync(join(registry, n, DEPLOYED_FILE)));
  } catch (e) {
    throw new InputError('registry', `Cannot read registry folder ${registry}: ${(e as Error).message}`, {
      file: registry,
    });
  }
  if (names.length === 0)
    throw new InputError('registry', `Registry folder ${registry} has no <name>/${DEPLOYED_FILE}`, {
      file: registry,
    });
  return names.sort().map((n) => folderSource(registry, n));
}

/** Point a registry folder's deployment at a version (atomically). `path` is relative to `<registry>/<name>`. */
export function writeDeployed(registry: string, name: string, version: string, path: string): void {
  writeAtomic(join(registry, name, DEPLOYED_FILE), `${JSON.stringify({ version, path })}\n`);
}
