// Knowledge distillation: teacher logits (cached), the KD loss, student families, device profiles, distil().
export {
  type Teacher,
  type TeacherData,
  type TeacherLogits,
  type TeacherLogitsOptions,
  TeacherRunner,
  cacheKey,
  dataHash,
  defaultCacheDir,
  gatherRows,
  loadTeacher,
  modelHash,
  teacherLogits,
} from './teacher.js';
export {
  type KdLoss,
  type Projection,
  DEFAULT_ALPHA,
  DEFAULT_TEMPERATURE,
  addProjection,
  kdLossSpec,
  stripProjection,
} from './loss.js';
export {
  type Family,
  type StudentShape,
  type StudentSpec,
  FAMILIES,
  FAMILY_INFO,
  buildStudent,
  formatStudent,
  isFamily,
  parseStudent,
  studentParams,
} from './students.js';
export {
  type Candidate,
  type DeviceProfile,
  type ProfileChoice,
  TRAITS,
  chooseStudent,
  familyOrder,
  loadProfile,
  measureCandidate,
  misfit,
  parseBytes,
  profileFrom,
} from './profile.js';
export { type Augmentation, augmentBatch, describeAugmentation, parseAugmentation } from './augment.js';
export {
  type DistillOptions,
  type DistillResult,
  type FeatureDistillation,
  type ModelFigures,
  distill,
} from './distill.js';
export {
  type DistillDetail,
  type DistillStage,
  type DistillStageOptions,
  type DistillStageResult,
  distillStage,
  profileOfStage,
} from './stage.js';
export { type DistillDataOptions, loadDistillData, sourceRows } from './data.js';
