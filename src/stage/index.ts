// The stage contract and the stages built on it (see types.ts); the gates every stage and command checks.
export type { Stage, StageNeed, StageReport, StageResult, DeviceProfile, Note, NoteKind } from './types.js';
export {
  StageContext,
  createContext,
  runStage,
  runStages,
  type ContextOptions,
  type DataRef,
  type DataRole,
  type StageData,
  type TrainingRows,
} from './context.js';
export {
  optimizeStage,
  type OptimizeDetail,
  type OptimizeOptions as OptimizeStageOptions,
} from './optimize.js';
export {
  quantizeStage,
  qatStage,
  autoStage,
  type QuantPlacement,
  type QuantizeStageOptions,
  type QatStageOptions,
  type AutoStageOptions,
  type QuantizeDetail,
  type QuantizeReport,
  type QatDetail,
  type AutoDetail,
} from './quantize.js';
export {
  trainStage,
  stepSchedule,
  type TrainStageOptions,
  type ScheduleOptions,
  type TrainDetail,
  type TrainReport,
} from './train.js';
export { passNotes } from './notes.js';
export {
  checkGates,
  enforceGates,
  gatesPassed,
  hasGates,
  holdsMaxDrop,
  validateGates,
  type GateSpec,
  type GateResult,
  type GateReferences,
  type Measures,
  type ClassLimits,
} from '../eval/gates.js';
export { pruneStage, resolvePruneOptions, type PruneStageOptions, type PruneStageReport } from './prune.js';
export { measureModel, checkContextGates, type MeasureOptions } from './measure.js';
