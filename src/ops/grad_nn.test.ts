// Gradient rules of src/ops/nn.ts (Conv, ConvTranspose, pools, normalizations), checked against central finite
// differences through ORT (`gradCheck`): one table of small models per op, inputs kept away from kinks.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gradCheck } from '../autodiff/check.js';
import { buildGradients } from '../autodiff/grad.js';
import { A, Emitter, Graph, Model, tensorType } from '../ir/index.js';
import { Session } from '../runtime/index.js';
import type { ConvWeightGradForm } from './registry.js';
import { inferShapes, lookup } from './index.js';
import {
  buildGradCase,
  checkGradCase,
  distinct,
  type GCase,
  gcaseName,
  printWorst,
  uni,
  X,
} from '../testing/grad.js';

const worst = new Map<string, number>();
after(() => printWorst('nn gradient rules', worst));

/** Linear ops: finite differences are exact up to rounding, so a large step keeps float32 rounding small. */
const LIN = { eps: 0.05 };
const b = (n: number) => X([n]);

const conv: GCase[] = [
  {
    name: 'basic pad 1 + bias',
    op: 'Conv',
    inputs: [X([2, 3, 5, 5]), X([4, 3, 3, 3]), b(4)],
    attrs: { pads: [1, 1, 1, 1] },
  },
  {
    name: 'stride 2 pad 1',
    op: 'Conv',
    inputs: [X([2, 3, 7, 7]), X([4, 3, 3, 3]), b(4)],
    attrs: { strides: [2, 2], pads: [1, 1, 1, 1] },
  },
  {
    name: 'stride 2, unread last row/col',
    op: 'Conv',
    inputs: [X([1, 2, 6, 6]), X([3, 2, 3, 3])],
    attrs: { strides: [2, 2] },
  },
  {
    name: 'stride (2,3)',
    op: 'Conv',
    inputs: [X([1, 2, 7, 8]), X([3, 2, 2, 3])],
    attrs: { strides: [2, 3], pads: [0, 1, 1, 0] },
  },
  {
    name: 'dilation 2',
    op: 'Conv',
    inputs: [X([1, 2, 7, 7]), X([3, 2, 3, 3]), b(3)],
    attrs: { dilations: [2, 2], pads: [2, 2, 2, 2] },
  },
  {
    name: 'asymmetric pads',
    op: 'Conv',
    inputs: [X([2, 2, 5, 6]), X([3, 2, 3, 3]), b(3)],
    attrs: { pads: [0, 1, 2, 0] },
  },
  {
    name: 'pads beyond the kernel reach',
    op: 'Conv',
    inputs: [X([1, 2, 4, 4]), X([2, 2, 2, 2])],
    attrs: { pads: [2, 2, 2, 2] },
  },
  {
    name: 'groups 2',
    op: 'Conv',
    inputs: [X([2, 4, 5, 5]), X([6, 2, 3, 3]), b(6)],
    attrs: { group: 2, pads: [1, 1, 1, 1] },
  },
  {
    name: 'depthwise',
    op: 'Conv',
    inputs: [X([2, 3, 5, 5]), X([3, 1, 3, 3]), b(3)],
    attrs: { group: 3, pads: [1, 1, 1, 1] },
  },
  {
    name: 'depthwise ×2 stride 2',
    op: 'Conv',
    inputs: [X([2, 3, 6, 6]), X([6, 1, 3, 3])],
    attrs: { group: 3, strides: [2, 2], pads: [1, 1, 1, 1] },
  },
  {
    name: 'groups 2 stride 2 dilation 2',
    op: 'Conv',
    inputs: [X([1, 4, 9, 9]), X([4, 2, 3, 3]), b(4)],
    attrs: { group: 2, strides: [2, 2], dilations: [2, 2], pads: [1, 2, 1, 0] },
  },
  { name: 'no bias', op: 'Conv', inputs: [X([2, 3, 4, 4]), X([2, 3, 3, 3])] },
  { name: '1×1', op: 'Conv', inputs: [X([2, 3, 4, 4]), X([5, 3, 1, 1]), b(5)] },
  {
    name: 'Cin 1 (cnn-s conv1 shape)',
    op: 'Conv',
    inputs: [X([3, 1, 6, 6]), X([4, 1, 3, 3]), b(4)],
    attrs: { pads: [1, 1, 1, 1] },
  },
  {
    name: '1-D stride 2 pads (1,0)',
    op: 'Conv',
    inputs: [X([2, 3, 9]), X([4, 3, 3]), b(4)],
    attrs: { strides: [2], pads: [1, 0] },
  },
  {
    name: '1-D dilation 3 groups 3',
    op: 'Conv',
    inputs: [X([2, 3, 10]), X([3, 1, 2])],
    attrs: { dilations: [3], group: 3, pads: [1, 1] },
  },
  {
    name: '3-D',
    op: 'Conv',
    inputs: [X([1, 2, 4, 4, 3]), X([2, 2, 2, 2, 2]), b(2)],
    attrs: { pads: [1, 0, 1, 0, 1, 0] },
  },
  {
    name: 'auto_pad SAME_UPPER stride 2',
    op: 'Conv',
    inputs: [X([1, 2, 6, 6]), X([2, 2, 3, 3])],
    attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] },
  },
  {
    name: 'auto_pad SAME_LOWER',
    op: 'Conv',
    inputs: [X([1, 2, 5, 5]), X([2, 2, 2, 2])],
    attrs: { auto_pad: 'SAME_LOWER' },
  },
  {
    name: 'auto_pad VALID',
    op: 'Conv',
    inputs: [X([1, 2, 5, 5]), X([2, 2, 3, 3])],
    attrs: { auto_pad: 'VALID' },
  },
].map((c) => ({ ...LIN, ...c }));

