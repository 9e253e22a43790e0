// Quantization-aware training: fake quantization, fine-tuning with the trainer, export to a clean QDQ model.
export {
  type FakeQuantGroup,
  type FakeQuantInfo,
  type FakeQuantOptions,
  type FakeQuantWeight,
  emitActivationFakeQuant,
  emitBiasFakeQuant,
  emitGradScale,
  emitWeightFakeQuant,
  insertFakeQuant,
} from './fakequant.js';
export {
  type QdqExport,
  exportQdq,
  groupScales,
  qatRanges,
  rangeForScale,
  withTrainedWeights,
} from './export.js';
export {
  type QatOptions,
  type QatResult,
  calibrationFeeds,
  prepareForQat,
  quantizeAwareTrain,
} from './qat.js';
export { type QatHookOptions, qatHook } from './hook.js';
