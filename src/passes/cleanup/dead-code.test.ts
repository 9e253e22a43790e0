import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, allGraphs } from '../../ir/index.js';
import { encodeModel } from '../../onnx/index.js';
import {
  checkPass,
  count,
  externalModel,
  externalModelNames,
  feed,
  hand,
  rand,
} from '../../testing/passes.js';
import { deadCode } from './dead-code.js';

describe('dead-code', () => {
  test('removes unused chains, initializers and their value_info; keeps outputs and outer values read by subgraphs', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 3]);
    const c = h.input('c', [], 'bool');
    const w = h.init('w', rand([3], 1));
    h.init('unused_w', rand([1000], 2));
    // a dead chain reading w, with a declared type (value_info)
    const dead = h.e.op('Sigmoid', [h.e.mul(x, w)]);
    dead.type = { kind: 'tensor', dtype: 'float32', shape: [2, 3] };
    // an outer value only read inside an If branch must stay
    const outer = h.e.op('Neg', [x]);
    const then = new Graph('then', h.g);
    then.addNode({ opType: 'Relu', inputs: [x], outputs: ['branch_dead'] });
    then.outputs.push(then.addNode({ opType: 'Abs', inputs: [outer], outputs: ['t'] }).output(0));
    const els = new Graph('else', h.g);
    els.outputs.push(els.addNode({ opType: 'Exp', inputs: [x], outputs: ['e'] }).output(0));
    const iff = h.g.addNode({
      opType: 'If',
      inputs: [c],
      outputs: ['z'],
      attrs: { then_branch: { type: 'graph', value: then }, else_branch: { type: 'graph', value: els } },
    });
    h.output(iff.output(0), 'y');
    const r = await checkPass(deadCode, h.m, {
      x: feed([2, 3], 1),
      c: { dtype: 'bool', dims: [], data: Uint8Array.from([1]) },
    });
    assert.deepEqual(r.result.counts, { 'unused-node': 3, 'unused-initializer': 2 });
    assert.deepEqual(
      r.result.model.graph.nodes.map((n) => n.opType),
      ['Neg', 'If'],
    );
    assert.equal(r.result.model.graph.initializers.size, 0);
    const bytes = Buffer.from(encodeModel(r.result.model)).toString('latin1');
    assert.ok(!bytes.includes(dead.name), 'value_info of the dead value is gone');
    assert.ok(!bytes.includes('branch_dead'));
  });

  test('a clean graph is left alone', async () => {
    const h = hand(17);
    const x = h.input('x', [2]);
    h.output(h.e.op('Relu', [x]), 'y');
    const r = await deadCode.run(h.m);
    assert.equal(r.changed, false);
    assert.equal(r.model, h.m);
  });

  test('external models: nothing that matters is removed (outputs equal, If count kept)', async () => {
    for (const name of externalModelNames()) {
      const { model, feeds } = externalModel(name);
      const r = await checkPass(deadCode, model, feeds);
      assert.equal(count(r.result.model, 'If'), count(model, 'If'), name);
      for (const g of allGraphs(r.result.model.graph))
        for (const v of g.initializers.values())
          assert.ok(v.uses.length > 0 || v.isGraphInput, `${name}: ${v.name}`);
    }
  });
});
