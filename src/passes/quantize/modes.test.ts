import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Tensor, verifyModel } from '../../ir/index.js';
import { makeCheckNode } from '../../ops/index.js';
import { opCounts, tryInferShapes } from '../util.js';
import { collectGram } from './calibrate.js';
import { dynamicQuantPass, quantizeDynamic } from './dynamic.js';
import { convertFp16, fp16Pass } from './fp16.js';
import { gptqBlocks, int4QuantPass, quantizeInt4 } from './int4.js';
import { staticQuantPass } from './static.js';
import { runPasses } from '../manager.js';
import { ortKernels } from './kernels.js';
import { dequantizeBlocks, quantizeBlocksRtn, sqnr, unpackMatMulNBits } from './numeric.js';
import { quantize } from './index.js';
import { calibrationBatches, fixture, maxAbs, prepared, run } from '../../testing/quantize.js';
import { prng } from '../../testing/fixtures.js';

function verified(m: Parameters<typeof verifyModel>[0]): void {
  assert.deepEqual(
    verifyModel(m, { checkNode: makeCheckNode(m) }).map((p) => p.message),
    [],
  );
}

describe('dynamic INT8', () => {
  for (const name of [
    'builder/mlp',
    'builder/vit-t',
    'torch/encoder_op17',
    'torch/encoder_op14',
    'quant/tiny_vit_op17',
  ])
    test(`${name}: MatMul/Gemm → DynamicQuantizeMatMul in ORT, close to float`, async () => {
      const { model, feeds } = fixture(name);
      const m = await prepared(model);
      const r = quantizeDynamic(m);
      verified(r.model);
      assert.ok(r.nodes.length >= 3);
      const k = await ortKernels(r.model);
      assert.equal(
        (k.ops['com.microsoft:DynamicQuantizeMatMul'] ?? 0) +
          (k.ops['com.microsoft:MatMulIntegerToFloat'] ?? 0),
        r.nodes.length,
        JSON.stringify(k.ops),
      );
      const s = sqnr(await run(m, feeds), await run(r.model, feeds));
      assert.ok(s > 25, `SQNR ${s}`);
    });

  test('exclude and per-tensor weights', async () => {
    const m = await prepared(fixture('builder/mlp').model);
    const r = quantizeDynamic(m, { exclude: ['net.5'], perChannel: false });
    assert.deepEqual(r.nodes, ['net.1', 'net.3']);
    assert.equal(r.skipped[0]!.reason, 'excluded');
  });
});

