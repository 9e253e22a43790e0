// `edgefit quantize <in.onnx> <out.onnx> --mode dynamic|static|int4|fp16|qat | --auto --data … --max-drop …`:
// flag parsing, one call of the library's quantize() (src/api/quantize.ts), printing.
import type { QuantizeOutcome } from '../../api/quantize.js';
import type { QatDetail } from '../../stage/quantize.js';
import { InputError } from '../../errors.js';
import {
  type Command,
  fmtBytes,
  fmtSaved,
  intOption,
  listOption,
  numberOption,
  outputOptions,
  pct,
  stringOption,
  table,
  SAVE_OPTIONS,
} from '../command.js';
import { DATA_FLAGS, dataOptions } from '../dataflags.js';

import { CALIBRATORS, INT4_METHODS, QUANT_MODES } from '../../passes/names.js';

function qatLines(q: QatDetail): string[] {
  const best = q.history.find((h) => h.epoch === q.exportedEpoch);
  return [
    `QAT: ${q.epochs} epoch(s) on ${q.trainRows} row(s) of ${q.trainData}, lr ${q.lr} (cosine), ${q.learnScales ? 'learned' : 'calibrated'} activation scales, ${q.seconds.toFixed(1)} s`,
    q.start && q.valRows
      ? `QAT validation accuracy: start (static INT8) ${pct(q.start.valAccuracy)} → ${q.exportedEpoch === 0 ? 'no better epoch: exported the start' : `epoch ${q.exportedEpoch} ${pct(best?.valAccuracy ?? NaN)}`}`
      : '',
  ].filter(Boolean);
}

/** The --json object (fields as documented in README). */
function quantizeJson(input: string, output: string, r: QuantizeOutcome) {
  const d = r.report.detail;
  const a = r.accuracy;
  return {
    input,
    output,
    mode: d.mode,
    bytesBefore: r.bytesBefore,
    bytesAfter: r.bytesAfter,
    dataFile: r.saved?.dataFile ?? null,
    ratio: r.bytesAfter / r.bytesBefore,
    // accuracies are fractions (0..1); drop and dropPoints are percentage points, as --max-drop
    ...(a ? { accuracyBefore: a.before, accuracyAfter: a.after, drop: a.drop, dropPoints: a.drop } : {}),
    nodes: d.nodes,
    opsetUpgrade: d.opsetUpgrade,
    skipped: d.skipped,
    weightBytes: d.weightBytes,
    calibration: d.calibration,
    kernels: d.kernels.ops,
    integerKernels: d.kernels.integer,
    floatComputeKernels: d.kernels.floatCompute,
    notes: r.report.notes.map((n) => n.text),
    warnings: r.warnings,
    ...(d.qat ? { qat: d.qat } : {}),
    ...(d.auto ? { auto: d.auto } : {}),
  };
}

