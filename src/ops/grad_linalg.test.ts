// Gradient rules of src/ops/linalg.ts (Gemm, MatMul, com.microsoft FusedMatMul), checked against central finite
// differences through ORT (`gradCheck`). All three are bilinear, so a large step keeps float32 rounding small.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gradCheck } from '../autodiff/check.js';
import { lookup } from './index.js';
import { buildGradCase, checkGradCase, type GCase, gcaseName, printWorst, X } from '../testing/grad.js';

const worst = new Map<string, number>();
after(() => printWorst('linalg gradient rules', worst));

const F = (value: number) => ({ type: 'float' as const, value });
const LIN = { eps: 0.05 };

const gemm: GCase[] = [];
for (const transA of [0, 1])
  for (const transB of [0, 1])
    gemm.push({
      name: `transA=${transA} transB=${transB}, C [3,5]`,
      op: 'Gemm',
      inputs: [X(transA ? [4, 3] : [3, 4]), X(transB ? [5, 4] : [4, 5]), X([3, 5])],
      attrs: { transA, transB },
    });
for (const transA of [0, 1])
  for (const transB of [0, 1])
    gemm.push({
      name: `transA=${transA} transB=${transB} alpha 0.7 beta 1.3, C [5]`,
      op: 'Gemm',
      inputs: [X(transA ? [4, 3] : [3, 4]), X(transB ? [5, 4] : [4, 5]), X([5])],
      attrs: { transA, transB, alpha: F(0.7), beta: F(1.3) },
    });
gemm.push(
  { name: 'C [1,5]', op: 'Gemm', inputs: [X([3, 4]), X([4, 5]), X([1, 5])], attrs: { beta: F(0.5) } },
  {
    name: 'C scalar',
    op: 'Gemm',
    inputs: [X([3, 4]), X([4, 5]), X([])],
    attrs: { alpha: F(2), beta: F(-0.5) },
  },
  { name: 'C [3,1]', op: 'Gemm', inputs: [X([3, 4]), X([4, 5]), X([3, 1])] },
  { name: 'C [1]', op: 'Gemm', inputs: [X([3, 4]), X([5, 4]), X([1])], attrs: { transB: 1 } },
  { name: 'no C', op: 'Gemm', inputs: [X([3, 4]), X([4, 5])] },
  {
    name: 'opset 9 (C required)',
    op: 'Gemm',
    opset: 9,
    inputs: [X([2, 3]), X([3, 2]), X([2])],
    attrs: { transA: 0, alpha: F(1.5) },
  },
);

const matmul: GCase[] = [
  { op: 'MatMul', inputs: [X([3, 4]), X([4, 5])] },
  { op: 'MatMul', inputs: [X([2, 3, 4]), X([4, 5])] },
  { op: 'MatMul', inputs: [X([4]), X([4, 5])] },
  { op: 'MatMul', inputs: [X([3, 4]), X([4])] },
  { op: 'MatMul', inputs: [X([4]), X([4])] },
  { op: 'MatMul', inputs: [X([4]), X([2, 4, 5])] },
  { op: 'MatMul', inputs: [X([2, 3, 4]), X([4])] },
  { op: 'MatMul', inputs: [X([2, 1, 3, 4]), X([5, 4, 6])] },
  { op: 'MatMul', inputs: [X([3, 4]), X([2, 4, 5])] },
  { op: 'MatMul', inputs: [X([2, 3, 4]), X([2, 4, 5])] },
  { op: 'MatMul', inputs: [X([1, 3, 4]), X([2, 4, 5])] },
];

const fused: GCase[] = [
  { op: 'FusedMatMul', domain: 'com.microsoft', inputs: [X([3, 4]), X([4, 5])], attrs: { alpha: F(0.5) } },
  {
    op: 'FusedMatMul',
    domain: 'com.microsoft',
    inputs: [X([2, 3, 4]), X([5, 4])],
    attrs: { transB: 1, alpha: F(1.5) },
  },
  { op: 'FusedMatMul', domain: 'com.microsoft', inputs: [X([2, 4, 3]), X([2, 4, 5])], attrs: { transA: 1 } },
  {
    op: 'FusedMatMul',
    domain: 'com.microsoft',
    inputs: [X([2, 1, 4, 3]), X([3, 5, 4])],
    attrs: { transA: 1, transB: 1, alpha: F(-0.7) },
  },
];

for (const [title, cases] of [
  ['Gemm', gemm],
  ['MatMul', matmul],
  ['FusedMatMul', fused],
] as const)
  describe(`${title} gradients`, () => {
    for (const c of cases) it(gcaseName(c), () => checkGradCase({ ...LIN, ...c }, worst));
  });

describe('the gradient check catches a broken rule', () => {
  it('a Gemm rule that forgets alpha fails gradCheck', async () => {
    const entry = lookup('Gemm', '', 17)!;
    const good = entry.grad!;
    entry.grad = (node, g) => {
      const alpha = node.attrs.get('alpha');
      node.attrs.delete('alpha');
      try {
        return good(node, g);
      } finally {
        if (alpha) node.attrs.set('alpha', alpha);
      }
    };
    try {
      const { model, feeds } = buildGradCase({ ...LIN, ...gemm[5]! });
      const res = await gradCheck(model, { feeds, wrt: ['in0', 'in1'], eps: 0.05 });
      assert.equal(res.ok, false);
      assert.ok(res.rows.every((r) => !r.ok));
    } finally {
      entry.grad = good;
    }
  });
});
