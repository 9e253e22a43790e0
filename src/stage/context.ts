// What a stage runs with: the run's data sources (opened lazily, closed once, each with its role), the seeded
// calibration sample, the seeded train/validation split, an evaluation function on the labelled evaluation data
// (results cached per model), the gates, and the run's seed, threads and log. One context serves a whole run of
// stages, so the calibration sample, the training rows and the baseline's accuracy are computed once.
import {
  defaultValRows,
  materialize,
  permutation,
  sampleFeeds,
  splitValidation,
  subset,
  take,
  type DataSource,
  type Dataset,
  type FeedBatch,
} from '../data/index.js';
import { DataError, InputError } from '../errors.js';
import { evaluate, type EvalResult } from '../eval/index.js';
import type { Model } from '../ir/index.js';
import type { GateSpec } from '../eval/gates.js';
import type { DeviceProfile, Stage, StageNeed, StageResult } from './types.js';

/** A data source, or a function that opens it when a stage first asks (its errors then reach that stage). */
export type DataRef = DataSource | (() => Promise<DataSource>);

export type DataRole = 'calibration' | 'train' | 'validation' | 'eval';

export interface StageData {
  /** Calibration items (labels not needed). Default: the train data, else the evaluation data. */
  calibration?: DataRef;
  /** Labelled training rows (QAT, fine-tuning, distillation). */
  train?: DataRef;
  /** Labelled validation rows; default: rows held out of `train` (seeded). */
  validation?: DataRef;
  /** Labelled rows accuracy and the gates are measured on (never trained on). */
  eval?: DataRef;
}

export interface ContextOptions {
  data?: StageData;
  /** Seed of every random choice: calibration sample, training subset, validation split, shuffling. Default 0. */
  seed?: number;
  threads?: number;
  gates?: GateSpec;
  teacher?: Model;
  device?: DeviceProfile;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
  /** No progress bars. Default true (a library caller opts in). */
  quiet?: boolean;
  /** What the model is (its file), for messages. */
  modelName?: string;
  /** Calibration items drawn (default 512). */
  calibrationSamples?: number;
  /** Training rows used (a seeded subset: class-balanced for a built-in split, random otherwise). */
  trainLimit?: number;
  /** Training rows held out for validation when no validation data is given (default 5,000, or 10 % below 50,000). */
  valRows?: number;
  /** Batch size of evaluations (default 256). */
  evalBatchSize?: number;
}

/** Training rows in memory, with the validation rows. */
export interface TrainingRows {
  train: Dataset;
  val?: Dataset;
  /** What the rows are, for messages and reports. */
  name: string;
}

export class StageContext {
  readonly seed: number;
  readonly threads: number | undefined;
  readonly gates: GateSpec;
  readonly teacher: Model | undefined;
  readonly device: DeviceProfile | undefined;
  readonly log: (line: string) => void;
  readonly quiet: boolean;
  readonly calibrationSamples: number;
  /** What the model is (its file), for messages; "the model" when not given. */
  readonly modelName: string;
  private readonly refs: StageData;
  private readonly opened = new Map<DataRole, Promise<DataSource>>();
  private readonly evals = new WeakMap<Model, Promise<EvalResult>>();
  private calib?: Promise<FeedBatch[]>;
  private rows?: Promise<TrainingRows>;
  private readonly opts: ContextOptions;

  constructor(o: ContextOptions = {}) {
    this.opts = o;
    this.refs = { ...(o.data ?? {}) };
    this.seed = o.seed ?? 0;
    this.threads = o.threads;
    this.gates = o.gates ?? {};
    this.teacher = o.teacher;
    this.device = o.device;
    this.log = o.log ?? (() => {});
    this.quiet = o.quiet ?? true;
    this.calibrationSamples = o.calibrationSamples ?? 512;
    this.modelName = o.modelName ?? 'the model';
  }

  /** Whether the run can give what `need` names. */
  has(need: StageNeed): boolean {
    switch (need) {
      case 'calibration':
        return !!(this.refs.calibration ?? this.refs.train ?? this.refs.eval);
      case 'train':
        return !!this.refs.train;
      case 'eval':
        return !!this.refs.eval;
      case 'teacher':
        return !!this.teacher;
      case 'device':
        return !!this.device;
    }
  }

  hasData(role: DataRole): boolean {
    return !!this.refs[role];
  }

  /** The data source of a role (opened on first use, closed by close()). InputError when the run has none. */
  source(role: DataRole): Promise<DataSource> {
    const ref =
      role === 'calibration' ? (this.refs.calibration ?? this.refs.train ?? this.refs.eval) : this.refs[role];
    if (!ref)
      return Promise.reject(
        new InputError('data-missing', `no ${role === 'eval' ? 'evaluation' : role} data was given`, {
          value: role,
        }),
      );
    // calibration falls back to the train (else eval) source: the same opened source, not a second one
    if (role === 'calibration' && !this.refs.calibration) role = this.refs.train ? 'train' : 'eval';
    let p = this.opened.get(role);
    if (!p) {
      p = typeof ref === 'function' ? ref() : Promise.resolve(ref);
      this.opened.set(role, p);
    }
    return p;
  }

