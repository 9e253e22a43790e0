// The quantization stages: one per mode (dynamic, static, int4, fp16: `quantizeStage`), QAT (`qatStage`: static
// INT8 placement fine-tuned with fake quantization on the context's training rows) and `--auto` (`autoStage`:
// static INT8, then mixed precision, then QAT, stopping at the first that holds the context's accuracy gate).
// Each reports what it quantized, what it kept float and why, the calibration, and the kernels ORT actually runs.
import type { OpsetUpgrade } from '../passes/opset/require.js';
import type { FeedBatch } from '../data/index.js';
import { GateError, InputError, UnsupportedError } from '../errors.js';
import { assertValid, type Model } from '../ir/index.js';
import { ensureOpset, nodeCount, upgradeNote } from '../passes/index.js';
import {
  autoQuantize,
  keptFindings,
  opsetForMode,
  ortKernels,
  prepareForQuantization,
  quantize,
  type AutoResult,
  type AutoStep,
  type CalibratorName,
  type Int4Method,
  type KernelReport,
  type QType,
  type QuantMode,
  type QuantizeResult,
  type SkippedNode,
} from '../passes/quantize/index.js';
import { qatHook, quantizeAwareTrain, type QatResult } from '../qat/index.js';
import type { ProgressOptions } from '../util/progress.js';
import type { Note } from '../util/note.js';
import type { StageContext, TrainingRows } from './context.js';
import type { Stage, StageReport } from './types.js';

/** Placement and calibration options every INT8 mode shares. */
export interface QuantPlacement {
  /** Only these node names / op types ("op:X", "node:Y"). */
  include?: readonly string[];
  /** Keep these node names / op types float. */
  exclude?: readonly string[];
  calibrator?: CalibratorName;
  /** Percentile calibrator: share of values kept in range, % (default 99.999). */
  percentile?: number;
  activationType?: QType;
  /** One weight scale per output channel (default true). */
  perChannel?: boolean;
  /** Also quantize MatMuls of two activations (attention). */
  matmulActivations?: boolean;
  /** Run the clean-up and fusion passes first (default true). */
  optimize?: boolean;
}

export interface QuantizeStageOptions extends QuantPlacement {
  mode: Exclude<QuantMode, 'qat'>;
  /** int4 */
  method?: Int4Method;
  blockSize?: number;
  symmetric?: boolean;
  accuracyLevel?: number;
  /** fp16: node names / op types kept float32. */
  keepFloat32?: readonly string[];
}

export interface QatStageOptions extends QuantPlacement {
  /** Default 1. */
  epochs?: number;
  /** Peak learning rate of the cosine schedule (default 0.005). */
  lr?: number;
  /** Default 64. */
  batchSize?: number;
  /** Learn the activation scales (LSQ; default true). */
  learnScales?: boolean;
}

export interface AutoStageOptions extends QuantPlacement {
  /** The QAT step's options (it runs when the context has training data). */
  qat?: Omit<QatStageOptions, keyof QuantPlacement>;
}

/** The QAT figures of a report. */
export interface QatDetail {
  trainData: string;
  trainRows: number;
  valRows: number;
  epochs: number;
  lr: number;
  batchSize: number;
  learnScales: boolean;
  start: QatResult['start'] | null;
  exportedEpoch: number;
  history: QatResult['history'];
  scales: QatResult['scales'];
  seconds: number;
}

export interface AutoDetail {
  chosen: AutoResult['chosen'];
  baseline: number;
  maxDrop: number;
  steps: AutoStep[];
  stoppedBecause: string;
}

export interface QuantizeDetail {
  /** The mode, or "auto:<chosen>". */
  mode: string;
  /** Compute nodes quantized (converted, for fp16). */
  nodes: string[];
  /** Candidates kept float, with why. */
  skipped: SkippedNode[];
  /** int4: bytes of the replaced float weights and of their packed form. */
  weightBytes: { before: number; after: number } | null;
  /** Set when the mode's ops needed a newer ai.onnx opset than the model's (it was converted first). */
  opsetUpgrade: OpsetUpgrade | null;
  calibration:
    | { calibrator: CalibratorName; samples: number; seconds: number; tensors: number }
    | { samples: number }
    | null;
  /** What ORT runs for the quantized model. */
  kernels: KernelReport;
  qat?: QatDetail | { skipped: string };
  auto?: AutoDetail;
}

export type QuantizeReport = StageReport<QuantizeDetail>;

