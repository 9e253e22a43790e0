import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, Tensor } from '../../ir/index.js';
import { checkPass, count, externalModel, feed, hand, rand } from '../../testing/passes.js';
import { eliminateIdentity } from './identity.js';

describe('eliminate-identity', () => {
  test('Identity chains vanish; an Identity that is a graph output hands its name to its input', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 3]);
    const a = h.e.identity(h.e.identity(h.e.op('Relu', [x])));
    const w = h.e.identity(h.init('w', rand([3], 1)));
    const y = h.e.identity(h.e.add(a, w));
    h.output(y, 'y');
    const r = await checkPass(eliminateIdentity, h.m, { x: feed([2, 3], 1) });
    assert.equal(count(r.result.model, 'Identity'), 0);
    assert.deepEqual(r.result.counts, { identity: 4 });
    const out = r.result.model.graph.outputs[0]!;
    assert.equal(out.name, 'y');
    assert.equal(out.producer!.opType, 'Add');
  });

  test('an Identity from a graph input (or from another graph output) to a graph output stays, with a note', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 3]);
    const r0 = h.e.op('Relu', [x]);
    h.output(h.e.identity(x), 'copy');
    h.output(r0, 'r');
    h.output(h.e.identity(r0), 'r2');
    const r = await checkPass(eliminateIdentity, h.m, { x: feed([2, 3], 1) });
    assert.equal(r.result.changed, false);
    assert.equal(count(r.result.model, 'Identity'), 2);
    assert.match(
      r.result.notes[0]!,
      /Kept Identity .*its output "copy" is a graph output .* \(it is a graph input\)/,
    );
    assert.match(r.result.notes[1]!, /Kept Identity .*"r2" .* \(it is a graph output too\)/);
  });

  test('Dropout in inference is removed; with a read mask or training_mode true it stays', async () => {
    const h = hand(13);
    const x = h.input('x', [2, 3]);
    const d1 = h.e
      .node('Dropout', [x, h.init('ratio', Tensor.scalar('float32', 0.3))], {}, { outputs: 1 })
      .output(0);
    const d2 = h.e.node(
      'Dropout',
      [h.e.op('Relu', [d1]), null, h.init('off', Tensor.from('bool', [], [0]))],
      {},
      { outputs: 2 },
    );
    const masked = h.e.node('Dropout', [d2.output(0)], {}, { outputs: 2, name: 'masked' });
    const training = h.e.node(
      'Dropout',
      [
        masked.output(0),
        h.init('r0', Tensor.scalar('float32', 0)),
        h.init('on', Tensor.from('bool', [], [1])),
      ],
      {},
      { name: 'training' },
    );
    h.output(training.output(0), 'y');
    h.output(h.e.cast(masked.output(1), 'float32'), 'mask');
    const r = await checkPass(eliminateIdentity, h.m, { x: feed([2, 3], 1) });
    assert.deepEqual(r.result.counts, { dropout: 2 });
    assert.equal(count(r.result.model, 'Dropout'), 2);
    assert.ok(
      r.result.notes.includes('Kept Dropout "masked": its mask output "masked:1" is read'),
      r.result.notes.join('\n'),
    );
    assert.ok(r.result.notes.includes('Kept Dropout "training": its training_mode input is true'));
  });

  test('If subgraphs: an Identity passing an outer value out of a branch stays, one inside a branch goes', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 3]);
    const c = h.input('c', [], 'bool');
    const outer = h.e.op('Relu', [x]);
    const then = new Graph('then', h.g);
    const t1 = then.addNode({ opType: 'Identity', inputs: [outer], outputs: ['then_out'] });
    then.outputs.push(t1.output(0));
    const els = new Graph('else', h.g);
    const e1 = els.addNode({ opType: 'Neg', inputs: [outer], outputs: ['neg'] });
    const e2 = els.addNode({ opType: 'Identity', inputs: [e1.output(0)], outputs: ['neg_id'] });
    const e3 = els.addNode({ opType: 'Abs', inputs: [e2.output(0)], outputs: ['else_out'] });
    els.outputs.push(e3.output(0));
    const iff = h.g.addNode({
      opType: 'If',
      inputs: [c],
      outputs: ['z'],
      attrs: { then_branch: { type: 'graph', value: then }, else_branch: { type: 'graph', value: els } },
    });
    h.output(h.e.identity(iff.output(0)), 'y');
    for (const cond of [0, 1]) {
      const r = await checkPass(eliminateIdentity, h.m, {
        x: feed([2, 3], 1),
        c: { dtype: 'bool', dims: [], data: Uint8Array.from([cond]) },
      });
      assert.deepEqual(r.result.counts, { identity: 2 });
      assert.equal(count(r.result.model, 'Identity'), 1); // the then-branch one
      assert.equal(r.result.model.graph.outputs[0]!.producer!.opType, 'If');
    }
  });

  test('external: the torch encoder loses its 4 Identity nodes; Silero VAD v5 keeps its If subgraphs intact', async () => {
    const enc = externalModel('encoder_op17');
    const r = await checkPass(eliminateIdentity, enc.model, enc.feeds);
    assert.equal(count(enc.model, 'Identity'), 4);
    assert.equal(count(r.result.model, 'Identity'), 0);
    const vad = externalModel('silero_vad_v5');
    const v = await checkPass(eliminateIdentity, vad.model, vad.feeds);
    assert.equal(count(v.result.model, 'If'), count(vad.model, 'If'));
    assert.equal(count(vad.model, 'Identity') - count(v.result.model, 'Identity'), v.result.counts.identity);
    assert.ok(v.result.counts.identity! > 0);
  });
});
