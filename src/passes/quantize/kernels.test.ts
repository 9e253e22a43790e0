import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel } from '../../onnx/index.js';
import { randomFeeds, TORCH_FIXTURES } from '../../testing/fixtures.js';
import { ortKernels } from './kernels.js';
import { quantizeStatic } from './static.js';

test('a float stem Conv that ORT rewrites to its NCHWc domain still counts as a float compute kernel', async () => {
  const m = loadModel(join(TORCH_FIXTURES, 'cnn-s_op13.onnx'));
  const r = await quantizeStatic(m, { calibration: [randomFeeds(m, 1, 4)] });
  const k = await ortKernels(r.model);
  const floatConvs = Object.entries(k.ops)
    .filter(([op]) => /(^|:)(Fused)?Conv$/.test(op))
    .reduce((a, [, n]) => a + n, 0);
  assert.ok(floatConvs >= 1, JSON.stringify(k.ops));
  assert.ok(
    k.floatCompute >= floatConvs,
    `floatCompute ${k.floatCompute} counts the ${floatConvs} float Conv(s)`,
  );
});
