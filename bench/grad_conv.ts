// Micro-benchmark of gradient formulations in ORT at cnn-s's shapes (batch 64):
//   group conv: the two convs, k3 pad 1 — conv1 1→32 on 28×28, conv2 32→64 on 14×14 (weight and input gradients);
//   group pool: the two 2×2/2 MaxPools (on [64,32,28,28] and [64,64,14,14]), forward + input gradient.
// `npx tsx bench/grad_conv.ts [--group conv,pool] [--processes 3] [--reps 50] [--threads 1,2] [--only a,b]`
// Per-op-type profile of each candidate: `npx tsx bench/grad_conv.ts --worker --group conv --threads 1 --profile`
// The parent starts `processes` fresh workers per thread count (2-thread ORT timings are bimodal per process, see
// FACTS.md) and reports per candidate the minimum over processes of the median of `reps` timed runs (after 10
// warm-up runs), the fastest single run, and the median process CPU time per run. Candidates of one shape are timed
// in interleaved rounds of 5 runs, so load from other processes on the machine hits them alike; at 1 thread the
// CPU time is the figure least disturbed by such load. Every candidate is checked against a plain-JS reference
// before it is timed (a wrong one is flagged WRONG). Candidates named `rule…` are what the gradient rules in
// src/ops/nn.ts emit (`rule <form>` forces one of the rule's formulations).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildGradients, selectGradForms } from '../src/autodiff/grad.js';
import type { GradForms } from '../src/ops/registry.js';
import { A, Emitter, Graph, Model, Tensor, type Value, tensorType } from '../src/ir/index.js';
import { inferShapes } from '../src/ops/index.js';
import { type HostTensor, profileModel, Session } from '../src/runtime/index.js';
import { randomFloat } from '../src/testing/fixtures.js';

interface Layer {
  name: string;
  N: number;
  C: number;
  O: number;
  H: number;
  W: number;
  /** Not a cnn-s layer: only the forward and the rule's forms run (to place the rule's thresholds). */
  extra?: boolean;
}
const LAYERS: Layer[] = [
  { name: 'conv1 1→32 28×28', N: 64, C: 1, O: 32, H: 28, W: 28 },
  { name: 'conv2 32→64 14×14', N: 64, C: 32, O: 64, H: 14, W: 14 },
  { name: 'extra: conv 3→16 32×32', N: 64, C: 3, O: 16, H: 32, W: 32, extra: true },
  { name: 'extra: conv 8→16 28×28', N: 64, C: 8, O: 16, H: 28, W: 28, extra: true },
  { name: 'extra: conv 16→32 28×28', N: 64, C: 16, O: 32, H: 28, W: 28, extra: true },
  { name: 'extra: conv 64→32 14×14', N: 64, C: 64, O: 32, H: 14, W: 14, extra: true },
  { name: 'extra: conv 64→64 7×7', N: 64, C: 64, O: 64, H: 7, W: 7, extra: true },
];

type Build = (e: Emitter, x: Value, dy: Value, w: Value, L: Layer) => Value;
interface Candidate {
  name: string;
  /** What it computes: the weight gradient [O, C, 3, 3], the input gradient [N, C, H, W], or the forward. */
  kind: 'dW' | 'dX' | 'fwd';
  note: string;
  build: Build;
  /** Skip for layers where it does not apply. */
  when?: (L: Layer) => boolean;
}

// ---------------------------------------------------------------- building blocks

const slice = (e: Emitter, x: Value, starts: number[], ends: number[], axes: number[]) =>
  e.op('Slice', [x, e.ints(starts), e.ints(ends), e.ints(axes)]);
const pad = (e: Emitter, x: Value, pads: number[]) => e.op('Pad', [x, e.ints(pads)]);
const concat = (e: Emitter, xs: Value[], axis: number) => e.op('Concat', xs, { axis: A.int(axis) });
const gemm = (e: Emitter, a: Value, b: Value, ta: number, tb: number) =>
  e.op('Gemm', [a, b], { transA: A.int(ta), transB: A.int(tb) });

/** The nine 3×3 windows of a 4-D tensor padded by 1 on its last two axes (kernel offset order kh, kw). */
function nineSlices(e: Emitter, xp: Value, H: number, W: number): Value[] {
  const out: Value[] = [];
  for (let kh = 0; kh < 3; kh++)
    for (let kw = 0; kw < 3; kw++) out.push(slice(e, xp, [kh, kw], [kh + H, kw + W], [2, 3]));
  return out;
}

/** One-hot 3×3 kernels [9, 1, 3, 3]: output channel k copies input offset k (an im2col as one Conv). */
function oneHot(e: Emitter): Value {
  const d = new Float32Array(81);
  for (let k = 0; k < 9; k++) d[k * 9 + k] = 1;
  return e.constant(Tensor.from('float32', [9, 1, 3, 3], [...d]), 'onehot');
}

