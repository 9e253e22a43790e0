// The names commands list in --help, in a module that imports nothing (so `edgefit --help` loads no passes, no
// quantizer and no ONNX Runtime). The modules that define them re-export these; a test checks they agree.

/** The standard clean-up and fusion pipeline, in order (src/passes/index.ts PASSES). */
export const PASS_NAMES = [
  'constant-to-initializer',
  'eliminate-identity',
  'constant-folding',
  'shape-simplify',
  'fold-batchnorm',
  'matmul-add-to-gemm',
  'dead-code',
] as const;

export type QuantMode = 'dynamic' | 'static' | 'int4' | 'fp16' | 'qat';
export const QUANT_MODES: readonly QuantMode[] = ['dynamic', 'static', 'int4', 'fp16', 'qat'];

export type CalibratorName = 'minmax' | 'percentile' | 'entropy' | 'mse';
export const CALIBRATORS: readonly CalibratorName[] = ['minmax', 'percentile', 'entropy', 'mse'];

export type Int4Method = 'rtn' | 'gptq';
export const INT4_METHODS: readonly Int4Method[] = ['rtn', 'gptq'];

/** Pruning importance scores (src/passes/prune/importance.ts). */
export const IMPORTANCE_KINDS = ['l1', 'l2', 'bn', 'taylor'] as const;
export type ImportanceKind = (typeof IMPORTANCE_KINDS)[number];
