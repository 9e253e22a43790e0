// The pipeline runner: `edgefit pipeline run <edgefit.yaml>`.
//
// 1. The source model (a path, or `registry:<name>[@<version>]`) and the data named in the config.
// 2. Each stage of the config in order, through the library's stage contract (src/stage). Every stage output is
//    cached under a content hash of (input model, stage name and options, the data it reads, seed, tool version),
//    written atomically when the stage finishes: a rerun with nothing changed reuses every stage, a changed
//    upstream model reruns what follows, and a run killed mid-stage resumes from the last finished stage.
// 3. The baseline (the source model), the candidate (the last stage's output) and the version deployed for this
//    name and device in the registry are evaluated on the same evaluation data (evaluations cached by model digest).
// 4. The gates (src/eval/gates.ts): minimum accuracy, drop vs baseline, drop vs deployed, per-slice recall, bytes,
//    peak memory, latency — limits from the config, peak memory and latency defaulting to the device profile.
// 5. A manifest (manifest.ts) and an HTML report (report.ts) in the run folder; the candidate is registered, and
//    promoted when every gate passes.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openData, type DataSource } from '../data/index.js';
import { InputError, UnsupportedError } from '../errors.js';
import { checkGates, type GateResult, type GateSpec, type Measures } from '../eval/gates.js';
import type { Model } from '../ir/index.js';
import { encodeModel, loadModel, saveModel } from '../onnx/index.js';
import { passesByName } from '../passes/index.js';
import { createContext, runStage, type StageContext } from '../stage/context.js';
import { optimizeStage } from '../stage/optimize.js';
import { autoStage, qatStage, quantizeStage } from '../stage/quantize.js';
import { trainStage } from '../stage/train.js';
import { pruneStage } from '../stage/prune.js';
import { distillStage } from '../distill/stage.js';
import { parseStudent } from '../distill/students.js';
import type { ImportanceKind } from '../passes/prune/index.js';
import type { Stage, StageReport } from '../stage/types.js';
import { summarize } from '../summary/summary.js';
import { writeAtomic } from '../util/fs.js';
import { Session, medianRunMs } from '../runtime/index.js';
import {
  loadConfig,
  resolveData,
  resolvePath,
  stageOf,
  type LoadedConfig,
  type PipelineConfig,
  type StageName,
} from './config.js';
import { TOOL_VERSION, canonicalJson, dataFingerprint, sha256 } from './fingerprint.js';
import { MANIFEST_SCHEMA, type Manifest, type ModelFigures, type StageRecord } from './manifest.js';
import { Registry, modelDigest, parseRef } from './registry.js';
import { renderReport } from './report.js';

export interface PipelineRunOptions {
  /** Cache and run outputs (default `<config folder>/.edgefit`). */
  workDir?: string;
  /** Do nothing when the config, source model, data and tool are what the last run used. */
  ifChanged?: boolean;
  /** Override the config's `registry.promote`. */
  promote?: boolean;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
  /** Stage builders by name, in addition to (or instead of) the library's; tests inject failing or slow stages. */
  stages?: Partial<Record<StageName, StageBuilder>>;
  /** Measure batch-1 latency of baseline and candidate (default true). */
  latency?: boolean;
}

export type StageBuilder = (options: Record<string, unknown>, config: PipelineConfig) => Stage<unknown>;

export interface PipelineResult {
  /** --if-changed found nothing changed: nothing ran; the fields describe the last run. */
  skipped: boolean;
  promoted: boolean;
  gates: GateResult[];
  /** Paths of the run's manifest, report and candidate model. */
  manifest: string;
  report: string;
  model: string;
  bytes: number;
  accuracy: number;
  /** The registry version the candidate got (null without a registry). */
  version: number | null;
  summary: Manifest;
}

