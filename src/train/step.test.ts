import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, Model, Tensor, tensorType } from '../ir/index.js';
import { buildModel } from '../models/index.js';
import { type HostTensor, nchwcBlockSize, runModel } from '../runtime/index.js';
import { mulberry32 } from '../data/index.js';
import { buildTrainGraph, computeGradients, createTrainStep } from './step.js';
import {
  type FxHeader,
  assertRel,
  fixtureBatch,
  initializerDigest,
  maxAbs,
  maxAbsDiff,
  readFixture,
  rowsBatch,
  sumStats,
} from '../testing/train.js';
import type { TrainStepOptions } from './types.js';

interface SumSq {
  sum: number;
  sum_sq: number;
}
interface BnSteps extends FxHeader {
  optimizer: { lr: number; momentum: number };
  initial_params: Record<string, SumSq>;
  steps: {
    step: number;
    rows: number[];
    loss: number;
    bn: Record<string, number[]>;
    params: Record<string, SumSq>;
  }[];
}
interface AdamWSteps extends FxHeader {
  optimizer: { lr: number; betas: [number, number]; eps: number; weight_decay: number };
  sampled: Record<string, { shape: number[]; indices: number[] }>;
  initial: { params: Record<string, SumSq>; samples: Record<string, number[]> };
  steps: {
    step: number;
    rows: number[];
    loss: number;
    params: Record<string, SumSq>;
    samples: Record<string, number[]>;
  }[];
}

const uniform = (seed: number) => {
  const u = mulberry32(seed);
  return () => u() / 2 ** 32;
};

/** Parameter sums agree: the sum to 1e-5 of its scale sqrt(n·Σx²), the sum of squares to 1e-5 relative. */
function checkSums(what: string, got: HostTensor, want: SumSq, tol = 1e-5): void {
  const s = sumStats(got.data as Float32Array);
  const scale = Math.sqrt(got.data.length * want.sum_sq);
  assert.ok(Math.abs(s.sum - want.sum) <= tol * scale, `${what}: sum ${s.sum} vs ${want.sum}`);
  assertRel(s.sum_sq, want.sum_sq, tol, `${what}: sum of squares`);
}

test('cnn-s, 5 SGD steps (lr 0.05, momentum 0.9): losses, BN running statistics and parameters equal PyTorch', async () => {
  const fx = readFixture<BnSteps>('bn_steps.json');
  const model = buildModel('cnn-s', { seed: 0 });
  assert.equal(initializerDigest(model), fx.initializer_sha256);
  const runner = await createTrainStep(model, {
    optimizer: { kind: 'sgd', momentum: fx.optimizer.momentum },
    loss: { kind: 'cross-entropy' },
    threads: 1,
  });
  try {
    const s0 = runner.state();
    for (const [p, want] of Object.entries(fx.initial_params))
      checkSums(`initial ${p}`, s0.tensors[p]!, want);
    for (const step of fx.steps) {
      const r = await runner.run(rowsBatch(fx, step.rows), fx.optimizer.lr);
      assertRel(r.loss, step.loss, 1e-5, `step ${step.step} loss`);
      const st = runner.state();
      assert.equal(st.step, step.step);
      for (const [k, want] of Object.entries(step.bn)) {
        const err = maxAbsDiff(st.tensors[k]!.data as Float32Array, want);
        assert.ok(err <= 1e-5 * Math.max(1, maxAbs(want)), `step ${step.step} ${k}: max error ${err}`);
      }
      for (const [p, want] of Object.entries(step.params))
        checkSums(`step ${step.step} ${p}`, st.tensors[p]!, want);
    }
  } finally {
    await runner.release();
  }
});

