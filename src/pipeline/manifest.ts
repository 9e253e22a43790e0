// The manifest: a JSON record stored with every artifact the pipeline produces — what was done (each stage's
// technique, parameters, time, size and accuracy after it), what came out (size, compression, accuracy overall /
// per class / per slice, latency, peak memory), how it compares (baseline, deployed) and the gate verdicts.
// Its `schema` field versions the format: readers refuse a schema they do not know.
import { InputError } from '../errors.js';
import type { GateResult } from '../eval/gates.js';

export const MANIFEST_SCHEMA = 'edgefit.manifest/1';

/** Size and quality of one model (the baseline, a stage's output, the candidate, the deployed version). */
export interface ModelFigures {
  /** sha256 of the model's canonical encoding. */
  digest: string;
  /** Model file + external data bytes as edgefit writes them. */
  bytes: number;
  params: number;
  /** Accuracy (fraction 0–1) on the evaluation data. */
  accuracy: number;
  /** Recall (fraction) per class index. */
  perClassRecall: number[];
  /** Recall (fraction) per named slice. */
  slices: Record<string, number>;
  /** Batch-1 latency (median ms, ORT, the device profile's threads). */
  latencyMs: number | null;
  /** Weights + estimated peak activation bytes at batch 1. */
  peakMemoryBytes: number | null;
}

export interface StageRecord {
  /** Position in the config's stage list. */
  index: number;
  /** The stage's name in the config (optimize, prune, distill, finetune, quantize). */
  name: string;
  /** What it did, e.g. "static INT8 (QDQ)", "structured pruning (l1)". */
  technique: string;
  /** Its options as given in the config, with defaults filled in by the stage. */
  parameters: Record<string, unknown>;
  seconds: number;
  /** Served from the stage cache (its inputs were unchanged). */
  cached: boolean;
  /** The cache key: hash of input model, stage config, data and tool version. */
  key: string;
  after: Pick<ModelFigures, 'digest' | 'bytes' | 'params' | 'accuracy'>;
  /** The stage's structured report (figures, notes, gates, detail). */
  report: unknown;
}

export interface Manifest {
  schema: typeof MANIFEST_SCHEMA;
  tool: { name: 'edgefit'; version: string };
  name: string;
  device: string;
  config: { file: string; sha256: string; content: unknown };
  source: { model: string; digest: string };
  evaluation: { data: string; split: string; n: number; classes: number };
  slices: Record<string, { class: number }>;
  baseline: ModelFigures;
  stages: StageRecord[];
  candidate: ModelFigures;
  deployed: (ModelFigures & { version: number }) | null;
  /** baseline.bytes / candidate.bytes. */
  compressionRatio: number;
  /** One verdict per gate (src/eval/gates.ts), with the numbers. */
  gates: GateResult[];
  promoted: boolean;
  registry: { path: string; version: number | null } | null;
  startedAt: string;
  finishedAt: string;
  seconds: number;
}

/** Check a manifest read from disk names a schema this edgefit reads. */
export function checkManifest(m: unknown, file: string): Manifest {
  if (!m || typeof m !== 'object' || (m as any).schema !== MANIFEST_SCHEMA)
    throw new InputError(
      'manifest',
      `${file} is not an edgefit manifest of schema ${MANIFEST_SCHEMA}: its schema is ${JSON.stringify((m as any)?.schema ?? null)}`,
      { file },
    );
  return m as Manifest;
}