/** The library's stages, by config name. */
export const STAGE_BUILDERS: Record<StageName, StageBuilder | undefined> = {
  optimize: (o) =>
    optimizeStage({
      passes: Array.isArray(o.passes) ? passesByName(o.passes as string[]) : undefined,
      tolerance: o.tolerance as number | undefined,
    }),
  quantize: (o) => {
    const mode = (o.mode as string | undefined) ?? 'static';
    const placement = {
      calibrator: o.calibrator as any,
      exclude: o.exclude as string[] | undefined,
    };
    if (mode === 'qat') return qatStage({ ...placement, epochs: o.qatEpochs as any, lr: o.qatLr as any });
    if (mode === 'auto')
      return autoStage({ ...placement, qat: { epochs: o.qatEpochs as any, lr: o.qatLr as any } });
    return quantizeStage({ ...placement, mode: mode as any, blockSize: o.blockSize as any });
  },
  finetune: (o) =>
    trainStage({
      epochs: (o.epochs as number | undefined) ?? 1,
      batchSize: o.batch as number | undefined,
      optimizer:
        o.optimizer === 'adamw' ? { kind: 'adamw', weightDecay: 0.01 } : { kind: 'sgd', momentum: 0.9 },
      schedule: {
        kind: 'cosine',
        lr: (o.lr as number | undefined) ?? (o.optimizer === 'adamw' ? 1e-3 : 0.01),
      },
      label: 'finetune',
    }),
  prune: (o) =>
    pruneStage({
      ratio: o.ratio as number | undefined,
      targetBytes: o.targetBytes as number | undefined,
      importance: o.importance as ImportanceKind | undefined,
      step: o.step as number | undefined,
      finetuneSteps: o.finetuneSteps as number | undefined,
      lr: o.lr as number | undefined,
      ...(o.optimizer === 'adamw'
        ? { optimizer: { kind: 'adamw' as const, weightDecay: 0.01 } }
        : o.optimizer === 'sgd'
          ? { optimizer: { kind: 'sgd' as const, momentum: 0.9 } }
          : {}),
      warmup: o.warmup as number | undefined,
      distill: o.distill as { temperature?: number; alpha?: number } | undefined,
      minAccuracy: o.minAccuracy as number | undefined,
      heads: o.heads as number | undefined,
      depth: o.depth as number | undefined,
    }),
  distill: (o) => {
    const base = {
      loss: { temperature: o.temperature as number | undefined, alpha: o.alpha as number | undefined },
      epochs: o.epochs as number | undefined,
      unlabeled: o.unlabeled as boolean | undefined,
    };
    // `student: input`: the stage's input model (e.g. the pruned one) learns from the baseline (the run's teacher).
    if (o.student === 'input')
      return {
        name: 'distill',
        needs: ['train'],
        uses: ['teacher', 'eval'],
        run: (model, ctx) => distillStage({ ...base, student: model }).run(model, ctx),
      };
    return distillStage({
      ...base,
      ...(typeof o.student === 'string' ? { student: parseStudent(o.student) } : {}),
    });
  },
};

/** Model file + external data bytes of a model as the registry stores it (inline encoding: the same bytes). */
function modelBytes(m: Model): number {
  return encodeModel(m).byteLength;
}

interface EvalFigures {
  accuracy: number;
  recall: number[];
  n: number;
  classes: number;
}

class Cache {
  constructor(readonly dir: string) {}

  private file(kind: string, key: string, name: string): string {
    return join(this.dir, kind, key, name);
  }

  json<T>(kind: string, key: string): T | undefined {
    const f = this.file(kind, key, 'entry.json');
    if (!existsSync(f)) return undefined;
    try {
      return JSON.parse(readFileSync(f, 'utf8')) as T;
    } catch {
      return undefined; // a damaged entry is recomputed
    }
  }

