import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Confusion } from './metrics.js';
import { evaluate } from './evaluate.js';
import { fromDataset, loadDataset, MemorySource, subset } from '../data/index.js';
import { loadModel } from '../onnx/index.js';
import { runModel } from '../runtime/index.js';
import { torchFixtures } from '../testing/fixtures.js';
import { DataError, InputError, ShapeError } from '../errors.js';

describe('metrics', () => {
  test('precision, recall and accuracy from a hand-made confusion matrix', () => {
    const c = new Confusion(3);
    // truth 0: predicted 0,0,1 · truth 1: 1,1 · truth 2: 0,2,2,2
    for (const [t, p] of [
      [0, 0],
      [0, 0],
      [0, 1],
      [1, 1],
      [1, 1],
      [2, 0],
      [2, 2],
      [2, 2],
      [2, 2],
    ] as const)
      c.add(t, p);
    assert.equal(c.n, 9);
    assert.equal(c.correct, 7);
    assert.equal(c.accuracy, 7 / 9);
    const pc = c.perClass(['a', 'b', 'c']);
    assert.deepEqual(
      pc.map((m) => [m.precision, m.recall, m.support]),
      [
        [2 / 3, 2 / 3, 3],
        [2 / 3, 1, 2],
        [1, 3 / 4, 4],
      ],
    );
    assert.equal(pc[1]!.name, 'b');
    assert.deepEqual(c.matrix(), [
      [2, 1, 0],
      [0, 2, 0],
      [1, 0, 3],
    ]);
  });
});

describe('evaluate', () => {
  const fixture = torchFixtures().find((f) => f.name === 'cnn-s_op13')!;
  const test500 = subset(loadDataset('fashion-mnist', 'test'), 500, 1);

  test('matches an independent argmax over ORT outputs; per-class recall adds up', async () => {
    const r = await evaluate(
      fixture.path,
      { ...test500, name: 'fashion-mnist' },
      { batchSize: 64, threads: 1 },
    );
    // independent: one ORT run over all 500 rows, argmax by hand
    const out = await runModel(
      fixture.path,
      { input: { dtype: 'float32', dims: [500, 1, 28, 28], data: test500.x } },
      { threads: 1 },
    );
    const s = out.logits!.data as Float32Array;
    let correct = 0;
    for (let i = 0; i < 500; i++) {
      let best = 0;
      for (let j = 1; j < 10; j++) if (s[i * 10 + j]! > s[i * 10 + best]!) best = j;
      if (best === Number(test500.y[i])) correct++;
    }
    assert.equal(r.n, 500);
    assert.equal(r.correct, correct);
    assert.equal(r.accuracy, correct / 500);
    const recallWeighted = r.perClass.reduce((a, m) => a + m.recall * m.support, 0);
    assert.ok(Math.abs(recallWeighted - correct) < 1e-9);
    assert.equal(
      r.confusion.flat().reduce((a, b) => a + b, 0),
      500,
    );
    // an untrained net is near chance
    assert.ok(r.accuracy < 0.35, `untrained accuracy ${r.accuracy}`);
  });

  test('a model with a fixed batch dimension gets padded batches and the same result', async () => {
    const dyn = await evaluate(fixture.path, test500, { batchSize: 100, threads: 1 });
    for (const fixed of [1, 7]) {
      const m = loadModel(fixture.path);
      m.graph.inputs[0]!.type = { kind: 'tensor', dtype: 'float32', shape: [fixed, 1, 28, 28] };
      m.graph.outputs[0]!.type = { kind: 'tensor', dtype: 'float32', shape: [fixed, 10] };
      const r = await evaluate(m, test500, { threads: 1 });
      assert.equal(r.correct, dyn.correct, `fixed batch ${fixed}`);
      assert.equal(r.n, 500);
    }
  });

  test('bad data and mismatched models give typed errors naming the value', async () => {
    const bad = { ...test500, n: 2, x: test500.x.subarray(0, 2 * 784), y: BigInt64Array.from([0n, 12n]) };
    await assert.rejects(
      evaluate(fixture.path, bad, { threads: 1 }),
      (e: unknown) => e instanceof DataError && /Label 12/.test((e as Error).message),
    );
    const nan = { ...bad, y: BigInt64Array.from([0n, 1n]), x: new Float32Array(2 * 784).fill(NaN) };
    await assert.rejects(
      evaluate(fixture.path, nan, { threads: 1 }),
      (e: unknown) => e instanceof DataError && /NaN/.test((e as Error).message),
    );
    const wrong = {
      ...bad,
      y: BigInt64Array.from([0n, 1n]),
      inputShape: [1, 14, 56],
      x: test500.x.subarray(0, 2 * 784),
    };
    const m = loadModel(fixture.path);
    m.graph.inputs[0]!.type = { kind: 'tensor', dtype: 'float32', shape: ['n', 3, 28, 28] };
    await assert.rejects(
      evaluate(m, wrong, { threads: 1 }),
      (e: unknown) => e instanceof ShapeError && /input "input"/.test((e as Error).message),
    );
  });

  test('a DataSource (a wrapped Dataset, fixed-batch model too) gives the in-memory result; unlabeled data is refused', async () => {
    const mem = await evaluate(fixture.path, test500, { batchSize: 64, threads: 1 });
    const src = await evaluate(fixture.path, fromDataset(test500), { batchSize: 64, threads: 1 });
    assert.deepEqual([src.n, src.correct, src.confusion], [mem.n, mem.correct, mem.confusion]);
    const m = loadModel(fixture.path);
    m.graph.inputs[0]!.type = { kind: 'tensor', dtype: 'float32', shape: [7, 1, 28, 28] };
    m.graph.outputs[0]!.type = { kind: 'tensor', dtype: 'float32', shape: [7, 10] };
    const fixed = await evaluate(m, fromDataset(test500, { model: m }), { threads: 1 });
    assert.deepEqual([fixed.n, fixed.correct], [500, mem.correct]);
    const unlabeled = new MemorySource({
      name: 'calib.npy',
      format: 'npy',
      n: 2,
      inputs: [{ name: 'input', dtype: 'float32', shape: [1, 28, 28] }],
      arrays: [new Float32Array(2 * 784)],
    });
    await assert.rejects(
      evaluate(fixture.path, unlabeled, { threads: 1 }),
      (e: unknown) => e instanceof InputError && /calib\.npy has no labels/.test((e as Error).message),
    );
  });
});
