import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import '../ops/index.js';
import { buildModel } from '../models/index.js';
import { loadDataset, permutation, take } from '../data/index.js';
import { evaluate } from '../eval/evaluate.js';
import { encodeModel } from '../onnx/index.js';
import { planStatic, prepareStatic, quantizeStatic } from '../passes/quantize/static.js';
import { train } from '../train/trainer.js';
import { insertFakeQuant } from './fakequant.js';
import { exportQdq } from './export.js';
import { calibrationFeeds, prepareForQat, quantizeAwareTrain } from './qat.js';

describe('quantization-aware training', () => {
  test('a short QAT fine-tune on a Fashion-MNIST subset keeps or improves the static PTQ accuracy', async (t) => {
    const all = loadDataset('fashion-mnist', 'train');
    const perm = permutation(all.n, 17);
    const data = take(all, Array.from(perm.subarray(0, 3000)));
    const val = take(all, Array.from(perm.subarray(3000, 4000)));
    const test = loadDataset('fashion-mnist', 'test');
    const testSub = take(test, Array.from(permutation(test.n, 5).subarray(0, 2000)));

    // a briefly trained FP32 cnn-s
    const fp = await train(buildModel('cnn-s', { seed: 0 }), {
      data,
      epochs: 2,
      optimizer: { kind: 'sgd', momentum: 0.9 },
      lr: 0.05,
      seed: 1,
      run: { threads: 1 },
    });
    const { model: base } = await prepareForQat(fp.model);
    const fp32 = (await evaluate(base, testSub, { threads: 1 })).accuracy;

    // static PTQ of the same model
    const calib = calibrationFeeds(data, 'input', 256, 3);
    const ptq = await quantizeStatic(base, { calibration: calib });
    const ptqAcc = (await evaluate(ptq.model, testSub, { threads: 1 })).accuracy;

    // QAT starts from exactly that model: same layout, plan, ranges and weights → the same file
    const ps = prepareStatic(base, {});
    const plan = planStatic(ps.model, ps.options);
    assert.deepEqual(plan, ptq.plan);
    const start = insertFakeQuant(ps.model, plan, ptq.ranges);
    assert.deepEqual(encodeModel(exportQdq(ps.model, start.model, start.info).model), encodeModel(ptq.model));

    const r = await quantizeAwareTrain(base, {
      data,
      val,
      test: testSub,
      epochs: 1,
      ranges: ptq.ranges,
      prepared: true,
      seed: 2,
      threads: 1,
    });
    const line = `FP32 ${(100 * fp32).toFixed(2)} %, static PTQ ${(100 * ptqAcc).toFixed(2)} %, QAT ${(100 * r.accuracy!).toFixed(2)} % (fake-quant ${(100 * r.fakeQuantAccuracy!).toFixed(2)} %)`;
    t.diagnostic(line);
    assert.equal(r.epoch, 1, `the trained weights are exported, not the start: ${r.notes.join('; ')}`);
    assert.equal(r.history.length, 1);
    assert.ok(r.accuracy! >= ptqAcc, line);
    assert.ok(Math.abs(r.accuracy! - r.fakeQuantAccuracy!) <= 0.005, line);
    // every quantized node runs as an integer kernel (the float stem Conv that PTQ keeps float stays float)
    assert.ok(
      r.plan.nodes.length >= 3 && r.kernels.integer >= r.plan.nodes.length,
      JSON.stringify(r.kernels.ops),
    );
    // the scales were learned (moved), the zero points kept
    assert.ok(
      Object.values(r.scales).some(([a, b]) => a !== b),
      JSON.stringify(r.scales),
    );
    for (const grp of r.info.groups)
      assert.equal(
        r.model.graph.initializers.get(`${grp.root}_zero_point`)!.const!.toFloat64()[0],
        grp.zeroPoint,
      );
  });
});