  /** Store a JSON entry (and a model) as one folder renamed into place: an entry is complete or absent. */
  put(kind: string, key: string, value: unknown, model?: Model): void {
    const final = join(this.dir, kind, key);
    const tmp = join(this.dir, kind, `.${key}.${process.pid}.tmp`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    if (model) saveModel(model, join(tmp, 'model.onnx'));
    writeAtomic(join(tmp, 'entry.json'), JSON.stringify(value, null, 1));
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  }

  model(kind: string, key: string): Model | undefined {
    const f = this.file(kind, key, 'model.onnx');
    return existsSync(f) ? loadModel(f) : undefined;
  }
}

function toGateSpec(c: PipelineConfig): GateSpec {
  const g = c.gates ?? {};
  const minRecall: Record<string, number> = {};
  const maxRecallDrop: Record<string, number> = {};
  for (const [name, s] of Object.entries(g.slices ?? {})) {
    if (!c.slices?.[name])
      throw new InputError('config', `gates.slices.${name}: no slice "${name}" is defined under slices`, {
        path: `gates.slices.${name}`,
      });
    if (s.minRecall !== undefined) minRecall[name] = s.minRecall;
    if (s.maxRecallDropPoints !== undefined) maxRecallDrop[name] = s.maxRecallDropPoints;
  }
  return {
    minAccuracy: g.minAccuracy,
    maxDrop: g.maxDropPoints,
    maxDropVsDeployed: g.maxDropVsDeployedPoints,
    minRecall: Object.keys(minRecall).length ? minRecall : undefined,
    maxRecallDrop: Object.keys(maxRecallDrop).length ? maxRecallDrop : undefined,
    maxBytes: g.maxBytes,
    maxPeakBytes:
      g.maxPeakMemoryBytes ?? (c.device?.ramMB ? Math.round(c.device.ramMB * 1024 * 1024) : undefined),
    maxLatencyMs: g.maxLatencyMs ?? c.device?.latencyMs,
  };
}

/** Class names for gate messages and keys: slice names where a slice covers the class, else the index. */
function classNames(c: PipelineConfig, classes: number): string[] {
  const names = Array.from({ length: classes }, (_, i) => String(i));
  for (const [name, s] of Object.entries(c.slices ?? {})) if (s.class < classes) names[s.class] = name;
  return names;
}

function resolveSource(
  loaded: LoadedConfig,
  registry: () => Registry,
): { model: Model; path: string; label: string } {
  const spec = loaded.config.source.model;
  if (spec.startsWith('registry:')) {
    const reg = registry();
    const v = reg.get(parseRef(spec.slice('registry:'.length), loaded.config.device?.name ?? 'default'));
    const path = reg.modelPath(v);
    return { model: loadModel(path), path, label: `${spec} (${v.name}@${v.version})` };
  }
  const path = resolvePath(loaded.dir, spec);
  if (!existsSync(path))
    throw new InputError('source', `source.model: ${spec} does not exist (resolved to ${path})`, {
      file: path,
      path: 'source.model',
    });
  return { model: loadModel(path), path, label: spec };
}

/** A fingerprint of what the run reads, for --if-changed: config, source model, data, tool version. */
function runKey(
  loaded: LoadedConfig,
  sourceDigest: string,
  data: Record<string, string | undefined>,
): string {
  const fps = Object.fromEntries(
    Object.entries(data)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, dataFingerprint(v!)]),
  );
  return sha256(canonicalJson({ config: loaded.config, sourceDigest, fps, tool: TOOL_VERSION }));
}

