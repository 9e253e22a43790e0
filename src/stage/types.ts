// The stage contract: every step that turns a model into a better-fitting one (optimize, each quantize mode, QAT,
// --auto; pruning, distillation and the pipeline add theirs) is a Stage. A stage has a name, declares what it needs
// from the run (calibration data, labelled train/validation data, labelled evaluation data, a teacher, a device
// profile), and runs `(model, context) → { model, report }`. It never modifies the model it is given.
//
// The report is structured, not prose: figures by name, notes with a kind (what was rewritten, what was kept and
// why), the node / rule / reason they are about, and the gate verdicts when the stage checked any. Each stage adds
// its own typed `detail` (e.g. the quantization plan, the --auto steps), which commands print and the pipeline
// stores in its manifest.
import type { Model } from '../ir/index.js';
import type { StageContext } from './context.js';
import type { GateResult } from '../eval/gates.js';
import type { Note } from '../util/note.js';

/** What a stage can ask of the run. Validation rows come from `train` (held out) unless given separately. */
export type StageNeed = 'calibration' | 'train' | 'eval' | 'teacher' | 'device';

export type { Note, NoteKind } from '../util/note.js';

export interface StageReport<D = unknown> {
  /** The stage's name (e.g. "optimize", "quantize:static", "auto"). */
  stage: string;
  /** Wall time of the stage. */
  seconds: number;
  /** Named figures (nodesBefore, nodesAfter, bytesBefore, …): numbers, null when not measured. */
  figures: Record<string, number | null>;
  notes: Note[];
  /** Verdicts of the gates the stage checked (e.g. optimize's output tolerance, --auto's accuracy drop). */
  gates: GateResult[];
  /** Stage-specific structured detail. */
  detail: D;
}

export interface StageResult<D = unknown> {
  model: Model;
  report: StageReport<D>;
}

export interface Stage<D = unknown> {
  readonly name: string;
  /** Needs without which the stage cannot run (runStage checks them first and names the missing one). */
  readonly needs: readonly StageNeed[];
  /** Needs the stage uses when present (e.g. --auto's QAT step uses train data, and skips without it). */
  readonly uses?: readonly StageNeed[];
  /** Pure: returns a new model; `model` is left as it was. */
  run(model: Model, ctx: StageContext): Promise<StageResult<D>>;
}

/** A device profile: what the target has (used by stages that size models for it; the pipeline checks gates). */
export interface DeviceProfile {
  name?: string;
  ramBytes?: number;
  storageBytes?: number;
  threads?: number;
  latencyBudgetMs?: number;
  /** e.g. "no-matrix-units" (prefer attention-free students). */
  traits?: readonly string[];
}
