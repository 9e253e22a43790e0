// Opsets 22–26: every ai.onnx op that got a new version there (and existed before) converted from an older model
// and run in ORT before/after; the verify rule knows the new ops and forms; GroupNormalization 18 → 21.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UnsupportedError } from '../../errors.js';
import { A, Graph, type Model, Tensor, type Value } from '../../ir/index.js';
import { dtypeCode } from '../../ir/dtype.js';
import { MAX_KNOWN_OPSET, opsetProblems, opVersionAt } from '../../onnx/index.js';
import { OP_HISTORY } from '../../onnx/schemas.gen.js';
import { runModel } from '../../runtime/index.js';
import { randomInputs } from '../check.js';
import { checkConversion, oneOp } from '../../testing/opset.js';
import { type Hand, rand } from '../../testing/passes.js';
import { convertOpset, irVersionFor, NO_ORT_KERNEL_22 } from './convert.js';

type Build = (h: Hand, x: Value) => Value[];
interface Case {
  /** The ops of the model whose version changes at 22–26 (the coverage check below reads these). */
  ops: string[];
  from: number;
  shape: number[];
  build: Build;
  tol?: number;
  /** The rewrite expected (null: a version bump). */
  rule?: string;
  feeds?: Record<string, { dtype: 'float32'; dims: number[]; data: Float32Array }>;
}

const f = (h: Hand, name: string, dims: number[], seed: number, range: [number, number] = [-1, 1]) =>
  h.init(name, rand(dims, seed, 1, range));
const i64 = (h: Hand, name: string, dims: number[], xs: number[]) =>
  h.init(name, Tensor.from('int64', dims, xs));
const unary = (op: string, pre?: (h: Hand, x: Value) => Value, attrs = {}): Build => {
  return (h, x) => [h.e.op(op, [pre ? pre(h, x) : x], attrs)];
};
/** x in (−1, 1) → a value in (0.05, 0.95) (asin/acos/atanh/Bernoulli domains). */
const unit = (h: Hand, x: Value) => h.e.op('Mul', [h.e.op('Sigmoid', [x]), h.e.scalar(0.9)]);

/** A subgraph of `parent` with its nodes added by `body`, whose returned values become its outputs. */
function subgraph(
  parent: Graph,
  name: string,
  inputs: [string, 'float32' | 'int64' | 'bool', number[]][],
  body: (g: Graph, ins: Value[]) => Value[],
): Graph {
  const g = new Graph(name, parent);
  const ins = inputs.map(([n, dtype, shape]) => g.addInput(n, { kind: 'tensor', dtype, shape }));
  g.outputs.push(...body(g, ins));
  return g;
}
const sgOp = (g: Graph, op: string, inputs: Value[], out: string, attrs = {}): Value =>
  g.addNode({ opType: op, inputs, outputs: [out], attrs }).output(0);

