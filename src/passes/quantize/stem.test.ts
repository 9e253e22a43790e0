import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel } from '../../onnx/index.js';
import { randomFeeds, TORCH_FIXTURES } from '../../testing/fixtures.js';
import { quantizeStatic } from './static.js';

test('the float stem is reported as kept float by edgefit, not as the user’s exclude', async () => {
  const m = loadModel(join(TORCH_FIXTURES, 'cnn-s_op13.onnx'));
  const r = await quantizeStatic(m, { calibration: [randomFeeds(m, 1, 4)] });
  const stem = r.plan.skipped.find((s) => s.opType === 'Conv');
  assert.ok(stem, JSON.stringify(r.plan.skipped));
  assert.match(stem.reason, /^kept float: an image stem \(fewer than 4 input channels\)/);
  const ex = await quantizeStatic(m, {
    calibration: [randomFeeds(m, 1, 4)],
    exclude: ['op:Gemm'],
    floatStem: false,
  });
  assert.ok(
    ex.plan.skipped.every((s) => s.opType !== 'Gemm' || s.reason === 'excluded (--exclude/--include)'),
  );
  assert.ok(ex.plan.skipped.some((s) => s.opType === 'Gemm'));
});
