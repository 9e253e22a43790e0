// saveModel as a user's file system sees it: a model and its external data replaced as one unit, output-path
// problems as InputErrors naming the path, nothing left behind.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import type { Model } from '../ir/index.js';
import { buildModel } from '../models/index.js';
import { encodeModel, loadModel, saveModel } from './index.js';

function same(a: Model, b: Model): boolean {
  return Buffer.compare(Buffer.from(encodeModel(a)), Buffer.from(encodeModel(b))) === 0;
}

describe('saveModel with external data', () => {
  let dir: string;
  const a = buildModel('mlp', { seed: 1 });
  const b = buildModel('mlp', { seed: 2 });
  before(() => (dir = mkdtempSync(join(tmpdir(), 'edgefit-save-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an interruption between the data and the model leaves the old pair loading as the old model', () => {
    const p = join(dir, 'm.onnx');
    const ra = saveModel(a, p, { externalData: true });
    assert.ok(ra.dataFile && existsSync(ra.dataFile));
    let midway: Model | undefined;
    assert.throws(
      () =>
        saveModel(b, p, {
          externalData: true,
          afterDataWritten: () => {
            midway = loadModel(p); // what a reader (or a restarted run) sees at this moment
            throw new Error('killed');
          },
        }),
      /killed/,
    );
    assert.ok(midway && same(midway, a), 'mid-write the file on disk is still model a with a’s data');
    assert.ok(same(loadModel(p), a), 'after the failed write: model a, intact');
    assert.deepEqual(readdirSync(dir).sort(), ['m.onnx', ra.dataFile.slice(dir.length + 1)].sort());
  });

  test('replacing the pair: the new data file is referenced, the old one removed, other files untouched', () => {
    const p = join(dir, 'r.onnx');
    const other = join(dir, 'r.onnx.notes.data');
    writeFileSync(other, 'not ours');
    const ra = saveModel(a, p, { externalData: true });
    const rb = saveModel(b, p, { externalData: true });
    assert.notEqual(ra.dataFile, rb.dataFile);
    assert.ok(!existsSync(ra.dataFile!), 'the old data file is removed after the model is replaced');
    assert.ok(existsSync(other));
    assert.ok(same(loadModel(p), b));
    // the same model again: same name (content hash), still one data file
    const rb2 = saveModel(b, p, { externalData: true });
    assert.equal(rb2.dataFile, rb.dataFile);
    assert.ok(same(loadModel(p), b));
    // back to inline: the data file goes
    saveModel(a, p);
    assert.ok(!existsSync(rb.dataFile!));
    assert.ok(same(loadModel(p), a));
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('r.')),
      ['r.onnx', 'r.onnx.notes.data'].filter((n) => n !== ''),
    );
  });

  test('an output path that is a folder: InputError naming it; neither data nor temp files left', () => {
    const d = join(dir, 'd.onnx');
    mkdirSync(d);
    for (const externalData of [false, true])
      assert.throws(
        () => saveModel(a, d, { externalData }),
        (e: unknown) => e instanceof InputError && e.message.includes(d) && /it is a folder/.test(e.message),
      );
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.includes('d.onnx')),
      ['d.onnx'],
    );
    assert.deepEqual(readdirSync(d), []);
  });

  test('alignments that are not a power of two ≥ 64 are refused with the reason', () => {
    for (const align of [3, 32, 100])
      assert.throws(
        () => saveModel(a, join(dir, 'al.onnx'), { externalData: true, align }),
        /power of two from 64 .*current value is "\d+"/,
      );
    assert.ok(!existsSync(join(dir, 'al.onnx')));
  });
});
