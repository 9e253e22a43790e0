import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError, UnsupportedError } from '../errors.js';
import { PIXEL_SCALE } from './dataset.js';
import { itemShape, parsePreprocessBlock, resolvePreprocess, valueTable, writeItem } from './preprocess.js';

const inp = (shape: (number | string)[], dtype: 'float32' | 'int64' = 'float32') => ({
  name: 'input',
  dtype,
  shape,
});

test('defaults come from the model input: channels, size, layout', () => {
  const g = resolvePreprocess(inp(['N', 1, 28, 28]));
  assert.deepEqual(
    [g.channels, g.crop, g.resize, g.layout, g.flatten, g.scale, g.mean, g.std],
    [1, [28, 28], 28, 'nchw', false, 1 / 255, [0], [1]],
  );
  assert.deepEqual(itemShape(g, 4), [1, 28, 28]);
  const rgb = resolvePreprocess(inp(['N', 3, 64, 48]));
  assert.deepEqual([rgb.channels, rgb.crop, rgb.resize], [3, [64, 48], 64]);
  const nhwc = resolvePreprocess(inp([1, 224, 224, 3]));
  assert.deepEqual([nhwc.layout, nhwc.channels, nhwc.crop], ['nhwc', 3, [224, 224]]);
  assert.deepEqual(itemShape(nhwc, 4), [224, 224, 3]);
  const flat = resolvePreprocess(inp(['N', 784]));
  assert.deepEqual([flat.flatten, flat.channels, flat.crop], [true, 1, [28, 28]]);
  assert.deepEqual(itemShape(flat, 2), [784]);
  const flat3 = resolvePreprocess(inp(['N', 3 * 32 * 32]));
  assert.deepEqual([flat3.channels, flat3.crop], [3, [32, 32]]);
  assert.deepEqual(resolvePreprocess(inp(['N', 28, 28])).channels, 1);
});

test('overrides: crop for symbolic sizes, mean/std per channel, bgr, scale; mismatches are InputErrors', () => {
  assert.throws(
    () => resolvePreprocess(inp(['N', 3, 'h', 'w'])),
    (e: unknown) => e instanceof InputError && /--crop/.test((e as Error).message),
  );
  const s = resolvePreprocess(inp(['N', 3, 'h', 'w']), {
    crop: [100, 80],
    resize: 120,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    bgr: true,
  });
  assert.deepEqual([s.crop, s.resize, s.bgr, s.mean.length], [[100, 80], 120, true, 3]);
  assert.deepEqual(resolvePreprocess(inp(['N', 3, 8, 8]), { mean: [0.5] }).mean, [0.5, 0.5, 0.5]);
  assert.throws(() => resolvePreprocess(inp(['N', 3, 8, 8]), { mean: [0.5, 0.5] }), InputError);
  assert.throws(() => resolvePreprocess(inp(['N', 3, 8, 8]), { std: [0] }), InputError);
  assert.throws(
    () => resolvePreprocess(inp(['N', 3, 8, 8]), { crop: [7, 8] }),
    (e: unknown) => e instanceof InputError && /does not fit/.test((e as Error).message),
  );
  assert.throws(() => resolvePreprocess(inp(['N', 1, 8, 8]), { bgr: true }), InputError);
  assert.throws(
    () => resolvePreprocess(inp(['N', 5, 8, 8])),
    (e: unknown) => e instanceof InputError && /5 channels/.test((e as Error).message),
  );
  assert.throws(() => resolvePreprocess(inp(['N', 1, 8, 8], 'int64')), UnsupportedError);
  assert.throws(
    () => resolvePreprocess(inp(['N', 1000])),
    (e: unknown) => e instanceof InputError && /--crop/.test((e as Error).message),
  );
  assert.deepEqual(resolvePreprocess(inp(['N', 1000]), { crop: [10, 100] }).channels, 1);
});

test('parsePreprocessBlock takes the flag names and names the YAML path of a bad value', () => {
  assert.deepEqual(
    parsePreprocessBlock({
      resize: 256,
      crop: '224x224',
      mean: [0.5, 0.5, 0.5],
      std: '0.2,0.2,0.2',
      bgr: true,
      layout: 'nhwc',
      scale: 1,
    }),
    {
      resize: 256,
      crop: [224, 224],
      mean: [0.5, 0.5, 0.5],
      std: [0.2, 0.2, 0.2],
      bgr: true,
      layout: 'nhwc',
      scale: 1,
    },
  );
  assert.deepEqual(parsePreprocessBlock({ crop: [32, 48] }).crop, [32, 48]);
  assert.throws(
    () => parsePreprocessBlock({ resise: 3 }, 'calib.preprocess'),
    (e: unknown) => e instanceof InputError && /calib\.preprocess\.resise/.test((e as Error).message),
  );
  assert.throws(() => parsePreprocessBlock({ layout: 'chw' }), InputError);
  assert.throws(() => parsePreprocessBlock({ crop: '12 by 3' }), InputError);
});

test('writeItem: exact /255 values, center crop (half to even), padding, BGR and NHWC', () => {
  // a 5×4 RGB image whose pixel (x, y) channel c is 10·y + x + 100·c
  const w = 5;
  const h = 4;
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = 10 * y + x + 100 * c;
  const spec = resolvePreprocess(inp(['N', 3, 2, 3]));
  const out = new Float32Array(18);
  writeItem(px, w, h, 3, spec, valueTable(spec), out, 0);
  // top = round((4-2)/2) = 1, left = round((5-3)/2) = 1
  const expect = (c: number, y: number, x: number) => PIXEL_SCALE[10 * (y + 1) + (x + 1) + 100 * c]!;
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < 2; y++)
      for (let x = 0; x < 3; x++) assert.equal(out[(c * 2 + y) * 3 + x], expect(c, y, x));
  const bgr = { ...spec, bgr: true, layout: 'nhwc' as const };
  writeItem(px, w, h, 3, bgr, valueTable(bgr), out, 0);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < 2; y++)
      for (let x = 0; x < 3; x++) assert.equal(out[(y * 3 + x) * 3 + c], expect(2 - c, y, x));
  // crop wider than the image: left = round((5-6)/2) = round(-0.5) = -0 (half to even), right column padded
  const wide = resolvePreprocess(inp(['N', 1, 1, 6]), { mean: [0.5], std: [0.25] });
  const grey = Uint8Array.from({ length: 5 }, (_, i) => i * 50);
  const o2 = new Float32Array(6);
  writeItem(grey, 5, 1, 1, wide, valueTable(wide), o2, 0);
  assert.deepEqual(
    Array.from(o2),
    [0, 50, 100, 150, 200, 0].map((p) => Math.fround((PIXEL_SCALE[p]! - 0.5) / 0.25)),
  );
  // grey source into an RGB input: replicated
  const o3 = new Float32Array(3);
  const rgb1 = resolvePreprocess(inp(['N', 3, 1, 1]));
  writeItem(Uint8Array.of(51), 1, 1, 1, rgb1, valueTable(rgb1), o3, 0);
  assert.deepEqual(Array.from(o3), [0.2, 0.2, 0.2].map(Math.fround));
});
