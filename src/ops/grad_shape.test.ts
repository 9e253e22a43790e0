// Gradient rules of the reductions and the shape-manipulating ops vs central finite differences through ORT
// (gradCheck), plus a check that the rules also build on symbolic dims (batch) and give the same numbers there.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { buildGradients, UnsupportedGradientError } from '../autodiff/grad.js';
import { A, type Dim, Tensor, tensorType } from '../ir/index.js';
import { type HostTensor, Session } from '../runtime/index.js';
import {
  away,
  buildGradCase,
  C,
  checkGradCase,
  distinct,
  type GCase,
  gcaseName,
  I64,
  N,
  printWorst,
  sumLoss,
  uni,
  X,
} from '../testing/grad.js';
import { inferShapes } from './infer.js';

const worst = new Map<string, number>();
after(() => printWorst('reduction and shape gradients', worst));

const BIG = 2 ** 31 - 1;
const pos = uni(0.3, 2);

const reductions: GCase[] = [
  // ReduceSum: axes attribute before 13, input from 13
  { op: 'ReduceSum', opset: 11, inputs: [X([2, 3, 4])], attrs: { axes: [1] } },
  { op: 'ReduceSum', opset: 11, inputs: [X([2, 3, 4])], attrs: { axes: [-1, 0], keepdims: 0 } },
  { op: 'ReduceSum', opset: 11, name: 'all axes', inputs: [X([2, 3])], attrs: { keepdims: 0 } },
  {
    op: 'ReduceSum',
    opset: 7,
    name: 'Tile instead of Expand',
    inputs: [X([2, 3, 4])],
    attrs: { axes: [1], keepdims: 0 },
  },
  { op: 'ReduceSum', opset: 13, inputs: [X([2, 3, 4]), I64([1])] },
  { op: 'ReduceSum', opset: 13, inputs: [X([2, 3, 4]), I64([-2, 2])], attrs: { keepdims: 0 } },
  { op: 'ReduceSum', opset: 13, name: 'no axes: all', inputs: [X([2, 3, 4])], attrs: { keepdims: 0 } },
  {
    op: 'ReduceSum',
    opset: 13,
    name: 'empty axes: all',
    inputs: [X([2, 3]), I64([])],
    attrs: { keepdims: 1 },
  },
  {
    op: 'ReduceSum',
    opset: 13,
    name: 'noop_with_empty_axes',
    inputs: [X([2, 3]), I64([])],
    attrs: { noop_with_empty_axes: 1 },
  },
  // ReduceMean: axes attribute before 18, input from 18
  { op: 'ReduceMean', opset: 13, inputs: [X([2, 3, 4])], attrs: { axes: [1] } },
  { op: 'ReduceMean', opset: 13, inputs: [X([2, 3, 4])], attrs: { axes: [-1], keepdims: 0 } },
  { op: 'ReduceMean', opset: 11, inputs: [X([2, 3, 4])], attrs: { keepdims: 0 } },
  { op: 'ReduceMean', opset: 18, inputs: [X([2, 3, 4]), I64([0, -1])] },
  { op: 'ReduceMean', opset: 18, inputs: [X([2, 3, 4]), I64([1])], attrs: { keepdims: 0 } },
  {
    op: 'ReduceMean',
    opset: 18,
    name: 'noop_with_empty_axes',
    inputs: [X([2, 3])],
    attrs: { noop_with_empty_axes: 1 },
  },
  // ReduceMax / ReduceMin (distinct values: no ties)
  { op: 'ReduceMax', opset: 13, inputs: [X([2, 3, 4], distinct())], attrs: { axes: [1] } },
  { op: 'ReduceMax', opset: 13, inputs: [X([2, 3, 4], distinct())], attrs: { axes: [-1], keepdims: 0 } },
  { op: 'ReduceMax', opset: 18, inputs: [X([2, 3, 4], distinct()), I64([0, 2])], attrs: { keepdims: 0 } },
  { op: 'ReduceMax', opset: 11, name: 'all axes', inputs: [X([3, 4], distinct())], attrs: { keepdims: 0 } },
  { op: 'ReduceMin', opset: 13, inputs: [X([2, 3, 4], distinct())], attrs: { axes: [2] } },
  { op: 'ReduceMin', opset: 18, inputs: [X([2, 3, 4], distinct()), I64([-3])], attrs: { keepdims: 0 } },
  // the rest of the family
  { op: 'ReduceSumSquare', opset: 13, inputs: [X([2, 3, 4])], attrs: { axes: [1], keepdims: 0 } },
  { op: 'ReduceSumSquare', opset: 18, inputs: [X([2, 3, 4]), I64([-1])] },
  { op: 'ReduceL1', opset: 13, inputs: [X([2, 3, 4], away([0], 0.1))], attrs: { axes: [2] } },
  { op: 'ReduceL2', opset: 13, inputs: [X([2, 3, 4])], attrs: { axes: [0, 2], keepdims: 0 } },
  { op: 'ReduceL2', opset: 18, inputs: [X([2, 3, 4]), I64([1])] },
  { op: 'ReduceLogSumExp', opset: 13, inputs: [X([2, 3, 4])], attrs: { axes: [1], keepdims: 0 } },
  { op: 'ReduceLogSumExp', opset: 18, inputs: [X([2, 3, 4]), I64([-1])] },
  { op: 'ReduceLogSum', opset: 13, inputs: [X([2, 3, 4], pos)], attrs: { axes: [2] } },
  {
    op: 'ReduceProd',
    opset: 13,
    inputs: [X([2, 3, 4], away([0], 0.3, -1.5, 1.5))],
    attrs: { axes: [1], keepdims: 0 },
  },
];

