// `edgefit quantize <in.onnx> <out.onnx> --mode dynamic|static|int4|fp16|qat | --auto --data … --max-drop …`
import {
  isDatasetName,
  loadDataset,
  mixSeed,
  permutation,
  subset,
  type DataSource,
} from '../../data/index.js';
import { GateError, InputError, UnsupportedError } from '../../errors.js';
import { evaluate } from '../../eval/index.js';
import type { Model } from '../../ir/index.js';
import { nodeCount } from '../../passes/index.js';
import { assertValid } from '../../ir/index.js';
import { encodeModel, loadModel } from '../../onnx/index.js';
import {
  CALIBRATORS,
  INT4_METHODS,
  QUANT_MODES,
  autoQuantize,
  ortKernels,
  prepareForQuantization,
  quantize,
  type AutoResult,
  type CalibratorName,
  type Feeds,
  type Int4Method,
  type QType,
  type QuantMode,
  type QuantizeResult,
} from '../../passes/quantize/index.js';
import {
  type Command,
  fmtBytes,
  fmtSaved,
  intOption,
  type Io,
  type Parsed,
  pct,
  SAVE_OPTIONS,
  saveOutput,
  stringOption,
  table,
} from '../command.js';
import { DATA_FLAGS } from '../dataflags.js';
import { openDataArg } from '../datasource.js';
import { qatHook, quantizeAwareTrain, type QatResult } from '../../qat/index.js';
import type { TrainData } from '../../train/trainer.js';

function list(p: Parsed, name: string): string[] | undefined {
  const v = stringOption(p, name);
  if (v === undefined) return undefined;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function numberOption(p: Parsed, name: string, lo: number, hi: number): number | undefined {
  const v = stringOption(p, name);
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < lo || x > hi)
    throw new InputError(
      'option',
      `--${name} must be a number from ${lo} to ${hi}: current value is "${v}"`,
      { value: name },
    );
  return x;
}

/** `samples` items of a data source (a seeded random choice), as feed batches of `batch` rows. */
export async function sampleFeeds(
  src: DataSource,
  samples: number,
  seed: number,
  batch = 64,
): Promise<Feeds[]> {
  const n = Math.min(samples, src.n);
  const idx = Array.from(permutation(src.n, seed).subarray(0, n)).sort((a, b) => a - b);
  const out: Feeds[] = [];
  for (let i = 0; i < idx.length; i += batch) {
    const b = await src.read(idx.slice(i, i + batch));
    if (b.n) out.push(b.feeds);
  }
  return out;
}

async function calibrationData(
  p: Parsed,
  model: Model,
  io: Io,
  samples: number,
  seed: number,
): Promise<Feeds[] | undefined> {
  const flag =
    p.values['calib-data'] !== undefined ? 'calib-data' : p.values.data !== undefined ? 'data' : undefined;
  if (!flag) return undefined;
  const src = await openDataArg(p, { flag, model, split: 'train' });
  try {
    const t0 = performance.now();
    const feeds = await sampleFeeds(src, samples, seed);
    if (!io.quiet)
      io.err(
        `quantize: calibration set: ${feeds.reduce((a, f) => a + (Object.values(f)[0]?.dims[0] ?? 0), 0)} item(s) of ${src.name}${src.format === 'builtin' ? ' (train split)' : ''} in ${((performance.now() - t0) / 1000).toFixed(2)} s\n`,
      );
    return feeds;
  } finally {
    await src.close();
  }
}

/** What each mode quantizes, for the error when it found nothing. */
const MODE_TAKES: Record<string, string> = {
  dynamic: 'MatMul and Gemm nodes with constant float weights',
  static: 'Conv, MatMul, Gemm and the other ops with integer kernels (QLinear*), with constant float weights',
  qat: 'Conv, MatMul, Gemm and the other ops with integer kernels (QLinear*), with constant float weights',
  int4: 'MatMul and Gemm nodes with constant 2-D float weights',
  fp16: 'float32 compute nodes of the main graph',
  auto: 'what static INT8 takes (Conv, MatMul, Gemm and the other ops with integer kernels, with constant float weights)',
};