/** What each mode quantizes, for the error when it found nothing. */
const MODE_TAKES: Record<string, string> = {
  dynamic: 'MatMul, Gemm and Conv nodes with constant float weights (subgraphs included)',
  static: 'Conv, MatMul, Gemm and the other ops with integer kernels (QLinear*), with constant float weights',
  qat: 'Conv, MatMul, Gemm and the other ops with integer kernels (QLinear*), with constant float weights',
  int4: 'MatMul and Gemm nodes with constant 2-D float weights (subgraphs included)',
  fp16: 'float32 compute nodes (subgraphs included)',
  auto: 'what static INT8 takes (Conv, MatMul, Gemm and the other ops with integer kernels, with constant float weights)',
};

/**
 * The error for a run that quantized nothing (exit 3, nothing written): a model identical to its input, labelled as
 * quantized, would mislead. Names what the mode takes, what the graph has, and nodes inside subgraphs (If, Loop,
 * Scan), searched too.
 */
function nothingQuantized(input: string, mode: string, model: Model, filtered: boolean): UnsupportedError {
  const top = new Map<string, number>();
  for (const n of model.graph.nodes) top.set(n.opType, (top.get(n.opType) ?? 0) + 1);
  const has = [...top]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k, v]) => `${k} ×${v}`)
    .join(', ');
  const inner = nodeCount(model) - model.graph.nodes.length;
  return new UnsupportedError(
    'nothing-to-quantize',
    `${mode === 'auto' ? '--auto' : `--mode ${mode}`} found nothing to quantize in ${input}: it takes ${MODE_TAKES[mode] ?? 'quantizable nodes'}, and the main graph has ${has || 'no nodes'}` +
      (inner > 0 ? `; ${inner} more node(s) sit inside If/Loop/Scan subgraphs (searched too)` : '') +
      (filtered ? '; --include/--exclude may have left nothing' : '') +
      '. Nothing was written',
    { file: input, value: mode },
  );
}

const filtered = (o: QuantPlacement) => !!o.include?.length || !!o.exclude?.length;

/** The quantizers' options from a stage's placement options and the context. */
function placement(o: QuantPlacement, ctx: StageContext, calibration: readonly FeedBatch[] | undefined) {
  return {
    ...(o.include ? { include: o.include } : {}),
    ...(o.exclude ? { exclude: o.exclude } : {}),
    ...(calibration ? { calibration } : {}),
    calibrator: o.calibrator ?? 'minmax',
    percentile: o.percentile ?? 99.999,
    threads: ctx.threads,
    activationType: o.activationType ?? 'uint8',
    perChannel: o.perChannel ?? true,
    matmulActivations: !!o.matmulActivations,
  };
}

/** The quantizer's notes, structured: a "Kept … float" line becomes the kept note of its skipped node. */
function quantNotes(lines: readonly string[], skipped: readonly SkippedNode[], rule: string): Note[] {
  const kept = new Map(keptFindings(skipped, rule).map((n) => [n.text, n]));
  return lines.map((text) => kept.get(text) ?? { kind: 'info' as const, text, rule });
}

const rows = (f: readonly FeedBatch[]) => f.reduce((a, b) => a + (Object.values(b)[0]?.dims[0] ?? 0), 0);

/** The report of a finished quantization (kernels ORT runs, calibration, notes). */
async function finish(
  stage: string,
  t0: number,
  r: QuantizeResult,
  mode: string,
  ctx: StageContext,
  calibration: readonly FeedBatch[] | undefined,
  extra: Pick<QuantizeDetail, 'qat' | 'auto'> = {},
): Promise<{ model: Model; report: QuantizeReport }> {
  assertValid(r.model.graph, { opsetImports: r.model.opsetImports }, `the quantized ${ctx.modelName}`);
  const kernels = await ortKernels(r.model);
  const detail: QuantizeDetail = {
    mode,
    nodes: r.nodes,
    skipped: r.skipped,
    weightBytes: r.weightBytes ?? null,
    opsetUpgrade: r.opsetUpgrade ?? null,
    calibration: r.calibration
      ? {
          calibrator: r.calibration.calibrator,
          samples: r.calibration.samples,
          seconds: r.calibration.seconds,
          tensors: r.calibration.stats.size,
        }
      : calibration
        ? { samples: rows(calibration) }
        : null,
    kernels,
    ...extra,
  };
  return {
    model: r.model,
    report: {
      stage,
      seconds: (performance.now() - t0) / 1000,
      figures: {
        quantizedNodes: r.nodes.length,
        keptFloat: r.skipped.length,
        integerKernels: kernels.integer,
        floatComputeKernels: kernels.floatCompute,
      },
      notes: quantNotes(r.notes, r.skipped, stage),
      gates: [],
      detail,
    },
  };
}

