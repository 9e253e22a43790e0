// The model registry: a real SQLite database (`registry.db`, every change one transaction) next to a
// content-addressed artifact folder (`artifacts/<sha256>/model.onnx` + `manifest.json`). A version belongs to a
// model name and a device; its state is candidate, deployed, superseded (was deployed, replaced by a promotion)
// or rolled-back. At most one version per name and device is deployed: promote and rollback keep that in one
// transaction, and every change of state is kept in an event log.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { InputError } from '../errors.js';
import type { Model } from '../ir/index.js';
import { encodeModel, loadModel, saveModel } from '../onnx/index.js';
import { writeAtomic } from '../util/fs.js';

export type VersionState = 'candidate' | 'deployed' | 'superseded' | 'rolled-back';

export interface RegistryVersion {
  name: string;
  device: string;
  version: number;
  /** sha256 of the model's canonical (inline) encoding: the artifact's address. */
  digest: string;
  state: VersionState;
  /** Model file + external data bytes. */
  bytes: number;
  accuracy: number | null;
  createdAt: string;
  updatedAt: string;
}

export interface RegistryEvent {
  name: string;
  device: string;
  version: number;
  action: 'register' | 'promote' | 'rollback';
  from: VersionState | null;
  to: VersionState;
  at: string;
}

