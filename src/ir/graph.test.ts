import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, Model, Tensor, tensorType, verify, assertValid, type Value } from './index.js';
import { GraphError } from '../errors.js';
import { decodeModel, encodeModel } from '../onnx/index.js';
import { runModel } from '../runtime/index.js';

/** x → Relu(a) → Add(a, w) → Mul(b, a) → y, with an unused branch. */
function chain() {
  const g = new Graph('chain');
  const x = g.addInput('x', tensorType('float32', ['N', 4]));
  const w = g.addInitializer('w', Tensor.from('float32', [4], [1, -2, 3, -4]));
  const unusedW = g.addInitializer('unused_w', Tensor.from('float32', [4], [0, 0, 0, 0]));
  const relu = g.addNode({ opType: 'Relu', inputs: [x], outputs: ['a'], name: 'relu' });
  const add = g.addNode({ opType: 'Add', inputs: [relu.output(), w], outputs: ['b'], name: 'add' });
  const mul = g.addNode({
    opType: 'Mul',
    inputs: [add.output(), relu.output()],
    outputs: ['y'],
    name: 'mul',
  });
  const dead1 = g.addNode({ opType: 'Neg', inputs: [unusedW], outputs: ['d1'], name: 'dead1' });
  g.addNode({ opType: 'Abs', inputs: [dead1.output()], outputs: ['d2'], name: 'dead2' });
  g.outputs.push(mul.output());
  const m = new Model(g);
  m.opsetImports.set('', 17);
  return { m, g, x, w, relu, add, mul };
}

const feed = {
  x: { dtype: 'float32' as const, dims: [2, 4], data: Float32Array.from([1, -1, 2, -2, 0.5, 3, -3, 4]) },
};

describe('graph IR', () => {
  test('producer and uses stay in sync through edits', () => {
    const { g, x, relu, add, mul } = chain();
    const a = relu.output();
    assert.equal(a.producer, relu);
    assert.deepEqual(a.uses.map((u) => `${u.node.name}:${u.index}`).sort(), ['add:0', 'mul:1']);
    // rewire mul's second input to x
    mul.setInput(1, x);
    assert.deepEqual(
      a.uses.map((u) => u.node.name),
      ['add'],
    );
    assert.ok(x.uses.some((u) => u.node === mul && u.index === 1));
    // inserting a node after b: every reader of b (and graph outputs) moves to the new value, except the new node
    const b = add.output();
    const neg = g.addNode({ opType: 'Neg', inputs: [b], outputs: ['nb'] });
    b.replaceAllUsesWith(neg.output(), neg);
    assert.equal(neg.input(0), b);
    assert.equal(mul.input(0), neg.output());
    assert.deepEqual(
      b.uses.map((u) => u.node),
      [neg],
    );
    // graph outputs move too
    const y = mul.output();
    const sig = g.addNode({ opType: 'Sigmoid', inputs: [y], outputs: ['sy'] });
    y.replaceAllUsesWith(sig.output(), sig);
    assert.deepEqual(g.outputs, [sig.output()]);
    assert.deepEqual(verify(g), []);
  });

  test('removeNode refuses while outputs are used; removeUnused drops dead nodes and initializers', () => {
    const { g, relu } = chain();
    assert.throws(() => g.removeNode(relu), /still used/);
    const before = g.nodes.length;
    const removed = g.removeUnused();
    assert.equal(removed, 2);
    assert.equal(g.nodes.length, before - 2);
    assert.ok(!g.initializers.has('unused_w'));
    assert.ok(g.initializers.has('w'));
    assert.deepEqual(verify(g), []);
  });

  test('toposort restores order after out-of-order insertion; outputs unchanged in ORT', async () => {
    const { m, g } = chain();
    const want = await runModel(m, feed);
    g.nodes.reverse();
    assert.ok(
      verify(g).every((p) => p.kind !== 'cycle'),
      'a reversed list is no cycle',
    );
    g.toposort();
    const names = g.nodes.map((n) => n.name);
    assert.ok(names.indexOf('relu') < names.indexOf('add') && names.indexOf('add') < names.indexOf('mul'));
    const got = await runModel(m, feed);
    assert.deepEqual(Array.from(got.y!.data as Float32Array), Array.from(want.y!.data as Float32Array));
    // relu(x)+w times relu(x), by hand for the first row: x = [1,-1,2,-2]
    assert.deepEqual(Array.from((got.y!.data as Float32Array).slice(0, 4)), [2, -0, 10, -0]); // (0 + -2) * 0 is -0
  });

  test('clone is deep: editing the copy leaves the original intact, and both run', async () => {
    const { m } = chain();
    const c = m.clone();
    const cm = c.graph.node('mul')!;
    cm.opType = 'Add';
    assert.equal(m.graph.node('mul')!.opType, 'Mul');
    assert.notEqual(c.graph.inputs[0], m.graph.inputs[0]);
    assert.equal(c.graph.node('add')!.input(0).producer, c.graph.node('relu'));
    const y1 = await runModel(m, feed);
    const y2 = await runModel(c, feed);
    assert.deepEqual(Array.from((y2.y!.data as Float32Array).slice(0, 4)), [2 + 1, -2 + 0, 5 + 2, -4 + 0]);
    assert.notDeepEqual(Array.from(y1.y!.data as Float32Array), Array.from(y2.y!.data as Float32Array));
  });

  test('uniqueName never reuses a name, also across nested graphs', () => {
    const g = new Graph('g');
    g.addInput('x', tensorType('float32', [1]));
    const sub = new Graph('sub', g);
    const v = sub.newValue('x');
    assert.notEqual(v.name, 'x');
    const names = new Set<string>();
    for (let i = 0; i < 50; i++) names.add(g.uniqueName('t'));
    assert.equal(names.size, 50);
  });
});

