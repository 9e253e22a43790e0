// Degenerate calibration (constant inputs, zero-width ranges) is warned about, with the accuracy drop when --data
// measures it (issue: all-zero calibration data lost 26 points with exit 0 and no warning).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNpy } from '../../data/index.js';
import { main } from '../../cli/main.js';
import { TORCH_FIXTURES } from '../../testing/fixtures.js';
import { calibrationWarnings } from './calibrate.js';

let dir = '';
before(() => (dir = mkdtempSync(join(tmpdir(), 'edgefit-calibwarn-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

test('calibrationWarnings: a constant input and zero-width ranges; none for varied data', () => {
  const zeros = { x: { dtype: 'float32' as const, dims: [2, 3], data: new Float32Array(6) } };
  const varied = {
    x: { dtype: 'float32' as const, dims: [2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) },
  };
  const stats = new Map([
    ['a', { min: 0, max: 0, lo: 0, hi: 0, count: 6 }],
    ['b', { min: -1, max: 2, lo: -1, hi: 2, count: 6 }],
  ]);
  const w = calibrationWarnings([zeros, zeros], { stats, calibrator: 'minmax', samples: 4, seconds: 0 });
  assert.equal(w.length, 2);
  assert.match(w[0]!, /calibration input "x" is the constant 0 in every item/);
  assert.match(w[1]!, /1 of 2 calibrated tensors have a range of zero width \(min = max: a = 0\)/);
  assert.deepEqual(calibrationWarnings([varied]), []);
});

test('quantize --mode static with all-zero calibration data: a warning naming it, and the drop with --data', async () => {
  const calib = join(dir, 'zeros.npy');
  writeNpy(calib, { dtype: 'float32', shape: [16, 1, 28, 28], data: new Float32Array(16 * 784) });
  let stdout = '';
  let stderr = '';
  const code = await main(
    [
      'quantize',
      join(TORCH_FIXTURES, 'cnn-s_op13.onnx'),
      join(dir, 'q.onnx'),
      '--mode',
      'static',
      '--calib-data',
      calib,
      '--data',
      'fashion-mnist',
      '--eval-samples',
      '300',
      '--json',
    ],
    { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) },
  );
  assert.equal(code, 0, stderr);
  const j = JSON.parse(stdout);
  assert.match(stderr, /warning: calibration input "input" is the constant 0 in every item/);
  assert.match(stderr, /warning: accuracy (dropped|rose) by \d+\.\d\d points/);
  assert.ok(j.warnings.length >= 2, JSON.stringify(j.warnings));
  assert.equal(j.dropPoints, j.drop);
});
