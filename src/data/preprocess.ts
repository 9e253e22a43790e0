// Image preprocessing: from decoded 8-bit pixels to the float32 rows a model takes.
//   1. colour: 1 channel → greyscale, 3 → RGB (or BGR with `bgr`); alpha is dropped
//   2. resize: the shorter side to `resize` pixels, keeping the aspect ratio (sharp, linear kernel)
//   3. center crop to `crop` [H, W] (torchvision's CenterCrop: top = round((h - H) / 2), half to even; an
//      image smaller than the crop is padded with pixel value 0)
//   4. value = (pixel · scale − mean[c]) / std[c]; scale 1/255 gives exactly numpy's float32(p) / 255.0
//   5. layout NCHW or NHWC (or the flat rows of a model that takes [N, C·H·W])
// Defaults come from the model's first input: [N, C, H, W] with C 1 or 3 (or [N, H, W, C]): crop H×W, resize to
// max(H, W) (for a square input: the shorter side to H, then the center crop), scale 1/255, mean 0, std 1.
// Flags (--resize, --crop, --mean, --std, --bgr, --layout, --scale) and a config's `preprocess:` block override.
import { InputError, UnsupportedError } from '../errors.js';
import { PIXEL_SCALE } from './dataset.js';
import { shapeText, type TensorSpec } from './source.js';

export type Layout = 'nchw' | 'nhwc';

/** The preprocessing used: JSON-serialisable (printed with --json, stored with artifacts). */
export interface PreprocessSpec {
  /** 1 (greyscale) or 3 (RGB, or BGR when `bgr`). */
  channels: 1 | 3;
  bgr: boolean;
  /** The shorter side is resized to this many pixels before the crop. */
  resize: number;
  /** Center crop [H, W]: the model's input size. */
  crop: [number, number];
  /** Pixel multiplier before mean/std (1/255 maps 0..255 to 0..1). */
  scale: number;
  /** Per channel, in the order fed to the model. */
  mean: number[];
  std: number[];
  layout: Layout;
  /** The model takes flat rows [N, C·H·W] (values in `layout` order). */
  flatten: boolean;
  dtype: 'float32';
  /** The resize kernel (sharp). */
  interpolation: 'linear';
}

/** What a user may override (flags or a `preprocess:` block). */
export interface PreprocessOverrides {
  resize?: number;
  crop?: [number, number];
  mean?: number[];
  std?: number[];
  bgr?: boolean;
  layout?: Layout;
  scale?: number;
  /** Only without a model (or for a model whose input does not say): 1 or 3. */
  channels?: 1 | 3;
}

export const PREPROCESS_KEYS = [
  'resize',
  'crop',
  'mean',
  'std',
  'bgr',
  'layout',
  'scale',
  'channels',
] as const;

function bad(what: string, msg: string, path?: string): never {
  throw new InputError('preprocess', `${what}: ${msg}`, path ? { path, value: what } : { value: what });
}

/** Parse "HxW" (or "N" for a square). */
export function parseCrop(s: string, what = '--crop', path?: string): [number, number] {
  const m = /^\s*(\d+)\s*(?:[xX×,]\s*(\d+))?\s*$/.exec(s);
  if (!m) bad(what, `expected HxW (e.g. 224x224): current value is "${s}"`, path);
  const h = Number(m[1]);
  const w = Number(m[2] ?? m[1]);
  if (h < 1 || w < 1 || h > 65535 || w > 65535)
    bad(what, `sizes must be 1..65535: current value is "${s}"`, path);
  return [h, w];
}

/** Parse "a,b,c" (finite numbers). */
export function parseNumberList(s: string, what: string, path?: string): number[] {
  const parts = s.split(',').map((x) => x.trim());
  const out = parts.map(Number);
  if (!parts.length || parts.some((p) => p === '') || out.some((v) => !Number.isFinite(v)))
    bad(what, `expected comma-separated numbers (e.g. 0.485,0.456,0.406): current value is "${s}"`, path);
  return out;
}

function parseNumber(v: unknown, what: string, path?: string): number {
  const n = typeof v === 'string' ? Number(v.trim()) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || (typeof v === 'string' && v.trim() === ''))
    bad(what, `expected a number: current value is ${JSON.stringify(v)}`, path);
  return n;
}

function parseIntIn(v: unknown, what: string, min: number, max: number, path?: string): number {
  const n = parseNumber(v, what, path);
  if (!Number.isInteger(n) || n < min || n > max)
    bad(what, `expected an integer from ${min} to ${max}: current value is ${JSON.stringify(v)}`, path);
  return n;
}

/**
 * Validate a `preprocess:` block of a YAML config (keys as the flags: resize, crop "HxW" or [H, W], mean, std
 * (lists or "a,b,c"), bgr, layout, scale, channels). `path` is the block's YAML path for messages.
 */