/** Dynamic / static INT8, INT4 weight-only, FP16. Static INT8 and GPTQ INT4 need calibration data. */
export function quantizeStage(o: QuantizeStageOptions): Stage<QuantizeDetail> {
  const needsCalib = o.mode === 'static' || (o.mode === 'int4' && o.method === 'gptq');
  return {
    name: `quantize:${o.mode}`,
    needs: needsCalib ? ['calibration'] : [],
    async run(model, ctx) {
      const t0 = performance.now();
      const calibration = needsCalib ? await ctx.calibration() : undefined;
      const r = await quantize(model, {
        ...placement(o, ctx, calibration),
        mode: o.mode,
        optimize: o.optimize ?? true,
        method: o.method ?? 'rtn',
        blockSize: o.blockSize ?? 32,
        symmetric: o.symmetric ?? true,
        accuracyLevel: o.accuracyLevel ?? 0,
        ...(o.keepFloat32 ? { keepFloat32: o.keepFloat32 } : {}),
      });
      if (r.nodes.length === 0) throw nothingQuantized(ctx.modelName, o.mode, model, filtered(o));
      return finish(`quantize:${o.mode}`, t0, r, o.mode, ctx, calibration);
    },
  };
}

/** QAT's trainer options from the stage options, the context and the training rows. */
function qatTrainOptions(o: QatStageOptions, ctx: StageContext, d: TrainingRows) {
  return {
    data: d.train,
    ...(d.val ? { val: d.val } : {}),
    epochs: o.epochs ?? 1,
    lr: { kind: 'cosine' as const, lr: o.lr ?? 0.005 },
    batchSize: o.batchSize ?? 64,
    learnScales: o.learnScales ?? true,
    seed: ctx.seed,
    ...(ctx.threads !== undefined ? { threads: ctx.threads } : {}),
    log: ctx.log,
    progress: { quiet: ctx.quiet, label: 'qat' } as ProgressOptions & { label?: string },
    prepared: o.optimize === false,
  };
}

function qatDetail(r: QatResult, d: TrainingRows, o: QatStageOptions): QatDetail {
  return {
    trainData: d.name,
    trainRows: d.train.n,
    valRows: d.val?.n ?? 0,
    epochs: o.epochs ?? 1,
    lr: o.lr ?? 0.005,
    batchSize: o.batchSize ?? 64,
    learnScales: o.learnScales ?? true,
    start: r.start ?? null,
    exportedEpoch: r.epoch,
    history: r.history,
    scales: r.scales,
    seconds: r.seconds,
  };
}

/** Training rows for QAT, logged. */
async function qatRows(ctx: StageContext): Promise<TrainingRows> {
  const d = await ctx.trainingRows();
  ctx.log(`QAT training data: ${d.train.n} row(s) of ${d.name}, ${d.val?.n ?? 0} held out for validation`);
  return d;
}

/**
 * Quantization-aware training: static INT8 placement and calibration (the context's calibration data when given
 * separately, else rows of the training data), fine-tuned with fake quantization on the context's training rows
 * (the best epoch by validation accuracy, the PTQ start included), exported in the same QDQ form.
 */
export function qatStage(o: QatStageOptions = {}): Stage<QuantizeDetail> {
  return {
    name: 'quantize:qat',
    needs: ['train'],
    async run(model, ctx) {
      const t0 = performance.now();
      const d = await qatRows(ctx);
      // calibrate like static INT8 on the calibration data when it is given, else on the training rows
      const calibration = ctx.hasData('calibration') ? await ctx.calibration() : undefined;
      // the exported QDQ form needs opset 13 (per-channel) or 10: an older graph is upgraded first, and says so
      const need = opsetForMode('qat', o.perChannel ?? true)!;
      const up = ensureOpset(model, need.opset, need.because);
      if (up.upgrade) ctx.log(upgradeNote(up.upgrade));
      const r = await quantizeAwareTrain(up.model, {
        ...placement(o, ctx, calibration),
        ...qatTrainOptions(o, ctx, d),
      });
      const res: QuantizeResult = {
        model: r.model,
        mode: 'qat',
        nodes: r.plan.nodes,
        skipped: r.plan.skipped,
        notes: r.notes,
        plan: r.plan,
        ranges: r.ranges.final,
        ...(up.upgrade ? { opsetUpgrade: up.upgrade } : {}),
      };
      if (res.nodes.length === 0) throw nothingQuantized(ctx.modelName, 'qat', model, filtered(o));
      return finish('quantize:qat', t0, res, 'qat', ctx, calibration, { qat: qatDetail(r, d, o) });
    },
  };
}