  /** The seeded calibration sample (`calibrationSamples` items in item order), as feed batches; drawn once. */
  calibration(): Promise<FeedBatch[]> {
    this.calib ??= (async () => {
      const src = await this.source('calibration');
      const t0 = performance.now();
      const feeds = await sampleFeeds(src, this.calibrationSamples, this.seed);
      const n = feeds.reduce((a, f) => a + (Object.values(f)[0]?.dims[0] ?? 0), 0);
      checkCalibrationFeeds(feeds, n, src);
      this.log(
        `calibration set: ${n} item(s) of ${src.name}${src.format === 'builtin' ? ' (train split)' : ''} in ${((performance.now() - t0) / 1000).toFixed(2)} s`,
      );
      return feeds;
    })();
    return this.calib;
  }

  /**
   * Training rows in memory (materialised with the 4 GiB cap: shuffling needs random access), `trainLimit` of them
   * (seeded), and the validation rows: the validation data when given, else `valRows` held out (seeded).
   */
  trainingRows(): Promise<TrainingRows> {
    this.rows ??= (async () => {
      const src = await this.source('train');
      let full = await materialize(src, 'train');
      const limit = this.opts.trainLimit;
      let name = src.name;
      if (limit !== undefined && limit < full.n) {
        full =
          src.format === 'builtin'
            ? subset(full, limit, this.seed)
            : take(
                full,
                Array.from(permutation(full.n, this.seed).subarray(0, limit)).sort((a, b) => a - b),
              );
      }
      if (src.format === 'builtin')
        name = `${src.name} (train split${limit !== undefined ? `, ${full.n} rows` : ''})`;
      if (this.refs.validation) {
        const v = await this.source('validation');
        return { train: full, val: await materialize(v, 'train'), name };
      }
      const valRows = this.opts.valRows ?? defaultValRows(full.n);
      const s = splitValidation(full, valRows, this.seed);
      return s.val ? { train: s.train, val: s.val, name } : { train: s.train, name };
    })();
    return this.rows;
  }

  /** Accuracy, per-class figures and confusion of `model` on the evaluation data (once per model object). */
  evaluate(model: Model): Promise<EvalResult> {
    let p = this.evals.get(model);
    if (!p) {
      p = (async () =>
        evaluate(model, await this.source('eval'), {
          threads: this.threads,
          batchSize: this.opts.evalBatchSize ?? 256,
          label: 'a candidate model',
        }))();
      this.evals.set(model, p);
    }
    return p;
  }

  /** Accuracy (0–1) of `model` on the evaluation data. */
  async score(model: Model): Promise<number> {
    return (await this.evaluate(model)).accuracy;
  }

  /** Close every source this context opened. */
  async close(): Promise<void> {
    const all = [...this.opened.values()];
    this.opened.clear();
    for (const p of all) {
      const src = await p.catch(() => undefined);
      await src?.close();
    }
  }
}

export function createContext(o: ContextOptions = {}): StageContext {
  return new StageContext(o);
}

const NEED_TEXT: Record<StageNeed, string> = {
  calibration: 'calibration data',
  train: 'labelled training data',
  eval: 'labelled evaluation data',
  teacher: 'a teacher model',
  device: 'a device profile',
};

/**
 * Run one stage after checking its needs (an InputError naming the stage and what is missing). The result has the
 * stage's own result type (a stage may return more than the contract's model and report).
 */
export async function runStage<S extends Stage<unknown>>(
  stage: S,
  model: Model,
  ctx: StageContext,
): Promise<Awaited<ReturnType<S['run']>>> {
  const missing = stage.needs.filter((n) => !ctx.has(n));
  if (missing.length)
    throw new InputError(
      'stage-needs',
      `stage ${stage.name} needs ${missing.map((n) => NEED_TEXT[n]).join(' and ')}`,
      { value: stage.name },
    );
  return (await stage.run(model, ctx)) as Awaited<ReturnType<S['run']>>;
}

/** Run stages in order, each on the previous one's model. */
export async function runStages(
  stages: readonly Stage<unknown>[],
  model: Model,
  ctx: StageContext,
): Promise<{ model: Model; reports: StageResult['report'][] }> {
  const reports = [];
  let m = model;
  for (const s of stages) {
    const r = await runStage(s, m, ctx);
    m = r.model;
    reports.push(r.report);
  }
  return { model: m, reports };
}

/** Calibration items that cannot calibrate: none at all (every image corrupt), or NaN/Inf values. */
function checkCalibrationFeeds(feeds: FeedBatch[], n: number, src: DataSource): void {
  if (n === 0) {
    const sk = src.skipped;
    throw new DataError(
      'calib-empty',
      `${src.name} gave no calibration items${
        sk.length
          ? ` (${sk.length} skipped: ${sk
              .slice(0, 3)
              .map((s) => `${s.file} — ${s.reason}`)
              .join('; ')})`
          : ''
      }`,
      { file: src.name },
    );
  }
  let item = 0;
  for (const f of feeds) {
    const rows = Object.values(f)[0]?.dims[0] ?? 0;
    for (const [name, t] of Object.entries(f)) {
      if (t.dtype !== 'float32') continue;
      const per = rows ? t.data.length / rows : 0;
      const d = t.data as Float32Array;
      for (let i = 0; i < d.length; i++)
        if (!Number.isFinite(d[i]!))
          throw new DataError(
            'calib-nonfinite',
            `${src.name}: calibration item ${item + Math.floor(i / per)} of the seeded sample holds ${d[i]} in input "${name}": calibration data must be finite`,
            { file: src.name, value: name },
          );
    }
    item += rows;
  }
}
