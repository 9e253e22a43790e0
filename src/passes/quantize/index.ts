// Quantization and precision reduction for ORT's CPU kernels (see each module's header):
//   dynamic  int8 weights, activations quantized at run time          → DynamicQuantizeMatMul
//   static   QDQ int8 with calibrated activations                     → QLinearConv / QGemm / MatMulIntegerToFloat
//   int4     4-bit block weights (round-to-nearest or GPTQ)           → MatMulNBits
//   fp16     float16 weights and compute, float32 inputs/outputs
// plus calibration, sensitivity / mixed precision, the `--auto` decision and per-layer SQNR.
import { InputError, UnsupportedError } from '../../errors.js';
import type { Model } from '../../ir/index.js';
import { ensureOpset, runPasses, standardPipeline, upgradeNote, type OpsetUpgrade } from '../index.js';
import type { CalibrationResult, TensorStats } from './calibrate.js';
import { quantizeDynamic, type DynamicQuantOptions } from './dynamic.js';
import { convertFp16, type Fp16Options } from './fp16.js';
import { quantizeInt4, type Int4Options } from './int4.js';
import { quantizeStatic, type QuantPlan, type SkippedNode, type StaticQuantOptions } from './static.js';

export * from './numeric.js';
export * from './calibrate.js';
export * from './table.js';
export * from './select.js';
export * from './static.js';
export * from './dynamic.js';
export * from './int4.js';
export * from './fp16.js';
export * from './kernels.js';
export * from './sqnr.js';
export { compareLayers, type LayerComparison, type LayersResult } from './layers.js';
export * from './sensitivity.js';
export * from './auto.js';

import { QUANT_MODES, type QuantMode } from '../names.js';
export { QUANT_MODES, type QuantMode } from '../names.js';

export interface QuantizeOptions
  extends StaticQuantOptions, Omit<Int4Options, keyof StaticQuantOptions>, Fp16Options, DynamicQuantOptions {
  mode: QuantMode;
  /** Run the clean-up and fusion pipeline (BatchNorm folding, constant folding, MatMul+Add → Gemm …) first (default true). */
  optimize?: boolean;
}

export interface QuantizeResult {
  model: Model;
  mode: QuantMode;
  /** Compute nodes quantized (or converted, for fp16). */
  nodes: string[];
  /** Candidate nodes left float, with why. */
  skipped: SkippedNode[];
  notes: string[];
  plan?: QuantPlan;
  calibration?: CalibrationResult;
  ranges?: Map<string, TensorStats>;
  /** int4: bytes of the replaced float weights and of their packed form. */
  weightBytes?: { before: number; after: number };
  /** Set when the mode's ops needed a newer ai.onnx opset than the model imported. */
  opsetUpgrade?: OpsetUpgrade;
}

/** The ai.onnx opset a mode's output needs, and why (dynamic: DynamicQuantizeLinear; static: per-channel QDQ). */
export function opsetForMode(
  mode: QuantMode,
  perChannel = true,
): { opset: number; because: string } | undefined {
  if (mode === 'dynamic') return { opset: 11, because: 'DynamicQuantizeLinear needs opset 11' };
  if (mode === 'static' || mode === 'qat')
    return perChannel
      ? { opset: 13, because: 'per-channel QuantizeLinear/DequantizeLinear need opset 13' }
      : { opset: 10, because: 'QuantizeLinear/DequantizeLinear need opset 10' };
  return undefined;
}

/** Clean-up and fusion before quantizing: folded BatchNorms and constants give fewer, larger quantizable layers. */
export async function prepareForQuantization(model: Model): Promise<{ model: Model; notes: string[] }> {
  const r = await runPasses(model, standardPipeline());
  const notes = r.passes
    .filter((p) => p.changed)
    .map(
      (p) =>
        `${p.name}: ${
          Object.entries(p.counts)
            .map(([k, v]) => `${k} ×${v}`)
            .join(', ') || 'changed'
        }`,
    );
  return { model: r.model, notes };
}

/** Quantize `model` in one of the modes. */
export async function quantize(model: Model, opts: QuantizeOptions): Promise<QuantizeResult> {
  let m = model;
  const notes: string[] = [];
  if (opts.mode === 'qat')
    throw new UnsupportedError(
      'qat-needs-training',
      'QAT fine-tunes on labelled training data, which quantize() does not take: call quantizeAwareTrain (src/qat) or run `edgefit quantize --mode qat --data <dataset>`',
      {},
    );
  const need = opsetForMode(opts.mode, opts.perChannel ?? true);
  let opsetUpgrade: OpsetUpgrade | undefined;
  if (need) {
    const u = ensureOpset(m, need.opset, need.because);
    m = u.model;
    opsetUpgrade = u.upgrade;
    if (opsetUpgrade) notes.push(upgradeNote(opsetUpgrade));
  }
  const withUpgrade = <T extends object>(r: T): T => (opsetUpgrade ? { ...r, opsetUpgrade } : r);
  if (opts.optimize ?? true) {
    const p = await prepareForQuantization(m);
    m = p.model;
    notes.push(...p.notes);
  }
  switch (opts.mode) {
    case 'static': {
      const r = await quantizeStatic(m, opts);
      return withUpgrade({
        model: r.model,
        mode: 'static',
        nodes: r.plan.nodes,
        skipped: r.plan.skipped,
        notes: [...notes, ...r.notes],
        plan: r.plan,
        calibration: r.calibration,
        ranges: r.ranges,
      });
    }
    case 'dynamic': {
      const r = quantizeDynamic(m, opts);
      return withUpgrade({
        model: r.model,
        mode: 'dynamic' as const,
        nodes: r.nodes,
        skipped: r.skipped,
        notes: [...notes, ...r.notes],
      });
    }
    case 'int4': {
      const r = await quantizeInt4(m, opts);
      return {
        model: r.model,
        mode: 'int4',
        nodes: r.nodes,
        skipped: r.skipped,
        notes: [...notes, ...r.notes],
        weightBytes: { before: r.weightBytesBefore, after: r.weightBytesAfter },
      };
    }
    case 'fp16': {
      const r = convertFp16(m, opts);
      return { model: r.model, mode: 'fp16', nodes: r.nodes, skipped: [], notes: [...notes, ...r.notes] };
    }
    default:
      throw new InputError(
        'quant-mode',
        `Unknown quantization mode "${String(opts.mode)}": modes are ${QUANT_MODES.join(', ')}`,
        { value: 'mode' },
      );
  }
}