const shapes: GCase[] = [
  // reshape family: the gradient is reshaped back
  { op: 'Reshape', inputs: [X([2, 3, 4]), I64([6, -1])] },
  { op: 'Reshape', opset: 7, inputs: [X([2, 3, 4]), I64([0, 12])] },
  { op: 'Flatten', opset: 9, inputs: [X([2, 3, 4])], attrs: { axis: 2 } },
  { op: 'Flatten', opset: 13, inputs: [X([2, 3, 4])], attrs: { axis: 0 } },
  { op: 'Flatten', opset: 13, inputs: [X([2, 3, 4])], attrs: { axis: -1 } },
  { op: 'Squeeze', opset: 11, inputs: [X([2, 1, 4])], attrs: { axes: [1] } },
  { op: 'Squeeze', opset: 13, inputs: [X([2, 1, 4, 1]), I64([-1, 1])] },
  { op: 'Squeeze', opset: 13, name: 'no axes', inputs: [X([1, 3, 1])] },
  { op: 'Unsqueeze', opset: 11, inputs: [X([2, 3])], attrs: { axes: [0, 3] } },
  { op: 'Unsqueeze', opset: 13, inputs: [X([2, 3]), I64([-1])] },
  { op: 'Transpose', inputs: [X([2, 3, 4])], attrs: { perm: [2, 0, 1] } },
  { op: 'Transpose', name: 'default perm', inputs: [X([2, 3, 4])] },
  // Concat: the gradient is split by static sizes (attribute before 13, input from 13)
  {
    op: 'Concat',
    opset: 11,
    name: '3 inputs, one not differentiated',
    inputs: [X([2, 3]), N([2, 1]), X([2, 4])],
    attrs: { axis: -1 },
  },
  {
    op: 'Concat',
    opset: 13,
    name: '3 inputs, one not differentiated',
    inputs: [X([2, 3]), N([1, 3]), X([4, 3])],
    attrs: { axis: 0 },
  },
  {
    op: 'Concat',
    opset: 18,
    name: 'constant input',
    inputs: [X([2, 2, 3]), C('float32', [1, 2, 3, 4, 5, 6], [2, 1, 3])],
    attrs: { axis: -2 },
  },
  { op: 'Concat', name: 'one input', inputs: [X([2, 3])], attrs: { axis: 1 } },
  // Split: Concat of output gradients, zeros where an output does not reach the loss
  { op: 'Split', opset: 11, inputs: [X([2, 5])], attrs: { axis: 1, split: [2, 3] }, outputs: 2 },
  { op: 'Split', opset: 13, inputs: [X([6, 2]), I64([1, 2, 3])], outputs: 3 },
  {
    op: 'Split',
    opset: 13,
    name: 'middle output unused',
    inputs: [X([6, 2]), I64([1, 2, 3])],
    outputs: 3,
    lossOutputs: [0, 2],
  },
  {
    op: 'Split',
    opset: 18,
    name: 'num_outputs, uneven',
    inputs: [X([2, 5])],
    attrs: { axis: -1, num_outputs: 2 },
    outputs: 2,
  },
  {
    op: 'Split',
    opset: 18,
    name: 'first output unused',
    inputs: [X([4, 3])],
    attrs: { num_outputs: 2 },
    outputs: 2,
    lossOutputs: [1],
  },
  // Slice: attributes before 10; steps (negative ones too) from 10
  { op: 'Slice', opset: 9, inputs: [X([3, 5])], attrs: { starts: [1], ends: [4], axes: [1] } },
  { op: 'Slice', opset: 9, inputs: [X([3, 5])], attrs: { starts: [-2, 0], ends: [BIG, -1] } },
  { op: 'Slice', opset: 10, inputs: [X([3, 6]), I64([1]), I64([6]), I64([1]), I64([2])] },
  { op: 'Slice', opset: 13, inputs: [X([3, 5]), I64([1, -1]), I64([3, -BIG]), I64([0, 1]), I64([1, -1])] },
  { op: 'Slice', opset: 13, inputs: [X([2, 7]), I64([-2]), I64([0]), I64([-1]), I64([-2])] },
  { op: 'Slice', opset: 13, inputs: [X([4, 7, 2]), I64([3, 1]), I64([-BIG, 6]), I64([0, 1]), I64([-3, 2])] },
  {
    op: 'Slice',
    opset: 13,
    name: 'clamped bounds',
    inputs: [X([3, 4]), I64([-10, 2]), I64([10, 100]), I64([0, -1])],
  },
  { op: 'Slice', opset: 13, name: 'no axes input', inputs: [X([3, 4]), I64([1, 1]), I64([3, 3])] },
  // Gather: scatter-add (opset ≥ 16) or OneHot·MatMul (9–15); repeated indices add up
  { op: 'Gather', opset: 13, name: 'repeated indices', inputs: [X([4, 3]), I64([0, 2, 0, 1, 2, 2])] },
  { op: 'Gather', opset: 18, name: 'repeated indices', inputs: [X([4, 3]), I64([0, 2, 0, 1, 2, 2])] },
  {
    op: 'Gather',
    opset: 13,
    name: '2-D repeated and negative indices',
    inputs: [X([5, 2, 2]), I64([1, -1, 1, 4, 0, 1], [2, 3])],
  },
  {
    op: 'Gather',
    opset: 18,
    name: '2-D repeated and negative indices',
    inputs: [X([5, 2, 2]), I64([1, -1, 1, 4, 0, 1], [2, 3])],
  },
  { op: 'Gather', opset: 13, name: 'axis 1', inputs: [X([2, 4, 3]), I64([3, 0, 3])], attrs: { axis: 1 } },
  { op: 'Gather', opset: 18, name: 'axis 1', inputs: [X([2, 4, 3]), I64([3, 0, 3])], attrs: { axis: 1 } },
  {
    op: 'Gather',
    opset: 13,
    name: 'axis -1, 2-D indices',
    inputs: [X([2, 4]), I64([3, 3, 0, 1], [2, 2])],
    attrs: { axis: -1 },
  },
  {
    op: 'Gather',
    opset: 18,
    name: 'axis -1, 2-D indices',
    inputs: [X([2, 4]), I64([3, 3, 0, 1], [2, 2])],
    attrs: { axis: -1 },
  },
  {
    op: 'Gather',
    opset: 18,
    name: 'axis 1, 2-D indices',
    inputs: [X([2, 4, 3]), I64([3, 3, 0, 1], [2, 2])],
    attrs: { axis: 1 },
  },
  { op: 'Gather', opset: 13, name: 'scalar index', inputs: [X([3, 4]), I64([2], [])], attrs: { axis: 1 } },
  { op: 'Gather', opset: 18, name: 'scalar index', inputs: [X([3, 4]), I64([2], [])] },
  { op: 'Gather', opset: 18, name: 'int32 indices', inputs: [X([4, 3]), C('int32', [1, 1, 3])] },
  // GatherElements: ScatterElements add (≥ 16) or OneHot summed (11–15)
  {
    op: 'GatherElements',
    opset: 13,
    inputs: [X([3, 4]), I64([0, 0, 3, 1, 2, 2, 2, 2, 1, 0, 3, 0], [3, 4])],
    attrs: { axis: 1 },
  },
  {
    op: 'GatherElements',
    opset: 18,
    inputs: [X([3, 4]), I64([0, 0, 3, 1, 2, 2, 2, 2, 1, 0, 3, 0], [3, 4])],
    attrs: { axis: 1 },
  },
  {
    op: 'GatherElements',
    opset: 13,
    name: 'fewer indices',
    inputs: [X([3, 4]), I64([2, 2, 0, 1, 1, 1], [2, 3])],
    attrs: { axis: -2 },
  },
  {
    op: 'GatherElements',
    opset: 18,
    name: 'fewer indices',
    inputs: [X([3, 4]), I64([2, 2, 0, 1, 1, 1], [2, 3])],
    attrs: { axis: -2 },
  },
  { op: 'GatherND', opset: 18, inputs: [X([3, 4]), I64([0, 1, 2, 3, 0, 1], [3, 2])] },
  { op: 'GatherND', opset: 18, name: 'repeated rows', inputs: [X([3, 4]), I64([2, 0, 2], [3, 1])] },
  // Expand: sum back over the broadcast axes
  { op: 'Expand', inputs: [X([3, 1]), I64([2, 3, 4])] },
  { op: 'Expand', inputs: [X([4]), I64([2, 3, 1])] },
  { op: 'Expand', opset: 8, inputs: [X([2, 1, 3]), I64([2, 4, 3])] },
  // Tile
  { op: 'Tile', inputs: [X([2, 3]), I64([2, 1])] },
  { op: 'Tile', opset: 7, inputs: [X([2, 1, 3]), I64([2, 3, 2])] },
  // Pad (constant mode): attribute before 11, inputs after, axes from 18, negative pads crop
  { op: 'Pad', opset: 7, inputs: [X([2, 3])], attrs: { pads: [1, 0, 2, 2] } },
  { op: 'Pad', opset: 11, inputs: [X([2, 3, 4]), I64([0, 1, 2, 1, 0, 1])] },
  { op: 'Pad', opset: 13, name: 'negative pads', inputs: [X([3, 5]), I64([-1, 2, 1, -2])] },
  { op: 'Pad', opset: 18, name: 'axes input', inputs: [X([2, 3, 4]), I64([1, 2, 0, 1]), null, I64([-1, 1])] },
  {
    op: 'Pad',
    opset: 18,
    name: 'constant value differentiated',
    inputs: [X([2, 3]), I64([1, 1, 0, 2]), X([])],
  },
];

