// A structured note: what a pass or stage did or did not do, about which node, by which rule, and why — so reports
// and commands select notes by kind instead of matching their text.
export type NoteKind =
  /** the graph was changed here */
  | 'rewrite'
  /** a match / candidate was left as it was (reason says why) */
  | 'kept'
  /** a step or item was not done at all (reason says why) */
  | 'skipped'
  /** something worth knowing that changed nothing */
  | 'info'
  /** the user should look at this */
  | 'warning';

export interface Note {
  kind: NoteKind;
  /** The readable line. */
  text: string;
  /** The node it is about. */
  node?: string;
  opType?: string;
  /** The rule / pass / step that produced it (e.g. "fold-bn-into-conv", "static"). */
  rule?: string;
  /** Why (for kept / skipped). */
  reason?: string;
  figures?: Record<string, number>;
}

/** Notes of one kind from plain lines. */
export function notesOf(kind: NoteKind, lines: readonly string[], rule?: string): Note[] {
  return lines.map((text) => (rule ? { kind, text, rule } : { kind, text }));
}
