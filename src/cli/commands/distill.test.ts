// `edgefit distill` as a user runs it (the distill stage through distillModel): a student spec or a device profile,
// --json with the documented fields, the scratch baseline, QAT + KD writing an INT8 QDQ model, a second run served
// from the teacher-logit cache, unlabeled rows, bad flags exit 2.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadDataset, subset } from '../../data/index.js';
import { writeNpy } from '../../data/npy.js';
import { buildModel } from '../../models/index.js';
import { loadModel, saveModel } from '../../onnx/index.js';
import { edgefit } from '../../testing/cli.js';

describe('edgefit distill', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-distill-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const teacher = join(dir, 'cnn-s.onnx');
  saveModel(buildModel('cnn-s', { seed: 1 }), teacher);
  const cache = join(dir, 'cache');
  const small = [
    '--limit',
    '256',
    '--test-limit',
    '200',
    '--epochs',
    '1',
    '--threads',
    '1',
    '--cache-dir',
    cache,
  ];

  it('--student … --baseline-scratch --qat: --json has the accuracies, params and the INT8 model', () => {
    const out = join(dir, 's.onnx');
    const r = edgefit(
      'distill',
      '--teacher',
      teacher,
      '--data',
      'fashion-mnist',
      '--student',
      'dsconv:width=8,depth=2',
      '--out',
      out,
      '--baseline-scratch',
      '--qat',
      '--json',
      '--quiet',
      ...small,
    );
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    for (const k of [
      'teacherAccuracy',
      'studentAccuracy',
      'studentParams',
      'teacherParams',
      'scratchAccuracy',
    ])
      assert.equal(typeof j[k], 'number', k);
    assert.equal(j.teacherParams, 421834);
    assert.equal(j.student, 'dsconv:width=8,depth=2');
    assert.equal(j.teacherLogits.mode, 'computed');
    assert.ok(existsSync(out) && existsSync(j.qat.output));
    const q = loadModel(j.qat.output);
    assert.ok(
      q.graph.nodes.some((n) => n.opType === 'QuantizeLinear'),
      'QDQ form',
    );
    assert.equal(typeof j.qat.accuracy, 'number');
    // the same teacher and rows again: logits come from the cache
    const again = edgefit(
      'distill',
      '--teacher',
      teacher,
      '--data',
      'fashion-mnist',
      '--student',
      'mlp:width=16,depth=1',
      '--out',
      join(dir, 'm.onnx'),
      '--json',
      '--quiet',
      ...small,
    );
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.json().teacherLogits.mode, 'cached');
  });

  it('--device chooses the student within the budget and says why', () => {
    const prof = join(dir, 'mcu.yaml');
    writeFileSync(
      prof,
      'name: mcu\nram: 256KB\nstorage: 32KB\nthreads: 1\nlatency_ms: 1\ntraits: [no-matrix-units]\n',
    );
    const r = edgefit(
      'distill',
      '--teacher',
      teacher,
      '--data',
      'fashion-mnist',
      '--device',
      prof,
      '--max-params-ratio',
      '0.01',
      '--out',
      join(dir, 'd.onnx'),
      '--json',
      '--quiet',
      ...small,
    );
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.ok(j.studentParams <= 0.01 * j.teacherParams);
    assert.ok(j.device.candidate.weightBytes <= 32 * 1024);
    assert.ok(j.device.reasons.some((x: string) => x.includes('no-matrix-units')));
  });

  it('--unlabeled on a .npy without labels: the stage reads the rows whole and the teacher alone teaches', () => {
    const x = join(dir, 'x.npy');
    const ds = subset(loadDataset('fashion-mnist', 'train'), 128, 5);
    writeNpy(x, { dtype: 'float32', shape: [ds.n, ...ds.inputShape], data: ds.x });
    const args = ['--teacher', teacher, '--data', x, '--student', 'mlp:width=8,depth=1'];
    const out = join(dir, 'u.onnx');
    const r = edgefit('distill', ...args, '--unlabeled', '--out', out, '--json', '--quiet', ...small);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /teacher logits|epoch/, '--quiet: no progress lines');
    const j = r.json();
    assert.equal(j.alpha, 0);
    assert.equal(j.steps, 2, 'all 128 rows trained on (no validation part held out): 2 batches of 64');
    assert.equal(j.teacherAccuracy, null, 'no labelled evaluation data');
    assert.ok(existsSync(out));
    // without --unlabeled the same rows are refused, naming the file
    const refused = edgefit('distill', ...args, '--out', join(dir, 'v.onnx'), ...small);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--unlabeled/);
    assert.match(refused.stderr, /x\.npy/);
    assert.ok(!existsSync(join(dir, 'v.onnx')));
  });

  it('bad input exits 2 naming the flag, and writes nothing', () => {
    const o = join(dir, 'x.onnx');
    const cases: [string[], RegExp][] = [
      [[], /--student/],
      [['--student', 'resnet'], /family/],
      [['--student', 'mlp', '--alpha', '2'], /--alpha/],
      [['--student', 'mlp', '--prune', '0.5'], /exactly one/],
      [['--student', 'mlp', '--feature', 'pool2'], /--feature/],
      [['--student', 'mlp', '--augment', 'rotate'], /--augment/],
    ];
    for (const [args, re] of cases) {
      const r = edgefit('distill', '--teacher', teacher, '--data', 'fashion-mnist', '--out', o, ...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, re);
    }
    const r = edgefit(
      'distill',
      '--teacher',
      join(dir, 'none.onnx'),
      '--data',
      'fashion-mnist',
      '--student',
      'mlp',
      '--out',
      o,
    );
    assert.equal(r.code, 2);
    assert.ok(!existsSync(o));
  });
});
