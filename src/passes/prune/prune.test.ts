import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Tensor, type Model } from '../../ir/index.js';
import { buildModel } from '../../models/index.js';
import '../../ops/index.js';
import { runModel } from '../../runtime/index.js';
import { maxAbsDiff, prng } from '../../testing/fixtures.js';
import type { TrainData } from '../../train/trainer.js';
import { keptIndices } from './apply.js';
import { analyzeDependencies } from './deps.js';
import { calibrationBatches, taylorScores } from './importance.js';
import { prune, type PruneStep } from './prune.js';

function randomData(n: number, seed: number): TrainData {
  const r = prng(seed);
  const x = Float32Array.from({ length: n * 784 }, () => r());
  const y = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * 10)));
  return { n, x, y, inputShape: [1, 28, 28], numClasses: 10 };
}

/** Mean cross-entropy (float64) of the model on one batch. */
async function loss(m: Model, x: Float32Array, y: BigInt64Array, dims: number[]): Promise<number> {
  const out = await runModel(m, { input: { dtype: 'float32', dims, data: x } });
  const l = out.logits!.data as Float32Array;
  let s = 0;
  for (let i = 0; i < y.length; i++) {
    const row = Array.from(l.subarray(i * 10, i * 10 + 10));
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
    s += lse - row[Number(y[i])]!;
  }
  return s / y.length;
}

describe('Taylor importance uses real gradients', () => {
  it('per channel, Σ w·∂L/∂w over the group matches a central finite difference of scaling the channel', async () => {
    const model = buildModel('cnn-s', { seed: 5 });
    const deps = analyzeDependencies(model);
    const data = randomData(16, 9);
    const opts = { kind: 'taylor' as const, data, batches: 1, batchSize: 16, seed: 2 };
    const groups = deps.groups.filter((g) => g.prunable);
    const signed = await taylorScores(model, deps, groups, opts, true);
    const batch = calibrationBatches(data, opts).next().value!;
    const x = batch.x.data as Float32Array;
    const y = batch.y.data as BigInt64Array;
    let checked = 0;
    for (const grp of groups) {
      const s = signed.get(grp.id)!;
      for (const c of [0, 3, grp.size - 1]) {
        const scaled = (eps: number) => {
          const m = model.clone();
          for (const mem of grp.members) {
            if (mem.node.opType === 'BatchNormalization' && mem.input >= 3) continue;
            const v = m.graph.initializers.get(mem.value.name)!;
            const t = v.const!;
            // elements along the axis that belong to channel c of this group (other groups' channels excluded)
            const withC = keptIndices(deps, mem.layout, new Map([[grp.id, [c]]]));
            const other = new Set(keptIndices(deps, mem.layout, new Map([[grp.id, []]])));
            const idx = new Set(withC.filter((i) => !other.has(i)));
            const d = Float32Array.from(t.typed() as Float32Array);
            const n = t.dims[mem.axis]!;
            const inner = t.dims.slice(mem.axis + 1).reduce((a, b) => a * b, 1);
            for (let i = 0; i < d.length; i++) if (idx.has(Math.floor(i / inner) % n)) d[i]! *= 1 + eps;
            m.graph.setInitializer(v, Tensor.from('float32', [...t.dims], d));
          }
          return m;
        };
        const eps = 1e-2;
        const fd =
          ((await loss(scaled(eps), x, y, batch.x.dims)) - (await loss(scaled(-eps), x, y, batch.x.dims))) /
          (2 * eps);
        assert.ok(
          Math.abs(fd - s[c]!) <= 0.05 * Math.abs(s[c]!) + 2e-4,
          `group ${grp.producers[0]} channel ${c}: Taylor Σw·g ${s[c]} vs finite difference ${fd}`,
        );
        checked++;
      }
    }
    assert.equal(checked, 9);
  });
});