/** A version reference: `name@version`, `name@deployed` or `name` (the newest version). */
export interface VersionRef {
  name: string;
  device: string;
  version?: number | 'deployed' | 'latest';
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS versions (
  name TEXT NOT NULL,
  device TEXT NOT NULL,
  version INTEGER NOT NULL,
  digest TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('candidate', 'deployed', 'superseded', 'rolled-back')),
  bytes INTEGER NOT NULL,
  accuracy REAL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (name, device, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_deployed ON versions (name, device) WHERE state = 'deployed';
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  device TEXT NOT NULL,
  version INTEGER NOT NULL,
  action TEXT NOT NULL,
  from_state TEXT,
  to_state TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

const REGISTRY_FORMAT = '1';

function rowToVersion(r: any): RegistryVersion {
  return {
    name: r.name,
    device: r.device,
    version: r.version,
    digest: r.digest,
    state: r.state,
    bytes: r.bytes,
    accuracy: r.accuracy,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** `name@3`, `name@deployed`, `name@latest` or `name` → a reference on `device`. */
export function parseRef(ref: string, device: string): VersionRef {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)(?:@(\d+|deployed|latest))?$/.exec(ref);
  if (!m)
    throw new InputError(
      'registry-ref',
      `"${ref}" is not a registry reference: expected <name>, <name>@<version>, <name>@deployed or <name>@latest`,
      { value: ref },
    );
  const v = m[2];
  return {
    name: m[1]!,
    device,
    version: v === undefined ? 'latest' : /^\d+$/.test(v) ? Number(v) : (v as any),
  };
}

function refText(ref: VersionRef): string {
  return `${ref.name}@${ref.version ?? 'latest'} (device ${ref.device})`;
}

export class Registry {
  readonly dir: string;
  private readonly db: Database.Database;

  private constructor(dir: string, db: Database.Database) {
    this.dir = dir;
    this.db = db;
  }

  /** Open (creating when `create`) the registry in `dir`. */
  static open(dir: string, opts: { create?: boolean } = {}): Registry {
    const abs = resolve(dir);
    const dbFile = join(abs, 'registry.db');
    if (!existsSync(dbFile)) {
      if (!opts.create)
        throw new InputError('registry', `No registry at ${dir} (expected ${join(dir, 'registry.db')})`, {
          file: dir,
        });
      try {
        mkdirSync(join(abs, 'artifacts'), { recursive: true });
      } catch (e) {
        throw new InputError(
          'registry',
          `Cannot create the registry folder ${dir}: ${(e as Error).message}`,
          {
            file: dir,
          },
        );
      }
    } else if (!statSync(join(abs, 'artifacts'), { throwIfNoEntry: false })?.isDirectory()) {
      mkdirSync(join(abs, 'artifacts'), { recursive: true });
    }
    let db: Database.Database;
    try {
      db = new Database(dbFile);
      db.pragma('journal_mode = WAL');
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
      const fmt = db.prepare(`SELECT value FROM meta WHERE key = 'format'`).get() as
        { value: string } | undefined;
      if (!fmt) db.prepare(`INSERT INTO meta (key, value) VALUES ('format', ?)`).run(REGISTRY_FORMAT);
      else if (fmt.value !== REGISTRY_FORMAT)
        throw new InputError(
          'registry',
          `Registry ${dir} has format ${fmt.value}; this edgefit reads format ${REGISTRY_FORMAT}`,
          { file: dir },
        );
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw new InputError(
        'registry',
        `Cannot open the registry database ${dbFile}: ${(e as Error).message}`,
        {
          file: dbFile,
        },
      );
    }
    return new Registry(abs, db);
  }

  close(): void {
    this.db.close();
  }

  /** Folder of an artifact. */
  artifactDir(digest: string): string {
    return join(this.dir, 'artifacts', digest);
  }

  /** Path of a version's model file. */
  modelPath(v: Pick<RegistryVersion, 'digest'>): string {
    return join(this.artifactDir(v.digest), 'model.onnx');
  }

  manifestPath(v: Pick<RegistryVersion, 'digest'>): string {
    return join(this.artifactDir(v.digest), 'manifest.json');
  }

  /** The manifest stored with a version. */
  manifest(v: Pick<RegistryVersion, 'digest'>): Record<string, unknown> {
    return JSON.parse(readFileSync(this.manifestPath(v), 'utf8'));
  }

  /**
   * Register a model as a new candidate version of `name` on `device`, storing the artifact (model with external
   * data aligned to 4096 so servers can map it, and its manifest) under its content address. Registering the same
   * model again adds a version pointing at the same artifact.
   */
  register(
    model: Model,
    manifest: Record<string, unknown>,
    opts: { name: string; device: string; accuracy?: number },
  ): RegistryVersion {
    const digest = modelDigest(model);
    const dir = this.artifactDir(digest);
    if (!existsSync(join(dir, 'manifest.json'))) {
      // Written into a temp folder and renamed: an artifact folder is complete or absent.
      const tmp = join(this.dir, 'artifacts', `.${digest}.${process.pid}.${Date.now()}.tmp`);
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });
      saveModel(model, join(tmp, 'model.onnx'), { externalData: true, align: 4096 });
      writeAtomic(join(tmp, 'manifest.json'), JSON.stringify({ ...manifest, digest }, null, 2) + '\n');
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
    }
    const bytes = artifactBytes(dir);
    const now = new Date().toISOString();
    const insert = this.db.transaction(() => {
      const row = this.db
        .prepare(`SELECT COALESCE(MAX(version), 0) AS v FROM versions WHERE name = ? AND device = ?`)
        .get(opts.name, opts.device) as { v: number };
      const version = row.v + 1;
      this.db
        .prepare(
          `INSERT INTO versions (name, device, version, digest, state, bytes, accuracy, created_at, updated_at)
           VALUES (?, ?, ?, ?, 'candidate', ?, ?, ?, ?)`,
        )
        .run(opts.name, opts.device, version, digest, bytes, opts.accuracy ?? null, now, now);
      this.logEvent(opts.name, opts.device, version, 'register', null, 'candidate', now);
      return version;
    });
    const version = insert();
    return this.get({ name: opts.name, device: opts.device, version });
  }

  private logEvent(
    name: string,
    device: string,
    version: number,
    action: RegistryEvent['action'],
    from: VersionState | null,
    to: VersionState,
    at: string,
  ): void {
    this.db
      .prepare(
        `INSERT INTO events (name, device, version, action, from_state, to_state, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(name, device, version, action, from, to, at);
  }

  /** Versions, newest first, optionally of one name and/or device. */
  list(filter: { name?: string; device?: string } = {}): RegistryVersion[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM versions WHERE (? IS NULL OR name = ?) AND (? IS NULL OR device = ?)
         ORDER BY name, device, version DESC`,
      )
      .all(filter.name ?? null, filter.name ?? null, filter.device ?? null, filter.device ?? null);
    return rows.map(rowToVersion);
  }

  /** The deployed version of a name on a device, if any. */
  deployed(name: string, device: string): RegistryVersion | undefined {
    const r = this.db
      .prepare(`SELECT * FROM versions WHERE name = ? AND device = ? AND state = 'deployed'`)
      .get(name, device);
    return r ? rowToVersion(r) : undefined;
  }

  /** Resolve a reference; an unknown one is an InputError naming it and what the registry has. */
  get(ref: VersionRef): RegistryVersion {
    let r: any;
    if (ref.version === 'deployed') {
      r = this.deployed(ref.name, ref.device);
      if (!r)
        throw new InputError('registry-ref', `Nothing of ${ref.name} is deployed on device ${ref.device}`, {
          value: refText(ref),
        });
      return r;
    }
    if (ref.version === undefined || ref.version === 'latest')
      r = this.db
        .prepare(`SELECT * FROM versions WHERE name = ? AND device = ? ORDER BY version DESC LIMIT 1`)
        .get(ref.name, ref.device);
    else
      r = this.db
        .prepare(`SELECT * FROM versions WHERE name = ? AND device = ? AND version = ?`)
        .get(ref.name, ref.device, ref.version);
    if (!r) {
      const have = this.list({ name: ref.name, device: ref.device })
        .map((v) => v.version)
        .sort((a, b) => a - b);
      throw new InputError(
        'registry-ref',
        `The registry has no ${refText(ref)}${have.length ? `: it has versions ${have.join(', ')}` : `: it has no versions of ${ref.name} on ${ref.device}`}`,
        { value: refText(ref) },
      );
    }
    return rowToVersion(r);
  }

  /** State changes, oldest first. */
  events(filter: { name?: string; device?: string } = {}): RegistryEvent[] {
    return (
      this.db
        .prepare(
          `SELECT * FROM events WHERE (? IS NULL OR name = ?) AND (? IS NULL OR device = ?) ORDER BY id`,
        )
        .all(filter.name ?? null, filter.name ?? null, filter.device ?? null, filter.device ?? null) as any[]
    ).map((r) => ({
      name: r.name,
      device: r.device,
      version: r.version,
      action: r.action,
      from: r.from_state,
      to: r.to_state,
      at: r.at,
    }));
  }

  /** The newest version of a name on a device whose artifact is `digest`, if any. */
  findByDigest(name: string, device: string, digest: string): RegistryVersion | undefined {
    const r = this.db
      .prepare(
        `SELECT * FROM versions WHERE name = ? AND device = ? AND digest = ? ORDER BY version DESC LIMIT 1`,
      )
      .get(name, device, digest);
    return r ? rowToVersion(r) : undefined;
  }

  /** Make a version the deployed one of its name and device; the one deployed before becomes superseded. */
  promote(ref: VersionRef): { deployed: RegistryVersion; previous?: RegistryVersion } {
    const v = this.get(ref);
    const now = new Date().toISOString();
    const previous = this.deployed(v.name, v.device);
    if (previous && previous.version === v.version) return { deployed: v, previous: undefined };
    this.db.transaction(() => {
      if (previous) {
        this.setState(previous, 'superseded', now);
        this.logEvent(v.name, v.device, previous.version, 'promote', 'deployed', 'superseded', now);
      }
      this.setState(v, 'deployed', now);
      this.logEvent(v.name, v.device, v.version, 'promote', v.state, 'deployed', now);
    })();
    return { deployed: this.get({ ...ref, version: v.version }), previous };
  }

  /**
   * Roll back the deployed version of a name on a device: it becomes rolled-back and the version deployed before
   * it (the newest superseded one) is deployed again.
   */
  rollback(name: string, device: string): { deployed: RegistryVersion; rolledBack: RegistryVersion } {
    const current = this.deployed(name, device);
    if (!current)
      throw new InputError(
        'registry-ref',
        `Nothing of ${name} is deployed on device ${device}: nothing to roll back`,
        {
          value: `${name}@deployed`,
        },
      );
    // The version deployed before this one: the last 'superseded' event of a version other than this.
    const before = this.db
      .prepare(
        `SELECT v.* FROM events e JOIN versions v ON v.name = e.name AND v.device = e.device AND v.version = e.version
         WHERE e.name = ? AND e.device = ? AND e.to_state = 'superseded' AND v.state = 'superseded' AND v.version != ?
         ORDER BY e.id DESC LIMIT 1`,
      )
      .get(name, device, current.version);
    if (!before)
      throw new InputError(
        'registry-ref',
        `${name}@${current.version} is the first version deployed on ${device}: there is no earlier one to roll back to`,
        { value: `${name}@${current.version}` },
      );
    const prev = rowToVersion(before);
    const now = new Date().toISOString();
    this.db.transaction(() => {
      this.setState(current, 'rolled-back', now);
      this.logEvent(name, device, current.version, 'rollback', 'deployed', 'rolled-back', now);
      this.setState(prev, 'deployed', now);
      this.logEvent(name, device, prev.version, 'rollback', 'superseded', 'deployed', now);
    })();
    return {
      deployed: this.get({ name, device, version: prev.version }),
      rolledBack: this.get({ name, device, version: current.version }),
    };
  }

  private setState(v: RegistryVersion, state: VersionState, at: string): void {
    this.db
      .prepare(`UPDATE versions SET state = ?, updated_at = ? WHERE name = ? AND device = ? AND version = ?`)
      .run(state, at, v.name, v.device, v.version);
  }

  /** Two versions side by side: size, accuracy, per-class recall and the stages that made them. */
  diff(a: VersionRef, b: VersionRef): RegistryDiff {
    const va = this.get(a);
    const vb = this.get(b);
    const ma = this.manifest(va) as any;
    const mb = this.manifest(vb) as any;
    const ra: number[] = ma?.candidate?.perClassRecall ?? [];
    const rb: number[] = mb?.candidate?.perClassRecall ?? [];
    const perClassRecall: RegistryDiff['perClassRecall'] = {};
    for (let c = 0; c < Math.max(ra.length, rb.length); c++)
      perClassRecall[String(c)] = { a: ra[c] ?? null, b: rb[c] ?? null };
    return {
      a: va,
      b: vb,
      sameArtifact: va.digest === vb.digest,
      bytes: { a: va.bytes, b: vb.bytes, ratio: va.bytes > 0 ? vb.bytes / va.bytes : null },
      accuracy: {
        a: va.accuracy,
        b: vb.accuracy,
        dropPoints: va.accuracy !== null && vb.accuracy !== null ? (va.accuracy - vb.accuracy) * 100 : null,
      },
      perClassRecall,
      stages: {
        a: (ma?.stages ?? []).map((s: any) => s.name),
        b: (mb?.stages ?? []).map((s: any) => s.name),
      },
    };
  }
}

export interface RegistryDiff {
  a: RegistryVersion;
  b: RegistryVersion;
  sameArtifact: boolean;
  bytes: { a: number; b: number; ratio: number | null };
  accuracy: { a: number | null; b: number | null; dropPoints: number | null };
  perClassRecall: Record<string, { a: number | null; b: number | null }>;
  stages: { a: string[]; b: string[] };
}

/** sha256 of the model's canonical inline encoding (independent of where its data file lives). */
export function modelDigest(model: Model): string {
  return createHash('sha256').update(encodeModel(model)).digest('hex');
}

/** sha256 of a model file's canonical encoding. */
export function fileDigest(path: string): string {
  return modelDigest(loadModel(path));
}

/** Bytes of an artifact's model file and its data files (everything but the manifest). */
function artifactBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) if (f !== 'manifest.json') n += statSync(join(dir, f)).size;
  return n;
}
