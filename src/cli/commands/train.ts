// `edgefit train --model … --data … --epochs N --out …`: flag parsing, one call of the library's train()
// (src/api/train.ts), printing.
import type { TrainOutcome } from '../../api/train.js';
import { DATA_FORMATS_HELP } from '../../data/names.js';
import { InputError } from '../../errors.js';
import type { OptimizerSpec } from '../../train/types.js';
import {
  type Command,
  fmtSaved,
  intOption,
  numberOption,
  outputOptions,
  type Parsed,
  pct,
  SAVE_OPTIONS,
  stringOption,
  table,
} from '../command.js';
import { DATA_FLAGS, dataOptions } from '../dataflags.js';

const OPTIMIZERS = ['sgd', 'adamw'] as const;
const SCHEDULES = ['constant', 'cosine', 'step'] as const;

function required(p: Parsed, name: string, what: string): string {
  const v = p.values[name];
  if (typeof v !== 'string' || v === '')
    throw new InputError('usage', `--${name} is required: ${what} (see \`edgefit train --help\`)`, {
      value: name,
    });
  return v;
}

export const trainCommand: Command = {
  name: 'train',
  summary:
    'Train a model (a SPEC model from scratch, or the float initializers of an ONNX file) with ONNX Runtime.',
  usage:
    '--model mlp|cnn-s|vit-t|<model.onnx> --data fashion-mnist|mnist --epochs N --out <model.onnx> [--optimizer sgd|adamw] [--lr X] [--batch N] [--schedule constant|cosine|step] [--warmup N] [--val-split N] [--checkpoint <ckpt>] [--resume <ckpt>]',
  positionals: [],
  options: {
    model: {
      type: 'string',
      valueName: 'name|file',
      description: 'mlp | cnn-s | vit-t (built, seeded by --seed) or an ONNX classifier to re-train',
    },
    data: {
      type: 'string',
      valueName: 'data',
      description: `labelled training data: ${DATA_FORMATS_HELP} (built-in: the train split)`,
    },
    'test-data': {
      type: 'string',
      valueName: 'data',
      description: 'labelled data for the final test accuracy (default: the test split of a built-in --data)',
    },
    ...DATA_FLAGS,
    epochs: {
      type: 'string',
      valueName: 'N',
      description: 'epochs to train (a resumed run continues up to N)',
    },
    out: {
      type: 'string',
      valueName: 'model.onnx',
      description: 'where to write the trained inference model (atomically)',
    },
    optimizer: {
      type: 'string',
      valueName: 'sgd|adamw',
      description: 'default: adamw for vit-t, sgd otherwise (SPEC)',
    },
    lr: {
      type: 'string',
      valueName: 'X',
      description: 'learning rate (default 0.05 for sgd, 1e-3 for adamw)',
    },
    momentum: { type: 'string', valueName: 'X', description: 'sgd momentum', default: '0.9' },
    'weight-decay': {
      type: 'string',
      valueName: 'X',
      description: 'weight decay (default 0 for sgd, 0.01 for adamw)',
    },
    batch: { type: 'string', valueName: 'N', description: 'batch size', default: '64' },
    seed: {
      type: 'string',
      valueName: 'N',
      description: 'seed of shuffling, the validation split and (built models) initialisation',
      default: '0',
    },
    schedule: {
      type: 'string',
      valueName: 'kind',
      description: 'constant | cosine (to 0 over the run) | step (× --gamma every --step-every epochs)',
      default: 'cosine',
    },
    warmup: {
      type: 'string',
      valueName: 'N',
      description: 'linear lr warm-up over the first N steps',
      default: '0',
    },
    'step-every': {
      type: 'string',
      valueName: 'N',
      description: 'step schedule: multiply the lr by --gamma every N epochs',
      default: '1',
    },
    gamma: { type: 'string', valueName: 'X', description: 'step schedule decay factor', default: '0.1' },
    'val-split': {
      type: 'string',
      valueName: 'N',
      description:
        'rows of the train split held out (seeded) for validation; 0 = none (default 5000, or 10 % of a --limit below 50,000)',
    },
    patience: {
      type: 'string',
      valueName: 'N',
      description: 'early stopping: stop after N epochs without a better validation accuracy',
    },
    last: {
      type: 'boolean',
      description: "write the last epoch's weights, not the best epoch's by validation accuracy",
    },
    limit: {
      type: 'string',
      valueName: 'N',
      description:
        'train on a seeded, class-balanced subset of N rows of the train split (a path: a seeded random sample of N items, read instead of the whole set)',
    },
    'test-limit': {
      type: 'string',
      valueName: 'N',
      description:
        'test accuracy on a seeded, class-balanced subset of N test rows (a path: a seeded random sample)',
    },
    checkpoint: {
      type: 'string',
      valueName: 'ckpt',
      description: 'write a checkpoint (atomically) after every --checkpoint-every epochs',
    },
    'checkpoint-every': {
      type: 'string',
      valueName: 'N',
      description: 'epochs between checkpoints',
      default: '1',
    },
    resume: {
      type: 'string',
      valueName: 'ckpt',
      description:
        'continue from a checkpoint (same --model, --data, --seed, --batch, --limit, --val-split; same --epochs and --schedule for the same result)',
    },
    threads: { type: 'string', valueName: 'N', description: 'ORT intra-op threads (default: all cores)' },
    ...SAVE_OPTIONS,
  },
  examples: [
    'edgefit train --model cnn-s --data fashion-mnist --epochs 3 --out cnn-s.onnx',
    'edgefit train --model vit-t --data fashion-mnist --epochs 10 --warmup 200 --out vit-t.onnx --checkpoint vit-t.ckpt',
    'edgefit train --model cnn-s --data fashion-mnist --epochs 3 --schedule constant --val-split 0 --out cnn-s.onnx   # the PyTorch reference recipe',
    'edgefit train --model cnn-s.onnx --data fashion-mnist --epochs 1 --lr 0.005 --out cnn-s.ft.onnx --json | jq .testAccuracy',
  ],
  async run(p, io) {
    const modelArg = required(p, 'model', 'mlp, cnn-s, vit-t or an ONNX file');
    const dataArg = required(p, 'data', 'fashion-mnist or mnist');
    const epochs = intOption(p, 'epochs', { min: 1, max: 100_000 });
    if (epochs === undefined)
      throw new InputError('usage', '--epochs is required (see `edgefit train --help`)', { value: 'epochs' });
    const out = required(p, 'out', 'the output ONNX file');
    const optName = stringOption(p, 'optimizer', OPTIMIZERS) ?? (modelArg === 'vit-t' ? 'adamw' : 'sgd');
    const momentum = numberOption(p, 'momentum', { min: 0, max: 1 }) ?? 0.9;
    const weightDecay = numberOption(p, 'weight-decay', { min: 0 }) ?? (optName === 'adamw' ? 0.01 : 0);
    const optimizer: OptimizerSpec =
      optName === 'adamw'
        ? { kind: 'adamw', weightDecay }
        : { kind: 'sgd', momentum, ...(weightDecay ? { weightDecay } : {}) };
    if (p.values.resume !== undefined) required(p, 'resume', 'a checkpoint file');
    if (p.values.checkpoint !== undefined) required(p, 'checkpoint', 'a checkpoint file');
    const checkpoint = p.values.checkpoint as string | undefined;
    const testData = p.values['test-data'] as string | undefined;
    const opts = {
      data: dataArg,
      ...(testData !== undefined ? { testData } : {}),
      epochs,
      seed: intOption(p, 'seed', { min: 0, max: 2 ** 32 - 1 }) ?? 0,
      batchSize: intOption(p, 'batch', { min: 1, max: 65536 }) ?? 64,
      threads: intOption(p, 'threads', { min: 1, max: 256 }),
      limit: intOption(p, 'limit', { min: 1 }),
      testLimit: intOption(p, 'test-limit', { min: 1 }),
      valRows: intOption(p, 'val-split', { min: 0 }),
      patience: intOption(p, 'patience', { min: 0, max: 100_000 }),
      optimizer,
      schedule: {
        kind: stringOption(p, 'schedule', SCHEDULES) ?? 'cosine',
        lr: numberOption(p, 'lr', { min: 0 }) ?? (optName === 'adamw' ? 1e-3 : 0.05),
        warmup: intOption(p, 'warmup', { min: 0 }) ?? 0,
        stepEvery: intOption(p, 'step-every', { min: 1 }) ?? 1,
        gamma: numberOption(p, 'gamma', { min: 0, minExclusive: true }) ?? 0.1,
      },
      keepBest: !p.values.last,
      ...(checkpoint
        ? { checkpoint: { path: checkpoint, everyEpochs: intOption(p, 'checkpoint-every', { min: 1 }) ?? 1 } }
        : {}),
      ...(p.values.resume ? { resume: p.values.resume as string } : {}),
      read: dataOptions(p),
      out: outputOptions(p, out),
      quiet: io.quiet,
    };
    const { train } = await import('../../api/train.js');
    const r = await train(modelArg, opts);
    return { json: trainJson(modelArg, dataArg, out, r), text: trainText(modelArg, dataArg, out, r) };
  },
};

