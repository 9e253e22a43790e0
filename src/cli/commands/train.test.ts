import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Dataset, encodePng, loadDataset, splitValidation, subset, writeNpy } from '../../data/index.js';
import { evaluate } from '../../eval/evaluate.js';
import { loadModel } from '../../onnx/index.js';
import { main } from '../main.js';
import { edgefit } from '../../testing/cli.js';
import { prng, TORCH_FIXTURES } from '../../testing/fixtures.js';

/** In-process run of the CLI (fast: no tsx start-up), capturing both streams. */
async function inProcess(...args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-train-cli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface TrainJson {
  testAccuracy: number;
  epochs: number;
  seconds: number;
  steps: number;
  trainRows: number;
  valRows: number;
  testRows: number;
  history: { epoch: number; trainLoss: number; valAccuracy: number }[];
}

describe('edgefit train', () => {
  test('trains mlp on a 2,000-row subset: exit 0, one JSON object, a model that evaluates to the reported accuracy', async () => {
    const out = join(dir, 'mlp.onnx');
    const ckpt = join(dir, 'mlp.ckpt');
    const args = [
      '--model',
      'mlp',
      '--data',
      'fashion-mnist',
      '--limit',
      '2000',
      '--test-limit',
      '500',
      '--threads',
      '1',
      '--out',
      out,
    ];
    const r = edgefit('train', ...args, '--epochs', '2', '--checkpoint', ckpt, '--json', '--quiet');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const j = JSON.parse(r.stdout) as TrainJson;
    assert.equal(j.epochs, 2);
    assert.equal(j.history.length, 2);
    assert.deepEqual([j.trainRows, j.valRows, j.testRows], [1800, 200, 500]);
    assert.equal(j.steps, 56);
    assert.ok(j.seconds > 0);
    assert.ok(j.testAccuracy > 0.5 && j.testAccuracy <= 1, `test accuracy ${j.testAccuracy}`);
    assert.ok(existsSync(out) && existsSync(ckpt));
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );

    // resume the checkpoint for a third epoch, in process (the table output, not JSON)
    const res = await inProcess('train', ...args, '--epochs', '3', '--resume', ckpt, '--quiet');
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /test accuracy \d+\.\d+ %/);
    assert.match(res.stdout, /^\s*3\s/m);
    const m = loadModel(out);
    const test = loadDataset('fashion-mnist', 'test');
    const e = await evaluate(m, test, { threads: 1 });
    assert.ok(e.accuracy > 0.5, `resumed model accuracy ${e.accuracy}`);
  });

  test('bad flags and inputs give exit code 2 with a message, no stack, nothing written', async () => {
    const out = join(dir, 'bad.onnx');
    const ok = ['--model', 'mlp', '--data', 'fashion-mnist', '--epochs', '1', '--out', out, '--limit', '200'];
    const spawned = edgefit('train', ...ok, '--bogus');
    assert.equal(spawned.code, 2);
    assert.match(spawned.stderr, /bogus/);
    assert.doesNotMatch(spawned.stderr, /\n\s+at /);
    const cases: [string[], RegExp][] = [
      [['--model', 'mlp', '--data', 'fashion-mnist', '--epochs', '1'], /--out is required/],
      [['--data', 'fashion-mnist', '--epochs', '1', '--out', out], /--model is required/],
      [['--model', 'mlp', '--data', 'fashion-mnist', '--out', out], /--epochs is required/],
      [[...ok, '--epochs', '0'], /--epochs must be an integer/],
      [[...ok, '--optimizer', 'rmsprop'], /--optimizer must be one of sgd, adamw/],
      [[...ok, '--lr', 'fast'], /--lr must be a number/],
      [[...ok, '--lr=-0.1'], /--lr must be a number/],
      [[...ok, '--schedule', 'linear'], /--schedule must be one of/],
      [[...ok, '--batch', '0'], /--batch must be an integer/],
      [[...ok, '--val-split', '200'], /leaves no training rows/],
      [
        ['--model', 'resnet-9000', '--data', 'fashion-mnist', '--epochs', '1', '--out', out],
        /--model must be mlp, cnn-s, vit-t or an \.onnx file/,
      ],
      [
        ['--model', join(dir, 'missing.onnx'), '--data', 'fashion-mnist', '--epochs', '1', '--out', out],
        /does not exist/,
      ],
      [[...ok, '--data', 'cifar-10'], /"cifar-10" is neither a built-in dataset/],
      [[...ok, '--resume', join(dir, 'missing.ckpt')], /does not exist/],
    ];
    for (const [args, msg] of cases) {
      const r = await inProcess('train', ...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
    assert.ok(!existsSync(out));
  });

  test('validation split: seeded, disjoint, complete', () => {
    const ds = loadDataset('mnist', 'test', { limit: 1000 });
    const a = splitValidation(ds, 100, 3);
    const b = splitValidation(ds, 100, 3);
    assert.equal(a.train.n, 900);
    assert.equal(a.val!.n, 100);
    assert.deepEqual([...a.val!.indices!], [...b.val!.indices!]);
    const all = new Set([...a.train.indices!, ...a.val!.indices!]);
    assert.equal(all.size, 1000);
    assert.notDeepEqual([...splitValidation(ds, 100, 4).val!.indices!], [...a.val!.indices!]);
    assert.equal(splitValidation(ds, 0, 3).val, undefined);
  });

  test('trains torch-exported graphs: an encoder (slice bounds computed from shapes) and a conv net with BN and Resize', async () => {
    const rng = prng(7);
    for (const [file, itemShape] of [
      ['encoder_op17.onnx', [16, 32]],
      ['mobile_bn_op13.onnx', [3, 32, 32]],
    ] as const) {
      // a learnable task: each class adds its own fixed pattern to uniform noise
      const n = 512;
      const d = itemShape.reduce((a, b) => a * b, 1);
      const pattern = Float32Array.from({ length: 10 * d }, () => rng() * 2 - 1);
      const y = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rng() * 10)));
      const x = new Float32Array(n * d);
      for (let i = 0; i < n; i++)
        for (let k = 0; k < d; k++) x[i * d + k] = 0.5 * pattern[Number(y[i]) * d + k]! + rng() * 2 - 1;
      const xs = join(dir, `${file}.x.npy`);
      const ys = join(dir, `${file}.y.npy`);
      writeNpy(xs, { dtype: 'float32', shape: [n, ...itemShape], data: x });
      writeNpy(ys, { dtype: 'int64', shape: [n], data: y });
      const r = await inProcess(
        'train',
        '--model',
        join(TORCH_FIXTURES, file),
        '--data',
        xs,
        '--labels',
        ys,
        '--val-split',
        '0',
        '--epochs',
        '4',
        '--lr',
        '0.05',
        '--threads',
        '1',
        '--out',
        join(dir, `trained-${file}`),
        '--json',
        '--quiet',
      );
      assert.equal(r.code, 0, `${file}: ${r.stderr}`);
      const h = (JSON.parse(r.stdout) as TrainJson).history;
      // it learns (the gradients themselves are checked against finite differences in src/passes/training.test.ts)
      assert.ok(
        h.every((e, i) => i === 0 || e.trainLoss < h[i - 1]!.trainLoss) &&
          h[3]!.trainLoss < h[0]!.trainLoss - 0.05,
        `${file}: train loss ${h.map((e) => e.trainLoss.toFixed(3)).join(' → ')}`,
      );
    }
  });

  test('trains from a PNG class folder (--data) and tests on another (--test-data); unlabelled data is refused', async () => {
    const writeFolder = (ds: Dataset, root: string) => {
      const px = new Uint8Array(784);
      for (let i = 0; i < ds.n; i++) {
        for (let j = 0; j < 784; j++) px[j] = Math.round(ds.x[i * 784 + j]! * 255);
        const cls = join(root, String(ds.y[i]));
        mkdirSync(cls, { recursive: true });
        writeFileSync(join(cls, `${i}.png`), encodePng(px, 28, 28, 1));
      }
    };
    const trainPng = join(dir, 'train-png');
    const testPng = join(dir, 'test-png');
    writeFolder(subset(loadDataset('fashion-mnist', 'train'), 1500, 1), trainPng);
    const testRows = subset(loadDataset('fashion-mnist', 'test'), 500, 2);
    writeFolder(testRows, testPng);
    const out = join(dir, 'mlp-png.onnx');
    const r = await inProcess(
      'train',
      '--model',
      'mlp',
      '--data',
      trainPng,
      '--test-data',
      testPng,
      '--epochs',
      '2',
      '--out',
      out,
      '--json',
      '--quiet',
    );
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as TrainJson;
    assert.equal(j.trainRows + j.valRows, 1500);
    assert.equal(j.testRows, 500);
    assert.ok(j.testAccuracy > 0.5, `learned from PNGs: ${j.testAccuracy}`);
    // the PNGs hold the same pixels as the built-in rows: the saved model scores the same on them
    const again = await evaluate(loadModel(out), testRows, { threads: 1 });
    assert.equal(again.accuracy, j.testAccuracy);
    // --limit / --test-limit on folders: a seeded sample of the items, read instead of the whole folder
    const lim = await inProcess(
      'train',
      '--model',
      'mlp',
      '--data',
      trainPng,
      '--limit',
      '300',
      '--test-data',
      testPng,
      '--test-limit',
      '100',
      '--epochs',
      '1',
      '--out',
      join(dir, 'mlp-png-limit.onnx'),
      '--json',
      '--quiet',
    );
    assert.equal(lim.code, 0, lim.stderr);
    const jl = JSON.parse(lim.stdout) as TrainJson;
    assert.deepEqual([jl.trainRows + jl.valRows, jl.testRows], [300, 100]);
    // a flat folder of images has no labels
    const flat = join(dir, 'flat');
    mkdirSync(flat, { recursive: true });
    writeFileSync(join(flat, 'a.png'), encodePng(new Uint8Array(784), 28, 28, 1));
    const bad = await inProcess(
      'train',
      '--model',
      'mlp',
      '--data',
      flat,
      '--epochs',
      '1',
      '--out',
      join(dir, 'never.onnx'),
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /label/i);
    assert.ok(!existsSync(join(dir, 'never.onnx')));
  });
});
