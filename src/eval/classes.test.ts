// Class-count mismatches between a model's scores and the data's labels are InputErrors, not a silent 0 %.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePng, loadDataset, openData } from '../data/index.js';
import { InputError } from '../errors.js';
import { ModelBuilder } from '../ir/builder.js';
import { evaluate } from './evaluate.js';

function classifier(classes: number) {
  const b = new ModelBuilder({ seed: 1 });
  const x = b.input('input', 'float32', ['N', 1, 28, 28]);
  b.output(b.linear(b.flatten(x), 784, classes, { name: 'fc' }), 'logits');
  return b.build();
}

let dir = '';
before(() => (dir = mkdtempSync(join(tmpdir(), 'edgefit-classes-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a 1000-output model on 10-class data: InputError naming both counts (not 0 % and a 1000×1000 matrix)', async () => {
  const ds = loadDataset('fashion-mnist', 'test', { limit: 64 });
  await assert.rejects(evaluate(classifier(1000), ds), (e: unknown) => {
    assert.ok(e instanceof InputError, String(e));
    assert.match(e.message, /scores 1000 classes .*has 10 classes/);
    return true;
  });
  const ok = await evaluate(classifier(10), ds);
  assert.equal(ok.confusion.length, 10);
});

test('a 10-class model on a 2-class image folder: InputError asking for classes.txt; with it, eval runs', async () => {
  const root = join(dir, 'two');
  for (const c of ['cat', 'dog']) {
    mkdirSync(join(root, c), { recursive: true });
    for (let i = 0; i < 3; i++)
      writeFileSync(join(root, c, `${i}.png`), encodePng(new Uint8Array(784).fill(40 * i), 28, 28, 1));
  }
  const m = classifier(10);
  await assert.rejects(openData(root, { model: m, needLabels: 'edgefit eval' }), (e: unknown) => {
    assert.ok(e instanceof InputError, String(e));
    assert.match(
      e.message,
      /has 2 class folders \(cat, dog\) but the model scores 10 classes: put a classes\.txt/,
    );
    assert.ok(e.message.includes(root));
    return true;
  });
  // unlabelled use (calibration) does not care
  const calib = await openData(root, { model: m });
  await calib.close();
  const names = ['plane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
  writeFileSync(join(root, 'classes.txt'), `${names.join('\n')}\n`);
  const src = await openData(root, { model: m, needLabels: 'edgefit eval' });
  try {
    const r = await evaluate(m, src);
    assert.equal(r.n, 6);
    assert.equal(r.confusion.length, 10);
    assert.equal(r.perClass[3]!.support, 3, 'cat is class 3');
  } finally {
    await src.close();
  }
});
