import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Model } from '../../ir/index.js';
import { Session } from '../../runtime/index.js';
import { NO_QAT_HOOK, autoQuantize } from './auto.js';
import type { Feeds } from './calibrate.js';
import { convertFp16 } from './fp16.js';
import { analyzeSensitivity, mixedPrecision, sensitivityOrder } from './sensitivity.js';
import { layerSqnr } from './sqnr.js';
import { quantizeStatic } from './static.js';
import { calibrationBatches, fixture, prepared } from '../../testing/quantize.js';

/** A score: the share of rows where the model's argmax agrees with the float model's (the float model scores 1). */
async function agreement(ref: Model, feeds: readonly Feeds[]): Promise<(m: Model) => Promise<number>> {
  const argmax = async (m: Model) => {
    const s = await Session.create(m, { threads: 1 });
    const out: number[] = [];
    try {
      for (const f of feeds) {
        const r = (await s.run(f, [s.outputNames[0]!]))[s.outputNames[0]!]!;
        const c = r.dims[1]!;
        const d = r.data as Float32Array;
        for (let i = 0; i < r.dims[0]!; i++) {
          let best = 0;
          for (let j = 1; j < c; j++) if (d[i * c + j]! > d[i * c + best]!) best = j;
          out.push(best);
        }
      }
    } finally {
      await s.release();
    }
    return out;
  };
  const want = await argmax(ref);
  return async (m) => {
    const got = await argmax(m);
    return got.filter((x, i) => x === want[i]).length / want.length;
  };
}

describe('per-layer SQNR, sensitivity, mixed precision, --auto', () => {
  test('layerSqnr: exact for an unchanged model, finite and ordered along a quantized cnn-s, fp16 ≫ int8', async () => {
    const m = await prepared(fixture('builder/cnn-s').model);
    const calib = calibrationBatches(m, 2, 16);
    const same = await layerSqnr(m, m, calib);
    assert.ok(same.length >= 6);
    assert.ok(same.every((l) => l.sqnr === Infinity));
    const q = (await quantizeStatic(m, { calibration: calib, floatStem: false })).model;
    const l8 = await layerSqnr(m, q, calib);
    const names = l8.map((l) => l.opType);
    assert.ok(names.includes('Conv') && names.includes('Gemm'), names.join(','));
    assert.ok(
      l8.every((l) => Number.isFinite(l.sqnr) && l.sqnr > 10 && l.sqnr < 80),
      JSON.stringify(l8),
    );
    const l16 = await layerSqnr(m, convertFp16(m).model, calib);
    const last = (ls: typeof l8) => ls[ls.length - 1]!.sqnr;
    assert.ok(last(l16) > last(l8) + 10, `fp16 ${last(l16)} vs int8 ${last(l8)}`);
  });

  test('sensitivity: every layer alone, SQNR of the output and accuracy; full quantization loses at least as much', async () => {
    const m = await prepared(fixture('builder/mlp').model);
    const calib = calibrationBatches(m, 2, 32);
    const score = await agreement(m, calib);
    const r = await analyzeSensitivity(m, { calibration: calib, score });
    assert.deepEqual(
      r.layers.map((l) => l.node),
      ['net.1', 'net.3', 'net.5'],
    );
    assert.equal(r.baseline, 1);
    for (const l of r.layers) {
      assert.ok(
        Number.isFinite(l.outputSqnr) && l.outputSqnr > r.full.outputSqnr - 1e-9,
        `${l.node}: ${l.outputSqnr} vs full ${r.full.outputSqnr}`,
      );
      assert.ok(l.accuracy !== null && l.drop !== null && l.layerSqnr !== null);
    }
    const order = sensitivityOrder(r.layers);
    assert.equal(order.length, 3);
    assert.deepEqual([...order].sort(), ['net.1', 'net.3', 'net.5']);
  });

  test('mixed precision: greedy fallback stops at the first attempt that holds the gate', async () => {
    const m = await prepared(fixture('builder/mlp').model);
    const calib = calibrationBatches(m, 2, 32);
    // a synthetic score: accuracy = 1 − 0.01 × (layers still quantized), so the gate 1.5 points needs two layers float
    const score = async (q: Model) =>
      1 -
      0.01 *
        q.graph.nodes.filter(
          (n) => n.opType === 'Gemm' && n.inputs[1]?.producer?.opType === 'DequantizeLinear',
        ).length;
    const sens = await analyzeSensitivity(m, { calibration: calib });
    const r = await mixedPrecision(m, {
      calibration: calib,
      order: ['net.3', 'net.1', 'net.5'],
      ranges: sens.ranges,
      score,
      baseline: 1,
      maxDrop: 1.5,
    });
    assert.ok(r.passed);
    assert.deepEqual(r.floatLayers, ['net.3', 'net.1']);
    assert.equal(r.steps.length, 2);
    assert.ok(!r.steps[0]!.passed && r.steps[1]!.passed);
  });

  test('--auto: static passes an easy gate; an impossible gate records static, mixed and the QAT hook, and returns no model', async () => {
    const m = await prepared(fixture('builder/mlp').model);
    const calib = calibrationBatches(m, 2, 32);
    const score = await agreement(m, calib);
    const easy = await autoQuantize(m, { calibration: calib, score, maxDrop: 100 });
    assert.equal(easy.chosen, 'static');
    assert.equal(easy.steps.length, 1);
    assert.ok(easy.model);
    assert.match(easy.stoppedBecause, /static INT8 holds the gate/);

    // every quantized layer costs a point here: no quantized model holds a gate of −1 points
    const harsh = async (q: Model) => (q.graph.nodes.some((n) => n.opType === 'DequantizeLinear') ? 0.5 : 1);
    const hard = await autoQuantize(m, { calibration: calib, score: harsh, maxDrop: 0 });
    assert.equal(hard.model, undefined);
    assert.equal(hard.chosen, null);
    assert.deepEqual(
      hard.steps.map((s) => [s.method, s.status]),
      [
        ['static', 'failed'],
        ['mixed', 'failed'],
        ['qat', 'skipped'],
      ],
    );
    assert.equal(hard.steps[2]!.note, NO_QAT_HOOK);
    assert.ok(hard.steps[1]!.attempts!.length === 2 && hard.steps[1]!.sensitivity!.length === 3);

    // with a QAT hook, the third step runs it
    let called = false;
    const withQat = await autoQuantize(m, {
      calibration: calib,
      score: harsh,
      maxDrop: 0,
      qat: async (fm) => {
        called = true;
        return fm;
      },
    });
    assert.ok(called);
    assert.equal(withQat.chosen, 'qat');
  });
});
