// Graph clean-up and fusion passes, the pass manager, and the standard pipeline `edgefit optimize` runs.
import { InputError } from '../errors.js';
import { constantFolding } from './cleanup/constant-folding.js';
import { constantToInitializer } from './cleanup/constant-to-initializer.js';
import { deadCode } from './cleanup/dead-code.js';
import { eliminateIdentity } from './cleanup/identity.js';
import { shapeSimplify } from './cleanup/shape-ops.js';
import { foldBatchNorm } from './fusion/batchnorm.js';
import { matmulAddToGemm } from './fusion/matmul-add.js';
import type { Pass } from './manager.js';

export * from './manager.js';
export { applyRules, cleanup, rule, type Rule, type RuleContext, type RuleStats } from './rule.js';
export { nodeCount, opCounts } from './util.js';
export { compareModels, randomInputs, type CompareResult } from './check.js';
export {
  constantFolding,
  constantToInitializer,
  deadCode,
  eliminateIdentity,
  shapeSimplify,
  foldBatchNorm,
  matmulAddToGemm,
};
export type { ConstantFoldingOptions } from './cleanup/constant-folding.js';

/** Every pass by name, in the order of the standard pipeline. */
export const PASSES: readonly Pass<any>[] = [
  constantToInitializer,
  eliminateIdentity,
  constantFolding,
  shapeSimplify,
  foldBatchNorm,
  matmulAddToGemm,
  deadCode,
];

/**
 * The clean-up that keeps a model trainable: constants to initializers, constant folding (exporters compute slice
 * bounds and resize scales from shapes), shape simplification, dead code. Unlike the standard pipeline it keeps
 * Dropout and BatchNormalization (training needs both) and does not fuse.
 */
export const TRAINING_SAFE_PASSES: readonly Pass<any>[] = [
  constantToInitializer,
  constantFolding,
  shapeSimplify,
  deadCode,
];

/** The standard clean-up and fusion pipeline. */
export function standardPipeline(): Pass<any>[] {
  return [...PASSES];
}

/** Passes by name (for `--passes a,b,c`); InputError naming the unknown one. */
export function passesByName(names: readonly string[]): Pass<any>[] {
  return names.map((n) => {
    const p = PASSES.find((x) => x.name === n);
    if (!p)
      throw new InputError(
        'unknown-pass',
        `Unknown pass "${n}": passes are ${PASSES.map((x) => x.name).join(', ')}`,
        { value: n },
      );
    return p;
  });
}
export { convertOpset, irVersionFor, type OpsetConversion } from './opset/convert.js';
export { ensureOpset, upgradeNote, type OpsetUpgrade } from './opset/require.js';
