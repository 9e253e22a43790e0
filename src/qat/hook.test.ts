import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import '../ops/index.js';
import type { Model } from '../ir/index.js';
import { buildModel } from '../models/index.js';
import { loadDataset, permutation, take } from '../data/index.js';
import { evaluate } from '../eval/evaluate.js';
import { autoQuantize } from '../passes/quantize/auto.js';
import { train } from '../train/trainer.js';
import { qatHook } from './hook.js';
import { calibrationFeeds } from './qat.js';
import type { QatResult } from './qat.js';

describe('QAT step of --auto', () => {
  test('auto tries static, then mixed precision, then QAT, records each, and stops at QAT when it holds the gate', async () => {
    const all = loadDataset('fashion-mnist', 'train');
    const perm = permutation(all.n, 9);
    const data = take(all, Array.from(perm.subarray(0, 1500)));
    const val = take(all, Array.from(perm.subarray(1500, 2000)));
    const gate = take(
      loadDataset('fashion-mnist', 'test'),
      Array.from(permutation(10000, 4).subarray(0, 500)),
    );
    const fp = await train(buildModel('mlp', { seed: 3 }), {
      data,
      epochs: 1,
      optimizer: { kind: 'sgd', momentum: 0.9 },
      lr: 0.05,
      run: { threads: 1 },
    });

    // a gate the PTQ steps cannot pass: every model but QAT's scores 0 (the float model scores for real)
    const fromQat = new WeakSet<Model>();
    let calls = 0;
    const score = async (m: Model) =>
      calls++ === 0 || fromQat.has(m) ? (await evaluate(m, gate, { threads: 1 })).accuracy : 0;
    let qat: QatResult | undefined;
    const hook = qatHook({
      data,
      val,
      epochs: 1,
      threads: 1,
      onResult: (r) => {
        qat = r;
        fromQat.add(r.model);
      },
    });
    const r = await autoQuantize(fp.model, {
      calibration: calibrationFeeds(data, 'input', 128),
      score,
      maxDrop: 1,
      threads: 1,
      qat: hook,
    });
    assert.deepEqual(
      r.steps.map((s) => [s.method, s.status]),
      [
        ['static', 'failed'],
        ['mixed', 'failed'],
        ['qat', 'passed'],
      ],
    );
    assert.equal(r.chosen, 'qat');
    assert.match(r.stoppedBecause, /QAT holds the gate/);
    assert.ok(qat && r.model === qat.model);
    assert.ok(r.steps[2]!.accuracy! >= r.baseline - 0.01, `${r.steps[2]!.accuracy} vs ${r.baseline}`);
    // QAT used the static step's placement: every Gemm quantized, integer kernels in ORT
    assert.equal(qat!.plan.nodes.length, 3);
    assert.ok(qat!.kernels.integer >= 3, JSON.stringify(qat!.kernels.ops));
  });
});