const convTranspose: GCase[] = [
  { name: 'basic + bias', op: 'ConvTranspose', inputs: [X([2, 4, 3, 3]), X([4, 3, 3, 3]), b(3)] },
  {
    name: 'stride 2 pad 1 output_padding 1',
    op: 'ConvTranspose',
    inputs: [X([1, 2, 3, 3]), X([2, 3, 3, 3]), b(3)],
    attrs: { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] },
  },
  {
    name: 'groups 2',
    op: 'ConvTranspose',
    inputs: [X([1, 4, 3, 3]), X([4, 2, 3, 3]), b(4)],
    attrs: { group: 2, strides: [2, 2] },
  },
  {
    name: 'depthwise stride 2',
    op: 'ConvTranspose',
    inputs: [X([2, 3, 4, 4]), X([3, 1, 3, 3])],
    attrs: { group: 3, strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 0] },
  },
  {
    name: 'dilation 2 asymmetric pads',
    op: 'ConvTranspose',
    inputs: [X([1, 2, 4, 4]), X([2, 2, 3, 3])],
    attrs: { dilations: [2, 2], pads: [1, 0, 2, 1] },
  },
  {
    name: '1-D stride 3',
    op: 'ConvTranspose',
    inputs: [X([2, 3, 5]), X([3, 2, 4]), b(2)],
    attrs: { strides: [3], pads: [1, 2] },
  },
  {
    name: 'output_shape (even total padding)',
    op: 'ConvTranspose',
    inputs: [X([1, 2, 3, 3]), X([2, 2, 3, 3])],
    attrs: { strides: [2, 2], output_shape: [5, 5] },
  },
].map((c) => ({ ...LIN, ...c }));

