import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadModel, opsetProblems } from '../../onnx/index.js';
import { compareModels, randomInputs } from '../../passes/index.js';
import { edgefit } from '../../testing/cli.js';
import { REPO_ROOT } from '../../testing/fixtures.js';

const OLD = join(REPO_ROOT, 'test', 'fixtures', 'oldopset');
const dir = mkdtempSync(join(tmpdir(), 'edgefit-convert-'));
after(() => rmSync(dir, { recursive: true, force: true }));

for (const [name, to] of [
  ['rec_op10', 13],
  ['cls_op9', 17],
  ['cls_op9', 21],
  ['rec_op10', 26],
] as const)
  test(`convert ${name} --opset ${to}: same ORT outputs, valid at the new opset, rewrites in --json`, async () => {
    const src = join(OLD, `${name}.onnx`);
    const out = join(dir, `${name}_${to}.onnx`);
    const r = edgefit('convert', src, out, '--opset', String(to), '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.opset.to, to);
    assert.ok(j.opset.from <= 10);
    assert.ok(Object.keys(j.opset.rewrites).length > 0, JSON.stringify(j.opset));
    const a = loadModel(src);
    const b = loadModel(out);
    assert.equal(b.opset(''), to);
    assert.deepEqual(opsetProblems(b), []);
    const c = await compareModels(a, b, randomInputs(a, { seed: 4, batch: 2 }));
    assert.ok(c.maxAbsDiff < 1e-5, `max |diff| ${c.maxAbsDiff}`);
  });

test('convert --opset below the model, or past the newest, exits 3 and writes nothing', () => {
  const src = join(OLD, 'rec_op10.onnx');
  for (const to of ['9', '27', '40']) {
    const out = join(dir, `bad_${to}.onnx`);
    const r = edgefit('convert', src, out, '--opset', to);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /opset/);
    assert.equal(existsSync(out), false);
  }
});
