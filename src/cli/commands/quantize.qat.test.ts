// `edgefit quantize --mode qat` through main() in-process: a short QAT fine-tune writes a QDQ model with integer
// kernels, --json carries the QAT figures, and the training rows never come from the evaluation split.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../onnx/index.js';
import { runModel } from '../../runtime/index.js';
import { TORCH_FIXTURES } from '../../testing/fixtures.js';
import { main } from '../main.js';

const CNN = join(TORCH_FIXTURES, 'cnn-s_op13.onnx');
let dir = '';

async function edgefit(...args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr, json: () => JSON.parse(stdout) as Record<string, any> };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-qat-cli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('edgefit quantize --mode qat', () => {
  test('fine-tunes on the train split, exports QDQ with integer kernels, reports the QAT figures', async () => {
    const out = join(dir, 'cnn.qat.onnx');
    const r = await edgefit(
      'quantize',
      CNN,
      out,
      '--mode',
      'qat',
      '--data',
      'fashion-mnist',
      '--calib-samples',
      '128',
      '--train-limit',
      '1200',
      '--val-split',
      '200',
      '--epochs',
      '1',
      '--lr',
      '0.05',
      '--threads',
      '1',
      '--json',
      '--quiet',
    );
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.mode, 'qat');
    assert.equal(j.qat.trainRows, 1000);
    assert.equal(j.qat.valRows, 200);
    assert.match(j.qat.trainData, /train split/);
    assert.equal(j.qat.history.length, 1);
    // the start's validation accuracy is a fraction of the 200 validation rows, and the epoch improves on it
    const start = j.qat.start.valAccuracy as number;
    assert.ok(Number.isFinite(start) && start >= 0 && start <= 1, `start ${start}`);
    assert.ok(Math.abs(start * 200 - Math.round(start * 200)) < 1e-6, `start ${start} is not k/200`);
    assert.ok(j.qat.history[0].valAccuracy > start, `${start} → ${j.qat.history[0].valAccuracy}`);
    assert.ok(j.integerKernels >= j.nodes.length && j.nodes.length >= 3, JSON.stringify(j.kernels));
    // the untrained fixture learns something in one short epoch
    assert.ok(j.accuracyAfter > j.accuracyBefore + 0.1, `${j.accuracyBefore} → ${j.accuracyAfter}`);
    assert.equal(j.calibration.samples, 128);
    const x = new Float32Array(2 * 784).fill(0.5);
    const y = await runModel(loadModel(out), { input: { dtype: 'float32', dims: [2, 1, 28, 28], data: x } });
    assert.deepEqual(y.logits!.dims, [2, 10]);
  });

  test('non-built-in --data without --train-data is refused (exit 2) before anything runs', async () => {
    const r = await edgefit(
      'quantize',
      CNN,
      join(dir, 'x.onnx'),
      '--mode',
      'qat',
      '--data',
      join(dir, 'nope.npz'),
      '--quiet',
    );
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--train-data/);
  });
});
