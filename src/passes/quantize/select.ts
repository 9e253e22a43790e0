// Include / exclude lists by node name and op type (`--include`, `--exclude`). An entry is a node name or an op
// type; `op:Conv` and `node:conv1` say which when a name and an op type could be confused.
import { InputError } from '../../errors.js';
import { allGraphs, type Model, type Node } from '../../ir/index.js';

/** Every node of the model, subgraphs (If branches, Loop/Scan bodies) included. */
function allNodes(model: Model): Node[] {
  return [...allGraphs(model.graph)].flatMap((g) => g.nodes);
}

export interface NodeFilter {
  /** When given, only nodes matching one of these entries are quantized. */
  include?: readonly string[];
  /** Nodes matching one of these entries stay float. */
  exclude?: readonly string[];
}

function matches(entry: string, n: Node, names: ReadonlySet<string>): boolean {
  if (entry.startsWith('op:')) return n.opType === entry.slice(3);
  if (entry.startsWith('node:')) return n.label === entry.slice(5);
  if (names.has(entry)) return n.label === entry;
  return n.opType === entry;
}

/** Throw an InputError for entries that match no node of the model (typos would otherwise pass silently). */
export function checkFilter(model: Model, filter: NodeFilter): void {
  const nodes = allNodes(model);
  const names = new Set(nodes.map((n) => n.label));
  for (const [flag, list] of [
    ['include', filter.include],
    ['exclude', filter.exclude],
  ] as const)
    for (const e of list ?? []) checkFilterEntry(model, e, flag, names);
}

/** Throw an InputError when `entry` of the option `--flag` matches no node name or op type of the model (subgraphs included). */
export function checkFilterEntry(
  model: Model,
  entry: string,
  flag: string,
  names: ReadonlySet<string> = new Set(allNodes(model).map((n) => n.label)),
): void {
  if (!allNodes(model).some((n) => matches(entry, n, names)))
    throw new InputError(
      'quant-filter',
      `--${flag} entry "${entry}" matches no node name or op type of the model (use op:<OpType> or node:<name> to be explicit)`,
      { value: entry },
    );
}

/** Whether the filter lets `n` be quantized. */
export function allowed(n: Node, filter: NodeFilter, model: Model): boolean {
  const names = new Set(allNodes(model).map((x) => x.label));
  if (filter.include?.length && !filter.include.some((e) => matches(e, n, names))) return false;
  if (filter.exclude?.some((e) => matches(e, n, names))) return false;
  return true;
}

/** A filter test bound to one model (names computed once). */
export function filterFor(model: Model, filter: NodeFilter): (n: Node) => boolean {
  const names = new Set(allNodes(model).map((x) => x.label));
  return (n) => {
    if (filter.include?.length && !filter.include.some((e) => matches(e, n, names))) return false;
    if (filter.exclude?.some((e) => matches(e, n, names))) return false;
    return true;
  };
}