test('vit-t, 3 AdamW steps (torch defaults, wd 0.01 on every parameter): losses, parameter sums and samples equal PyTorch', async () => {
  const fx = readFixture<AdamWSteps>('adamw_steps.json');
  const model = buildModel('vit-t', { seed: 0 });
  assert.equal(initializerDigest(model), fx.initializer_sha256);
  const o = fx.optimizer;
  const runner = await createTrainStep(model, {
    optimizer: {
      kind: 'adamw',
      beta1: o.betas[0],
      beta2: o.betas[1],
      eps: o.eps,
      weightDecay: o.weight_decay,
    },
    loss: { kind: 'cross-entropy' },
    threads: 1,
  });
  const samples = (st: Record<string, HostTensor>, want: Record<string, number[]>, what: string) => {
    for (const [p, vals] of Object.entries(want)) {
      const d = st[p]!.data as Float32Array;
      fx.sampled[p]!.indices.forEach((k, i) =>
        // one AdamW step moves a weight by ~lr = 1e-3: agree to 0.1 % of that
        assert.ok(
          Math.abs(d[k]! - vals[i]!) <= 1e-6 + 1e-6 * Math.abs(vals[i]!),
          `${what} ${p}[${k}]: ${d[k]} vs ${vals[i]}`,
        ),
      );
    }
  };
  try {
    const s0 = runner.state();
    for (const [p, want] of Object.entries(fx.initial.params))
      checkSums(`initial ${p}`, s0.tensors[p]!, want);
    samples(s0.tensors, fx.initial.samples, 'initial');
    for (const step of fx.steps) {
      const r = await runner.run(rowsBatch(fx, step.rows), o.lr);
      assertRel(r.loss, step.loss, 1e-5, `step ${step.step} loss`);
      const st = runner.state();
      for (const [p, want] of Object.entries(step.params))
        // The key third of qkv.bias has an exactly-zero gradient (softmax ignores a constant added to every key
        // score), so both sides hold float noise ~1e-9 there, and AdamW turns noise g into steps up to
        // lr·|g|/(|g| + eps): those 64 entries drift apart by design. The other two thirds match like the rest.
        checkSums(`step ${step.step} ${p}`, st.tensors[p]!, want, /qkv\.bias$/.test(p) ? 3e-4 : 1e-5);
      samples(st.tensors, step.samples, `step ${step.step}`);
      assert.deepEqual(
        Object.keys(st.optimizer).sort(),
        runner.trainable.flatMap((p) => [`${p}.adam_m`, `${p}.adam_v`]).sort(),
      );
    }
  } finally {
    await runner.release();
  }
});

test('frozen parameters stay bit-identical (graph constants, not in the state); the others train', async () => {
  const fx = readFixture<FxHeader>('mlp.grads.json');
  const model = buildModel('mlp', { seed: 0 });
  const digest = initializerDigest(model);
  const frozen = (n: string) => n.startsWith('net.1.') || n === 'net.5.bias';
  const opts: TrainStepOptions = {
    optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 1e-3 },
    loss: { kind: 'cross-entropy' },
    trainable: (n) => !frozen(n),
    threads: 1,
  };
  const tg = buildTrainGraph(model, opts);
  assert.ok(tg.model.graph.initializers.has('net.1.weight') && tg.model.graph.initializers.has('net.5.bias'));
  assert.ok(!tg.model.graph.inputs.some((v) => frozen(v.name)));
  const runner = await createTrainStep(model, opts);
  try {
    assert.deepEqual([...runner.trainable], ['net.3.weight', 'net.3.bias', 'net.5.weight']);
    for (let k = 0; k < 3; k++) await runner.run(fixtureBatch(fx), 0.1);
    assert.deepEqual(Object.keys(runner.state().tensors), ['net.3.weight', 'net.3.bias', 'net.5.weight']);
    const out = runner.exportModel();
    for (const [name, v] of model.graph.initializers) {
      const same = out.graph.initializers.get(name)!.const!.equals(v.const!);
      assert.equal(same, frozen(name), `${name} ${frozen(name) ? 'changed' : 'did not change'}`);
    }
    assert.equal(initializerDigest(model), digest, 'the model given to createTrainStep is not changed');
  } finally {
    await runner.release();
  }
});

