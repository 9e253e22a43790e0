// From a trained fake-quant graph to a clean QDQ model: the float model the plan was made for, with the trained
// weights and biases, quantized by the static quantizer's own writer (`applyStatic`) with the trained activation
// scales. Nothing is re-derived in a way that could differ from the fake-quant forward:
//   - weights and biases: `quantizeWeightInt8` / `quantizeBias` compute the scales and codes the fake-quant graph
//     computed (see fakequant.ts), from the same trained float values;
//   - activations: a learned scale s with zero point zp is handed over as the range [(qmin − zp)·s, (qmax − zp)·s],
//     from which `rangeParams` gives back exactly s and zp (checked here: 255·s is exact in float64, and so is
//     the division by 255).
// So the exported model, run by ORT with its Q/DQ nodes as written, computes what the fake-quant graph computes;
// with ORT's optimisations on, the same Q/DQ pairs fuse into integer kernels (QLinearConv, QGemm), as for PTQ.
import { DataError, InternalError } from '../errors.js';
import type { Model } from '../ir/index.js';
import { Tensor } from '../ir/index.js';
import type { TensorStats } from '../passes/quantize/calibrate.js';
import { QRANGE, rangeParams } from '../passes/quantize/numeric.js';
import { applyStatic } from '../passes/quantize/static.js';
import type { FakeQuantGroup, FakeQuantInfo } from './fakequant.js';

/** The current scale of each group in `trained` (a fake-quant model made by insertFakeQuant). */
export function groupScales(trained: Model, info: FakeQuantInfo): Map<string, number> {
  const out = new Map<string, number>();
  for (const grp of info.groups) {
    const v = trained.graph.initializers.get(grp.scaleName);
    if (!v?.const)
      throw new InternalError('qat-scale', `The fake-quant model has no scale "${grp.scaleName}"`, {
        value: grp.scaleName,
      });
    const s = v.const.toFloat64()[0]!;
    if (!Number.isFinite(s) || s <= 0)
      throw new DataError(
        'qat-scale',
        `The learned scale of "${grp.root}" is ${s}: QAT diverged; lower the learning rate or pass learnScales: false`,
        {
          value: grp.root,
        },
      );
    out.set(grp.root, s);
  }
  return out;
}

/** The range whose `rangeParams` is exactly (s, zero point) of `grp`. */
export function rangeForScale(
  grp: Pick<FakeQuantGroup, 'root' | 'zeroPoint' | 'qtype'>,
  s: number,
): TensorStats {
  const { min, max } = QRANGE[grp.qtype];
  const lo = (min - grp.zeroPoint) * s;
  const hi = (max - grp.zeroPoint) * s;
  const p = rangeParams(lo, hi, grp.qtype);
  if (p.scale !== s || p.zeroPoint !== grp.zeroPoint)
    throw new InternalError(
      'qat-range',
      `The range of "${grp.root}" does not give back its scale: (${s}, ${grp.zeroPoint}) became (${p.scale}, ${p.zeroPoint})`,
      { value: grp.root },
    );
  return { min: lo, max: hi, lo, hi, count: 0 };
}

/** Activation ranges (by group root) that reproduce the trained scales and zero points exactly. */
export function qatRanges(trained: Model, info: FakeQuantInfo): Map<string, TensorStats> {
  const scales = groupScales(trained, info);
  const out = new Map<string, TensorStats>();
  for (const grp of info.groups) out.set(grp.root, rangeForScale(grp, scales.get(grp.root)!));
  return out;
}

/** `base` with the values of every initializer `trained` also has (same name, dtype and dims). */
export function withTrainedWeights(base: Model, trained: Model): Model {
  const m = base.clone();
  const ti = trained.graph.initializers;
  for (const [name, v] of m.graph.initializers) {
    const t = ti.get(name)?.const;
    const c = v.const!;
    if (
      !t ||
      t === c ||
      t.dtype !== c.dtype ||
      t.dims.length !== c.dims.length ||
      t.dims.some((d, i) => d !== c.dims[i])
    )
      continue;
    m.graph.setInitializer(v, new Tensor(t.dtype, t.dims, t.bytes, { name }));
  }
  return m;
}

export interface QdqExport {
  /** The clean QDQ model. */
  model: Model;
  /** The float model it quantizes (trained weights, no fake-quant nodes). */
  float: Model;
  ranges: Map<string, TensorStats>;
  notes: string[];
}

/**
 * Export a trained fake-quant model as a clean QDQ model. `base` is the float model `insertFakeQuant` was given
 * (the plan's node labels and tensor names refer to it); `trained` the fake-quant model after training.
 */
export function exportQdq(base: Model, trained: Model, info: FakeQuantInfo): QdqExport {
  const float = withTrainedWeights(base, trained);
  const ranges = qatRanges(trained, info);
  const { model, notes } = applyStatic(float, info.plan, ranges);
  return { model, float, ranges, notes };
}
