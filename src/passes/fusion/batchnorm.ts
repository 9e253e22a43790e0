// fold-batchnorm: a BatchNormalization (inference mode) right after a Conv or Gemm whose output nothing else reads
// is folded into that node's weights: with s = scale / sqrt(var + epsilon),
//   Conv:  W'[o, …] = W[o, …] · s[o]            B'[o] = (B[o] − mean[o]) · s[o] + bias[o]    (groups/depthwise too:
//          axis 0 of W is always the output channel; a missing B counts as 0)
//   Gemm:  Y = alpha·A·B + beta·C  →  B scaled per output column (transB 0: B[k, n] · s[n]; transB 1: B[n, k] · s[n]),
//          C' = (beta·C − mean) · s + bias with beta = 1 (a missing C counts as 0)
// Weights are recomputed once, in float64, from the initializers and written back in their dtype as new
// initializers (the old ones go when nothing else reads them). The check names the reason when it cannot fold.
import type { DType, Node, Tensor, Value } from '../../ir/index.js';
import { A, Tensor as T, floatToHalf } from '../../ir/index.js';
import { definePass } from '../manager.js';
import { applyRules, rule, type Rule } from '../rule.js';
import { bypass, constTensor, f64, isOp, setConstInput } from '../util.js';

interface BnMatch {
  bn: Node;
  host: Node;
}

const FLOATS: ReadonlySet<DType> = new Set<DType>(['float32', 'float64', 'float16']);

/** Float tensor from float64 values, in `dtype` (float32, float64 or float16). */
export function floatTensor(dtype: DType, dims: readonly number[], x: Float64Array): Tensor {
  if (dtype === 'float64') return T.from('float64', dims, x);
  if (dtype === 'float16')
    return T.from(
      'float16',
      dims,
      Uint16Array.from(x, (v) => floatToHalf(v)),
    );
  return T.from('float32', dims, Float32Array.from(x));
}

function matchHost(opType: 'Conv' | 'Gemm') {
  return (bn: Node): BnMatch | undefined => {
    const x = bn.inputs[0];
    const host = x?.producer;
    if (!host || !isOp(host, opType) || host.graph !== bn.graph || x!.producerIndex !== 0) return undefined;
    return { bn, host };
  };
}

interface BnParams {
  s: Float64Array;
  bias: Float64Array;
  mean: Float64Array;
  dtype: DType;
}

/** Check the BatchNormalization side; returns its folded scale or the reason it cannot fold. */
function bnParams(bn: Node, host: Node, channels: number): BnParams | string {
  const why = (s: string) =>
    `Cannot fold BatchNormalization "${bn.label}" into ${host.opType} "${host.label}" as ${s}`;
  const x = bn.input(0);
  if (x.isGraphOutput || x.uses.length !== 1)
    return why(
      `the ${host.opType}'s output "${x.name}" has other readers (${x.uses.length} node input${x.uses.length === 1 ? '' : 's'}${x.isGraphOutput ? ' and a graph output' : ''})`,
    );
  for (let i = 1; i < bn.outputs.length; i++) {
    const o = bn.outputs[i];
    if (o && !o.isUnused) return why(`its output ${i} "${o.name}" (running statistics) is read`);
  }
  const tm = bn.attrInt('training_mode', 0);
  if (tm !== 0) return why(`it is in training mode: current value of 'training_mode' is ${tm}`);
  const spatial = bn.attrInt('spatial', 1);
  if (spatial !== 1) return why(`its 'spatial' is not 1: current value is ${spatial}`);
  const eps = bn.attrFloat('epsilon', 1e-5);
  if (!(eps >= 0)) return why(`its 'epsilon' is negative: current value is ${eps}`);
  const names = ['scale', 'B', 'input_mean', 'input_var'];
  const ts: Tensor[] = [];
  for (let i = 1; i <= 4; i++) {
    const v = bn.inputs[i];
    const t = constTensor(v);
    if (!t) return why(`its '${names[i - 1]}' input${v ? ` "${v.name}"` : ''} is not a constant`);
    if (!FLOATS.has(t.dtype))
      return why(`its '${names[i - 1]}' is ${t.dtype}: only float32, float64 and float16 are folded`);
    if (t.numel !== channels)
      return why(
        `its '${names[i - 1]}' has ${t.numel} elements but the ${host.opType} has ${channels} output channels`,
      );
    ts.push(t);
  }
  const [scale, bias, mean, variance] = ts.map((t) => f64(t)) as [
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
  ];
  const s = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    const d = variance[c]! + eps;
    if (!(d > 0))
      return why(`its 'input_var' + 'epsilon' is not positive at channel ${c}: current value is ${d}`);
    s[c] = scale[c]! / Math.sqrt(d);
  }
  return { s, bias, mean, dtype: ts[0]!.dtype };
}