const CASES: Case[] = [
  // 22: bfloat16 added; the pooling ops also state that a ceil_mode window starting in the right padding is dropped
  ...['Sin', 'Cos', 'Tan', 'Atan', 'Sinh', 'Cosh', 'Asinh'].map((op) => ({
    ops: [op],
    from: 17,
    shape: [2, 5],
    build: unary(op),
  })),
  ...['Asin', 'Acos', 'Atanh'].map((op) => ({ ops: [op], from: 17, shape: [2, 5], build: unary(op, unit) })),
  {
    ops: ['Acosh'],
    from: 17,
    shape: [2, 5],
    build: unary('Acosh', (h, x) => h.e.op('Add', [h.e.op('Abs', [x]), h.e.scalar(1.5)])),
  },
  ...['Elu', 'Selu', 'HardSigmoid', 'HardSwish', 'Mish', 'Softplus', 'Softsign', 'Round'].map((op) => ({
    ops: [op],
    from: 18,
    shape: [2, 6],
    build: unary(op, (h, x) => h.e.op('Mul', [x, h.e.scalar(3)])),
  })),
  {
    ops: ['ThresholdedRelu'],
    from: 17,
    shape: [2, 6],
    build: unary('ThresholdedRelu', undefined, { alpha: A.float(0.3) }),
  },
  {
    ops: ['Conv', 'ConvTranspose'],
    from: 17,
    shape: [1, 4, 5, 6],
    build: (h, x) => {
      const c = h.e.op('Conv', [x, f(h, 'w', [6, 2, 3, 3], 1), f(h, 'b', [6], 2)], {
        group: A.int(2),
        pads: A.ints([1, 0, 1, 2]),
        strides: A.ints([2, 1]),
      });
      return [
        h.e.op('ConvTranspose', [c, f(h, 'wt', [6, 2, 3, 2], 3), f(h, 'bt', [4], 4)], {
          group: A.int(2),
          strides: A.ints([2, 2]),
          output_padding: A.ints([1, 0]),
        }),
      ];
    },
    tol: 1e-5,
  },
  {
    ops: ['DeformConv'],
    from: 19,
    shape: [1, 2, 5, 5],
    build: (h, x) => [
      h.e.op(
        'DeformConv',
        [x, f(h, 'w', [3, 2, 3, 3], 1), f(h, 'off', [1, 18, 3, 3], 2), f(h, 'b', [3], 3)],
        {
          kernel_shape: A.ints([3, 3]),
        },
      ),
    ],
    tol: 1e-5,
  },
  {
    // ceil_mode windows: [1,1,4] with k 2, s 2, pads (0,1) — the third window would start in the right padding
    ops: ['MaxPool', 'AveragePool', 'LpPool'],
    from: 19,
    shape: [1, 2, 4, 7],
    build: (h, x) => {
      const pool = {
        kernel_shape: A.ints([2, 2]),
        strides: A.ints([2, 2]),
        pads: A.ints([0, 0, 1, 1]),
        ceil_mode: A.int(1),
      };
      const mp = h.e.node('MaxPool', [x], pool, { outputs: 2 }).outputs as Value[];
      return [
        ...mp,
        h.e.op('MaxPool', [x], { kernel_shape: A.ints([2, 3]), dilations: A.ints([1, 2]) }),
        h.e.op('AveragePool', [x], pool),
        h.e.op('AveragePool', [x], { ...pool, count_include_pad: A.int(1) }),
        h.e.op('LpPool', [x], { kernel_shape: A.ints([2, 2]), strides: A.ints([1, 2]), p: A.int(3) }),
      ];
    },
    tol: 1e-5,
  },
  {
    ops: ['GlobalAveragePool', 'GlobalMaxPool', 'InstanceNormalization', 'LpNormalization'],
    from: 17,
    shape: [2, 3, 4, 5],
    build: (h, x) => [
      h.e.op('GlobalAveragePool', [x]),
      h.e.op('GlobalMaxPool', [x]),
      h.e.op('InstanceNormalization', [x, f(h, 's', [3], 1), f(h, 'b', [3], 2)], { epsilon: A.float(1e-3) }),
      h.e.op('LpNormalization', [x], { axis: A.int(1), p: A.int(1) }),
    ],
    tol: 1e-5,
  },
  {
    ops: ['MaxUnpool'],
    from: 17,
    shape: [1, 2, 6, 6],
    build: (h, x) => {
      const [v, idx] = h.e.node(
        'MaxPool',
        [x],
        { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) },
        { outputs: 2 },
      ).outputs as Value[];
      return [h.e.op('MaxUnpool', [v!, idx!], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) })];
    },
  },
  ...[1, 2, 3].map((p) => ({
    // ORT 1.30 has no GlobalLpPool-22 kernel: a Reduce over the spatial axes
    ops: ['GlobalLpPool'],
    from: 17,
    shape: [2, 3, 4, 5],
    build: ((h, x) => [h.e.op('GlobalLpPool', [x], { p: A.int(p) })]) as Build,
    rule: 'GlobalLpPool-22',
    tol: 1e-5,
  })),
  {
    ops: ['GridSample'],
    from: 20,
    shape: [1, 2, 4, 5],
    build: (h, x) => [
      h.e.op('GridSample', [x, f(h, 'grid', [1, 3, 2, 2], 9, [-1.1, 1.1])], { mode: A.string('cubic') }),
      h.e.op('GridSample', [x, f(h, 'grid2', [1, 2, 3, 2], 8, [-1.1, 1.1])], {
        padding_mode: A.string('reflection'),
        align_corners: A.int(1),
      }),
    ],
    tol: 1e-5,
  },
  {
    ops: ['Dropout', 'EyeLike', 'Det', 'NegativeLogLikelihoodLoss'],
    from: 17,
    shape: [3, 3],
    build: (h, x) => [
      ...(h.e.node('Dropout', [x, h.e.scalar(0.3)], {}, { outputs: 2 }).outputs as Value[]),
      h.e.op('EyeLike', [x], { k: A.int(1) }),
      h.e.op('Det', [x]),
      h.e.op('NegativeLogLikelihoodLoss', [h.e.op('LogSoftmax', [x]), i64(h, 't', [3], [2, 0, 1])], {
        reduction: A.string('mean'),
      }),
    ],
    tol: 1e-5,
  },
  {
    ops: ['RNN', 'GRU', 'LSTM'],
    from: 17,
    shape: [3, 2, 4],
    build: (h, x) => {
      const rnn = (op: string, gates: number, dirs: number, attrs = {}) =>
        h.e.node(
          op,
          [
            x,
            f(h, `${op}W`, [dirs, gates * 3, 4], 1),
            f(h, `${op}R`, [dirs, gates * 3, 3], 2),
            f(h, `${op}B`, [dirs, gates * 6], 3),
          ],
          {
            hidden_size: A.int(3),
            ...(dirs === 2 ? { direction: A.string('bidirectional') } : {}),
            ...attrs,
          },
          { outputs: 2 },
        ).outputs as Value[];
      return [
        ...rnn('RNN', 1, 1),
        ...rnn('GRU', 3, 2, { linear_before_reset: A.int(1) }),
        ...rnn('LSTM', 4, 1),
      ];
    },
    tol: 1e-5,
  },
  // 23–25: 4-bit, float8e8m0 and 2-bit types; optional attributes whose default is the old meaning
  {
    ops: ['Cast', 'CastLike'],
    from: 21,
    shape: [6],
    build: (h, x) => [
      ...(['float8e4m3fnuz', 'float8e5m2fnuz', 'float8e4m3fn', 'float16'] as const).map((to) =>
        h.e.op('Cast', [h.e.op('Cast', [x], { to: A.int(dtypeCode(to)) })], { to: A.int(1) }),
      ),
      h.e.op('CastLike', [x, h.init('like', Tensor.from('float64', [1], [0]))]),
    ],
    // ±Inf: NaN before Cast-24 for the fnuz types by the spec, their largest value from 24; ORT saturates at every opset
    feeds: {
      x: {
        dtype: 'float32',
        dims: [6],
        data: Float32Array.from([Infinity, -Infinity, 1e9, 0.3, -17.2, Number.NaN]),
      },
    },
  },
  {
    ops: ['QuantizeLinear', 'DequantizeLinear'],
    from: 21,
    shape: [2, 4],
    build: (h, x) => {
      const q = h.e.op('QuantizeLinear', [
        x,
        h.init('s', Tensor.scalar('float32', 0.01)),
        h.init('z', Tensor.scalar('uint8', 128)),
      ]);
      const w = h.init('w', Tensor.from('int8', [2, 4], [1, -2, 3, -4, 5, -6, 7, -8]));
      return [
        h.e.op('DequantizeLinear', [
          q,
          h.init('s2', Tensor.scalar('float32', 0.01)),
          h.init('z2', Tensor.scalar('uint8', 128)),
        ]),
        h.e.op('DequantizeLinear', [w, h.init('sc', Tensor.from('float32', [2], [0.1, 0.2]))], {
          axis: A.int(0),
        }),
        h.e.op('DequantizeLinear', [w, h.init('sb', Tensor.from('float32', [2, 2], [0.1, 0.2, 0.3, 0.4]))], {
          axis: A.int(1),
          block_size: A.int(2),
        }),
        h.e.op('QuantizeLinear', [x, h.init('sq', Tensor.from('float32', [4], [0.01, 0.02, 0.03, 0.04]))], {
          axis: A.int(1),
          output_dtype: A.int(dtypeCode('int8')),
        }),
      ];
    },
  },
  {
    ops: [
      'Constant',
      'ConstantOfShape',
      'Flatten',
      'Identity',
      'Pad',
      'Reshape',
      'Shape',
      'Size',
      'Squeeze',
      'Unsqueeze',
      'Transpose',
      'TopK',
      'SplitToSequence',
    ],
    from: 21,
    shape: [2, 1, 3, 4],
    build: (h, x) => {
      const c = h.e.op('Constant', [], { value: A.tensor(Tensor.from('float32', [4], [1, 2, 3, 4])) });
      const seq = h.e.op('SplitToSequence', [x, i64(h, 'parts', [2], [1, 2])], { axis: A.int(2) });
      return [
        h.e.op('Add', [x, c]),
        h.e.op('ConstantOfShape', [h.e.op('Shape', [x])], {
          value: A.tensor(Tensor.from('float32', [1], [0.5])),
        }),
        h.e.op('Flatten', [h.e.op('Identity', [x])], { axis: A.int(2) }),
        h.e.op('Pad', [x, i64(h, 'pads', [8], [0, 0, 1, 2, 0, 0, 1, 1])], { mode: A.string('reflect') }),
        h.e.op('Pad', [x, i64(h, 'pads2', [8], [0, 1, 0, 0, 0, 0, 2, 0]), h.e.scalar(0.25)]),
        h.e.op('Reshape', [x, i64(h, 'to', [3], [0, -1, 2])]),
        h.e.op('Size', [x]),
        h.e.op('Unsqueeze', [h.e.op('Squeeze', [x, i64(h, 'ax', [1], [1])]), i64(h, 'ax2', [1], [-1])]),
        h.e.op('Transpose', [x], { perm: A.ints([3, 0, 2, 1]) }),
        ...(h.e.node('TopK', [x, i64(h, 'k', [1], [2])], { largest: A.int(0) }, { outputs: 2 })
          .outputs as Value[]),
        h.e.op('ConcatFromSequence', [seq], { axis: A.int(2) }),
      ];
    },
  },
  {
    ops: ['If', 'Loop', 'Scan'],
    from: 21,
    shape: [3, 4],
    build: (h, x) => {
      const g = h.g;
      const cond = h.e.op('Greater', [h.e.op('ReduceSum', [x]), h.e.scalar(0)]);
      const branch = (name: string, op: string) =>
        subgraph(g, name, [], (sg) => [sgOp(sg, 'Flatten', [sgOp(sg, op, [x], `${name}_a`)], `${name}_y`)]);
      const iff = h.e.op('If', [cond], {
        then_branch: { type: 'graph', value: branch('then', 'Sin') },
        else_branch: { type: 'graph', value: branch('else', 'Cos') },
      });
      const body = subgraph(
        g,
        'loop_body',
        [
          ['i', 'int64', []],
          ['c', 'bool', []],
          ['v', 'float32', [3, 4]],
        ],
        (sg, [, c, v]) => [
          sgOp(sg, 'Identity', [c!], 'c_out'),
          sgOp(sg, 'Add', [v!, sgOp(sg, 'Transpose', [sgOp(sg, 'Transpose', [x], 'xt0')], 'xt')], 'v_out'),
        ],
      );
      const loop = h.e.op('Loop', [i64(h, 'trips', [], [3]), null, x], {
        body: { type: 'graph', value: body },
      });
      const scanBody = subgraph(
        g,
        'scan_body',
        [
          ['s', 'float32', [4]],
          ['row', 'float32', [4]],
        ],
        (sg, [s, row]) => {
          const next = sgOp(sg, 'Add', [s!, row!], 's_next');
          return [next, sgOp(sg, 'Identity', [next], 'scan_out')];
        },
      );
      const scan = h.e.node(
        'Scan',
        [f(h, 's0', [4], 7), x],
        { body: { type: 'graph', value: scanBody }, num_scan_inputs: A.int(1) },
        { outputs: 2 },
      ).outputs as Value[];
      return [iff, loop, ...scan];
    },
    tol: 1e-6,
  },
  {
    ops: ['Attention'],
    from: 23,
    shape: [1, 2, 3, 4],
    build: (h, x) => [
      ...(h.e.node(
        'Attention',
        [x, f(h, 'k', [1, 2, 5, 4], 1), f(h, 'v', [1, 2, 5, 4], 2), f(h, 'mask', [3, 5], 3)],
        {},
        { outputs: 1 },
      ).outputs as Value[]),
      h.e.op('Attention', [x, f(h, 'k2', [1, 2, 3, 4], 4), f(h, 'v2', [1, 2, 3, 4], 5)], {
        is_causal: A.int(1),
        softcap: A.float(2),
      }),
    ],
    tol: 1e-5,
  },
];