function quantizeText(input: string, output: string, r: QuantizeOutcome): string {
  const d = r.report.detail;
  const a = r.accuracy;
  const c = d.calibration && 'calibrator' in d.calibration ? d.calibration : undefined;
  const lines = [
    `${input} → ${output} (${d.mode}): ${fmtBytes(r.bytesBefore)} → ${r.saved ? fmtSaved(r.saved) : fmtBytes(r.bytesAfter)} (${((r.bytesAfter / r.bytesBefore) * 100).toFixed(1)} %)`,
    a
      ? `accuracy ${pct(a.before)} → ${pct(a.after)} (${a.drop >= 0 ? '−' : '+'}${Math.abs(a.drop).toFixed(2)} points) on ${a.data}`
      : '',
    d.weightBytes
      ? `quantized weights: ${fmtBytes(d.weightBytes.before)} → ${fmtBytes(d.weightBytes.after)} (${((d.weightBytes.after / d.weightBytes.before) * 100).toFixed(1)} %)`
      : '',
    c
      ? `calibration: ${c.calibrator}, ${c.samples} samples, ${c.tensors} tensors, ${c.seconds.toFixed(2)} s`
      : '',
    `ORT kernels: ${Object.entries(d.kernels.ops)
      .map(([k, v]) => `${k.replace('com.microsoft:', '')} ×${v}`)
      .join(', ')}`,
    ...(d.qat && 'history' in d.qat ? qatLines(d.qat) : []),
    ...r.report.notes.map((n) => n.text),
  ].filter(Boolean);
  if (d.auto)
    lines.push(
      '',
      table(
        ['method', 'status', 'accuracy', 'drop (points)', 'note'],
        d.auto.steps.map((s) => [
          s.method,
          s.status,
          s.accuracy !== null ? pct(s.accuracy) : '-',
          s.drop !== null ? s.drop.toFixed(2) : '-',
          s.note,
        ]),
      ),
      `stopped: ${d.auto.stoppedBecause}`,
    );
  return lines.join('\n');
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
    mode: {
      type: 'string',
      valueName: 'mode',
      description: `${QUANT_MODES.join(' | ')} (static runs integer Conv/Gemm kernels; fp16 and dynamic shrink the file but barely speed up convolutions on x86 CPUs)`,
    },
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
    const modeArg = p.values.mode;
    // the names people try first: say which modes they mean
    const alias: Record<string, string> = {
      int8: 'INT8 is --mode static (calibrated activations, integer kernels: QLinearConv/QGemm) or --mode dynamic (int8 weights, activations quantized at run time; MatMul/Gemm only)',
      uint8: 'use --mode static (uint8 activations by default) or --mode dynamic',
      float16: 'FP16 is --mode fp16',
      half: 'FP16 is --mode fp16',
      w4: 'INT4 weight-only is --mode int4',
      ptq: 'post-training quantization is --mode static (or dynamic)',
    };
    if (typeof modeArg === 'string' && alias[modeArg.toLowerCase()])
      throw new InputError(
        'option',
        `--mode must be one of ${QUANT_MODES.join(', ')}: current value is "${modeArg}" (${alias[modeArg.toLowerCase()]})`,
        { value: 'mode' },
      );
    const mode = stringOption(p, 'mode', QUANT_MODES);
    const str = (k: string) => stringOption(p, k);
    const { quantize } = await import('../../api/quantize.js');
    const r = await quantize(input, {
      ...(mode ? { mode } : {}),
      auto,
      ...(str('data') !== undefined ? { data: str('data')! } : {}),
      ...(str('calib-data') !== undefined ? { calibData: str('calib-data')! } : {}),
      ...(str('train-data') !== undefined ? { trainData: str('train-data')! } : {}),
      calibSamples: intOption(p, 'calib-samples', { min: 1 }) ?? 512,
      evalSamples: intOption(p, 'eval-samples', { min: 1 }),
      trainLimit: intOption(p, 'train-limit', { min: 2 }),
      valRows: intOption(p, 'val-split', { min: 0 }),
      calibrator: stringOption(p, 'calibrator', CALIBRATORS) ?? 'minmax',
      percentile: numberOption(p, 'percentile', { min: 50, max: 100 }) ?? 99.999,
      activationType: stringOption(p, 'activation-type', ['uint8', 'int8'] as const) ?? 'uint8',
      perChannel: !p.values['per-tensor'],
      matmulActivations: !!p.values['matmul-activations'],
      blockSize: intOption(p, 'block-size', { min: 16, max: 4096 }) ?? 32,
      method: stringOption(p, 'int4-method', INT4_METHODS) ?? 'rtn',
      symmetric: !p.values.asymmetric,
      accuracyLevel: intOption(p, 'accuracy-level', { min: 0, max: 4 }) ?? 0,
      include: listOption(p, 'include'),
      exclude: listOption(p, 'exclude'),
      keepFloat32: listOption(p, 'keep-fp32'),
      optimize: !p.values['no-optimize'],
      qat: {
        epochs: intOption(p, 'epochs', { min: 1, max: 1000 }) ?? 1,
        lr: numberOption(p, 'lr', { min: 0, max: 10 }) ?? 0.005,
        batchSize: intOption(p, 'batch', { min: 1, max: 65536 }) ?? 64,
        learnScales: !p.values['fixed-scales'],
      },
      maxDrop: numberOption(p, 'max-drop', { min: 0, max: 100 }) ?? 1,
      seed: intOption(p, 'seed', { min: 0, max: 2 ** 32 - 1 }) ?? 0,
      threads: intOption(p, 'threads', { min: 1, max: 256 }),
      read: dataOptions(p),
      out: outputOptions(p, output),
      log: io.quiet ? () => {} : (s: string) => io.err(`quantize: ${s}\n`),
      quiet: io.quiet,
    });
    return { json: quantizeJson(input, output, r), text: quantizeText(input, output, r) };
  },
};
