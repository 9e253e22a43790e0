// build() and convert() of the CLI as library calls: a SPEC model built and written; a model re-saved (inline or
// with external data).
import { assertValid, type Model } from '../ir/index.js';
import { buildModel } from '../models/index.js';
import { loadModel } from '../onnx/index.js';
import { convertOpset } from '../passes/index.js';
import { writeOutput, type OutputOptions, type SavedModel } from './common.js';

/** Parameters: elements of the float/int initializers. */
export function parameterCount(m: Model): number {
  let params = 0;
  for (const v of m.graph.initializers.values()) params += v.const!.numel;
  return params;
}

/** Build a SPEC model (seeded, untrained) and write it. */
export function buildFile(
  name: string,
  out: string | OutputOptions,
  o: { seed?: number; opset?: number } = {},
): { model: Model; params: number; saved: SavedModel } {
  const model = buildModel(name, { seed: o.seed ?? 0, opset: o.opset ?? 17 });
  return { model, params: parameterCount(model), saved: writeOutput(model, out) };
}

/**
 * Re-save a model file: inline, or with its tensors in an aligned external data file; with `opset`, upgraded to that
 * ai.onnx opset first (outputs unchanged).
 */
export function convertFile(
  input: string,
  out: string | OutputOptions,
  o: { opset?: number } = {},
): {
  model: Model;
  saved: SavedModel;
  opset: { from: number; to: number; rewrites: Record<string, number> } | null;
} {
  let model = loadModel(input);
  assertValid(model.graph, { opsetImports: model.opsetImports }, input);
  let opset = null;
  if (o.opset !== undefined) {
    const r = convertOpset(model, o.opset);
    model = r.model;
    opset = { from: r.from, to: r.to, rewrites: r.counts };
  }
  return { model, saved: writeOutput(model, out), opset };
}
