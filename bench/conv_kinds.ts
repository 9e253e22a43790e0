// Where ORT's integer convolutions lose to its float ones (issue 17): per Conv of a model, ORT's kernel time in the
// FP32 model and in an INT8 model (src/runtime/profile.ts), with the Conv's kind (stem, depthwise, pointwise,
// dense k×k, grouped), channels, kernel, stride, output size and whether MLAS's symmetric u8s8 kernel can take it
// (input/output channels as MLAS's ConvSym needs them: dense Cin % 4 = 0, Cout ≥ 16 and % 4 = 0; depthwise C % 16 = 0).
// Prints one line per Conv, a summary per kind × output size and two ceilings of any placement with these kernels:
// every Conv at the faster of its two kernels with free float/integer transitions, and that with every other node
// free too (FP32 total / Σ min(FP32, INT8) per Conv); `--json` emits them as JSON lines.
// `npx tsx bench/conv_kinds.ts <model.fp32.onnx> <model.int8.onnx> [--side 64] [--batch 16] [--runs 30] [--json]`
// (the files bench/quantize_arch.ts writes to bench/out/quant-arch/).
import { parseArgs } from 'node:util';
import type { Model, Node } from '../src/ir/index.js';
import { loadModel } from '../src/onnx/index.js';
import { constTensor, soleReader, tryInferShapes } from '../src/passes/util.js';
import { profileModel, type NodeTime } from '../src/runtime/index.js';

export interface ConvInfo {
  name: string;
  kind: 'stem' | 'depthwise' | 'pointwise' | 'dense' | 'grouped';
  cin: number;
  cout: number;
  k: number;
  stride: number;
  out: number;
  /** MLAS's symmetric u8s8 kernel takes it (x86: ConvSymPackWSize ≠ 0). */
  sym: boolean;
}

/** The Convs of a float (or QDQ) model with their shapes. */
export function convInfos(m: Model): ConvInfo[] {
  tryInferShapes(m);
  const out: ConvInfo[] = [];
  for (const n of m.graph.nodes) {
    if (n.opType !== 'Conv') continue;
    let w = constTensor(n.inputs[1]);
    const wp = n.inputs[1]?.producer;
    if (!w && wp?.opType === 'DequantizeLinear') w = constTensor(wp.inputs[0]);
    if (!w) continue;
    const g = n.attrInt('group', 1);
    const [cout, cpg, ...ks] = w.dims as number[];
    const cin = cpg! * g;
    const k = ks.reduce((a, b) => a * b, 1);
    const stride = Number(n.attrInts('strides')?.[0] ?? 1);
    const shape = n.outputs[0]?.shape;
    const o = Number(shape?.[2] ?? 0);
    const kind: ConvInfo['kind'] =
      cin < 4
        ? 'stem'
        : g === 1
          ? k === 1
            ? 'pointwise'
            : 'dense'
          : g === cin && cpg === 1 && cout === cin
            ? 'depthwise'
            : 'grouped';
    const sym =
      kind === 'depthwise' ? cin % 16 === 0 : g === 1 && cin % 4 === 0 && cout >= 16 && cout % 4 === 0;
    out.push({ name: n.name, kind, cin, cout: cout!, k: Math.round(Math.sqrt(k)), stride, out: o, sym });
  }
  return out;
}

/** ORT's node for each Conv: NCHWc convs are named after their (fused activation's) output, `_nchwc`; QLinearConvs
 * after the Conv, `_token_<n>`. */
function timesByConv(m: Model, nodes: readonly NodeTime[]): Map<string, number> {
  const byOutput = new Map<string, string>();
  for (const n of m.graph.nodes as Node[]) {
    if (n.opType !== 'Conv') continue;
    for (let v = n.outputs[0], k = 0; v && k < 3; k++) {
      byOutput.set(v.name, n.name);
      const r = soleReader(v);
      if (!r || !['Relu', 'Clip', 'QuantizeLinear', 'HardSigmoid', 'Sigmoid'].includes(r.opType)) break;
      v = r.outputs[0];
    }
  }
  const convs = new Set(m.graph.nodes.filter((n) => n.opType === 'Conv').map((n) => n.name));
  const t = new Map<string, number>();
  for (const x of nodes) {
    if (!/Conv/.test(x.op)) continue;
    const base = x.node.replace(/_token_\d+$/, '').replace(/_nchwc$/, '');
    const conv = convs.has(base) ? base : byOutput.get(base);
    if (conv) t.set(conv, (t.get(conv) ?? 0) + x.ms);
  }
  return t;
}