export function parsePreprocessBlock(block: unknown, path = 'preprocess'): PreprocessOverrides {
  if (block === undefined || block === null) return {};
  if (typeof block !== 'object' || Array.isArray(block))
    bad(path, 'expected a mapping of preprocessing options', path);
  const o: PreprocessOverrides = {};
  for (const [k, v] of Object.entries(block as Record<string, unknown>)) {
    const p = `${path}.${k}`;
    switch (k) {
      case 'resize':
        o.resize = parseIntIn(v, p, 1, 65535, p);
        break;
      case 'crop':
        if (Array.isArray(v) && v.length === 2)
          o.crop = [parseIntIn(v[0], p, 1, 65535, p), parseIntIn(v[1], p, 1, 65535, p)];
        else if (typeof v === 'string' || typeof v === 'number') o.crop = parseCrop(String(v), p, p);
        else bad(p, 'expected "HxW" or [H, W]', p);
        break;
      case 'mean':
      case 'std': {
        const list = Array.isArray(v)
          ? v.map((x) => parseNumber(x, p, p))
          : typeof v === 'number'
            ? [v]
            : typeof v === 'string'
              ? parseNumberList(v, p, p)
              : bad(p, 'expected a list of numbers', p);
        o[k] = list;
        break;
      }
      case 'bgr':
        if (typeof v !== 'boolean') bad(p, 'expected true or false', p);
        o.bgr = v;
        break;
      case 'layout':
        if (v !== 'nchw' && v !== 'nhwc')
          bad(p, `expected nchw or nhwc: current value is ${JSON.stringify(v)}`, p);
        o.layout = v;
        break;
      case 'scale':
        o.scale = parseNumber(v, p, p);
        break;
      case 'channels':
        if (v !== 1 && v !== 3) bad(p, 'expected 1 or 3', p);
        o.channels = v;
        break;
      default:
        bad(p, `unknown preprocessing option (known: ${PREPROCESS_KEYS.join(', ')})`, p);
    }
  }
  return o;
}

/** True when the overrides set anything. */
export function hasOverrides(o: PreprocessOverrides | undefined): boolean {
  return !!o && Object.values(o).some((v) => v !== undefined);
}

function perChannel(v: number[] | undefined, c: number, dflt: number, what: string): number[] {
  if (!v) return new Array<number>(c).fill(dflt);
  if (v.length === 1) return new Array<number>(c).fill(v[0]!);
  if (v.length !== c) bad(what, `needs 1 or ${c} values for a ${c}-channel input: it has ${v.length}`);
  return [...v];
}

/**
 * The preprocessing for model input `input` (undefined: no model, then `crop` and `channels` must be given or
 * default to 3 channels). `data` names the data in messages.
 */
export function resolvePreprocess(
  input: TensorSpec | undefined,
  o: PreprocessOverrides = {},
  data = 'the images',
): PreprocessSpec {
  const name = input ? `model input "${input.name}"` : 'the model input';
  if (input && input.dtype !== 'float32')
    throw new UnsupportedError(
      'preprocess-dtype',
      `${name} is ${input.dtype}: images are fed as float32 only`,
      { value: input.name },
    );
  const shape = input?.shape ?? null;
  let channels: number | undefined = o.channels;
  let layout: Layout = o.layout ?? 'nchw';
  let H: number | undefined;
  let W: number | undefined;
  let flatten = false;
  const num = (d: unknown): number | undefined => (typeof d === 'number' ? d : undefined);
  if (shape && shape.length === 4) {
    const [, a, b, c] = shape;
    const nchwOk = num(a) === 1 || num(a) === 3;
    const nhwcOk = num(c) === 1 || num(c) === 3;
    if (!o.layout) layout = nchwOk ? 'nchw' : nhwcOk ? 'nhwc' : 'nchw';
    const cDim = layout === 'nchw' ? a : c;
    if (cDim !== undefined && typeof cDim === 'number') {
      if (cDim !== 1 && cDim !== 3)
        throw new InputError(
          'preprocess',
          `${name} has shape ${shapeText(shape)}: as ${layout.toUpperCase()} it has ${cDim} channels, but images give 1 or 3`,
          {
            value: input!.name,
          },
        );
      if (o.channels !== undefined && o.channels !== cDim)
        bad('channels', `${name} takes ${cDim} channels, not ${o.channels}`);
      channels = cDim;
    }
    H = num(layout === 'nchw' ? b : a);
    W = num(layout === 'nchw' ? c : b);
  } else if (shape && shape.length === 3) {
    // [N, H, W]: greyscale without a channel axis
    if (o.channels === 3)
      bad('channels', `${name} has shape ${shapeText(shape)}: no channel axis, so greyscale only`);
    channels = 1;
    H = num(shape[1]);
    W = num(shape[2]);
  } else if (shape && shape.length === 2) {
    flatten = true;
    const D = num(shape[1]);
    if (D === undefined)
      throw new InputError(
        'preprocess',
        `${name} has shape ${shapeText(shape)}: its row size is not fixed, so images cannot be fitted to it`,
        { value: input!.name },
      );
    if (o.crop) {
      const c = D / (o.crop[0] * o.crop[1]);
      if (c !== 1 && c !== 3)
        bad(
          '--crop',
          `${name} takes rows of ${D} values, which is not 1 or 3 channels of ${o.crop[0]}x${o.crop[1]}`,
        );
      if (o.channels !== undefined && o.channels !== c)
        bad('channels', `${name} takes rows of ${D} values: ${c} channels of ${o.crop[0]}x${o.crop[1]}`);
      channels = c;
    } else {
      const c = o.channels ?? (Number.isInteger(Math.sqrt(D)) ? 1 : 3);
      const side = Math.sqrt(D / c);
      if (!Number.isInteger(side))
        throw new InputError(
          'preprocess',
          `${name} takes flat rows of ${D} values: give --crop HxW (the image size they hold)`,
          { value: input!.name },
        );
      channels = c;
      H = side;
      W = side;
    }
  } else if (input) {
    throw new InputError(
      'preprocess',
      `${name} has shape ${shapeText(shape)}: images fit [N,C,H,W], [N,H,W,C], [N,H,W] or flat [N,D] inputs`,
      { value: input.name },
    );
  }
  channels ??= 3;
  if (o.crop) {
    if ((H !== undefined && H !== o.crop[0]) || (W !== undefined && W !== o.crop[1]))
      bad(
        '--crop',
        `${o.crop[0]}x${o.crop[1]} does not fit ${name} of shape ${shapeText(shape)} (it takes ${H ?? '?'}x${W ?? '?'} images)`,
      );
    [H, W] = o.crop;
  }
  if (H === undefined || W === undefined)
    throw new InputError(
      'preprocess',
      `${name} has shape ${shapeText(shape)}, without a fixed height and width: give --crop HxW for ${data}`,
      {
        value: input?.name ?? 'crop',
      },
    );
  if (o.bgr && channels !== 3) bad('--bgr', `${name} takes ${channels}-channel images: BGR needs 3`);
  const std = perChannel(o.std, channels, 1, '--std');
  if (std.some((s) => s === 0)) bad('--std', 'values must not be 0');
  const scale = o.scale ?? 1 / 255;
  if (!Number.isFinite(scale) || scale === 0)
    bad('--scale', `must be a non-zero number: current value is ${scale}`);
  return {
    channels: channels as 1 | 3,
    bgr: !!o.bgr,
    resize: o.resize ?? Math.max(H, W),
    crop: [H, W],
    scale,
    mean: perChannel(o.mean, channels, 0, '--mean'),
    std,
    layout,
    flatten,
    dtype: 'float32',
    interpolation: 'linear',
  };
}

