// The contract between the train-step graph (src/train/step.ts: forward + loss + backward + update as one ONNX
// graph run by ORT) and the trainer (src/train/trainer.ts: epochs, validation, checkpoints). Pruning, QAT and
// distillation use the same two pieces: they change the model, the loss, or the step hooks, never the loop.
import type { Model } from '../ir/graph.js';
import type { HostTensor } from '../runtime/index.js';

export type OptimizerSpec =
  | { kind: 'sgd'; momentum?: number; nesterov?: boolean; weightDecay?: number; dampening?: number }
  | { kind: 'adamw'; beta1?: number; beta2?: number; eps?: number; weightDecay?: number };

export type LossSpec =
  /** Mean softmax cross-entropy of logits [N,C] vs int64 labels [N]. */
  | { kind: 'cross-entropy'; labelSmoothing?: number; classWeights?: number[] }
  /**
   * Knowledge distillation: alpha·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−alpha)·CE(s, y); teacher logits fed as the
   * extra input `teacher_logits`. With `feature`, + weight·MSE(value, teacher_features): `value` names a tensor of
   * the model (e.g. a learned projection of a student feature map) matched against the extra input
   * `teacher_features` of the same shape.
   */
  | {
      kind: 'distill';
      temperature: number;
      alpha: number;
      labelSmoothing?: number;
      feature?: { value: string; weight: number };
    }
  /** Mean squared error vs a float target fed as the extra input `target`. */
  | { kind: 'mse' };

export interface TrainStepOptions {
  optimizer: OptimizerSpec;
  loss: LossSpec;
  /** Which float initializers are trained (default: all float initializers except BN running statistics). */
  trainable?: (name: string) => boolean;
  /** Clip the global gradient norm to this value (off by default). */
  gradClipNorm?: number;
  /** Model input that takes the batch (default: the first graph input). */
  inputName?: string;
  /** Model output holding the logits (default: the first graph output). */
  outputName?: string;
  /** ORT intra-op threads. */
  threads?: number;
  /** Seed of Dropout masks (varied per step by the step counter). */
  seed?: number;
}

export interface StepBatch {
  /** The model input (e.g. images [N,1,28,28]). */
  x: HostTensor;
  /** int64 labels [N] (cross-entropy, distill). */
  y?: HostTensor;
  /** Extra graph inputs the loss needs: `teacher_logits` [N,C] for distill, `target` for mse. */
  extra?: Record<string, HostTensor>;
}

export interface StepResult {
  loss: number;
  /** Logits of the batch, computed in training mode (for running accuracy). */
  logits: HostTensor;
  /** Global gradient norm before clipping (when clipping is on). */
  gradNorm?: number;
}

/** Everything needed to resume training exactly: parameters, BN statistics, optimizer state, step counter. */
export interface TrainState {
  step: number;
  /** Current values of every initializer the step updates (parameters and BN running statistics). */
  tensors: Record<string, HostTensor>;
  /** Optimizer slots by name, e.g. `<param>.momentum`, `<param>.adam_m`, `<param>.adam_v`. */
  optimizer: Record<string, HostTensor>;
}

export interface TrainStepRunner {
  /** One optimisation step at learning rate `lr` (schedules live in the trainer; the graph takes lr as input). */
  run(batch: StepBatch, lr: number): Promise<StepResult>;
  /** Snapshot of the state (copies), for checkpoints and for exporting. */
  state(): TrainState;
  /** Restore a snapshot taken by `state()` (same model and options). */
  load(state: TrainState): void;
  /** The clean inference graph (the original model's graph) with the current weights and BN statistics. */
  exportModel(): Model;
  /** Names of the trained parameters. */
  readonly trainable: readonly string[];
  release(): Promise<void>;
}
