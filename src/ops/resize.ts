// Resize (and Upsample) as linear maps, for the gradient: with static sizes, nearest and linear resizing of each
// axis is a constant [out, in] matrix W (one-hot rows for nearest, two weights per row for linear), applied to
// the axes one after another. Y = X ×_a W_a for every resized axis a, so dX = dY ×_a W_aᵀ: a MatMul per axis.
// The matrices follow ONNX Runtime's CPU kernel (upsamplebase.h, upsample.cc): float32 coordinate arithmetic,
// the clamping of source indices, and the "simple" nearest rounding of Resize-10 and Upsample.
import type { Node, Value } from '../ir/index.js';
import { Tensor } from '../ir/index.js';
import { allNumbers, constFloats, dOut, normAxisG } from './gradutil.js';
import type { GradCtx } from './registry.js';
import { formatDims } from './sym.js';

const f = Math.fround;

export type CoordMode =
  'half_pixel' | 'half_pixel_symmetric' | 'pytorch_half_pixel' | 'align_corners' | 'asymmetric';
export type NearestMode = 'round_prefer_floor' | 'round_prefer_ceil' | 'floor' | 'ceil' | 'simple';

const COORD_MODES: readonly string[] = [
  'half_pixel',
  'half_pixel_symmetric',
  'pytorch_half_pixel',
  'align_corners',
  'asymmetric',
];
const NEAREST_MODES: readonly string[] = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'];

/** Source coordinate of output index `o` along an axis resized from `inLen` to `outLen` with `scale`. */
export function sourceCoord(
  mode: CoordMode,
  o: number,
  scale: number,
  inLen: number,
  outLen: number,
): number {
  switch (mode) {
    case 'asymmetric':
      return f(o / scale);
    case 'half_pixel':
      return f(f(f(o + 0.5) / scale) - 0.5);
    case 'pytorch_half_pixel':
      return outLen > 1 ? f(f(f(o + 0.5) / scale) - 0.5) : 0;
    case 'align_corners':
      return outLen === 1 ? 0 : f(f(o * (inLen - 1)) / (outLen - 1));
    case 'half_pixel_symmetric': {
      const adjustment = f(outLen / f(scale * inLen));
      const center = f(inLen / 2);
      const offset = f(center * f(1 - adjustment));
      return f(offset + f(f(f(o + 0.5) / scale) - 0.5));
    }
  }
}

function nearestIndex(mode: NearestMode, x: number, downsample: boolean): number {
  switch (mode) {
    case 'round_prefer_floor':
      return x === Math.floor(x) + 0.5 ? Math.floor(x) : Math.round(x);
    case 'round_prefer_ceil':
      return Math.round(x);
    case 'floor':
      return Math.floor(x);
    case 'ceil':
      return Math.ceil(x);
    case 'simple':
      return downsample ? Math.ceil(x) : Math.trunc(x);
  }
}

/** The [outLen, inLen] matrix of one axis: row o holds the weights of the input elements output o reads. */
export function resizeMatrix(o: {
  mode: 'nearest' | 'linear';
  coord: CoordMode;
  nearest: NearestMode;
  scale: number;
  inLen: number;
  outLen: number;
}): Float64Array {
  const { inLen, outLen, scale } = o;
  const w = new Float64Array(outLen * inLen);
  for (let i = 0; i < outLen; i++) {
    const x = sourceCoord(o.coord, i, scale, inLen, outLen);
    if (o.mode === 'nearest') {
      const k = Math.min(Math.max(nearestIndex(o.nearest, x, scale < 1), 0), inLen - 1);
      w[i * inLen + k] = 1;
    } else {
      const c = Math.max(0, Math.min(x, inLen - 1));
      const x1 = Math.min(Math.trunc(c), inLen - 1);
      const x2 = Math.min(x1 + 1, inLen - 1);
      let d1 = f(Math.abs(c - x1));
      let d2 = f(Math.abs(c - x2));
      if (x1 === x2) d1 = d2 = 0.5;
      w[i * inLen + x1] += d2;
      w[i * inLen + x2] += d1;
    }
  }
  return w;
}