function finish(bn: Node, host: Node): string | false {
  return bypass(bn.output(0), host.output(0))
    ? `folded BatchNormalization "${bn.label}" into ${host.opType} "${host.label}"`
    : false;
}

interface ConvFold extends BnMatch {
  w: Tensor;
  b: Tensor | undefined;
  p: BnParams;
}

export const foldBnIntoConv: Rule<BnMatch> = rule<BnMatch>({
  name: 'fold-bn-into-conv',
  anchors: ['BatchNormalization'],
  match: matchHost('Conv'),
  check(m) {
    const r = convFold(m);
    return typeof r === 'string' ? r : undefined;
  },
  rewrite(m) {
    const r = convFold(m) as ConvFold;
    const { host, w, b, p } = r;
    const M = w.dims[0]!;
    const per = w.numel / M;
    const wd = f64(w);
    const nw = new Float64Array(wd.length);
    for (let o = 0; o < M; o++) for (let k = 0; k < per; k++) nw[o * per + k] = wd[o * per + k]! * p.s[o]!;
    const bd = b ? f64(b) : new Float64Array(M);
    const nb = new Float64Array(M);
    for (let o = 0; o < M; o++) nb[o] = (bd[o]! - p.mean[o]!) * p.s[o]! + p.bias[o]!;
    const wname = host.input(1).name;
    setConstInput(host, 1, floatTensor(w.dtype, w.dims, nw), wname);
    setConstInput(
      host,
      2,
      floatTensor(w.dtype, [M], nb),
      host.inputs[2]?.name ?? (/weight$/.test(wname) ? wname.replace(/weight$/, 'bias') : `${wname}_bias`),
    );
    return finish(m.bn, host);
  },
});

function convFold(m: BnMatch): ConvFold | string {
  const { bn, host } = m;
  const why = (s: string) => `Cannot fold BatchNormalization "${bn.label}" into Conv "${host.label}" as ${s}`;
  const w = constTensor(host.inputs[1]);
  if (!w) return why(`its weight "${host.inputs[1]?.name}" is not a constant`);
  if (!FLOATS.has(w.dtype))
    return why(`its weight is ${w.dtype}: only float32, float64 and float16 are folded`);
  if (w.dims.length < 3) return why(`its weight has rank ${w.dims.length}`);
  const bv = host.inputs[2];
  const b = bv ? constTensor(bv) : undefined;
  if (bv && !b) return why(`its bias "${bv.name}" is not a constant`);
  if (b && (b.dtype !== w.dtype || b.numel !== w.dims[0]))
    return why(`its bias has dtype ${b.dtype} and ${b.numel} elements`);
  const p = bnParams(bn, host, w.dims[0]!);
  if (typeof p === 'string') return p;
  if (p.dtype !== w.dtype) return why(`its parameters are ${p.dtype} but the Conv weight is ${w.dtype}`);
  return { ...m, w, b, p };
}

