// The public API as a user meets it: the README's library example, run by plain Node (no tsx) against the package's
// `exports` (compiled JavaScript in dist/, built by `npm ci` / `npm test`), prints the figures it promises.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from './testing/fixtures.js';
import { ensureBuilt } from './testing/cli.js';

test('package.json exports a typed entry that plain Node imports', () => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
  assert.equal(pkg.exports['.'].default, './dist/src/index.js');
  assert.equal(pkg.exports['.'].types, './dist/src/index.d.ts');
  assert.match(pkg.scripts.prepare, /tsc/);
  ensureBuilt();
  assert.ok(existsSync(join(REPO_ROOT, 'dist', 'src', 'index.d.ts')));
  const d = readFileSync(join(REPO_ROOT, 'dist', 'src', 'index.d.ts'), 'utf8');
  for (const name of [
    'loadModel',
    'saveModel',
    'optimize',
    'quantize',
    'train',
    'evaluate',
    'openData',
    'inspect',
    'prune',
    'planPruning',
  ])
    assert.match(d, new RegExp(`\\b${name}\\b`), name);
});

test("the README's library example runs in plain Node and prints its figures", () => {
  ensureBuilt();
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Library'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code && code.includes("from 'edgefit'"), 'README ## Library has a js example importing edgefit');
  // the script sits inside the package (so `import 'edgefit'` resolves to it); it writes files in its cwd
  const scripts = join(REPO_ROOT, '.tmp');
  mkdirSync(scripts, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'edgefit-readme-'));
  const file = join(scripts, `readme-example-${process.pid}.mjs`);
  writeFileSync(file, code);
  try {
    const r = spawnSync(process.execPath, [file], { cwd: work, encoding: 'utf8', env: { ...process.env } });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const m1 = /^(\d+) parameters, test accuracy ([0-9.]+)$/.exec(lines[0] ?? '');
    assert.ok(m1, r.stdout);
    assert.equal(Number(m1[1]), 269_322, 'SPEC mlp parameters');
    assert.ok(Number(m1[2]) > 0.7, `test accuracy ${m1[2]}`);
    const m2 = /^(\d+) integer kernels, accuracy ([0-9.]+) → ([0-9.]+)$/.exec(lines[1] ?? '');
    assert.ok(m2, r.stdout);
    assert.ok(Number(m2[1]) >= 2, `integer kernels ${m2[1]}`);
    assert.ok(Math.abs(Number(m2[2]) - Number(m2[3])) < 0.03, `accuracy ${m2[2]} → ${m2[3]}`);
    const m3 = /^int8 accuracy on 500 test items ([0-9.]+)$/.exec(lines[2] ?? '');
    assert.ok(m3 && Number(m3[1]) > 0.6, r.stdout);
    assert.ok(statSync(join(work, 'mlp.int8.onnx')).size < 0.3 * statSync(join(work, 'mlp.onnx')).size);
  } finally {
    rmSync(file, { force: true });
    rmSync(work, { recursive: true, force: true });
  }
});
