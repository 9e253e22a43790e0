// A small PNG codec for the common case, with node:zlib: decode 8-bit, non-interlaced greyscale, grey+alpha, RGB,
// RGBA and palette images (chunk CRCs checked), and encode 8-bit greyscale / RGB.
//
// Why, when sharp decodes PNG: sharp (libvips) costs ~0.2–0.5 ms of setup per image, so a folder of small images
// (28×28 Fashion-MNIST) decodes at ~2–5 k images/s on two cores, while ORT runs cnn-s at ~15–30 k images/s at
// batch 64 (BENCHMARKS.md). This decoder does ~60 k/s per core on such images. images.ts uses it when an image
// needs no resize and no colour conversion beyond dropping alpha or replicating grey; everything else (JPEG,
// 16-bit, interlaced, resizing, RGB → grey) goes through sharp.
import { deflateSync, inflateSync } from 'node:zlib';

export interface DecodedImage {
  width: number;
  height: number;
  /** 1 (grey) or 3 (RGB): alpha is dropped, palettes are expanded. */
  channels: 1 | 3;
  /** height × width × channels bytes, interleaved. */
  data: Uint8Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC, as PNG and zip use it); `crc` continues a previous value. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

/** Thrown for a PNG that is damaged (bad CRC, truncated, bad zlib data). */
export class PngError extends Error {}

export interface PngInfo {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlace: number;
}

/** Width, height, bit depth, colour type and interlace of a PNG (from IHDR), or undefined when not a PNG. */
export function pngInfo(b: Uint8Array): PngInfo | undefined {
  if (!isPng(b) || b.length < 33) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (String.fromCharCode(b[12]!, b[13]!, b[14]!, b[15]!) !== 'IHDR') return undefined;
  return {
    width: v.getUint32(16),
    height: v.getUint32(20),
    bitDepth: b[24]!,
    colorType: b[25]!,
    interlace: b[28]!,
  };
}

/** Whether decodePng handles this PNG: non-interlaced, 8-bit (any colour type) or 1/2/4-bit grey or palette. */
export function fastPngSupported(info: PngInfo): boolean {
  if (info.interlace !== 0) return false;
  if (info.bitDepth === 8) return [0, 2, 3, 4, 6].includes(info.colorType);
  return (info.colorType === 0 || info.colorType === 3) && [1, 2, 4].includes(info.bitDepth);
}

/**
 * Decode a PNG that fastPngSupported() accepts; throws PngError when it is damaged. Palette images come out as
 * RGB (the palette's alpha is dropped, as for RGBA).
 */
