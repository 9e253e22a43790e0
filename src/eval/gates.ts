// Quality gates: the one place where "is this model good enough?" is decided, for every command (optimize's
// output tolerance, quantize --auto's accuracy drop) and for the pipeline. A gate spec lists limits; `checkGates`
// measures a candidate against them (and against reference models: the baseline it was made from, the model
// currently deployed) and returns one verdict per limit, with the numbers; `enforceGates` turns failures into a
// GateError (exit 4) that names each failed gate.
import { GateError, InputError, type ErrorSubject } from '../errors.js';

/** Per-class limits are keyed by class index ("6") or class name ("Shirt"). */
export type ClassLimits = Readonly<Record<string, number>>;

export interface GateSpec {
  /** Lowest accuracy (0–1) of the candidate. */
  minAccuracy?: number;
  /** Largest accuracy drop against the baseline, in percentage points. */
  maxDrop?: number;
  /** Largest accuracy drop against the deployed model, in percentage points (no regression: 0). */
  maxDropVsDeployed?: number;
  /** Lowest recall (0–1) of these classes. */
  minRecall?: ClassLimits;
  /** Largest recall drop of these classes against the baseline, in percentage points. */
  maxRecallDrop?: ClassLimits;
  /** Largest model size (file bytes, external data included). */
  maxBytes?: number;
  /** Largest peak activation memory estimate (bytes). */
  maxPeakBytes?: number;
  /** Largest latency (ms, as measured by the caller: same batch and threads for every model). */
  maxLatencyMs?: number;
  /** Largest |output − reference output| (functional equivalence, e.g. after clean-up passes). */
  maxAbsDiff?: number;
}

/** What was measured of one model; a gate whose figure is missing fails as "not measured". */
export interface Measures {
  accuracy?: number;
  /** Recall per class index. */
  recall?: readonly number[];
  classNames?: readonly string[];
  bytes?: number;
  peakBytes?: number;
  latencyMs?: number;
  /** Largest output difference against the reference model. */
  maxAbsDiff?: number;
  /** Where maxAbsDiff is largest (an output name), for the message. */
  worstOutput?: string;
}

export interface GateResult {
  /** e.g. "max-drop", "min-recall:Shirt". */
  name: string;
  passed: boolean;
  /** The measured figure (points for drops), or null when it was not measured. */
  value: number | null;
  limit: number;
  /** One readable line with the numbers. */
  message: string;
}

export interface GateReferences {
  baseline?: Measures;
  deployed?: Measures;
}

/** Relative slack of a comparison: a drop of (0.91 − 0.90) × 100 is 1.0000000000000009 points, which holds "≤ 1". */
const EPS = 1e-9;

const pts = (x: number) => `${(x * 100).toFixed(2)} %`;

function classIndex(key: string, m: Measures): number | undefined {
  if (/^\d+$/.test(key)) return Number(key);
  const i = m.classNames?.indexOf(key) ?? -1;
  return i >= 0 ? i : undefined;
}

/** Check a gate spec's limits for its well-formedness (a negative or NaN limit is a user error). */
export function validateGates(spec: GateSpec): void {
  const check = (name: string, v: number | undefined, hi = Infinity) => {
    if (v !== undefined && !(v >= 0 && v <= hi))
      throw new InputError('gate', `gate ${name} must be a number from 0 to ${hi}: got ${v}`, {
        value: name,
      });
  };
  check('minAccuracy', spec.minAccuracy, 1);
  check('maxDrop', spec.maxDrop, 100);
  check('maxDropVsDeployed', spec.maxDropVsDeployed, 100);
  check('maxBytes', spec.maxBytes);
  check('maxPeakBytes', spec.maxPeakBytes);
  check('maxLatencyMs', spec.maxLatencyMs);
  check('maxAbsDiff', spec.maxAbsDiff);
  for (const [k, v] of Object.entries(spec.minRecall ?? {})) check(`minRecall.${k}`, v, 1);
  for (const [k, v] of Object.entries(spec.maxRecallDrop ?? {})) check(`maxRecallDrop.${k}`, v, 100);
}

/** Whether the spec has any limit. */
export function hasGates(spec: GateSpec): boolean {
  return Object.values(spec).some((v) => v !== undefined);
}