const pools: GCase[] = [
  // MaxPool: distinct inputs (no ties); overlapping windows sum their gradients
  {
    name: 'k3 s2 overlapping',
    op: 'MaxPool',
    inputs: [X([2, 3, 7, 7], distinct())],
    attrs: { kernel_shape: [3, 3], strides: [2, 2] },
  },
  {
    name: 'k3 s2 ceil_mode',
    op: 'MaxPool',
    inputs: [X([1, 2, 6, 6], distinct())],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 },
  },
  {
    name: 'k3 s2 pads 1',
    op: 'MaxPool',
    inputs: [X([1, 2, 6, 5], distinct())],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
  },
  {
    name: 'k2 s1 dilation 2',
    op: 'MaxPool',
    inputs: [X([1, 2, 6, 6], distinct())],
    attrs: { kernel_shape: [2, 2], dilations: [2, 2] },
  },
  {
    name: 'k2 s2 (cnn-s; mask path)',
    op: 'MaxPool',
    inputs: [X([2, 3, 4, 4], distinct())],
    attrs: { kernel_shape: [2, 2], strides: [2, 2] },
  },
  {
    name: 'k2 s2 odd sizes (mask path, cropped)',
    op: 'MaxPool',
    inputs: [X([1, 2, 5, 7], distinct())],
    attrs: { kernel_shape: [2, 2], strides: [2, 2] },
  },
  {
    name: 'k2 s2 at opset 12 (mask path, Resize with roi)',
    op: 'MaxPool',
    opset: 12,
    inputs: [X([1, 3, 4, 6], distinct())],
    attrs: { kernel_shape: [2, 2], strides: [2, 2] },
  },
  {
    name: 'k(2,3) s(2,3) (mask path)',
    op: 'MaxPool',
    inputs: [X([1, 2, 4, 6], distinct())],
    attrs: { kernel_shape: [2, 3], strides: [2, 3] },
  },
  {
    name: '1-D k3 s3 (mask path, cropped)',
    op: 'MaxPool',
    inputs: [X([2, 3, 10], distinct())],
    attrs: { kernel_shape: [3], strides: [3] },
  },
  {
    name: '1-D k3 s2',
    op: 'MaxPool',
    inputs: [X([2, 3, 9], distinct())],
    attrs: { kernel_shape: [3], strides: [2] },
  },
  {
    name: 'k2 s2 ceil_mode partial window (Indices path)',
    op: 'MaxPool',
    inputs: [X([1, 2, 5, 5], distinct())],
    attrs: { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 },
  },
  {
    name: 'with its own Indices output',
    op: 'MaxPool',
    inputs: [X([1, 2, 5, 5], distinct())],
    attrs: { kernel_shape: [3, 3], strides: [2, 2] },
    outputs: 2,
    lossOutputs: [0],
  },
  // AveragePool
  {
    name: 'k3 s2 pads 1 exclude pad',
    op: 'AveragePool',
    inputs: [X([1, 2, 5, 5])],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
  },
  {
    name: 'k3 s2 pads 1 count_include_pad',
    op: 'AveragePool',
    inputs: [X([1, 2, 5, 5])],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1 },
  },
  {
    name: 'asymmetric pads exclude pad',
    op: 'AveragePool',
    inputs: [X([1, 2, 5, 6])],
    attrs: { kernel_shape: [2, 3], pads: [1, 0, 0, 2] },
  },
  {
    name: 'ceil_mode exclude pad',
    op: 'AveragePool',
    inputs: [X([1, 2, 6, 6])],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 },
  },
  {
    name: 'ceil_mode pads 1 count_include_pad',
    op: 'AveragePool',
    inputs: [X([1, 2, 6, 6])],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 1 },
  },
  {
    name: 'k2 s2 no pads',
    op: 'AveragePool',
    inputs: [X([2, 3, 4, 6])],
    attrs: { kernel_shape: [2, 2], strides: [2, 2] },
  },
  {
    name: '1-D k3 s2 pads (1,1) include',
    op: 'AveragePool',
    inputs: [X([2, 3, 8])],
    attrs: { kernel_shape: [3], strides: [2], pads: [1, 1], count_include_pad: 1 },
  },
  { name: '[2,3,4,5]', op: 'GlobalAveragePool', inputs: [X([2, 3, 4, 5])] },
  { name: '1-D', op: 'GlobalAveragePool', inputs: [X([2, 3, 7])] },
].map((c) => ({ ...LIN, ...c }));

