// `edgefit prune`: flags → prune() (src/passes/prune) → the history table or JSON. `--plan` prints the dependency
// groups and writes nothing.
import { InputError } from '../../errors.js';
import { IMPORTANCE_KINDS } from '../../passes/names.js';
import {
  type Command,
  fmtBytes,
  fmtSaved,
  intOption,
  numberOption,
  pct,
  outputOptions,
  SAVE_OPTIONS,
  stringOption,
  table,
} from '../command.js';
import { DATA_FLAGS, dataOptions } from '../dataflags.js';

export const pruneCommand: Command = {
  name: 'prune',
  summary:
    'Structured pruning: remove whole channels (dependency groups through residuals, concats, depthwise and SE blocks), attention heads and residual blocks, into a dense smaller ONNX model; optionally iterative with fine-tuning until a size or latency target or an accuracy floor.',
  usage:
    '<in.onnx> <out.onnx> [--data <data>] (--ratio R | --target-bytes N | --target-latency-ms T) [--importance l1|l2|bn|taylor] [--step 0.15] [--finetune-steps N] [--optimizer sgd|adamw] [--warmup N] [--distill] [--min-accuracy A] [--heads R] [--depth N] [--plan]',
  positionals: [
    { name: 'in.onnx', description: 'the model to prune' },
    { name: 'out.onnx', description: 'where to write the pruned model (not with --plan)', optional: true },
  ],
  options: {
    plan: {
      type: 'boolean',
      description: 'print the pruning groups (and why others cannot be pruned); write nothing',
    },
    ratio: {
      type: 'string',
      valueName: 'R',
      description: 'fraction of the channels of each group to remove (default 0.5 without a target)',
    },
    'target-bytes': {
      type: 'string',
      valueName: 'N',
      description: 'prune step by step until the parameters take ≤ N bytes',
    },
    'target-peak-bytes': {
      type: 'string',
      valueName: 'N',
      description: 'prune until the estimated peak activation memory is ≤ N bytes',
    },
    'target-latency-ms': {
      type: 'string',
      valueName: 'T',
      description: 'prune until ORT latency (1 thread, --batch) is ≤ T ms',
    },
    batch: {
      type: 'string',
      valueName: 'N',
      description: 'batch for the latency and peak-memory figures',
      default: '1',
    },
    importance: {
      type: 'string',
      valueName: IMPORTANCE_KINDS.join('|'),
      description: 'channel importance (taylor and head masks need --data)',
      default: 'l1',
    },
    scope: {
      type: 'string',
      valueName: 'layer|global',
      description: 'rank channels per group or globally',
      default: 'layer',
    },
    'min-channels': {
      type: 'string',
      valueName: 'N',
      description: 'never keep fewer channels in a group',
      default: '8',
    },
    'round-to': {
      type: 'string',
      valueName: 'N',
      description: 'round kept channel counts to a multiple of N',
      default: '8',
    },
    heads: { type: 'string', valueName: 'R', description: 'fraction of attention heads to remove' },
    depth: {
      type: 'string',
      valueName: 'N',
      description: 'residual blocks to drop (replaced by their skip)',
    },
    step: {
      type: 'string',
      valueName: 'F',
      description: 'fraction of the original channels removed per step',
      default: '0.15',
    },
    'finetune-steps': {
      type: 'string',
      valueName: 'N',
      description: 'fine-tuning steps after each pruning step (needs --data)',
      default: '0',
    },
    lr: {
      type: 'string',
      valueName: 'X',
      description: 'fine-tuning peak learning rate (cosine to 0 over each step)',
      default: '0.01',
    },
    optimizer: {
      type: 'string',
      valueName: 'sgd|adamw',
      description: 'fine-tuning optimizer: SGD momentum 0.9, or AdamW weight decay 0.01',
      default: 'sgd',
    },
    warmup: { type: 'string', valueName: 'N', description: 'linear lr warm-up steps of each fine-tuning' },
    distill: {
      type: 'boolean',
      description:
        'fine-tune with distillation from the unpruned model: α·CE + (1 − α)·T²·KL (--temperature, --alpha)',
    },
    temperature: { type: 'string', valueName: 'T', description: 'distillation temperature', default: '4' },
    alpha: {
      type: 'string',
      valueName: 'A',
      description: 'distillation CE weight in [0, 1]',
      default: '0.5',
    },
    'min-accuracy': {
      type: 'string',
      valueName: 'A',
      description: 'accuracy floor (0–1, or a percentage above 1): stop before a step falls below it',
    },
    'eval-limit': {
      type: 'string',
      valueName: 'N',
      description: 'rows of the test split for accuracy figures (seeded sample)',
      default: '2000',
    },
    'train-limit': {
      type: 'string',
      valueName: 'N',
      description: 'rows of the train split read for fine-tuning and importance',
    },
    data: {
      type: 'string',
      valueName: 'data',
      description: 'labelled data: fine-tuning and importance use its train split, accuracy its test split',
    },
    threads: { type: 'string', valueName: 'N', description: 'ORT threads' },
    seed: { type: 'string', valueName: 'N', description: 'seed of sampling and fine-tuning', default: '0' },
    ...DATA_FLAGS,
    ...SAVE_OPTIONS,
  },
  examples: [
    'edgefit prune cnn-s.onnx --plan',
    'edgefit prune cnn-s.onnx cnn-s.pruned.onnx --ratio 0.5',
    'edgefit prune cnn-s.onnx small.onnx --data fashion-mnist --target-bytes 400000 --finetune-steps 200 --min-accuracy 0.9',
    'edgefit prune vit-t.onnx vit-t.pruned.onnx --heads 0.5 --ratio 0 --data fashion-mnist --importance taylor',
    'edgefit prune vit-t.onnx vit-t.h2.onnx --heads 0.5 --ratio 0 --step 0.25 --finetune-steps 2000 --optimizer adamw --lr 1e-3 --warmup 100 --distill --data fashion-mnist --importance taylor',
  ],
  async run(p, io) {
    const [input, output] = p.positionals as [string, string | undefined];
    const { planPruning, prune } = await import('../../api/prune.js');
    if (p.values.plan) {
      const { groups } = planPruning(input);
      const prunable = groups.filter((g) => g.prunable);
      return {
        json: {
          model: input,
          groups,
          prunableGroups: prunable.length,
          prunableChannels: prunable.reduce((a, g) => a + g.channels, 0),
        },
        text: [
          table(
            ['group', 'channels', 'producers', 'prunable'],
            groups.map((g) => [
              g.id,
              g.channels,
              g.producers.join(', '),
              g.prunable
                ? g.period
                  ? `yes, the same channels in each of ${g.channels / g.period} parts`
                  : 'yes'
                : `no: ${g.reasons.join('; ')}`,
            ]),
          ),
          `${prunable.length} of ${groups.length} groups prunable`,
        ].join('\n'),
      };
    }
    if (!output)
      throw new InputError('usage', 'edgefit prune needs <out.onnx> (or --plan)', { value: 'prune' });
    let minAccuracy = numberOption(p, 'min-accuracy', { min: 0, max: 100 });
    if (minAccuracy !== undefined && minAccuracy > 1) minAccuracy /= 100;
    const depthN = intOption(p, 'depth', { min: 0 });
    const opts = {
      ratio: numberOption(p, 'ratio', { min: 0, max: 0.99 }),
      targetBytes: intOption(p, 'target-bytes', { min: 1 }),
      targetPeakBytes: intOption(p, 'target-peak-bytes', { min: 1 }),
      targetLatencyMs: numberOption(p, 'target-latency-ms', { min: 1e-6, max: 1e9 }),
      batch: intOption(p, 'batch', { min: 1 }),
      importance: stringOption(p, 'importance', IMPORTANCE_KINDS),
      scope: stringOption(p, 'scope', ['layer', 'global'] as const),
      minChannels: intOption(p, 'min-channels', { min: 1 }),
      roundTo: intOption(p, 'round-to', { min: 1 }),
      heads: numberOption(p, 'heads', { min: 0, max: 0.99 }),
      depth: depthN,
      step: numberOption(p, 'step', { min: 0.001, max: 1 }),
      finetuneSteps: intOption(p, 'finetune-steps', { min: 0 }),
      lr: numberOption(p, 'lr', { min: 0, max: 10 }),
      optimizer:
        stringOption(p, 'optimizer', ['sgd', 'adamw'] as const) === 'adamw'
          ? { kind: 'adamw' as const, weightDecay: 0.01 }
          : { kind: 'sgd' as const, momentum: 0.9 },
      warmup: intOption(p, 'warmup', { min: 0 }),
      ...(p.values.distill
        ? {
            distill: {
              temperature: numberOption(p, 'temperature', { min: 1e-3, max: 1000 }) ?? 4,
              alpha: numberOption(p, 'alpha', { min: 0, max: 1 }) ?? 0.5,
            },
          }
        : {}),
      minAccuracy,
      threads: intOption(p, 'threads', { min: 1 }),
      seed: intOption(p, 'seed', { min: 0 }),
      log: io.quiet ? undefined : (l: string) => io.err(`${l}\n`),
    };
    if (
      typeof p.values.data !== 'string' &&
      ((opts.finetuneSteps ?? 0) > 0 || opts.minAccuracy !== undefined || opts.importance === 'taylor')
    )
      throw new InputError('usage', '--finetune-steps, --min-accuracy and --importance taylor need --data', {
        value: 'data',
      });
    const trainLimit = intOption(p, 'train-limit', { min: 1 });
    const out = await prune(input, {
      ...opts,
      ...(typeof p.values.data === 'string'
        ? {
            data: p.values.data,
            evalLimit: intOption(p, 'eval-limit', { min: 1 }) ?? 2000,
            read: dataOptions(p),
          }
        : {}),
      ...(trainLimit !== undefined ? { trainLimit } : {}),
      out: outputOptions(p, output),
    });
    const saved = out.saved!;
    const report = out.report.detail;
    const r = report;
    const rows = r.steps.map((s) => [
      s.step,
      s.ratio.toFixed(2),
      s.params,
      fmtBytes(s.bytes),
      s.macs,
      s.accuracy !== undefined ? pct(s.accuracy) : '-',
      s.latencyMs !== undefined ? s.latencyMs.toFixed(3) : '-',
      s.step === r.bestStep ? '← kept' : s.holdsFloor ? '' : 'below floor',
    ]);
    return {
      json: {
        input,
        output,
        ...r,
        gates: out.report.gates,
        dataFile: saved.dataFile ?? null,
      },
      text: [
        table(['step', 'ratio', 'params', 'bytes', 'MACs', 'accuracy', 'latency ms', ''], rows),
        `${input} → ${output}: ${r.paramsBefore} → ${r.paramsAfter} parameters (${(r.paramsAfter / r.paramsBefore).toFixed(3)}×), MACs ${(r.macsAfter / Math.max(1, r.macsBefore)).toFixed(3)}×; stopped: ${r.stoppedBecause}; ${fmtSaved(saved)}`,
      ].join('\n'),
    };
  },
};