for (const c of CASES)
  test(`opsets 22–26: ${c.ops.join(', ')} (from ${c.from}) convert with ORT outputs unchanged`, async () => {
    const m = oneOp(c.from, c.shape, c.build);
    const targets = [...new Set([Math.max(22, c.from + 1), 24, 26])].filter((t) => t > c.from);
    await checkConversion(m, targets, c.rule ?? null, c.tol ?? 1e-6, c.feeds);
    // the test covers what it names: each listed op's version in effect changes between the source and 26
    for (const op of c.ops)
      assert.notEqual(
        opVersionAt(op, c.from)?.[0],
        opVersionAt(op, 26)?.[0],
        `${op} changes after ${c.from}`,
      );
  });

test('the cases above cover every op that exists before 22 and has a new version at 22–26', () => {
  const covered = new Set([...CASES.flatMap((c) => c.ops), ...NO_ORT_KERNEL_22]);
  const changed = Object.entries(OP_HISTORY)
    .filter(([op, vs]) => op !== 'Attention' && vs[0]![0] < 22 && vs.some((v) => v[0] >= 22 && v[0] <= 26))
    .map(([op]) => op);
  assert.ok(changed.length > 60, `${changed.length} ops`);
  assert.deepEqual(
    changed.filter((op) => !covered.has(op)),
    [],
  );
});

