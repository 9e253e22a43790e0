// Gradient rules of the element-wise ops vs central finite differences through ORT (gradCheck). Each row is a
// one-node (or few-node) model fed seeded random inputs kept away from the op's kinks; adding a case is one line.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { gradCheck } from '../autodiff/check.js';
import { buildGradients, UnsupportedGradientError } from '../autodiff/grad.js';
import { A, Graph, Model, Tensor, tensorType } from '../ir/index.js';
import { type HostTensor, Session } from '../runtime/index.js';
import {
  away,
  buildGradCase,
  C,
  checkGradCase,
  distinct,
  Fed,
  type GCase,
  gcaseName,
  I64,
  lattice,
  N,
  printWorst,
  runGradCase,
  uni,
  X,
  sumLoss,
} from '../testing/grad.js';
import { inferShapes } from './infer.js';
import { lookup, register } from './registry.js';
import { F as FA } from '../testing/ops.js';

const worst = new Map<string, number>();
after(() => printWorst('element-wise gradients', worst));

const pos = uni(0.3, 2);
const nz = away([0], 0.2, -1.5, 1.5);
const kink0 = away([0], 0.1);

/** Rows: one node each unless `after` adds more. Default opset 17. */
const cases: GCase[] = [
  // ---- binary arithmetic, broadcasting both ways
  { op: 'Add', inputs: [X([2, 3, 4]), X([4])] },
  { op: 'Add', inputs: [X([4]), X([2, 3, 4])] },
  { op: 'Add', inputs: [X([2, 1, 4]), X([3, 1])] },
  { op: 'Add', opset: 7, inputs: [X([2, 3]), X([3])] },
  { op: 'Add', opset: 13, inputs: [X([2, 3]), N([1, 3])] },
  { op: 'Sub', inputs: [X([2, 3, 4]), X([4])] },
  { op: 'Sub', inputs: [X([3, 1]), X([2, 1, 4])] },
  { op: 'Sub', opset: 13, inputs: [X([]), X([2, 3])] },
  { op: 'Mul', inputs: [X([2, 1, 4]), X([3, 1])] },
  { op: 'Mul', inputs: [X([2, 3, 4]), X([4])] },
  { op: 'Mul', opset: 7, inputs: [X([]), X([2, 3])] },
  { op: 'Mul', opset: 13, inputs: [X([2, 3]), C('float32', [0.5, -2, 3])] },
  { op: 'Div', inputs: [X([2, 3, 4]), X([4], nz)] },
  { op: 'Div', inputs: [X([4]), X([2, 3, 4], nz)] },
  { op: 'Div', opset: 13, inputs: [X([2, 1, 3]), X([4, 1], nz)] },
  { op: 'Pow', inputs: [X([2, 3], pos), X([3], uni(-1, 2))] },
  { op: 'Pow', inputs: [X([3], pos), X([2, 3], uni(-1, 2))] },
  { op: 'Pow', opset: 13, inputs: [X([2, 3]), C('float32', [3])] },
  { op: 'Pow', opset: 13, name: 'int64 exponent', inputs: [X([2, 3]), C('int64', [2], [])] },
  { op: 'Pow', opset: 7, inputs: [X([2, 3], pos), X([2, 3], uni(0.5, 2))] },
  // ---- unary math
  { op: 'Sqrt', inputs: [X([2, 3], pos)] },
  { op: 'Exp', inputs: [X([2, 3])] },
  { op: 'Log', inputs: [X([2, 3], pos)] },
  { op: 'Log', opset: 7, inputs: [X([4], pos)] },
  { op: 'Neg', inputs: [X([2, 3])] },
  { op: 'Abs', inputs: [X([2, 3], kink0)] },
  { op: 'Abs', opset: 7, name: 'sign without Sign', inputs: [X([2, 3], kink0)] },
  { op: 'Reciprocal', inputs: [X([2, 3], away([0], 0.3))] },
  { op: 'Floor', name: 'zero gradient', inputs: [X([2, 3], uni(0.1, 0.9))] },
  { op: 'Round', name: 'zero gradient', inputs: [X([2, 3], uni(0.1, 0.4))] },
  { op: 'Sin', inputs: [X([2, 3])] },
  { op: 'Cos', inputs: [X([2, 3])] },
  { op: 'Tan', inputs: [X([2, 3])] },
  { op: 'Asin', inputs: [X([2, 3], uni(-0.8, 0.8))] },
  { op: 'Acos', inputs: [X([2, 3], uni(-0.8, 0.8))] },
  { op: 'Atan', inputs: [X([2, 3])] },
  { op: 'Sinh', inputs: [X([2, 3])] },
  { op: 'Cosh', inputs: [X([2, 3])] },
  { op: 'Asinh', inputs: [X([2, 3])] },
  { op: 'Acosh', inputs: [X([2, 3], uni(1.2, 2))] },
  { op: 'Atanh', inputs: [X([2, 3], uni(-0.8, 0.8))] },
  { op: 'Identity', inputs: [X([2, 3])] },
  { op: 'Trilu', opset: 14, inputs: [X([3, 4])] },
  { op: 'Trilu', opset: 14, inputs: [X([2, 3, 4]), I64([1], [])], attrs: { upper: 0 } },
  // ---- activations
  { op: 'Relu', inputs: [X([2, 3, 4], kink0)] },
  { op: 'Relu', opset: 7, inputs: [X([2, 3], kink0)] },
  { op: 'LeakyRelu', inputs: [X([2, 3, 4], kink0)], attrs: { alpha: FA(0.1) } },
  { op: 'LeakyRelu', opset: 7, name: 'default alpha, no Where', inputs: [X([2, 3], kink0)] },
  { op: 'Sigmoid', inputs: [X([2, 3], uni(-3, 3))] },
  { op: 'Tanh', inputs: [X([2, 3], uni(-2, 2))] },
  { op: 'Erf', inputs: [X([2, 3], uni(-2, 2))] },
  { op: 'Gelu', opset: 20, inputs: [X([2, 3, 4], uni(-3, 3))] },
  { op: 'Gelu', opset: 20, inputs: [X([2, 3, 4], uni(-3, 3))], attrs: { approximate: 'tanh' } },
  { op: 'Gelu', domain: 'com.microsoft', inputs: [X([2, 3, 4], uni(-3, 3))] },
  { op: 'FastGelu', domain: 'com.microsoft', inputs: [X([2, 3, 4], uni(-3, 3))] },
  { op: 'FastGelu', domain: 'com.microsoft', inputs: [X([2, 3, 4], uni(-3, 3)), X([4])] },
  { op: 'BiasGelu', domain: 'com.microsoft', inputs: [X([2, 3, 4], uni(-3, 3)), X([4])] },
  { op: 'QuickGelu', domain: 'com.microsoft', inputs: [X([2, 3, 4], uni(-3, 3))] },
  { op: 'QuickGelu', domain: 'com.microsoft', inputs: [X([2, 3], uni(-3, 3))], attrs: { alpha: FA(1.2) } },
  { op: 'HardSigmoid', inputs: [X([2, 3, 4], away([-2.5, 2.5], 0.2, -4, 4))] },
  {
    op: 'HardSigmoid',
    opset: 7,
    inputs: [X([2, 3, 4], away([-1, 3], 0.2, -4, 4))],
    attrs: { alpha: FA(0.5), beta: FA(0.5) },
  },
  { op: 'HardSwish', opset: 14, inputs: [X([2, 3, 4], away([-3, 3], 0.2, -5, 5))] },
  { op: 'Elu', inputs: [X([2, 3], kink0)], attrs: { alpha: FA(0.7) } },
  { op: 'Selu', inputs: [X([2, 3], kink0)] },
  { op: 'Celu', inputs: [X([2, 3], kink0)], attrs: { alpha: FA(1.5) } },
  { op: 'ThresholdedRelu', inputs: [X([2, 3], away([0.5], 0.1))], attrs: { alpha: FA(0.5) } },
  { op: 'Softplus', inputs: [X([2, 3], uni(-3, 3))] },
  { op: 'Softsign', inputs: [X([2, 3], uni(-3, 3))] },
  { op: 'Mish', opset: 18, inputs: [X([2, 3], uni(-3, 3))] },
  { op: 'Shrink', inputs: [X([2, 3], away([-0.5, 0.5], 0.1))] },
  { op: 'PRelu', inputs: [X([2, 3, 4], kink0), X([4])] },
  { op: 'PRelu', inputs: [X([2, 3, 4], kink0), X([3, 1])] },
  // ---- Clip: attributes before opset 11, inputs after (each bound optional)
  {
    op: 'Clip',
    opset: 7,
    inputs: [X([2, 3, 4], away([-0.5, 0.5], 0.05))],
    attrs: { min: FA(-0.5), max: FA(0.5) },
  },
  {
    op: 'Clip',
    opset: 7,
    name: 'only max attribute',
    inputs: [X([2, 3], away([0.2], 0.05))],
    attrs: { max: FA(0.2) },
  },
  {
    op: 'Clip',
    opset: 11,
    inputs: [X([2, 3, 4], away([-0.5, 0.5], 0.05)), C('float32', [-0.5], []), C('float32', [0.5], [])],
  },
  {
    op: 'Clip',
    opset: 13,
    name: 'bounds differentiated',
    inputs: [
      X([2, 3, 4], away([-0.3, 0.4], 0.05)),
      { shape: [], value: undefined, gen: () => [-0.3] },
      { shape: [], gen: () => [0.4] },
    ],
  },
  {
    op: 'Clip',
    opset: 13,
    name: 'min omitted',
    inputs: [X([2, 3], away([0.1], 0.05)), null, C('float32', [0.1], [])],
  },
  { op: 'Clip', opset: 13, name: 'no bounds', inputs: [X([2, 3])] },
  // ---- softmax family: opset < 13 coerces to 2-D at axis, opset ≥ 13 is per axis
  { op: 'Softmax', opset: 11, inputs: [X([2, 3, 4])] },
  { op: 'Softmax', opset: 11, inputs: [X([2, 3, 4])], attrs: { axis: 1 } },
  { op: 'Softmax', opset: 11, inputs: [X([2, 3, 4])], attrs: { axis: -1 } },
  { op: 'Softmax', opset: 13, inputs: [X([2, 3, 4])] },
  { op: 'Softmax', opset: 13, inputs: [X([2, 3, 4])], attrs: { axis: 1 } },
  { op: 'Softmax', opset: 13, inputs: [X([2, 3, 4])], attrs: { axis: -3 } },
  { op: 'LogSoftmax', opset: 11, inputs: [X([2, 3, 4])] },
  { op: 'LogSoftmax', opset: 11, inputs: [X([2, 3, 4])], attrs: { axis: 2 } },
  { op: 'LogSoftmax', opset: 13, inputs: [X([2, 3, 4])], attrs: { axis: 1 } },
  { op: 'LogSoftmax', opset: 13, inputs: [X([2, 3, 4])] },
  // ---- Where (no gradient to the condition)
  { op: 'Where', inputs: [C('bool', [1, 0, 0, 1, 0, 1, 1, 0], [2, 1, 4]), X([3, 1]), X([4])] },
  { op: 'Where', opset: 9, inputs: [C('bool', [1, 0, 1], [3]), X([2, 3]), X([2, 3])] },
  { op: 'Where', opset: 16, inputs: [Fed('bool', [1, 0, 0, 1, 1, 0], [2, 3]), X([]), X([2, 1])] },
  // ---- Cast between float types (followed by a cast back so the loss stays float32)
  {
    op: 'Cast',
    name: 'float32 → float64 → float32',
    inputs: [X([2, 3])],
    attrs: { to: 11 },
    after: (g, [y]) => [
      g.addNode({ opType: 'Cast', inputs: [y!], outputs: ['back'], attrs: { to: A.int(1) } }).output(),
    ],
  },
  {
    op: 'Cast',
    opset: 13,
    name: 'float32 → float16 → float32',
    inputs: [X([2, 3])],
    attrs: { to: 10 },
    after: (g, [y]) => [
      g.addNode({ opType: 'Cast', inputs: [y!], outputs: ['back'], attrs: { to: A.int(1) } }).output(),
    ],
    eps: 0.1, // float16 rounding (≤ 2^-12 near 1) over a step of 0.1
    atol: 0.02,
  },
  { op: 'Cast', name: 'float32 → float32', inputs: [X([2, 3])], attrs: { to: 1 } },
  // ---- variadic
  { op: 'Sum', inputs: [X([2, 3, 4]), X([4]), X([3, 1])] },
  { op: 'Sum', opset: 13, inputs: [X([2, 3])] },
  { op: 'Sum', opset: 7, inputs: [X([2, 3]), N([2, 3])] },
  { op: 'Mean', inputs: [X([2, 3, 4]), X([4]), X([3, 1])] },
  { op: 'Max', opset: 13, inputs: [X([2, 3, 4], lattice(0, 2)), X([4], lattice(1, 2))] },
  {
    op: 'Max',
    opset: 8,
    inputs: [X([3, 1], lattice(0, 3)), X([2, 1, 4], lattice(1, 3)), X([4], lattice(2, 3))],
  },
  { op: 'Max', opset: 13, name: 'one input', inputs: [X([2, 3])] },
  { op: 'Min', opset: 13, inputs: [X([2, 1, 4], lattice(0, 2)), X([3, 1], lattice(1, 2))] },
  {
    op: 'Min',
    opset: 12,
    inputs: [X([2, 3], lattice(0, 3)), X([2, 3], lattice(1, 3)), X([3], lattice(2, 3))],
  },
  // ---- Dropout: identity in inference; deterministic training only with ratio 0 (masks differ per run)
  {
    op: 'Dropout',
    opset: 13,
    name: 'inference, mask output',
    inputs: [X([2, 3, 4])],
    outputs: ['y', 'mask'],
  },
  {
    op: 'Dropout',
    opset: 13,
    name: 'inference, training_mode false',
    inputs: [X([2, 3]), C('float32', [0.3], []), C('bool', [0], [])],
  },
  { op: 'Dropout', opset: 10, inputs: [X([2, 3])], attrs: { ratio: FA(0.3) }, outputs: ['y', 'mask'] },
  { op: 'Dropout', opset: 7, inputs: [X([2, 3])] },
  {
    op: 'Dropout',
    opset: 13,
    name: 'training, ratio 0',
    inputs: [X([2, 3, 4]), C('float32', [0], []), C('bool', [1], [])],
    outputs: ['y', 'mask'],
  },
  // ---- CumSum
  { op: 'CumSum', opset: 14, inputs: [X([2, 3, 4]), I64([1], [])] },
  { op: 'CumSum', opset: 14, inputs: [X([2, 3, 4]), I64([-1], [])], attrs: { exclusive: 1 } },
  { op: 'CumSum', opset: 11, inputs: [X([2, 5]), I64([1], [])], attrs: { reverse: 1 } },
  { op: 'CumSum', opset: 14, inputs: [X([5, 2]), I64([0], [])], attrs: { reverse: 1, exclusive: 1 } },
];

