// The one-hot ConvTranspose form of MaxPool's gradient (maxpool_grad.ts): vs finite differences through ORT below
// opset 16 (where it is the only form) and forced at opset 17, on overlapping, padded, dilated and ceil-mode
// windows; and equal to the ScatterElements form on the same graph.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { buildGradients, selectGradForms } from '../autodiff/grad.js';
import { A, Emitter, Graph, Model, tensorType } from '../ir/index.js';
import { Session } from '../runtime/index.js';
import { randomFloat } from '../testing/fixtures.js';
import { checkGradCase, distinct, type GCase, gcaseName, printWorst, X } from '../testing/grad.js';
import { inferShapes } from './index.js';

const worst = new Map<string, number>();
after(() => printWorst('MaxPool one-hot gradient', worst));

const CASES: GCase[] = [
  {
    name: 'ResNet stem k3 s2 pads 1',
    op: 'MaxPool',
    inputs: [X([2, 3, 8, 8], distinct())],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
  },
  {
    name: 'SqueezeNet k3 s2 ceil_mode',
    op: 'MaxPool',
    inputs: [X([1, 2, 7, 7], distinct())],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 },
  },
  {
    name: 'k3 s1 pads 1 (same size)',
    op: 'MaxPool',
    inputs: [X([1, 2, 5, 6], distinct())],
    attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] },
  },
  {
    name: 'k2 s1 dilation 2',
    op: 'MaxPool',
    inputs: [X([1, 2, 6, 6], distinct())],
    attrs: { kernel_shape: [2, 2], dilations: [2, 2] },
  },
  {
    name: 'k3 s2 asymmetric pads, trailing rows unread',
    op: 'MaxPool',
    inputs: [X([1, 2, 8, 9], distinct())],
    attrs: { kernel_shape: [3, 3], strides: [3, 2], pads: [0, 1, 0, 0] },
  },
  {
    name: '1-D k3 s2',
    op: 'MaxPool',
    inputs: [X([2, 3, 9], distinct())],
    attrs: { kernel_shape: [3], strides: [2] },
  },
];

describe('MaxPool one-hot gradient vs finite differences', () => {
  for (const c of CASES) {
    it(`opset 13: ${gcaseName(c)}`, async () => checkGradCase({ ...c, opset: 13 }, worst));
    it(`opset 17, forced: ${gcaseName(c)}`, async () => {
      await checkGradCase({ ...c, forms: { maxPoolOverlap: 'onehot' } }, worst);
    });
  }
});

it('the one-hot and ScatterElements forms give the same dX (ties included: both follow ORT’s Indices)', async () => {
  const dxOf = async (form: 'onehot' | 'scatter', tieInput: boolean) => {
    const g = new Graph('main');
    const m = new Model(g);
    m.opsetImports.set('', 17);
    const x = g.addInput('x', tensorType('float32', [2, 4, 9, 9]));
    const e = new Emitter(g, { opset: 17 });
    const y = e.op('MaxPool', [e.op('Relu', [x])], {
      kernel_shape: A.ints([3, 3]),
      strides: A.ints([2, 2]),
      pads: A.ints([1, 1, 1, 1]),
    });
    inferShapes(m);
    const dy = g.addInput('dy', tensorType('float32', [2, 4, 5, 5]));
    const { grads } = buildGradients(m, y, [x], {
      seed: dy,
      forms: selectGradForms({ maxPoolOverlap: form }),
    });
    g.outputs = [grads.get(x)!];
    g.removeUnused();
    const s = await Session.create(m, { threads: 1 });
    try {
      const xin = randomFloat([2, 4, 9, 9], 5);
      // Relu makes many windows all-zero ties; rounding makes more
      if (tieInput) (xin.data as Float32Array).forEach((v, i, a) => (a[i] = Math.round(v * 2) / 2));
      const r = await s.run({ x: xin, dy: randomFloat([2, 4, 5, 5], 6) });
      return r[s.outputNames[0]!]!.data as Float32Array;
    } finally {
      await s.release();
    }
  };
  for (const ties of [false, true]) {
    const a = await dxOf('onehot', ties);
    const b = await dxOf('scatter', ties);
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
    assert.ok(d < 1e-6, `ties ${ties}: max |diff| ${d}`);
  }
});
