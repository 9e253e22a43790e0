import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Dataset, fromDataset, loadDataset, subset, writeNpy } from '../data/index.js';
import { openData } from '../data/open.js';
import { InputError } from '../errors.js';
import { evaluate } from '../eval/evaluate.js';
import type { Model } from '../ir/graph.js';
import { buildModel } from '../models/index.js';
import { loadCheckpoint } from './checkpoint.js';
import { type TrainOptions, train, validate } from './trainer.js';

let dir = '';
let trainAll: Dataset;
let testAll: Dataset;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-train-'));
  trainAll = loadDataset('fashion-mnist', 'train');
  testAll = loadDataset('fashion-mnist', 'test');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Every initializer of the model as raw bytes, by name. */
function weights(m: Model): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of m.graph.initializers) out.set(k, Buffer.from(v.const!.bytes));
  return out;
}

function assertSameWeights(a: Model, b: Model, what: string): void {
  const wa = weights(a);
  const wb = weights(b);
  assert.deepEqual([...wa.keys()].sort(), [...wb.keys()].sort());
  for (const [k, v] of wa) assert.ok(v.equals(wb.get(k)!), `${what}: initializer ${k} differs`);
}

function assertDifferentWeights(a: Model, b: Model): void {
  const wb = weights(b);
  assert.ok(
    [...weights(a)].some(([k, v]) => !v.equals(wb.get(k)!)),
    'weights should have changed',
  );
}

const sgd = { kind: 'sgd', momentum: 0.9 } as const;

