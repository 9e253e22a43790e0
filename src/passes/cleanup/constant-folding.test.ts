import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { A, Graph, Tensor } from '../../ir/index.js';
import { encodeModel } from '../../onnx/index.js';
import { checkPass, count, externalModel, feed, hand, ints, rand } from '../../testing/passes.js';
import { constantFolding } from './constant-folding.js';

const ortNotes = (notes: string[]) => notes.filter((n) => /evaluated by ONNX Runtime/.test(n));

describe('constant-folding', () => {
  test('a constant subgraph is evaluated by ONNX Runtime in one run and becomes one initializer', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 3]);
    const a = h.init('a', rand([3], 1));
    const b = h.e.node('Constant', [], { value: A.tensor(rand([3], 2)) }).output(0);
    const k = h.e.op('Sqrt', [
      h.e.op('Abs', [h.e.mul(h.e.add(a, b), h.init('s', Tensor.scalar('float32', 3)))]),
    ]);
    const t = h.e.op('Tile', [
      h.e.op('Unsqueeze', [k, h.init('ax', ints([0]))]),
      h.init('reps', ints([2, 1])),
    ]);
    h.output(h.e.mul(x, t), 'y');
    const r = await checkPass(constantFolding, h.m, { x: feed([2, 3], 1) });
    assert.deepEqual(
      r.result.model.graph.nodes.map((n) => n.opType),
      ['Mul'],
    );
    assert.deepEqual(r.result.counts, { 'ort-fold': 1 });
    assert.equal(ortNotes(r.result.notes).length, 1);
    assert.equal(r.result.model.graph.initializers.size, 1);
    assert.deepEqual([...r.result.model.graph.initializers.values()][0]!.const!.dims, [2, 3]);
  });

  test('non-deterministic ops (RandomUniformLike) and DequantizeLinear are not folded', async () => {
    const h = hand(17);
    const x = h.input('x', [2, 3]);
    const rnd = h.e.op('RandomUniformLike', [h.init('like', rand([2, 3], 1))], { seed: A.float(1) });
    const zero = h.e.mul(rnd, h.init('zero', Tensor.scalar('float32', 0)));
    const w = h.e.op('DequantizeLinear', [
      h.init('wq', Tensor.from('int8', [3, 3], [1, -2, 3, 4, 5, -6, 7, 8, 9])),
      h.init('sc', Tensor.scalar('float32', 0.1)),
    ]);
    h.output(h.e.add(h.e.op('MatMul', [x, w]), zero), 'y');
    const r = await checkPass(constantFolding, h.m, { x: feed([2, 3], 1) });
    assert.equal(r.result.changed, false);
    assert.equal(count(r.result.model, 'RandomUniformLike'), 1);
    assert.equal(count(r.result.model, 'DequantizeLinear'), 1);
  });

  test('size limits: maxElements, and outputs that would grow the model (ConstantOfShape)', async () => {
    const mk = () => {
      const h = hand(17);
      const x = h.input('x', [64, 64]);
      const big = h.e.op('ConstantOfShape', [h.init('shape', ints([64, 64]))], {
        value: A.tensor(Tensor.from('float32', [1], [2])),
      });
      h.output(h.e.mul(x, big), 'y');
      return h.m;
    };
    const feeds = { x: feed([64, 64], 1) };
    const dflt = await checkPass(constantFolding, mk(), feeds);
    assert.equal(count(dflt.result.model, 'ConstantOfShape'), 0, '4096 elements is within maxGrowElements');
    const grow = await checkPass(constantFolding, mk(), feeds, { options: { maxGrowElements: 100 } });
    assert.equal(grow.result.changed, false);
    assert.match(
      grow.result.notes.join('\n'),
      /kept ConstantOfShape .*: 4096 elements would grow the model \(largest constant source has 2\)/,
    );
    const max = await checkPass(constantFolding, mk(), feeds, { options: { maxElements: 1000 } });
    assert.equal(max.result.changed, false);
    assert.match(max.result.notes.join('\n'), /4096 elements is above maxElements 1000/);
  });

  test('static shapes: Shape → Gather → Unsqueeze → Concat → Reshape folds to a constant target', async () => {
    const h = hand(13);
    const x = h.input('x', [2, 3, 4]);
    const d1 = h.e.op('Gather', [h.e.shape(x), h.init('i1', Tensor.scalar('int64', 1))]);
    const target = h.e.op('Concat', [h.init('m1', ints([-1])), h.e.unsqueeze(d1, [0])], { axis: A.int(0) });
    h.output(h.e.reshape(h.e.op('Relu', [x]), target), 'y');
    const r = await checkPass(constantFolding, h.m, { x: feed([2, 3, 4], 1) });
    assert.deepEqual(
      r.result.model.graph.nodes.map((n) => n.opType),
      ['Relu', 'Reshape'],
    );
    assert.ok(r.result.counts['shape-value']! >= 1);
  });

  test('symbolic batch: the Reshape target becomes [0, 12] and an Expand target [1, 12]', async () => {
    const h = hand(13);
    const x = h.input('x', ['N', 3, 4]);
    const shp = h.e.shape(x);
    const n = h.e.unsqueeze(h.e.op('Gather', [shp, h.init('i0', Tensor.scalar('int64', 0))]), [0]);
    const target = h.e.op('Concat', [n, h.init('k12', ints([12]))], { axis: A.int(0) });
    const y = h.e.reshape(x, target);
    const z = h.e.op('Expand', [h.e.op('Relu', [y]), h.e.shape(y)]);
    h.output(z, 'y');
    const r = await checkPass(constantFolding, h.m, { x: feed([5, 3, 4], 1) });
    assert.deepEqual(
      r.result.model.graph.nodes.map((n) => n.opType),
      ['Reshape', 'Relu', 'Expand'],
    );
    const g = r.result.model.graph;
    const target0 = g.nodes[0]!.input(1).const!;
    assert.deepEqual(Array.from(target0.typed() as BigInt64Array, Number), [0, 12]);
    assert.deepEqual(Array.from(g.nodes[2]!.input(1).const!.typed() as BigInt64Array, Number), [1, 12]);
    assert.deepEqual(r.result.counts, { 'reshape-static-target': 1, 'expand-static-target': 1 });
  });

  test('inside an If branch: constant nodes fold, the If and its outer references stay', async () => {
    const h = hand(17);
    const x = h.input('x', [2]);
    const c = h.input('c', [], 'bool');
    const w = h.init('w', rand([2], 3));
    const then = new Graph('then', h.g);
    const k = then.addNode({ opType: 'Add', inputs: [w, w], outputs: ['ww'] });
    then.outputs.push(then.addNode({ opType: 'Mul', inputs: [x, k.output(0)], outputs: ['t'] }).output(0));
    const els = new Graph('else', h.g);
    els.outputs.push(els.addNode({ opType: 'Sub', inputs: [x, w], outputs: ['e'] }).output(0));
    h.output(
      h.g
        .addNode({
          opType: 'If',
          inputs: [c],
          outputs: ['y'],
          attrs: { then_branch: { type: 'graph', value: then }, else_branch: { type: 'graph', value: els } },
        })
        .output(0),
    );
    for (const cond of [1, 0]) {
      const r = await checkPass(constantFolding, h.m, {
        x: feed([2], 1),
        c: { dtype: 'bool', dims: [], data: Uint8Array.from([cond]) },
      });
      assert.equal(count(r.result.model, 'Add'), 0);
      assert.equal(count(r.result.model, 'If'), 1);
      assert.equal(count(r.result.model, 'Sub'), 1);
    }
  });

  test('a constant node ORT cannot evaluate (in a branch that never runs) is kept; the rest still folds', async () => {
    const h = hand(17);
    const x = h.input('x', [3]);
    const c = h.input('c', [], 'bool');
    const data = h.init('data', rand([3], 1));
    const then = new Graph('then', h.g);
    const k = then.addNode({ opType: 'Neg', inputs: [data], outputs: ['negdata'] });
    then.outputs.push(then.addNode({ opType: 'Add', inputs: [x, k.output(0)], outputs: ['t'] }).output(0));
    const els = new Graph('else', h.g);
    const bad = els.addNode({
      opType: 'Gather',
      inputs: [data, h.init('idx', Tensor.from('int64', [3], [5, 6, 7]))],
      outputs: ['oob'],
      name: 'oob',
    });
    els.outputs.push(els.addNode({ opType: 'Add', inputs: [x, bad.output(0)], outputs: ['e'] }).output(0));
    h.output(
      h.g
        .addNode({
          opType: 'If',
          inputs: [c],
          outputs: ['y'],
          attrs: { then_branch: { type: 'graph', value: then }, else_branch: { type: 'graph', value: els } },
        })
        .output(0),
    );
    const r = await checkPass(constantFolding, h.m, {
      x: feed([3], 1),
      c: { dtype: 'bool', dims: [], data: Uint8Array.from([1]) },
    });
    assert.equal(count(r.result.model, 'Neg'), 0);
    assert.equal(count(r.result.model, 'Gather'), 1);
    assert.match(r.result.notes.join('\n'), /could not evaluate the constant subgraph in one run/);
    assert.match(r.result.notes.join('\n'), /kept Gather "oob": ONNX Runtime cannot evaluate it/);
  });

  test('torch convt_op13: the Pad-argument chain (Shape, ConstantOfShape, Concat, Reshape, Slice, Transpose, Cast) disappears', async () => {
    const { model, feeds } = externalModel('convt_op13');
    const r = await checkPass(constantFolding, model, feeds);
    for (const op of ['Constant', 'ConstantOfShape', 'Concat', 'Reshape', 'Slice', 'Transpose', 'Cast'])
      assert.equal(count(r.result.model, op), 0, op);
    assert.equal(r.nodesAfter, 6);
  });

  test('torch encoder_op17: every Shape → Gather → Unsqueeze → Concat chain disappears', async () => {
    const { model, feeds } = externalModel('encoder_op17');
    assert.equal(count(model, 'Shape'), 14);
    const r = await checkPass(constantFolding, model, feeds);
    for (const op of ['Shape', 'Gather', 'Unsqueeze', 'Concat', 'Cast'])
      assert.equal(count(r.result.model, op), 0, op);
    assert.equal(count(r.result.model, 'Reshape'), 10);
    assert.ok(r.nodesAfter < r.nodesBefore - 90, `${r.nodesBefore} → ${r.nodesAfter}`);
  });

  test('mobile_bn, misc and Silero VAD (If subgraphs): outputs equal, If count kept, the file does not grow', async () => {
    for (const name of ['mobile_bn_op13', 'misc_op13', 'silero_vad_legacy', 'silero_vad_v5']) {
      const { model, feeds } = externalModel(name);
      const r = await checkPass(constantFolding, model, feeds);
      assert.ok(r.result.changed, name);
      assert.ok(r.nodesAfter < r.nodesBefore, name);
      assert.equal(count(r.result.model, 'If'), count(model, 'If'), name);
      assert.ok(
        encodeModel(r.result.model).byteLength <= encodeModel(model).byteLength * 1.01,
        `${name} grew`,
      );
    }
  });
});
