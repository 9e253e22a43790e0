// TRAINING_SAFE_PASSES on torch-exported graphs: outputs unchanged in ORT, Dropout and BatchNormalization kept,
// and graphs whose raw export cannot be differentiated (slice bounds and resize scales computed from shapes)
// get gradients that match central finite differences through ORT.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gradCheck } from '../autodiff/check.js';
import { buildGradients, UnsupportedGradientError } from '../autodiff/grad.js';
import { tensorType } from '../ir/index.js';
import { loadModel } from '../onnx/index.js';
import { sumLoss } from '../testing/grad.js';
import { inferShapes } from '../ops/index.js';
import { readIo, TORCH_FIXTURES } from '../testing/fixtures.js';
import { compareModels, opCounts, runPasses, TRAINING_SAFE_PASSES } from './index.js';

// The mobile nets are full of kinks (ReLU6, HardSwish, LeakyReLU): finite differences crossing them err by a few
// per cent, so they take a small step and a looser tolerance, which still catches a wrong rule (a missing factor,
// a transposed matrix); the encoder is smooth enough for the defaults.
const KINKY = { eps: 3e-4, rtol: 0.1 };
const CASES = [
  { name: 'encoder_op17', raw: /Cannot differentiate Slice .*must be a constant/, check: {} },
  { name: 'mobile_bn_op13', raw: /Cannot differentiate Resize .*scales must be a constant/, check: KINKY },
  { name: 'mobile_op13', raw: undefined, check: KINKY },
];

describe('training-safe clean-up of torch-exported graphs', () => {
  for (const c of CASES)
    test(`${c.name}: same outputs, BN/Dropout kept, gradients match finite differences`, async () => {
      const raw = loadModel(join(TORCH_FIXTURES, `${c.name}.onnx`));
      const io = readIo(join(TORCH_FIXTURES, `${c.name}.io.json`));
      if (c.raw) {
        // the raw export: a loss over its output cannot be differentiated
        const m = raw.clone();
        for (const v of m.graph.inputs) {
          const f = io.inputs[v.name];
          if (f) v.type = tensorType(f.dtype, [...f.dims]);
        }
        inferShapes(m);
        const g = m.graph;
        const loss = sumLoss(g, g.outputs[0]!);
        const params = [...g.initializers.values()].filter((v) => v.dtype === 'float32');
        assert.throws(
          () => buildGradients(m, loss, params),
          (e: unknown) => e instanceof UnsupportedGradientError && c.raw!.test((e as Error).message),
        );
      }
      const { model } = await runPasses(raw, TRAINING_SAFE_PASSES);
      const cmp = await compareModels(raw, model, io.inputs);
      assert.ok(cmp.maxAbsDiff <= 1e-5, `outputs differ by ${cmp.maxAbsDiff}`);
      const [before, after] = [opCounts(raw), opCounts(model)];
      for (const op of ['BatchNormalization', 'Dropout', 'Resize', 'Conv', 'MatMul'])
        assert.equal(after[op], before[op], `${op}: ${before[op]} → ${after[op]}`);
      // the weights (not constants such as Resize scales or Clip bounds, which get no gradient)
      const wrt = [...model.graph.initializers.values()]
        .filter(
          (v) =>
            v.dtype === 'float32' &&
            v.uses.length > 0 &&
            v.uses.every(
              ({ node, index }) =>
                (['Conv', 'Gemm', 'MatMul'].includes(node.opType) && index >= 1) ||
                (['BatchNormalization', 'LayerNormalization'].includes(node.opType) &&
                  (index === 1 || index === 2)),
            ),
        )
        .map((v) => v.name);
      assert.ok(wrt.length >= 6, wrt.join(', '));
      const r = await gradCheck(model, { feeds: io.inputs, wrt, seed: 2, ...c.check });
      assert.ok(
        r.ok,
        `worst error ratio ${r.worst}: ${JSON.stringify(r.rows.filter((x) => !x.ok).slice(0, 3))}`,
      );
      assert.ok(r.rows.length >= 10, `${r.rows.length} rows checked`);
    });
});
