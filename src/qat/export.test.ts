import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import '../ops/index.js';
import { Graph, Model, Tensor } from '../ir/index.js';
import { ModelBuilder } from '../ir/builder.js';
import { loadModel } from '../onnx/index.js';
import { buildModel } from '../models/index.js';
import { loadDataset } from '../data/index.js';
import { type HostTensor, Session } from '../runtime/index.js';
import { calibrate, type Feeds } from '../passes/quantize/calibrate.js';
import { ortKernels } from '../passes/quantize/kernels.js';
import { planStatic } from '../passes/quantize/static.js';
import { randomFeeds, TORCH_FIXTURES, prng } from '../testing/fixtures.js';
import { insertFakeQuant } from './fakequant.js';
import { exportQdq, groupScales, qatRanges } from './export.js';
import { prepareForQat } from './qat.js';

/** Run `model` at one ORT optimisation level on each feed; outputs by graph output index. */
async function run(
  model: Model,
  feeds: readonly Feeds[],
  level: 'disabled' | 'all',
): Promise<Float32Array[][]> {
  const s = await Session.create(model, { optimizationLevel: level, threads: 1 });
  try {
    const out: Float32Array[][] = [];
    for (const f of feeds) {
      const r = await s.run(f);
      out.push(model.graph.outputs.map((o) => r[o.name]!.data as Float32Array));
    }
    return out;
  } finally {
    await s.release();
  }
}

/**
 * Simulate training on a fake-quant model: every learned scale ×[0.7, 1.3], every float weight jittered by 5 % of
 * its magnitude (so the export is not just the PTQ start).
 */
function perturb(m: Model, trainable: readonly string[], seed: number): void {
  const r = prng(seed);
  const g = m.graph;
  for (const name of trainable) {
    const v = g.initializers.get(name)!;
    const t = v.const!.toFloat32();
    for (let i = 0; i < t.length; i++)
      t[i] = name.endsWith('_qat_scale') ? t[i]! * (0.7 + 0.6 * r()) : t[i]! * (1 + 0.1 * (r() - 0.5));
    g.setInitializer(v, Tensor.from('float32', v.const!.dims, t, name));
  }
}

const fashion = (rows: number): Feeds[] => {
  const ds = loadDataset('fashion-mnist', 'test', { limit: rows * 2 });
  return [0, 1].map((b) => ({
    input: {
      dtype: 'float32',
      dims: [rows, 1, 28, 28],
      data: ds.x.slice(b * rows * 784, (b + 1) * rows * 784),
    } as HostTensor,
  }));
};

interface Case {
  name: string;
  model: () => Model;
  feeds: (m: Model) => Feeds[];
  /** Every Conv/Gemm runs as an integer kernel in ORT. */
  allInteger: boolean;
}

/** Conv → Relu whose output is the graph output (the exporter moves the output name onto the DequantizeLinear). */
function convOut(): Model {
  const b = new ModelBuilder({ name: 'conv-out', opset: 17, seed: 3 });
  const x = b.input('input', 'float32', ['N', 1, 28, 28]);
  b.output(b.relu(b.conv2d(x, { inC: 1, outC: 4, kernel: 3, pad: 1, name: 'c' }), 'r'), 'y');
  return b.build();
}

const CASES: Case[] = [
  {
    name: 'cnn-s (built, BN folded by prepareForQat)',
    model: () => buildModel('cnn-s', { seed: 4 }),
    feeds: () => fashion(16),
    allInteger: true,
  },
  {
    name: 'cnn-s torch op13',
    model: () => loadModel(join(TORCH_FIXTURES, 'cnn-s_op13.onnx')),
    feeds: () => fashion(16),
    allInteger: true,
  },
  {
    name: 'cnn-s torch op17',
    model: () => loadModel(join(TORCH_FIXTURES, 'cnn-s_op17.onnx')),
    feeds: () => fashion(16),
    allInteger: true,
  },
  {
    name: 'mlp (Gemm)',
    model: () => buildModel('mlp', { seed: 2 }),
    feeds: () => fashion(16),
    allInteger: true,
  },
  {
    name: 'mobile torch op13 (depthwise, Clip, Add, Resize)',
    model: () => loadModel(join(TORCH_FIXTURES, 'mobile_op13.onnx')),
    feeds: (m) => [1, 2].map((s) => randomFeeds(m, s, 4)),
    allInteger: false,
  },
  { name: 'Conv → Relu as the graph output', model: convOut, feeds: () => fashion(8), allInteger: true },
];

