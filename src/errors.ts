// One error hierarchy for the whole toolkit. Classes are grouped by who must act:
//   InputError       the user's file, flag or data is wrong            → exit 2
//   UnsupportedError an op, dtype, opset or feature we do not handle   → exit 3
//   GateError        a quality gate failed                             → exit 4
//   anything else    a bug in edgefit                                  → exit 1
// A model ONNX Runtime refuses is the user's problem (ModelRefusedError / RuntimeUnsupportedError), decided once per
// input file before anything runs (src/runtime/ort.ts `checkRuntimeAccepts`); a graph edgefit built that ORT refuses
// afterwards (a train step, a quantized model) is edgefit's own inconsistency (RuntimeError, exit 1).
// Every error names the thing it is about (file, node, value, op type, YAML path) in `subject`.

import { isOnnxDomain } from './util/domain.js';

export interface ErrorSubject {
  file?: string;
  node?: string;
  opType?: string;
  domain?: string;
  value?: string;
  path?: string;
  [key: string]: string | number | undefined;
}

export class EdgefitError extends Error {
  readonly code: string;
  readonly subject: ErrorSubject;
  readonly exitCode: number = 1;
  constructor(code: string, message: string, subject: ErrorSubject = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.subject = subject;
  }
}

/** The user's input (file, flag, data) is wrong. */
export class InputError extends EdgefitError {
  override readonly exitCode: number = 2;
}

/** A malformed or unreadable model file. */
export class ModelFormatError extends InputError {}

/** The graph is structurally broken (dangling input, cycle, …). */
export class GraphError extends InputError {}

/** A tensor shape or dtype does not fit what an op or model expects. */
export class ShapeError extends InputError {}

/** Bad or missing data. */
export class DataError extends InputError {}

/** Something valid that edgefit does not handle yet. */
export class UnsupportedError extends EdgefitError {
  override readonly exitCode: number = 3;
}

export class UnsupportedOpError extends UnsupportedError {
  constructor(opType: string, domain: string, opset: number | undefined, node: string, extra = '') {
    const d = isOnnxDomain(domain) ? 'ai.onnx' : domain;
    super(
      'unsupported-op',
      `Unsupported op ${opType} (domain ${d}, opset ${opset ?? 'unknown'}) at node "${node}"${extra ? `: ${extra}` : ''}`,
      { opType, domain: d, opset, node },
    );
  }
}

/**
 * ONNX Runtime refuses the user's model file as malformed (a missing opset import, an inconsistent graph): the
 * message names the file and gives ORT's reason. Decided by `runtimeRefusal` (src/runtime/ort.ts).
 */
export class ModelRefusedError extends ModelFormatError {}

/**
 * ONNX Runtime does not support an op, domain, opset or IR version of the user's model file: the message names the
 * file and gives ORT's reason. Decided by `runtimeRefusal` (src/runtime/ort.ts).
 */
export class RuntimeUnsupportedError extends UnsupportedError {}

/** A quality gate failed. */
export class GateError extends EdgefitError {
  override readonly exitCode: number = 4;
}

/** Internal invariant violated: a bug in edgefit. */
export class InternalError extends EdgefitError {}

export function exitCodeOf(e: unknown): number {
  return e instanceof EdgefitError ? e.exitCode : 1;
}
