import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { A, Graph, Tensor } from '../../ir/index.js';
import { checkPass, count, externalModel, feed, hand } from '../../testing/passes.js';
import { constantToInitializer } from './constant-to-initializer.js';

describe('constant-to-initializer', () => {
  test('every form of Constant becomes an initializer with the same name; a Constant graph output stays', async () => {
    const h = hand(13);
    const x = h.input('x', [2, 3]);
    const k = (attrs: Parameters<typeof h.e.op>[2], name: string) =>
      h.e.node('Constant', [], attrs, { name }).output(0);
    const t = k({ value: A.tensor(Tensor.from('float32', [3], [1, 2, 3])) }, 'ct');
    const f = k({ value_float: A.float(0.5) }, 'cf');
    const fs = k({ value_floats: A.floats([1, -1, 2]) }, 'cfs');
    const shape = k({ value_ints: A.ints([3, 2]) }, 'cis');
    const y = h.e.reshape(h.e.mul(h.e.add(h.e.mul(x, t), f), fs), shape);
    h.output(y, 'y');
    h.output(k({ value_int: A.int(7) }, 'out'), 'seven');
    const names = [t, f, fs, shape].map((v) => v.name);
    const r = await checkPass(constantToInitializer, h.m, { x: feed([2, 3], 1) });
    assert.deepEqual(r.result.counts, { 'constant-to-initializer': 4 });
    assert.equal(count(r.result.model, 'Constant'), 1);
    for (const n of names) assert.ok(r.result.model.graph.initializers.has(n), n);
  });

  test('Constants inside an If branch become initializers of the branch', async () => {
    const h = hand(13);
    const x = h.input('x', [2]);
    const c = h.input('c', [], 'bool');
    const mk = (name: string, v: number) => {
      const g = new Graph(name, h.g);
      const k = g.addNode({
        opType: 'Constant',
        outputs: [`${name}_k`],
        attrs: { value: A.tensor(Tensor.from('float32', [2], [v, v])) },
      });
      g.outputs.push(
        g.addNode({ opType: 'Mul', inputs: [x, k.output(0)], outputs: [`${name}_out`] }).output(0),
      );
      return g;
    };
    const iff = h.g.addNode({
      opType: 'If',
      inputs: [c],
      outputs: ['y'],
      attrs: {
        then_branch: { type: 'graph', value: mk('then', 2) },
        else_branch: { type: 'graph', value: mk('else', -3) },
      },
    });
    h.output(iff.output(0));
    for (const cond of [0, 1]) {
      const r = await checkPass(constantToInitializer, h.m, {
        x: feed([2], 1),
        c: { dtype: 'bool', dims: [], data: Uint8Array.from([cond]) },
      });
      assert.equal(count(r.result.model, 'Constant'), 0);
      const branches = r.result.model.graph.nodes[0]!.subgraphs();
      assert.deepEqual(
        branches.map((g) => [...g.initializers.keys()]),
        [['then_k'], ['else_k']],
      );
    }
  });

  test('external: encoder (66 Constants) and Silero VAD v5 (341, many inside If branches)', async () => {
    for (const [name, n] of [
      ['encoder_op17', 66],
      ['silero_vad_v5', 341],
      ['openwakeword/hello_deepa.onnx', 4],
    ] as const) {
      const { model, feeds } = externalModel(name);
      assert.equal(count(model, 'Constant'), n);
      const r = await checkPass(constantToInitializer, model, feeds);
      assert.equal(count(r.result.model, 'Constant'), 0, name);
      assert.equal(r.result.counts['constant-to-initializer'], n);
      assert.equal(count(r.result.model, 'If'), count(model, 'If'));
    }
  });
});