describe('INT4 weight-only (MatMulNBits)', () => {
  for (const name of ['builder/mlp', 'builder/vit-t'])
    for (const blockSize of [32, 64, 128])
      test(`${name}, block ${blockSize}: MatMulNBits only, weights ≤ 0.16×, and exactly the dequantized weights`, async () => {
        const { model, feeds } = fixture(name);
        const m = await prepared(model);
        const r = await quantizeInt4(m, { blockSize });
        verified(r.model);
        const k = await ortKernels(r.model);
        assert.equal(k.ops['com.microsoft:MatMulNBits'], r.nodes.length);
        assert.equal(
          k.floatCompute - (k.ops['com.microsoft:FusedMatMul'] ?? 0) - (k.ops.MatMul ?? 0),
          0,
          JSON.stringify(k.ops),
        );
        // ≤ 0.16× at every block size: blocks longer than K shrink to K's power of two
        assert.ok(
          r.weightBytesAfter / r.weightBytesBefore <= 0.16,
          `${r.weightBytesAfter / r.weightBytesBefore}`,
        );
        if (name === 'builder/vit-t' && blockSize === 128)
          assert.ok(
            r.notes.some((n) => /Smaller blocks/.test(n)),
            r.notes.join('\n'),
          );
        // reference: the same graph with each MatMulNBits replaced by MatMul on its dequantized weights
        const ref = r.model.clone();
        const g = ref.graph;
        for (const n of [...g.nodes].filter((x) => x.opType === 'MatMulNBits')) {
          const K = n.attrInt('K')!;
          const N = n.attrInt('N')!;
          const q = unpackMatMulNBits(
            n.input(1).const!,
            n.input(2).const!,
            n.inputs[3]?.const,
            K,
            N,
            n.attrInt('block_size')!,
          );
          const w = g.addInitializer('w_dq', Tensor.from('float32', [K, N], dequantizeBlocks(q)));
          const mm = g.addNode({ opType: 'MatMul', inputs: [n.input(0), w], outputs: [`${n.name}_mm`] });
          let out = mm.output(0);
          if (n.inputs[5])
            out = g
              .addNode({ opType: 'Add', inputs: [out, n.inputs[5]], outputs: [`${n.name}_b`] })
              .output(0);
          n.output(0).replaceAllUsesWith(out);
        }
        g.toposort();
        g.removeUnused();
        const a = await run(r.model, feeds);
        const b = await run(ref, feeds);
        assert.ok(maxAbs(a, b) < 1e-4, `MatMulNBits vs dequantized MatMul: ${maxAbs(a, b)}`);
        assert.ok(sqnr(await run(m, feeds), a) > 15);
      });

  test('asymmetric blocks store zero points; Gemm bias goes to the bias input', async () => {
    const m = await prepared(fixture('builder/mlp').model);
    const r = await quantizeInt4(m, { symmetric: false, blockSize: 32 });
    const n = r.model.graph.nodes.find((x) => x.opType === 'MatMulNBits')!;
    assert.ok(n.inputs[3]?.const, 'zero points');
    assert.ok(n.inputs[5]?.const, 'bias');
  });

  test('GPTQ: lower output error than round-to-nearest on the calibration activations (layer and model)', async () => {
    // a layer with correlated inputs, where error feedback matters
    const K = 64;
    const N = 16;
    const rows = 512;
    const r = prng(7);
    const base = Float64Array.from({ length: rows * 8 }, () => r() * 2 - 1);
    const X = new Float64Array(rows * K);
    for (let i = 0; i < rows; i++)
      for (let k = 0; k < K; k++) X[i * K + k] = base[i * 8 + (k % 8)]! + 0.1 * (r() * 2 - 1);
    const W = Float64Array.from({ length: K * N }, () => r() * 2 - 1);
    const gram = new Float64Array(K * K);
    for (let i = 0; i < rows; i++)
      for (let a = 0; a < K; a++)
        for (let b = 0; b < K; b++) gram[a * K + b]! += X[i * K + a]! * X[i * K + b]!;
    const err = (wq: Float32Array) => {
      let e = 0;
      for (let i = 0; i < rows; i++)
        for (let n = 0; n < N; n++) {
          let d = 0;
          for (let k = 0; k < K; k++) d += X[i * K + k]! * (W[k * N + n]! - wq[k * N + n]!);
          e += d * d;
        }
      return e;
    };
    const rtn = err(dequantizeBlocks(quantizeBlocksRtn(W, K, N, { blockSize: 16, symmetric: true })));
    const gptq = err(dequantizeBlocks(gptqBlocks(W, K, N, gram, { blockSize: 16, symmetric: true })));
    assert.ok(gptq < 0.8 * rtn, `GPTQ ${gptq} vs RTN ${rtn}`);

    // on a model: GPTQ's output is closer to float on the calibration data
    const m = await prepared(fixture('builder/mlp').model);
    const calib = calibrationBatches(m, 4, 32);
    const a = await quantizeInt4(m, { method: 'rtn', blockSize: 64 });
    const b = await quantizeInt4(m, { method: 'gptq', blockSize: 64, calibration: calib });
    const ref = await run(m, calib[0]!);
    assert.ok(sqnr(ref, await run(b.model, calib[0]!)) > sqnr(ref, await run(a.model, calib[0]!)));
    // the statistics GPTQ used are XᵀX of each layer's input
    tryInferShapes(m);
    const gm = await collectGram(m, [{ name: 'input', K: 784 }], calib);
    assert.equal(gm.get('input')!.rows, 128);
  });

  test('invalid block sizes are input errors', async () => {
    const m = await prepared(fixture('builder/mlp').model);
    await assert.rejects(quantizeInt4(m, { blockSize: 48 }), /power of two/);
    await assert.rejects(quantizeInt4(m, { method: 'gptq' }), /calibration/);
  });
});

