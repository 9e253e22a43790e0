// The op table: storage for the registry's entries. Only the op families (and tests adding a temporary entry) write
// to it; readers go through src/ops/registry.ts, which loads every family before it hands out `lookup`.
import { normDomain } from '../ir/graph.js';
import type { OpEntry } from './registry.js';

const REGISTRY = new Map<string, OpEntry[]>();

export { normDomain };

function key(opType: string, domain: string | undefined): string {
  return `${normDomain(domain)}::${opType}`;
}

/** Add an entry. Several entries may share an op type when they cover disjoint opset ranges. */
export function register(entry: OpEntry): OpEntry {
  if (!entry.sinceVersion.length) throw new Error(`OpEntry ${entry.type} has no sinceVersion`);
  const k = key(entry.type, entry.domain);
  const list = REGISTRY.get(k) ?? [];
  const first = Math.min(...entry.sinceVersion);
  if (list.some((e) => Math.min(...e.sinceVersion) === first))
    throw new Error(
      `OpEntry ${entry.type} (${normDomain(entry.domain) || 'ai.onnx'}) since ${first} is registered twice`,
    );
  list.push(entry);
  list.sort((a, b) => Math.min(...a.sinceVersion) - Math.min(...b.sinceVersion));
  REGISTRY.set(k, list);
  return entry;
}

/** Register one rule under several op types (e.g. every unary float op). */
export function registerAll(types: string[], make: (type: string) => Omit<OpEntry, 'type'>): void {
  for (const t of types) register({ type: t, ...make(t) });
}

/**
 * The entry for `opType` in `domain` at `opset`: the one with the newest first version ≤ opset. With `opset`
 * undefined, the newest entry. Undefined when the op is unknown or the opset is older than every entry.
 */
export function lookup(
  opType: string,
  domain: string | undefined,
  opset: number | undefined,
): OpEntry | undefined {
  const list = REGISTRY.get(key(opType, domain));
  if (!list) return undefined;
  if (opset === undefined) return list[list.length - 1];
  let found: OpEntry | undefined;
  for (const e of list) if (Math.min(...e.sinceVersion) <= opset) found = e;
  return found;
}

/** Every registered entry (for listings and coverage reports). */
export function allEntries(): OpEntry[] {
  return [...REGISTRY.values()].flat();
}
