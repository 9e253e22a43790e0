// Which inputs of which ops the quantizer touches. DESIGN.md puts this in the op registry's `quant` slot
// (src/ops/registry.ts `QuantSpec`); until that slot is filled there, the quantizer keeps its own table here, in
// the same shape, and reads nothing else. Move these entries into the registry (`quant: {...}` on each OpEntry)
// and replace `quantSpec()` with a registry lookup.
import type { Node } from '../../ir/index.js';
import { isOnnxDomain } from '../util.js';

export interface QuantOpSpec {
  /** Inputs holding weights (quantized offline: int8 per channel, or int4 blocks). */
  weightInputs: number[];
  /** Inputs carrying activations (quantized with calibrated ranges). */
  activationInputs: number[];
  /** The bias input (int32 with scale = input scale · weight scale), when the op has one. */
  biasInput?: number;
  /** The weight's output-channel axis (per-channel scales), as a function of the node (Gemm's transB). */
  channelAxis?: (node: Node) => number;
}

/** Compute ops with integer kernels in ORT (QLinearConv, QGemm, QLinearMatMul / MatMulIntegerToFloat). */
export const QUANT_OPS: Readonly<Record<string, QuantOpSpec>> = {
  Conv: { weightInputs: [1], activationInputs: [0], biasInput: 2, channelAxis: () => 0 },
  Gemm: {
    weightInputs: [1],
    activationInputs: [0],
    biasInput: 2,
    channelAxis: (n) => (n.attrInt('transB', 0) ? 0 : 1),
  },
  // input 1 is a weight when constant; two activations (attention scores) are quantized only on request
  MatMul: { weightInputs: [1], activationInputs: [0], channelAxis: () => 1 },
};

/**
 * Ops that only move or select elements (or take a max): quantized data can flow through them unchanged, so a
 * DQ → op → Q around them (with equal scale and zero point) lets ORT drop the pair and run the op on the integers.
 * Value: the input that carries the data.
 */
export const PASS_THROUGH_OPS: Readonly<Record<string, number>> = {
  MaxPool: 0,
  Flatten: 0,
  Reshape: 0,
  Transpose: 0,
  Squeeze: 0,
  Unsqueeze: 0,
};

/** Activations ORT folds into the quantization of the producing op's output (Relu, Clip(0, 6)). */
export const FUSED_ACTIVATIONS: ReadonlySet<string> = new Set(['Relu', 'Clip']);

/** The quantizer's spec for a node (ai.onnx ops only), or undefined when it is not quantizable. */
export function quantSpec(n: Node): QuantOpSpec | undefined {
  if (!isOnnxDomain(n)) return undefined;
  return QUANT_OPS[n.opType];
}

export function isPassThrough(n: Node): boolean {
  return isOnnxDomain(n) && n.opType in PASS_THROUGH_OPS;
}