const positive = uni(0.5, 1.5);
const norms: GCase[] = [
  {
    name: 'inference form (all five inputs)',
    op: 'BatchNormalization',
    opset: 15,
    inputs: [X([2, 3, 4, 4]), X([3]), X([3]), X([3]), X([3], positive)],
    attrs: { epsilon: { type: 'float', value: 1e-3 } },
  },
  {
    name: 'inference form rank 2',
    op: 'BatchNormalization',
    inputs: [X([4, 3]), X([3]), X([3]), X([3]), X([3], positive)],
  },
  {
    name: 'training_mode=1 (running stats out, no gradient)',
    op: 'BatchNormalization',
    opset: 15,
    inputs: [X([4, 3, 3, 3]), X([3]), X([3]), X([3]), X([3], positive)],
    attrs: { training_mode: 1, momentum: { type: 'float', value: 0.9 } },
    outputs: 3,
    lossOutputs: [0],
    eps: 2e-3,
  },
  {
    name: 'training_mode=1 momentum 0 (statistics read from outputs 1/2)',
    op: 'BatchNormalization',
    opset: 15,
    inputs: [X([4, 3, 3, 3]), X([3]), X([3]), X([3]), X([3], positive)],
    attrs: {
      training_mode: 1,
      momentum: { type: 'float', value: 0 },
      epsilon: { type: 'float', value: 1e-3 },
    },
    outputs: 3,
    lossOutputs: [0],
    eps: 2e-3,
  },
  {
    name: 'training_mode=1 rank 2',
    op: 'BatchNormalization',
    opset: 15,
    inputs: [X([6, 4]), X([4]), X([4]), X([4]), X([4], positive)],
    attrs: { training_mode: 1 },
    outputs: 3,
    lossOutputs: [0],
    eps: 2e-3,
  },
  {
    name: 'training form at opset 12 (statistics outputs present)',
    op: 'BatchNormalization',
    opset: 12,
    inputs: [X([3, 2, 3, 3]), X([2]), X([2]), X([2]), X([2], positive)],
    outputs: 5,
    lossOutputs: [0],
    eps: 2e-3,
  },
  { name: 'last axis', op: 'LayerNormalization', inputs: [X([2, 3, 5]), X([5]), X([5])], eps: 2e-3 },
  {
    name: 'last 2 axes',
    op: 'LayerNormalization',
    inputs: [X([2, 3, 4]), X([3, 4]), X([3, 4])],
    attrs: { axis: -2 },
    eps: 2e-3,
  },
  {
    name: 'axis 1 of rank 4, epsilon 1e-2',
    op: 'LayerNormalization',
    inputs: [X([2, 2, 3, 2]), X([2, 3, 2]), X([2, 3, 2])],
    attrs: { axis: 1, epsilon: { type: 'float', value: 1e-2 } },
    eps: 2e-3,
  },
  {
    name: 'no bias, Mean/InvStdDev outputs present',
    op: 'LayerNormalization',
    inputs: [X([3, 6]), X([6])],
    outputs: 3,
    lossOutputs: [0],
    eps: 2e-3,
  },
  { name: '[2,3,4,4]', op: 'InstanceNormalization', inputs: [X([2, 3, 4, 4]), X([3]), X([3])], eps: 2e-3 },
  { name: '1-D spatial', op: 'InstanceNormalization', inputs: [X([2, 2, 7]), X([2]), X([2])], eps: 2e-3 },
];

for (const [title, cases] of [
  ['Conv', conv],
  ['ConvTranspose', convTranspose],
  ['pools', pools],
  ['normalizations', norms],
] as const)
  describe(`${title} gradients`, () => {
    for (const c of cases) it(gcaseName(c), () => checkGradCase(c, worst));
  });

describe('Conv input-gradient formulations', () => {
  const picks = conv.filter((c) => !/3-D/.test(c.name!));
  for (const form of ['flipped-conv', 'conv-transpose'] as const)
    it(`${form}: ${picks.length} Conv cases`, async () => {
      for (const c of picks)
        await checkGradCase(
          {
            ...c,
            inputs: c.inputs.map((s, i) => (s && i !== 0 ? { ...s, diff: false } : s)),
            forms: { convInput: form },
          },
          worst,
        );
    });
});

describe('Conv weight-gradient formulations', () => {
  // every formulation the 'auto' choice may pick is exact on the awkward cases, not only the one it picks today
  const forms: ConvWeightGradForm[] = ['cols-batched', 'cols-gemm', 'offset-gemms', 'batch-conv'];
  const picks = conv.filter((c) =>
    /stride 2 pad 1|stride \(2,3\)|dilation 2$|asymmetric|beyond|groups 2 stride|depthwise ×2|1-D stride|3-D|Cin 1|SAME_UPPER/.test(
      c.name!,
    ),
  );
  for (const form of forms)
    it(`${form}: ${picks.length} Conv cases`, async () => {
      for (const c of picks)
        await checkGradCase(
          {
            ...c,
            inputs: c.inputs.map((s, i) => (s && i !== 1 ? { ...s, diff: false } : s)),
            forms: { convWeight: form },
          },
          worst,
        );
    });
});

