// prune(): structured pruning of a model (an IR model or an ONNX file; not modified) on the stage contract —
// channels, attention heads, residual blocks, optionally iterative with fine-tuning on labelled `data` until a
// target or the accuracy floor — the result written atomically when `out` is given. `edgefit prune` is flag parsing,
// this call and printing. `planPruning` lists the dependency groups without pruning (`edgefit prune --plan`).
import type { Model } from '../ir/index.js';
import { planPruning as planGroups, type GroupReport } from '../passes/prune/structured.js';
import type { GateSpec } from '../eval/gates.js';
import { createContext, runStage } from '../stage/context.js';
import { pruneStage, type PruneStageOptions, type PruneStageReport } from '../stage/prune.js';
import type { DeviceProfile } from '../stage/types.js';
import {
  dataRef,
  isBuiltin,
  resolveModel,
  resolveRunnableModel,
  testDataRef,
  writeOutput,
  type DataArg,
  type DataReadOptions,
  type ModelArg,
  type OutputOptions,
  type SavedModel,
} from './common.js';

export interface PruneApiOptions extends PruneStageOptions {
  /** Labelled data: fine-tuning and data-driven importance read its train split (a seeded validation part held out). */
  data?: DataArg;
  /** Labelled data for accuracy figures and the floor (default: the test split of a built-in `data`). */
  evalData?: DataArg;
  /** Seeded subsets of the training and evaluation rows. */
  trainLimit?: number;
  evalLimit?: number;
  gates?: GateSpec;
  device?: DeviceProfile;
  seed?: number;
  threads?: number;
  read?: DataReadOptions;
  out?: string | OutputOptions;
  log?: (line: string) => void;
}

export interface PruneOutcome {
  model: Model;
  report: PruneStageReport;
  saved?: SavedModel;
}

/** The dependency groups of a model: which channels prune together, and why the others cannot be pruned. */
export function planPruning(input: ModelArg): { groups: GroupReport[] } {
  return { groups: planGroups(resolveModel(input).model).groups };
}

export async function prune(input: ModelArg, o: PruneApiOptions = {}): Promise<PruneOutcome> {
  // a file ORT refuses is the user's input (exit 2/3 naming it), checked before anything runs
  const { model, name } = await resolveRunnableModel(input);
  const seed = o.seed ?? 0;
  const evalRef = testDataRef(o.evalData, o.data, model, o.read, {
    ...(o.evalLimit !== undefined ? { limit: o.evalLimit } : {}),
    seed,
    command: 'edgefit prune',
  });
  const ctx = createContext({
    data: {
      ...(o.data !== undefined
        ? {
            train: dataRef(o.data, model, o.read, {
              split: 'train',
              needLabels: 'edgefit prune',
              ...(o.trainLimit !== undefined && !isBuiltin(o.data)
                ? { limit: o.trainLimit, limitSeed: seed }
                : {}),
            }),
          }
        : {}),
      ...(evalRef ? { eval: evalRef } : {}),
    },
    seed,
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    ...(o.trainLimit !== undefined ? { trainLimit: o.trainLimit } : {}),
    ...(o.gates ? { gates: o.gates } : {}),
    ...(o.device ? { device: o.device } : {}),
    modelName: name,
    ...(o.log ? { log: o.log } : {}),
    evalBatchSize: 500,
  });
  const {
    data: _d,
    evalData: _e,
    trainLimit: _t,
    evalLimit: _l,
    gates: _g,
    device: _v,
    seed: _s,
    threads: _h,
    read: _r,
    out,
    log: _o,
    ...stage
  } = o;
  try {
    const r = await runStage(pruneStage(stage), model, ctx);
    const saved = out !== undefined ? writeOutput(r.model, out) : undefined;
    return { model: r.model, report: r.report, ...(saved ? { saved } : {}) };
  } finally {
    await ctx.close();
  }
}