const CANDIDATES: Candidate[] = [
  {
    name: 'forward Conv',
    kind: 'fwd',
    note: 'the forward conv itself, for scale',
    build: (e, x, _dy, w) => e.op('Conv', [x, w], { pads: A.ints([1, 1, 1, 1]) }),
  },
  // ---------------- input gradient
  {
    name: 'dX ConvTranspose',
    kind: 'dX',
    note: 'ConvTranspose(dY, W)',
    when: (L) => L.C > 1,
    build: (e, _x, dy, w) => e.op('ConvTranspose', [dy, w], { pads: A.ints([1, 1, 1, 1]) }),
  },
  {
    name: 'dX Conv flipped Wᵀ',
    kind: 'dX',
    note: 'Conv(dY, flip(transpose(W)))',
    when: (L) => L.C > 1,
    build: (e, _x, dy, w) => {
      const wt = e.transpose(w, [1, 0, 2, 3]);
      const wf = e.op('Slice', [
        wt,
        e.ints([-1, -1]),
        e.ints([-1e9, -1e9]),
        e.ints([2, 3]),
        e.ints([-1, -1]),
      ]);
      return e.op('Conv', [dy, wf], { pads: A.ints([1, 1, 1, 1]) });
    },
  },
  // ---------------- weight gradient
  {
    name: 'slices→FusedMatMul→ReduceSum',
    kind: 'dW',
    note: 'FACTS baseline: 9 Slices of padded X → Concat [N,C·9,HW]; MatMul(dY [N,O,HW], colsᵀ) → ReduceSum N',
    build: (e, x, dy, _w, L) => {
      const xp = pad(e, x, [0, 0, 1, 1, 0, 0, 1, 1]);
      const cols = e.reshape(
        concat(
          e,
          nineSlices(e, xp, L.H, L.W).map((s) => e.unsqueeze(s, [2])),
          2,
        ),
        [L.N, L.C * 9, L.H * L.W],
      );
      const dyr = e.reshape(dy, [L.N, L.O, L.H * L.W]);
      // ORT fuses MatMul(a, Transpose(b)) into FusedMatMul(transB=1)
      const p = e.op('MatMul', [dyr, e.transpose(cols, [0, 2, 1])]);
      return e.reshape(e.reduceSum(p, [0], false), [L.O, L.C, 3, 3]);
    },
  },
  {
    name: 'slices→Transpose→one Gemm',
    kind: 'dW',
    note: 'same cols transposed to [C·9, N·HW]; dY to [O, N·HW]; Gemm(transB)',
    build: (e, x, dy, _w, L) => {
      const xp = pad(e, x, [0, 0, 1, 1, 0, 0, 1, 1]);
      const cols = concat(
        e,
        nineSlices(e, xp, L.H, L.W).map((s) => e.unsqueeze(s, [2])),
        2,
      ); // [N, C, 9, H, W]
      const colsT = e.reshape(e.transpose(cols, [1, 2, 0, 3, 4]), [L.C * 9, L.N * L.H * L.W]);
      const dyT = e.reshape(e.transpose(dy, [1, 0, 2, 3]), [L.O, L.N * L.H * L.W]);
      return e.reshape(gemm(e, dyT, colsT, 0, 1), [L.O, L.C, 3, 3]);
    },
  },
  {
    name: 'Conv over batch (2-D)',
    kind: 'dW',
    note: 'Conv(Xᵀ [C,N,H,W], dYᵀ [O,N,H,W] as weights, pad 1) → [C,O,3,3] → Transpose',
    build: (e, x, dy) => {
      const r = e.op('Conv', [e.transpose(x, [1, 0, 2, 3]), e.transpose(dy, [1, 0, 2, 3])], {
        pads: A.ints([1, 1, 1, 1]),
      });
      return e.transpose(r, [1, 0, 2, 3]);
    },
  },
  {
    name: 'Conv3D over batch, C as depth',
    kind: 'dW',
    note: 'X reshaped (free) [1,N,C,H,W]; dYᵀ [O,N,1,H,W] as weights; 3-D Conv pads (0,1,1) → [1,O,C,3,3]: one GEMM M=O K=N·HW',
    build: (e, x, dy, _w, L) => {
      const xi = e.reshape(x, [1, L.N, L.C, L.H, L.W]);
      const wk = e.reshape(e.transpose(dy, [1, 0, 2, 3]), [L.O, L.N, 1, L.H, L.W]);
      const r = e.op('Conv', [xi, wk], { pads: A.ints([0, 1, 1, 0, 1, 1]) });
      return e.reshape(r, [L.O, L.C, 3, 3]);
    },
  },
  {
    name: 'Xᵀ slices→one Gemm',
    kind: 'dW',
    note: 'Xᵀ [C,N,H,W] padded, 9 Slices → Concat [C,9,N,H,W] = [C·9, N·HW] (no big transpose); Gemm(dYᵀ, cols, transB)',
    build: (e, x, dy, _w, L) => {
      const xt = L.C === 1 ? e.reshape(x, [1, L.N, L.H, L.W]) : e.transpose(x, [1, 0, 2, 3]);
      const xp = pad(e, xt, [0, 0, 1, 1, 0, 0, 1, 1]);
      const cols = e.reshape(
        concat(
          e,
          nineSlices(e, xp, L.H, L.W).map((s) => e.unsqueeze(s, [1])),
          1,
        ),
        [L.C * 9, L.N * L.H * L.W],
      );
      const dyT = e.reshape(e.transpose(dy, [1, 0, 2, 3]), [L.O, L.N * L.H * L.W]);
      return e.reshape(gemm(e, dyT, cols, 0, 1), [L.O, L.C, 3, 3]);
    },
  },
  {
    name: 'Xᵀ slices→9 Gemms',
    kind: 'dW',
    note: 'as above without the Concat: Gemm per kernel offset → [O, C] ×9 → Concat',
    build: (e, x, dy, _w, L) => {
      const xt = L.C === 1 ? e.reshape(x, [1, L.N, L.H, L.W]) : e.transpose(x, [1, 0, 2, 3]);
      const xp = pad(e, xt, [0, 0, 1, 1, 0, 0, 1, 1]);
      const dyT = e.reshape(e.transpose(dy, [1, 0, 2, 3]), [L.O, L.N * L.H * L.W]);
      const parts = nineSlices(e, xp, L.H, L.W).map((s) =>
        e.unsqueeze(gemm(e, dyT, e.reshape(s, [L.C, L.N * L.H * L.W]), 0, 1), [2]),
      );
      return e.reshape(concat(e, parts, 2), [L.O, L.C, 3, 3]);
    },
  },
  {
    name: 'NHWC slices→9 Gemms',
    kind: 'dW',
    note: 'X→NHWC, pad, per offset a Slice [N·HW, C] (rows of W·C contiguous) and Gemm(dYₙₕ𝓌ᶜᵀ, ·) → [O, C]',
    build: (e, x, dy, _w, L) => {
      const xn = pad(e, e.transpose(x, [0, 2, 3, 1]), [0, 1, 1, 0, 0, 1, 1, 0]);
      const dyn = e.reshape(e.transpose(dy, [0, 2, 3, 1]), [L.N * L.H * L.W, L.O]);
      const parts: Value[] = [];
      for (let kh = 0; kh < 3; kh++)
        for (let kw = 0; kw < 3; kw++) {
          const s = e.reshape(slice(e, xn, [kh, kw], [kh + L.H, kw + L.W], [1, 2]), [L.N * L.H * L.W, L.C]);
          parts.push(e.unsqueeze(gemm(e, dyn, s, 1, 0), [2]));
        }
      return e.reshape(concat(e, parts, 2), [L.O, L.C, 3, 3]);
    },
  },
  {
    name: 'Conv over batch, C·kw along width',
    kind: 'dW',
    note: 'input [1,N,H+2,(C,kw,W)] from 3 W-Slices of padded NHCW X; dYᵀ [O,N,H,W] as weights, stride (1,W) → [1,O,3,3C]; im2col inside MLAS',
    build: (e, x, dy, _w, L) => {
      const xh = pad(e, e.transpose(x, [0, 2, 1, 3]), [0, 1, 0, 1, 0, 1, 0, 1]); // [N, Hp, C, Wp]
      const sl = [0, 1, 2].map((kw) => e.unsqueeze(slice(e, xh, [kw], [kw + L.W], [3]), [3]));
      const inp = e.reshape(concat(e, sl, 3), [1, L.N, L.H + 2, L.C * 3 * L.W]);
      const r = e.op('Conv', [inp, e.transpose(dy, [1, 0, 2, 3])], { strides: A.ints([1, L.W]) }); // [1, O, 3(kh), 3C (c,kw)]
      return e.transpose(e.reshape(r, [L.O, 3, L.C, 3]), [0, 2, 1, 3]);
    },
  },
  {
    name: 'Conv over batch, C·kw width, H pads in Conv',
    kind: 'dW',
    note: "as above; the kw shifts are two Pads with a negative side (crop) of Xᵀ [N,H,C,W], the H padding is the Conv's own pads",
    build: (e, x, dy, _w, L) => {
      const xh = L.C === 1 ? e.reshape(x, [L.N, L.H, 1, L.W]) : e.transpose(x, [0, 2, 1, 3]); // [N, H, C, W]
      const s0 = pad(e, xh, [0, 0, 0, 1, 0, 0, 0, -1]);
      const s2 = pad(e, xh, [0, 0, 0, -1, 0, 0, 0, 1]);
      const inp = e.reshape(
        concat(
          e,
          [s0, xh, s2].map((v) => e.unsqueeze(v, [3])),
          3,
        ),
        [1, L.N, L.H, L.C * 3 * L.W],
      );
      const r = e.op('Conv', [inp, e.transpose(dy, [1, 0, 2, 3])], {
        strides: A.ints([1, L.W]),
        pads: A.ints([1, 0, 1, 0]),
      });
      return e.transpose(e.reshape(r, [L.O, 3, L.C, 3]), [0, 2, 1, 3]);
    },
  },
  {
    name: 'one-hot Conv im2col→MatMul→ReduceSum',
    kind: 'dW',
    note: 'Conv(X as [N·C,1,H,W], one-hot [9,1,3,3]) = cols [N,C·9,HW]; MatMul(dY, colsᵀ) → ReduceSum N',
    build: (e, x, dy, _w, L) => {
      const cols = e.reshape(
        e.op('Conv', [e.reshape(x, [L.N * L.C, 1, L.H, L.W]), oneHot(e)], { pads: A.ints([1, 1, 1, 1]) }),
        [L.N, L.C * 9, L.H * L.W],
      );
      const p = e.op('MatMul', [e.reshape(dy, [L.N, L.O, L.H * L.W]), e.transpose(cols, [0, 2, 1])]);
      return e.reshape(e.reduceSum(p, [0], false), [L.O, L.C, 3, 3]);
    },
  },
  {
    name: 'one-hot Conv on Xᵀ→Transpose→Gemm',
    kind: 'dW',
    note: 'Conv(Xᵀ as [C·N,1,H,W], one-hot) → [C,N,9,HW] → Transpose [C,9,N,HW]; Gemm(dYᵀ, cols, transB)',
    build: (e, x, dy, _w, L) => {
      const xt = L.C === 1 ? x : e.transpose(x, [1, 0, 2, 3]);
      const c = e.op('Conv', [e.reshape(xt, [L.C * L.N, 1, L.H, L.W]), oneHot(e)], {
        pads: A.ints([1, 1, 1, 1]),
      });
      const cols = e.reshape(e.transpose(e.reshape(c, [L.C, L.N, 9, L.H * L.W]), [0, 2, 1, 3]), [
        L.C * 9,
        L.N * L.H * L.W,
      ]);
      const dyT = e.reshape(e.transpose(dy, [1, 0, 2, 3]), [L.O, L.N * L.H * L.W]);
      return e.reshape(gemm(e, dyT, cols, 0, 1), [L.O, L.C, 3, 3]);
    },
  },
  {
    name: 'NHWC slices→Gemm',
    kind: 'dW',
    note: 'X→NHWC, pad, 9 Slices → Concat last axis [N·HW, 9·C]; dY→[N·HW, O]; Gemm(transA) → [O,3,3,C] → Transpose',
    build: (e, x, dy, _w, L) => {
      const xn = pad(e, e.transpose(x, [0, 2, 3, 1]), [0, 1, 1, 0, 0, 1, 1, 0]);
      const sl: Value[] = [];
      for (let kh = 0; kh < 3; kh++)
        for (let kw = 0; kw < 3; kw++) sl.push(slice(e, xn, [kh, kw], [kh + L.H, kw + L.W], [1, 2]));
      const cols = e.reshape(concat(e, sl, 3), [L.N * L.H * L.W, 9 * L.C]);
      const dyn = e.reshape(e.transpose(dy, [0, 2, 3, 1]), [L.N * L.H * L.W, L.O]);
      return e.transpose(e.reshape(gemm(e, dyn, cols, 1, 0), [L.O, 3, 3, L.C]), [0, 3, 1, 2]);
    },
  },
  {
    name: 'Einsum on cols',
    kind: 'dW',
    note: 'Einsum("nkp,nop->ok") with the [N,C·9,HW] cols of the one-hot Conv',
    build: (e, x, dy, _w, L) => {
      const cols = e.reshape(
        e.op('Conv', [e.reshape(x, [L.N * L.C, 1, L.H, L.W]), oneHot(e)], { pads: A.ints([1, 1, 1, 1]) }),
        [L.N, L.C * 9, L.H * L.W],
      );
      const r = e.op('Einsum', [cols, e.reshape(dy, [L.N, L.O, L.H * L.W])], {
        equation: A.string('nkp,nop->ok'),
      });
      return e.reshape(r, [L.O, L.C, 3, 3]);
    },
  },
  ...(['cols-batched', 'cols-gemm', 'offset-gemms', 'batch-conv'] as const).map((form): Candidate => ({
    name: `rule ${form}`,
    kind: 'dW',
    note: `the Conv gradient rule (src/ops/nn.ts) forced to its '${form}' formulation`,
    build: (e, x, dy, w) => ruleGrad(e, x, dy, w, 1, { convWeight: form }),
  })),
  {
    name: 'rule',
    kind: 'dW',
    note: "what the Conv gradient rule emits for dW ('auto')",
    build: (e, x, dy, w) => ruleGrad(e, x, dy, w, 1),
  },
  ...(['flipped-conv', 'conv-transpose'] as const).map((form): Candidate => ({
    name: `rule dX ${form}`,
    kind: 'dX',
    note: `the Conv gradient rule forced to its '${form}' input gradient`,
    when: (L) => L.C > 1,
    build: (e, x, dy, w) => ruleGrad(e, x, dy, w, 0, { convInput: form }),
  })),
  {
    name: 'rule dX',
    kind: 'dX',
    note: "what the Conv gradient rule emits for dX ('auto')",
    when: (L) => L.C > 1,
    build: (e, x, dy, w) => ruleGrad(e, x, dy, w, 0),
  },
];

