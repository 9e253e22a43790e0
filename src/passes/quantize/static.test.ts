import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { exitCodeOf, InputError, InternalError } from '../../errors.js';
import { verifyModel } from '../../ir/index.js';
import { makeCheckNode } from '../../ops/index.js';
import { opCounts } from '../util.js';
import { calibrate, collectGram, entropyRange, histogram, mseRange, percentileRange } from './calibrate.js';
import { ortKernels } from './kernels.js';
import { sqnr } from './numeric.js';
import { applyStatic, planStatic, prepareStatic, quantizeStatic, type StaticQuantOptions } from './static.js';
import { amax, calibrationBatches, fixture, maxAbs, prepared, run } from '../../testing/quantize.js';
import { tryInferShapes } from '../util.js';

function verified(m: Parameters<typeof verifyModel>[0]): void {
  assert.deepEqual(
    verifyModel(m, { checkNode: makeCheckNode(m) }).map((p) => p.message),
    [],
  );
}

/** Quantize, check it verifies and runs, and return it with its ORT kernels and output SQNR against float. */
async function check(name: string, opts: Partial<StaticQuantOptions> = {}) {
  const { model, feeds } = fixture(name);
  const m = await prepared(model);
  const calib = calibrationBatches(m, 4, 16, 100, name.startsWith('builder/') ? undefined : feeds);
  const r = await quantizeStatic(m, { calibration: calib, ...opts });
  verified(r.model);
  const ref = await run(m, feeds);
  const fused = await run(r.model, feeds);
  // the QDQ graph without ORT's fusions is the fake-quantization reference of the integer kernels
  const fake = await run(r.model, feeds, 'disabled');
  const kernels = await ortKernels(r.model);
  return { r, m, ref, fused, fake, kernels, feeds };
}

