// edgefit's public API: `import { loadModel, optimize, quantize, train, evaluate, openData, inspect } from 'edgefit'`.
// Every op's knowledge (shape, gradient, quantization) is registered when the library loads: nothing else to import.
//
//   const r = await quantize('cnn-s.onnx', { mode: 'static', calibData: 'fashion-mnist', data: 'fashion-mnist' });
//   saveModel(r.model, 'cnn-s.int8.onnx');
//
// The functions take a model as an IR Model or an ONNX path and data as a spec (a built-in dataset name, an image
// folder, .npy/.npz, CSV, a manifest) or an open DataSource; each returns the model and a structured report (the
// stage contract of src/stage, which pruning, distillation and the pipeline build on).

// models and files
export type { Model, Graph, Node, Value, Tensor } from './ir/index.js';
export {
  loadModel,
  saveModel,
  encodeModel,
  decodeModel,
  type SaveOptions,
  type SaveResult,
} from './onnx/index.js';
export { buildModel, MODEL_NAMES, type ModelName } from './models/index.js';

// the operations
export { optimize, type OptimizeOptions, type OptimizeOutcome } from './api/optimize.js';
export { quantize, type QuantizeOptions, type QuantizeOutcome } from './api/quantize.js';
export { train, defaultOptimizer, type TrainOptions, type TrainOutcome } from './api/train.js';
export {
  evaluate,
  inspect,
  type EvaluateOptions,
  type EvaluateOutcome,
  type InspectOutcome,
} from './api/evaluate.js';
export { prune, planPruning, type PruneApiOptions, type PruneOutcome } from './api/prune.js';
export type { PruneReport, PruneStep, GroupReport } from './passes/prune/index.js';
export { distillModel, type DistillApiOptions, type DistillOutcome } from './api/distill.js';
export {
  distill,
  distillStage,
  buildStudent,
  chooseStudent,
  loadProfile,
  loadTeacher,
  parseStudent,
  teacherLogits,
  FAMILIES,
  type DistillOptions,
  type DistillResult,
  type DistillStageOptions,
  type StudentSpec,
  type ProfileChoice,
} from './distill/index.js';
export type { ModelArg, DataArg, DataReadOptions, OutputOptions, SavedModel } from './api/common.js';

// data
export {
  openData,
  fromDataset,
  loadDataset,
  materialize,
  splitValidation,
  sampleFeeds,
  DATASET_NAMES,
  type DataSource,
  type DataBatch,
  type Dataset,
  type OpenDataOptions,
} from './data/index.js';
export type { EvalResult } from './eval/index.js';

// stages, context, gates: what pruning, distillation and the pipeline plug into
export * from './stage/index.js';

// the compression pipeline: config, runner, registry, manifest, report
export {
  runPipeline,
  STAGE_BUILDERS,
  type PipelineRunOptions,
  type PipelineResult,
  type StageBuilder,
} from './pipeline/run.js';
export { watchPipeline, type WatchOptions } from './pipeline/watch.js';
export { loadConfig, parseConfig, configJsonSchema, type PipelineConfig } from './pipeline/config.js';
export {
  Registry,
  parseRef,
  modelDigest,
  type RegistryVersion,
  type VersionRef,
} from './pipeline/registry.js';
export { serveRegistry, type RegistryServerOptions } from './pipeline/registry-server.js';
export { MANIFEST_SCHEMA, type Manifest } from './pipeline/manifest.js';
export { renderReport } from './pipeline/report.js';

// errors (exit codes: InputError 2, UnsupportedError 3, GateError 4, others 1)
export {
  EdgefitError,
  InputError,
  UnsupportedError,
  GateError,
  InternalError,
  exitCodeOf,
} from './errors.js';