/** Put a forward Conv into the graph and let the autodiff driver differentiate <Y, dY> w.r.t. X or W. */
function ruleGrad(
  e: Emitter,
  x: Value,
  dy: Value,
  w: Value,
  which: 0 | 1,
  forms: Partial<GradForms> = {},
): Value {
  const g = e.graph;
  const y = e.op('Conv', [x, w], { pads: A.ints([1, 1, 1, 1]) });
  const m = new Model(g);
  m.opsetImports.set('', e.opset);
  inferShapes(m);
  // seed the driver with dY directly as the gradient of Y (the loss is Y itself)
  const { grads } = buildGradients(m, y, [which === 0 ? x : w], {
    seed: dy,
    prefix: 'rule',
    forms: selectGradForms(forms),
  });
  return grads.get(which === 0 ? x : w)!;
}

// ---------------------------------------------------------------- references (plain JS, once per shape)

function refDW(x: Float32Array, dy: Float32Array, L: Layer): Float32Array {
  const out = new Float64Array(L.O * L.C * 9);
  const { N, C, O, H, W } = L;
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const dyo = (n * O + o) * H * W;
      for (let c = 0; c < C; c++) {
        const xc = (n * C + c) * H * W;
        for (let kh = 0; kh < 3; kh++)
          for (let kw = 0; kw < 3; kw++) {
            let s = 0;
            for (let h = 0; h < H; h++) {
              const ih = h + kh - 1;
              if (ih < 0 || ih >= H) continue;
              for (let w = 0; w < W; w++) {
                const iw = w + kw - 1;
                if (iw < 0 || iw >= W) continue;
                s += dy[dyo + h * W + w]! * x[xc + ih * W + iw]!;
              }
            }
            out[((o * C + c) * 3 + kh) * 3 + kw]! += s;
          }
      }
    }
  return Float32Array.from(out);
}

