// MaxPool's input gradient for overlapping or padded windows without ScatterElements(reduction="add") (which
// needs opset 16): per-offset masks scattered by a grouped one-hot ConvTranspose.
//
// The forward node's Indices output holds, for each output position, the flat NCHW position of the window's
// (first) maximum. Its position within the image plane, Indices mod Π(spatial sizes), is compared with the K
// constant positions a window's kernel offsets read at that output position (−1 where the offset falls in the
// padding): m[n, c, k, o] = 1 for exactly the offset holding the maximum. dY · m, laid out as [N, C·K, O…], goes
// through a ConvTranspose with group = C whose [C·K, 1, kernel…] weight is one-hot at offset k for channel c·K + k,
// with the forward strides, dilations and pads: it adds every output gradient into the input element its maximum
// came from, summing where windows overlap — PyTorch's gradient, ties going to the first maximum as in ORT.
import type { Dim, Node, Value } from '../ir/index.js';
import { A, Tensor } from '../ir/index.js';
import type { GradCtx } from './registry.js';

export interface PoolGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pb: number[];
  pe: number[];
}

/**
 * dX for MaxPool `node` given dY, from its Indices output (`indices`, flat NCHW positions) — see the header.
 * `xs`: the full static input shape [N, C, spatial…]; `O`: the output's spatial sizes.
 */
export function maxPoolOneHotGrad(
  g: GradCtx,
  node: Node,
  indices: Value,
  dy: Value,
  xs: Dim[],
  O: number[],
  geo: PoolGeometry,
): Value {
  const e = g.e;
  const C = xs[1];
  if (typeof C !== 'number') return g.fail('the one-hot MaxPool gradient needs a known channel count');
  const S = xs.slice(2) as number[];
  const sp = S.length;
  const K = geo.kernel.reduce((a, b) => a * b, 1);
  const plane = S.reduce((a, b) => a * b, 1);
  const nOut = O.reduce((a, b) => a * b, 1);
  // positions[k, o…]: flat in-plane position kernel offset k reads at output o, or −1 inside the padding
  const pos = new Array<number>(K * nOut);
  const k = new Array<number>(sp).fill(0);
  const o = new Array<number>(sp).fill(0);
  for (let ki = 0; ki < K; ki++) {
    o.fill(0);
    for (let oi = 0; oi < nOut; oi++) {
      let flat = 0;
      let inside = true;
      for (let i = 0; i < sp; i++) {
        const p = o[i]! * geo.strides[i]! + k[i]! * geo.dilations[i]! - geo.pb[i]!;
        if (p < 0 || p >= S[i]!) inside = false;
        flat = flat * S[i]! + p;
      }
      pos[ki * nOut + oi] = inside ? flat : -1;
      for (let i = sp - 1; i >= 0 && ++o[i]! === O[i]; i--) o[i] = 0;
    }
    for (let i = sp - 1; i >= 0 && ++k[i]! === geo.kernel[i]; i--) k[i] = 0;
  }
  const dt = g.dtypeOf(node.input(0));
  const inPlane = e.op('Mod', [indices, e.constant(Tensor.scalar('int64', plane), 'plane')]);
  const posT = e.constant(Tensor.from('int64', [K, ...O], pos), 'offset_positions');
  // [N, C, 1, O…] == [K, O…] → [N, C, K, O…]
  const mask = e.cast(e.op('Equal', [e.unsqueeze(inPlane, [2]), posT]), dt);
  const contrib = e.mul(mask, e.unsqueeze(dy, [2]));
  const grouped = e.reshape(contrib, [0, C * K, ...O]);
  // one-hot weight: channel c·K + k has a 1 at kernel offset k
  const w = new Float32Array(C * K * K);
  for (let c = 0; c < C; c++) for (let ki = 0; ki < K; ki++) w[(c * K + ki) * K + ki] = 1;
  const weight = e.constant(
    dt === 'float32'
      ? Tensor.from('float32', [C * K, 1, ...geo.kernel], w)
      : g.fail(`MaxPool input is ${dt}`),
    'onehot',
  );
  // ConvTranspose extent from −pb: (O−1)·s + d·(k−1) + 1; keep [pb, pb + S), zero-padding what no window reads
  const full = O.map((oi, i) => (oi - 1) * geo.strides[i]! + geo.dilations[i]! * (geo.kernel[i]! - 1) + 1);
  const endPad = full.map((f, i) => Math.max(0, f - geo.pb[i]! - S[i]!));
  const short = full.map((f, i) => Math.max(0, S[i]! - (f - geo.pb[i]!)));
  const dx = e.op('ConvTranspose', [grouped, weight], {
    group: A.int(C),
    kernel_shape: A.ints(geo.kernel),
    strides: A.ints(geo.strides),
    dilations: A.ints(geo.dilations),
    pads: A.ints([...geo.pb, ...endPad]),
  });
  if (short.every((s) => s === 0)) return dx;
  return e.op('Pad', [dx, e.ints([...new Array<number>(sp + 2).fill(0), 0, 0, ...short])]);
}
