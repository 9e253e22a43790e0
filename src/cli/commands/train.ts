import {
  DATA_FORMATS_HELP,
  type Dataset,
  type Split,
  isDatasetName,
  materialize,
  mixSeed,
  permutation,
  subset,
  take,
} from '../../data/index.js';
import { InputError } from '../../errors.js';
import type { Model } from '../../ir/graph.js';
import { buildModel, isModelName } from '../../models/index.js';
import { loadModel } from '../../onnx/index.js';
import { runPasses, TRAINING_SAFE_PASSES } from '../../passes/index.js';
import type { ScheduleSpec } from '../../train/schedule.js';
import { train } from '../../train/trainer.js';
import type { OptimizerSpec } from '../../train/types.js';
import {
  type Command,
  fmtSaved,
  intOption,
  type Parsed,
  pct,
  SAVE_OPTIONS,
  saveOutput,
  stringOption,
  table,
} from '../command.js';
import { DATA_FLAGS } from '../dataflags.js';
import { openDataArg, resolveData } from '../datasource.js';

const OPTIMIZERS = ['sgd', 'adamw'] as const;
const SCHEDULES = ['constant', 'cosine', 'step'] as const;

/** A finite number option (or undefined when absent). */
function numberOption(
  p: Parsed,
  name: string,
  { min = -Infinity, max = Infinity, minExclusive = false } = {},
): number | undefined {
  const v = p.values[name];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < min || n > max || (minExclusive && n === min))
    throw new InputError(
      'option',
      `--${name} must be a number ${minExclusive ? '>' : '≥'} ${min}${max < Infinity ? ` and ≤ ${max}` : ''}: current value is "${String(v)}"`,
      {
        value: name,
      },
    );
  return n;
}

function required(p: Parsed, name: string, what: string): string {
  const v = p.values[name];
  if (typeof v !== 'string' || v === '')
    throw new InputError('usage', `--${name} is required: ${what} (see \`edgefit train --help\`)`, {
      value: name,
    });
  return v;
}

/**
 * Train / validation split of the train split: a seeded permutation of its rows, the last `valRows` of it held
 * out for validation (both parts keep the dataset's row order).
 */
export function splitValidation(
  ds: Dataset,
  valRows: number,
  seed: number,
): { train: Dataset; val?: Dataset } {
  if (valRows === 0) return { train: ds };
  if (valRows >= ds.n)
    throw new InputError(
      'option',
      `--val-split ${valRows} leaves no training rows (the training data has ${ds.n} rows)`,
      { value: 'val-split' },
    );
  const perm = permutation(ds.n, mixSeed(seed, 0x7a1d));
  const isVal = new Uint8Array(ds.n);
  for (let i = ds.n - valRows; i < ds.n; i++) isVal[perm[i]!] = 1;
  const tr: number[] = [];
  const va: number[] = [];
  for (let i = 0; i < ds.n; i++) (isVal[i] ? va : tr).push(i);
  return { train: take(ds, tr), val: take(ds, va) };
}

/**
 * The training and validation data of a run: the train split (a seeded class-balanced subset with --limit), its
 * last `valSplit` rows of a seeded permutation held out (default 5,000; 10 % below 50,000 rows). In a function so
 * the full split is garbage once it is split.
 */
function trainAndValidation(
  full: Dataset,
  limit: number | undefined,
  valSplit: number | undefined,
  seed: number,
) {
  if (limit !== undefined) full = subset(full, limit, seed);
  return splitValidation(full, valSplit ?? (full.n >= 50_000 ? 5000 : Math.floor(full.n / 10)), seed);
}

/**
 * Labelled rows of `--<flag>` in memory: a built-in split, or any other data source read whole — or, with `limit`,
 * a seeded random sample of `limit` of its items, drawn before anything is read (so --limit makes a data set too
 * large for memory trainable).
 */