/**
 * The error for a run that quantized nothing (exit 3, nothing written): a model identical to its input, labelled as
 * quantized, would mislead. Names what the mode takes, what the graph has, and nodes inside subgraphs (If, Loop,
 * Scan), which quantization does not enter.
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
      (inner > 0
        ? `; ${inner} more node(s) sit inside If/Loop/Scan subgraphs, which quantization does not enter`
        : '') +
      (filtered ? '; --include/--exclude may have left nothing' : '') +
      '. Nothing was written',
    { file: input, value: mode },
  );
}

/** Training rows for QAT, with the held-out validation rows. */
interface QatData {
  data: TrainData;
  val?: TrainData;
  /** What the rows are, for messages and --json. */
  name: string;
}

/** Rows `idx` of in-memory labelled data (copied). */
function takeRows(d: TrainData, idx: ArrayLike<number>): TrainData {
  const px = d.inputShape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(idx.length * px);
  const y = new BigInt64Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    x.set(d.x.subarray(r * px, (r + 1) * px), i * px);
    y[i] = d.y[r]!;
  }
  const out: TrainData = { n: idx.length, x, y, inputShape: [...d.inputShape], numClasses: d.numClasses };
  if (d.name !== undefined) out.name = d.name;
  if (d.classNames) out.classNames = d.classNames;
  return out;
}

/** Every item of a labelled single-input data source, in memory. */
async function readAllLabelled(src: DataSource): Promise<TrainData> {
  const spec = src.inputs[0];
  if (!src.labeled)
    throw new InputError('qat-labels', `QAT fine-tunes on labelled data: ${src.name} has no labels`, {
      value: src.name,
    });
  if (src.inputs.length !== 1 || !spec || spec.dtype !== 'float32')
    throw new UnsupportedError(
      'qat-inputs',
      `QAT trains models with one float32 input: ${src.name} feeds ${src.inputs.length}`,
      {
        value: src.name,
      },
    );
  const px = spec.shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(src.n * px);
  const y = new BigInt64Array(src.n);
  let k = 0;
  let maxLabel = 0;
  for (let s = 0; s < src.n; s += 1024) {
    const b = await src.read(Uint32Array.from({ length: Math.min(1024, src.n - s) }, (_, i) => s + i));
    x.set(b.feeds[spec.name]!.data as Float32Array, k * px);
    y.set(b.labels!, k);
    for (const l of b.labels!) if (Number(l) > maxLabel) maxLabel = Number(l);
    k += b.n;
  }
  const out: TrainData = {
    n: k,
    x: x.subarray(0, k * px),
    y: y.subarray(0, k),
    inputShape: [...spec.shape],
    numClasses: src.numClasses ?? maxLabel + 1,
    name: src.name,
  };
  if (src.classNames) out.classNames = src.classNames;
  return out;
}

/**
 * QAT's training rows: `--train-data`, else the train split of a built-in `--data` / `--calib-data` (never the
 * rows the accuracy is measured on); `--train-limit` rows of it (seeded), `--val-split` of them held out.
 */
