import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { A, Emitter, Tensor, type Value } from '../../ir/index.js';
import { ModelBuilder } from '../../ir/builder.js';
import { buildModel } from '../../models/index.js';
import '../../ops/index.js';
import { runModel } from '../../runtime/index.js';
import { randomFeeds, maxAbsDiff } from '../../testing/fixtures.js';
import { checkPrune } from '../../testing/prune.js';
import { applyPruning } from './apply.js';
import { analyzeDependencies } from './deps.js';

const mb = (opset = 17) => new ModelBuilder({ name: 't', opset, seed: 3 });

/** A channel shuffle as torchvision writes it: [N, C, H, W] → [N, g, C/g, H, W] → swap → [N, C, H, W]. */
function shuffle(b: ModelBuilder, h: Value, c: number, g: number, name = 'sh'): Value {
  const [n, , hh, ww] = h.shape as number[];
  const r = b.reshape(h, [n!, g, c / g, hh!, ww!], `${name}1`);
  return b.reshape(b.transpose(r, [0, 2, 1, 3, 4], `${name}_t`), [n!, c, hh!, ww!], `${name}2`);
}

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

  it('grouped Conv (not depthwise): channel i of every conv group goes together, in and out', async () => {
    const b = mb();
    const x = b.input('x', 'float32', ['N', 3, 6, 6]);
    let h = b.relu(bn(b, b.conv2d(x, { inC: 3, outC: 8, kernel: 1, name: 'a' }), 8, 'bn_a'));
    // 4 groups of 2 input channels → 4 groups of 3 output channels (a RegNet/ResNeXt 3×3)
    h = b.relu(bn(b, b.conv2d(h, { inC: 8, outC: 12, kernel: 3, pad: 1, groups: 4, name: 'g' }), 12, 'bn_g'));
    b.output(b.conv2d(h, { inC: 12, outC: 3, kernel: 1, name: 'c' }), 'y');
    const r = await checkPrune(b.build(), { expectGroups: 2, ratio: 0.34 });
    const ga = r.deps.groups.find((g) => g.producers.includes('a'))!;
    const gg = r.deps.groups.find((g) => g.producers.includes('g'))!;
    assert.deepEqual([ga.period, gg.period], [2, 3]);
    // the same channels in every conv group: a keeps 1 of 2 per group, g 2 of 3
    const ka = r.keep.get(ga.id)!;
    const kg = r.keep.get(gg.id)!;
    assert.equal(ka.length, 4);
    assert.deepEqual(
      ka,
      [0, 1, 2, 3].map((k) => 2 * k + ka[0]!),
    );
    assert.equal(kg.length, 8);
    assert.deepEqual(
      kg,
      [0, 1, 2, 3].flatMap((k) => kg.slice(0, 2).map((c) => 3 * k + c)),
    );
    const w = r.pruned.graph.initializers.get('g.weight')!.const!;
    assert.deepEqual(w.dims, [8, 1, 3, 3]);
    assert.equal(r.pruned.graph.nodes.find((n) => n.name === 'g')!.attrInt('group'), 4);
  });

  it('channel shuffle (Reshape [N, g, C/g, H, W] → Transpose → Reshape) after a grouped Conv: a permutation', async () => {
    const b = mb();
    const x = b.input('x', 'float32', [2, 4, 4, 4]);
    let h = b.relu(b.conv2d(x, { inC: 4, outC: 8, kernel: 1, name: 'a' }));
    h = b.relu(b.conv2d(h, { inC: 8, outC: 8, kernel: 3, pad: 1, groups: 2, name: 'grouped' }));
    h = shuffle(b, h, 8, 2);
    b.output(b.conv2d(h, { inC: 8, outC: 2, kernel: 1, name: 'z' }), 'y');
    const r = await checkPrune(b.build(), { expectGroups: 2 });
    const g = r.deps.groups.find((x) => x.producers.includes('grouped'))!;
    assert.equal(g.period, 4, 'the shuffle rows keep the same channels, like the conv groups');
    const k = r.keep.get(g.id)!.length;
    const rows = r.pruned.graph.nodes
      .find((n) => n.name === 'sh1')!
      .input(1)
      .const!.toNumbers();
    assert.deepEqual(rows, [2, 2, k / 2, 4, 4]);
    // the z weight columns follow the shuffled order: element b·2 + a ← a·4 + b
    const cols = r.pruned.graph.initializers.get('z.weight')!.const!.dims[1];
    assert.equal(cols, k);
  });

  it('ShuffleNet v2 units: Slice halves, a branch concatenated beside the shuffled channels, shuffle again', async () => {
    const b = mb(13);
    const x = b.input('x', 'float32', [2, 3, 4, 4]);
    const stem = b.relu(b.conv2d(x, { inC: 3, outC: 8, kernel: 1, name: 'stem' }));
    // unit 1 (down-sampling form): two branches on the stem, concatenated and shuffled
    const b1 = b.relu(b.conv2d(stem, { inC: 8, outC: 4, kernel: 1, name: 'u1_left' }));
    const b2 = b.relu(b.conv2d(stem, { inC: 8, outC: 4, kernel: 1, name: 'u1_right' }));
    const t1 = shuffle(b, b.concat([b1, b2], 1, 'u1_cat'), 8, 2, 'u1');
    // unit 2: x1, x2 = chunk(t1, 2); concat(x1, branch(x2)); shuffle
    const half = (from: number, to: number, name: string) => {
      const e = new Emitter(b.graph, { opset: 13 });
      const v = e.op('Slice', [t1, b.constInts([from]), b.constInts([to]), b.constInts([1])], {}, { name });
      v.type = { kind: 'tensor', dtype: 'float32', shape: [2, 4, 4, 4] };
      return v;
    };
    const x1 = half(0, 4, 'x1');
    const x2 = half(4, 8, 'x2');
    const br = b.relu(b.conv2d(x2, { inC: 4, outC: 4, kernel: 3, pad: 1, name: 'u2_branch' }));
    const t2 = shuffle(b, b.concat([x1, br], 1, 'u2_cat'), 8, 2, 'u2');
    b.output(b.conv2d(t2, { inC: 8, outC: 3, kernel: 1, name: 'head' }), 'y');
    const r = await checkPrune(b.build(), { expectGroups: 2 });
    const u = r.deps.groups.find((g) => g.producers.includes('u1_left'))!;
    assert.deepEqual(
      ['u1_left', 'u1_right', 'u2_branch'].map((p) => u.producers.includes(p)),
      [true, true, true],
      'the branch beside x1 is pruned with the channels it sits next to',
    );
    const bounds = (n: string) =>
      [1, 2].map(
        (i) =>
          r.pruned.graph.nodes
            .find((x) => x.name === n)!
            .input(i)
            .const!.toNumbers()[0],
      );
    const [a0, a1] = bounds('x1');
    const [c0, c1] = bounds('x2');
    assert.equal(a0, 0);
    assert.equal(a1, c0, 'the halves meet');
    assert.equal(c1, 2 * r.keep.get(u.id)!.length, 'x2 ends at the pruned width of unit 1');
    assert.equal(
      r.pruned.graph.initializers.get('head.weight')!.const!.dims[1],
      2 * a1!,
      'x1 and its branch',
    );
  });

  it('reports what it cannot prune: split channels reaching other ops, reshape into heads', () => {
    const b = mb();
    const x = b.input('x', 'float32', [1, 4, 4, 4]);
    const h = b.relu(b.conv2d(x, { inC: 4, outC: 8, kernel: 1, name: 'a' }));
    const rows = b.reshape(h, [1, 2, 4, 4, 4]);
    b.output(b.mean(rows, [1], false), 'm');
    const h2 = b.relu(b.conv2d(x, { inC: 4, outC: 8, kernel: 1, name: 'b' }));
    const sep = b.transpose(b.reshape(h2, [1, 2, 4, 4, 4]), [0, 1, 3, 2, 4]);
    b.output(b.reshape(sep, [1, 8, 4, 4]), 'r');
    const deps = analyzeDependencies(b.build());
    const reasons = (p: string) => deps.groups.find((g) => g.producers.includes(p))!.reasons.join('; ');
    assert.match(reasons('a'), /channel axis split into \[2, …\] reaches ReduceMean/);
    assert.match(reasons('b'), /Transpose separates the split channel axes/);
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
