// `edgefit eval` on every kind of --data: PNG class folders and .npz of Fashion-MNIST give exactly the result of
// the built-in dataset on the same images; corrupt files are skipped and reported; an RGB JPEG folder is resized
// and cropped for a 3×64×64 model; CSV drives a small MLP; a manifest feeds a two-input model; bad data is an
// InputError (exit 2) naming the file. Runs the command in-process (parse → run), as main() does.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  encodePng,
  fromDataset,
  loadDataset,
  subset,
  writeNpz,
  writeNpy,
  type Dataset,
} from '../../data/index.js';
import { EdgefitError, exitCodeOf } from '../../errors.js';
import { evaluate } from '../../eval/index.js';
import { ModelBuilder } from '../../ir/builder.js';
import { saveModel } from '../../onnx/index.js';
import { runModel } from '../../runtime/index.js';
import { TORCH_FIXTURES } from '../../testing/fixtures.js';
import { parseCommand } from '../command.js';
import { evalCommand } from './eval.js';

const CNN = join(TORCH_FIXTURES, 'cnn-s_op13.onnx');

interface EvalJson {
  n: number;
  correct: number;
  accuracy: number;
  confusion: number[][];
  perClass: { class: number; name?: string; support: number }[];
  skipped: { file: string; reason: string }[];
  preprocess: null | {
    channels: number;
    crop: number[];
    resize: number;
    layout: string;
    mean: number[];
    std: number[];
    scale: number;
  };
  format: string;
}

async function edgefitEval(
  ...args: string[]
): Promise<{ code: number; json?: EvalJson; text?: string; error?: EdgefitError }> {
  try {
    const p = parseCommand(evalCommand, [...args, '--json', '--quiet']);
    const r = await evalCommand.run(p, { out: () => {}, err: () => {}, quiet: true, json: true });
    return { code: 0, json: r.json as EvalJson, text: r.text };
  } catch (e) {
    if (exitCodeOf(e) === 1) throw e;
    return { code: exitCodeOf(e), error: e as EdgefitError };
  }
}

function argmax(s: Float32Array, i: number, c: number): number {
  let best = 0;
  for (let j = 1; j < c; j++) if (s[i * c + j]! > s[i * c + best]!) best = j;
  return best;
}

function listFiles(d: string): string[] {
  return readdirSync(d, { recursive: true }).map(String).sort();
}