describe('element-wise gradients vs finite differences', () => {
  for (const c of cases) test(gcaseName(c), () => checkGradCase(c, worst));
});

describe('Dropout in training mode', () => {
  test('the gradient is d · mask / (1 − ratio), read from the same run', async () => {
    for (const [ratioConst, tmConst] of [
      [true, true],
      [false, true],
      [true, false],
    ]) {
      const g = new Graph('t');
      const x = g.addInput('x', tensorType('float32', [4, 8]));
      const ratio = ratioConst
        ? g.addInitializer('ratio', Tensor.scalar('float32', 0.25))
        : g.addInput('ratio', tensorType('float32', []));
      const tm = tmConst
        ? g.addInitializer('tm', Tensor.scalar('bool', 1))
        : g.addInput('tm', tensorType('bool', []));
      const n = g.addNode({
        opType: 'Dropout',
        name: 'drop',
        inputs: [x, ratio, tm],
        outputs: ['y', 'mask'],
        attrs: { seed: A.int(7) },
      });
      const m = new Model(g);
      m.opsetImports.set('', 13);
      inferShapes(m);
      // the seed of the gradient: a fixed ramp, so the expected value is easy to compute
      const seedVals = Array.from({ length: 32 }, (_, i) => 0.1 * i - 1);
      const seedV = g.addInitializer('dy', Tensor.from('float32', [4, 8], seedVals));
      const { grads } = buildGradients(m, n.output(0), [x], { seed: seedV });
      g.outputs = [n.output(1), grads.get(x)!];
      const s = await Session.create(m, { threads: 1 });
      try {
        const feeds: Record<string, HostTensor> = {
          x: { dtype: 'float32', dims: [4, 8], data: new Float32Array(32).fill(1) },
        };
        if (!ratioConst) feeds.ratio = { dtype: 'float32', dims: [], data: Float32Array.from([0.25]) };
        if (!tmConst) feeds.tm = { dtype: 'bool', dims: [], data: Uint8Array.from([1]) };
        const r = await s.run(feeds);
        const mask = r.mask!.data as Uint8Array;
        const gx = r[grads.get(x)!.name]!.data as Float32Array;
        let kept = 0;
        for (let i = 0; i < 32; i++) {
          kept += mask[i]!;
          assert.ok(Math.abs(gx[i]! - (mask[i] ? seedVals[i]! / 0.75 : 0)) < 1e-5, `element ${i}`);
        }
        assert.ok(kept > 0 && kept < 32, 'the mask should drop some elements and keep others');
      } finally {
        await s.release();
      }
    }
  });

  test('training mode without the mask output fails naming the node', () => {
    const { model } = buildGradCase({
      op: 'Dropout',
      opset: 13,
      inputs: [X([2, 3]), C('float32', [0.5], []), C('bool', [1], [])],
    });
    inferShapes(model);
    const g = model.graph;
    assert.throws(
      () => buildGradients(model, sumLoss(g, g.outputs[0]!), [g.inputs[0]!]),
      (e: unknown) => e instanceof UnsupportedGradientError && /Dropout "n0".*mask output/.test(e.message),
    );
  });
});