function refDX(w: Float32Array, dy: Float32Array, L: Layer): Float32Array {
  const { N, C, O, H, W } = L;
  const out = new Float32Array(N * C * H * W);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let h = 0; h < H; h++)
        for (let ww = 0; ww < W; ww++) {
          let s = 0;
          for (let o = 0; o < O; o++)
            for (let kh = 0; kh < 3; kh++)
              for (let kw = 0; kw < 3; kw++) {
                const oh = h - kh + 1;
                const ow = ww - kw + 1;
                if (oh < 0 || oh >= H || ow < 0 || ow >= W) continue;
                s += dy[((n * O + o) * H + oh) * W + ow]! * w[((o * C + c) * 3 + kh) * 3 + kw]!;
              }
          out[((n * C + c) * H + h) * W + ww] = s;
        }
  return out;
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / (den || 1);
}

function refPoolDX(x: Float32Array, dy: Float32Array, P: PoolShape): Float32Array {
  const { N, C, H, W } = P;
  const Ho = H >> 1;
  const Wo = W >> 1;
  const out = new Float32Array(N * C * H * W);
  for (let nc = 0; nc < N * C; nc++)
    for (let i = 0; i < Ho; i++)
      for (let j = 0; j < Wo; j++) {
        let best = -Infinity;
        let at = 0;
        for (let a = 0; a < 2; a++)
          for (let b = 0; b < 2; b++) {
            const k = (nc * H + 2 * i + a) * W + 2 * j + b;
            if (x[k]! > best) {
              best = x[k]!;
              at = k;
            }
          }
        out[at] = dy[(nc * Ho + i) * Wo + j]!;
      }
  return out;
}

