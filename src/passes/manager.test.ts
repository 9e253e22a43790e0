import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError, InternalError } from '../errors.js';
import { encodeModel } from '../onnx/index.js';
import {
  compareModels,
  definePass,
  nodeCount,
  opCounts,
  PASSES,
  passesByName,
  runPasses,
  standardPipeline,
} from './index.js';
import type { HostTensor } from '../runtime/index.js';
import { randomFloat } from '../testing/fixtures.js';
import { count, externalModel, externalModelNames, feed, hand } from '../testing/passes.js';

/**
 * Node counts (all graphs) before → after the standard pipeline, measured when the passes were written. "After" is
 * an upper bound: better shape inference may fold more.
 */
const EXPECTED: Record<string, [number, number]> = {
  'cnn-s_op13': [10, 10],
  'cnn-s_op17': [10, 10],
  convt_op13: [21, 6],
  encoder_op14: [277, 111],
  encoder_op17: [227, 71],
  misc_op13: [91, 58],
  mobile_bn_op13: [60, 28],
  mobile_op13: [47, 28],
  'openwakeword/hello_deepa.onnx': [29, 25],
  'openwakeword/hello_deepa_old.onnx': [29, 25],
  'openwakeword/namaste_deepa.onnx': [29, 25],
  silero_vad_legacy: [250, 208],
  silero_vad_v5: [689, 220],
  silero_vad_v6: [689, 220],
  'builder/mlp': [6, 6],
  'builder/vit-t': [87, 67],
  'builder/cnn-s': [12, 10],
};