describe('the gradient harness', () => {
  test('a broken rule is caught (Mul with one gradient negated)', async () => {
    const entry = lookup('Mul', '', 17)!;
    const good = entry.grad!;
    const c: GCase = { op: 'Mul', inputs: [X([2, 1, 4]), X([3, 1])] };
    try {
      entry.grad = (n, g) => {
        const [ga, gb] = good(n, g);
        return [ga ?? null, gb ? g.e.neg(gb) : null];
      };
      const bad = await runGradCase(c);
      assert.equal(bad.ok, false, 'gradCheck passed a wrong rule');
      assert.ok(
        bad.rows.filter((r) => r.wrt === 'in1').every((r) => !r.ok),
        'every direction of the broken input fails',
      );
      assert.ok(
        bad.rows.filter((r) => r.wrt === 'in0').every((r) => r.ok),
        'the intact input still passes',
      );
    } finally {
      entry.grad = good;
    }
    assert.ok((await runGradCase(c)).ok, 'the restored rule passes again');
  });

  test('an op without a gradient rule raises UnsupportedGradientError naming the node', async () => {
    register({
      type: 'NoGradientTestOp',
      domain: 'edgefit.test',
      sinceVersion: [1],
      infer: (n, ctx) => [ctx.inputType(0)],
    });
    const g = new Graph('t');
    const x = g.addInput('x', tensorType('float32', [2, 3]));
    const h = g.addNode({ opType: 'Relu', name: 'relu', inputs: [x], outputs: ['h'] }).output();
    const y = g
      .addNode({
        opType: 'NoGradientTestOp',
        domain: 'edgefit.test',
        name: 'mystery',
        inputs: [h],
        outputs: ['y'],
      })
      .output();
    g.outputs = [y];
    const m = new Model(g);
    m.opsetImports.set('', 17);
    m.opsetImports.set('edgefit.test', 1);
    await assert.rejects(
      gradCheck(m, { feeds: { x: { dtype: 'float32', dims: [2, 3], data: new Float32Array(6).fill(0.5) } } }),
      (e: unknown) =>
        e instanceof UnsupportedGradientError &&
        e.subject.node === 'mystery' &&
        e.subject.opType === 'NoGradientTestOp' &&
        /NoGradientTestOp.*"mystery"/.test(e.message),
    );
  });

  test('ties and kinks are kept out of the random inputs', () => {
    const r = (() => {
      let s = 1;
      return () => ((s = (s * 16807) % 2147483647), s / 2147483647);
    })();
    assert.ok(away([0], 0.1)(200, r).every((v) => Math.abs(v) >= 0.1));
    const a = lattice(0, 2)(100, r);
    const b = lattice(1, 2)(100, r);
    assert.ok(a.every((u) => b.every((v) => Math.abs(u - v) > 0.05)));
    const d = distinct()(50, r).sort((p, q) => p - q);
    assert.ok(d.every((v, i) => i === 0 || v - d[i - 1]! > 0.05));
  });
});