// ---------------------------------------------------------------- MaxPool gradient candidates

interface PoolShape {
  name: string;
  N: number;
  C: number;
  H: number;
  W: number;
}
const POOLS: PoolShape[] = [
  { name: 'pool1 [64,32,28,28]', N: 64, C: 32, H: 28, W: 28 },
  { name: 'pool2 [64,64,14,14]', N: 64, C: 64, H: 14, W: 14 },
];
type PoolBuild = (e: Emitter, x: Value, y: Value, dy: Value, P: PoolShape) => Value;
const upsample2 = (e: Emitter, v: Value) =>
  e.op('Resize', [v, null, e.constant(Tensor.from('float32', [4], [1, 1, 2, 2]), 'scales')], {
    mode: A.string('nearest'),
    coordinate_transformation_mode: A.string('asymmetric'),
    nearest_mode: A.string('floor'),
  });
const POOL_CANDIDATES: { name: string; kind: 'dX' | 'fwd'; note: string; build: PoolBuild }[] = [
  {
    name: 'forward MaxPool',
    kind: 'fwd',
    note: 'the forward pool alone, for scale',
    build: (_e, _x, y) => y,
  },
  {
    name: 'tie-all mask (Where)',
    kind: 'dX',
    note: 'Where(X == up(Y), up(dY), 0): wrong at ties (each tied max gets all of dY), a lower bound on cost',
    build: (e, x, y, dy) =>
      e.op('Where', [e.op('Equal', [x, upsample2(e, y)]), upsample2(e, dy), e.scalar(0)]),
  },
  {
    name: 'SpaceToDepth→ArgMax→DepthToSpace',
    kind: 'dX',
    note: 'first maximum exactly: window slots on an outer axis, ArgMax, one-hot Where, back with DepthToSpace',
    build: (e, x, _y, dy, P) => {
      const O = [P.H >> 1, P.W >> 1];
      const xs = e.reshape(e.op('SpaceToDepth', [x], { blocksize: A.int(2) }), [P.N, 4, P.C, ...O]);
      const am = e.op('ArgMax', [xs], { axis: A.int(1), keepdims: A.int(1) });
      const iota = e.constant(Tensor.from('int64', [1, 4, 1, 1, 1], [0, 1, 2, 3]), 'iota');
      const w = e.op('Where', [e.op('Equal', [am, iota]), e.unsqueeze(dy, [1]), e.scalar(0)]);
      return e.op('DepthToSpace', [e.reshape(w, [P.N, 4 * P.C, ...O])], {
        blocksize: A.int(2),
        mode: A.string('DCR'),
      });
    },
  },
  ...([true, false] as const).map((mask) => ({
    name: mask ? 'rule (mask, ties split)' : 'rule Indices+ScatterElements',
    kind: 'dX' as const,
    note: mask
      ? 'the MaxPool rule: m = (X == up(Y)), dX = m · up(dY / tie count); upsampling runs as NCHWc Upsample'
      : 'the MaxPool rule forced to its general form: Indices output on the forward node + ScatterElements(add)',
    build: ((e, x, y, dy) => {
      const m = new Model(e.graph);
      m.opsetImports.set('', e.opset);
      inferShapes(m);
      const forms = selectGradForms({ maxPoolMask: mask });
      const { grads } = buildGradients(m, y, [x], { seed: dy, prefix: 'rule', forms });
      return grads.get(x)!;
    }) as PoolBuild,
  })),
];

