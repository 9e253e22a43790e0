// Structured notes of pass records and quantization plans, for stage reports.
import type { PassRecord } from '../passes/index.js';
import type { Note } from '../util/note.js';

/** A pass record's notes, structured (the pass's own findings; its plain lines as info notes). */
export function passNotes(r: PassRecord): Note[] {
  return r.findings.length
    ? r.findings
    : r.notes.map((text) => ({ kind: 'info' as const, text, rule: r.name }));
}

/** Nodes a quantizer left float, with why, as `kept` notes. */
export function keptNotes(
  skipped: readonly { node: string; opType: string; reason: string }[],
  rule: string,
): Note[] {
  return skipped.map((s) => ({
    kind: 'kept' as const,
    text: `Kept ${s.opType} "${s.node}" float: ${s.reason}`,
    node: s.node,
    opType: s.opType,
    rule,
    reason: s.reason,
  }));
}
