import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ModelBuilder } from '../../../ir/builder.js';
import type { Model, Value } from '../../../ir/index.js';
import { Tensor as T } from '../../../ir/index.js';
import { opCounts, tryInferShapes } from '../../util.js';
import { ortKernels } from '../kernels.js';
import { sqnr } from '../numeric.js';
import { planStatic, quantizeStatic } from '../static.js';
import {
  amax,
  calibrationBatches,
  fixture,
  imageFeeds,
  maxAbs,
  prepared,
  run,
} from '../../../testing/quantize.js';
import { affineAsConv, decomposeHardSwish, foldHardSigmoid, padDepthwise } from './index.js';

/**
 * A mobile block as EfficientNet / MobileNetV3 / DenseNet / ShuffleNet write it: float stem, 1×1 expand + SiLU
 * (Sigmoid · x), depthwise + SiLU, squeeze-excitation (GlobalAveragePool → Conv → Relu → Conv → HardSigmoid → Mul),
 * 1×1 project, residual Add, Concat with a second branch, AveragePool, GlobalAveragePool, Linear.
 */
function mobileBlock(): Model {
  const b = new ModelBuilder({ opset: 13, seed: 3 });
  const x = b.input('input', 'float32', ['N', 3, 16, 16]);
  const stem = b.relu(b.conv2d(x, { inC: 3, outC: 16, kernel: 3, pad: 1, name: 'stem' }));
  const silu = (v: Value, name: string) => b.mul(v, b.sigmoid(v, `${name}/sigmoid`), `${name}/mul`);
  let y = silu(b.conv2d(stem, { inC: 16, outC: 32, kernel: 1, name: 'expand' }), 'silu1');
  y = silu(b.conv2d(y, { inC: 32, outC: 32, kernel: 3, pad: 1, groups: 32, name: 'dw' }), 'silu2');
  const s = b.relu(b.conv2d(b.globalAvgPool(y, 'se/pool'), { inC: 32, outC: 8, kernel: 1, name: 'se/fc1' }));
  const gate = b.hardSigmoid(b.conv2d(s, { inC: 8, outC: 32, kernel: 1, name: 'se/fc2' }), 'se/gate');
  y = b.mul(y, gate, 'se/mul');
  y = b.add(b.conv2d(y, { inC: 32, outC: 16, kernel: 1, name: 'project' }), stem, 'residual');
  const other = b.relu(b.conv2d(stem, { inC: 16, outC: 16, kernel: 3, pad: 1, name: 'branch' }));
  y = b.concat([y, other], 1, 'concat');
  y = b.relu(b.conv2d(y, { inC: 32, outC: 32, kernel: 1, name: 'mix' }));
  y = b.avgPool(y, { kernel: 2, name: 'avgpool' });
  y = b.flatten(b.globalAvgPool(y, 'gap'), 1, 'flatten');
  b.output(b.linear(y, 32, 10, { name: 'fc' }), 'logits');
  return b.build();
}

const ORT_QLINEAR = ['QLinearSigmoid', 'QLinearMul', 'QLinearAdd', 'QLinearConcat', 'QLinearAveragePool'];
const ms = (ops: Record<string, number>, op: string) => ops[`com.microsoft:${op}`] ?? 0;