/** One model per op ORT 1.30 runs only below 22 (seeded random ops are deterministic per model in ORT). */
const NO_KERNEL: Record<(typeof NO_ORT_KERNEL_22)[number], [number[], Build]> = {
  RoiAlign: [
    [1, 2, 6, 6],
    (h, x) => [
      h.e.op(
        'RoiAlign',
        [
          x,
          h.init('rois', Tensor.from('float32', [2, 4], [0.5, 0.5, 4.2, 3.7, 1, 1.5, 5, 5.5])),
          i64(h, 'bi', [2], [0, 0]),
        ],
        { output_height: A.int(2), output_width: A.int(3), sampling_ratio: A.int(2), mode: A.string('max') },
      ),
    ],
  ],
  MaxRoiPool: [
    [1, 2, 6, 6],
    (h, x) => [
      h.e.op(
        'MaxRoiPool',
        [x, h.init('rois', Tensor.from('float32', [2, 5], [0, 0, 0, 3, 4, 0, 1, 2, 5, 5]))],
        {
          pooled_shape: A.ints([2, 2]),
        },
      ),
    ],
  ],
  RandomNormal: [
    [2, 3],
    (h, x) => [h.e.op('Add', [x, h.e.op('RandomNormal', [], { shape: A.ints([2, 3]), seed: A.float(1) })])],
  ],
  RandomUniform: [
    [2, 3],
    (h, x) => [h.e.op('Add', [x, h.e.op('RandomUniform', [], { shape: A.ints([2, 3]), seed: A.float(2) })])],
  ],
  RandomNormalLike: [
    [2, 3],
    (h, x) => [h.e.op('RandomNormalLike', [x], { seed: A.float(3), scale: A.float(2) })],
  ],
  RandomUniformLike: [
    [2, 3],
    (h, x) => [h.e.op('RandomUniformLike', [x], { seed: A.float(4), low: A.float(-2) })],
  ],
  Bernoulli: [[2, 3], (h, x) => [h.e.op('Bernoulli', [unit(h, x)], { seed: A.float(5) })]],
  Multinomial: [[2, 3], (h, x) => [h.e.op('Multinomial', [x], { seed: A.float(6), sample_size: A.int(5) })]],
};

