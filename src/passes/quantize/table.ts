// Which inputs of which ops the quantizer touches: read from the op registry (`quant`, `quantPassThrough`,
// `quantFusedActivation` on each OpEntry in src/ops), so teaching the quantizer a new op is an edit of that op's
// entry. These helpers keep the quantizer's call sites short.
import type { Node } from '../../ir/index.js';
import '../../ops/index.js'; // every entry registered before the tables below are read
import { allEntries, lookup, type QuantSpec } from '../../ops/registry.js';
import { isOnnxDomain } from '../util.js';

export type QuantOpSpec = QuantSpec;

function entry(n: Node) {
  return isOnnxDomain(n) ? lookup(n.opType, '', undefined) : undefined;
}

/** Compute ops with integer kernels in ORT, by op type (ai.onnx). */
export const QUANT_OPS: Readonly<Record<string, QuantOpSpec>> = Object.fromEntries(
  allEntries()
    .filter((e) => !e.domain && e.quant)
    .map((e) => [e.type, e.quant!]),
);

/** Ops quantized data flows through unchanged: op type → the input carrying the data. */
export const PASS_THROUGH_OPS: Readonly<Record<string, number>> = Object.fromEntries(
  allEntries()
    .filter((e) => !e.domain && e.quantPassThrough !== undefined)
    .map((e) => [e.type, e.quantPassThrough!]),
);

/** Activations ORT folds into the quantization of the producing op's output (Relu, Clip(0, 6)). */
export const FUSED_ACTIVATIONS: ReadonlySet<string> = new Set(
  allEntries()
    .filter((e) => !e.domain && e.quantFusedActivation)
    .map((e) => e.type),
);

/** The quantizer's spec for a node (ai.onnx ops only), or undefined when it is not quantizable. */
export function quantSpec(n: Node): QuantOpSpec | undefined {
  return entry(n)?.quant;
}

export function isPassThrough(n: Node): boolean {
  return entry(n)?.quantPassThrough !== undefined;
}