test('gradient clipping: the step reports the norm before clipping and moves parameters by the clipped norm', async () => {
  const fx = readFixture<FxHeader>('mlp.grads.json');
  const model = buildModel('mlp', { seed: 0 });
  const batch = fixtureBatch(fx);
  const g = await computeGradients(model, batch, { loss: { kind: 'cross-entropy' }, threads: 1 });
  let sq = 0;
  for (const t of Object.values(g.grads)) sq += sumStats(t.data as Float32Array).sum_sq;
  const norm = Math.sqrt(sq);
  for (const max of [norm / 4, norm * 2]) {
    const runner = await createTrainStep(model, {
      optimizer: { kind: 'sgd' },
      loss: { kind: 'cross-entropy' },
      gradClipNorm: max,
      threads: 1,
    });
    try {
      const before = runner.state().tensors;
      const r = await runner.run(batch, 1); // plain SGD, lr 1: Δp = −clipped gradient
      assertRel(r.gradNorm!, norm, 1e-5, 'reported norm');
      const after = runner.state().tensors;
      let moved = 0;
      for (const p of runner.trainable) {
        const a = after[p]!.data as Float32Array;
        const b = before[p]!.data as Float32Array;
        for (let i = 0; i < a.length; i++) moved += (a[i]! - b[i]!) ** 2;
      }
      assertRel(Math.sqrt(moved), Math.min(max, norm), 1e-3, `clipped norm (max ${max})`);
    } finally {
      await runner.release();
    }
  }
});

/** x [N, F] → Mul(w) → Dropout(p) → y: the logits are the dropout output itself. */
function dropoutModel(F: number, p: number): Model {
  const g = new Graph('drop');
  const m = new Model(g);
  m.opsetImports.set('', 17);
  const x = g.addInput('x', tensorType('float32', ['N', F]));
  const rnd = uniform(11);
  const w = g.addInitializer(
    'w',
    Tensor.from(
      'float32',
      [F],
      Float32Array.from({ length: F }, () => 0.5 + rnd()),
    ),
  );
  const h = g.addNode({ opType: 'Mul', inputs: [x, w], outputs: ['h'], name: 'mul' }).output(0);
  const ratio = g.addInitializer('ratio', Tensor.scalar('float32', p));
  const y = g.addNode({ opType: 'Dropout', inputs: [h, ratio], outputs: ['y'], name: 'drop' }).output(0);
  h.type = tensorType('float32', ['N', F]);
  y.type = tensorType('float32', ['N', F]);
  g.outputs = [y];
  return m;
}

