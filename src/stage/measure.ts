// What the gates need of a model, measured in one place: encoded bytes, the peak activation memory estimate, accuracy
// and per-class recall on the context's evaluation data, and (when asked) ORT latency on random inputs. The pipeline
// measures its baseline, candidate and deployed model with it and hands the figures to checkGates.
import { checkGates, type GateResult, type GateSpec, type Measures } from '../eval/gates.js';
import type { Model } from '../ir/index.js';
import { encodeModel } from '../onnx/index.js';
import { randomInputs } from '../passes/index.js';
import { medianRunMs, Session } from '../runtime/index.js';
import { summarize } from '../summary/index.js';
import type { StageContext } from './context.js';

export interface MeasureOptions {
  /** Time the model: the median of `runs` (default 20) ORT runs at batch `batch` (default 1) on random inputs. */
  latency?: { batch?: number; runs?: number };
}

/** Bytes, peak activation memory, accuracy and recall (with evaluation data), latency (when asked). */
export async function measureModel(
  model: Model,
  ctx: StageContext,
  o: MeasureOptions = {},
): Promise<Measures> {
  const m: Measures = {
    bytes: encodeModel(model).byteLength,
    peakBytes: summarize(model, { batch: o.latency?.batch ?? 1 }).peakActivationBytes,
  };
  if (ctx.hasData('eval')) {
    const r = await ctx.evaluate(model);
    m.accuracy = r.accuracy;
    m.recall = r.perClass.map((c) => c.recall);
    const names = (await ctx.source('eval')).classNames;
    if (names) m.classNames = names;
  }
  if (o.latency) {
    const s = await Session.create(model, { threads: ctx.threads, label: ctx.modelName });
    try {
      const feeds = randomInputs(model, { batch: o.latency.batch ?? 1, seed: ctx.seed });
      m.latencyMs = await medianRunMs(s, feeds, { runs: o.latency.runs ?? 20, warmup: 3 });
    } finally {
      await s.release();
    }
  }
  return m;
}

/** The context's gates for `candidate` against `baseline` (and the deployed model's figures, when known). */
export async function checkContextGates(
  candidate: Model,
  ctx: StageContext,
  refs: { baseline?: Model; deployed?: Measures; gates?: GateSpec } & MeasureOptions = {},
): Promise<{ results: GateResult[]; candidate: Measures; baseline?: Measures }> {
  const gates = refs.gates ?? ctx.gates;
  const o = refs.latency ? { latency: refs.latency } : {};
  const cand = await measureModel(candidate, ctx, o);
  const base = refs.baseline ? await measureModel(refs.baseline, ctx, o) : undefined;
  const results = checkGates(gates, cand, {
    ...(base ? { baseline: base } : {}),
    ...(refs.deployed ? { deployed: refs.deployed } : {}),
  });
  return base ? { results, candidate: cand, baseline: base } : { results, candidate: cand };
}
