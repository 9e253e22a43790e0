// The prune stage: structured pruning (src/passes/prune) on the stage contract. Magnitude pruning needs nothing;
// fine-tuning and Taylor / head-mask / block-mask importance take the context's training rows; accuracy figures and
// the floor come from the evaluation data (else the held-out validation rows); targets come from the options, else
// the device profile (latency budget, storage for parameter bytes, RAM for peak activations); the context's gates
// (minAccuracy, maxDrop, maxBytes, maxPeakBytes, maxLatencyMs) become the schedule's floor and targets when the
// options do not set them, and are checked on the result.
import { checkGates } from '../eval/gates.js';
import type { Model } from '../ir/index.js';
import { prune, type PruneData, type PruneOptions, type PruneReport } from '../passes/prune/index.js';
import type { Note } from '../util/note.js';
import type { StageContext } from './context.js';
import type { Stage, StageNeed, StageReport } from './types.js';

export type PruneStageOptions = Omit<PruneOptions, 'log' | 'threads' | 'seed'>;

export type PruneStageReport = StageReport<PruneReport>;

function needsOf(o: PruneStageOptions): StageNeed[] {
  const needs: StageNeed[] = [];
  if ((o.finetuneSteps ?? 0) > 0 || o.importance === 'taylor') needs.push('train');
  return needs;
}

/** Options with the device profile's and the gates' limits filled in where the caller left them out. */
export function resolvePruneOptions(o: PruneStageOptions, ctx: StageContext): PruneOptions {
  const opts: PruneOptions = { ...o, seed: ctx.seed, threads: ctx.threads, log: ctx.log };
  const explicit =
    o.ratio !== undefined ||
    o.targetBytes !== undefined ||
    o.targetPeakBytes !== undefined ||
    o.targetLatencyMs !== undefined;
  if (!explicit) {
    const d = ctx.device;
    const g = ctx.gates;
    const bytes = g.maxBytes ?? d?.storageBytes;
    const peak = g.maxPeakBytes ?? d?.ramBytes;
    const ms = g.maxLatencyMs ?? d?.latencyBudgetMs;
    if (bytes !== undefined) opts.targetBytes = bytes;
    if (peak !== undefined) opts.targetPeakBytes = peak;
    if (ms !== undefined) opts.targetLatencyMs = ms;
  }
  if (opts.minAccuracy === undefined && ctx.gates.minAccuracy !== undefined)
    opts.minAccuracy = ctx.gates.minAccuracy;
  return opts;
}

export function pruneStage(o: PruneStageOptions = {}): Stage<PruneReport> {
  return {
    name: 'prune',
    needs: needsOf(o),
    uses: ['train', 'eval', 'device'],
    async run(model: Model, ctx: StageContext) {
      const t0 = performance.now();
      const opts = resolvePruneOptions(o, ctx);
      const data: PruneData = {};
      if (ctx.has('train')) {
        const rows = await ctx.trainingRows();
        data.train = rows.train;
        if (rows.val) data.val = rows.val;
      }
      if (ctx.has('eval')) data.score = (m) => ctx.score(m);
      if (ctx.gates.maxDrop !== undefined && (data.score || data.val) && opts.minAccuracy === undefined) {
        // a drop limit is a floor relative to the input model's accuracy
        const before = data.score ? await data.score(model) : undefined;
        if (before !== undefined) opts.minAccuracy = before - ctx.gates.maxDrop / 100;
      }
      const r = await prune(model, opts, data);
      const rep = r.report;
      const notes: Note[] = [];
      for (const g of rep.groups)
        if (!g.prunable)
          notes.push({
            kind: 'kept',
            text: `${g.channels} channels of ${g.producers.join(', ')} kept: ${g.reasons.join('; ')}`,
            node: g.producers[0],
            rule: 'prune-channels',
            reason: g.reasons.join('; '),
          });
        else if (g.kept < g.channels)
          notes.push({
            kind: 'rewrite',
            text: `${g.producers.join(', ')}: ${g.channels} → ${g.kept} channels`,
            node: g.producers[0],
            rule: 'prune-channels',
            figures: { channels: g.channels, kept: g.kept },
          });
      for (const b of rep.heads?.blocks ?? [])
        notes.push({
          kind: 'rewrite',
          text: `attention ${b.name}: ${b.heads} → ${b.kept.length} heads`,
          node: b.name,
          rule: 'prune-heads',
          figures: { heads: b.heads, kept: b.kept.length },
        });
      for (const s of rep.heads?.skipped ?? [])
        notes.push({ kind: 'skipped', text: s, rule: 'prune-heads', reason: s });
      for (const d of rep.depth?.dropped ?? [])
        notes.push({ kind: 'rewrite', text: `residual block ${d} dropped`, node: d, rule: 'prune-depth' });
      notes.push({ kind: 'info', text: `stopped: ${rep.stoppedBecause}`, rule: 'prune' });
      const last = rep.steps.find((s) => s.step === rep.bestStep)!;
      const gates = checkGates(
        {
          ...(ctx.gates.minAccuracy !== undefined ? { minAccuracy: ctx.gates.minAccuracy } : {}),
          ...(ctx.gates.maxBytes !== undefined ? { maxBytes: ctx.gates.maxBytes } : {}),
          ...(ctx.gates.maxPeakBytes !== undefined ? { maxPeakBytes: ctx.gates.maxPeakBytes } : {}),
          ...(ctx.gates.maxLatencyMs !== undefined ? { maxLatencyMs: ctx.gates.maxLatencyMs } : {}),
        },
        {
          ...(last.accuracy !== undefined ? { accuracy: last.accuracy } : {}),
          bytes: last.bytes,
          peakBytes: last.peakActivationBytes,
          ...(last.latencyMs !== undefined ? { latencyMs: last.latencyMs } : {}),
        },
      );
      return {
        model: r.model,
        report: {
          stage: 'prune',
          seconds: (performance.now() - t0) / 1000,
          figures: {
            paramsBefore: rep.paramsBefore,
            paramsAfter: rep.paramsAfter,
            bytesBefore: rep.bytesBefore,
            bytesAfter: rep.bytesAfter,
            macsBefore: rep.macsBefore,
            macsAfter: rep.macsAfter,
            peakActivationBytesBefore: rep.peakActivationBytesBefore,
            peakActivationBytesAfter: rep.peakActivationBytesAfter,
            accuracyBefore: rep.accuracyBefore ?? null,
            accuracyAfter: rep.accuracyAfter ?? null,
            latencyMsBefore: rep.latencyMsBefore ?? null,
            latencyMsAfter: rep.latencyMsAfter ?? null,
            steps: rep.steps.length - 1,
          },
          notes,
          gates,
          detail: rep,
        },
      };
    },
  };
}