/** The per-item shape the spec produces (without the batch dim), to match the model input's rank. */
export function itemShape(spec: PreprocessSpec, rank: number | undefined): number[] {
  const [H, W] = spec.crop;
  const C = spec.channels;
  if (spec.flatten) return [C * H * W];
  if (rank === 3) return [H, W];
  return spec.layout === 'nchw' ? [C, H, W] : [H, W, C];
}

/** Values per item. */
export function itemSize(spec: PreprocessSpec): number {
  return spec.channels * spec.crop[0] * spec.crop[1];
}

/** The float value of every pixel value 0..255 for every output channel: lut[c * 256 + p]. */
export function valueTable(spec: PreprocessSpec): Float32Array {
  const lut = new Float32Array(spec.channels * 256);
  const exact = spec.scale === 1 / 255;
  for (let c = 0; c < spec.channels; c++)
    for (let p = 0; p < 256; p++) {
      const v = exact ? PIXEL_SCALE[p]! : p * spec.scale;
      lut[c * 256 + p] = spec.mean[c] === 0 && spec.std[c] === 1 ? v : (v - spec.mean[c]!) / spec.std[c]!;
    }
  return lut;
}

/** Python's round(): half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Center-crop the w×h image `px` (interleaved, `srcC` channels: 1 or 3) to the spec's crop, map values through
 * `lut`, and write one item at out[off..] in the spec's layout. A 1-channel source feeding 3 channels is
 * replicated.
 */
export function writeItem(
  px: Uint8Array,
  w: number,
  h: number,
  srcC: number,
  spec: PreprocessSpec,
  lut: Float32Array,
  out: Float32Array,
  off: number,
): void {
  const [H, W] = spec.crop;
  const C = spec.channels;
  const top = roundHalfEven((h - H) / 2);
  const left = roundHalfEven((w - W) / 2);
  const nchw = spec.layout === 'nchw';
  for (let c = 0; c < C; c++) {
    const sc = srcC === 1 ? 0 : spec.bgr ? 2 - c : c;
    const base = c * 256;
    const pad = lut[base]!;
    for (let y = 0; y < H; y++) {
      const sy = y + top;
      const rowOk = sy >= 0 && sy < h;
      for (let x = 0; x < W; x++) {
        const sx = x + left;
        const v = rowOk && sx >= 0 && sx < w ? lut[base + px[(sy * w + sx) * srcC + sc]!]! : pad;
        out[off + (nchw ? (c * H + y) * W + x : (y * W + x) * C + c)] = v;
      }
    }
  }
}
