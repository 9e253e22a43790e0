// Commands that write an op newer than the model's opset import (DynamicQuantizeLinear ≥ 11, per-channel
// QuantizeLinear ≥ 13, ScatterElements reduction ≥ 16, …) upgrade the graph they build first, and say so.
import type { Model } from '../../ir/index.js';
import { convertOpset } from './convert.js';

/** What an upgrade did: reported by commands (`opsetUpgrade` in --json) and in notes. */
export interface OpsetUpgrade {
  from: number;
  to: number;
  /** What needed the newer opset. */
  because: string;
  /** Rewrites per conversion rule. */
  rewrites: Record<string, number>;
}

/**
 * `model` when its ai.onnx opset is at least `min`, else a copy converted to `min` (convertOpset: outputs kept,
 * UnsupportedError naming a node it cannot convert).
 */
export function ensureOpset(
  model: Model,
  min: number,
  because: string,
): { model: Model; upgrade?: OpsetUpgrade } {
  const from = model.opset('');
  if (from === undefined || from >= min) return { model };
  const r = convertOpset(model, min);
  return { model: r.model, upgrade: { from, to: min, because, rewrites: r.counts } };
}

export function upgradeNote(u: OpsetUpgrade): string {
  const n = Object.values(u.rewrites).reduce((a, b) => a + b, 0);
  return `Upgraded the model from ai.onnx opset ${u.from} to ${u.to} (${u.because}; ${n} node(s) rewritten)`;
}