test('Dropout in training mode: zeros about p of the activations, scales the rest by 1/(1−p), deterministic for a seed; eval export is the identity', async () => {
  const [N, F, p] = [64, 256, 0.25];
  const model = dropoutModel(F, p);
  const rnd = uniform(5);
  const x = Float32Array.from({ length: N * F }, () => 0.1 + rnd());
  const target = Float32Array.from({ length: N * F }, () => rnd());
  const batch = {
    x: { dtype: 'float32' as const, dims: [N, F], data: x },
    extra: { target: { dtype: 'float32' as const, dims: [N, F], data: target } },
  };
  const make = (seed: number) =>
    createTrainStep(model, { optimizer: { kind: 'sgd' }, loss: { kind: 'mse' }, seed, threads: 1 });
  const a = await make(5);
  const b = await make(5);
  const c = await make(6);
  try {
    const w0 = model.graph.initializers.get('w')!.const!.typed() as Float32Array;
    const ya = (await a.run(batch, 0)).logits.data as Float32Array;
    const yb = (await b.run(batch, 0)).logits.data as Float32Array;
    const yc = (await c.run(batch, 0)).logits.data as Float32Array;
    assert.deepEqual(ya, yb, 'same seed, same mask');
    assert.notDeepEqual(ya, yc, 'another seed, another mask');
    let zeros = 0;
    for (let i = 0; i < ya.length; i++) {
      if (ya[i] === 0) zeros++;
      else
        assert.ok(
          Math.abs(ya[i]! - (x[i]! * w0[i % F]!) / (1 - p)) <= 1e-5 * Math.abs(ya[i]!),
          `kept value ${i}`,
        );
    }
    assert.ok(Math.abs(zeros / ya.length - p) < 0.02, `zeroed fraction ${zeros / ya.length}`);
    // the next step draws a new mask (still deterministic), and the gradient flows through the mask only:
    // d mse / d w_j = Σ_n 2(y − t)/(N·F) · y / w_j at lr 1
    const y2 = (await a.run(batch, 1)).logits.data as Float32Array;
    assert.notDeepEqual(y2, ya);
    assert.deepEqual((await b.run(batch, 1)).logits.data, y2);
    const w1 = a.state().tensors.w!.data as Float32Array;
    for (let j = 0; j < F; j++) {
      let gj = 0;
      for (let n = 0; n < N; n++)
        gj += ((2 * (y2[n * F + j]! - target[n * F + j]!)) / (N * F)) * (y2[n * F + j]! / w0[j]!);
      assert.ok(Math.abs(w0[j]! - gj - w1[j]!) <= 1e-6, `w[${j}]: ${w1[j]} vs ${w0[j]! - gj}`);
    }
    // the export is the inference graph: Dropout inactive
    const ex = await runModel(a.exportModel(), { x: batch.x }, { threads: 1 });
    const ye = ex.y!.data as Float32Array;
    for (let i = 0; i < ye.length; i++)
      assert.ok(Math.abs(ye[i]! - x[i]! * w1[i % F]!) <= 1e-6 * Math.abs(ye[i]!));
  } finally {
    await a.release();
    await b.release();
    await c.release();
  }
});

test('exportModel: the original inference graph with the current weights; logits equal the eval-mode forward', async () => {
  const fx = readFixture<FxHeader>('cnn-s.grads.json');
  const batch = fixtureBatch(fx);
  for (const name of ['mlp', 'cnn-s'] as const) {
    const model = buildModel(name, { seed: 0 });
    const runner = await createTrainStep(model, {
      optimizer: { kind: 'sgd', momentum: 0.9 },
      loss: { kind: 'cross-entropy' },
      threads: 1,
    });
    try {
      for (let k = 0; k < 3; k++) await runner.run(batch, 0.05);
      const ex = runner.exportModel();
      assert.deepEqual(
        ex.graph.nodes.map((n) => `${n.opType}:${n.name}`),
        model.graph.nodes.map((n) => `${n.opType}:${n.name}`),
      );
      assert.deepEqual(
        ex.graph.inputs.map((v) => v.name),
        ['input'],
      );
      assert.deepEqual(
        ex.graph.outputs.map((v) => v.name),
        ['logits'],
      );
      const st = runner.state().tensors;
      for (const [k, t] of Object.entries(st))
        assert.deepEqual(ex.graph.initializers.get(k)!.const!.typed(), t.data, k);
      const y = (await runModel(ex, { input: batch.x }, { threads: 1 })).logits!.data as Float32Array;
      // the eval-mode forward of the same weights: the gradient graph built with training off
      const ev = await computeGradients(ex, batch, {
        loss: { kind: 'cross-entropy' },
        training: false,
        threads: 1,
      });
      const err = maxAbsDiff(y, ev.logits.data as Float32Array);
      assert.ok(err <= 1e-5 * maxAbs(y), `${name}: export vs eval forward ${err}`);
      const next = await runner.run(batch, 0.05); // train-mode logits of the same weights
      const diff = maxAbsDiff(y, next.logits.data as Float32Array);
      if (name === 'mlp') assert.ok(diff <= 1e-5 * maxAbs(y), `mlp: export vs train-mode forward ${diff}`);
      else
        assert.ok(diff > 1e-3, 'cnn-s: BN in training mode uses batch statistics, the export running ones');
    } finally {
      await runner.release();
    }
  }
});

