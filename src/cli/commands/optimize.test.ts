import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../onnx/index.js';
import { compareModels } from '../../passes/index.js';
import { REPO_ROOT, TORCH_FIXTURES, readIo } from '../../testing/fixtures.js';
import { edgefit } from '../../testing/cli.js';

const MOBILE_BN = join(TORCH_FIXTURES, 'mobile_bn_op13.onnx');

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-optimize-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('edgefit optimize', () => {
  test('--help, and the command is listed', () => {
    assert.match(edgefit('--help').stdout, /\boptimize\b/);
    const h = edgefit('optimize', '--help');
    assert.equal(h.code, 0);
    assert.match(h.stdout, /--passes/);
    assert.match(h.stdout, /--tolerance/);
  });

  test('mobile_bn_op13 --json: counts, bytes, per-pass notes, max diff; the written model matches torch', async () => {
    const out = join(dir, 'mobile.opt.onnx');
    const r = edgefit('optimize', MOBILE_BN, out, '--json', '--quiet');
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.nodesBefore, 60);
    assert.equal(j.nodesAfter, 28);
    assert.equal(j.opCountsBefore.BatchNormalization, 4);
    assert.equal(j.opCountsAfter.BatchNormalization, undefined);
    assert.equal(j.opCountsAfter.Conv, 7);
    assert.ok(j.bytesAfter < j.bytesBefore, `${j.bytesBefore} → ${j.bytesAfter}`);
    assert.ok(j.maxAbsDiff <= 1e-5 && j.maxAbsDiff >= 0, String(j.maxAbsDiff));
    assert.equal(j.checked, true);
    assert.deepEqual(
      j.passes.map((p: { name: string }) => p.name),
      [
        'constant-to-initializer',
        'eliminate-identity',
        'constant-folding',
        'shape-simplify',
        'fold-batchnorm',
        'matmul-add-to-gemm',
        'dead-code',
      ],
    );
    const bn = j.passes.find((p: { name: string }) => p.name === 'fold-batchnorm');
    assert.equal(bn.changed, true);
    assert.deepEqual(bn.counts, { 'fold-bn-into-conv': 4 });
    assert.match(
      bn.notes.join('\n'),
      /folded BatchNormalization "\/dw_bn\/BatchNormalization" into Conv "\/dw\/Conv"/,
    );
    // the written file against the input on torch's own inputs
    const io = readIo(join(TORCH_FIXTURES, 'mobile_bn_op13.io.json'));
    const c = await compareModels(loadModel(MOBILE_BN), loadModel(out), io.inputs);
    assert.ok(c.maxAbsDiff <= 1e-5, String(c.maxAbsDiff));
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  test('--external-data writes <out>.<hash>.data; the model runs as the inline one does', async () => {
    const out = join(dir, 'mobile.ext.onnx');
    const r = edgefit('optimize', MOBILE_BN, out, '--external-data', '--threshold', '0', '--json', '--quiet');
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.match(j.dataFile, new RegExp(`^${out.replace(/[.\\]/g, '\\$&')}\\.[0-9a-f]{8}\\.data$`));
    assert.equal(j.bytesAfter, statSync(out).size + statSync(j.dataFile).size);
    assert.ok(statSync(out).size < 0.2 * j.bytesAfter, `${statSync(out).size} of ${j.bytesAfter}`);
    const io = readIo(join(TORCH_FIXTURES, 'mobile_bn_op13.io.json'));
    const c = await compareModels(loadModel(MOBILE_BN), loadModel(out), io.inputs);
    assert.ok(c.maxAbsDiff <= 1e-5, String(c.maxAbsDiff));
  });

  test('--passes runs only those; an unknown pass is a usage error (exit 2)', () => {
    const out = join(dir, 'bn-only.onnx');
    const r = edgefit('optimize', MOBILE_BN, out, '--passes', 'fold-batchnorm', '--json', '--quiet');
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.deepEqual(
      j.passes.map((p: { name: string }) => p.name),
      ['fold-batchnorm'],
    );
    assert.equal(j.opCountsAfter.Constant, 15);
    assert.equal(j.nodesAfter, 56);
    const bad = edgefit('optimize', MOBILE_BN, join(dir, 'x.onnx'), '--passes', 'dead-code,frobnicate');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Unknown pass "frobnicate": passes are constant-to-initializer, /);
    assert.equal(bad.stdout, '');
  });

  test('outputs further apart than --tolerance: quality gate error (exit 4), nothing written', () => {
    const out = join(dir, 'gate.onnx');
    const r = edgefit('optimize', MOBILE_BN, out, '--tolerance', '0', '--passes', 'fold-batchnorm');
    assert.equal(r.code, 4, r.stderr);
    assert.match(
      r.stderr,
      /differs from the input model's by [0-9.e-]+ on random inputs: above the tolerance 0/,
    );
    assert.ok(!existsSync(out));
  });

  test('Silero VAD v5 (If subgraphs) with --shapes and --values: If nodes kept, outputs equal', () => {
    const vad = join(REPO_ROOT, 'node_modules', '@ricky0123', 'vad-web', 'dist', 'silero_vad_v5.onnx');
    const out = join(dir, 'vad.onnx');
    const r = edgefit(
      'optimize',
      vad,
      out,
      '--shapes',
      'input=1x512,state=2x1x128',
      '--values',
      'sr=16000',
      '--json',
      '--quiet',
    );
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.opCountsAfter.If, j.opCountsBefore.If);
    assert.equal(j.nodesBefore, 689);
    assert.ok(j.nodesAfter < 300, String(j.nodesAfter));
    assert.ok(j.maxAbsDiff <= 1e-5);
    assert.ok(j.bytesAfter <= j.bytesBefore * 1.01, `${j.bytesBefore} → ${j.bytesAfter}`);
    // without the sample rate, random inputs take a branch that cannot run: a clear input error
    const bad = edgefit('optimize', vad, join(dir, 'vad2.onnx'));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Cannot check the optimized model: .*--shapes.*--skip-check/);
    // ORT's failure reaches the user once, in edgefit's words: no ORT log lines on stderr
    assert.doesNotMatch(bad.stderr, /onnxruntime:|sequential_executor/);
    assert.deepEqual(
      bad.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('optimize: ')),
      [bad.stderr.trim().split('\n').pop()],
      bad.stderr,
    );
    const skipped = edgefit('optimize', vad, join(dir, 'vad3.onnx'), '--skip-check', '--json', '--quiet');
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.equal(skipped.json().maxAbsDiff, null);
  });

  test('text output: a pass table and the op counts that changed', () => {
    const r = edgefit(
      'optimize',
      join(TORCH_FIXTURES, 'encoder_op17.onnx'),
      join(dir, 'enc.onnx'),
      '--quiet',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /227 → 71 nodes/);
    assert.match(r.stdout, /constant-folding\s+yes/);
    assert.match(r.stdout, /Shape\s+14\s+0/);
  });
});
