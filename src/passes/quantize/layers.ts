// Per-layer comparison of two models that means what it says. Tensors are matched by name, but a name can mean
// different values in the two models: quantize (and optimize) fold BatchNorm into the Conv before it, so after
// folding `c1_out0` is the normalised output, before it the raw convolution. A model is therefore compared both
// with the reference as given and with the reference's optimised float graph (the graph quantize starts from);
// where the two readings of a name differ, b's tensor is compared with the reading it belongs to (the closer one,
// reported in `reference`). Size mismatches are reported as such, and the reference's layer outputs b has no
// tensor for are listed as skipped.
import type { Model } from '../../ir/index.js';
import type { Feeds } from './calibrate.js';
import { prepareForQuantization } from './index.js';
import { LAYER_OPS, type LayerSqnr, layerSqnr } from './sqnr.js';

/** Above this SQNR (dB) the reference and its optimised graph hold the same value under a name. */
const SAME_MEANING_DB = 60;

export interface LayerComparison extends LayerSqnr {
  /** What b's tensor was compared with: a as given, or a after the clean-up/fusion passes. */
  reference: 'a' | 'a-optimised';
}

export interface LayersResult {
  layers: LayerComparison[];
  /** Layer outputs of a with no same-named tensor in b (not compared). */
  skipped: { name: string; opType: string; reason: string }[];
}

function better(x: LayerSqnr, y: LayerSqnr): boolean {
  if (x.mismatch !== undefined) return false;
  if (y.mismatch !== undefined) return true;
  return x.sqnr >= y.sqnr;
}

export async function compareLayers(
  a: Model,
  b: Model,
  batches: readonly Feeds[],
  opts: { threads?: number } = {},
): Promise<LayersResult> {
  const opt = (await prepareForQuantization(a)).model;
  const vsA = new Map((await layerSqnr(a, b, batches, opts)).map((l) => [l.name, l]));
  const vsOpt = new Map((await layerSqnr(opt, b, batches, opts)).map((l) => [l.name, l]));
  const both = [...vsA.keys()].filter((n) => vsOpt.has(n));
  const agree = new Map(
    both.length
      ? (await layerSqnr(a, opt, batches.slice(0, 1), { ...opts, names: both })).map((l) => [l.name, l])
      : [],
  );
  const layers: LayerComparison[] = [];
  const seen = new Set<string>();
  for (const name of [...vsA.keys(), ...vsOpt.keys()]) {
    if (seen.has(name)) continue;
    seen.add(name);
    const la = vsA.get(name);
    const lo = vsOpt.get(name);
    if (la && lo) {
      const g = agree.get(name);
      const same = g !== undefined && g.mismatch === undefined && g.sqnr >= SAME_MEANING_DB;
      layers.push(same || better(la, lo) ? { ...la, reference: 'a' } : { ...lo, reference: 'a-optimised' });
    } else if (la) layers.push({ ...la, reference: 'a' });
    else layers.push({ ...lo!, reference: 'a-optimised' });
  }
  // a's layer outputs b does not have
  const inB = new Set(b.graph.valuesByName().keys());
  const skipped: LayersResult['skipped'] = [];
  for (const n of a.graph.nodes) {
    const o = n.outputs[0];
    if (!o || !LAYER_OPS.has(n.opType) || inB.has(o.name)) continue;
    skipped.push({ name: o.name, opType: n.opType, reason: 'b has no tensor of this name' });
  }
  return { layers, skipped };
}