test('state() / load() resume exactly (AdamW step counter and slots); flat and per-param layouts give the same steps', async () => {
  const fx = readFixture<FxHeader>('mlp.grads.json');
  const model = buildModel('mlp', { seed: 0 });
  const opts: TrainStepOptions = {
    optimizer: { kind: 'adamw' },
    loss: { kind: 'cross-entropy', labelSmoothing: 0.1 },
    threads: 1,
  };
  const halves = [fixtureBatch(fx, 0, 4), fixtureBatch(fx, 4, 8)];
  const a = await createTrainStep(model, opts);
  const b = await createTrainStep(model, opts);
  const c = await createTrainStep(model, { ...opts, layout: 'per-param' });
  try {
    const la: number[] = [];
    const lc: number[] = [];
    for (let k = 0; k < 3; k++) {
      la.push((await a.run(halves[k % 2]!, 1e-3)).loss);
      lc.push((await c.run(halves[k % 2]!, 1e-3)).loss);
    }
    const snap = a.state();
    assert.equal(snap.step, 3);
    b.load(snap);
    for (let k = 3; k < 5; k++) {
      const ra = await a.run(halves[k % 2]!, 1e-3);
      const rb = await b.run(halves[k % 2]!, 1e-3);
      lc.push((await c.run(halves[k % 2]!, 1e-3)).loss);
      la.push(ra.loss);
      assert.equal(rb.loss, ra.loss, `resumed step ${k + 1}`);
    }
    for (const [k, t] of Object.entries(a.state().tensors))
      assert.deepEqual(b.state().tensors[k]!.data, t.data, k);
    for (let k = 0; k < 5; k++) assertRel(lc[k]!, la[k]!, 1e-6, `per-param layout step ${k + 1}`);
    // snapshots are copies
    const s1 = a.state();
    (s1.tensors['net.1.weight']!.data as Float32Array)[0] = 123;
    assert.notEqual((a.state().tensors['net.1.weight']!.data as Float32Array)[0], 123);
  } finally {
    await a.release();
    await b.release();
    await c.release();
  }
});

test('bad batches are InputErrors naming what is wrong', async () => {
  const fx = readFixture<FxHeader>('mlp.grads.json');
  const runner = await createTrainStep(buildModel('mlp', { seed: 0 }), {
    optimizer: { kind: 'sgd' },
    loss: { kind: 'cross-entropy' },
    threads: 1,
  });
  try {
    const b = fixtureBatch(fx);
    await assert.rejects(runner.run({ x: b.x }, 0.1), /needs labels/);
    const bad = { ...b.y, data: BigInt64Array.from([0n, 1n, 2n, 3n, 4n, 5n, 6n, 10n]) };
    await assert.rejects(runner.run({ x: b.x, y: bad }, 0.1), /outside 0\.\.9/);
    await assert.rejects(runner.run(b, -1), /learning rate/);
  } finally {
    await runner.release();
  }
});

test('batches of different sizes: one static-shape session per size, same steps as one symbolic-batch graph', async () => {
  const fx = readFixture<FxHeader>('mlp.grads.json');
  const model = buildModel('mlp', { seed: 0 });
  const opts: TrainStepOptions = {
    optimizer: { kind: 'sgd', momentum: 0.9 },
    loss: { kind: 'cross-entropy' },
    threads: 1,
  };
  const a = await createTrainStep(model, opts);
  const b = await createTrainStep(model, { ...opts, dynamicBatch: true });
  try {
    for (const [from, to] of [
      [0, 8],
      [0, 5],
      [5, 8],
      [0, 8],
    ] as const) {
      const batch = fixtureBatch(fx, from, to);
      const ra = await a.run(batch, 0.05);
      const rb = await b.run(batch, 0.05);
      assert.deepEqual([...ra.logits.dims], [to - from, 10]);
      assertRel(ra.loss, rb.loss, 1e-6, `rows ${from}..${to}`);
    }
  } finally {
    await a.release();
    await b.release();
  }
});

