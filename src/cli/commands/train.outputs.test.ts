// train checks every file it will write before the first step (issue: a read-only --out wasted the whole run).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNpy } from '../../data/index.js';
import { edgefitInProcess as run } from '../../testing/cli.js';

let dir = '';
before(() => (dir = mkdtempSync(join(tmpdir(), 'edgefit-train-out-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

const base = ['--model', 'mlp', '--data', 'fashion-mnist', '--limit', '300', '--val-split', '0', '--quiet'];

test('an unwritable --out or --checkpoint is refused before the first step (exit 2, path named, nothing written)', async () => {
  const folder = join(dir, 'out.onnx');
  mkdirSync(folder);
  const file = join(dir, 'plain');
  writeFileSync(file, 'x');
  const ckpt = join(dir, 'run.ckpt');
  const cases: [string[], string, RegExp][] = [
    // the checkpoint would be written after epoch 1 if training started: its absence shows it did not
    [['--out', folder, '--checkpoint', ckpt], folder, /it is a folder/],
    [['--out', join(file, 'm.onnx'), '--checkpoint', ckpt], join(file, 'm.onnx'), /is a file, not a folder/],
    [
      ['--out', join(dir, 'ok.onnx'), '--checkpoint', join(file, 'c.ckpt')],
      join(file, 'c.ckpt'),
      /not a folder/,
    ],
    [
      ['--out', join(dir, 'same'), '--checkpoint', join(dir, '.', 'same')],
      'same',
      /--out and --checkpoint name the same file/,
    ],
    [
      ['--out', join(dir, 'ok.onnx'), '--external-data', '--align', '100', '--checkpoint', ckpt],
      '--align',
      /power of two/,
    ],
  ];
  for (const [extra, named, why] of cases) {
    const r = await run('train', ...base, '--epochs', '2', ...extra);
    assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.includes(named), `${r.stderr} names ${named}`);
    assert.match(r.stderr, why);
    assert.doesNotMatch(r.stderr, /\n\s+at |bug in edgefit/);
    assert.ok(!existsSync(ckpt), `${extra.join(' ')}: no training ran (no checkpoint)`);
  }
  assert.deepEqual(readdirSync(dir).sort(), ['out.onnx', 'plain']);
  assert.deepEqual(readdirSync(folder), []);
});

test('NaN or Inf in the training data: exit 2 naming the file, row and value before any step (not "lower the learning rate")', async () => {
  const n = 100;
  for (const [bad, shown] of [
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
  ] as const) {
    const x = new Float32Array(n * 784).map((_, i) => ((i * 7) % 255) / 255);
    x[37 * 784 + 100] = bad;
    const y = BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 10));
    const xs = join(dir, `x-${shown}.npy`);
    const ys = join(dir, 'y.npy');
    writeNpy(xs, { dtype: 'float32', shape: [n, 1, 28, 28], data: x });
    writeNpy(ys, { dtype: 'int64', shape: [n], data: y });
    const out = join(dir, 'nan.onnx');
    const r = await run(
      'train',
      '--model',
      'mlp',
      '--data',
      xs,
      '--labels',
      ys,
      '--val-split',
      '0',
      '--epochs',
      '1',
      '--batch',
      '10',
      '--out',
      out,
      '--quiet',
    );
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(xs), r.stderr);
    assert.match(r.stderr, new RegExp(`row 37 \\(0-based\\) holds ${shown} at value 100`));
    assert.doesNotMatch(r.stderr, /learning rate|\n\s+at /);
    assert.ok(!existsSync(out));
  }
});
