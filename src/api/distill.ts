// distillModel(): knowledge distillation of a teacher (an IR model or an ONNX file; not modified) into a student, on
// the stage contract — the distill stage (src/distill/stage.ts) run with a context built from the arguments:
// training rows from `data` (labelled, a seeded validation part held out; or unlabeled with `unlabeled`), accuracies
// on `evalData` (default: the test split of a built-in `data`), the student as a family spec, a device profile's
// choice or a pruned copy of the teacher. The float student is written to `out`, the QAT + KD INT8 model to `qatOut`
// (atomically). `edgefit distill` is flag parsing, this call and printing.
import type { GateSpec } from '../eval/gates.js';
import type { Model } from '../ir/index.js';
import { createContext, runStage } from '../stage/context.js';
import { type DistillDetail, type DistillStageOptions, distillStage } from '../distill/stage.js';
import type { StageReport } from '../stage/types.js';
import {
  dataRef,
  isBuiltin,
  resolveRunnableModel,
  testDataRef,
  writeOutput,
  type DataArg,
  type DataReadOptions,
  type ModelArg,
  type OutputOptions,
  type SavedModel,
} from './common.js';

export interface DistillApiOptions extends DistillStageOptions {
  /** Training rows: labelled, or any rows with `unlabeled`. */
  data: DataArg;
  /** Labelled rows for the accuracies (default: the test split of a built-in `data`). */
  evalData?: DataArg;
  /** Seeded subsets of the training rows (class-balanced for a built-in split) and of the evaluation rows. */
  trainLimit?: number;
  evalLimit?: number;
  gates?: GateSpec;
  /** Initialisation, shuffling, subsets, validation split and augmentation seed (default 0). */
  seed?: number;
  threads?: number;
  read?: DataReadOptions;
  /** The distilled float student. */
  out?: string | OutputOptions;
  /** With `qat`: the INT8 QDQ model. */
  qatOut?: string | OutputOptions;
  log?: (line: string) => void;
  /** No progress bars (default true). */
  quiet?: boolean;
}

export interface DistillOutcome {
  /** The distilled float student. */
  model: Model;
  /** The same student trained from scratch (`baselineScratch`). */
  scratch?: Model;
  /** The QAT + KD INT8 QDQ model (`qat`). */
  int8?: Model;
  report: StageReport<DistillDetail>;
  saved?: SavedModel;
  qatSaved?: SavedModel;
}

/** Distil `teacher` into a student (the distill stage). */
export async function distillModel(teacher: ModelArg, o: DistillApiOptions): Promise<DistillOutcome> {
  const { model, name } = await resolveRunnableModel(teacher, 'the teacher');
  const {
    data,
    evalData,
    trainLimit,
    evalLimit,
    gates,
    seed = 0,
    threads,
    read,
    out,
    qatOut,
    log,
    quiet,
    ...stage
  } = o;
  const evalRef = testDataRef(evalData, data, model, read, {
    ...(evalLimit !== undefined ? { limit: evalLimit } : {}),
    seed,
    command: 'edgefit distill',
  });
  const ctx = createContext({
    data: {
      train: dataRef(data, model, read, {
        split: 'train',
        ...(o.unlabeled ? {} : { needLabels: 'edgefit distill without --unlabeled' }),
        ...(trainLimit !== undefined && !isBuiltin(data) ? { limit: trainLimit, limitSeed: seed } : {}),
      }),
      ...(evalRef ? { eval: evalRef } : {}),
    },
    seed,
    ...(threads !== undefined ? { threads } : {}),
    ...(trainLimit !== undefined ? { trainLimit } : {}),
    ...(gates ? { gates } : {}),
    modelName: name,
    ...(log ? { log } : {}),
    quiet: quiet ?? true,
    evalBatchSize: 500,
  });
  try {
    const r = await runStage(distillStage(stage), model, ctx);
    const { student, scratch, int8 } = r.models;
    const saved = out !== undefined ? writeOutput(student, out) : undefined;
    const qatSaved = qatOut !== undefined && int8 ? writeOutput(int8, qatOut) : undefined;
    return {
      model: student,
      ...(scratch ? { scratch } : {}),
      ...(int8 ? { int8 } : {}),
      report: r.report,
      ...(saved ? { saved } : {}),
      ...(qatSaved ? { qatSaved } : {}),
    };
  } finally {
    await ctx.close();
  }
}