describe('static INT8 (QDQ)', () => {
  test('cnn-s (BatchNorm folded first): QDQ placement, integer kernels in ORT, close to float', async () => {
    const { r, ref, fused, fake, kernels } = await check('builder/cnn-s', { floatStem: false });
    const ops = opCounts(r.model);
    // 4 layers: Q/DQ for activations, DQ for weights and int32 biases; MaxPool/Flatten between quantized tensors
    assert.deepEqual(r.plan.nodes.length, 4);
    assert.equal(ops.QuantizeLinear, r.plan.tensors.size);
    assert.equal(ops.DequantizeLinear, r.plan.tensors.size + 4 + 4);
    assert.equal(
      kernels.ops.QLinearConv ?? kernels.ops['com.microsoft:QLinearConv'],
      2,
      JSON.stringify(kernels.ops),
    );
    assert.equal(kernels.ops['com.microsoft:QGemm'], 2, JSON.stringify(kernels.ops));
    assert.equal(kernels.floatCompute, 0, `float kernels left: ${JSON.stringify(kernels.ops)}`);
    assert.ok(kernels.ops['com.microsoft:NhwcMaxPool'] === 2, 'MaxPool runs on uint8');
    // integer kernels vs the fake-quant graph: a few output quantization steps at most (logits stay float)
    assert.ok(maxAbs(fused, fake) <= 0.05 * amax(ref), `fused vs fake ${maxAbs(fused, fake)}`);
    assert.ok(sqnr(ref, fused) > 25, `SQNR ${sqnr(ref, fused)}`);
  });

  test('the float stem: a Conv with < 4 input channels stays float, Relu moves after its MaxPool, the rest is integer', async () => {
    const { r, ref, fused, kernels } = await check('builder/cnn-s');
    assert.equal(r.plan.nodes.length, 3);
    assert.ok(r.notes.some((n) => /Reordered Relu/.test(n)));
    assert.equal(kernels.ops['com.microsoft:QGemm'], 2);
    assert.equal((kernels.ops.QLinearConv ?? 0) + (kernels.ops['com.microsoft:QLinearConv'] ?? 0), 1);
    assert.ok(
      !kernels.ops.MaxPool || kernels.ops['com.microsoft.nchwc:MaxPool'],
      `the stem's pool stays float: ${JSON.stringify(kernels.ops)}`,
    );
    assert.ok(sqnr(ref, fused) > 25);
  });

  test('channel padding: a 3-channel Conv gets a Pad and zero weights, same float results', async () => {
    const { model } = fixture('quant/mbconv_op17');
    const m = await prepared(model);
    const p = prepareStatic(m, { floatStem: false, padChannels: 4 });
    assert.ok(
      p.notes.some((n) => /Padded the input channels/.test(n)),
      p.notes.join('\n'),
    );
    const feeds = fixture('quant/mbconv_op17').feeds;
    assert.ok(maxAbs(await run(m, feeds), await run(p.model, feeds)) < 1e-5);
  });

  for (const name of [
    'builder/mlp',
    'builder/vit-t',
    'torch/mobile_op13',
    'torch/mobile_bn_op13',
    'quant/mbconv_op14',
    'quant/mbconv_op17',
    'torch/encoder_op17',
    'quant/tiny_vit_op17',
    'torch/convt_op13',
  ])
    test(`${name}: quantizes, verifies, runs in ORT with integer kernels`, async () => {
      const { r, ref, fused, kernels } = await check(name);
      assert.ok(r.plan.nodes.length > 0);
      assert.ok(kernels.integer >= 1, JSON.stringify(kernels.ops));
      const s = sqnr(ref, fused);
      assert.ok(s > 12, `${name}: output SQNR ${s.toFixed(1)} dB`);
    });

  test('torch cnn-s: every layer but the stem in integer kernels (op13 and op17)', async () => {
    for (const name of ['torch/cnn-s_op13', 'torch/cnn-s_op17']) {
      const { r, kernels, ref, fused } = await check(name);
      assert.equal(kernels.ops['com.microsoft:QGemm'], 2, name);
      // the one float kernel left is the stem kept float on purpose (ORT runs it as an NCHWc Conv)
      const kept = r.plan.skipped.filter((s) => s.reason.startsWith('kept float')).length;
      assert.equal(kept, 1, name);
      assert.equal(kernels.floatCompute, kept, `${name}: ${JSON.stringify(kernels.ops)}`);
      assert.ok(sqnr(ref, fused) > 25);
    }
  });

  test("an inconsistent plan or missing range is edgefit's own error (exit 1), not the user's input", async () => {
    const { model } = fixture('builder/mlp');
    const m = await prepared(model);
    tryInferShapes(m);
    const plan = planStatic(m);
    const ranges = new Map(plan.roots.map((r) => [r, { min: -1, max: 1, lo: -1, hi: 1, count: 1 }]));
    const own = (e: unknown) =>
      e instanceof InternalError && !(e instanceof InputError) && exitCodeOf(e) === 1;
    const badTensor = { ...plan, tensors: new Map([...plan.tensors, ['no_such_tensor', plan.roots[0]!]]) };
    assert.throws(() => applyStatic(m, badTensor, ranges), own);
    assert.throws(() => applyStatic(m, { ...plan, nodes: [...plan.nodes, 'no_such_node'] }, ranges), own);
    assert.throws(() => applyStatic(m, plan, new Map()), own);
    assert.ok(applyStatic(m, plan, ranges).model.graph.nodes.length > m.graph.nodes.length);
  });

  test('include / exclude by node name and op type; unknown entries are input errors', async () => {
    const { model } = fixture('builder/mlp');
    const m = await prepared(model);
    tryInferShapes(m);
    assert.deepEqual(planStatic(m).nodes, ['net.1', 'net.3', 'net.5']);
    assert.deepEqual(planStatic(m, { exclude: ['net.5'] }).nodes, ['net.1', 'net.3']);
    assert.deepEqual(planStatic(m, { include: ['node:net.3'] }).nodes, ['net.3']);
    assert.deepEqual(planStatic(m, { exclude: ['op:Gemm'] }).nodes, []);
    assert.deepEqual(planStatic(m, { exclude: ['Gemm'] }).nodes, []);
    assert.throws(() => planStatic(m, { exclude: ['net.9'] }), InputError);
    const calib = calibrationBatches(m);
    const r = await quantizeStatic(m, { calibration: calib, exclude: ['net.5'] });
    const k = await ortKernels(r.model);
    assert.equal(k.ops['com.microsoft:QGemm'], 2);
    assert.ok((k.ops.Gemm ?? 0) + (k.ops['com.microsoft:FusedGemm'] ?? 0) === 1, JSON.stringify(k.ops));
  });

  test('the last Gemm keeps a float output (QGemm → float logits); a Gemm read by a quantized layer gets a Q', async () => {
    const { model } = fixture('builder/mlp');
    const m = await prepared(model);
    tryInferShapes(m);
    const plan = planStatic(m);
    const names = [...plan.tensors.keys()];
    assert.ok(!names.includes('logits'));
    assert.ok(names.some((n) => /net\.2/.test(n)) && names.some((n) => /net\.4/.test(n)), names.join(', '));
  });

  test('int8 activations, per-tensor weights, attention MatMuls: all fuse', async () => {
    const s8 = await check('builder/cnn-s', { activationType: 'int8' });
    const kept = s8.r.plan.skipped.filter((s) => s.reason.startsWith('kept float')).length;
    assert.ok(s8.kernels.integer >= 3 && s8.kernels.floatCompute === kept, JSON.stringify(s8.kernels.ops));
    const pt = await check('builder/mlp', { perChannel: false });
    assert.equal(pt.kernels.ops['com.microsoft:QGemm'], 3);
    const att = await check('builder/vit-t', { matmulActivations: true });
    const plain = await check('builder/vit-t');
    assert.ok(
      att.r.plan.nodes.length === plain.r.plan.nodes.length + 4,
      `${att.r.plan.nodes.length} vs ${plain.r.plan.nodes.length}`,
    );
    assert.ok(att.kernels.integer > plain.kernels.integer, JSON.stringify(att.kernels.ops));
  });

  test('a quantized Conv whose output is a graph output keeps the output name (on the dequantized value)', async () => {
    const { model, feeds } = fixture('torch/convt_op13');
    const m = await prepared(model);
    const r = await quantizeStatic(m, {
      calibration: calibrationBatches(m, 4, 16, 100, feeds),
      floatStem: false,
    });
    assert.deepEqual(
      r.model.graph.outputs.map((v) => v.name),
      ['output'],
    );
    assert.deepEqual(r.plan.renamedOutputs, ['output']);
    assert.ok(sqnr(await run(m, feeds), await run(r.model, feeds)) > 20);
  });
});