describe('PassManager', () => {
  for (const name of externalModelNames())
    test(`standard pipeline on ${name}: verify clean after every pass, ORT outputs within 1e-5, fewer nodes`, async (t) => {
      const { model, feeds } = externalModel(name);
      const bytes = encodeModel(model);
      const r = await runPasses(model, standardPipeline(), { verify: true });
      assert.ok(r.converged, 'reached a fixed point');
      assert.ok(r.verified >= r.passes.reduce((s, p) => s + p.changedRuns, 0));
      assert.deepEqual(Buffer.compare(encodeModel(model), bytes), 0, 'the input model is untouched');
      const c = await compareModels(model, r.model, feeds);
      assert.ok(c.maxAbsDiff <= 1e-5, `max diff ${c.maxAbsDiff}`);
      assert.deepEqual(
        r.model.graph.outputs.map((v) => v.name),
        model.graph.outputs.map((v) => v.name),
      );
      assert.equal(count(r.model, 'If'), count(model, 'If'));
      assert.equal(r.nodesBefore, nodeCount(model));
      t.diagnostic(
        `${name}: ${r.nodesBefore} → ${r.nodesAfter} nodes, ${r.iterations} rounds, max |diff| ${c.maxAbsDiff.toExponential(2)}`,
      );
      const expected = EXPECTED[name];
      assert.ok(expected, `no expected counts for ${name}`);
      assert.equal(r.nodesBefore, expected[0]);
      assert.ok(r.nodesAfter <= expected[1], `${r.nodesAfter} nodes after, expected at most ${expected[1]}`);
      if (expected[1] < expected[0]) assert.ok(r.changed);
      // what is left after the pipeline is what the passes cannot touch
      const ops = opCounts(r.model);
      for (const op of ['Constant', 'BatchNormalization', 'Dropout'])
        assert.equal(ops[op] ?? 0, 0, `${op} left`);
    });

  test('Silero VAD at 8 kHz too (the If branches the 16 kHz feeds do not take)', async () => {
    for (const v of ['silero_vad_legacy', 'silero_vad_v5', 'silero_vad_v6']) {
      const { model } = externalModel(v);
      const r = await runPasses(model, standardPipeline(), { verify: true });
      const sr: HostTensor = { dtype: 'int64', dims: [], data: BigInt64Array.from([8000n]) };
      const feeds: Record<string, HostTensor> =
        v === 'silero_vad_legacy'
          ? {
              input: randomFloat([1, 768], 1, 0.1),
              sr,
              h: randomFloat([2, 1, 64], 2, 0.1),
              c: randomFloat([2, 1, 64], 3, 0.1),
            }
          : { input: randomFloat([1, 256], 4, 0.1), state: randomFloat([2, 1, 128], 5, 0.1), sr };
      const c = await compareModels(model, r.model, feeds);
      assert.ok(c.maxAbsDiff <= 1e-5, `${v}: ${c.maxAbsDiff}`);
    }
  });

  test('runs to a fixed point, and stops at the iteration cap', async () => {
    const h = hand(17);
    let v = h.input('x', [2]);
    for (let i = 0; i < 5; i++) v = h.e.op('Relu', [v]);
    h.output(v, 'y');
    // removes one Relu per run (the first one), so it needs five runs
    const dropOne = definePass(
      'drop-one-relu',
      'test pass',
      (m) => {
        const n = m.graph.nodes.find((x) => x.opType === 'Relu' && !x.output(0).isGraphOutput);
        if (!n) return { changed: false, notes: [], counts: {} as Record<string, number> };
        n.output(0).replaceAllUsesWith(n.input(0));
        m.graph.removeNode(n);
        return { changed: true, notes: ['dropped one'], counts: { relu: 1 } };
      },
      {},
    );
    const full = await runPasses(h.m, [dropOne], { verify: true });
    assert.equal(full.iterations, 5);
    assert.ok(full.converged);
    assert.equal(full.nodesAfter, 1);
    assert.deepEqual(full.passes[0]!.counts, { relu: 4 });
    assert.deepEqual(full.passes[0]!.notes, ['dropped one']);
    assert.equal(full.passes[0]!.changedRuns, 4);
    assert.equal(full.passes[0]!.nodesRemoved, 4);
    const capped = await runPasses(h.m, [dropOne], { maxIterations: 2 });
    assert.equal(capped.iterations, 2);
    assert.equal(capped.converged, false);
    assert.equal(capped.nodesAfter, 3);
    const c = await compareModels(h.m, full.model, { x: feed([2], 1) });
    assert.equal(c.maxAbsDiff, 0);
  });

  test('with verify on, a pass that breaks the graph is named', async () => {
    const h = hand(17);
    const x = h.input('x', [2]);
    h.output(h.e.op('Neg', [h.e.op('Relu', [x])]), 'y');
    const broken = definePass(
      'broken',
      'removes a node that is still read',
      (m) => {
        m.graph.removeNode(m.graph.nodes[0]!, true);
        return { changed: true, notes: [], counts: {} };
      },
      {},
    );
    await assert.rejects(runPasses(h.m, [broken], { verify: true }), (e: unknown) => {
      assert.ok(e instanceof InternalError);
      assert.match(
        e.message,
        /^Pass "broken" \(round 1\) left an invalid graph \(1 problem\):\n  - Input 0 ".*" of node "Neg" \(Neg\) is not a graph input, initializer or node output/,
      );
      return true;
    });
  });

  test('passes have unique names; --passes names are checked', () => {
    const names = PASSES.map((p) => p.name);
    assert.equal(new Set(names).size, names.length);
    assert.deepEqual(names, [
      'constant-to-initializer',
      'eliminate-identity',
      'constant-folding',
      'shape-simplify',
      'fold-batchnorm',
      'matmul-add-to-gemm',
      'dead-code',
    ]);
    assert.deepEqual(
      passesByName(['dead-code', 'constant-folding']).map((p) => p.name),
      ['dead-code', 'constant-folding'],
    );
    assert.throws(
      () => passesByName(['dead-code', 'nope']),
      (e: unknown) =>
        e instanceof InputError &&
        /Unknown pass "nope": passes are constant-to-initializer, /.test(e.message),
    );
  });
});
