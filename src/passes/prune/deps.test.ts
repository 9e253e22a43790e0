import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { A, Tensor, type Value } from '../../ir/index.js';
import { ModelBuilder } from '../../ir/builder.js';
import { buildModel } from '../../models/index.js';
import '../../ops/index.js';
import { runModel } from '../../runtime/index.js';
import { randomFeeds, maxAbsDiff } from '../../testing/fixtures.js';
import { checkPrune } from '../../testing/prune.js';
import { applyPruning } from './apply.js';
import { analyzeDependencies } from './deps.js';

const mb = (opset = 17) => new ModelBuilder({ name: 't', opset, seed: 3 });

/** BN with random statistics so that removing a channel is visible. */
function bn(b: ModelBuilder, x: Value, c: number, name: string): Value {
  const y = b.batchNorm(x, c, { name });
  return y;
}

describe('prune dependency groups: each coupling kind keeps the kept channels exact in ORT', () => {
  it('Conv → BN → Relu → MaxPool → Conv → Flatten → Gemm (cnn-s): channel × spatial mapping', async () => {
    const r = await checkPrune(buildModel('cnn-s', { seed: 1 }), { expectGroups: 3 });
    const g = r.deps.groups.find((x) => x.producers.includes('c2'))!;
    assert.ok(
      g.members.some((m) => m.value.name === 'f1.weight' && m.axis === 1),
      'f1 columns follow c2 channels',
    );
    const out = r.deps.groups.find((x) => x.producers.includes('f2'))!;
    assert.equal(out.prunable, false);
    assert.match(out.reasons.join(), /graph output "logits"/);
    // hand slicing: c1 keeps channels K → c1.weight rows K, b1.* entries K, c2.weight columns K
    const k1 = r.keep.get(r.deps.groups.find((x) => x.producers.includes('c1'))!.id)!;
    const w = r.pruned.graph.initializers.get('c2.weight')!.const!;
    assert.equal(w.dims[1], k1.length);
    assert.equal(r.pruned.graph.initializers.get('b1.running_var')!.const!.dims[0], k1.length);
  });

  it('residual Add couples the block input and output channels', async () => {
    const b = mb();
    const x = b.input('x', 'float32', ['N', 3, 8, 8]);
    const a = b.relu(bn(b, b.conv2d(x, { inC: 3, outC: 8, kernel: 3, pad: 1, name: 'stem' }), 8, 'bn0'));
    let h = b.relu(bn(b, b.conv2d(a, { inC: 8, outC: 6, kernel: 3, pad: 1, name: 'c1' }), 6, 'bn1'));
    h = bn(b, b.conv2d(h, { inC: 6, outC: 8, kernel: 3, pad: 1, name: 'c2' }), 8, 'bn2');
    h = b.relu(b.add(h, a, 'res'));
    h = b.flatten(b.globalAvgPool(h), 1);
    b.output(b.linear(h, 8, 4, { name: 'fc' }), 'y');
    const r = await checkPrune(b.build(), { expectGroups: 2 });
    const res = r.deps.groups.find((g) => g.producers.includes('stem'))!;
    assert.deepEqual([...res.producers].sort(), ['c2', 'stem']);
  });

  it('inverted residual: depthwise Conv, squeeze-excitation Mul, HardSwish, HardSigmoid', async () => {
    const b = mb();
    const x = b.input('x', 'float32', ['N', 4, 8, 8]);
    let h = b.hardSwish(bn(b, b.conv2d(x, { inC: 4, outC: 16, kernel: 1, name: 'expand' }), 16, 'bn_e'));
    h = b.hardSwish(
      bn(b, b.depthwiseConv2d(h, { channels: 16, kernel: 3, pad: 1, name: 'dw' }), 16, 'bn_dw'),
    );
    let s = b.globalAvgPool(h);
    s = b.relu(b.conv2d(s, { inC: 16, outC: 8, kernel: 1, name: 'se_reduce' }));
    s = b.hardSigmoid(b.conv2d(s, { inC: 8, outC: 16, kernel: 1, name: 'se_expand' }));
    h = b.mul(h, s, 'se_mul');
    h = bn(b, b.conv2d(h, { inC: 16, outC: 4, kernel: 1, name: 'project' }), 4, 'bn_p');
    b.output(b.add(h, x, 'res'), 'y');
    const r = await checkPrune(b.build(), { expectGroups: 2 });
    const e = r.deps.groups.find((g) => g.producers.includes('expand'))!;
    assert.ok(e.producers.includes('se_expand'), 'SE expand is coupled with the expanded channels');
    assert.equal(
      r.pruned.graph.nodes.find((n) => n.name === 'dw')!.attrInt('group'),
      r.keep.get(e.id)!.length,
    );
    const out = r.deps.groups.find((g) => g.producers.includes('project'))!;
    assert.equal(out.prunable, false, 'the residual reaching the output and the model input is not prunable');
  });

  it('depthwise with a channel multiplier', async () => {
    const b = mb();
    const x = b.input('x', 'float32', ['N', 2, 6, 6]);
    let h = b.relu(b.conv2d(x, { inC: 2, outC: 6, kernel: 1, name: 'a' }));
    h = b.relu(b.depthwiseConv2d(h, { channels: 6, multiplier: 2, kernel: 3, pad: 1, name: 'dw' }));
    b.output(b.conv2d(h, { inC: 12, outC: 3, kernel: 1, name: 'out' }), 'y');
    const r = await checkPrune(b.build(), { expectGroups: 1 });
    assert.equal(
      r.pruned.graph.initializers.get('dw.weight')!.const!.dims[0],
      2 * r.keep.values().next().value!.length,
    );
  });

  it('Concat along channels maps indices; Concat of an input is blocked only for that piece', async () => {
    const b = mb();
    const x = b.input('x', 'float32', ['N', 3, 6, 6]);
    const s = b.relu(b.conv2d(x, { inC: 3, outC: 4, kernel: 1, name: 'squeeze' }));
    const e1 = b.relu(b.conv2d(s, { inC: 4, outC: 6, kernel: 1, name: 'e1' }));
    const e3 = b.relu(b.conv2d(s, { inC: 4, outC: 10, kernel: 3, pad: 1, name: 'e3' }));
    const c = b.concat([e1, e3, x], 1, 'cat');
    b.output(b.conv2d(c, { inC: 19, outC: 5, kernel: 1, name: 'next' }), 'y');
    const r = await checkPrune(b.build(), { expectGroups: 3 });
    const blocked = r.deps.groups.filter((g) => !g.prunable);
    assert.ok(blocked.some((g) => /concatenated with x/.test(g.reasons.join())));
  });

  it('Split along channels rewrites the split sizes', async () => {
    const b = mb(13);
    const x = b.input('x', 'float32', ['N', 3, 5, 5]);
    const h = b.relu(b.conv2d(x, { inC: 3, outC: 12, kernel: 1, name: 'c' }));
    b.output(h, 'h');
    const m = b.build();
    const gr = m.graph;
    const split = gr.addInitializer('split_sizes', Tensor.from('int64', [2], [4, 8]));
    const hv = gr.lookup(h.name)!;
    const sp = gr.addNode({
      opType: 'Split',
      inputs: [hv, split],
      outputs: 2,
      attrs: { axis: A.int(1) },
      name: 'split',
    });
    const w1 = gr.addInitializer(
      'w1',
      Tensor.from(
        'float32',
        [2, 4, 1, 1],
        Float32Array.from({ length: 8 }, (_, i) => i / 7 - 0.5),
      ),
    );
    const w2 = gr.addInitializer(
      'w2',
      Tensor.from(
        'float32',
        [2, 8, 1, 1],
        Float32Array.from({ length: 16 }, (_, i) => 0.3 - i / 20),
      ),
    );
    const c1 = gr.addNode({ opType: 'Conv', inputs: [sp.output(0), w1], name: 'c1' });
    const c2 = gr.addNode({ opType: 'Conv', inputs: [sp.output(1), w2], name: 'c2' });
    const add = gr.addNode({ opType: 'Add', inputs: [c1.output(0), c2.output(0)], name: 'sum' });
    gr.outputs.length = 0;
    gr.outputs.push(add.output(0));
    add.output(0).type = { kind: 'tensor', dtype: 'float32', shape: ['N', 2, 5, 5] };
    const r = await checkPrune(m, { ratio: 0.5 });
    const sizes = r.pruned.graph.nodes
      .find((n) => n.name === 'split')!
      .input(1)
      .const!.toNumbers();
    assert.equal(sizes[0]! + sizes[1]!, 6);
  });

  it('Transpose to channels-last, then MatMul + bias (a token MLP: FFN neurons)', async () => {
    const b = mb();
    const x = b.input('x', 'float32', ['N', 5, 8]);
    let h = b.gelu(b.linear(x, 8, 16, { name: 'fc1' }));
    h = b.linear(h, 16, 8, { name: 'fc2' });
    const t = b.transpose(h, [0, 2, 1]);
    b.output(b.mean(t, [1], false), 'y');
    const r = await checkPrune(b.build(), { expectGroups: 1 });
    assert.equal(r.deps.groups.find((g) => g.prunable)!.producers[0], 'fc1/MatMul');
  });

  it('Reshape [N, C, H, W] → [N, C·H·W] before a Gemm', async () => {
    const b = mb();
    const x = b.input('x', 'float32', [2, 3, 4, 4]);
    const h = b.relu(b.conv2d(x, { inC: 3, outC: 6, kernel: 3, pad: 1, name: 'c' }));
    const f = b.reshape(h, [2, 96]);
    b.output(b.linear(f, 96, 3, { name: 'fc' }), 'y');
    const r = await checkPrune(b.build(), { expectGroups: 1 });
    const shape = r.pruned.graph.nodes
      .find((n) => n.opType === 'Reshape')!
      .input(1)
      .const!.toNumbers();
    assert.equal(shape[1], 16 * r.keep.values().next().value!.length);
  });

  it('reports what it cannot prune: grouped conv, channel shuffle, reshape into heads', () => {
    const b = mb();
    const x = b.input('x', 'float32', [1, 4, 4, 4]);
    let h = b.relu(b.conv2d(x, { inC: 4, outC: 8, kernel: 1, name: 'a' }));
    h = b.conv2d(h, { inC: 8, outC: 8, kernel: 1, groups: 2, name: 'grouped' });
    h = b.reshape(h, [1, 2, 4, 4, 4]);
    h = b.transpose(h, [0, 2, 1, 3, 4]);
    h = b.reshape(h, [1, 8, 4, 4]);
    b.output(b.conv2d(h, { inC: 8, outC: 2, kernel: 1, name: 'z' }), 'y');
    const deps = analyzeDependencies(b.build());
    const reasons = (p: string) => deps.groups.find((g) => g.producers.includes(p))!.reasons.join('; ');
    assert.match(reasons('a'), /grouped Conv \(group=2\)/);
    assert.match(reasons('grouped'), /Reshape splits the channel axis/);
    assert.equal(deps.groups.filter((g) => g.prunable).length, 0);
  });

  it('pruning nothing changes nothing', async () => {
    const m = buildModel('cnn-s', { seed: 2 });
    const deps = analyzeDependencies(m);
    const out = applyPruning(deps, new Map());
    const feeds = randomFeeds(m, 3, 4);
    const a = await runModel(m, feeds);
    const c = await runModel(out, feeds);
    assert.equal(maxAbsDiff(a.logits!.data, c.logits!.data), 0);
  });
});