test('distillation step: teacher logits fed through batch.extra; the step loss equals the gradient graph loss', async () => {
  const fx = readFixture<FxHeader>('mlp.grads.json');
  const batch = fixtureBatch(fx);
  const teacher = buildModel('mlp', { seed: 7 });
  const t = (await runModel(teacher, { input: batch.x }, { threads: 1 })).logits!;
  const student = buildModel('mlp', { seed: 0 });
  const loss = { kind: 'distill' as const, temperature: 3, alpha: 0.7, labelSmoothing: 0.05 };
  const want = await computeGradients(
    student,
    { ...batch, extra: { teacher_logits: t } },
    { loss, threads: 1 },
  );
  const runner = await createTrainStep(student, { optimizer: { kind: 'sgd' }, loss, threads: 1 });
  try {
    await assert.rejects(runner.run(batch, 0.1), /batch\.extra\.teacher_logits/);
    const r = await runner.run({ ...batch, extra: { teacher_logits: t } }, 0.1);
    assertRel(r.loss, want.loss, 1e-6, 'distill loss');
    const r2 = await runner.run({ ...batch, extra: { teacher_logits: t } }, 0.1);
    assert.ok(r2.loss < r.loss, 'a step at lr 0.1 lowers the loss on the same batch');
  } finally {
    await runner.release();
  }
});

// The NCHWc block of this machine's ORT build (0: none; the numeric comparison below is then skipped, visibly).
const nchwcBlock = await nchwcBlockSize();
const nchwcOpts: TrainStepOptions = {
  optimizer: { kind: 'sgd', momentum: 0.9 },
  loss: { kind: 'cross-entropy' },
  threads: 1,
};

test('cnn-s: with an NCHWc block, conv2 forward and its input gradient become NCHWc Convs', () => {
  const tg = buildTrainGraph(
    buildModel('cnn-s', { seed: 0 }),
    { ...nchwcOpts, nchwcBlock: nchwcBlock || 16 },
    8,
  );
  const nchwc = tg.model.graph.nodes.filter((n) => n.domain === 'com.microsoft.nchwc' && n.opType === 'Conv');
  assert.equal(nchwc.length, 2, 'conv2 forward and its input gradient (conv1 has 1 input channel)');
});

test(
  'cnn-s: convolutions on ORT NCHWc kernels (forward and input gradient) give the plain-Conv step',
  { skip: nchwcBlock ? false : 'this ORT build / CPU has no NCHWc kernels' },
  async () => {
    const block = nchwcBlock;
    const fx = readFixture<FxHeader>('cnn-s.grads.json');
    const batch = fixtureBatch(fx);
    const opts = nchwcOpts;
    const runs = [];
    for (const nchwcBlock of [0, block]) {
      const r = await createTrainStep(buildModel('cnn-s', { seed: 0 }), {
        ...opts,
        nchwcBlock,
      } as TrainStepOptions);
      try {
        for (let k = 0; k < 3; k++) await r.run(batch, 0.05);
        runs.push(r.state().tensors);
      } finally {
        await r.release();
      }
    }
    for (const [k, t] of Object.entries(runs[0]!)) {
      const other = runs[1]![k]!.data as Float32Array;
      const d = t.data as Float32Array;
      assert.ok(
        maxAbsDiff(d, other) <= 1e-5 * Math.max(1e-3, maxAbs(d)),
        `${k}: differs by ${maxAbsDiff(d, other)}`,
      );
    }
  },
);