/**
 * `--auto`: static INT8, then mixed precision (the most sensitive layers back to float), then QAT (when the context
 * has training data), stopping at the first that holds the context's `maxDrop` gate against the float model on the
 * evaluation data. A GateError (exit 4, nothing returned) when none does.
 */
export function autoStage(o: AutoStageOptions = {}): Stage<QuantizeDetail> {
  return {
    name: 'quantize:auto',
    needs: ['calibration', 'eval'],
    uses: ['train'],
    async run(model, ctx) {
      const t0 = performance.now();
      const maxDrop = ctx.gates.maxDrop ?? 1;
      const calibration = await ctx.calibration();
      let m = model;
      const notes: string[] = [];
      if (o.optimize ?? true) {
        const prep = await prepareForQuantization(m);
        m = prep.model;
        notes.push(...prep.notes);
      }
      let qatRun: { r: QatResult; d: TrainingRows } | undefined;
      let qatSkipped: string | undefined;
      // the QAT step: training rows are resolved only if auto gets that far
      const qat = async (qm: Model, hctx: Parameters<ReturnType<typeof qatHook>>[1]) => {
        let d: TrainingRows;
        try {
          if (!ctx.has('train'))
            throw new InputError(
              'qat-data',
              'QAT fine-tunes on labelled training data: give --train-data <data>, or a built-in dataset as --data (its train split is used)',
              { value: 'train-data' },
            );
          d = await qatRows(ctx);
        } catch (e) {
          if (!(e instanceof InputError)) throw e;
          qatSkipped = e.message;
          ctx.log(`QAT skipped: ${e.message}`);
          return undefined;
        }
        return qatHook({
          ...qatTrainOptions({ ...o.qat, ...(o.optimize === false ? { optimize: false } : {}) }, ctx, d),
          onResult: (r) => (qatRun = { r, d }),
        })(qm, hctx);
      };
      let auto: AutoResult;
      try {
        auto = await autoQuantize(m, {
          ...placement(o, ctx, calibration),
          score: (x) => ctx.score(x),
          maxDrop,
          log: ctx.log,
          qat,
        });
      } catch (e) {
        if (e instanceof UnsupportedError && e.code === 'nothing-to-quantize')
          throw nothingQuantized(ctx.modelName, 'auto', model, filtered(o));
        throw e;
      }
      const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
      if (!auto.model) {
        const lines = auto.steps.map(
          (s) =>
            `  ${s.method}: ${s.status}${s.drop !== null ? ` (drop ${s.drop.toFixed(2)} points)` : ''}: ${s.note}`,
        );
        throw new GateError(
          'quant-gate',
          `No quantization method holds the gate (accuracy drop ≤ ${maxDrop} points from ${pct(auto.baseline)}); nothing was written:\n${lines.join('\n')}\nStopped: ${auto.stoppedBecause}`,
          { file: ctx.modelName },
        );
      }
      const chosen = auto.steps.find((s) => s.method === auto.chosen);
      const res: QuantizeResult = { model: auto.model, mode: 'static', nodes: [], skipped: [], notes };
      const out = await finish('quantize:auto', t0, res, `auto:${auto.chosen}`, ctx, calibration, {
        ...(qatRun
          ? { qat: qatDetail(qatRun.r, qatRun.d, o.qat ?? {}) }
          : qatSkipped
            ? { qat: { skipped: qatSkipped } }
            : {}),
        auto: {
          chosen: auto.chosen,
          baseline: auto.baseline,
          maxDrop,
          steps: auto.steps,
          stoppedBecause: auto.stoppedBecause,
        },
      });
      out.report.gates.push({
        name: 'max-drop',
        passed: true,
        value: chosen?.drop ?? null,
        limit: maxDrop,
        message: auto.stoppedBecause,
      });
      return out;
    },
  };
}
