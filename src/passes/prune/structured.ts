// One structured-pruning step on channels: dependency groups → importance → selection → physical removal.
import type { Model } from '../../ir/index.js';
import { applyPruning, type KeepMap } from './apply.js';
import { analyzeDependencies, type DependencyGraph, type PruneGroup } from './deps.js';
import { groupImportance, type ImportanceKind, type ImportanceOptions } from './importance.js';
import { selectChannels, type SelectOptions } from './select.js';

/** One group as `--plan` and the report show it. */
export interface GroupReport {
  id: number;
  channels: number;
  kept: number;
  producers: string[];
  /** Constants sliced with it: `name[axis]`. */
  members: string[];
  prunable: boolean;
  reasons: string[];
  /** Channels c and c + period are pruned together (grouped convolutions, channel shuffles); absent when free. */
  period?: number;
  importance?: ImportanceKind;
}

export function groupReport(g: PruneGroup, kept = g.size, importance?: ImportanceKind): GroupReport {
  const members = [...new Set(g.members.map((m) => `${m.value.name}[${m.axis}]`))];
  return {
    id: g.id,
    channels: g.size,
    kept,
    producers: g.producers,
    members,
    prunable: g.prunable,
    reasons: g.reasons,
    ...(g.period < g.size ? { period: g.period } : {}),
    ...(importance ? { importance } : {}),
  };
}

/** The dependency groups of a model, without pruning anything (`edgefit prune --plan`). */
export function planPruning(model: Model): { deps: DependencyGraph; groups: GroupReport[] } {
  const deps = analyzeDependencies(model);
  return { deps, groups: deps.groups.map((g) => groupReport(g)) };
}

export interface ChannelPruneOptions
  extends Omit<SelectOptions, 'baseSize'>, Omit<ImportanceOptions, 'kind'> {
  importance?: ImportanceKind;
  /** Original channel count per producer label (iterative schedules: ratio of the original width). */
  baseSizeByProducer?: Map<string, number>;
}

export interface ChannelPruneResult {
  model: Model;
  groups: GroupReport[];
  keep: KeepMap;
}

/** Remove `ratio` of the channels of every prunable group (or globally), by importance. */
export async function pruneChannels(model: Model, opts: ChannelPruneOptions): Promise<ChannelPruneResult> {
  const deps = analyzeDependencies(model);
  const kind = opts.importance ?? 'l1';
  const imp = await groupImportance(model, deps, { ...opts, kind });
  let baseSize: Map<number, number> | undefined;
  if (opts.baseSizeByProducer) {
    baseSize = new Map();
    for (const g of deps.groups) {
      const b = g.producers.map((p) => opts.baseSizeByProducer!.get(p)).find((x) => x !== undefined);
      if (b !== undefined) baseSize.set(g.id, b);
    }
  }
  const keep = opts.ratio > 0 ? selectChannels(deps.groups, imp.scores, { ...opts, baseSize }) : new Map();
  const pruned = keep.size ? applyPruning(deps, keep) : model.clone();
  return {
    model: pruned,
    keep,
    groups: deps.groups.map((g) => groupReport(g, keep.get(g.id)?.length ?? g.size, imp.kinds.get(g.id))),
  };
}
