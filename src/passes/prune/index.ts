// Structured pruning (issue 18): dependency groups from the op registry's prune rules, importance, physical
// removal, attention heads, residual blocks, and the iterative prune → fine-tune → evaluate schedule.
export { analyzeDependencies, type DependencyGraph, type PruneGroup, type SliceMember } from './deps.js';
export { applyPruning, keptIndices, gatherAxis, type KeepMap } from './apply.js';
export {
  groupImportance,
  taylorScores,
  calibrationBatches,
  IMPORTANCE_KINDS,
  type ImportanceKind,
  type ImportanceOptions,
  type ImportanceResult,
  type CalibrationData,
} from './importance.js';
export { selectChannels, keptCount, topK, type SelectOptions } from './select.js';
export {
  planPruning,
  pruneChannels,
  groupReport,
  type GroupReport,
  type ChannelPruneOptions,
} from './structured.js';
export {
  findAttention,
  pruneHeads,
  removeHeads,
  headMaskScores,
  type AttentionBlock,
  type HeadsReport,
} from './heads.js';
export { findResidualBlocks, dropBlocks, type ResidualBlock, type DepthReport } from './depth.js';
export {
  prune,
  measureLatency,
  sampleRows,
  type PruneOptions,
  type PruneData,
  type PruneReport,
  type PruneStep,
} from './prune.js';
