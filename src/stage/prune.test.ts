// The prune stage on the contract: magnitude pruning needs nothing from the run; blocked groups become 'kept'
// notes with their reason; targets come from the device profile and the gates when the options set none; the
// gates' accuracy floor stops the schedule; fine-tuning needs training data (runStage names the missing need).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromDataset } from '../data/index.js';
import { buildModel } from '../models/index.js';
import { prng } from '../testing/fixtures.js';
import { createContext, runStage } from './context.js';
import { pruneStage, resolvePruneOptions } from './prune.js';

function rows(n: number, seed: number) {
  const r = prng(seed);
  return {
    n,
    x: Float32Array.from({ length: n * 784 }, () => r()),
    y: BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * 10))),
    inputShape: [1, 28, 28],
    numClasses: 10,
  };
}

describe('prune stage', () => {
  it('magnitude pruning runs on the model alone; the output group is a kept note with its reason', async () => {
    const m = buildModel('cnn-s', { seed: 1 });
    const r = await runStage(pruneStage({ ratio: 0.5 }), m, createContext());
    assert.equal(r.report.stage, 'prune');
    assert.ok(r.report.figures.paramsAfter! < 0.3 * r.report.figures.paramsBefore!);
    const kept = r.report.notes.filter((n) => n.kind === 'kept');
    assert.equal(kept.length, 1);
    assert.match(kept[0]!.reason!, /graph output "logits"/);
    assert.equal(r.report.notes.filter((n) => n.kind === 'rewrite').length, 3);
    assert.equal(
      m.graph.initializers.get('c1.weight')!.const!.dims[0],
      32,
      'the input model is not modified',
    );
  });

  it('targets from the device profile and the gates when the options set none', () => {
    const ctx = createContext({
      device: { latencyBudgetMs: 2, storageBytes: 1e6 },
      gates: { maxPeakBytes: 5e5, minAccuracy: 0.8 },
    });
    const o = resolvePruneOptions({}, ctx);
    assert.equal(o.targetLatencyMs, 2);
    assert.equal(o.targetBytes, 1e6);
    assert.equal(o.targetPeakBytes, 5e5);
    assert.equal(o.minAccuracy, 0.8);
    assert.equal(resolvePruneOptions({ ratio: 0.3 }, ctx).targetBytes, undefined, 'an explicit ratio wins');
  });

  it("the gates' accuracy floor on the evaluation data stops the schedule, keeping the input model", async () => {
    const m = buildModel('cnn-s', { seed: 1 });
    const ctx = createContext({
      data: { eval: fromDataset(rows(64, 2), { model: m }) },
      gates: { minAccuracy: 1 },
    });
    const r = await runStage(pruneStage({ ratio: 0.5, step: 0.25 }), m, ctx);
    assert.equal(r.report.detail.stoppedBecause, 'accuracy-floor');
    assert.equal(r.report.figures.paramsAfter, r.report.figures.paramsBefore);
    assert.equal(r.report.gates.find((g) => g.name === 'min-accuracy')?.passed, false);
  });

  it('fine-tuning needs training data', async () => {
    await assert.rejects(
      runStage(pruneStage({ ratio: 0.5, finetuneSteps: 5 }), buildModel('cnn-s'), createContext()),
      /train/,
    );
  });
});