export function decodePng(b: Uint8Array): DecodedImage {
  const info = pngInfo(b);
  if (!info) throw new PngError('not a PNG file');
  if (!fastPngSupported(info)) throw new PngError('PNG variant not handled by the fast decoder');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const { width: w, height: h, colorType } = info;
  if (w === 0 || h === 0) throw new PngError(`bad size ${w}x${h}`);
  const idat: Uint8Array[] = [];
  let palette: Uint8Array | undefined;
  let p = 8;
  let end = false;
  while (p + 12 <= b.length) {
    const len = v.getUint32(p);
    if (p + 12 + len > b.length) throw new PngError('truncated chunk');
    const type = String.fromCharCode(b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    const crc = v.getUint32(p + 8 + len);
    if (crc32(b.subarray(p + 4, p + 8 + len)) !== crc) throw new PngError(`bad CRC in ${type} chunk`);
    const body = b.subarray(p + 8, p + 8 + len);
    if (type === 'IDAT') idat.push(body);
    else if (type === 'PLTE') palette = body;
    else if (type === 'IEND') {
      end = true;
      break;
    }
    p += 12 + len;
  }
  if (!end) throw new PngError('truncated (no IEND chunk)');
  if (!idat.length) throw new PngError('no image data');
  if (colorType === 3 && !palette) throw new PngError('palette image without PLTE');
  const depth = info.bitDepth;
  const bpp = colorType === 0 ? 1 : colorType === 4 ? 2 : colorType === 2 ? 3 : colorType === 6 ? 4 : 1;
  const stride = depth === 8 ? w * bpp : Math.ceil((w * depth) / 8);
  let raw: Uint8Array;
  try {
    raw = inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat));
  } catch (e) {
    throw new PngError(`bad image data: ${(e as Error).message}`);
  }
  if (raw.length < h * (stride + 1))
    throw new PngError(`image data too short: ${raw.length} bytes for ${w}x${h}`);
  let un = new Uint8Array(h * stride);
  for (let y = 0; y < h; y++) {
    const f = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const o = y * stride;
    const prev = o - stride;
    switch (f) {
      case 0:
        un.set(raw.subarray(src, src + stride), o);
        break;
      case 1:
        for (let x = 0; x < stride; x++) un[o + x] = raw[src + x]! + (x >= bpp ? un[o + x - bpp]! : 0);
        break;
      case 2:
        for (let x = 0; x < stride; x++) un[o + x] = raw[src + x]! + (y ? un[prev + x]! : 0);
        break;
      case 3:
        for (let x = 0; x < stride; x++)
          un[o + x] = raw[src + x]! + (((x >= bpp ? un[o + x - bpp]! : 0) + (y ? un[prev + x]! : 0)) >> 1);
        break;
      case 4:
        for (let x = 0; x < stride; x++) {
          const a = x >= bpp ? un[o + x - bpp]! : 0;
          const up = y ? un[prev + x]! : 0;
          const c = x >= bpp && y ? un[prev + x - bpp]! : 0;
          const pp = a + up - c;
          const pa = Math.abs(pp - a);
          const pb = Math.abs(pp - up);
          const pc = Math.abs(pp - c);
          un[o + x] = raw[src + x]! + (pa <= pb && pa <= pc ? a : pb <= pc ? up : c);
        }
        break;
      default:
        throw new PngError(`bad filter type ${f} in row ${y}`);
    }
  }
  const n = w * h;
  if (depth < 8) {
    // unpack 1/2/4-bit samples (MSB first); grey expands to 0..255 as libpng does (v · 255 / (2^depth − 1))
    const px = new Uint8Array(n);
    const mask = (1 << depth) - 1;
    const mul = colorType === 0 ? 255 / mask : 1;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const bit = x * depth;
        px[y * w + x] = ((un[y * stride + (bit >> 3)]! >> (8 - depth - (bit & 7))) & mask) * mul;
      }
    un = px;
  }
  if (colorType === 0) return { width: w, height: h, channels: 1, data: un };
  if (colorType === 2) return { width: w, height: h, channels: 3, data: un };
  const out = new Uint8Array(n * (colorType === 4 ? 1 : 3));
  if (colorType === 4) for (let i = 0; i < n; i++) out[i] = un[2 * i]!;
  else if (colorType === 6)
    for (let i = 0; i < n; i++) {
      out[3 * i] = un[4 * i]!;
      out[3 * i + 1] = un[4 * i + 1]!;
      out[3 * i + 2] = un[4 * i + 2]!;
    }
  else {
    const pal = palette!;
    for (let i = 0; i < n; i++) {
      const k = un[i]! * 3;
      if (k + 2 >= pal.length)
        throw new PngError(`palette index ${un[i]} outside the ${pal.length / 3}-entry palette`);
      out[3 * i] = pal[k]!;
      out[3 * i + 1] = pal[k + 1]!;
      out[3 * i + 2] = pal[k + 2]!;
    }
  }
  return { width: w, height: h, channels: colorType === 4 ? 1 : 3, data: out };
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  v.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

/** Encode 8-bit greyscale (channels 1) or RGB (channels 3) pixels as a PNG (filter 0 on every row). */
export function encodePng(px: Uint8Array, width: number, height: number, channels: 1 | 3): Uint8Array {
  if (px.length !== width * height * channels)
    throw new RangeError(`encodePng: ${px.length} bytes for ${width}x${height}x${channels}`);
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = channels === 1 ? 0 : 2;
  const stride = width * channels;
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) raw.set(px.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const parts = [
    Uint8Array.from(SIGNATURE),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ];
  return Buffer.concat(parts);
}