/** Resize / Upsample: linear in x for fixed sizes, so finite differences are exact up to rounding (LIN step). */
const F32 = (v: number[]) => C('float32', v);
const LIN = { eps: 0.05 };
const resize: GCase[] = [
  {
    name: 'nearest ×2, asymmetric floor (torch nn.Upsample)',
    op: 'Resize',
    opset: 13,
    inputs: [X([1, 2, 3, 4]), null, F32([1, 1, 2, 2])],
    attrs: { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
    ...LIN,
  },
  {
    name: 'nearest ×2 asymmetric: ties (x.5) round down by default, up with round_prefer_ceil',
    op: 'Resize',
    opset: 13,
    inputs: [X([1, 1, 3, 3]), null, F32([1, 1, 2, 2])],
    attrs: { coordinate_transformation_mode: 'asymmetric' },
    after: (g, [y]) => {
      const x = g.inputs[0]!;
      const [roi, scales] = [g.nodes[0]!.inputs[1] ?? null, g.nodes[0]!.inputs[2]!];
      const y2 = g
        .addNode({
          opType: 'Resize',
          inputs: [x, roi, scales],
          outputs: ['y_ceil'],
          attrs: {
            coordinate_transformation_mode: A.string('asymmetric'),
            nearest_mode: A.string('round_prefer_ceil'),
          },
        })
        .output();
      return [y!, y2];
    },
    ...LIN,
  },
  {
    name: 'nearest ×2 half_pixel round_prefer_floor (defaults)',
    op: 'Resize',
    opset: 13,
    inputs: [X([2, 1, 3, 3]), null, F32([1, 1, 2, 2])],
    ...LIN,
  },
  {
    name: 'nearest by sizes 5×7 → 8×3 (up and down), round_prefer_ceil',
    op: 'Resize',
    opset: 13,
    inputs: [X([1, 2, 5, 7]), null, null, I64([1, 2, 8, 3])],
    attrs: { nearest_mode: 'round_prefer_ceil' },
    ...LIN,
  },
  {
    name: 'nearest scales (1.5, 0.6), ceil',
    op: 'Resize',
    opset: 13,
    inputs: [X([1, 1, 4, 5]), null, F32([1, 1, 1.5, 0.6])],
    attrs: { nearest_mode: 'ceil', coordinate_transformation_mode: 'asymmetric' },
    ...LIN,
  },
  {
    name: 'linear ×2 half_pixel (bilinear)',
    op: 'Resize',
    opset: 13,
    inputs: [X([1, 2, 3, 4]), null, F32([1, 1, 2, 2])],
    attrs: { mode: 'linear' },
    ...LIN,
  },
  {
    name: 'linear align_corners by sizes 4×5 → 7×3',
    op: 'Resize',
    opset: 13,
    inputs: [X([2, 1, 4, 5]), null, null, I64([2, 1, 7, 3])],
    attrs: { mode: 'linear', coordinate_transformation_mode: 'align_corners' },
    ...LIN,
  },
  {
    name: 'linear pytorch_half_pixel scales (0.5, 1.75)',
    op: 'Resize',
    opset: 13,
    inputs: [X([1, 2, 6, 4]), null, F32([1, 1, 0.5, 1.75])],
    attrs: { mode: 'linear', coordinate_transformation_mode: 'pytorch_half_pixel' },
    ...LIN,
  },
  {
    name: 'linear half_pixel_symmetric ×1.5 (opset 19)',
    op: 'Resize',
    opset: 19,
    inputs: [X([1, 1, 4, 4]), null, F32([1, 1, 1.5, 1.5])],
    attrs: { mode: 'linear', coordinate_transformation_mode: 'half_pixel_symmetric' },
    ...LIN,
  },
  {
    name: 'opset 18 axes [3]: width only, on a 4-D input',
    op: 'Resize',
    opset: 18,
    inputs: [X([1, 2, 3, 4]), null, F32([2.5])],
    attrs: { axes: [3], mode: 'linear' },
    ...LIN,
  },
  {
    name: 'Resize-10 nearest (legacy rounding) ×(2, 3)',
    op: 'Resize',
    opset: 10,
    inputs: [X([1, 2, 3, 3]), F32([1, 1, 2, 3])],
    ...LIN,
  },
  {
    name: 'Resize-10 nearest downsample 0.6 (legacy: ceil)',
    op: 'Resize',
    opset: 10,
    inputs: [X([1, 1, 6, 5]), F32([1, 1, 0.6, 0.6])],
    ...LIN,
  },
  {
    name: 'Upsample-9 linear ×2',
    op: 'Upsample',
    opset: 9,
    inputs: [X([1, 2, 3, 3]), F32([1, 1, 2, 2])],
    attrs: { mode: 'linear' },
    ...LIN,
  },
];

describe('Resize / Upsample gradients vs finite differences', () => {
  for (const c of resize) test(gcaseName(c), () => checkGradCase(c, worst));
});

describe('reduction gradients vs finite differences', () => {
  for (const c of reductions) test(gcaseName(c), () => checkGradCase(c, worst));
});

describe('shape-op gradients vs finite differences', () => {
  for (const c of shapes) test(gcaseName(c), () => checkGradCase(c, worst));

  test('Shape / ConstantOfShape / Constant pass nothing back', async () => {
    // y = x · ConstantOfShape(Shape(x)) · Constant: only the Mul path carries a gradient
    await checkGradCase(
      {
        op: 'Shape',
        name: 'x · ConstantOfShape(Shape(x))',
        inputs: [X([2, 3])],
        after: (g, [s]) => {
          const x = g.inputs[0]!;
          const twos = g
            .addNode({
              opType: 'ConstantOfShape',
              inputs: [s!],
              outputs: ['twos'],
              attrs: { value: A.tensor(Tensor.from('float32', [1], [2])) },
            })
            .output();
          const k = g
            .addNode({
              opType: 'Constant',
              outputs: ['k'],
              attrs: { value: A.tensor(Tensor.scalar('float32', 3)) },
            })
            .output();
          const y = g.addNode({ opType: 'Mul', inputs: [x, twos], outputs: ['y'] }).output();
          return [g.addNode({ opType: 'Mul', inputs: [y, k], outputs: ['z'] }).output()];
        },
      },
      worst,
    );
  });
});

describe('unsupported forms fail clearly', () => {
  const fails = (c: GCase, re: RegExp) => () => {
    const { model } = buildGradCase(c);
    inferShapes(model);
    const g = model.graph;
    const loss = sumLoss(g, g.outputs[0]!);
    assert.throws(
      () => buildGradients(model, loss, [g.inputs[0]!]),
      (e: unknown) => e instanceof UnsupportedGradientError && e.subject.node === 'n0' && re.test(e.message),
    );
  };
  test(
    'Pad in reflect mode',
    fails(
      { op: 'Pad', opset: 13, inputs: [X([2, 3]), I64([0, 1, 0, 1])], attrs: { mode: 'reflect' } },
      /mode "reflect"/,
    ),
  );
  test(
    'Resize in cubic mode',
    fails(
      {
        op: 'Resize',
        opset: 13,
        inputs: [X([1, 1, 3, 3]), null, C('float32', [1, 1, 2, 2])],
        attrs: { mode: 'cubic' },
      },
      /mode "cubic" has no gradient rule/,
    ),
  );
  test(
    'Resize with tf_crop_and_resize',
    fails(
      {
        op: 'Resize',
        opset: 13,
        inputs: [X([1, 1, 3, 3]), C('float32', [0, 0, 0, 0, 1, 1, 1, 1]), C('float32', [1, 1, 2, 2])],
        attrs: { coordinate_transformation_mode: 'tf_crop_and_resize' },
      },
      /coordinate_transformation_mode "tf_crop_and_resize"/,
    ),
  );
  test(
    'Resize with computed scales',
    fails(
      {
        op: 'Resize',
        opset: 13,
        inputs: [X([1, 1, 3, 3]), null, { shape: [4], dtype: 'float32', diff: false }],
      },
      /needs static input and output shapes, got \[1, 1, 3, 3\] → \[\?, \?, \?, \?\]/,
    ),
  );
  test(
    'Slice with computed starts',
    fails(
      { op: 'Slice', opset: 13, inputs: [X([2, 3]), { shape: [1], dtype: 'int64', diff: false }, I64([2])] },
      /starts .* must be a constant/,
    ),
  );
  test(
    'ReduceSum with computed axes',
    fails(
      { op: 'ReduceSum', opset: 13, inputs: [X([2, 3]), { shape: [1], dtype: 'int64', diff: false }] },
      /axes .* must be a constant/,
    ),
  );
});

// ---------------------------------------------------------------- opset forms

/** Op types the rule of a case emits (the backward nodes of the case's node only). */
function emittedOps(c: GCase): string[] {
  const { model } = buildGradCase(c);
  inferShapes(model);
  const g = model.graph;
  const loss = sumLoss(g, g.outputs[0]!);
  const { emitted } = buildGradients(model, loss, [g.inputs[0]!]);
  return emitted
    .filter((n) => n.name.startsWith('grad/n0/'))
    .map((n) => n.opType + (n.attrs.size ? `{${[...n.attrs.keys()].sort().join(',')}}` : ''));
}

describe('each opset gets its form', () => {
  const has =
    (c: GCase, want: string[], not: string[] = []) =>
    () => {
      const ops = emittedOps(c);
      for (const w of want) assert.ok(ops.includes(w), `expected ${w} in [${ops.join(' ')}]`);
      for (const w of not)
        assert.ok(!ops.some((o) => o.startsWith(w)), `did not expect ${w} in [${ops.join(' ')}]`);
    };
  const gather = (opset: number, axis = 0): GCase => ({
    op: 'Gather',
    opset,
    inputs: [X([4, 3]), I64([0, 2, 0])],
    attrs: { axis },
  });
  test('Gather opset 13: OneHot · MatMul', has(gather(13), ['OneHot{axis}', 'MatMul'], ['Scatter']));
  test('Gather opset 18 axis 0: ScatterND add', has(gather(18), ['ScatterND{reduction}'], ['OneHot']));
  test(
    'Gather opset 18 axis 1: ScatterElements add',
    has(gather(18, 1), ['ScatterElements{axis,reduction}'], ['OneHot']),
  );
  const ge = (opset: number): GCase => ({
    op: 'GatherElements',
    opset,
    inputs: [X([2, 3]), I64([0, 2, 2, 1, 1, 0], [2, 3])],
    attrs: { axis: 1 },
  });
  test('GatherElements opset 13: OneHot', has(ge(13), ['OneHot{axis}'], ['Scatter']));
  test(
    'GatherElements opset 18: ScatterElements add',
    has(ge(18), ['ScatterElements{axis,reduction}'], ['OneHot']),
  );
  test(
    'Slice step 1: one Pad',
    has(
      { op: 'Slice', opset: 13, inputs: [X([3, 5]), I64([1, 1]), I64([3, 4])] },
      ['Pad{mode}'],
      ['Scatter'],
    ),
  );
  test(
    'Slice step 2: ScatterElements',
    has({ op: 'Slice', opset: 13, inputs: [X([3, 6]), I64([0]), I64([6]), I64([1]), I64([2])] }, [
      'ScatterElements{axis}',
    ]),
  );
  test(
    'Slice opset 10: Scatter',
    has({ op: 'Slice', opset: 10, inputs: [X([3, 6]), I64([0]), I64([6]), I64([1]), I64([2])] }, [
      'Scatter{axis}',
    ]),
  );
  test(
    'Slice opset 9: Pad with attributes',
    has({ op: 'Slice', opset: 9, inputs: [X([3, 5])], attrs: { starts: [1], ends: [4], axes: [1] } }, [
      'Pad{mode,pads,value}',
    ]),
  );
  const cc = (opset: number): GCase => ({
    op: 'Concat',
    opset,
    inputs: [X([2, 3]), X([2, 1])],
    attrs: { axis: 1 },
  });
  test('Concat opset 11: Split with a split attribute', has(cc(11), ['Split{axis,split}']));
  test('Concat opset 13: Split with a split input', has(cc(13), ['Split{axis}']));
  test(
    'ReduceSum opset 11: Unsqueeze with axes attribute',
    has({ op: 'ReduceSum', opset: 11, inputs: [X([2, 3])], attrs: { axes: [1], keepdims: 0 } }, [
      'Unsqueeze{axes}',
      'Expand',
    ]),
  );
  test(
    'ReduceSum opset 13: Unsqueeze with axes input',
    has({ op: 'ReduceSum', opset: 13, inputs: [X([2, 3]), I64([1])], attrs: { keepdims: 0 } }, [
      'Unsqueeze',
      'Expand',
    ]),
  );
  test(
    'Pad opset 7: Slice with attributes',
    has({ op: 'Pad', opset: 7, inputs: [X([2, 3])], attrs: { pads: [1, 0, 2, 2] } }, [
      'Slice{axes,ends,starts}',
    ]),
  );
});

// ---------------------------------------------------------------- symbolic dims

/**
 * Build forward + gradient with a symbolic batch dim "N" on input 0, run it at N = 2, and compare with the same
 * graph built with static dims (checked against finite differences above).
 */
async function symbolicMatchesStatic(c: GCase): Promise<void> {
  const run = async (symbolic: boolean) => {
    const { model, feeds, wrt } = buildGradCase(c);
    const g = model.graph;
    const x0 = g.inputs[0]!;
    if (symbolic) x0.type = tensorType('float32', ['N', ...(x0.shape!.slice(1) as Dim[])]);
    inferShapes(model);
    const y = g.outputs[0]!;
    const ys = y.shape!;
    const rDims = ys.map((d, i) => (i === 0 || typeof d !== 'number' ? 1 : d));
    const rN = rDims.reduce((a, b) => a * b, 1);
    const R = g.addInitializer(
      'R',
      Tensor.from(
        'float32',
        rDims,
        Array.from({ length: rN }, (_, i) => Math.sin(i + 1)),
      ),
    );
    const yr = g.addNode({ opType: 'Mul', inputs: [y, R], outputs: ['yr'] }).output();
    const loss = g
      .addNode({ opType: 'ReduceSum', inputs: [yr], outputs: ['loss'], attrs: { keepdims: A.int(0) } })
      .output();
    inferShapes(model);
    const ins = wrt.map((n) => g.inputs.find((v) => v.name === n)!);
    const { grads } = buildGradients(model, loss, ins);
    g.outputs = ins.map((v) => grads.get(v)!);
    const s = await Session.create(model, { threads: 1 });
    try {
      const r = await s.run(feeds as Record<string, HostTensor>);
      return g.outputs.map((v) => Array.from(r[v.name]!.data as Float32Array));
    } finally {
      await s.release();
    }
  };
  const stat = await run(false);
  const sym = await run(true);
  assert.equal(sym.length, stat.length);
  sym.forEach((a, k) =>
    a.forEach((v, i) =>
      assert.ok(Math.abs(v - stat[k]![i]!) < 1e-5, `grad ${k}[${i}]: ${v} vs ${stat[k]![i]}`),
    ),
  );
}

describe('rules build on a symbolic batch dim', () => {
  const cases: GCase[] = [
    { op: 'ReduceMean', opset: 13, inputs: [X([2, 3, 4])], attrs: { axes: [0, 2] } },
    { op: 'ReduceMean', opset: 18, inputs: [X([2, 3, 4]), I64([-1])], attrs: { keepdims: 0 } },
    { op: 'ReduceSum', opset: 13, inputs: [X([2, 3]), I64([1])] },
    { op: 'Reshape', opset: 13, inputs: [X([2, 3, 4]), I64([0, -1])] },
    { op: 'Slice', opset: 13, name: 'x[:, 1:]', inputs: [X([2, 5]), I64([1]), I64([BIG]), I64([1])] },
    { op: 'Slice', opset: 13, name: 'x[:, 1:-1]', inputs: [X([2, 5]), I64([1]), I64([-1]), I64([1])] },
    {
      op: 'Slice',
      opset: 13,
      name: 'x[:, ::-2]',
      inputs: [X([2, 5]), I64([-1]), I64([-BIG]), I64([1]), I64([-2])],
    },
    { op: 'Gather', opset: 13, name: 'axis 1', inputs: [X([2, 4, 3]), I64([3, 0, 3])], attrs: { axis: 1 } },
    { op: 'Gather', opset: 18, name: 'axis 1', inputs: [X([2, 4, 3]), I64([3, 0, 3])], attrs: { axis: 1 } },
    { op: 'Softmax', opset: 13, inputs: [X([2, 3])] },
    { op: 'Expand', inputs: [X([2, 1]), I64([1, 3])] },
    { op: 'Pad', opset: 13, inputs: [X([2, 3]), I64([0, 1, 0, 2])] },
    { op: 'Concat', opset: 13, inputs: [X([2, 3]), X([2, 1])], attrs: { axis: 1 } },
  ];
  for (const c of cases) test(gcaseName(c), () => symbolicMatchesStatic(c));
});