// ---------------------------------------------------------------- worker

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Row {
  shape: string;
  candidate: string;
  kind: string;
  /** Median wall time of the timed runs. */
  ms: number;
  /** Fastest timed run. */
  min: number;
  /** Median process CPU time per run. */
  cpu: number;
  err: number;
}

/** One graph to time: inputs by name, what it builds, and the reference its first output must match. */
interface Job {
  shape: string;
  name: string;
  kind: string;
  inputs: Record<string, number[]>;
  build: (e: Emitter, ins: Record<string, Value>) => Value[];
  ref?: () => Float32Array;
}

function jobs(group: string, only: string[] | undefined): Job[][] {
  const keep = (name: string, kind: string) => kind === 'fwd' || !only || only.some((o) => name.includes(o));
  const out: Job[][] = [];
  if (group === 'conv')
    for (const L of LAYERS) {
      const feeds = convFeeds(L);
      let refW: Float32Array | undefined;
      let refX: Float32Array | undefined;
      out.push(
        CANDIDATES.filter(
          (c) =>
            (!c.when || c.when(L)) &&
            keep(c.name, c.kind) &&
            (!L.extra || c.kind === 'fwd' || c.name.startsWith('rule')),
        ).map((c) => ({
          shape: L.name,
          name: c.name,
          kind: c.kind,
          inputs: { x: [L.N, L.C, L.H, L.W], dy: [L.N, L.O, L.H, L.W], w: [L.O, L.C, 3, 3] },
          build: (e, ins) => [c.build(e, ins.x!, ins.dy!, ins.w!, L)],
          ref:
            c.kind === 'dW'
              ? () => (refW ??= refDW(feeds.x!.data as Float32Array, feeds.dy!.data as Float32Array, L))
              : c.kind === 'dX'
                ? () => (refX ??= refDX(feeds.w!.data as Float32Array, feeds.dy!.data as Float32Array, L))
                : undefined,
        })),
      );
    }
  else if (group === 'pool')
    for (const P of POOLS) {
      const feeds = poolFeeds(P);
      let ref: Float32Array | undefined;
      out.push(
        POOL_CANDIDATES.filter((c) => keep(c.name, c.kind)).map((c) => ({
          shape: P.name,
          name: c.name,
          kind: c.kind,
          inputs: { x: [P.N, P.C, P.H, P.W], dy: [P.N, P.C, P.H >> 1, P.W >> 1] },
          build: (e, ins) => {
            const y = e.op('MaxPool', [ins.x!], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) });
            const gx = c.build(e, ins.x!, y, ins.dy!, P);
            return gx === y ? [y] : [gx, y]; // the forward output stays a graph output, as in a train step
          },
          ref:
            c.kind === 'dX'
              ? () => (ref ??= refPoolDX(feeds.x!.data as Float32Array, feeds.dy!.data as Float32Array, P))
              : undefined,
        })),
      );
    }
  else throw new Error(`unknown group "${group}" (known: conv, pool)`);
  return out;
}