describe('verify', () => {
  test('a valid graph has no problems', () => {
    assert.deepEqual(verify(chain().g), []);
  });

  test('catches a dangling input and names node and value', () => {
    const { g, add } = chain();
    const ghost = g.newValue('ghost');
    add.setInput(1, ghost);
    const ps = verify(g);
    assert.equal(ps.length, 1);
    assert.equal(ps[0]!.kind, 'dangling-input');
    assert.equal(ps[0]!.node, 'add');
    assert.equal(ps[0]!.value, 'ghost');
    assert.match(ps[0]!.message, /Input 1 "ghost" of node "add" \(Add\)/);
  });

  test('catches a cycle', () => {
    const { g, relu, mul } = chain();
    relu.setInput(0, mul.output());
    const ps = verify(g);
    assert.ok(ps.some((p) => p.kind === 'cycle' && /relu/.test(p.message) && /mul/.test(p.message)));
    assert.throws(() => g.toposort(), GraphError);
  });

  test('catches duplicate output names', () => {
    const { g, x } = chain();
    const n = g.addNode({ opType: 'Sigmoid', inputs: [x], outputs: [], name: 'dup' });
    const v = g.newValue('b', undefined, false); // same name as add's output
    g.attachOutput(n, v);
    const ps = verify(g);
    assert.ok(
      ps.some((p) => p.kind === 'duplicate-name' && p.value === 'b' && p.node === 'dup'),
      JSON.stringify(ps),
    );
  });

  test('catches a dtype mismatch through the op hook, and an undefined graph output', () => {
    const { g, add } = chain();
    const ids = g.addInitializer('ids', Tensor.from('int64', [4], [1, 2, 3, 4]));
    add.setInput(1, ids);
    g.outputs.push(g.newValue('nowhere'));
    const checkNode = (n: import('./graph.js').Node) => {
      const ds = n.inputs.filter((v): v is Value => !!v).map((v) => v.dtype);
      return n.opType === 'Add' && ds[0] && ds[1] && ds[0] !== ds[1]
        ? [{ kind: 'dtype-mismatch' as const, message: `Add "${n.label}" mixes ${ds[0]} and ${ds[1]}` }]
        : [];
    };
    // relu's output has no type yet: give it one as shape inference would
    add.input(0).type = tensorType('float32', ['N', 4]);
    const ps = verify(g, { checkNode });
    assert.ok(ps.some((p) => p.kind === 'dtype-mismatch' && p.node === 'add'));
    assert.ok(ps.some((p) => p.kind === 'undefined-output' && p.value === 'nowhere'));
    assert.throws(
      () => assertValid(g, { checkNode }),
      (e: unknown) => e instanceof GraphError && /2 problems/.test((e as Error).message),
    );
  });

  test('a node in a domain the model does not import is reported', async () => {
    const { m, g, x } = chain();
    g.addNode({ opType: 'FusedMatMul', domain: 'com.microsoft', inputs: [x, x], outputs: ['f'], name: 'fm' });
    const ps = verify(g, { opsetImports: m.opsetImports });
    assert.ok(ps.some((p) => p.kind === 'missing-opset' && p.node === 'fm'));
  });

  test('a decoded file with a dangling name keeps it for verify to report', () => {
    const { m, add } = chain();
    add.setInput(1, m.graph.newValue('missing_weight'));
    const back = decodeModel(encodeModel(m), { file: 'broken.onnx' });
    const ps = verify(back.graph);
    assert.ok(
      ps.some((p) => p.kind === 'dangling-input' && p.value === 'missing_weight' && p.node === 'add'),
    );
  });
});
