// Full-model gradients vs PyTorch (test/fixtures/grad/<model>.grads.json): one batch of 8 in train mode,
// mean cross-entropy, every trainable parameter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelBuilder } from '../ir/builder.js';
import { buildModel } from '../models/index.js';
import { computeGradients, createTrainStep } from './step.js';
import {
  type FxHeader,
  type FxTensor,
  assertRel,
  fixtureBatch,
  initializerDigest,
  maxAbs,
  maxAbsDiff,
  readFixture,
  sumStats,
} from '../testing/train.js';

interface GradEntry {
  shape: number[];
  numel: number;
  sum: number;
  sum_sq: number;
  abs_max: number;
  full: boolean;
  data?: number[];
  sample_indices?: number[];
  sample_values?: number[];
}
interface GradFixture extends FxHeader {
  loss: number;
  logits: FxTensor;
  grads: Record<string, GradEntry>;
  bn?: { running_after_forward: Record<string, FxTensor> };
}

/** Gradients that are exactly zero in exact arithmetic (cnn-s conv biases feeding a training-mode BN). */
const ZERO_EXACT = new Set(['c1.bias', 'c2.bias']);

for (const name of ['mlp', 'cnn-s', 'vit-t'] as const) {
  test(`${name}: loss, logits and every parameter gradient equal PyTorch (train mode, batch 8)`, async () => {
    const fx = readFixture<GradFixture>(`${name}.grads.json`);
    const model = buildModel(name, { seed: 0 });
    assert.equal(
      initializerDigest(model),
      fx.initializer_sha256,
      'the builder weights are the ones torch was given',
    );
    const batch = fixtureBatch(fx);
    const r = await computeGradients(model, batch, { loss: { kind: 'cross-entropy' }, threads: 1 });
    assertRel(r.loss, fx.loss, 1e-5, 'loss');
    const logits = r.logits.data as Float32Array;
    assert.ok(
      maxAbsDiff(logits, fx.logits.data) <= 1e-4 * maxAbs(fx.logits.data),
      `logits differ by ${maxAbsDiff(logits, fx.logits.data)}`,
    );
    // the default trainable set is exactly torch's parameters (no BN running statistics)
    assert.deepEqual(Object.keys(r.grads).sort(), Object.keys(fx.grads).sort());
    for (const [p, want] of Object.entries(fx.grads)) {
      const got = r.grads[p]!;
      assert.deepEqual([...got.dims], want.shape, `${p} shape`);
      const d = got.data as Float32Array;
      if (ZERO_EXACT.has(p)) {
        // a conv bias right before a training-mode BN: the batch mean cancels it, its gradient is 0 up to float
        // noise on both sides (torch's |g| ≤ 2.2e-6 here)
        assert.ok(
          want.abs_max < 1e-5 && maxAbs(d) < 1e-5,
          `${p}: max |g| ${maxAbs(d)} (torch ${want.abs_max})`,
        );
        continue;
      }
      const scale = want.abs_max;
      if (want.full) {
        const err = maxAbsDiff(d, want.data!);
        assert.ok(
          err <= 1e-4 * scale,
          `${p}: max error ${err.toExponential(2)} vs max |g| ${scale.toExponential(2)}`,
        );
      } else {
        want.sample_indices!.forEach((k, i) =>
          assert.ok(
            Math.abs(d[k]! - want.sample_values![i]!) <= 1e-4 * scale,
            `${p}[${k}]: ${d[k]} vs ${want.sample_values![i]}`,
          ),
        );
        const s = sumStats(d);
        // Σ|g| ≤ sqrt(n·Σg²): the scale of a sum of n gradients
        const sumScale = Math.sqrt(want.numel * want.sum_sq);
        assert.ok(Math.abs(s.sum - want.sum) <= 1e-4 * sumScale, `${p}: sum ${s.sum} vs ${want.sum}`);
        assertRel(s.sum_sq, want.sum_sq, 5e-4, `${p} sum of squares`);
        assertRel(s.abs_max, want.abs_max, 1e-4, `${p} max |g|`);
      }
    }
  });
}

test('cnn-s: BN running statistics after one training-mode forward equal PyTorch (unbiased variance, momentum 0.1)', async () => {
  const fx = readFixture<GradFixture>('cnn-s.grads.json');
  const runner = await createTrainStep(buildModel('cnn-s', { seed: 0 }), {
    optimizer: { kind: 'sgd' },
    loss: { kind: 'cross-entropy' },
    threads: 1,
  });
  try {
    const r = await runner.run(fixtureBatch(fx), 0); // lr 0: the forward's statistics, unchanged weights
    assertRel(r.loss, fx.loss, 1e-5, 'loss');
    const st = runner.state().tensors;
    for (const [k, want] of Object.entries(fx.bn!.running_after_forward)) {
      const err = maxAbsDiff(st[k]!.data as Float32Array, want.data);
      assert.ok(err <= 1e-5 * Math.max(1, maxAbs(want.data)), `${k}: max error ${err}`);
    }
  } finally {
    await runner.release();
  }
});

/** Conv → BN → ReLU → global average pool → Linear, at a given opset (same weights for the same seed). */
function smallBnNet(opset: number) {
  const b = new ModelBuilder({ opset, seed: 3 });
  const x = b.input('input', 'float32', ['N', 1, 28, 28]);
  let h = b.conv2d(x, { inC: 1, outC: 8, kernel: 3, stride: 2, pad: 1, name: 'c' });
  h = b.relu(b.batchNorm(h, 8, { name: 'bn' }));
  h = b.flatten(b.globalAvgPool(h), 1);
  b.output(b.linear(h, 8, 10, { name: 'fc' }), 'logits');
  return b.build();
}

test('opset 13 (BatchNormalization without training_mode): BN decomposed into primitive ops, same step as opset 17', async () => {
  const fx = readFixture<GradFixture>('cnn-s.grads.json');
  const batch = fixtureBatch(fx);
  const res: { loss: number; grads: Record<string, Float32Array>; stats: Record<string, Float32Array> }[] =
    [];
  for (const opset of [13, 17]) {
    const model = smallBnNet(opset);
    assert.equal(model.opset(''), opset);
    const r = await computeGradients(model, batch, { loss: { kind: 'cross-entropy' }, threads: 1 });
    const runner = await createTrainStep(model, {
      optimizer: { kind: 'sgd' },
      loss: { kind: 'cross-entropy' },
      threads: 1,
    });
    try {
      await runner.run(batch, 0);
      const st = runner.state().tensors;
      res.push({
        loss: r.loss,
        grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, v.data as Float32Array])),
        stats: {
          mean: st['bn.running_mean']!.data as Float32Array,
          var: st['bn.running_var']!.data as Float32Array,
        },
      });
      // the export keeps the inference BatchNormalization
      assert.equal(
        runner.exportModel().graph.nodes.filter((n) => n.opType === 'BatchNormalization').length,
        1,
      );
    } finally {
      await runner.release();
    }
  }
  const [a, b] = res as [(typeof res)[0], (typeof res)[0]];
  assertRel(a.loss, b.loss, 1e-6, 'loss');
  for (const [k, g] of Object.entries(b.grads)) {
    if (k === 'c.bias') continue; // exactly zero before a training-mode BN
    assert.ok(maxAbsDiff(a.grads[k]!, g) <= 1e-5 * maxAbs(g), `${k}: ${maxAbsDiff(a.grads[k]!, g)}`);
  }
  for (const k of ['mean', 'var']) assert.ok(maxAbsDiff(a.stats[k]!, b.stats[k]!) <= 1e-6, `running ${k}`);
});
