// `edgefit quantize` and `edgefit compare` through main() in-process: every mode writes a model ORT runs, --json
// has the promised fields, --auto records its steps, qat and bad flags give the documented exit codes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel } from '../../models/index.js';
import { loadModel, saveModel } from '../../onnx/index.js';
import { runModel } from '../../runtime/index.js';
import { bitEqual, randomFloat, TORCH_FIXTURES } from '../../testing/fixtures.js';
import { main } from '../main.js';

const CNN = join(TORCH_FIXTURES, 'cnn-s_op13.onnx');
let dir = '';
let MLP = '';

async function edgefit(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string; json: () => Record<string, any> }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr, json: () => JSON.parse(stdout) };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-quant-cli-'));
  MLP = join(dir, 'mlp.onnx');
  saveModel(buildModel('mlp', { seed: 1 }), MLP);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('edgefit quantize / compare', () => {
  test('static: --json has mode, bytes, accuracy before/after, integer kernels; the model runs', async () => {
    const out = join(dir, 'cnn.int8.onnx');
    const r = await edgefit(
      'quantize',
      CNN,
      out,
      '--mode',
      'static',
      '--calib-data',
      'fashion-mnist',
      '--calib-samples',
      '128',
      '--data',
      'fashion-mnist',
      '--eval-samples',
      '300',
      '--json',
      '--quiet',
    );
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.mode, 'static');
    assert.ok(j.bytesAfter < 0.27 * j.bytesBefore, `${j.bytesAfter} / ${j.bytesBefore}`);
    // the accuracies are the ones `edgefit eval` measures on the same 300 test rows (NaN or a stale figure fails)
    for (const [file, acc] of [
      [CNN, j.accuracyBefore],
      [out, j.accuracyAfter],
    ] as const) {
      assert.ok(Number.isFinite(acc) && acc >= 0 && acc <= 1, `accuracy ${acc}`);
      const e = await edgefit('eval', file, '--data', 'fashion-mnist', '--limit', '300', '--json', '--quiet');
      assert.equal(e.code, 0, e.stderr);
      assert.equal(e.json().n, 300);
      assert.equal(
        acc,
        e.json().accuracy,
        `${file}: quantize reports ${acc}, eval measures ${e.json().accuracy}`,
      );
    }
    // the float kernels left are the stems kept float on purpose (and reported so in `skipped`)
    const kept = j.skipped.filter((s: { reason: string }) => s.reason.startsWith('kept float')).length;
    assert.ok(j.integerKernels >= 3 && j.floatComputeKernels === kept, JSON.stringify(j.kernels));
    assert.equal(j.calibration.samples, 128);
    const x = new Float32Array(2 * 784).fill(0.5);
    const y = await runModel(loadModel(out), { input: { dtype: 'float32', dims: [2, 1, 28, 28], data: x } });
    assert.deepEqual(y.logits!.dims, [2, 10]);
  });

  test('dynamic, int4 (rtn and gptq), fp16 on mlp', async () => {
    for (const [mode, extra, kernel] of [
      ['dynamic', [], 'com.microsoft:DynamicQuantizeMatMul'],
      ['int4', ['--block-size', '64'], 'com.microsoft:MatMulNBits'],
      [
        'int4',
        ['--int4-method', 'gptq', '--calib-data', 'fashion-mnist', '--calib-samples', '64'],
        'com.microsoft:MatMulNBits',
      ],
      ['fp16', ['--keep-fp32', 'op:Relu'], 'Cast'],
    ] as const) {
      const out = join(dir, `mlp.${mode}.onnx`);
      const r = await edgefit('quantize', MLP, out, '--mode', mode, ...extra, '--json', '--quiet');
      assert.equal(r.code, 0, `${mode}: ${r.stderr}`);
      const j = r.json();
      assert.equal(j.mode, mode);
      assert.ok(j.kernels[kernel] >= 1, `${mode}: ${JSON.stringify(j.kernels)}`);
      assert.ok(
        j.bytesAfter < j.bytesBefore * (mode === 'int4' ? 0.2 : mode === 'fp16' ? 0.55 : 0.3),
        `${mode}: ${j.bytesAfter} / ${j.bytesBefore}`,
      );
      assert.ok(existsSync(out));
    }
  });

  test('--external-data: an aligned data file beside the model, ORT outputs bit-identical to the inline file', async () => {
    const inline = join(dir, 'mlp.int4.inline.onnx');
    const ext = join(dir, 'mlp.int4.ext.onnx');
    const a = await edgefit('quantize', MLP, inline, '--mode', 'int4', '--json', '--quiet');
    const b = await edgefit('quantize', MLP, ext, '--mode', 'int4', '--external-data', '--json', '--quiet');
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const [ja, jb] = [a.json(), b.json()];
    assert.equal(ja.dataFile, null);
    assert.match(jb.dataFile, new RegExp(`^${ext.replace(/[.\\]/g, '\\$&')}\\.[0-9a-f]{8}\\.data$`));
    const dataBytes = statSync(jb.dataFile).size;
    assert.ok(dataBytes > 0.9 * ja.bytesAfter, `${dataBytes} of ${ja.bytesAfter}`);
    assert.equal(jb.bytesAfter, statSync(ext).size + dataBytes);
    const x = { input: randomFloat([4, 1, 28, 28], 1, 3) };
    const [ya, yb] = [await runModel(inline, x), await runModel(ext, x)];
    assert.ok(bitEqual(ya.logits!.data, yb.logits!.data));
  });

  test('--auto: stops at static INT8 with a loose gate and records why', async () => {
    const out = join(dir, 'cnn.auto.onnx');
    const r = await edgefit(
      'quantize',
      CNN,
      out,
      '--auto',
      '--data',
      'fashion-mnist',
      '--eval-samples',
      '200',
      '--calib-samples',
      '64',
      '--max-drop',
      '50',
      '--json',
      '--quiet',
    );
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.mode, 'auto:static');
    assert.equal(j.auto.steps[0].method, 'static');
    assert.match(j.auto.stoppedBecause, /holds the gate/);
  });

  test('exit codes: qat without training data, a missing calibration set or a bad flag 2, an impossible --auto gate 4 (nothing written)', async () => {
    const q = await edgefit('quantize', CNN, join(dir, 'x.onnx'), '--mode', 'qat');
    assert.equal(q.code, 2);
    assert.match(q.stderr, /--train-data/);
    assert.equal((await edgefit('quantize', CNN, join(dir, 'x.onnx'), '--mode', 'static')).code, 2);
    assert.equal(
      (await edgefit('quantize', CNN, join(dir, 'x.onnx'), '--mode', 'int4', '--block-size', '48')).code,
      2,
    );
    assert.equal(
      (
        await edgefit(
          'quantize',
          CNN,
          join(dir, 'x.onnx'),
          '--mode',
          'static',
          '--calib-data',
          'fashion-mnist',
          '--exclude',
          'nope',
        )
      ).code,
      2,
    );
    assert.equal((await edgefit('quantize', CNN, join(dir, 'x.onnx'), '--mode', 'bogus')).code, 2);
    const r = await edgefit(
      'quantize',
      CNN,
      join(dir, 'never.onnx'),
      '--auto',
      '--data',
      'fashion-mnist',
      '--eval-samples',
      '100',
      '--calib-samples',
      '32',
      '--max-drop',
      '-1',
      '--quiet',
    );
    assert.equal(r.code, 2, 'a negative --max-drop is refused');
    assert.ok(!existsSync(join(dir, 'never.onnx')));

    // nothing to quantize (a ConvTranspose/Conv model has no MatMul/Gemm for int4 — dynamic takes its Conv; an
    // --exclude of every Gemm): exit 3, naming the file, what the mode takes and what the graph has; nothing written
    const convt = join(TORCH_FIXTURES, 'convt_op13.onnx');
    for (const [model, args] of [
      [convt, ['--mode', 'int4']],
      [MLP, ['--mode', 'dynamic', '--exclude', 'op:Gemm']],
    ] as const) {
      const n = await edgefit('quantize', model, join(dir, 'none.onnx'), ...args);
      assert.equal(n.code, 3, n.stderr);
      assert.match(
        n.stderr,
        new RegExp(`--mode ${args[1]} found nothing to quantize in .*${model.split('/').pop()}`),
      );
      assert.match(
        n.stderr,
        model === convt ? /ConvTranspose ×1/ : /--include\/--exclude may have left nothing/,
      );
      assert.ok(!existsSync(join(dir, 'none.onnx')));
    }
    const a = await edgefit(
      'quantize',
      MLP,
      join(dir, 'none.onnx'),
      '--auto',
      '--data',
      'fashion-mnist',
      '--eval-samples',
      '64',
      '--calib-samples',
      '32',
      '--exclude',
      'op:Gemm',
    );
    assert.equal(a.code, 3, a.stderr);
    assert.match(a.stderr, /--auto found nothing to quantize .*--include\/--exclude may have left nothing/);
    assert.ok(!existsSync(join(dir, 'none.onnx')));
  });

  test('compare: accuracy, per-class recall, size, latency and per-layer SQNR side by side', async () => {
    const q = join(dir, 'cnn.cmp.int8.onnx');
    assert.equal(
      (
        await edgefit(
          'quantize',
          CNN,
          q,
          '--mode',
          'static',
          '--calib-data',
          'fashion-mnist',
          '--calib-samples',
          '64',
          '--quiet',
        )
      ).code,
      0,
    );
    const r = await edgefit(
      'compare',
      CNN,
      q,
      '--data',
      'fashion-mnist',
      '--limit',
      '200',
      '--reps',
      '3',
      '--sqnr-samples',
      '32',
      '--json',
      '--quiet',
    );
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.a.recall.length, 10);
    assert.equal(j.b.recall.length, 10);
    assert.ok(j.sizeRatio < 0.3);
    assert.ok(j.a.latencyMs > 0 && j.b.latencyMs > 0);
    const layers = j.layers as { name: string; opType: string; sqnr: number | null; identical: boolean }[];
    assert.ok(
      layers.some((l) => l.opType === 'Conv') && layers.some((l) => l.name === 'logits'),
      JSON.stringify(layers),
    );
    // the float stem is identical; everything after it is quantized
    assert.ok(
      layers.every((l) => (l.identical && l.sqnr === null) || (l.sqnr !== null && l.sqnr > 10)),
      JSON.stringify(layers),
    );
    assert.ok(layers.some((l) => l.identical) && layers.some((l) => !l.identical));
    const t = await edgefit(
      'compare',
      CNN,
      q,
      '--data',
      'fashion-mnist',
      '--limit',
      '100',
      '--reps',
      '2',
      '--sqnr-samples',
      '16',
      '--quiet',
    );
    assert.match(t.stdout, /SQNR/);
    assert.match(t.stdout, /recall 6 Shirt/);
  });
});