/** One verdict per limit of `spec` (in a fixed order); figures a gate needs but nobody measured fail it. */
export function checkGates(spec: GateSpec, m: Measures, refs: GateReferences = {}): GateResult[] {
  const out: GateResult[] = [];
  const upper = (name: string, value: number | undefined, limit: number, what: (v: number) => string) =>
    out.push(
      value === undefined || Number.isNaN(value)
        ? { name, passed: false, value: null, limit, message: `${name}: not measured (limit ${limit})` }
        : {
            name,
            passed: value <= limit + EPS * Math.max(1, Math.abs(limit)),
            value,
            limit,
            message: what(value),
          },
    );
  const lower = (name: string, value: number | undefined, limit: number, what: (v: number) => string) =>
    out.push(
      value === undefined || Number.isNaN(value)
        ? { name, passed: false, value: null, limit, message: `${name}: not measured (limit ${limit})` }
        : {
            name,
            passed: value >= limit - EPS * Math.max(1, Math.abs(limit)),
            value,
            limit,
            message: what(value),
          },
    );
  const drop = (ref: Measures | undefined) =>
    ref?.accuracy !== undefined && m.accuracy !== undefined ? (ref.accuracy - m.accuracy) * 100 : undefined;

  if (spec.minAccuracy !== undefined)
    lower(
      'min-accuracy',
      m.accuracy,
      spec.minAccuracy,
      (v) => `accuracy ${pts(v)} (at least ${pts(spec.minAccuracy!)})`,
    );
  if (spec.maxDrop !== undefined)
    upper(
      'max-drop',
      drop(refs.baseline),
      spec.maxDrop,
      (v) =>
        `accuracy drop ${v.toFixed(2)} points from ${pts(refs.baseline!.accuracy!)} (at most ${spec.maxDrop} points)`,
    );
  if (spec.maxDropVsDeployed !== undefined)
    upper(
      'max-drop-vs-deployed',
      drop(refs.deployed),
      spec.maxDropVsDeployed,
      (v) =>
        `accuracy drop ${v.toFixed(2)} points from the deployed model's ${pts(refs.deployed!.accuracy!)} (at most ${spec.maxDropVsDeployed} points)`,
    );
  for (const [k, limit] of Object.entries(spec.minRecall ?? {})) {
    const i = classIndex(k, m);
    lower(
      `min-recall:${k}`,
      i === undefined ? undefined : m.recall?.[i],
      limit,
      (v) => `recall of class ${k} ${pts(v)} (at least ${pts(limit)})`,
    );
  }
  for (const [k, limit] of Object.entries(spec.maxRecallDrop ?? {})) {
    const i = classIndex(k, m);
    const before = i === undefined ? undefined : refs.baseline?.recall?.[i];
    const after = i === undefined ? undefined : m.recall?.[i];
    upper(
      `max-recall-drop:${k}`,
      before !== undefined && after !== undefined ? (before - after) * 100 : undefined,
      limit,
      (v) =>
        `recall of class ${k} ${pts(before!)} → ${pts(after!)}: drop ${v.toFixed(2)} points (at most ${limit})`,
    );
  }
  if (spec.maxBytes !== undefined)
    upper('max-bytes', m.bytes, spec.maxBytes, (v) => `${v} bytes (at most ${spec.maxBytes})`);
  if (spec.maxPeakBytes !== undefined)
    upper(
      'max-peak-bytes',
      m.peakBytes,
      spec.maxPeakBytes,
      (v) => `peak activation memory ${v} bytes (at most ${spec.maxPeakBytes})`,
    );
  if (spec.maxLatencyMs !== undefined)
    upper(
      'max-latency-ms',
      m.latencyMs,
      spec.maxLatencyMs,
      (v) => `latency ${v.toFixed(3)} ms (at most ${spec.maxLatencyMs} ms)`,
    );
  if (spec.maxAbsDiff !== undefined)
    upper(
      'max-abs-diff',
      m.maxAbsDiff,
      spec.maxAbsDiff,
      (v) =>
        `max |output − reference|${m.worstOutput ? ` ("${m.worstOutput}")` : ''} ${v} (at most ${spec.maxAbsDiff})`,
    );
  return out;
}

export function gatesPassed(results: readonly GateResult[]): boolean {
  return results.every((r) => r.passed);
}

/** Throw a GateError (exit 4) listing the failed gates, when any failed. `what` says what was checked. */
export function enforceGates(
  results: readonly GateResult[],
  what: string,
  subject: ErrorSubject = {},
  code = 'gate',
): void {
  const failed = results.filter((r) => !r.passed);
  if (!failed.length) return;
  throw new GateError(
    code,
    `${what} fails ${failed.length === 1 ? 'a quality gate' : `${failed.length} quality gates`}: ${failed.map((r) => r.message).join('; ')}`,
    { ...subject, value: subject.value ?? failed[0]!.name },
  );
}

/** The accuracy-drop gate alone: whether `accuracy` is within `maxDrop` points of `baseline` (--auto's steps). */
export function holdsMaxDrop(accuracy: number, baseline: number, maxDrop: number): boolean {
  return gatesPassed(checkGates({ maxDrop }, { accuracy }, { baseline: { accuracy: baseline } }));
}
