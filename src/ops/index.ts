// Op knowledge: the registry (one entry per op; src/ops/registry.ts loads every entry) and shape/dtype inference.
export * from './registry.js';
export {
  inferShapes,
  checkNode,
  makeCheckNode,
  type InferReport,
  type InferOptions,
  type InferProblem,
} from './infer.js';
export { constFloats, constInts, constOf, constantNodeTensor, tensorToSym } from './const.js';
export {
  evalDim,
  dimSymbols,
  formatDims,
  dimAdd,
  dimSub,
  dimMul,
  dimDivExact,
  dimEquals,
  dimProduct,
} from './sym.js';
export { layoutLength, repeatInner, sliceLayout } from './prune.js';
