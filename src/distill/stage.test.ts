// The distill stage on the contract: the input model is the teacher unless the context has one; the student is
// chosen for the context's device profile; the result is a new, smaller model; accuracies come from the evaluation
// data; the accuracy gate is checked; without training data runStage names the missing need.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromDataset, loadDataset, subset } from '../data/index.js';
import { buildModel } from '../models/index.js';
import { createContext, runStage } from '../stage/context.js';
import { distillStage, profileOfStage } from './stage.js';

describe('distill stage', () => {
  it('distils the input model into a student sized for the device; figures, notes and gates', async () => {
    const teacher = buildModel('cnn-s', { seed: 1 });
    const train = subset(loadDataset('fashion-mnist', 'train'), 320, 2);
    const test = subset(loadDataset('fashion-mnist', 'test'), 200, 2);
    const ctx = createContext({
      data: { train: fromDataset(train, { model: teacher }), eval: fromDataset(test, { model: teacher }) },
      device: {
        ramBytes: 512 * 1024,
        storageBytes: 32 * 1024,
        latencyBudgetMs: 1,
        traits: ['no-matrix-units'],
      },
      gates: { minAccuracy: 0 },
      threads: 1,
      valRows: 64,
    });
    const r = await runStage(distillStage({ epochs: 1, cacheDir: false }), teacher, ctx);
    assert.equal(r.report.stage, 'distill');
    const f = r.report.figures;
    assert.ok(f.studentParams! < f.teacherParams!);
    assert.equal(typeof f.studentAccuracy, 'number');
    assert.equal(typeof f.teacherAccuracy, 'number');
    assert.ok(f.bytesAfter! <= 32 * 1024 + 8192, 'weights fit the storage budget (plus graph overhead)');
    assert.ok(r.report.notes.some((n) => n.rule === 'device-profile' && n.text.includes('no-matrix-units')));
    assert.ok(r.report.gates.length === 1 && r.report.gates[0]!.passed);
    assert.notEqual(r.model, teacher);
    assert.equal(
      teacher.graph.initializers.get('c1.weight')!.const!.dims[0],
      32,
      'the input is not modified',
    );
  });

  it('needs training rows and a device (when no student is given); the contract profile converts', async () => {
    await assert.rejects(() => runStage(distillStage(), buildModel('mlp'), createContext()), /train/);
    const p = profileOfStage({ ramBytes: 1e6, threads: 2, traits: ['no-depthwise'] });
    assert.equal(p.ramBytes, 1e6);
    assert.equal(p.storageBytes, 64 * 2 ** 20);
    assert.deepEqual(p.traits, ['no-depthwise']);
  });
});
