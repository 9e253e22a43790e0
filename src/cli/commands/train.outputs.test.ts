// train checks every file it will write before the first step (issue: a read-only --out wasted the whole run).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../main.js';

async function run(...args: string[]) {
  let stdout = '';
  let stderr = '';
  const t0 = Date.now();
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr, ms: Date.now() - t0 };
}

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