async function qatTrainingData(p: Parsed, model: Model, seed: number, io: Io): Promise<QatData> {
  const given = p.values['train-data'];
  const spec =
    typeof given === 'string'
      ? given
      : [p.values.data, p.values['calib-data']].find(
          (v): v is string => typeof v === 'string' && isDatasetName(v),
        );
  if (!spec)
    throw new InputError(
      'qat-data',
      'QAT fine-tunes on labelled training data: give --train-data <data>, or a built-in dataset as --data (its train split is used)',
      { value: 'train-data' },
    );
  const limit = intOption(p, 'train-limit', { min: 2 });
  let full: TrainData;
  let name: string;
  if (isDatasetName(spec)) {
    let ds = loadDataset(spec, 'train');
    if (limit !== undefined) ds = subset(ds, limit, seed);
    full = ds;
    name = `${spec} (train split${limit !== undefined ? `, ${ds.n} rows` : ''})`;
  } else {
    const src = await openDataArg(p, {
      flag: 'train-data',
      model,
      needLabels: 'edgefit quantize --mode qat',
    });
    try {
      full = await readAllLabelled(src);
    } finally {
      await src.close();
    }
    if (limit !== undefined && limit < full.n)
      full = takeRows(full, permutation(full.n, seed).subarray(0, limit));
    name = src.name;
  }
  const valRows =
    intOption(p, 'val-split', { min: 0 }) ?? (full.n >= 50_000 ? 5000 : Math.floor(full.n / 10));
  if (valRows >= full.n)
    throw new InputError(
      'option',
      `--val-split ${valRows} leaves no training rows (the training data has ${full.n} rows)`,
      {
        value: 'val-split',
      },
    );
  if (!io.quiet)
    io.err(
      `quantize: QAT training data: ${full.n - valRows} row(s) of ${name}, ${valRows} held out for validation\n`,
    );
  if (valRows === 0) return { data: full, name };
  // the same split as `edgefit train`: the last valRows of a seeded permutation
  const perm = permutation(full.n, mixSeed(seed, 0x7a1d));
  const isVal = new Uint8Array(full.n);
  for (let i = full.n - valRows; i < full.n; i++) isVal[perm[i]!] = 1;
  const tr: number[] = [];
  const va: number[] = [];
  for (let i = 0; i < full.n; i++) (isVal[i] ? va : tr).push(i);
  return { data: takeRows(full, tr), val: takeRows(full, va), name };
}

/** The QAT figures for --json. */
function qatJson(
  r: QatResult,
  d: QatData,
  o: { epochs: number; lr: number; batchSize: number; learnScales: boolean },
) {
  return {
    trainData: d.name,
    trainRows: d.data.n,
    valRows: d.val?.n ?? 0,
    epochs: o.epochs,
    lr: o.lr,
    batchSize: o.batchSize,
    learnScales: o.learnScales,
    start: r.start ?? null,
    exportedEpoch: r.epoch,
    history: r.history,
    scales: r.scales,
    seconds: r.seconds,
  };
}

function qatLines(q: ReturnType<typeof qatJson>): string[] {
  const best = q.history.find((h) => h.epoch === q.exportedEpoch);
  return [
    `QAT: ${q.epochs} epoch(s) on ${q.trainRows} row(s) of ${q.trainData}, lr ${q.lr} (cosine), ${q.learnScales ? 'learned' : 'calibrated'} activation scales, ${q.seconds.toFixed(1)} s`,
    q.start && q.valRows
      ? `QAT validation accuracy: start (static INT8) ${pct(q.start.valAccuracy)} → ${q.exportedEpoch === 0 ? 'no better epoch: exported the start' : `epoch ${q.exportedEpoch} ${pct(best?.valAccuracy ?? NaN)}`}`
      : '',
  ].filter(Boolean);
}

