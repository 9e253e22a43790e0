// Structured notes of pass records, for stage reports (a quantizer's kept nodes: keptFindings in passes/quantize).
import type { PassRecord } from '../passes/index.js';
import type { Note } from '../util/note.js';

/** A pass record's notes, structured (the pass's own findings; its plain lines as info notes). */
export function passNotes(r: PassRecord): Note[] {
  return r.findings.length
    ? r.findings
    : r.notes.map((text) => ({ kind: 'info' as const, text, rule: r.name }));
}
