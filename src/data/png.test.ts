import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { crc32, decodePng, encodePng, fastPngSupported, pngInfo, PngError } from './png.js';
import { decodeImage, decodePath } from './images.js';
import { resolvePreprocess } from './preprocess.js';

function pattern(w: number, h: number, c: number, seed = 1): Uint8Array {
  const px = new Uint8Array(w * h * c);
  let s = seed;
  for (let i = 0; i < px.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    px[i] = (i % 7 === 0 ? s >>> 24 : i * 37 + (i >> 3)) & 255; // smooth runs and noise: exercises every filter
  }
  return px;
}

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('encodePng round-trips through sharp and the fast decoder', async () => {
  for (const c of [1, 3] as const) {
    const px = pattern(13, 9, c);
    const png = encodePng(px, 13, 9, c);
    const img = sharp(png);
    const { data, info } = await (c === 1 ? img.greyscale() : img)
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [13, 9, c]);
    assert.deepEqual(new Uint8Array(data), px);
    const d = decodePng(png);
    assert.deepEqual([d.width, d.height, d.channels], [13, 9, c]);
    assert.deepEqual(d.data, px);
  }
});

test('the fast decoder gives the same pixels as sharp for the PNG variants sharp writes', async () => {
  const w = 31;
  const h = 17;
  const variants: { name: string; png: Buffer; channels: 1 | 3; ct: number }[] = [];
  const make = (c: 1 | 2 | 3 | 4, opts: import('sharp').PngOptions = {}) =>
    sharp(Buffer.from(pattern(w, h, c, c)), { raw: { width: w, height: h, channels: c } })
      .toColourspace(c <= 2 ? 'b-w' : 'srgb')
      .png({ compressionLevel: 9, adaptiveFiltering: true, ...opts })
      .toBuffer();
  variants.push({ name: 'grey', png: await make(1), channels: 1, ct: 0 });
  variants.push({ name: 'grey+alpha', png: await make(2), channels: 1, ct: 4 });
  variants.push({ name: 'rgb', png: await make(3), channels: 3, ct: 2 });
  variants.push({ name: 'rgba', png: await make(4), channels: 3, ct: 6 });
  variants.push({
    name: 'palette 4-bit',
    png: await make(3, { palette: true, colours: 16 }),
    channels: 3,
    ct: 3,
  });
  variants.push({
    name: 'palette 8-bit',
    png: await make(3, { palette: true, colours: 200 }),
    channels: 3,
    ct: 3,
  });
  variants.push({
    name: 'palette 1-bit',
    png: await make(3, { palette: true, colours: 2 }),
    channels: 3,
    ct: 3,
  });
  for (const v of variants) {
    const info = pngInfo(v.png)!;
    assert.equal(info.colorType, v.ct, v.name);
    assert.ok(fastPngSupported(info), v.name);
    const fast = decodePng(v.png);
    const s = await sharp(v.png)
      [v.channels === 1 ? 'greyscale' : 'toColourspace'](v.channels === 1 ? undefined : ('srgb' as never))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.equal(fast.channels, s.info.channels, v.name);
    assert.deepEqual(fast.data, new Uint8Array(s.data), v.name);
    // and decodeImage, with a spec that takes this size, uses the fast path for it
    const spec = resolvePreprocess({ name: 'x', dtype: 'float32', shape: ['N', v.channels, h, h] });
    assert.equal(decodePath(v.png, spec), 'fast', v.name);
  }
  // 16-bit and interlaced PNGs go to sharp
  const rgb16 = await sharp(Buffer.from(pattern(w, h, 3)), { raw: { width: w, height: h, channels: 3 } })
    .toColourspace('rgb16')
    .png()
    .toBuffer();
  const inter = await sharp(Buffer.from(pattern(w, h, 3)), { raw: { width: w, height: h, channels: 3 } })
    .png({ progressive: true })
    .toBuffer();
  const spec = resolvePreprocess({ name: 'x', dtype: 'float32', shape: ['N', 3, h, h] });
  for (const png of [rgb16, inter]) {
    assert.equal(fastPngSupported(pngInfo(png)!), false);
    assert.equal(decodePath(png, spec), 'sharp');
    const img = await decodeImage(png, spec);
    assert.deepEqual([img.width, img.height, img.channels], [w, h, 3]);
  }
  // RGB source for a greyscale model goes to sharp (colour conversion)
  assert.equal(
    decodePath(variants[2]!.png, resolvePreprocess({ name: 'x', dtype: 'float32', shape: ['N', 1, h, h] })),
    'sharp',
  );
});

test('damaged PNGs are PngErrors: bad CRC, truncation, bad zlib data', () => {
  const png = encodePng(pattern(20, 20, 1), 20, 20, 1);
  const flipped = Buffer.from(png);
  flipped[png.length - 20] ^= 0xff; // inside IDAT
  assert.throws(
    () => decodePng(flipped),
    (e: unknown) => e instanceof PngError && /CRC/.test((e as Error).message),
  );
  assert.throws(() => decodePng(png.subarray(0, png.length - 30)), PngError);
  assert.throws(() => decodePng(png.subarray(0, 40)), PngError);
  assert.throws(() => decodePng(Buffer.from('not a png at all, just some text')), PngError);
});