describe('INT8 placement rules (issue 17)', () => {
  test('SiLU, squeeze-excitation, residual Add, Concat and pools run as ORT QLinear ops; no float islands', async () => {
    const m = await prepared(mobileBlock());
    const feeds = imageFeeds(m, 4, 7);
    const calibration = calibrationBatches(m, 4, 8);
    const r = await quantizeStatic(m, { calibration });
    const before = await quantizeStatic(m, { calibration, placement: false });
    const k = (await ortKernels(r.model)).ops;
    const kb = (await ortKernels(before.model)).ops;
    assert.equal(ms(k, 'QLinearSigmoid'), 2, JSON.stringify(k));
    assert.equal(ms(k, 'QLinearMul'), 3, JSON.stringify(k));
    assert.equal(ms(k, 'QLinearAdd'), 1, JSON.stringify(k));
    assert.equal(ms(k, 'QLinearConcat'), 1, JSON.stringify(k));
    assert.equal(ms(k, 'QLinearAveragePool'), 1, JSON.stringify(k));
    assert.equal(ms(k, 'QLinearGlobalAveragePool'), 2, JSON.stringify(k));
    for (const op of ['Sigmoid', 'HardSigmoid', 'Mul', 'Add', 'Concat', 'AveragePool', 'GlobalAveragePool'])
      assert.ok(!k[op], `float ${op} left: ${JSON.stringify(k)}`);
    assert.ok(
      r.notes.some((n) => /Folded HardSigmoid se\/gate/.test(n)),
      r.notes.join('\n'),
    );
    // the placement before issue 17 leaves them float (ORT fuses nothing of it by itself here)
    for (const op of ORT_QLINEAR) assert.equal(ms(kb, op), 0, `${op}: ${JSON.stringify(kb)}`);
    assert.ok(kb.Sigmoid || kb['com.microsoft:QuickGelu'], JSON.stringify(kb));
    // accuracy: the integer kernels agree with the QDQ graph run in float (fake quantization), and the output's
    // SQNR against float stays within 1 dB of the old placement's
    const ref = await run(m, feeds);
    const fused = await run(r.model, feeds);
    const fake = await run(r.model, feeds, 'disabled');
    assert.ok(
      maxAbs(fused, fake) <= 0.05 * amax(ref),
      `fused vs fake ${maxAbs(fused, fake)} of ${amax(ref)}`,
    );
    const s = sqnr(ref, fused);
    const sb = sqnr(ref, await run(before.model, feeds));
    assert.ok(s > 20 && s > sb - 1, `SQNR ${s.toFixed(2)} dB (before ${sb.toFixed(2)})`);
  });

  test('HardSigmoid after a Conv folds into its weights: Clip(0, 1), the same values, the gate keeps its name', async () => {
    const m = await prepared(mobileBlock());
    const folded = m.clone();
    tryInferShapes(folded);
    assert.deepEqual(
      foldHardSigmoid(folded, () => true),
      ['se/gate'],
    );
    assert.equal(opCounts(folded).HardSigmoid ?? 0, 0);
    const gateOf = (model: Model) => model.graph.nodes.find((n) => n.name === 'se/mul')!.inputs[1]!;
    assert.equal(gateOf(folded).producer?.opType, 'Clip');
    assert.equal(gateOf(folded).name, gateOf(m).name);
    const feeds = imageFeeds(m, 2, 9);
    const a = await run(m, feeds);
    assert.ok(maxAbs(a, await run(folded, feeds)) <= 1e-5 * Math.max(1, amax(a)));
    // excluded nodes are left alone
    const kept = m.clone();
    assert.deepEqual(
      foldHardSigmoid(kept, (n) => n.name !== 'se/gate'),
      [],
    );
  });

  test('QLinear ops join only where an input is quantized anyway and every reader takes the output quantized', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 4 });
    const x = b.input('input', 'float32', ['N', 8, 8, 8]);
    const c1 = b.conv2d(x, { inC: 8, outC: 8, kernel: 1, name: 'c1' });
    const c2 = b.conv2d(x, { inC: 8, outC: 8, kernel: 1, name: 'c2' });
    // a Concat of two quantized convs read by a float op (Tanh): QLinearConcat would only add a requantization
    const t = b.tanh(b.concat([c1, c2], 1, 'cat_float_reader'), 'tanh');
    // an Add of two float values: no input is quantized, so it stays float even though a Conv reads it
    const f = b.add(b.tanh(c1, 't1'), b.tanh(c2, 't2'), 'add_float_inputs');
    // a Concat with quantized inputs read by a Conv: joins (the float inputs get a Q)
    const y = b.conv2d(b.concat([c1, c2, f, t], 1, 'cat_ok'), { inC: 40, outC: 8, kernel: 1, name: 'c3' });
    // an Add of a quantized conv output and a float value, read by a Conv: joins
    const z = b.add(b.conv2d(y, { inC: 8, outC: 8, kernel: 1, name: 'c4' }), b.tanh(y, 't3'), 'add_mixed');
    b.output(b.conv2d(z, { inC: 8, outC: 4, kernel: 1, name: 'c5' }), 'out');
    const m = b.build();
    tryInferShapes(m);
    const plan = planStatic(m, { floatStem: false });
    const joined = plan.nodes.filter((n) => !/^c\d$/.test(n));
    assert.deepEqual(joined.sort(), ['add_mixed', 'cat_ok']);
    assert.deepEqual(
      planStatic(m, { floatStem: false, placement: false }).nodes.filter((n) => !/^c\d$/.test(n)),
      [],
    );
    assert.deepEqual(
      planStatic(m, { floatStem: false, exclude: ['add_mixed'] }).nodes.filter((n) => !/^c\d$/.test(n)),
      ['cat_ok'],
    );
    const r = await quantizeStatic(m, { calibration: calibrationBatches(m, 2, 8), floatStem: false });
    const k = (await ortKernels(r.model)).ops;
    assert.equal(ms(k, 'QLinearAdd'), 1, JSON.stringify(k));
    assert.equal(ms(k, 'QLinearConcat'), 1, JSON.stringify(k));
    assert.equal(k.Concat, 1, JSON.stringify(k));
  });

  for (const opset of [13, 14])
    test(`HardSwish after a Conv (opset ${opset}: ${opset >= 14 ? 'the op' : 'x · HardSigmoid(x)'}) runs as QLinearAdd → QLinearMul, its ×1/6 in a DequantizeLinear scale, same float values`, async () => {
      const b = new ModelBuilder({ opset, seed: 5 });
      const x = b.input('input', 'float32', ['N', 4, 8, 8]);
      let y = b.hardSwish(b.conv2d(x, { inC: 4, outC: 16, kernel: 3, pad: 1, name: 'c1' }), 'hs');
      y = b.conv2d(y, { inC: 16, outC: 8, kernel: 1, name: 'c2' });
      b.output(b.flatten(b.globalAvgPool(y, 'gap'), 1, 'flat'), 'out');
      const m = await prepared(b.build());
      const d = m.clone();
      tryInferShapes(d);
      assert.deepEqual(
        decomposeHardSwish(d, () => true),
        [opset >= 14 ? 'hs' : 'hs/Mul'],
      );
      assert.equal(opCounts(d).HardSwish ?? 0, 0);
      assert.equal(opCounts(d).HardSigmoid ?? 0, 0);
      const feeds = imageFeeds(m, 2, 11);
      const ref = await run(m, feeds);
      assert.ok(maxAbs(ref, await run(d, feeds)) <= 1e-5 * Math.max(1, amax(ref)));
      const calibration = calibrationBatches(m, 4, 8);
      const r = await quantizeStatic(m, { calibration });
      const k = (await ortKernels(r.model)).ops;
      assert.equal(ms(k, 'QLinearAdd'), 1, JSON.stringify(k));
      assert.equal(ms(k, 'QLinearMul'), 1, JSON.stringify(k));
      assert.ok(
        r.notes.some((n) => /Folded Mul ".*div6" \(× 0.166667\) into the scale/.test(n)),
        r.notes.join('\n'),
      );
      // without the scale fold the ×1/6 is a QLinearMul of its own (one more kernel, one more rounding)
      const unfolded = await quantizeStatic(m, { calibration, placement: { scaleFold: false } });
      assert.equal(ms((await ortKernels(unfolded.model)).ops, 'QLinearMul'), 2);
      assert.ok(sqnr(ref, await run(r.model, feeds)) >= sqnr(ref, await run(unfolded.model, feeds)) - 0.5);
      for (const op of ['HardSwish', 'HardSigmoid', 'Mul', 'Add', 'Clip'])
        assert.ok(!k[op], `float ${op} left: ${JSON.stringify(k)}`);
      // the constants 3 and 1/6 are exact uint8 values: the quantized graph stays as close as the float island
      const s = sqnr(ref, await run(r.model, feeds));
      const off = await quantizeStatic(m, { calibration, placement: { hardSwish: false } });
      const sOff = sqnr(ref, await run(off.model, feeds));
      assert.ok(s > 25 && s > sOff - 1, `SQNR ${s.toFixed(2)} dB, float island ${sOff.toFixed(2)}`);
      assert.ok((await ortKernels(off.model)).ops.HardSigmoid || (await ortKernels(off.model)).ops.HardSwish);
    });

  test("DenseNet's pre-activation BatchNormalization runs as a depthwise 1×1 QLinearConv; the Concat before it stays uint8", async () => {
    const b = new ModelBuilder({ opset: 13, seed: 6 });
    const x = b.input('input', 'float32', ['N', 16, 8, 8]);
    const x0 = b.conv2d(x, { inC: 16, outC: 16, kernel: 1, name: 'c0' });
    const layer = (feats: Value[], i: number) => {
      const cin = 16 * feats.length;
      const y = b.relu(b.batchNorm(b.concat(feats, 1, `cat${i}`), cin, { name: `bn${i}` }));
      return b.conv2d(y, { inC: cin, outC: 16, kernel: 3, pad: 1, name: `conv${i}` });
    };
    const x1 = layer([x0], 1);
    const x2 = layer([x0, x1], 2);
    const x3 = layer([x0, x1, x2], 3);
    b.output(b.flatten(b.globalAvgPool(x3, 'gap'), 1, 'flat'), 'out');
    const m0 = b.build();
    // trained statistics, not the identity of a fresh BN (so a, b and the range floor matter)
    for (const n of m0.graph.nodes.filter((n) => n.opType === 'BatchNormalization')) {
      const C = n.inputs[1]!.const!.numel;
      const set = (i: number, f: (c: number) => number) => {
        n.inputs[i]!.const = T.from(
          'float32',
          [C],
          Float32Array.from({ length: C }, (_, c) => f(c)),
        );
      };
      set(1, (c) => 0.5 + ((c * 7) % 5) / 4);
      set(2, (c) => ((c % 3) - 1) * 0.3);
      set(3, (c) => ((c * 5) % 7) / 10 - 0.2);
      set(4, (c) => 0.3 + ((c * 3) % 4) / 2);
    }
    const m = await prepared(m0);
    assert.equal(opCounts(m).BatchNormalization, 3, 'nothing folds them before quantization');
    const d = m.clone();
    tryInferShapes(d);
    const r0 = affineAsConv(d, () => true);
    assert.deepEqual(r0.done, ['bn1', 'bn2', 'bn3']);
    assert.equal(r0.floors.size, 3);
    const feeds = imageFeeds(m, 2, 13);
    const ref = await run(m, feeds);
    assert.ok(maxAbs(ref, await run(d, feeds)) <= 1e-5 * Math.max(1, amax(ref)), 'the rewrite is exact');
    const calibration = calibrationBatches(m, 4, 8);
    const r = await quantizeStatic(m, { calibration });
    const off = await quantizeStatic(m, { calibration, placement: { affineConv: false } });
    const k = (await ortKernels(r.model)).ops;
    const kOff = (await ortKernels(off.model)).ops;
    assert.ok(!k.BatchNormalization && !k.Concat, JSON.stringify(k));
    assert.equal(ms(k, 'QLinearConcat'), 3, JSON.stringify(k));
    assert.equal((k.QLinearConv ?? 0) + ms(k, 'QLinearConv'), 7, JSON.stringify(k));
    assert.equal(kOff.BatchNormalization, 3, JSON.stringify(kOff));
    assert.ok(
      r.notes.some((n) => /as depthwise 1×1 Convs/.test(n)),
      r.notes.join('\n'),
    );
    const s = sqnr(ref, await run(r.model, feeds));
    const sOff = sqnr(ref, await run(off.model, feeds));
    assert.ok(s > 20 && s > sOff - 3, `SQNR ${s.toFixed(2)} dB, float BN ${sOff.toFixed(2)}`);
    // a BN whose channels are not a multiple of 16 (MLAS's symmetric depthwise kernel) stays as it is
    const b2 = new ModelBuilder({ opset: 13, seed: 7 });
    const x5 = b2.input('input', 'float32', ['N', 8, 4, 4]);
    b2.output(b2.relu(b2.batchNorm(b2.tanh(x5, 't'), 8, { name: 'bn' })), 'out');
    const m2 = b2.build();
    tryInferShapes(m2);
    assert.deepEqual(affineAsConv(m2, () => true).done, []);
  });

  test('stemDepthwise: the depthwise Conv right after a float stem stays float with it (opt-in), deeper ones do not', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 8 });
    const x = b.input('input', 'float32', ['N', 3, 16, 16]);
    let y = b.relu(b.conv2d(x, { inC: 3, outC: 16, kernel: 3, pad: 1, name: 'stem' }));
    y = b.relu(b.conv2d(y, { inC: 16, outC: 16, kernel: 3, pad: 1, groups: 16, name: 'dw1' }));
    y = b.relu(b.conv2d(y, { inC: 16, outC: 32, kernel: 1, name: 'pw1' }));
    y = b.relu(b.conv2d(y, { inC: 32, outC: 32, kernel: 3, pad: 1, groups: 32, name: 'dw2' }));
    y = b.conv2d(y, { inC: 32, outC: 16, kernel: 1, name: 'pw2' });
    b.output(b.flatten(b.globalAvgPool(y, 'gap'), 1, 'flat'), 'out');
    const m = await prepared(b.build());
    const calibration = calibrationBatches(m, 4, 8);
    const on = await quantizeStatic(m, { calibration, placement: { stemDepthwise: true } });
    const off = await quantizeStatic(m, { calibration });
    assert.deepEqual(
      on.plan.skipped.map((s) => s.node),
      ['stem', 'dw1'],
    );
    assert.deepEqual(
      off.plan.skipped.map((s) => s.node),
      ['stem'],
    );
    const k = (await ortKernels(on.model)).ops;
    assert.equal(ms(k, 'QLinearConv'), 3, JSON.stringify(k));
    const feeds = imageFeeds(m, 2, 15);
    const ref = await run(m, feeds);
    const s = sqnr(ref, await run(on.model, feeds));
    assert.ok(s > 25 && s >= sqnr(ref, await run(off.model, feeds)) - 1, `SQNR ${s.toFixed(2)} dB`);
  });

  test('a depthwise Conv of 24 channels between 1×1 Convs is padded to 32 (MLAS symmetric kernel): same values', async () => {
    const b = new ModelBuilder({ opset: 13, seed: 9 });
    const x = b.input('input', 'float32', ['N', 16, 8, 8]);
    let y = b.relu(b.conv2d(x, { inC: 16, outC: 24, kernel: 1, name: 'expand' }));
    y = b.relu(b.conv2d(y, { inC: 24, outC: 24, kernel: 3, pad: 1, groups: 24, name: 'dw' }));
    y = b.conv2d(y, { inC: 24, outC: 16, kernel: 1, name: 'project' });
    // a second depthwise Conv whose output a pool reads: left alone
    const z = b.conv2d(y, { inC: 16, outC: 24, kernel: 1, name: 'expand2' });
    const dw2 = b.conv2d(z, { inC: 24, outC: 24, kernel: 3, pad: 1, groups: 24, name: 'dw2' });
    b.output(b.flatten(b.globalAvgPool(dw2, 'gap'), 1, 'flat'), 'out');
    const m = await prepared(b.build());
    const d = m.clone();
    tryInferShapes(d);
    assert.deepEqual(
      padDepthwise(d, () => true),
      ['dw'],
    );
    const dw = d.graph.nodes.find((n) => n.name === 'dw')!;
    assert.equal(dw.attrInt('group', 1), 32);
    const feeds = imageFeeds(m, 2, 17);
    const ref = await run(m, feeds);
    assert.ok(maxAbs(ref, await run(d, feeds)) <= 1e-5 * Math.max(1, amax(ref)), 'the padding is exact');
    const calibration = calibrationBatches(m, 4, 8);
    const r = await quantizeStatic(m, { calibration });
    const off = await quantizeStatic(m, { calibration, placement: { padDepthwise: false } });
    assert.ok(
      r.notes.some((n) => /Padded the channels of depthwise Conv\(s\) dw to/.test(n)),
      r.notes.join('\n'),
    );
    const s = sqnr(ref, await run(r.model, feeds));
    const sOff = sqnr(ref, await run(off.model, feeds));
    assert.ok(s > 25 && s >= sOff - 0.5, `SQNR ${s.toFixed(2)} dB, unpadded ${sOff.toFixed(2)}`);
  });

  test('models without those patterns keep the plan they had (cnn-s: the issue-4 accuracy figures stand)', async () => {
    for (const name of ['torch/cnn-s_op13', 'builder/cnn-s', 'builder/mlp']) {
      const m = await prepared(fixture(name).model);
      tryInferShapes(m);
      const a = planStatic(m);
      const b = planStatic(m, { placement: false });
      assert.deepEqual(a.nodes, b.nodes, name);
      assert.deepEqual([...a.tensors], [...b.tensors], name);
    }
  });
});