/** Resize / Upsample gradient for the data input: one MatMul per resized axis with a constant matrix. */
export function resizeGrad(n: Node, g: GradCtx): (Value | null)[] {
  const out: (Value | null)[] = n.inputs.map(() => null);
  if (!g.outputGrad(0) || !g.needsGrad(0)) return out;
  const x = n.input(0);
  const xs = g.shapeOf(x);
  const ys = g.shapeOf(n.output(0));
  if (!allNumbers(xs) || !allNumbers(ys))
    g.fail(`needs static input and output shapes, got ${formatDims(xs)} → ${formatDims(ys)}`);
  const r = xs.length;
  const upsample = n.opType === 'Upsample';
  const legacy = upsample || g.opset < 11;
  const mode = n.attrString('mode', 'nearest');
  if (mode !== 'nearest' && mode !== 'linear')
    g.fail(`mode "${mode}" has no gradient rule (nearest and linear have)`);
  const coord = legacy ? 'asymmetric' : n.attrString('coordinate_transformation_mode', 'half_pixel');
  if (!COORD_MODES.includes(coord))
    g.fail(`coordinate_transformation_mode "${coord}" has no gradient rule (${COORD_MODES.join(', ')} have)`);
  const nearest = legacy ? 'simple' : n.attrString('nearest_mode', 'round_prefer_floor');
  if (!legacy && !NEAREST_MODES.includes(nearest)) g.fail(`nearest_mode "${nearest}" is not an ONNX mode`);
  if (g.opset >= 18 && n.attrInt('antialias', 0) === 1 && ys.some((d, i) => d < xs[i]!))
    g.fail('antialiased downsampling has no gradient rule');
  if (g.opset >= 18 && n.attrString('keep_aspect_ratio_policy', 'stretch') !== 'stretch')
    g.fail('keep_aspect_ratio_policy other than "stretch" has no gradient rule');
  let axes = [...Array(r).keys()];
  if (g.opset >= 18 && n.attrInts('axes')) axes = n.attrInts('axes')!.map((a) => normAxisG(g, a, r, 'axes'));
  // scales: given (the coordinate transform uses them as given), else the size ratio
  const given = upsample || g.opset < 11 ? constFloats(n.inputs[1]) : constFloats(n.inputs[2]);
  if (!given && (upsample || g.opset < 11 || !n.inputs[3]))
    g.fail('scales must be a constant to build the gradient');
  const scaleOf = (a: number): number => {
    const k = axes.indexOf(a);
    if (k < 0) return 1;
    return given ? f(given[k]!) : f(ys[a]! / xs[a]!);
  };

  const e = g.e;
  const dt = g.dtypeOf(x);
  let d = dOut(g);
  for (const a of axes) {
    const scale = scaleOf(a);
    if (xs[a] === ys[a] && scale === 1) continue;
    const W = resizeMatrix({
      mode,
      coord: coord as CoordMode,
      nearest: nearest as NearestMode,
      scale,
      inLen: xs[a]!,
      outLen: ys[a]!,
    });
    const [inLen, outLen] = [xs[a]!, ys[a]!];
    if (a === r - 2) {
      // dX[.., i, w] = Σ_o W[o, i] dY[.., o, w]: Wᵀ [in, out] @ dY
      const wt = new Float64Array(inLen * outLen);
      for (let o = 0; o < outLen; o++) for (let i = 0; i < inLen; i++) wt[i * outLen + o] = W[o * inLen + i]!;
      d = e.op('MatMul', [e.constant(Tensor.from(dt, [inLen, outLen], Array.from(wt)), `resize_t${a}`), d]);
    } else {
      // the axis last (a transpose when it is not), then dY @ W [out, in]
      const perm = [...Array(r).keys()];
      [perm[a], perm[r - 1]] = [perm[r - 1]!, perm[a]!];
      if (a !== r - 1) d = e.transpose(d, perm);
      d = e.op('MatMul', [d, e.constant(Tensor.from(dt, [outLen, inLen], Array.from(W)), `resize_w${a}`)]);
      if (a !== r - 1) d = e.transpose(d, perm);
    }
  }
  out[0] = d;
  return out;
}