describe('the iterative schedule', () => {
  it('stops at the parameter-bytes target, with a history of every step', async () => {
    const model = buildModel('cnn-s', { seed: 1 });
    const target = 700_000;
    const r = await prune(model, { targetBytes: target, step: 0.15, roundTo: 1, minChannels: 1 });
    const s = r.report.steps;
    assert.equal(r.report.stoppedBecause, 'target');
    assert.ok(s.at(-1)!.bytes <= target, `last step ${s.at(-1)!.bytes} bytes`);
    assert.ok(s.at(-2)!.bytes > target, 'the step before was above the target');
    assert.ok(s.length >= 3);
    for (let i = 1; i < s.length; i++)
      assert.ok(s[i]!.params < s[i - 1]!.params, 'each step removes parameters');
    assert.equal(r.report.paramsAfter, s.at(-1)!.params);
    const out = await runModel(r.model, {
      input: { dtype: 'float32', dims: [2, 1, 28, 28], data: new Float32Array(2 * 784) },
    });
    assert.deepEqual(out.logits!.dims, [2, 10]);
  });

  it('stops at a peak-activation-memory target', async () => {
    const r = await prune(buildModel('cnn-s', { seed: 1 }), {
      targetPeakBytes: 150_000,
      roundTo: 1,
      minChannels: 1,
    });
    const s = r.report.steps;
    assert.equal(r.report.stoppedBecause, 'target');
    assert.ok(s.at(-1)!.peakActivationBytes <= 150_000 && s.at(-2)!.peakActivationBytes > 150_000);
    assert.equal(r.report.peakActivationBytesAfter, s.at(-1)!.peakActivationBytes);
  });

  it('fine-tunes between steps and keeps the best model over the accuracy floor', async () => {
    const model = buildModel('cnn-s', { seed: 1 });
    const data = randomData(96, 3);
    const r = await prune(
      model,
      { ratio: 0.5, step: 0.25, finetuneSteps: 2, finetuneBatch: 16, minAccuracy: 0 },
      { train: data, val: data },
    );
    assert.equal(r.report.stoppedBecause, 'ratio');
    assert.equal(r.report.steps.length, 3);
    assert.ok(
      r.report.steps.every((s) => typeof s.accuracy === 'number' && s.accuracy >= 0 && s.accuracy <= 1),
    );
    const high = await prune(model, { ratio: 0.5, step: 0.25, minAccuracy: 1.01 }, { val: data });
    assert.equal(high.report.stoppedBecause, 'accuracy-floor');
    assert.equal(high.report.bestStep, 0);
    assert.equal(high.report.paramsAfter, high.report.paramsBefore);
  });

  it('removes heads step by step (ratio of the original heads), reporting original head indices', async () => {
    const model = buildModel('vit-t', { seed: 4 });
    const data = randomData(64, 3);
    const r = await prune(
      model,
      { ratio: 0, heads: 0.5, step: 0.25, finetuneSteps: 1, finetuneBatch: 16 },
      { train: data, val: data },
    );
    assert.equal(r.report.steps.length, 3);
    assert.equal(r.report.stoppedBecause, 'ratio');
    const [s0, s1, s2] = r.report.steps as [PruneStep, PruneStep, PruneStep];
    assert.ok(s0.params > s1.params && s1.params > s2.params, `${s0.params} > ${s1.params} > ${s2.params}`);
    for (const b of r.report.heads!.blocks) {
      assert.equal(b.heads, 4);
      assert.equal(b.kept.length, 2);
      assert.ok(b.kept.every((h) => h >= 0 && h < 4));
      assert.equal(b.scores.length, 4);
    }
    assert.deepEqual(r.model.graph.initializers.get('blocks.0.qkv.weight')!.const!.dims, [64, 96]);
  });

  it('distils from the unpruned model while fine-tuning: with α = 0 the labels do not matter', async () => {
    const model = buildModel('mlp', { seed: 2 });
    const data = randomData(64, 4);
    const shuffled = { ...data, y: BigInt64Array.from(data.y, (v) => (v + 3n) % 10n) };
    const x = { input: { dtype: 'float32' as const, dims: [4, 1, 28, 28], data: data.x.slice(0, 4 * 784) } };
    const run = async (d: TrainData, distill?: { alpha: number }) => {
      const r = await prune(
        model,
        {
          ratio: 0.25,
          step: 0.25,
          finetuneSteps: 3,
          finetuneBatch: 16,
          lr: 0.05,
          ...(distill ? { distill } : {}),
        },
        { train: d },
      );
      return (await runModel(r.model, x)).logits!.data as Float32Array;
    };
    const kd = [await run(data, { alpha: 0 }), await run(shuffled, { alpha: 0 })];
    assert.ok(maxAbsDiff(kd[0]!, kd[1]!) <= 1e-6, 'pure distillation ignores the labels');
    const ce = [await run(data), await run(shuffled)];
    assert.ok(maxAbsDiff(ce[0]!, ce[1]!) > 1e-4, 'cross-entropy fine-tuning reads the labels');
    assert.ok(maxAbsDiff(kd[0]!, ce[0]!) > 1e-4, 'the distillation loss is a different loss');
    await assert.rejects(prune(model, { ratio: 0.25, distill: {} }, { train: data }), /needs fine-tuning/);
  });
});