describe('trainer', () => {
  test('resume from an epoch checkpoint gives bit-identical weights to an uninterrupted run (cnn-s: BN statistics, momentum)', async () => {
    const data = subset(trainAll, 512, 1);
    const val = subset(testAll, 200, 2);
    const model = buildModel('cnn-s', { seed: 3 });
    const base: TrainOptions = {
      data,
      val,
      epochs: 2,
      batchSize: 64,
      optimizer: sgd,
      lr: { kind: 'cosine', lr: 0.05, warmup: 3 },
      seed: 5,
      run: { threads: 1 },
    };
    const full = await train(model, base);
    assert.equal(full.history.length, 2);
    assert.equal(full.steps, 16);
    assertDifferentWeights(full.model, model);

    const path = join(dir, 'cnn.ckpt');
    let epochsSeen = 0;
    const first = await train(model, {
      ...base,
      checkpoint: { path, everyEpochs: 1 },
      hooks: {
        onEpochEnd: () => {
          epochsSeen++;
          return { stop: true }; // "interrupted" after epoch 1
        },
      },
    });
    assert.equal(epochsSeen, 1);
    assert.equal(first.stopped, 'callback');
    const c = loadCheckpoint(path);
    assert.deepEqual([c.position.epoch, c.position.batch, c.position.step], [1, 0, 8]);
    assert.equal(c.position.history.length, 1);

    const resumed = await train(model, { ...base, checkpoint: { resume: path } });
    assertSameWeights(resumed.model, full.model, 'resumed vs uninterrupted');
    assert.equal(resumed.steps, 16);
    assert.deepEqual(
      resumed.history.map((h) => [h.trainLoss, h.valLoss, h.valAccuracy, h.lr]),
      full.history.map((h) => [h.trainLoss, h.valLoss, h.valAccuracy, h.lr]),
    );
    // a checkpoint from other settings is refused, with a message naming them
    await assert.rejects(
      train(model, { ...base, seed: 6, checkpoint: { resume: path } }),
      (e: unknown) => e instanceof InputError && /seed 5/.test(e.message),
    );
  });

  test('resume after a crash mid-epoch (step checkpoints) is bit-identical too (mlp, 512 rows); hooks see every step', async () => {
    const data = subset(trainAll, 512, 3);
    const model = buildModel('mlp', { seed: 1 });
    const base: TrainOptions = {
      data,
      epochs: 2,
      batchSize: 64,
      optimizer: sgd,
      lr: 0.05,
      seed: 9,
      run: { threads: 1 },
    };
    const steps: number[] = [];
    const full = await train(model, { ...base, hooks: { onStepEnd: (s) => void steps.push(s.step) } });
    assert.deepEqual(
      steps,
      Array.from({ length: 16 }, (_, i) => i + 1),
    );

    const path = join(dir, 'mlp.ckpt');
    await assert.rejects(
      train(model, {
        ...base,
        checkpoint: { path, everySteps: 3 },
        hooks: {
          onStepEnd: (s) => {
            if (s.step === 11) throw new Error('simulated crash');
          },
        },
      }),
      /simulated crash/,
    );
    const c = loadCheckpoint(path);
    assert.deepEqual([c.position.epoch, c.position.batch, c.position.step], [1, 1, 9]); // the step-9 checkpoint
    const resumed = await train(model, { ...base, checkpoint: { resume: path } });
    assertSameWeights(resumed.model, full.model, 'resumed mid-epoch vs uninterrupted');
    assert.equal(resumed.history[1]!.trainLoss, full.history[1]!.trainLoss);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  test('a short run clearly learns (mlp, 2,000 Fashion-MNIST rows, 2 epochs): ≥ 60 % on 1,000 test rows vs ~10 % untrained', async () => {
    const data = subset(trainAll, 2000, 4);
    const val = subset(testAll, 500, 5);
    const test = subset(testAll, 1000, 6);
    const model = buildModel('mlp', { seed: 0 });
    const untrained = await evaluate(model, test, { threads: 1 });
    const extraCalls: number[] = [];
    const r = await train(model, {
      data,
      val,
      test,
      epochs: 2,
      batchSize: 64,
      optimizer: sgd,
      lr: 0.05,
      seed: 0,
      run: { threads: 1 },
      selection: { keepBest: true },
      hooks: {
        extraInputs: (idx) => {
          extraCalls.push(idx.length);
          return {};
        },
      },
    });
    assert.ok(untrained.accuracy < 0.25, `untrained ${untrained.accuracy}`);
    assert.ok(r.testAccuracy! >= 0.6, `trained ${r.testAccuracy}`);
    assert.equal(extraCalls.length, 2 * 31);
    assert.ok(extraCalls.every((k) => k === 64));
    assert.equal(r.history.length, 2);
    for (const h of r.history) {
      assert.ok(h.trainLoss > 0 && h.trainLoss < 2.31, `train loss ${h.trainLoss}`);
      assert.ok(h.valAccuracy! > 0.5 && h.valLoss! < 1.5, `val ${h.valAccuracy} ${h.valLoss}`);
      assert.equal(h.lr, 0.05);
      assert.ok(h.seconds > 0 && h.rowsPerSecond > 0);
    }
    assert.ok(r.history[1]!.trainLoss < r.history[0]!.trainLoss);
    const best = r.history.reduce((a, b) => (b.valAccuracy! > a.valAccuracy! ? b : a));
    assert.equal(r.epoch, best.epoch);
    // validation (loss + accuracy) agrees with evaluate() on the returned model
    const v = await validate(r.model, val, { threads: 1 });
    const e = await evaluate(r.model, val, { threads: 1 });
    assert.equal(v.accuracy, e.accuracy);
    assert.equal(v.accuracy, best.valAccuracy);
    assert.equal(r.test!.accuracy, r.testAccuracy);
  });

  test('distillation hooks: extraInputs feeds teacher logits by dataset row, the distill loss trains the student', async () => {
    const data = subset(trainAll, 1024, 10);
    const test = subset(testAll, 500, 11);
    // a "teacher" that knows the labels: logits 4 on the true class, 0 elsewhere, one row per dataset row
    const teacher = new Float32Array(data.n * 10);
    for (let i = 0; i < data.n; i++) teacher[i * 10 + Number(data.y[i])] = 4;
    let checked = 0;
    const r = await train(buildModel('mlp', { seed: 4 }), {
      data,
      test,
      epochs: 2,
      optimizer: sgd,
      lr: 0.05,
      run: { threads: 1 },
      loss: { kind: 'distill', temperature: 2, alpha: 0.7 },
      hooks: {
        extraInputs: (idx, batch) => {
          const t = new Float32Array(idx.length * 10);
          for (let i = 0; i < idx.length; i++) {
            assert.equal(batch.y[i], data.y[idx[i]!]); // indices name the rows of the batch
            t.set(teacher.subarray(idx[i]! * 10, idx[i]! * 10 + 10), i * 10);
            checked++;
          }
          return { teacher_logits: { dtype: 'float32', dims: [idx.length, 10], data: t } };
        },
      },
    });
    assert.equal(checked, 2 * 16 * 64);
    assert.ok(r.history.every((h) => Number.isFinite(h.trainLoss)));
    assert.ok(r.history[1]!.trainLoss < r.history[0]!.trainLoss);
    assert.ok(r.testAccuracy! > 0.55, `distilled student ${r.testAccuracy}`);
  });

  test('transformBatch rewrites the batch before it is fed (and before extraInputs), with the global step', async () => {
    const data = subset(trainAll, 256, 12);
    // the transform negates every pixel and relabels every row as class 3: the same weights as training on such rows
    const flipped: Dataset = { ...data, x: data.x.map((v) => -v), y: new BigInt64Array(data.n).fill(3n) };
    const base: TrainOptions = {
      data,
      epochs: 2,
      batchSize: 64,
      optimizer: sgd,
      lr: 0.05,
      seed: 1,
      run: { threads: 1 },
    };
    const steps: number[] = [];
    let seenByExtra = 0;
    const r = await train(buildModel('mlp', { seed: 5 }), {
      ...base,
      hooks: {
        transformBatch: (b, at) => {
          steps.push(at.step);
          assert.equal(at.indices.length, b.n);
          assert.equal(b.x[0], data.x[at.indices[0]! * 784]);
          for (let i = 0; i < b.x.length; i++) b.x[i] = -b.x[i]!;
          b.y.fill(3n);
        },
        extraInputs: (idx, b) => {
          assert.equal(b.x[0], -data.x[idx[0]! * 784]!);
          assert.equal(b.y[0], 3n);
          seenByExtra++;
          return {};
        },
      },
    });
    assert.deepEqual(
      steps,
      Array.from({ length: 8 }, (_, i) => i),
    );
    assert.equal(seenByExtra, 8);
    const ref = await train(buildModel('mlp', { seed: 5 }), { ...base, data: flipped });
    assertSameWeights(r.model, ref.model, 'transformed batches vs transformed rows');
  });

  test('early stopping stops when validation does not improve (lr 0, patience 2) and keepBest returns the first epoch', async () => {
    const data = subset(trainAll, 256, 7);
    const val = subset(testAll, 128, 8);
    const model = buildModel('mlp', { seed: 2 });
    const r = await train(model, {
      data,
      val,
      epochs: 10,
      batchSize: 64,
      optimizer: sgd,
      lr: 0,
      run: { threads: 1 },
      selection: { keepBest: true, earlyStopping: { patience: 2, metric: 'val_loss' } },
    });
    assert.equal(r.stopped, 'early-stopping');
    assert.equal(r.history.length, 3);
    assert.equal(r.bestEpoch, 1);
    assert.equal(r.epoch, 1);
    assertSameWeights(r.model, model, 'lr 0');
    // minDelta: an improving run still stops when improvements are below it
    const slow = await train(model, {
      data,
      val,
      epochs: 10,
      batchSize: 64,
      optimizer: sgd,
      lr: 1e-4,
      run: { threads: 1 },
      selection: { earlyStopping: { patience: 1, minDelta: 0.5, metric: 'val_accuracy' } },
    });
    assert.equal(slow.stopped, 'early-stopping');
    assert.equal(slow.history.length, 2);
  });

  test('bad options are input errors before any work; nothing is written', async () => {
    const data = subset(trainAll, 128, 9);
    const model = buildModel('mlp', { seed: 0 });
    const base: TrainOptions = { data, epochs: 1, optimizer: sgd, lr: 0.05, run: { threads: 1 } };
    const path = join(dir, 'never.ckpt');
    await assert.rejects(train(model, { ...base, batchSize: 0 }), InputError);
    await assert.rejects(train(model, { ...base, epochs: 1.5 }), InputError);
    await assert.rejects(train(model, { ...base, lr: { kind: 'step', lr: 0.1, stepSize: 0 } }), InputError);
    await assert.rejects(
      train(model, { ...base, selection: { keepBest: { metric: 'val_accuracy' } }, checkpoint: { path } }),
      /needs validation data/,
    );
    await assert.rejects(
      train(model, { ...base, checkpoint: { resume: join(dir, 'missing.ckpt') } }),
      /does not exist/,
    );
    assert.ok(!existsSync(path));
  });

  test('a DataSource trains exactly as its rows in memory (an .npy file read whole, validation from a source too)', async () => {
    const data = subset(trainAll, 256, 12);
    const val = subset(testAll, 100, 13);
    const model = buildModel('mlp', { seed: 5 });
    const opts = { epochs: 1, batchSize: 32, optimizer: sgd, lr: 0.05, seed: 3, run: { threads: 1 } };
    const mem = await train(model, { ...opts, data, val, selection: { keepBest: true } });
    const x = join(dir, 'x.npy');
    const y = join(dir, 'y.npy');
    writeNpy(x, { dtype: 'float32', shape: [data.n, 1, 28, 28], data: data.x });
    writeNpy(y, { dtype: 'int64', shape: [data.n], data: data.y });
    const src = await openData(x, { labels: y, model });
    const vsrc = fromDataset(val, { model, name: 'val' });
    try {
      const fromSource = await train(model, { ...opts, data: src, val: vsrc, selection: { keepBest: true } });
      assertSameWeights(fromSource.model, mem.model, 'DataSource vs in-memory rows');
      assert.deepEqual(
        fromSource.history.map((h) => [h.trainLoss, h.valAccuracy]),
        mem.history.map((h) => [h.trainLoss, h.valAccuracy]),
      );
    } finally {
      await src.close();
      await vsrc.close();
    }
    // unlabelled data cannot train
    const unlabelled = await openData(x, { model });
    try {
      await assert.rejects(train(model, { ...opts, data: unlabelled }), /needs labels/);
    } finally {
      await unlabelled.close();
    }
  });
});
