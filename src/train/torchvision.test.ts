// Every torchvision classifier family, exported by torch.onnx at opsets 13 and 17 (generated at test time:
// src/testing/torchvision.ts), trains from an image folder with its loss going down; edgefit train does it from
// the CLI; and resnet18's gradients and BN running statistics (overlapping padded stem MaxPool, training-mode BN,
// as exported and upgraded to opset 16) equal PyTorch's.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { materialize } from '../data/materialize.js';
import { openData } from '../data/open.js';
import { encodePng } from '../data/png.js';
import { loadModel } from '../onnx/index.js';
import { edgefit } from '../testing/cli.js';
import { TORCHVISION_FAMILIES, torchvisionModels } from '../testing/torchvision.js';
import { prepareForTraining } from './prepare.js';
import { computeGradients, createTrainStep } from './step.js';
import { train } from './trainer.js';

const models = torchvisionModels();
const skip = 'skip' in models ? models.skip : false;
const dir = 'dir' in models ? models.dir : '';
const work = mkdtempSync(join(tmpdir(), 'edgefit-tv-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Eight 32×32 RGB PNGs, two per class, each class a different pattern (halves, stripes, a red tint) plus noise. */
function imageFolder(): string {
  const root = join(work, 'images');
  let s = 1;
  const r = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let c = 0; c < 4; c++) {
    mkdirSync(join(root, `class${c}`), { recursive: true });
    for (let i = 0; i < 2; i++) {
      const px = new Uint8Array(32 * 32 * 3);
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          for (let k = 0; k < 3; k++) {
            const on = c === 0 ? x < 16 : c === 1 ? y < 16 : c === 2 ? (x + y) % 8 < 4 : k === 0;
            px[(y * 32 + x) * 3 + k] = Math.min(
              255,
              Math.max(0, (on ? 180 : 60) + Math.round((r() - 0.5) * 80)),
            );
          }
      writeFileSync(join(root, `class${c}`, `${i}.png`), encodePng(px, 32, 32, 3));
    }
  }
  return root;
}

let images = '';
before(() => {
  images = imageFolder();
});

describe('torchvision classifiers as exported train from an image folder', { skip }, () => {
  for (const family of TORCHVISION_FAMILIES)
    for (const opset of [13, 17])
      test(`${family} opset ${opset}: 6 steps of AdamW on one batch, the loss goes down`, async () => {
        const m0 = loadModel(join(dir, `${family}_op${opset}.onnx`));
        assert.equal(m0.opset(''), opset);
        const p = await prepareForTraining(m0);
        const src = await openData(images, { model: p.model, needLabels: 'test' });
        const data = await materialize(src, 'train');
        await src.close();
        const losses: number[] = [];
        await train(p.model, {
          data,
          epochs: 6,
          batchSize: 8,
          optimizer: { kind: 'adamw', weightDecay: 0 },
          lr: 3e-4,
          seed: 0,
          run: { threads: 1 },
          hooks: {
            onStepEnd: (i) => {
              losses.push(i.result.loss);
            },
          },
        });
        assert.equal(losses.length, 6);
        assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
        const last = Math.min(...losses.slice(-2));
        assert.ok(
          last < losses[0]! - 0.05,
          `loss ${losses[0]} → ${losses.map((l) => l.toFixed(3)).join(' ')}`,
        );
      });

  test('edgefit train on squeezenet1_1 (opset 13): exit 0, the upgrade and the un-shared initializers in --json', () => {
    const out = join(work, 'sq.onnx');
    const r = edgefit(
      'train',
      '--model',
      join(dir, 'squeezenet1_1_op13.onnx'),
      '--data',
      images,
      '--epochs',
      '2',
      '--batch',
      '8',
      '--optimizer',
      'adamw',
      '--lr',
      '0.0003',
      '--val-split',
      '0',
      '--out',
      out,
      '--json',
      '--quiet',
    );
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.deepEqual([j.opsetUpgrade.from, j.opsetUpgrade.to], [13, 16]);
    assert.ok(Object.keys(j.unshared).length > 0);
    assert.equal(loadModel(out).opset(''), 16);
  });

  test('densenet121: BatchNormalizations sharing de-duplicated running statistics train after un-sharing', async () => {
    const m0 = loadModel(join(dir, 'densenet121_op13.onnx'));
    const p = await prepareForTraining(m0);
    const stats = p.model.graph.nodes
      .filter((n) => n.opType === 'BatchNormalization')
      .flatMap((n) => [n.input(3), n.input(4)]);
    assert.equal(new Set(stats).size, stats.length, 'every BN has its own running statistics');
    assert.ok(Object.keys(p.unshared).length > 10);
  });
});

describe('resnet18 gradients and BN running statistics equal PyTorch (train mode, batch 4)', { skip }, () => {
  // The reference is PyTorch in float64 on a well-posed point (scripts/fixtures/gen_torchvision_models.py,
  // grads_fixture): input 48×48, so layer4's BatchNormalizations see 16 values per channel (at 32×32 they see 4 and
  // float32 results scatter by up to 5e-2, PyTorch's own included), and an input 1e-5σ away from every ReLU/MaxPool
  // kink. Both graphs are then within 8e-6 of |g|max (measured at ORT optimisation levels disabled/basic/all, 1 and
  // 2 threads): as exported at opset 13 (BN decomposed, the stem MaxPool's one-hot ConvTranspose form) and prepared
  // for training (opset 16: ORT's training-mode BatchNormalization, whose outputs are the batch mean and biased
  // variance the rule reads, and ScatterElements). TOL is 5e-5: the 5e-3..1e-2 gap once seen at opset ≥ 14 was the
  // old fixture's conditioning and a ReLU mask bit at 2e-6 from its kink, and this tolerance catches far less.
  const TOL = 5e-5;
  interface G {
    shape: number[];
    sum: number;
    sum_sq: number;
    abs_max: number;
    indices: number[];
    values: number[];
  }
  interface Fx {
    x: { shape: number[]; data: number[] };
    y: { shape: number[]; data: number[] };
    loss: number;
    kink_margin: number;
    torch_float32_error: number;
    grads: Record<string, G>;
    running_after_forward: Record<string, { shape: number[]; data: number[] }>;
  }
  const fixture = () => JSON.parse(readFileSync(join(dir, 'resnet18_train_op13.grads.json'), 'utf8')) as Fx;
  const batch = (fx: Fx) => ({
    x: { dtype: 'float32' as const, dims: fx.x.shape, data: Float32Array.from(fx.x.data) },
    y: { dtype: 'int64' as const, dims: fx.y.shape, data: BigInt64Array.from(fx.y.data.map(BigInt)) },
  });
  const graphs = [
    ['opset 13 as exported (BN decomposed, one-hot MaxPool gradient)', false],
    ['prepared for training (opset 16: training-mode BatchNormalization, ScatterElements)', true],
  ] as const;

  test('the reference is well posed: PyTorch float32 within 5e-5 of it, 1e-5σ from every kink', () => {
    const fx = fixture();
    assert.ok(fx.torch_float32_error < 5e-5, `PyTorch float32 error ${fx.torch_float32_error}`);
    assert.ok(fx.kink_margin >= 1e-5, `kink margin ${fx.kink_margin}`);
  });

  for (const [label, upgrade] of graphs)
    test(`loss and every parameter gradient within ${TOL} of |g|max: ${label}`, async () => {
      const fx = fixture();
      const m0 = loadModel(join(dir, 'resnet18_train_op13.onnx'));
      const p = upgrade ? await prepareForTraining(m0) : { model: m0 };
      assert.equal(p.model.opset(''), upgrade ? 16 : 13);
      const r = await computeGradients(p.model, batch(fx), { loss: { kind: 'cross-entropy' }, threads: 1 });
      assert.ok(Math.abs(r.loss - fx.loss) <= 1e-5 * Math.abs(fx.loss), `loss ${r.loss} vs ${fx.loss}`);
      assert.deepEqual(Object.keys(r.grads).sort(), Object.keys(fx.grads).sort());
      for (const [name, want] of Object.entries(fx.grads)) {
        const got = r.grads[name]!.data as Float32Array;
        assert.deepEqual([...r.grads[name]!.dims], want.shape, name);
        const scale = want.abs_max || 1;
        let sumSq = 0;
        for (const v of got) sumSq += v * v;
        assert.ok(
          Math.abs(sumSq - want.sum_sq) <= 10 * TOL * want.sum_sq + 1e-12,
          `${name}: sum_sq ${sumSq} vs ${want.sum_sq}`,
        );
        want.indices.forEach((k, i) =>
          assert.ok(
            Math.abs(got[k]! - want.values[i]!) <= TOL * scale,
            `${name}[${k}]: ${got[k]} vs ${want.values[i]} (|max| ${scale})`,
          ),
        );
      }
    });

  for (const [label, upgrade] of graphs)
    test(`BN running statistics after one training-mode forward (momentum 0.1, unbiased variance): ${label}`, async () => {
      const fx = fixture();
      const m0 = loadModel(join(dir, 'resnet18_train_op13.onnx'));
      const p = upgrade ? await prepareForTraining(m0) : { model: m0 };
      const runner = await createTrainStep(p.model, {
        optimizer: { kind: 'sgd' },
        loss: { kind: 'cross-entropy' },
        threads: 1,
      });
      try {
        await runner.run(batch(fx), 0); // lr 0: the forward's statistics, weights unchanged
        const st = runner.state().tensors;
        const names = Object.keys(fx.running_after_forward);
        assert.equal(names.length, 40, 'resnet18 has 20 BatchNormalizations');
        for (const k of names) {
          const want = fx.running_after_forward[k]!.data;
          const got = st[k]!.data as Float32Array;
          let err = 0;
          let mx = 0;
          want.forEach((w, i) => {
            err = Math.max(err, Math.abs(got[i]! - w));
            mx = Math.max(mx, Math.abs(w));
          });
          assert.ok(err <= 1e-5 * Math.max(1, mx), `${k}: max error ${err}`);
        }
      } finally {
        await runner.release();
      }
    });
});