describe('MaxPool gradient forms', () => {
  it('the Indices + ScatterElements form agrees on non-overlapping windows too', async () => {
    for (const c of pools.filter((p) => /mask path/.test(p.name!) && !p.opset))
      await checkGradCase({ ...c, forms: { maxPoolMask: false } }, worst);
  });

  it('the mask form splits the gradient of a window equally among tied maxima', async () => {
    const g = new Graph('main');
    const m = new Model(g);
    m.opsetImports.set('', 17);
    const x = g.addInput('x', tensorType('float32', [1, 1, 2, 4]));
    const dy = g.addInput('dy', tensorType('float32', [1, 1, 1, 2]));
    const e = new Emitter(g, { opset: 17 });
    const y = e.op('MaxPool', [x], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) });
    inferShapes(m);
    const { grads } = buildGradients(m, y, [x], { seed: dy });
    g.outputs = [grads.get(x)!];
    g.removeUnused();
    const s = await Session.create(m, { threads: 1 });
    try {
      const out = await s.run({
        // windows {1, 1, 1, 0} (three tied maxima) and {0, 2, 2, 2}
        x: { dtype: 'float32', dims: [1, 1, 2, 4], data: Float32Array.from([1, 1, 0, 2, 1, 0, 2, 2]) },
        dy: { dtype: 'float32', dims: [1, 1, 1, 2], data: Float32Array.from([3, 6]) },
      });
      assert.deepEqual([...out[s.outputNames[0]!]!.data], [1, 1, 0, 2, 1, 0, 2, 2]);
    } finally {
      await s.release();
    }
  });
});

describe('gradient rule structure', () => {
  it('a 2×2/2 MaxPool keeps its single output and gets no ScatterElements', () => {
    const { model } = buildGradCase(pools.find((p) => /cnn-s/.test(p.name!))!);
    inferShapes(model);
    const g = model.graph;
    const pool = g.nodes.find((n) => n.opType === 'MaxPool')!;
    const e = new Emitter(g, { opset: 17, prefix: 'loss' });
    const loss = e.op('ReduceSum', [pool.output(0)], { keepdims: A.int(0) });
    inferShapes(model);
    buildGradients(model, loss, [g.inputs[0]!]);
    assert.equal(pool.outputs.length, 1);
    assert.ok(!g.nodes.some((n) => n.opType === 'ScatterElements'));
    assert.ok(g.nodes.some((n) => n.opType === 'Resize'));
  });

  it('MaxPool without Indices gets one added to the forward node, read by ScatterElements', () => {
    const { model } = buildGradCase(pools[0]!);
    const m = model.clone();
    inferShapes(m);
    const g = m.graph;
    const pool = g.nodes.find((n) => n.opType === 'MaxPool')!;
    assert.equal(pool.outputs.length, 1);
    const y = pool.output(0);
    const e = new Emitter(g, { opset: 17, prefix: 'loss' });
    const loss = e.op('ReduceSum', [y], { keepdims: A.int(0) });
    inferShapes(m);
    buildGradients(m, loss, [g.inputs[0]!]);
    assert.equal(pool.outputs.length, 2);
    const ind = pool.output(1);
    assert.equal(ind.dtype, 'int64');
    assert.ok(ind.uses.some((u) => u.node.opType === 'Reshape'));
    assert.ok(g.nodes.some((n) => n.opType === 'ScatterElements'));
  });

  it('the Conv input gradient: flipped-weight Conv for stride 1 without channel expansion, else ConvTranspose', () => {
    for (const [cin, cout, stride, expect] of [
      [6, 4, 1, 'Conv'],
      [4, 4, 1, 'Conv'],
      [3, 4, 1, 'ConvTranspose'],
      [6, 4, 2, 'ConvTranspose'],
    ] as const) {
      const g = new Graph('main');
      const m = new Model(g);
      m.opsetImports.set('', 17);
      const x = g.addInput('x', tensorType('float32', ['N', cin, 8, 8]));
      const w = g.addInput('w', tensorType('float32', [cout, cin, 3, 3]));
      const e = new Emitter(g, { opset: 17 });
      const y = e.op('Conv', [x, w], { pads: A.ints([1, 1, 1, 1]), strides: A.ints([stride, stride]) });
      const loss = e.op('ReduceSum', [y], { keepdims: A.int(0) });
      inferShapes(m);
      const { grads } = buildGradients(m, loss, [x, w]);
      assert.equal(grads.get(x)!.producer!.opType, expect, `${cin}→${cout} stride ${stride}`);
      // symbolic batch: the weight gradient still builds (reshapes use 0 / -1 for the batch)
      assert.ok(grads.get(w)!.producer);
    }
  });

  it('training-mode BatchNormalization with momentum 0 reads the batch statistics from its outputs', () => {
    for (const [momentum, reductions] of [
      [0, 0],
      [0.9, 2],
    ] as const) {
      const c = norms.find((n) => /momentum 0/.test(n.name!))!;
      const { model } = buildGradCase({
        ...c,
        attrs: { ...c.attrs, momentum: { type: 'float', value: momentum } },
      });
      inferShapes(model);
      const g = model.graph;
      const e = new Emitter(g, { opset: 15, prefix: 'loss' });
      const loss = e.op('ReduceSum', [g.nodes[0]!.output(0)], { keepdims: A.int(0) });
      inferShapes(model);
      const { emitted } = buildGradients(model, loss, [g.inputs[0]!]);
      assert.equal(
        emitted.filter((n) => n.opType === 'ReduceMean').length,
        reductions,
        `momentum ${momentum}`,
      );
    }
  });

  it('ConvTranspose with an output_shape implying odd padding is refused, not guessed', () => {
    const { model, feeds, wrt } = buildGradCase({
      op: 'ConvTranspose',
      inputs: [X([1, 2, 3, 3]), X([2, 2, 3, 3])],
      attrs: { strides: [2, 2], output_shape: [6, 6] },
    });
    return assert.rejects(gradCheck(model, { feeds, wrt }), /odd total padding/);
  });

  it('a BatchNormalization gradient flowing into the running statistics is refused', () => {
    const { model, feeds } = buildGradCase(norms[2]!);
    model.graph.outputs = model.graph.nodes[0]!.outputs.filter((o) => o !== null);
    return assert.rejects(gradCheck(model, { feeds, wrt: ['in0'] }), /running mean\/variance/);
  });
});