test('ops ORT 1.30 runs only below opset 22 convert up to 21 and are refused past it, naming the node', async () => {
  for (const [op, [shape, build]] of Object.entries(NO_KERNEL)) {
    const m = oneOp(17, shape, build);
    await checkConversion(m, [21], null);
    assert.throws(
      () => convertOpset(m, 22),
      (e: Error) =>
        e instanceof UnsupportedError &&
        new RegExp(`"${op}" \\(${op}\\).*no ${op}-22 kernel.*--opset 21`, 's').test(e.message),
      op,
    );
    // the reason, measured: ORT refuses the op at 22 (when ORT gains the kernel, drop it from NO_ORT_KERNEL_22)
    const at22 = oneOp(22, shape, build);
    await assert.rejects(
      runModel(at22, randomInputs(at22, { seed: 1 })),
      /Could not find an implementation/,
      op,
    );
  }
});

test('GroupNormalization-18 per-group scale/bias → per-channel at 21 (and on to 26)', async () => {
  const m = oneOp(18, [2, 6, 3, 3], (h, x) => [
    h.e.op('GroupNormalization', [x, f(h, 's', [3], 1), f(h, 'b', [3], 2)], {
      num_groups: A.int(3),
      epsilon: A.float(1e-4),
    }),
  ]);
  await checkConversion(m, [21, 26], 'GroupNormalization-21', 1e-5);
});