interface GemmFold extends BnMatch {
  b: Tensor;
  c: Tensor | undefined;
  n: number;
  transB: boolean;
  p: BnParams;
}

export const foldBnIntoGemm: Rule<BnMatch> = rule<BnMatch>({
  name: 'fold-bn-into-gemm',
  anchors: ['BatchNormalization'],
  match: matchHost('Gemm'),
  check(m) {
    const r = gemmFold(m);
    return typeof r === 'string' ? r : undefined;
  },
  rewrite(m) {
    const { host, b, c, n, transB, p } = gemmFold(m) as GemmFold;
    const K = b.numel / n;
    const bd = f64(b);
    const nbw = new Float64Array(bd.length);
    for (let i = 0; i < bd.length; i++) {
      // transB 1: B is [n, k] → column index i / K; transB 0: B is [k, n] → i % n
      const col = transB ? Math.floor(i / K) : i % n;
      nbw[i] = bd[i]! * p.s[col]!;
    }
    const beta = host.attrFloat('beta', 1);
    // C' = (beta·C − mean)·s + bias, over C's rows when C has them ([M, N] or [M, 1]), else one row
    const cdims = c ? c.dims : [];
    const rows = cdims.length === 2 ? cdims[0]! : 1;
    const cd = c ? f64(c) : new Float64Array(1);
    const ccols = cdims.length === 0 ? 1 : cdims[cdims.length - 1]!;
    const nc = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < n; j++) {
        const cv = c ? cd[r * ccols + (ccols === 1 ? 0 : j)]! : 0;
        nc[r * n + j] = (beta * cv - p.mean[j]!) * p.s[j]! + p.bias[j]!;
      }
    const bname = host.input(1).name;
    setConstInput(host, 1, floatTensor(b.dtype, b.dims, nbw), bname);
    setConstInput(
      host,
      2,
      floatTensor(b.dtype, rows === 1 ? [n] : [rows, n], nc),
      host.inputs[2]?.name ?? `${bname}_bias`,
    );
    host.setAttr('beta', A.float(1));
    return finish(m.bn, host);
  },
});

function gemmFold(m: BnMatch): GemmFold | string {
  const { bn, host } = m;
  const why = (s: string) => `Cannot fold BatchNormalization "${bn.label}" into Gemm "${host.label}" as ${s}`;
  const b = constTensor(host.inputs[1]);
  if (!b) return why(`its B input "${host.inputs[1]?.name}" is not a constant`);
  if (!FLOATS.has(b.dtype))
    return why(`its B input is ${b.dtype}: only float32, float64 and float16 are folded`);
  if (b.dims.length !== 2) return why(`its B input has rank ${b.dims.length}`);
  const transB = host.attrInt('transB', 0) !== 0;
  const n = transB ? b.dims[0]! : b.dims[1]!;
  const cv: Value | null | undefined = host.inputs[2];
  const c = cv ? constTensor(cv) : undefined;
  if (cv && !c) return why(`its C input "${cv.name}" is not a constant`);
  if (c) {
    if (c.dtype !== b.dtype) return why(`its C input is ${c.dtype} but B is ${b.dtype}`);
    const last = c.dims.length ? c.dims[c.dims.length - 1]! : 1;
    if (c.dims.length > 2 || (last !== 1 && last !== n))
      return why(`its C input has shape [${c.dims}], which is not per output column`);
  }
  const p = bnParams(bn, host, n);
  if (typeof p === 'string') return p;
  if (p.dtype !== b.dtype) return why(`its parameters are ${p.dtype} but the Gemm's B is ${b.dtype}`);
  return { ...m, b, c, n, transB, p };
}

export const foldBatchNorm = definePass(
  'fold-batchnorm',
  'Fold inference BatchNormalization into the preceding Conv (groups, depthwise, no bias) or Gemm (transB 0/1).',
  (m) => applyRules(m, [foldBnIntoConv, foldBnIntoGemm]),
  {},
);