export async function runPipeline(configFile: string, o: PipelineRunOptions = {}): Promise<PipelineResult> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const log = o.log ?? (() => {});
  const loaded = loadConfig(configFile);
  const c = loaded.config;
  const device = c.device?.name ?? 'default';
  const work = resolve(o.workDir ?? join(loaded.dir, '.edgefit'));
  const cache = new Cache(join(work, 'cache'));
  const gateSpec = toGateSpec(c);
  const seed = c.seed ?? 0;
  const threads = c.device?.threads;

  let reg: Registry | undefined;
  const registry = () => {
    if (!c.registry)
      throw new InputError('config', 'source.model names the registry, but the config has no registry.path', {
        path: 'registry',
      });
    reg ??= Registry.open(resolvePath(loaded.dir, c.registry.path), { create: true });
    return reg;
  };

  const dataSpecs = {
    train: c.data.train ? resolveData(loaded.dir, c.data.train) : undefined,
    calibration: c.data.calibration ? resolveData(loaded.dir, c.data.calibration) : undefined,
    evaluation: resolveData(loaded.dir, c.data.evaluation),
  };
  const evalSplit = c.data.evaluationSplit ?? 'test';

  try {
    const source = resolveSource(loaded, registry);
    const sourceDigest = modelDigest(source.model);
    const key = runKey(loaded, sourceDigest, dataSpecs);
    const lastFile = join(work, 'runs', `${c.name}@${device}.last.json`);
    if (o.ifChanged && existsSync(lastFile)) {
      const last = JSON.parse(readFileSync(lastFile, 'utf8')) as {
        key: string;
        manifest: string;
        result: PipelineResult;
      };
      if (last.key === key && existsSync(last.manifest)) {
        log(`nothing changed since the last run (${last.manifest}): not running`);
        return { ...last.result, skipped: true };
      }
    }

    // The data: opened lazily by the stages that need it, once per run.
    const openFor = (spec: string | undefined, split: 'train' | 'test', limit?: number) =>
      spec
        ? () =>
            openData(spec, { model: source.model, split, limit, limitSeed: seed, needLabels: 'the pipeline' })
        : undefined;
    const ctx: StageContext = createContext({
      data: {
        train: openFor(dataSpecs.train, 'train'),
        calibration: openFor(dataSpecs.calibration, 'train'),
        eval: openFor(dataSpecs.evaluation, evalSplit, c.data.evaluationLimit),
      },
      seed,
      threads,
      gates: gateSpec,
      teacher: source.model,
      device: c.device
        ? {
            name: c.device.name,
            ramBytes: c.device.ramMB ? c.device.ramMB * 1024 * 1024 : undefined,
            storageBytes: c.device.storageMB ? c.device.storageMB * 1024 * 1024 : undefined,
            threads: c.device.threads,
            latencyBudgetMs: c.device.latencyMs,
            traits: c.device.traits,
          }
        : undefined,
      log,
      quiet: true,
      modelName: source.label,
      trainLimit: c.data.trainLimit,
    });

    const evalKeyBase = canonicalJson({
      data: dataFingerprint(dataSpecs.evaluation),
      split: evalSplit,
      limit: c.data.evaluationLimit ?? null,
      seed,
    });
    let evalSource: DataSource | undefined;
    const evalFigures = async (m: Model, digest: string): Promise<EvalFigures> => {
      const k = sha256(`${digest}:${evalKeyBase}`);
      const hit = cache.json<EvalFigures>('eval', k);
      if (hit) return hit;
      const r = await ctx.evaluate(m);
      evalSource ??= await ctx.source('eval');
      const f = {
        accuracy: r.accuracy,
        recall: r.perClass.map((p) => p.recall),
        n: r.n,
        classes: r.perClass.length,
      };
      cache.put('eval', k, f);
      return f;
    };
    const latencyOf = async (m: Model, digest: string): Promise<number | null> => {
      if (o.latency === false) return null;
      const k = sha256(`${digest}:latency:${threads ?? 'default'}`);
      const hit = cache.json<{ ms: number }>('latency', k);
      if (hit) return hit.ms;
      const src = await ctx.source('eval');
      const b = await src.read([0]);
      const session = await Session.create(m, { threads, label: 'a pipeline model' });
      let ms: number;
      try {
        ms = await medianRunMs(session, b.feeds, { runs: 30 });
      } finally {
        await session.release();
      }
      cache.put('latency', k, { ms });
      return ms;
    };
    const figures = async (m: Model, digest: string): Promise<ModelFigures> => {
      const e = await evalFigures(m, digest);
      const s = summarize(m, { batch: 1 });
      return {
        digest,
        bytes: modelBytes(m),
        params: s.params,
        accuracy: e.accuracy,
        perClassRecall: e.recall,
        slices: Object.fromEntries(
          Object.entries(c.slices ?? {}).map(([n, sl]) => [n, e.recall[sl.class] ?? NaN]),
        ),
        latencyMs: await latencyOf(m, digest),
        peakMemoryBytes: s.bytes + s.peakActivationBytes,
      };
    };

    log(`baseline: ${source.label}`);
    const baseline = await figures(source.model, sourceDigest);

    // The stages.
    const records: StageRecord[] = [];
    let model = source.model;
    let digest = sourceDigest;
    for (const [index, entry] of c.stages.entries()) {
      const { name, options } = stageOf(entry);
      const build = o.stages?.[name] ?? STAGE_BUILDERS[name];
      if (!build)
        throw new UnsupportedError(
          'stage',
          `stages[${index}].${name}: this edgefit has no ${name} stage yet (stages available: ${Object.entries(
            { ...STAGE_BUILDERS, ...o.stages },
          )
            .filter(([, b]) => b)
            .map(([n]) => n)
            .join(', ')})`,
          { path: `stages[${index}]` },
        );
      const stage = build(options, c);
      const reads = [...stage.needs, ...(stage.uses ?? [])];
      const dataKey = {
        train: reads.includes('train') && dataSpecs.train ? dataFingerprint(dataSpecs.train) : null,
        trainLimit: reads.includes('train') ? (c.data.trainLimit ?? null) : null,
        calibration: reads.includes('calibration')
          ? dataFingerprint(dataSpecs.calibration ?? dataSpecs.train ?? dataSpecs.evaluation)
          : null,
        eval: reads.includes('eval') ? evalKeyBase : null,
        device: reads.includes('device') ? (c.device ?? null) : null,
        gates: name === 'quantize' ? gateSpec : null,
      };
      const stageKey = sha256(
        canonicalJson({ input: digest, stage: name, options, data: dataKey, seed, tool: TOOL_VERSION }),
      );
      const hit = cache.json<{ report: StageReport; digest: string; seconds: number }>('stages', stageKey);
      const cachedModel = hit ? cache.model('stages', stageKey) : undefined;
      let report: StageReport;
      let seconds: number;
      if (hit && cachedModel) {
        log(`stage ${index + 1}/${c.stages.length} ${name}: cached`);
        model = cachedModel;
        report = hit.report;
        seconds = hit.seconds;
        digest = hit.digest;
      } else {
        log(`stage ${index + 1}/${c.stages.length} ${name}: running`);
        const s0 = performance.now();
        const r = await runStage(stage, model, ctx);
        seconds = (performance.now() - s0) / 1000;
        model = r.model;
        report = r.report;
        digest = modelDigest(model);
        cache.put('stages', stageKey, { report, digest, seconds }, model);
      }
      const f = await figures(model, digest);
      log(
        `stage ${index + 1}/${c.stages.length} ${name}: ${f.bytes} bytes, accuracy ${(f.accuracy * 100).toFixed(2)} % (${seconds.toFixed(1)} s)`,
      );
      records.push({
        index,
        name,
        technique: technique(name, options, report),
        parameters: options,
        seconds,
        cached: !!(hit && cachedModel),
        key: stageKey,
        after: { digest, bytes: f.bytes, params: f.params, accuracy: f.accuracy },
        report,
      });
    }
    const candidate = await figures(model, digest);

    // The deployed version of this name and device, evaluated on the same data.
    let deployed: Manifest['deployed'] = null;
    if (c.registry) {
      const d = registry().deployed(c.name, device);
      if (d) {
        const dm = loadModel(registry().modelPath(d));
        deployed = { ...(await figures(dm, d.digest)), version: d.version };
      }
    }

    const names = classNames(c, baseline.perClassRecall.length);
    const measures = (f: ModelFigures): Measures => ({
      accuracy: f.accuracy,
      recall: f.perClassRecall,
      classNames: names,
      bytes: f.bytes,
      peakBytes: f.peakMemoryBytes ?? undefined,
      latencyMs: f.latencyMs ?? undefined,
    });
    // With nothing deployed yet there is nothing to regress against: that gate passes and says why.
    const gates = checkGates(
      deployed ? gateSpec : { ...gateSpec, maxDropVsDeployed: undefined },
      measures(candidate),
      { baseline: measures(baseline), deployed: deployed ? measures(deployed) : undefined },
    );
    if (!deployed && gateSpec.maxDropVsDeployed !== undefined)
      gates.push({
        name: 'max-drop-vs-deployed',
        passed: true,
        value: null,
        limit: gateSpec.maxDropVsDeployed,
        message: `nothing of ${c.name} is deployed on ${device} yet: no regression to check`,
      });
    const passed = gates.every((g) => g.passed);

    // The run folder: candidate model, manifest, report.
    const stamp = startedAt.replace(/[:.]/g, '-');
    const runDir = join(work, 'runs', `${c.name}@${device}-${stamp}`);
    mkdirSync(runDir, { recursive: true });
    const modelPath = join(runDir, 'model.onnx');
    saveModel(model, modelPath);

    const manifest: Manifest = {
      schema: MANIFEST_SCHEMA,
      tool: { name: 'edgefit', version: TOOL_VERSION },
      name: c.name,
      device,
      config: { file: loaded.file, sha256: sha256(canonicalJson(c)), content: c },
      source: { model: source.label, digest: sourceDigest },
      evaluation: {
        data: c.data.evaluation,
        split: evalSplit,
        n: baseline.perClassRecall.length ? (await evalFigures(source.model, sourceDigest)).n : 0,
        classes: baseline.perClassRecall.length,
      },
      slices: c.slices ?? {},
      baseline,
      stages: records,
      candidate,
      deployed,
      compressionRatio: baseline.bytes / candidate.bytes,
      gates,
      promoted: false,
      registry: null,
      startedAt,
      finishedAt: '',
      seconds: 0,
    };

    let version: number | null = null;
    const promote = passed && (o.promote ?? c.registry?.promote ?? true);
    if (c.registry) {
      const r = registry();
      // A candidate the registry already has (a rerun with nothing changed) keeps its version.
      const known = r.findByDigest(c.name, device, digest);
      const v =
        known ??
        r.register(
          model,
          { ...manifest, finishedAt: new Date().toISOString(), seconds: (performance.now() - t0) / 1000 },
          { name: c.name, device, accuracy: candidate.accuracy },
        );
      version = v.version;
      manifest.registry = { path: r.dir, version };
      if (promote && v.state === 'rolled-back')
        log(`${c.name}@${v.version} was rolled back: not promoting it again (edgefit registry promote does)`);
      else if (promote) {
        if (v.state !== 'deployed') r.promote({ name: c.name, device, version });
        manifest.promoted = true;
      }
      if (known)
        log(`the registry already has this candidate as ${c.name}@${known.version} (${known.state})`);
    }
    manifest.finishedAt = new Date().toISOString();
    manifest.seconds = (performance.now() - t0) / 1000;
    const manifestPath = join(runDir, 'manifest.json');
    writeAtomic(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
    const reportPath = join(runDir, 'report.html');
    writeAtomic(reportPath, renderReport(manifest));
    const result: PipelineResult = {
      skipped: false,
      promoted: manifest.promoted,
      gates,
      manifest: manifestPath,
      report: reportPath,
      model: modelPath,
      bytes: candidate.bytes,
      accuracy: candidate.accuracy,
      version,
      summary: manifest,
    };
    writeAtomic(lastFile, JSON.stringify({ key, manifest: manifestPath, result }, null, 1));
    await ctx.close();
    return result;
  } finally {
    reg?.close();
  }
}

function technique(name: StageName, options: Record<string, unknown>, report: StageReport): string {
  const detail = report.detail as Record<string, unknown> | undefined;
  switch (name) {
    case 'optimize':
      return 'graph clean-up and fusion';
    case 'quantize': {
      const mode = String(detail?.mode ?? options.mode ?? 'static');
      return mode.startsWith('auto')
        ? `auto quantization (${mode.slice(5) || 'PTQ→mixed→QAT'})`
        : ({
            static: 'static INT8 (QDQ)',
            dynamic: 'dynamic INT8',
            int4: 'INT4 weight-only',
            fp16: 'FP16',
            qat: 'QAT INT8 (QDQ)',
          }[mode] ?? mode);
    }
    case 'prune':
      return `structured pruning (${String(options.importance ?? 'l1')})`;
    case 'distill':
      return 'knowledge distillation';
    case 'finetune':
      return 'fine-tuning';
  }
}

/** Whether a file changed since a stat snapshot (for watch). */
export function statKey(path: string): string {
  const s = statSync(path, { throwIfNoEntry: false });
  return s ? `${s.size}:${s.mtimeMs}` : 'missing';
}