async function loadLabelled(
  p: Parsed,
  flag: string,
  model: Model,
  split: Split,
  limit: number | undefined,
  seed: number,
): Promise<Dataset> {
  const spec = p.values[flag] as string;
  if (isDatasetName(spec)) return resolveData(spec, split);
  const src = await openDataArg(p, {
    flag,
    model,
    needLabels: 'edgefit train',
    ...(limit !== undefined ? { limit, limitSeed: seed } : {}),
  });
  try {
    return await materialize(src, split);
  } finally {
    await src.close();
  }
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
    const seed = intOption(p, 'seed', { min: 0, max: 2 ** 32 - 1 }) ?? 0;
    const batchSize = intOption(p, 'batch', { min: 1, max: 65536 }) ?? 64;
    const threads = intOption(p, 'threads', { min: 1, max: 256 });
    const limit = intOption(p, 'limit', { min: 1 });
    const testLimit = intOption(p, 'test-limit', { min: 1 });
    const patience = intOption(p, 'patience', { min: 0, max: 100_000 });
    const warmup = intOption(p, 'warmup', { min: 0 }) ?? 0;
    const stepEvery = intOption(p, 'step-every', { min: 1 }) ?? 1;
    const gamma = numberOption(p, 'gamma', { min: 0, minExclusive: true }) ?? 0.1;
    const scheduleKind = stringOption(p, 'schedule', SCHEDULES) ?? 'cosine';
    const everyEpochs = intOption(p, 'checkpoint-every', { min: 1 }) ?? 1;
    const builtin = isModelName(modelArg);
    const optName = stringOption(p, 'optimizer', OPTIMIZERS) ?? (modelArg === 'vit-t' ? 'adamw' : 'sgd');
    const lr = numberOption(p, 'lr', { min: 0 }) ?? (optName === 'adamw' ? 1e-3 : 0.05);
    const momentum = numberOption(p, 'momentum', { min: 0, max: 1 }) ?? 0.9;
    const weightDecay = numberOption(p, 'weight-decay', { min: 0 }) ?? (optName === 'adamw' ? 0.01 : 0);
    const optimizer: OptimizerSpec =
      optName === 'adamw'
        ? { kind: 'adamw', weightDecay }
        : { kind: 'sgd', momentum, ...(weightDecay ? { weightDecay } : {}) };
    if (p.values.resume !== undefined) required(p, 'resume', 'a checkpoint file');
    if (p.values.checkpoint !== undefined) required(p, 'checkpoint', 'a checkpoint file');

    // model: a SPEC model built with the seed, or an ONNX file (its float initializers are re-trained)
    if (!builtin && !/\.onnx$/i.test(modelArg))
      throw new InputError(
        'unknown-model',
        `--model must be mlp, cnn-s, vit-t or an .onnx file: current value is "${modelArg}"`,
        { value: modelArg },
      );
    // an external graph gets the training-safe clean-up first: exporters compute slice bounds and resize scales
    // from shapes, and gradients need them constant
    const model: Model = builtin
      ? buildModel(modelArg, { seed })
      : (await runPasses(loadModel(modelArg), TRAINING_SAFE_PASSES)).model;

    // data: train split (optionally a subset) → train / validation; test split for the final accuracy
    const valSplit = intOption(p, 'val-split', { min: 0 });
    const { train: trainData, val } = trainAndValidation(
      await loadLabelled(p, 'data', model, 'train', limit, seed),
      limit,
      valSplit,
      seed,
    );
    let test: Dataset | undefined =
      p.values['test-data'] !== undefined
        ? await loadLabelled(p, 'test-data', model, 'test', testLimit, seed)
        : isDatasetName(dataArg)
          ? resolveData(dataArg, 'test')
          : undefined;
    if (test && testLimit !== undefined) test = subset(test, testLimit, seed);

    const perEpoch = Math.floor(trainData.n / batchSize) || 1;
    const schedule: ScheduleSpec =
      scheduleKind === 'cosine'
        ? { kind: 'cosine', lr, warmup, totalSteps: Math.max(1, epochs * perEpoch) }
        : scheduleKind === 'step'
          ? { kind: 'step', lr, stepSize: stepEvery * perEpoch, gamma, warmup }
          : { kind: 'constant', lr, warmup };
    const checkpointPath = p.values.checkpoint as string | undefined;
    const r = await train(model, {
      data: trainData,
      ...(val ? { val } : {}),
      ...(test ? { test } : {}),
      epochs,
      batchSize,
      optimizer,
      lr: schedule,
      seed,
      ...(val && !p.values.last ? { keepBest: true } : {}),
      ...(patience !== undefined
        ? { earlyStopping: { patience, metric: val ? 'val_accuracy' : 'train_loss' } as const }
        : {}),
      ...(checkpointPath ? { checkpoint: { path: checkpointPath, everyEpochs } } : {}),
      ...(p.values.resume ? { resume: p.values.resume as string } : {}),
      ...(threads !== undefined ? { threads } : {}),
      progress: { quiet: io.quiet, label: builtin ? modelArg : 'train' },
      meta: { model: modelArg, data: dataArg, limit: limit ?? null, valRows: val?.n ?? 0, seed },
    });
    const saved = saveOutput(p, r.model, out);

    const json = {
      model: modelArg,
      data: dataArg,
      output: out,
      modelBytes: saved.modelBytes,
      dataBytes: saved.dataBytes,
      dataFile: saved.dataFile ?? null,
      optimizer,
      schedule,
      batch: batchSize,
      seed,
      trainRows: trainData.n,
      valRows: val?.n ?? 0,
      testRows: test?.n ?? 0,
      epochs: r.history.length,
      epochOfModel: r.epoch,
      ...(r.bestEpoch !== undefined ? { bestEpoch: r.bestEpoch } : {}),
      ...(r.stopped ? { stopped: r.stopped } : {}),
      steps: r.steps,
      testAccuracy: r.testAccuracy ?? null,
      seconds: r.seconds,
      history: r.history,
    };
    const rows = r.history.map((h) => [
      h.epoch,
      h.trainLoss.toFixed(4),
      pct(h.trainAccuracy),
      h.valLoss !== undefined ? h.valLoss.toFixed(4) : '-',
      h.valAccuracy !== undefined ? pct(h.valAccuracy) : '-',
      h.lr.toPrecision(3),
      h.seconds.toFixed(1),
    ]);
    const text = [
      table(['epoch', 'train loss', 'train acc', 'val loss', 'val acc', 'lr', 'seconds'], rows),
      '',
      `${modelArg} on ${dataArg} (${trainData.n} train / ${val?.n ?? 0} val rows): ${test ? `test accuracy ${pct(r.testAccuracy ?? 0)} on ${test.n} rows` : 'no test data (give --test-data)'}` +
        `, epoch ${r.epoch} weights${r.stopped === 'early-stopping' ? ' (stopped early)' : ''} → ${out} (${fmtSaved(saved)}), ${r.seconds.toFixed(1)} s`,
    ].join('\n');
    return { json, text };
  },
};