describe('QAT export', () => {
  for (const c of CASES)
    test(`${c.name}: the exported QDQ model's ORT outputs equal the fake-quant graph's`, async () => {
      const { model: base } = await prepareForQat(c.model());
      const feeds = c.feeds(base);
      const plan = planStatic(base);
      assert.ok(plan.nodes.length > 0);
      const cal = await calibrate(base, plan.roots, feeds);
      const { model: fq, info } = insertFakeQuant(base, plan, cal.stats);
      assert.equal(info.groups.length, plan.roots.length);
      perturb(fq, info.trainable, 7);
      const exp = exportQdq(base, fq, info);
      const q = exp.model;
      assert.equal(q.graph.outputs.map((o) => o.name).join(), fq.graph.outputs.map((o) => o.name).join());
      assert.ok(q.graph.nodes.some((n) => n.opType === 'QuantizeLinear'));
      assert.ok(!q.graph.nodes.some((n) => n.opType === 'Round'), 'the export has no fake-quant ops left');

      // the learned scales survive the export exactly
      const scales = groupScales(fq, info);
      for (const grp of info.groups) {
        const sv = q.graph.initializers.get(`${grp.root}_scale`)!.const!;
        assert.equal(sv.toFloat64()[0], scales.get(grp.root), `scale of ${grp.root}`);
        assert.equal(
          q.graph.initializers.get(`${grp.root}_zero_point`)!.const!.toFloat64()[0],
          grp.zeroPoint,
        );
      }
      assert.deepEqual([...qatRanges(fq, info).keys()].sort(), [...plan.roots].sort());

      // ORT runs the Q/DQ nodes as written: equal to the fake-quant graph to float rounding (in fact bit for bit)
      const a = await run(fq, feeds, 'disabled');
      const b = await run(q, feeds, 'disabled');
      for (let k = 0; k < a.length; k++)
        for (let o = 0; o < a[k]!.length; o++) {
          const x = a[k]![o]!;
          const y = b[k]![o]!;
          let scale = 0;
          let diff = 0;
          for (let i = 0; i < x.length; i++) {
            scale = Math.max(scale, Math.abs(x[i]!));
            diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
          }
          assert.ok(scale > 0, 'a non-trivial output');
          assert.ok(
            diff <= 1e-5 * scale,
            `output ${o} of batch ${k}: max |diff| ${diff} vs output scale ${scale}`,
          );
        }

      // with ORT's optimisations the same pairs fuse into integer kernels (no float Conv/Gemm left)
      const kr = await ortKernels(q);
      assert.ok(kr.integer > 0, `integer kernels: ${JSON.stringify(kr.ops)}`);
      if (c.allInteger) assert.equal(kr.floatCompute, 0, `float compute left: ${JSON.stringify(kr.ops)}`);
      // the integer kernels requantize from exact int32 sums: a few outputs move by a quantization step at most
      const ci = await run(q, feeds, 'all');
      for (let k = 0; k < a.length; k++) {
        const x = a[k]![0]!;
        const y = ci[k]![0]!;
        let scale = 0;
        let diff = 0;
        for (let i = 0; i < x.length; i++) {
          scale = Math.max(scale, Math.abs(x[i]!));
          diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
        }
        assert.ok(diff <= 0.05 * scale, `integer kernels: max |diff| ${diff} vs output scale ${scale}`);
      }
    });

  test('an unfoldable BatchNormalization is kept (and noted); scales learned or fixed decide what is trainable', async () => {
    // BN after a Relu cannot fold into the Conv
    const b = new ModelBuilder({ name: 'bn-after-relu', opset: 17, seed: 1 });
    const x = b.input('input', 'float32', ['N', 1, 28, 28]);
    const h = b.batchNorm(b.relu(b.conv2d(x, { inC: 1, outC: 4, kernel: 3, pad: 1, name: 'c' }), 'r'), 4, {
      name: 'bn',
    });
    b.output(b.linear(b.flatten(h, 1, 'f'), 4 * 28 * 28, 10, { name: 'fc' }), 'logits');
    const prep = await prepareForQat(b.build());
    assert.ok(prep.model.graph.nodes.some((n) => n.opType === 'BatchNormalization'));
    assert.ok(
      prep.notes.some((n) => /BatchNormalization/.test(n)),
      prep.notes.join('\n'),
    );
    const plan = planStatic(prep.model);
    const cal = await calibrate(prep.model, plan.roots, fashion(8));
    const learned = insertFakeQuant(prep.model, plan, cal.stats).info;
    const fixed = insertFakeQuant(prep.model, plan, cal.stats, { learnScales: false }).info;
    assert.equal(learned.trainable.filter((n) => n.endsWith('_qat_scale')).length, plan.roots.length);
    assert.equal(fixed.trainable.filter((n) => n.endsWith('_qat_scale')).length, 0);
    assert.ok(fixed.trainable.includes('c.weight') && fixed.trainable.includes('bn.weight'));
  });

  test('a diverged (non-positive) scale is refused with a DataError', () => {
    const g = new Graph('x');
    g.addInitializer('s', Tensor.from('float32', [1], [-0.5]));
    const m = new Model(g);
    const info = {
      plan: {
        nodes: [],
        skipped: [],
        tensors: new Map(),
        roots: ['t'],
        renamedOutputs: [],
        activationType: 'uint8' as const,
        perChannel: true,
      },
      groups: [
        {
          root: 't',
          tensors: ['t'],
          scaleName: 's',
          zeroPoint: 0,
          qtype: 'uint8' as const,
          initialScale: 0.1,
          gradScale: 0.01,
        },
      ],
      weights: [],
      trainable: [],
      learnScales: true,
    };
    assert.throws(
      () => groupScales(m, info),
      (e: Error) => e.name === 'DataError' && /diverged/.test(e.message),
    );
  });
});
