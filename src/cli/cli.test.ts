import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TORCH_FIXTURES, readIo, bitEqual } from '../testing/fixtures.js';
import { loadModel } from '../onnx/index.js';
import { runModel } from '../runtime/index.js';
import { edgefit } from '../testing/cli.js';

const CNN = join(TORCH_FIXTURES, 'cnn-s_op13.onnx');

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-cli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('edgefit CLI', () => {
  test('usage and --help for every command', () => {
    const u = edgefit('--help');
    assert.equal(u.code, 0);
    for (const c of ['inspect', 'convert', 'eval', 'build', 'optimize', 'train', 'quantize', 'compare']) {
      assert.match(u.stdout, new RegExp(`\\b${c}\\b`));
      const h = edgefit(c, '--help');
      assert.equal(h.code, 0, `${c} --help`);
      assert.match(h.stdout, /--json/);
      // every option line: the flag, at least two spaces, its description
      for (const line of h.stdout.split('\n').filter((l) => l.startsWith('  --')))
        assert.match(line, /^ {2}--[\w-]+( <[^>]+>)? {2,}\S/, `${c} --help: "${line}"`);
    }
    assert.equal(edgefit().code, 2);
    assert.equal(edgefit('frobnicate').code, 2);
  });

  test('inspect the torch-exported cnn-s: 421,642 parameters, MACs, shapes; params = sum of initializer sizes', () => {
    const r = edgefit('inspect', CNN, '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = r.json() as {
      params: number;
      bytes: number;
      macs: number;
      peakActivationBytes: number;
      inputs: { name: string; shape: unknown[] }[];
      outputs: unknown[];
      opCounts: Record<string, number>;
    };
    assert.equal(j.params, 421_642);
    const m = loadModel(CNN);
    let sum = 0;
    for (const v of m.graph.initializers.values()) sum += v.const!.numel;
    assert.equal(j.params, sum);
    assert.equal(j.bytes, 421_642 * 4);
    assert.equal(j.macs, 4_241_152);
    assert.ok(j.peakActivationBytes > 28 * 28 * 32 * 4, `peak ${j.peakActivationBytes}`);
    assert.deepEqual(j.opCounts, { Conv: 2, Relu: 3, MaxPool: 2, Flatten: 1, Gemm: 2 });
    assert.equal(j.inputs[0]!.name, 'input');
    assert.equal(j.outputs.length, 1);
    const t = edgefit('inspect', CNN);
    assert.equal(t.code, 0);
    assert.match(t.stdout, /421,642|421\.6 ?k|0\.42 ?M/);
  });

  test('convert --external-data gives ORT outputs identical to the input', async () => {
    const out = join(dir, 'cnn.ext.onnx');
    const r = edgefit('convert', CNN, out, '--external-data', '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = r.json() as { dataBytes: number; modelBytes: number; dataFile: string };
    assert.ok(j.dataBytes >= 421_642 * 4);
    assert.ok(j.dataFile.startsWith(`${out}.`) && existsSync(j.dataFile));
    const io = readIo(join(TORCH_FIXTURES, 'cnn-s_op13.io.json'));
    const a = await runModel(CNN, io.inputs, { threads: 1 });
    const b = await runModel(out, io.inputs, { threads: 1 });
    assert.ok(bitEqual(a.logits!.data, b.logits!.data));
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  test('build + eval: an untrained cnn-s over the 10,000 Fashion-MNIST test images is near chance', () => {
    const out = join(dir, 'cnn-s.onnx');
    const b = edgefit('build', 'cnn-s', out, '--seed', '1', '--json');
    assert.equal(b.code, 0, b.stderr);
    assert.equal((b.json() as { params: number }).params, 422_026); // 421,834 trainable + 192 BN running stats
    const r = edgefit('eval', out, '--data', 'fashion-mnist', '--json', '--quiet');
    assert.equal(r.code, 0, r.stderr);
    const j = r.json() as {
      accuracy: number;
      n: number;
      perClass: { class: number; precision: number; recall: number }[];
      dropped: unknown[];
    };
    assert.equal(j.n, 10_000);
    assert.ok(j.accuracy > 0.02 && j.accuracy < 0.25, `accuracy ${j.accuracy}`);
    assert.equal(j.perClass.length, 10);
    assert.equal(j.dropped.length, 2);
    for (const c of j.perClass)
      assert.ok(c.recall >= 0 && c.recall <= 1 && c.precision >= 0 && c.precision <= 1);
  });

  test('bad input: typed message and exit code 2, no stack, nothing written', () => {
    const missing = edgefit('inspect', join(dir, 'nope.onnx'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.onnx does not exist/);
    assert.doesNotMatch(missing.stderr, /\n\s+at /);
    const garbage = join(dir, 'garbage.onnx');
    writeFileSync(garbage, 'definitely not protobuf \x00\xff\xff\xff');
    const g = edgefit('convert', garbage, join(dir, 'out.onnx'));
    assert.equal(g.code, 2);
    assert.match(g.stderr, /garbage\.onnx/);
    assert.ok(!existsSync(join(dir, 'out.onnx')));
    assert.equal(edgefit('eval', CNN, '--data', 'cifar-100').code, 2);
    assert.equal(edgefit('eval', CNN, '--data', 'mnist', '--limit', 'lots').code, 2);
    assert.equal(edgefit('eval', CNN, '--bogus-flag').code, 2);
    assert.equal(edgefit('build', 'resnet-9000', join(dir, 'x.onnx')).code, 2);
  });
});