function trainJson(model: string, data: string, output: string, r: TrainOutcome) {
  const d = r.report.detail;
  const t = d.result;
  return {
    model,
    data,
    output,
    modelBytes: r.saved!.modelBytes,
    dataBytes: r.saved!.dataBytes,
    dataFile: r.saved?.dataFile ?? null,
    optimizer: d.optimizer,
    schedule: d.schedule,
    batch: d.batch,
    seed: d.seed,
    trainRows: d.trainRows,
    valRows: d.valRows,
    testRows: r.testRows,
    epochs: t.history.length,
    epochOfModel: t.epoch,
    ...(t.bestEpoch !== undefined ? { bestEpoch: t.bestEpoch } : {}),
    ...(t.stopped ? { stopped: t.stopped } : {}),
    steps: t.steps,
    testAccuracy: r.testAccuracy,
    seconds: t.seconds,
    history: t.history,
    opsetUpgrade: r.prepared?.opsetUpgrade ?? null,
    unshared: r.prepared?.unshared ?? {},
  };
}

function trainText(model: string, data: string, out: string, r: TrainOutcome): string {
  const d = r.report.detail;
  const t = d.result;
  const rows = t.history.map((h) => [
    h.epoch,
    h.trainLoss.toFixed(4),
    pct(h.trainAccuracy),
    h.valLoss !== undefined ? h.valLoss.toFixed(4) : '-',
    h.valAccuracy !== undefined ? pct(h.valAccuracy) : '-',
    h.lr.toPrecision(3),
    h.seconds.toFixed(1),
  ]);
  return [
    table(['epoch', 'train loss', 'train acc', 'val loss', 'val acc', 'lr', 'seconds'], rows),
    '',
    `${model} on ${data} (${d.trainRows} train / ${d.valRows} val rows): ${r.testRows ? `test accuracy ${pct(r.testAccuracy ?? 0)} on ${r.testRows} rows` : 'no test data (give --test-data)'}` +
      `, epoch ${t.epoch} weights${t.stopped === 'early-stopping' ? ' (stopped early)' : ''} → ${out} (${r.saved ? fmtSaved(r.saved) : '-'}), ${t.seconds.toFixed(1)} s`,
  ].join('\n');
}