test('models from opset 7 and 13 convert straight to 26', async () => {
  const bn = oneOp(7, [2, 3, 4, 4], (h, x) => [
    h.e.op('Upsample', [h.e.op('Clip', [x], { min: A.float(-0.5), max: A.float(0.5) })], {
      mode: A.string('nearest'),
      scales: A.floats([1, 1, 2, 2]),
    }),
  ]);
  await checkConversion(bn, [26], 'Upsample-10', 1e-6);
  const r = convertOpset(bn, 26);
  assert.equal(r.model.irVersion, irVersionFor(26));
  assert.equal(irVersionFor(26), 13);
  const sm = oneOp(13, [2, 3, 4], (h, x) => [
    h.e.op('ReduceMean', [h.e.op('Softmax', [x], { axis: A.int(1) })], { axes: A.ints([2]) }),
  ]);
  await checkConversion(sm, [26], 'ReduceMean-18', 1e-6);
});

test('the opset verify rule knows the ops and forms of 22–26 (and ORT agrees); 27 is out of range', async () => {
  const cases: [Model, RegExp][] = [
    [
      oneOp(22, [1, 2, 3, 4], (h, x) => [h.e.op('Attention', [x, x, x])]),
      /Attention does not exist at opset 22 \(it was added in opset 23\)/,
    ],
    [
      oneOp(23, [2, 3], (h, x) => [h.e.op('Swish', [x])]),
      /Swish does not exist at opset 23 \(it was added in opset 24\)/,
    ],
    [oneOp(25, [2, 3], (h, x) => [h.e.op('CumProd', [x, i64(h, 'ax', [], [1])])]), /added in opset 26/],
    [
      oneOp(22, [2, 3], (h, x) => [
        h.e.op('DequantizeLinear', [h.e.op('QuantizeLinear', [x, h.e.scalar(0.1)]), h.e.scalar(0.1)], {
          output_dtype: A.int(1),
        }),
      ]),
      /DequantizeLinear-21 \(in effect at opset 22\) has no attribute "output_dtype"/,
    ],
    [
      oneOp(23, [2, 3], (h, x) => [h.e.op('Cast', [x], { to: A.int(1), round_mode: A.string('up') })]),
      /Cast-23 .* no attribute "round_mode"/,
    ],
    [
      oneOp(24, [1, 2, 3, 4], (h, x) => [h.e.op('Attention', [x, x, x], { left_window_size: A.int(1) })]),
      /Attention-24 .* no attribute "left_window_size"/,
    ],
  ];
  for (const [m, re] of cases) {
    const ps = opsetProblems(m);
    assert.ok(
      ps.some((p) => re.test(p.message)),
      `${re}: ${JSON.stringify(ps)}`,
    );
  }
  // at the next opset each is valid
  const swish = (opset: number) =>
    oneOp(opset, [2, 3], (h, x) => [h.e.op('Swish', [x], { alpha: A.float(1.5) })]);
  assert.deepEqual(opsetProblems(swish(24)), []);
  assert.deepEqual(opsetProblems(swish(26)), []);
  const feeds = {
    x: { dtype: 'float32' as const, dims: [2, 3], data: rand([6], 1).typed() as Float32Array },
  };
  // ORT agrees: Swish is refused at 23 and runs at 24 (x·sigmoid(1.5·x))
  await assert.rejects(runModel(cases[1]![0], feeds));
  const y = (await runModel(swish(24), feeds)).y0!.data as Float32Array;
  const x0 = feeds.x.data[0]!;
  assert.ok(Math.abs(y[0]! - x0 / (1 + Math.exp(-1.5 * x0))) < 1e-6);
  assert.equal(MAX_KNOWN_OPSET, 26);
  const relu = oneOp(21, [2], (h, x) => [h.e.op('Relu', [x])]);
  assert.throws(
    () => convertOpset(relu, 27),
    (e: Error) => e instanceof UnsupportedError && /outside 7–26/.test(e.message),
  );
});
