import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import '../ops/index.js';
import { Emitter, Graph, Model, Tensor, tensorType } from '../ir/index.js';
import { inferShapes } from '../ops/index.js';
import { runModel } from '../runtime/index.js';
import { buildGradients, stopGradient, UnsupportedGradientError } from './grad.js';
import { decodeModel, encodeModel } from '../onnx/index.js';

/** y = ReduceSum(x * w + stop(x * x)), so dy/dx = w (the x*x term is detached), dy/dw = x. */
function model(detach: boolean) {
  const g = new Graph('sg');
  const x = g.addInput('x', tensorType('float32', [3]));
  const w = g.addInitializer('w', Tensor.from('float32', [3], [2, -1, 0.5]));
  const e = new Emitter(g, { opset: 17 });
  const sq = e.mul(x, x);
  const y = e.op('ReduceSum', [e.add(e.mul(x, w), detach ? stopGradient(e, sq) : sq)], {
    keepdims: { type: 'int', value: 0 },
  });
  g.outputs.push(y);
  const m = new Model(g);
  m.opsetImports.set('', 17);
  return m;
}

describe('autodiff driver', () => {
  test('a stop-gradient node passes values forward but no gradient back, and survives a file round trip', async () => {
    const xs = Float32Array.from([1, 2, 3]);
    for (const detach of [false, true]) {
      const m = model(detach);
      const m2 = decodeModel(encodeModel(m)); // the marker is node metadata: it must survive a save
      const x2 = m2.graph.inputs[0]!;
      const w2 = m2.graph.initializers.get('w')!;
      inferShapes(m2);
      const { grads } = buildGradients(m2, m2.graph.outputs[0]!, [x2, w2]);
      m2.graph.outputs.push(grads.get(x2)!, grads.get(w2)!);
      const out = await runModel(m2, { x: { dtype: 'float32', dims: [3], data: xs } });
      const [, gx, gw] = m2.graph.outputs.map((o) => Array.from(out[o.name]!.data as Float32Array));
      assert.deepEqual(gw, [1, 2, 3]);
      assert.deepEqual(gx, detach ? [2, -1, 0.5] : [2 + 2, -1 + 4, 0.5 + 6]);
      assert.equal(Array.from(out[m2.graph.outputs[0]!.name]!.data as Float32Array)[0], 2 - 2 + 1.5 + 14);
    }
  });

  test('an op without a rule names the node; an untyped graph is refused', () => {
    const g = new Graph('u');
    const x = g.addInput('x', tensorType('float32', [2]));
    const n = g.addNode({ opType: 'Resize', inputs: [x], outputs: ['r'], name: 'upsample' });
    const m = new Model(g);
    m.opsetImports.set('', 17);
    n.output().type = tensorType('float32', [2]);
    assert.throws(() => buildGradients(m, n.output(), [x]), UnsupportedGradientError);
    const g2 = new Graph('v');
    const x2 = g2.addInput('x', tensorType('float32', [2]));
    const r = g2.addNode({ opType: 'Relu', inputs: [x2], outputs: ['r'] });
    const y = g2.addNode({ opType: 'ReduceSum', inputs: [r.output()], outputs: ['y'] });
    const m2 = new Model(g2);
    m2.opsetImports.set('', 17);
    assert.throws(() => buildGradients(m2, y.output(), [x2]), /no known (float )?type/);
  });
});