describe('FP16', () => {
  for (const name of [
    'torch/cnn-s_op13',
    'quant/mbconv_op14',
    'torch/mobile_op13',
    'torch/encoder_op17',
    'torch/misc_op13',
    'quant/tiny_vit_op17',
    'builder/vit-t',
  ])
    test(`${name}: float16 weights, float32 inputs/outputs, runs in ORT close to float`, async () => {
      const { model, feeds } = fixture(name);
      const m = await prepared(model);
      const r = convertFp16(m);
      verified(r.model);
      for (const v of [...r.model.graph.inputs.filter((x) => !x.const), ...r.model.graph.outputs])
        assert.ok(v.dtype !== 'float16', `${v.name} is ${v.dtype}`);
      assert.deepEqual(
        r.model.graph.outputs.map((v) => v.name),
        m.graph.outputs.map((v) => v.name),
      );
      const floats = [...r.model.graph.initializers.values()].filter(
        (v) => v.const!.dtype === 'float32' && v.const!.numel > 16,
      );
      assert.deepEqual(
        floats.map((v) => v.name),
        [],
        'no large float32 initializers left',
      );
      const a = await run(m, feeds);
      const b = await run(r.model, feeds);
      const scale = Math.max(1, ...Array.from(a, Math.abs));
      assert.ok(maxAbs(a, b) <= 2e-2 * scale, `fp16 vs fp32 ${maxAbs(a, b)}`);
    });

  test('chosen ops stay float32 (Casts around them), others compute in float16', async () => {
    const { model, feeds } = fixture('torch/encoder_op17');
    const m = await prepared(model);
    const r = convertFp16(m, { keepFloat32: ['Softmax', 'op:LayerNormalization'] });
    tryInferShapes(r.model);
    for (const n of r.model.graph.nodes) {
      if (n.opType === 'Softmax' || n.opType === 'LayerNormalization')
        assert.equal(n.inputs[0]!.dtype, 'float32', n.name);
      if (n.opType === 'MatMul') assert.equal(n.inputs[0]!.dtype, 'float16', n.name);
    }
    assert.ok(r.kept.Softmax! >= 2);
    assert.ok(r.casts > 2);
    assert.ok(maxAbs(await run(m, feeds), await run(r.model, feeds)) < 2e-2);
  });

  test('Resize scales stay float32; Cast(to float) becomes Cast(to float16)', async () => {
    const m = await prepared(fixture('torch/mobile_op13').model);
    const r = convertFp16(m);
    const resize = r.model.graph.nodes.find((n) => n.opType === 'Resize');
    if (resize?.inputs[2]) assert.equal(resize.inputs[2].const?.dtype ?? resize.inputs[2].dtype, 'float32');
    const misc = await prepared(fixture('torch/misc_op13').model);
    const castsToFloat = misc.graph.nodes.filter((n) => n.opType === 'Cast' && n.attrInt('to') === 1).length;
    assert.ok(castsToFloat > 0);
    const c = convertFp16(misc);
    // the model's own Casts to float now cast to float16; only the inserted ones (…_to_fp32) produce float32
    for (const n of c.model.graph.nodes)
      if (n.opType === 'Cast' && n.attrInt('to') === 1) assert.match(n.name, /_to_fp32$/);
  });
});

describe('as passes of the pass manager', () => {
  test('quantize-static / -dynamic / -int4 / convert-fp16 are pure and verify', async () => {
    const m = await prepared(fixture('builder/mlp').model);
    const before = JSON.stringify(opCounts(m));
    const calibration = calibrationBatches(m, 2, 8);
    for (const [pass, options, op] of [
      [staticQuantPass, { calibration }, 'QuantizeLinear'],
      [dynamicQuantPass, {}, 'DynamicQuantizeLinear'],
      [int4QuantPass, {}, 'com.microsoft:MatMulNBits'],
      [fp16Pass, {}, 'Cast'],
    ] as const) {
      const r = await runPasses(m, [{ pass, options }], { verify: true, maxIterations: 1 });
      assert.ok(r.changed, pass.name);
      assert.ok((opCounts(r.model)[op] ?? 0) > 0, `${pass.name}: ${JSON.stringify(opCounts(r.model))}`);
      assert.equal(JSON.stringify(opCounts(m)), before, `${pass.name} changed its input`);
    }
  });
});

describe('quantize()', () => {
  test('every mode on mlp; qat through quantize() points to quantizeAwareTrain', async () => {
    const { model } = fixture('builder/mlp');
    const calibration = calibrationBatches(model, 2, 16);
    for (const mode of ['dynamic', 'static', 'int4', 'fp16'] as const) {
      const r = await quantize(model, { mode, calibration });
      assert.equal(r.mode, mode);
      verified(r.model);
    }
    await assert.rejects(
      quantize(model, { mode: 'qat' }),
      (e: Error & { exitCode?: number }) => e.exitCode === 3 && /quantizeAwareTrain/.test(e.message),
    );
  });

  test('the clean-up pipeline runs first: BatchNormalization nodes are folded before quantizing', async () => {
    const { model } = fixture('quant/mbconv_op14');
    assert.ok(opCounts(model).BatchNormalization! > 0);
    const r = await quantize(model, {
      mode: 'static',
      calibration: calibrationBatches(model, 2, 8, 1, fixture('quant/mbconv_op14').feeds),
    });
    assert.equal(opCounts(r.model).BatchNormalization ?? 0, 0);
    assert.ok(
      r.notes.some((n) => /fold-batchnorm|batchnorm/i.test(n)),
      r.notes.join('\n'),
    );
  });
});