const convFeeds = (L: Layer): Record<string, HostTensor> => ({
  x: randomFloat([L.N, L.C, L.H, L.W], 1),
  dy: randomFloat([L.N, L.O, L.H, L.W], 2),
  w: randomFloat([L.O, L.C, 3, 3], 3, 0.3),
});
const poolFeeds = (P: PoolShape): Record<string, HostTensor> => ({
  x: randomFloat([P.N, P.C, P.H, P.W], 1),
  dy: randomFloat([P.N, P.C, P.H >> 1, P.W >> 1], 2),
});

/** Per op type: ms per run (sum over its nodes of their median kernel time) from ORT's profiler. */
async function profileOnce(m: Model, fed: Record<string, HostTensor>, threads: number): Promise<string> {
  const p = await profileModel(m, fed, { threads, runs: 20, warmup: 3 });
  const byOp = new Map<string, number>();
  for (const n of p.nodes) byOp.set(n.op, (byOp.get(n.op) ?? 0) + n.ms);
  return [...byOp.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(', ');
}

async function worker(
  group: string,
  threads: number,
  reps: number,
  only: string[] | undefined,
  profile: boolean,
): Promise<Row[]> {
  const rows: Row[] = [];
  for (const shapeJobs of jobs(group, only)) {
    const live: {
      j: Job;
      s: Session;
      fed: Record<string, HostTensor>;
      fetch: string[];
      err: number;
      times: number[];
      cpu: number[];
    }[] = [];
    for (const j of shapeJobs) {
      const g = new Graph('bench');
      const ins: Record<string, Value> = {};
      for (const [k, shape] of Object.entries(j.inputs)) ins[k] = g.addInput(k, tensorType('float32', shape));
      const e = new Emitter(g, { opset: 17, prefix: 'b' });
      let outs: Value[];
      try {
        outs = j.build(e, ins);
      } catch (err) {
        process.stderr.write(`${j.shape} | ${j.name}: cannot build: ${(err as Error).message}\n`);
        continue;
      }
      // timed runs fetch only a scalar sum of each output: the results stay inside ORT, as in a train step, and
      // copying megabytes into JS (and collecting them) does not blur the figures
      const sinks = outs.map((o) => e.op('ReduceSum', [o], { keepdims: A.int(0) }));
      g.outputs = [...outs, ...sinks];
      g.removeUnused(); // e.g. the forward Conv the rule candidates differentiate
      g.toposort();
      const m = new Model(g);
      m.irVersion = 8;
      m.opsetImports.set('', 17);
      const feeds =
        group === 'conv'
          ? convFeeds(LAYERS.find((L) => L.name === j.shape)!)
          : poolFeeds(POOLS.find((P) => P.name === j.shape)!);
      const s = await Session.create(m, { threads, label: j.name });
      const fed = Object.fromEntries(s.inputNames.map((n) => [n, feeds[n]!]));
      if (profile) process.stderr.write(`${j.shape} | ${j.name}: ${await profileOnce(m, fed, threads)}\n`);
      const r0 = (await s.run(fed, [outs[0]!.name]))[outs[0]!.name]!.data as Float32Array;
      const err = j.ref ? relErr(r0, j.ref()) : 0;
      const fetch = sinks.map((v) => v.name);
      for (let i = 0; i < 10; i++) await s.run(fed, fetch);
      live.push({ j, s, fed, fetch, err, times: [], cpu: [] });
    }
    // interleaved rounds: load from other processes hits every candidate of the shape alike
    const per = 5;
    for (let round = 0; round < Math.ceil(reps / per); round++)
      for (const l of live)
        for (let i = 0; i < per; i++) {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          await l.s.run(l.fed, l.fetch);
          l.times.push(performance.now() - t0);
          const c1 = process.cpuUsage(c0);
          l.cpu.push((c1.user + c1.system) / 1000);
        }
    for (const l of live) {
      await l.s.release();
      rows.push({
        shape: l.j.shape,
        candidate: l.j.name,
        kind: l.j.kind,
        ms: median(l.times),
        min: Math.min(...l.times),
        cpu: median(l.cpu),
        err: l.err,
      });
    }
  }
  return rows;
}

// ---------------------------------------------------------------- parent

const self = fileURLToPath(import.meta.url);
const { values } = parseArgs({
  options: {
    worker: { type: 'boolean', default: false },
    group: { type: 'string', default: 'conv,pool' },
    threads: { type: 'string', default: '1,2' },
    processes: { type: 'string', default: '3' },
    reps: { type: 'string', default: '50' },
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
  },
});
const only = values.only?.split(',');
const groups = values.group.split(',');
if (values.worker) {
  const rows: Row[] = [];
  for (const gname of groups)
    rows.push(...(await worker(gname, Number(values.threads), Number(values.reps), only, values.profile)));
  process.stdout.write(JSON.stringify(rows) + '\n');
} else {
  const threadList = values.threads.split(',').map(Number);
  const best = new Map<string, Row & { per: number[] }>();
  for (const t of threadList)
    for (let p = 0; p < Number(values.processes); p++) {
      const args = [
        '--import',
        'tsx',
        self,
        '--worker',
        '--group',
        values.group,
        '--threads',
        String(t),
        '--reps',
        values.reps,
      ];
      if (values.only) args.push('--only', values.only);
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
      if (r.status !== 0) throw new Error(`worker failed:\n${r.stderr}`);
      if (r.stderr.trim()) process.stderr.write(r.stderr);
      const rows = JSON.parse(r.stdout.trim().split('\n').pop()!) as Row[];
      for (const row of rows) {
        const k = `${row.shape}|${row.candidate}|${t}`;
        const prev = best.get(k);
        if (!prev) best.set(k, { ...row, per: [row.ms] });
        else {
          prev.per.push(row.ms);
          prev.ms = Math.min(prev.ms, row.ms);
          prev.min = Math.min(prev.min, row.min);
          prev.cpu = Math.min(prev.cpu, row.cpu);
          prev.err = Math.max(prev.err, row.err);
        }
      }
      process.stderr.write(`threads ${t}: process ${p + 1}/${values.processes} done\n`);
    }
  if (values.json) process.stdout.write(JSON.stringify([...best.entries()]) + '\n');
  const shapes = [...new Set([...best.values()].map((r) => r.shape))];
  process.stdout.write(
    `ms per run; per thread count: min over ${values.processes} processes of the median of ${values.reps} runs, [fastest run];` +
      ` at 1 thread also (median CPU ms per run)\n`,
  );
  for (const shape of shapes) {
    process.stdout.write(`\n${shape}, batch 64\n`);
    process.stdout.write(
      `| candidate | kind | ${threadList.map((t) => `${t} thr`).join(' | ')} | max rel err |\n`,
    );
    process.stdout.write(`|---|---|${threadList.map(() => '---:').join('|')}|---:|\n`);
    const names = [...new Set([...best.values()].filter((r) => r.shape === shape).map((r) => r.candidate))];
    for (const name of names) {
      const cells = threadList.map((t) => best.get(`${shape}|${name}|${t}`));
      const x0 = cells.find(Boolean)!;
      const err = Math.max(...cells.map((x) => x?.err ?? 0));
      const flag = x0.kind !== 'fwd' && err > 1e-4 ? ' WRONG' : '';
      const cell = (x: (typeof cells)[number], t: number) =>
        x ? `${x.ms.toFixed(2)} [${x.min.toFixed(2)}]${t === 1 ? ` (${x.cpu.toFixed(2)})` : ''}` : '–';
      process.stdout.write(
        `| ${name} | ${x0.kind} | ${cells.map((x, i) => cell(x, threadList[i]!)).join(' | ')} | ${err.toExponential(1)}${flag} |\n`,
      );
    }
  }
}