export const quantizeCommand: Command = {
  name: 'quantize',
  summary:
    'Quantize a model for ORT CPU: dynamic/static INT8, INT4 weights (MatMulNBits), FP16, QAT (INT8 fine-tuned with fake quantization); --auto picks the first method that holds an accuracy gate.',
  usage:
    '<in.onnx> <out.onnx> --mode dynamic|static|int4|fp16|qat [--calib-data <data> --calib-samples N --calibrator minmax|percentile|entropy|mse --block-size N --exclude …] [--data <data>] [--train-data <data> --epochs N --lr X] | --auto --data <data> --max-drop <points>',
  positionals: [
    { name: 'in.onnx', description: 'float32 model' },
    { name: 'out.onnx', description: 'where to write the quantized model' },
  ],
  options: {
    mode: { type: 'string', valueName: 'mode', description: `${QUANT_MODES.join(' | ')}` },
    auto: {
      type: 'boolean',
      description: 'static INT8, then mixed precision, then QAT: the first that holds --max-drop on --data',
    },
    data: {
      type: 'string',
      valueName: 'data',
      description:
        'labelled data for accuracy before/after and the --auto gate (built-in datasets: test split; also the calibration set when --calib-data is not given: train split)',
    },
    'max-drop': {
      type: 'string',
      valueName: 'points',
      description: 'largest allowed accuracy drop in percentage points (--auto)',
      default: '1',
    },
    'eval-samples': {
      type: 'string',
      valueName: 'N',
      description: 'evaluate on N items of --data drawn at random (fixed seed; default all)',
    },
    'calib-data': {
      type: 'string',
      valueName: 'data',
      description: 'calibration data (built-in datasets: train split)',
    },
    'calib-samples': {
      type: 'string',
      valueName: 'N',
      description: 'calibration items, a seeded random choice',
      default: '512',
    },
    calibrator: {
      type: 'string',
      valueName: 'name',
      description: CALIBRATORS.join(' | '),
      default: 'minmax',
    },
    percentile: {
      type: 'string',
      valueName: 'P',
      description: 'percentile calibrator: share of values kept in range, %',
      default: '99.999',
    },
    'activation-type': {
      type: 'string',
      valueName: 'uint8|int8',
      description: 'static: activation type (both fuse into integer kernels with ORT 1.30)',
      default: 'uint8',
    },
    'per-tensor': {
      type: 'boolean',
      description: 'static/dynamic: one weight scale per tensor instead of per output channel',
    },
    'matmul-activations': {
      type: 'boolean',
      description: 'static: also quantize MatMuls of two activations (attention)',
    },
    'block-size': {
      type: 'string',
      valueName: 'N',
      description: 'int4: block size along K (power of two ≥ 16: 32, 64, 128)',
      default: '32',
    },
    'int4-method': {
      type: 'string',
      valueName: 'rtn|gptq',
      description: 'int4: round to nearest, or GPTQ with calibration activations',
      default: 'rtn',
    },
    asymmetric: { type: 'boolean', description: 'int4: blocks with zero points' },
    'accuracy-level': {
      type: 'string',
      valueName: 'N',
      description: 'int4: MatMulNBits accuracy_level (0: float32 A; 4: int8 A, faster)',
      default: '0',
    },
    include: {
      type: 'string',
      valueName: 'a,b',
      description: 'quantize only these node names / op types (op:X, node:Y to be explicit)',
    },
    exclude: { type: 'string', valueName: 'a,b', description: 'keep these node names / op types float' },
    'keep-fp32': {
      type: 'string',
      valueName: 'a,b',
      description: 'fp16: node names / op types kept float32',
    },
    'no-optimize': {
      type: 'boolean',
      description: 'skip the clean-up and fusion passes (BatchNorm folding, constant folding, …) run first',
    },
    'train-data': {
      type: 'string',
      valueName: 'data',
      description:
        'qat: labelled rows to fine-tune on (default: the train split of a built-in --data / --calib-data)',
    },
    'train-limit': {
      type: 'string',
      valueName: 'N',
      description: 'qat: fine-tune on a seeded, class-balanced subset of N training rows',
    },
    'val-split': {
      type: 'string',
      valueName: 'N',
      description:
        'qat: training rows held out (seeded) to pick the best epoch (default 5000, or 10 % below 50,000)',
    },
    epochs: { type: 'string', valueName: 'N', description: 'qat: fine-tuning epochs', default: '1' },
    lr: {
      type: 'string',
      valueName: 'X',
      description: 'qat: peak learning rate of the cosine schedule (SGD, momentum 0.9)',
      default: '0.005',
    },
    batch: { type: 'string', valueName: 'N', description: 'qat: batch size', default: '64' },
    'fixed-scales': {
      type: 'boolean',
      description: 'qat: keep the calibrated activation scales (default: learn them, LSQ)',
    },
    seed: {
      type: 'string',
      valueName: 'N',
      description: 'seed of the calibration sample and of QAT (subset, validation split, shuffling)',
      default: '0',
    },
    threads: { type: 'string', valueName: 'N', description: 'ORT intra-op threads (default: all cores)' },
    ...DATA_FLAGS,
    ...SAVE_OPTIONS,
  },
  examples: [
    'edgefit quantize cnn-s.onnx cnn-s.int8.onnx --mode static --calib-data fashion-mnist --data fashion-mnist --json',
    'edgefit quantize mlp.onnx mlp.q4.onnx --mode int4 --block-size 32 --int4-method gptq --calib-data fashion-mnist',
    'edgefit quantize encoder.onnx encoder.dyn.onnx --mode dynamic',
    'edgefit quantize model.onnx model.fp16.onnx --mode fp16 --keep-fp32 Softmax',
    'edgefit quantize cnn-s.onnx cnn-s.qat.onnx --mode qat --data fashion-mnist --epochs 1 --json',
    'edgefit quantize cnn-s.onnx out.onnx --auto --data fashion-mnist --max-drop 0.5',
  ],
  async run(p, io) {
    const [input, output] = p.positionals as [string, string];
    const auto = !!p.values.auto;
    const mode = stringOption(p, 'mode', QUANT_MODES) ?? (auto ? 'static' : undefined);
    if (!mode)
      throw new InputError('usage', `edgefit quantize needs --mode (${QUANT_MODES.join(', ')}) or --auto`, {
        value: 'mode',
      });
    if (auto && mode !== 'static')
      throw new InputError(
        'usage',
        '--auto chooses between static INT8, mixed precision and QAT: do not combine it with --mode',
        { value: 'mode' },
      );
    const calibrator = stringOption(p, 'calibrator', CALIBRATORS) ?? 'minmax';
    const percentile = numberOption(p, 'percentile', 50, 100) ?? 99.999;
    const activationType = stringOption(p, 'activation-type', ['uint8', 'int8'] as const) ?? 'uint8';
    const blockSize = intOption(p, 'block-size', { min: 16, max: 4096 }) ?? 32;
    const int4Method = stringOption(p, 'int4-method', INT4_METHODS) ?? 'rtn';
    const accuracyLevel = intOption(p, 'accuracy-level', { min: 0, max: 4 }) ?? 0;
    const calibSamples = intOption(p, 'calib-samples', { min: 1 }) ?? 512;
    const evalSamples = intOption(p, 'eval-samples', { min: 1 });
    const seed = intOption(p, 'seed', { min: 0, max: 2 ** 32 - 1 }) ?? 0;
    const threads = intOption(p, 'threads', { min: 1, max: 256 });
    const maxDrop = numberOption(p, 'max-drop', 0, 100) ?? 1;
    const qatOpts = {
      epochs: intOption(p, 'epochs', { min: 1, max: 1000 }) ?? 1,
      lr: numberOption(p, 'lr', 0, 10) ?? 0.005,
      batchSize: intOption(p, 'batch', { min: 1, max: 65536 }) ?? 64,
      learnScales: !p.values['fixed-scales'],
    };
    const log = io.quiet ? () => {} : (s: string) => io.err(`quantize: ${s}\n`);

    const original = loadModel(input);
    assertValid(original.graph, { opsetImports: original.opsetImports }, input);
    const bytesBefore = encodeModel(original).byteLength;

    // QAT's training rows (checked before anything slow)
    const qatData = mode === 'qat' && !auto ? await qatTrainingData(p, original, seed, io) : undefined;

    const needsCalib = auto || mode === 'static' || (mode === 'int4' && int4Method === 'gptq');
    // QAT calibrates on --calib-data / --data like static INT8 when given, else on its training rows
    const calibration =
      needsCalib || mode === 'qat' ? await calibrationData(p, original, io, calibSamples, seed) : undefined;
    if (needsCalib && !calibration)
      throw new InputError(
        'calib-missing',
        `--mode ${mode}${mode === 'int4' ? ' --int4-method gptq' : ''}${auto ? ' (--auto)' : ''} needs calibration data: --calib-data <data> (or --data)`,
        {
          value: 'calib-data',
        },
      );

    // labelled data for accuracy before/after and the gate
    let evalSrc: DataSource | undefined;
    if (p.values.data !== undefined)
      evalSrc = await openDataArg(p, {
        model: original,
        split: 'test',
        needLabels: 'edgefit quantize --data',
        ...(evalSamples !== undefined ? { limit: evalSamples } : {}),
      });
    if (auto && !evalSrc)
      throw new InputError('usage', '--auto needs --data (labelled data for the accuracy gate)', {
        value: 'data',
      });
    try {
      const score = async (m: Model) =>
        (await evaluate(m, evalSrc!, { threads, batchSize: 256, label: 'a candidate model' })).accuracy;
      const accuracyBefore = evalSrc ? await score(original) : undefined;
      if (accuracyBefore !== undefined)
        log(`float model accuracy ${pct(accuracyBefore)} on ${evalSrc!.name} (${evalSrc!.n} items)`);

      const common = {
        include: list(p, 'include'),
        exclude: list(p, 'exclude'),
        calibration,
        calibrator: calibrator as CalibratorName,
        percentile,
        threads,
        activationType: activationType as QType,
        perChannel: !p.values['per-tensor'],
        matmulActivations: !!p.values['matmul-activations'],
      };
      let result: QuantizeResult | undefined;
      let autoResult: AutoResult | undefined;
      let model: Model;
      let qatRun: { r: QatResult; d: QatData } | undefined;
      let qatSkipped: string | undefined;
      const qatTrainOptions = (d: QatData) => ({
        data: d.data,
        ...(d.val ? { val: d.val } : {}),
        epochs: qatOpts.epochs,
        lr: { kind: 'cosine' as const, lr: qatOpts.lr },
        batchSize: qatOpts.batchSize,
        learnScales: qatOpts.learnScales,
        seed,
        ...(threads !== undefined ? { threads } : {}),
        log,
        progress: { quiet: io.quiet, label: 'qat' },
        prepared: !!p.values['no-optimize'],
      });
      if (auto) {
        let m = original;
        const notes: string[] = [];
        if (!p.values['no-optimize']) {
          const prep = await prepareForQuantization(m);
          m = prep.model;
          notes.push(...prep.notes);
        }
        // the QAT step: training rows are resolved only if auto gets that far
        const qat = async (qm: Model, ctx: Parameters<ReturnType<typeof qatHook>>[1]) => {
          let d: QatData;
          try {
            d = await qatTrainingData(p, original, seed, io);
          } catch (e) {
            if (!(e instanceof InputError)) throw e;
            qatSkipped = e.message;
            log(`QAT skipped: ${e.message}`);
            return undefined;
          }
          return qatHook({
            ...qatTrainOptions(d),
            onResult: (r) => (qatRun = { r, d }),
          })(qm, ctx);
        };
        try {
          autoResult = await autoQuantize(m, { ...common, score, maxDrop, log, qat });
        } catch (e) {
          if (e instanceof UnsupportedError && e.code === 'nothing-to-quantize')
            throw nothingQuantized(
              input,
              'auto',
              original,
              !!list(p, 'include')?.length || !!list(p, 'exclude')?.length,
            );
          throw e;
        }
        if (!autoResult.model) {
          const lines = autoResult.steps.map(
            (s) =>
              `  ${s.method}: ${s.status}${s.drop !== null ? ` (drop ${s.drop.toFixed(2)} points)` : ''}: ${s.note}`,
          );
          throw new GateError(
            'quant-gate',
            `No quantization method holds the gate (accuracy drop ≤ ${maxDrop} points from ${pct(autoResult.baseline)}); nothing was written:\n${lines.join('\n')}\nStopped: ${autoResult.stoppedBecause}`,
            {
              file: input,
            },
          );
        }
        model = autoResult.model;
        result = { model, mode: 'static', nodes: [], notes };
      } else if (mode === 'qat') {
        const d = qatData!;
        const r = await quantizeAwareTrain(original, { ...common, ...qatTrainOptions(d) });
        qatRun = { r, d };
        result = {
          model: r.model,
          mode: 'qat',
          nodes: r.plan.nodes,
          notes: r.notes,
          plan: r.plan,
          ranges: r.ranges.final,
        };
        model = result.model;
      } else {
        result = await quantize(original, {
          ...common,
          mode: mode as QuantMode,
          optimize: !p.values['no-optimize'],
          method: int4Method as Int4Method,
          blockSize,
          symmetric: !p.values.asymmetric,
          accuracyLevel,
          keepFloat32: list(p, 'keep-fp32'),
        });
        model = result.model;
      }
      if (!auto && result.nodes.length === 0)
        throw nothingQuantized(
          input,
          mode,
          original,
          !!list(p, 'include')?.length || !!list(p, 'exclude')?.length,
        );
      assertValid(model.graph, { opsetImports: model.opsetImports }, `the quantized ${input}`);
      const kernels = await ortKernels(model);
      const accuracyAfter = evalSrc ? await score(model) : undefined;
      const saved = saveOutput(p, model, output);
      const bytesAfter = saved.modelBytes + saved.dataBytes;
      const drop =
        accuracyBefore !== undefined && accuracyAfter !== undefined
          ? (accuracyBefore - accuracyAfter) * 100
          : undefined;
      const json = {
        input,
        output,
        mode: auto ? `auto:${autoResult!.chosen}` : mode,
        bytesBefore,
        bytesAfter,
        dataFile: saved.dataFile ?? null,
        ratio: bytesAfter / bytesBefore,
        ...(accuracyBefore !== undefined ? { accuracyBefore, accuracyAfter, drop } : {}),
        nodes: result.nodes,
        skipped: result.plan?.skipped ?? [],
        weightBytes: result.weightBytes ?? null,
        calibration: result.calibration
          ? {
              calibrator: result.calibration.calibrator,
              samples: result.calibration.samples,
              seconds: result.calibration.seconds,
              tensors: result.calibration.stats.size,
            }
          : calibration
            ? { samples: calibration.reduce((a, f) => a + (Object.values(f)[0]?.dims[0] ?? 0), 0) }
            : null,
        kernels: kernels.ops,
        integerKernels: kernels.integer,
        floatComputeKernels: kernels.floatCompute,
        notes: result.notes,
        ...(qatRun
          ? { qat: qatJson(qatRun.r, qatRun.d, qatOpts) }
          : qatSkipped
            ? { qat: { skipped: qatSkipped } }
            : {}),
        ...(autoResult
          ? {
              auto: {
                chosen: autoResult.chosen,
                baseline: autoResult.baseline,
                maxDrop,
                steps: autoResult.steps,
                stoppedBecause: autoResult.stoppedBecause,
              },
            }
          : {}),
      };
      const lines = [
        `${input} → ${output} (${json.mode}): ${fmtBytes(bytesBefore)} → ${fmtSaved(saved)} (${(json.ratio * 100).toFixed(1)} %)`,
        accuracyBefore !== undefined
          ? `accuracy ${pct(accuracyBefore)} → ${pct(accuracyAfter!)} (${drop! >= 0 ? '−' : '+'}${Math.abs(drop!).toFixed(2)} points) on ${evalSrc!.name}`
          : '',
        result.weightBytes
          ? `quantized weights: ${fmtBytes(result.weightBytes.before)} → ${fmtBytes(result.weightBytes.after)} (${((result.weightBytes.after / result.weightBytes.before) * 100).toFixed(1)} %)`
          : '',
        result.calibration
          ? `calibration: ${result.calibration.calibrator}, ${result.calibration.samples} samples, ${result.calibration.stats.size} tensors, ${result.calibration.seconds.toFixed(2)} s`
          : '',
        `ORT kernels: ${Object.entries(kernels.ops)
          .map(([k, v]) => `${k.replace('com.microsoft:', '')} ×${v}`)
          .join(', ')}`,
        ...(qatRun ? qatLines(qatJson(qatRun.r, qatRun.d, qatOpts)) : []),
        ...result.notes,
      ].filter(Boolean);
      if (autoResult)
        lines.push(
          '',
          table(
            ['method', 'status', 'accuracy', 'drop (points)', 'note'],
            autoResult.steps.map((s) => [
              s.method,
              s.status,
              s.accuracy !== null ? pct(s.accuracy) : '-',
              s.drop !== null ? s.drop.toFixed(2) : '-',
              s.note,
            ]),
          ),
          `stopped: ${autoResult.stoppedBecause}`,
        );
      return { json, text: lines.join('\n') };
    } finally {
      await evalSrc?.close();
    }
  },
};