describe('the gradient check catches a broken rule', () => {
  it('a Conv rule whose weight gradient is spatially flipped fails gradCheck', async () => {
    const entry = lookup('Conv', '', 17)!;
    const good = entry.grad!;
    entry.grad = (node, g) => {
      const r = good(node, g);
      const dw = r[1];
      if (dw)
        r[1] = g.e.op('Slice', [
          dw,
          g.e.ints([-1, -1]),
          g.e.ints([-1e15, -1e15]),
          g.e.ints([2, 3]),
          g.e.ints([-1, -1]),
        ]);
      return r;
    };
    try {
      const { model, feeds } = buildGradCase(conv[0]!);
      const res = await gradCheck(model, { feeds, wrt: ['in1'], eps: 0.05 });
      assert.equal(res.ok, false);
      assert.ok(res.worst > 5, `worst ratio ${res.worst}`);
    } finally {
      entry.grad = good;
    }
  });

  it('a BatchNormalization training rule that ignores the batch statistics (inference formula) fails', async () => {
    const entry = lookup('BatchNormalization', '', 15)!;
    const good = entry.grad!;
    entry.grad = (node, g) => {
      // treat the batch statistics as constants: dX = dY · scale / √(var_batch + ε)
      const e = g.e;
      const x = node.input(0);
      const axes = [0, 2, 3];
      const mean = e.reduceMean(x, axes, true);
      const xc = e.sub(x, mean);
      const inv = e.op('Reciprocal', [
        e.op('Sqrt', [e.add(e.reduceMean(e.mul(xc, xc), axes, true), e.scalar(1e-5))]),
      ]);
      return [
        e.mul(g.outputGrad(0)!, e.mul(e.reshape(node.input(1), [1, -1, 1, 1]), inv)),
        null,
        null,
        null,
        null,
      ];
    };
    try {
      const { model, feeds } = buildGradCase(norms[2]!);
      const res = await gradCheck(model, { feeds, wrt: ['in0'], eps: 2e-3 });
      assert.equal(res.ok, false);
    } finally {
      entry.grad = good;
    }
  });
});
