// Op knowledge: the registry (one entry per op) and shape/dtype inference. Importing this module loads every entry.
import './all.js';

export * from './registry.js';
export {
  inferShapes,
  checkNode,
  makeCheckNode,
  type InferReport,
  type InferOptions,
  type InferProblem,
} from './infer.js';
export { constOf, constantNodeTensor, tensorToSym } from './const.js';
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