let dir = '';
let fm: Dataset;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-evaldata-'));
  fm = subset(loadDataset('fashion-mnist', 'test'), 1000, 3);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('edgefit eval --data <path>', () => {
  test('1,000 Fashion-MNIST test images as PNG class folders and as .npz: exactly the built-in result; corrupt files skipped', async () => {
    const png = join(dir, 'fm-png');
    const px = new Uint8Array(784);
    for (let i = 0; i < fm.n; i++) {
      for (let j = 0; j < 784; j++) px[j] = Math.round(fm.x[i * 784 + j]! * 255);
      const cls = join(png, String(fm.y[i]));
      mkdirSync(cls, { recursive: true });
      writeFileSync(join(cls, `${String(fm.indices![i]).padStart(5, '0')}.png`), encodePng(px, 28, 28, 1));
    }
    const npz = join(dir, 'fm.npz');
    writeNpz(npz, {
      x: { dtype: 'float32', shape: [fm.n, 1, 28, 28], data: fm.x },
      y: { dtype: 'int64', shape: [fm.n], data: fm.y },
    });

    // the built-in path (what --data fashion-mnist runs) on the same 1,000 images
    const builtin = await evaluate(CNN, fromDataset(fm, { name: 'fashion-mnist' }), { batchSize: 256 });
    assert.equal(builtin.n, 1000);
    const results: EvalJson[] = [];
    for (const data of [png, npz]) {
      const r = await edgefitEval(CNN, '--data', data);
      results.push(r.json!);
      assert.equal(r.code, 0, r.error?.message);
      const j = r.json!;
      assert.equal(j.n, 1000, data);
      assert.equal(j.correct, builtin.correct, data);
      assert.equal(j.accuracy, builtin.accuracy, data);
      assert.deepEqual(j.confusion, builtin.confusion, data);
      assert.deepEqual(j.skipped, []);
    }
    const folder = results[0]!;
    assert.equal(folder.format, 'image-folder');
    assert.deepEqual(folder.preprocess, {
      channels: 1,
      bgr: false,
      resize: 28,
      crop: [28, 28],
      scale: 1 / 255,
      mean: [0],
      std: [1],
      layout: 'nchw',
      flatten: false,
      dtype: 'float32',
      interpolation: 'linear',
    });
    assert.deepEqual(
      folder.perClass.map((c) => c.name),
      ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    );

    // corrupt files among them: a truncated PNG, a text file named .png, a truncated JPEG — skipped and listed
    const good = readFileSync(join(png, '3', readdirSync(join(png, '3'))[0]!));
    writeFileSync(join(png, '3', 'zz-truncated.png'), good.subarray(0, good.length - 40));
    writeFileSync(join(png, '7', 'zz-garbage.png'), 'this is not an image');
    const jpeg = await sharp(Buffer.alloc(28 * 28 * 3, 90), { raw: { width: 28, height: 28, channels: 3 } })
      .jpeg()
      .toBuffer();
    writeFileSync(join(png, '5', 'zz-broken.jpg'), jpeg.subarray(0, jpeg.length >> 1));
    const before = listFiles(dir);
    for (const threads of ['1', '0']) {
      const r = await edgefitEval(CNN, '--data', png, '--decode-threads', threads);
      assert.equal(r.code, 0, r.error?.message);
      const j = r.json!;
      assert.equal(j.n, 1000);
      assert.equal(j.correct, builtin.correct);
      assert.deepEqual(
        j.skipped.map((s) => s.file),
        [
          join(png, '3', 'zz-truncated.png'),
          join(png, '5', 'zz-broken.jpg'),
          join(png, '7', 'zz-garbage.png'),
        ],
      );
      assert.match(j.skipped[0]!.reason, /corrupt PNG/);
      assert.match(j.skipped[1]!.reason, /cannot decode/);
      assert.match(j.skipped[2]!.reason, /cannot decode/);
      assert.match(r.text!, /skipped 3 unreadable items: .*zz-truncated\.png \(corrupt PNG/);
    }
    assert.deepEqual(listFiles(dir), before, 'eval writes nothing');
  });

  test('an RGB JPEG folder is resized (shorter side) and center-cropped to a 3×64×64 model', async () => {
    const b = new ModelBuilder({ seed: 5 });
    const x = b.input('image', 'float32', ['N', 3, 64, 64]);
    let h = b.relu(b.conv2d(x, { inC: 3, outC: 4, kernel: 5, stride: 4, name: 'c' }));
    h = b.flatten(b.globalAvgPool(h));
    b.output(b.linear(h, 4, 5, { name: 'fc' }), 'logits');
    const model = join(dir, 'rgb64.onnx');
    saveModel(b.build(), model);
    const root = join(dir, 'rgb');
    const files: string[] = [];
    for (let i = 0; i < 12; i++) {
      const [w, hh] = i % 3 === 0 ? [80, 100] : [100, 80];
      const pix = Buffer.alloc(w * hh * 3);
      for (let y = 0; y < hh; y++)
        for (let xx = 0; xx < w; xx++) {
          pix[(y * w + xx) * 3] = (xx * 3 + i * 20) & 255;
          pix[(y * w + xx) * 3 + 1] = (y * 2 + i * 7) & 255;
          pix[(y * w + xx) * 3 + 2] = ((xx + y) * (i + 1)) & 255;
        }
      const cls = join(root, i < 6 ? 'cat' : 'dog');
      mkdirSync(cls, { recursive: true });
      const f = join(cls, `img${String(i).padStart(2, '0')}.jpg`);
      writeFileSync(
        f,
        await sharp(pix, { raw: { width: w, height: hh, channels: 3 } })
          .jpeg({ quality: 92 })
          .toBuffer(),
      );
      files.push(f);
    }
    // the model scores 5 classes, the folder has 2: classes.txt says which model classes they are
    writeFileSync(join(root, 'classes.txt'), 'cat\ndog\nc2\nc3\nc4\n');
    // reference: sharp resizes the shorter side to 64, we cut the center 64×64 by hand, /255, NCHW
    const ref = new Float32Array(12 * 3 * 64 * 64);
    for (const [k, f] of files.entries()) {
      const { data, info } = await sharp(f)
        .toColourspace('srgb')
        .resize({ width: 64, height: 64, fit: 'outside', kernel: 'linear' })
        .raw()
        .toBuffer({ resolveWithObject: true });
      assert.deepEqual([Math.min(info.width, info.height), Math.max(info.width, info.height)], [64, 80]);
      const top = (info.height - 64) / 2;
      const left = (info.width - 64) / 2;
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < 64; y++)
          for (let xx = 0; xx < 64; xx++)
            ref[((k * 3 + c) * 64 + y) * 64 + xx] = data[((y + top) * info.width + xx + left) * 3 + c]! / 255;
    }
    const out = await runModel(
      model,
      { image: { dtype: 'float32', dims: [12, 3, 64, 64], data: ref } },
      { threads: 1 },
    );
    const s = out.logits!.data as Float32Array;
    const conf = Array.from({ length: 5 }, () => new Array<number>(5).fill(0));
    for (let k = 0; k < 12; k++) conf[k < 6 ? 0 : 1]![argmax(s, k, 5)]!++;
    const r = await edgefitEval(model, '--data', root);
    assert.equal(r.code, 0, r.error?.message);
    const j = r.json!;
    assert.equal(j.n, 12);
    assert.deepEqual(j.confusion, conf);
    assert.deepEqual(
      [j.preprocess!.channels, j.preprocess!.crop, j.preprocess!.resize, j.preprocess!.layout],
      [3, [64, 64], 64, 'nchw'],
    );
    assert.deepEqual(
      j.perClass.slice(0, 2).map((c) => [c.name, c.support]),
      [
        ['cat', 6],
        ['dog', 6],
      ],
    );
    // flags override the defaults and are echoed: resize 72 then crop 64, ImageNet mean/std, BGR
    const o = await edgefitEval(
      model,
      '--data',
      root,
      '--resize',
      '72',
      '--crop',
      '64x64',
      '--mean',
      '0.485,0.456,0.406',
      '--std',
      '0.229,0.224,0.225',
      '--bgr',
    );
    assert.equal(o.code, 0, o.error?.message);
    assert.deepEqual([o.json!.preprocess!.resize, o.json!.preprocess!.mean], [72, [0.485, 0.456, 0.406]]);
    const bad = await edgefitEval(model, '--data', root, '--crop', '32x32');
    assert.equal(bad.code, 2);
    assert.match(bad.error!.message, /--crop: 32x32 does not fit model input "image"/);
  });

  test('CSV drives a small MLP: the same result as ORT on the parsed features', async () => {
    const b = new ModelBuilder({ seed: 2 });
    const x = b.input('features', 'float32', ['N', 4]);
    b.output(b.linear(b.relu(b.linear(x, 4, 8, { name: 'l1' })), 8, 3, { name: 'l2' }), 'logits');
    const model = join(dir, 'mlp4.onnx');
    saveModel(b.build(), model);
    const names = ['setosa', 'versicolor', 'virginica'];
    const feats = new Float32Array(40 * 4);
    const labels: number[] = [];
    const lines = ['sepal_length,sepal_width,petal_length,petal_width,species'];
    for (let i = 0; i < 40; i++) {
      const row = [0, 1, 2, 3].map((k) => +(Math.sin(i * 1.7 + k) * 3 + k).toFixed(3));
      row.forEach((v, k) => (feats[i * 4 + k] = v));
      labels.push(i % 3);
      lines.push(`${row.join(',')},${names[i % 3]}`);
    }
    const csv = join(dir, 'iris.csv');
    writeFileSync(csv, `${lines.join('\n')}\n`);
    const out = await runModel(
      model,
      { features: { dtype: 'float32', dims: [40, 4], data: feats } },
      { threads: 1 },
    );
    const s = out.logits!.data as Float32Array;
    let correct = 0;
    for (let i = 0; i < 40; i++) if (argmax(s, i, 3) === labels[i]) correct++;
    const r = await edgefitEval(model, '--data', csv, '--batch', '16');
    assert.equal(r.code, 0, r.error?.message);
    assert.deepEqual([r.json!.n, r.json!.correct, r.json!.format], [40, correct, 'csv']);
    assert.deepEqual(
      r.json!.perClass.map((c) => c.name),
      names,
    );
    assert.equal(r.json!.preprocess, null);
    const named = await edgefitEval(model, '--data', csv, '--label-column', 'species');
    assert.equal(named.json!.correct, correct);
    // label column "none" makes the species names a feature column
    const none = await edgefitEval(model, '--data', csv, '--label-column', 'none');
    assert.equal(none.code, 2);
    assert.match(none.error!.message, /iris\.csv:2: column 5 \(species\) is "setosa", not a number/);
    const wide = join(dir, 'wide.csv');
    writeFileSync(wide, '1,2,3,4,5,0\n');
    const w = await edgefitEval(model, '--data', wide);
    assert.equal(w.code, 2);
    assert.match(
      w.error!.message,
      /wide\.csv: rows of 5 feature columns \(plus label column 6\) do not fit model input "features" of shape \[N,4\]/,
    );
  });

  test('.npy with --labels, and a manifest feeding a two-input model', async () => {
    const b = new ModelBuilder({ seed: 3 });
    const a = b.input('a', 'float32', ['N', 4]);
    const c = b.input('b', 'float32', ['N', 2]);
    b.output(b.linear(b.concat([a, c], 1), 6, 3, { name: 'fc' }), 'logits');
    const model = join(dir, 'two.onnx');
    saveModel(b.build(), model);
    const n = 50;
    const av = Float32Array.from({ length: n * 4 }, (_, i) => Math.cos(i));
    const bv = Float32Array.from({ length: n * 2 }, (_, i) => Math.sin(i * 0.3));
    const y = BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 3));
    writeNpy(join(dir, 'a.npy'), { dtype: 'float32', shape: [n, 4], data: av });
    writeNpz(
      join(dir, 'bz.npz'),
      { b: { dtype: 'float32', shape: [n, 2], data: bv }, y: { dtype: 'int64', shape: [n], data: y } },
      { compress: true },
    );
    const out = await runModel(
      model,
      { a: { dtype: 'float32', dims: [n, 4], data: av }, b: { dtype: 'float32', dims: [n, 2], data: bv } },
      { threads: 1 },
    );
    let correct = 0;
    for (let i = 0; i < n; i++) if (argmax(out.logits!.data as Float32Array, i, 3) === i % 3) correct++;
    const manifest = join(dir, 'inputs.yaml');
    writeFileSync(
      manifest,
      'inputs:\n  a: a.npy\n  b: bz.npz\nlabels: bz.npz:y\nclasses: [red, green, blue]\n',
    );
    const r = await edgefitEval(model, '--data', manifest, '--batch', '7');
    assert.equal(r.code, 0, r.error?.message);
    assert.deepEqual([r.json!.n, r.json!.correct, r.json!.format], [n, correct, 'manifest']);
    assert.deepEqual(
      r.json!.perClass.map((p) => p.name),
      ['red', 'green', 'blue'],
    );

    // the single-input CNN on .npy + --labels equals the .npz result
    writeNpy(join(dir, 'fx.npy'), {
      dtype: 'float32',
      shape: [200, 1, 28, 28],
      data: fm.x.subarray(0, 200 * 784),
    });
    writeNpy(join(dir, 'fy.npy'), {
      dtype: 'uint8',
      shape: [200],
      data: Uint8Array.from(fm.y.subarray(0, 200), Number),
    });
    const npy = await edgefitEval(CNN, '--data', join(dir, 'fx.npy'), '--labels', join(dir, 'fy.npy'));
    const ref = await evaluate(
      CNN,
      fromDataset({ ...fm, n: 200, x: fm.x.subarray(0, 200 * 784), y: fm.y.subarray(0, 200) }),
      {},
    );
    assert.equal(npy.code, 0, npy.error?.message);
    assert.deepEqual([npy.json!.n, npy.json!.correct], [200, ref.correct]);

    // checked against the model before anything runs: shape, dtype, names — errors name the file
    writeNpy(join(dir, 'b3.npy'), { dtype: 'float32', shape: [n, 3], data: new Float32Array(n * 3) });
    writeNpy(join(dir, 'b64.npy'), { dtype: 'float64', shape: [n, 2], data: new Float64Array(n * 2) });
    writeNpy(join(dir, 'bshort.npy'), {
      dtype: 'float32',
      shape: [n - 1, 2],
      data: new Float32Array((n - 1) * 2),
    });
    const cases: [string, RegExp][] = [
      [
        'inputs:\n  a: a.npy\n  b: b3.npy\nlabels: bz.npz:y\n',
        /b3\.npy: array of shape \[50,3\] does not fit model input "b" of shape \[N,2\]/,
      ],
      [
        'inputs:\n  a: a.npy\n  b: b64.npy\nlabels: bz.npz:y\n',
        /b64\.npy: array is float64, but model input "b" takes float32/,
      ],
      ['inputs:\n  a: a.npy\n  b: bshort.npy\n', /bshort\.npy: has 49 items, but .*a\.npy has 50/],
      ['inputs:\n  a: a.npy\n', /does not map model input b/],
      ['inputs:\n  a: a.npy\n  b: bz.npz:b\n  c: a.npy\n', /maps c, which the model does not have/],
      ['inputs:\n  a: a.npy\n  b: bz.npz:nope\n', /bz\.npz: has no array "nope"/],
      ['inputs:\n  a: a.npy\n  b: missing.npy\n', /missing\.npy: cannot read/],
    ];
    for (const [text, re] of cases) {
      writeFileSync(manifest, text);
      const e = await edgefitEval(model, '--data', manifest);
      assert.equal(e.code, 2, text);
      assert.match(e.error!.message, re);
      assert.ok(e.error!.subject.file, 'the error names a file');
    }
  });

  test('bad data: InputErrors (exit 2) naming the file or folder', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const noImages = join(dir, 'noimg');
    mkdirSync(join(noImages, 'a'), { recursive: true });
    mkdirSync(join(noImages, 'b'), { recursive: true });
    writeFileSync(join(noImages, 'a', 'x.png'), encodePng(new Uint8Array(784), 28, 28, 1));
    writeFileSync(join(noImages, 'b', 'notes.txt'), 'no images here');
    const eleven = join(dir, 'eleven');
    for (let c = 0; c < 11; c++) {
      mkdirSync(join(eleven, `c${String(c).padStart(2, '0')}`), { recursive: true });
      writeFileSync(
        join(eleven, `c${String(c).padStart(2, '0')}`, 'x.png'),
        encodePng(new Uint8Array(784), 28, 28, 1),
      );
    }
    const flat = join(dir, 'flat');
    mkdirSync(flat);
    for (let i = 0; i < 3; i++)
      writeFileSync(join(flat, `${i}.png`), encodePng(new Uint8Array(784).fill(i * 40), 28, 28, 1));
    writeNpy(join(dir, 'x.npy'), {
      dtype: 'float32',
      shape: [4, 1, 28, 28],
      data: new Float32Array(4 * 784),
    });
    writeNpy(join(dir, 'y10.npy'), {
      dtype: 'int64',
      shape: [4],
      data: BigInt64Array.from([0n, 1n, 10n, 2n]),
    });
    writeNpy(join(dir, 'x14.npy'), {
      dtype: 'float32',
      shape: [4, 1, 14, 56],
      data: new Float32Array(4 * 784),
    });
    writeFileSync(
      join(dir, 'big.csv'),
      `${Array.from({ length: 784 }, (_, i) => `p${i}`).join(',')},label\n${new Array(784).fill(0).join(',')},10\n`,
    );
    const cases: [string[], string, RegExp][] = [
      [['--data', empty], empty, /no images/],
      [['--data', noImages], join(noImages, 'b'), /class folder "b" has no images/],
      [['--data', eleven], join(eleven, 'c10'), /class index 10, outside the model's 10 output classes/],
      [['--data', flat], flat, /edgefit eval needs labelled data, and .*flat has no labels/],
      [
        ['--data', join(dir, 'x.npy'), '--labels', join(dir, 'y10.npy')],
        join(dir, 'y10.npy'),
        /label 10 at row 2 is outside the model's 10 output classes/,
      ],
      [['--data', join(dir, 'x14.npy')], join(dir, 'x14.npy'), /does not fit model input "input"/],
      [['--data', join(dir, 'big.csv')], join(dir, 'big.csv'), /label 10 at data row 1 is outside/],
      [
        ['--data', join(dir, 'x.npy'), '--resize', '32'],
        join(dir, 'x.npy'),
        /preprocessing options \(for image folders\) do not apply/,
      ],
      [['--data', join(dir, 'nothing-here')], join(dir, 'nothing-here'), /neither a built-in dataset/],
    ];
    const before = listFiles(dir);
    for (const [args, file, re] of cases) {
      const r = await edgefitEval(CNN, ...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.error?.message ?? 'no error'}`);
      assert.match(r.error!.message, re);
      assert.ok(r.error!.message.includes(file), `${r.error!.message} names ${file}`);
      assert.equal(r.error!.subject.file ?? r.error!.subject.value, file);
    }
    assert.deepEqual(listFiles(dir), before, 'nothing is written on error');
  });
});