export async function convKinds(
  fp32Path: string,
  int8Path: string,
  o: { side: number; batch: number; runs: number },
): Promise<{
  convs: (ConvInfo & { fp32_ms: number; int8_ms: number })[];
  /** Sums of ORT's node times, ms. */
  fp32_total: number;
  int8_total: number;
  /**
   * FP32 total / (INT8 total with every Conv at the faster of its two kernels): the speed-up of a mixed placement
   * whose float/integer transitions cost nothing — an upper bound of what placement can reach with ORT's kernels.
   */
  ceiling: number;
}> {
  const fm = loadModel(fp32Path);
  const im = loadModel(int8Path);
  const infos = convInfos(fm);
  const x = {
    input: {
      dtype: 'float32' as const,
      dims: [o.batch, 3, o.side, o.side],
      data: Float32Array.from({ length: o.batch * 3 * o.side * o.side }, (_, i) => Math.sin(i) * 0.5),
    },
  };
  const pf = await profileModel(fp32Path, x, { threads: 1, runs: o.runs, warmup: 5 });
  const pi = await profileModel(int8Path, x, { threads: 1, runs: o.runs, warmup: 5 });
  const tf = timesByConv(fm, pf.nodes);
  const ti = timesByConv(im, pi.nodes);
  const convs = infos.map((c) => ({ ...c, fp32_ms: tf.get(c.name) ?? NaN, int8_ms: ti.get(c.name) ?? NaN }));
  const known = convs.filter((c) => Number.isFinite(c.fp32_ms) && Number.isFinite(c.int8_ms));
  const saved = known.reduce((a, c) => a + Math.max(0, c.int8_ms - c.fp32_ms), 0);
  return {
    convs,
    fp32_total: pf.totalMs,
    int8_total: pi.totalMs,
    ceiling: pf.totalMs / (pi.totalMs - saved),
  };
}

if (process.argv[1]?.endsWith('conv_kinds.ts')) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      side: { type: 'string', default: '64' },
      batch: { type: 'string', default: '16' },
      runs: { type: 'string', default: '30' },
      json: { type: 'boolean', default: false },
    },
  });
  const [fp, i8] = positionals;
  if (!fp || !i8) throw new Error('usage: conv_kinds.ts <fp32.onnx> <int8.onnx>');
  const r = await convKinds(fp, i8, { side: +values.side, batch: +values.batch, runs: +values.runs });
  const sum = new Map<string, { n: number; f: number; i: number }>();
  for (const c of r.convs) {
    if (values.json) console.log(JSON.stringify({ bench: 'conv-kind', ...c }));
    else
      console.log(
        `${c.kind.padEnd(9)} ${String(c.cin).padStart(4)}→${String(c.cout).padEnd(4)} k${c.k} s${c.stride} ${String(c.out).padStart(3)}² ${c.sym ? 'sym ' : 'gen '} fp32 ${c.fp32_ms.toFixed(3)} int8 ${c.int8_ms.toFixed(3)} ×${(c.fp32_ms / c.int8_ms).toFixed(2)}  ${c.name}`,
      );
    const key = `${c.kind} ${c.out}² ${c.sym ? 'sym' : 'gen'}`;
    const s = sum.get(key) ?? { n: 0, f: 0, i: 0 };
    s.n++;
    s.f += c.fp32_ms || 0;
    s.i += c.int8_ms || 0;
    sum.set(key, s);
  }
  for (const [k, s] of [...sum].sort())
    console.log(
      `SUM ${k.padEnd(24)} n=${s.n} fp32 ${s.f.toFixed(3)} int8 ${s.i.toFixed(3)} ×${(s.f / s.i).toFixed(2)}`,
    );
  const free = r.convs.reduce(
    (a, c) => a + (Number.isFinite(c.fp32_ms + c.int8_ms) ? Math.min(c.fp32_ms, c.int8_ms) : 0),
    0,
  );
  const t = { fp32_ms: r.fp32_total, int8_ms: r.int8_total, ceiling: r.ceiling, bound: r.fp32_total / free };
  console.log(
    values.json
      ? JSON.stringify({ bench: 'conv-kind-total', ...t })
      : `TOTAL fp32 ${t.fp32_ms.toFixed(3)} int8 ${t.int8_ms.toFixed(3)} ×${(t.fp32_ms / t.int8_ms).toFixed(2)}; ` +
          `every Conv at its faster kernel, free transitions: ×${t.ceiling.toFixed(2)}; ` +
          `and every other node free too: ×${t.bound.toFixed(2)}`,
  );
}