describe('calibration', () => {
  test('min/max from ORT reductions equal a scan of the fetched activations; histogram calibrators stay inside', async () => {
    const { model } = fixture('builder/cnn-s');
    const m = await prepared(model);
    tryInferShapes(m);
    const names = planStatic(m, { floatStem: false }).roots;
    const batches = calibrationBatches(m, 3, 8);
    const mm = await calibrate(m, names, batches, { calibrator: 'minmax' });
    // reference: fetch the tensors and scan them in JS
    const probe = m.clone();
    const values = probe.graph.valuesByName();
    for (const n of names) probe.graph.outputs.push(values.get(n)!);
    const { Session } = await import('../../runtime/index.js');
    const s = await Session.create(probe, { threads: 1 });
    const lo = new Map<string, number>();
    const hi = new Map<string, number>();
    for (const b of batches) {
      const out = await s.run(b, names);
      for (const n of names) {
        let a = lo.get(n) ?? Infinity;
        let b = hi.get(n) ?? -Infinity;
        for (const v of out[n]!.data as Float32Array) {
          a = Math.min(a, v);
          b = Math.max(b, v);
        }
        lo.set(n, a);
        hi.set(n, b);
      }
    }
    await s.release();
    for (const n of names) {
      assert.equal(mm.stats.get(n)!.min, lo.get(n));
      assert.equal(mm.stats.get(n)!.max, hi.get(n));
    }
    for (const c of ['percentile', 'entropy', 'mse'] as const) {
      const r = await calibrate(m, names, batches, { calibrator: c });
      for (const n of names) {
        const st = r.stats.get(n)!;
        assert.ok(
          st.lo >= Math.min(st.min, 0) - 1e-6 && st.hi <= st.max + 1e-6 && st.hi > 0,
          `${c} ${n}: [${st.lo}, ${st.hi}] of [${st.min}, ${st.max}]`,
        );
      }
    }
  });

  test('histogram calibrators on a long tail: percentile and entropy clip it, MSE trades clipping against resolution', () => {
    // 100,000 values in [0, 1] and 100 outliers spread up to 50
    const x = Array.from({ length: 100000 }, (_, i) => Math.sin(i) * 0.5 + 0.5);
    for (let i = 1; i <= 100; i++) x.push(i / 2);
    const h = new Float64Array(2048);
    histogram(x, 0, 50, h);
    assert.ok(percentileRange(h, 0, 50, 99.9)[1] < 2);
    assert.ok(entropyRange(h, 0, 50)[1] < 25);
    const [, hi] = mseRange(h, 0, 50);
    assert.ok(hi > 1 && hi < 50, `mse ${hi}`);
    // its expected squared error is no larger than the full range's
    const err = (top: number) => {
      const step = top / 255;
      let e = 0;
      for (const v of x) e += v > top ? (v - top) ** 2 : (step * step) / 12;
      return e;
    };
    assert.ok(err(hi) <= err(50));
  });

  test('XᵀX from ORT equals the JS product', async () => {
    const { model } = fixture('builder/mlp');
    const m = await prepared(model);
    const batches = calibrationBatches(m, 2, 5);
    const g = await collectGram(m, [{ name: 'input', K: 784 }], batches);
    const r = g.get('input')!;
    assert.equal(r.rows, 10);
    const x = batches.flatMap((b) => Array.from(b.input!.data as Float32Array));
    for (const [i, j] of [
      [0, 0],
      [100, 200],
      [783, 5],
      [400, 400],
    ] as const) {
      let s = 0;
      for (let row = 0; row < 10; row++) s += x[row * 784 + i]! * x[row * 784 + j]!;
      assert.ok(Math.abs(r.gram[i * 784 + j]! - s) < 1e-3 * Math.max(1, Math.abs(s)));
    }
  });
});
