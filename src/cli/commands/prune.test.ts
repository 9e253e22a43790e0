// `edgefit prune` as a user runs it: --plan lists the groups, --ratio writes a smaller model that ORT runs with the
// same output shape, a bytes target drives the iterative schedule, --json has the documented fields, bad flags exit 2.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildModel } from '../../models/index.js';
import { saveModel } from '../../onnx/index.js';
import { runModel } from '../../runtime/index.js';
import { edgefit } from '../../testing/cli.js';

describe('edgefit prune', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-prune-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const input = join(dir, 'cnn-s.onnx');
  saveModel(buildModel('cnn-s', { seed: 1 }), input);

  it('--plan prints the groups and why the output group is not prunable', () => {
    const r = edgefit('prune', input, '--plan', '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.prunableGroups, 3);
    assert.match(JSON.stringify(j.groups), /reaches the graph output/);
  });

  it('--ratio 0.5 writes a dense smaller model with the same output shape; --json has the history', async () => {
    const out = join(dir, 'half.onnx');
    const r = edgefit('prune', input, out, '--ratio', '0.5', '--json', '--quiet');
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    for (const k of ['paramsBefore', 'paramsAfter', 'steps', 'macsBefore', 'macsAfter']) assert.ok(k in j, k);
    assert.ok(j.paramsAfter < 0.3 * j.paramsBefore, `${j.paramsAfter} of ${j.paramsBefore}`);
    assert.equal(j.steps.length, 2);
    const y = await runModel(out, {
      input: { dtype: 'float32', dims: [3, 1, 28, 28], data: new Float32Array(3 * 784) },
    });
    assert.deepEqual(y.logits!.dims, [3, 10]);
  });

  it('--target-bytes prunes step by step until the target', () => {
    const r = edgefit('prune', input, join(dir, 't.onnx'), '--target-bytes', '600000', '--json', '--quiet');
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.stoppedBecause, 'target');
    assert.ok(j.bytesAfter <= 600000 && j.steps.length > 2);
  });

  it('--heads 0.5 --depth 1 on vit-t: half the heads and one residual block go', async () => {
    const vit = join(dir, 'vit-t.onnx');
    saveModel(buildModel('vit-t', { seed: 2 }), vit);
    const out = join(dir, 'vit-small.onnx');
    const r = edgefit(
      'prune',
      vit,
      out,
      '--heads',
      '0.5',
      '--depth',
      '1',
      '--ratio',
      '0',
      '--json',
      '--quiet',
    );
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.deepEqual(
      j.heads.blocks.map((b: { kept: number[] }) => b.kept.length),
      [2, 2],
    );
    assert.equal(j.depth.dropped.length, 1);
    assert.ok(j.paramsAfter < j.paramsBefore);
    const y = await runModel(out, {
      input: { dtype: 'float32', dims: [2, 1, 28, 28], data: new Float32Array(2 * 784) },
    });
    assert.deepEqual(y.logits!.dims, [2, 10]);
  });

  it('bad input: exit 2 naming the flag; --finetune-steps without --data', () => {
    let r = edgefit('prune', input, join(dir, 'x.onnx'), '--ratio', '1.5');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--ratio/);
    r = edgefit('prune', input, join(dir, 'x.onnx'), '--finetune-steps', '5');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /need --data/);
    r = edgefit('prune', input, join(dir, 'x.onnx'), '--distill', '--data', 'mnist', '--train-limit', '64');
    assert.equal(r.code, 2, 'distillation without fine-tuning steps');
    assert.match(r.stderr, /needs fine-tuning steps/);
    r = edgefit('prune', input, join(dir, 'x.onnx'), '--optimizer', 'adam');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--optimizer/);
  });
});
