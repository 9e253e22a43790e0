// optimize(): clean-up and fusion passes to a fixed point, the outputs checked in ORT against the input model's
// (a gate on the largest difference), the result written atomically when `out` is given.
import { InputError } from '../errors.js';
import type { Model } from '../ir/index.js';
import { encodeModel } from '../onnx/index.js';
import { passesByName, type Pass } from '../passes/index.js';
import { createContext, runStage } from '../stage/context.js';
import { optimizeStage, type OptimizeOptions as StageOptions } from '../stage/optimize.js';
import type { StageReport } from '../stage/types.js';
import type { OptimizeDetail } from '../stage/optimize.js';
import {
  resolveModel,
  resolveRunnableModel,
  writeOutput,
  type ModelArg,
  type OutputOptions,
  type SavedModel,
} from './common.js';

export interface OptimizeOptions extends Omit<StageOptions, 'passes'> {
  /** Passes (or their names, as `edgefit optimize --passes` takes them), in order; default the standard pipeline. */
  passes?: readonly (Pass<any> | string)[];
  out?: string | OutputOptions;
  log?: (line: string) => void;
}

export interface OptimizeOutcome {
  model: Model;
  report: StageReport<OptimizeDetail>;
  bytesBefore: number;
  bytesAfter: number;
  saved?: SavedModel;
}

export async function optimize(input: ModelArg, o: OptimizeOptions = {}): Promise<OptimizeOutcome> {
  // the check runs the model in ORT: a file ORT refuses is the input's problem (unchecked: ORT is not needed)
  const { model, name } = o.check === false ? resolveModel(input) : await resolveRunnableModel(input);
  let passes: Pass<any>[] | undefined;
  if (o.passes) {
    passes = o.passes.map((p) => (typeof p === 'string' ? passesByName([p])[0]! : p));
    if (!passes.length) throw new InputError('option', '--passes names no pass', { value: 'passes' });
  }
  const bytesBefore = encodeModel(model).byteLength;
  const ctx = createContext({ modelName: name, ...(o.log ? { log: o.log } : {}) });
  const { out, log: _log, passes: _p, ...stage } = o;
  const r = await runStage(optimizeStage({ ...stage, ...(passes ? { passes } : {}) }), model, ctx);
  const saved = out !== undefined ? writeOutput(r.model, out) : undefined;
  return {
    model: r.model,
    report: r.report,
    bytesBefore,
    bytesAfter: saved ? saved.modelBytes + saved.dataBytes : encodeModel(r.model).byteLength,
    ...(saved ? { saved } : {}),
  };
}
