// The train stage: (re-)train a model's float initializers on the context's training rows (with the held-out
// validation rows: the best epoch by validation accuracy is kept), through ORT. `edgefit train` runs it, the
// pipeline's fine-tune step will too.
import type { ScheduleSpec } from '../train/schedule.js';
import { train, type TrainResult } from '../train/trainer.js';
import type { OptimizerSpec } from '../train/types.js';
import type { Stage, StageReport } from './types.js';

/** A learning-rate schedule in epochs (converted to steps once the training rows are known). */
export interface ScheduleOptions {
  kind: 'constant' | 'cosine' | 'step';
  lr: number;
  /** Linear warm-up over the first N steps. */
  warmup?: number;
  /** step: multiply the lr by `gamma` every N epochs (default 1). */
  stepEvery?: number;
  /** step: default 0.1. */
  gamma?: number;
}

export interface TrainStageOptions {
  epochs: number;
  /** Default 64. */
  batchSize?: number;
  optimizer: OptimizerSpec;
  schedule: ScheduleOptions;
  /** Keep the best epoch by validation accuracy (default true when there are validation rows). */
  keepBest?: boolean;
  /** Early stopping after N epochs without a better validation accuracy (train loss without validation). */
  patience?: number;
  /** Atomic checkpoints every `everyEpochs` epochs (default 1). */
  checkpoint?: { path: string; everyEpochs?: number };
  /** Continue from a checkpoint. */
  resume?: string;
  /** Progress label (default "train"). */
  label?: string;
  /** Recorded in checkpoints. */
  meta?: Record<string, unknown>;
}

export interface TrainDetail {
  trainRows: number;
  valRows: number;
  trainData: string;
  optimizer: OptimizerSpec;
  schedule: ScheduleSpec;
  batch: number;
  seed: number;
  result: Omit<TrainResult, 'model'>;
}

export type TrainReport = StageReport<TrainDetail>;

/** The step schedule of an epoch schedule, for `perEpoch` steps per epoch over `epochs` epochs. */
export function stepSchedule(s: ScheduleOptions, epochs: number, perEpoch: number): ScheduleSpec {
  const warmup = s.warmup ?? 0;
  return s.kind === 'cosine'
    ? { kind: 'cosine', lr: s.lr, warmup, totalSteps: Math.max(1, epochs * perEpoch) }
    : s.kind === 'step'
      ? { kind: 'step', lr: s.lr, stepSize: (s.stepEvery ?? 1) * perEpoch, gamma: s.gamma ?? 0.1, warmup }
      : { kind: 'constant', lr: s.lr, warmup };
}

export function trainStage(o: TrainStageOptions): Stage<TrainDetail> {
  return {
    name: 'train',
    needs: ['train'],
    async run(model, ctx) {
      const t0 = performance.now();
      const { train: data, val, name } = await ctx.trainingRows();
      const batchSize = o.batchSize ?? 64;
      const schedule = stepSchedule(o.schedule, o.epochs, Math.floor(data.n / batchSize) || 1);
      const r = await train(model, {
        data,
        ...(val ? { val } : {}),
        epochs: o.epochs,
        batchSize,
        optimizer: o.optimizer,
        lr: schedule,
        seed: ctx.seed,
        selection: {
          ...(val && (o.keepBest ?? true) ? { keepBest: true } : {}),
          ...(o.patience !== undefined
            ? {
                earlyStopping: { patience: o.patience, metric: val ? 'val_accuracy' : 'train_loss' } as const,
              }
            : {}),
        },
        checkpoint: {
          ...(o.checkpoint ?? {}),
          ...(o.resume ? { resume: o.resume } : {}),
          meta: { ...(o.meta ?? {}), valRows: val?.n ?? 0, seed: ctx.seed },
        },
        run: {
          ...(ctx.threads !== undefined ? { threads: ctx.threads } : {}),
          progress: { quiet: ctx.quiet, label: o.label ?? 'train' },
          log: ctx.log,
        },
      });
      const { model: trained, ...result } = r;
      const last = r.history[r.history.length - 1];
      return {
        model: trained,
        report: {
          stage: 'train',
          seconds: (performance.now() - t0) / 1000,
          figures: {
            epochs: r.history.length,
            epochOfModel: r.epoch,
            steps: r.steps,
            trainLoss: last?.trainLoss ?? null,
            valAccuracy: r.history.find((h) => h.epoch === r.epoch)?.valAccuracy ?? null,
          },
          notes: r.stopped
            ? [{ kind: 'info', text: `stopped after epoch ${r.history.length}: ${r.stopped}`, rule: 'train' }]
            : [],
          gates: [],
          detail: {
            trainRows: data.n,
            valRows: val?.n ?? 0,
            trainData: name,
            optimizer: o.optimizer,
            schedule,
            batch: batchSize,
            seed: ctx.seed,
            result,
          },
        },
      };
    },
  };
}
