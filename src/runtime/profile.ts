// Where ORT spends a run's time: the node kernel events of ORT's profiler, per node of the graph ORT actually runs
// (after its own fusions and layout changes), as the median over the profiled runs. For benchmarks and for
// explaining a latency figure, not for timing itself: profiling adds overhead to every run.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Model } from '../ir/graph.js';
import { type HostTensor, Session } from './ort.js';

export interface NodeTime {
  /** The node's name in ORT's optimised graph (ORT names the nodes it creates, e.g. "ReorderOutput"). */
  node: string;
  op: string;
  /** Median kernel time per run, ms. */
  ms: number;
}

export interface ProfileResult {
  /** Median wall time of a profiled run, ms (higher than an unprofiled run). */
  wallMs: number;
  /** In execution order. */
  nodes: NodeTime[];
  /** Sum of the node medians, ms. */
  totalMs: number;
}

interface ProfileEvent {
  cat: string;
  name: string;
  dur: number;
  ts: number;
  args?: { op_name?: string };
}

/** Per-node median kernel times of the events of an ORT profile file, in first-seen order. */
export function summarizeProfile(events: readonly ProfileEvent[]): NodeTime[] {
  const byNode = new Map<string, { op: string; durs: number[] }>();
  for (const ev of events)
    if (ev.cat === 'Node' && ev.name.endsWith('_kernel_time')) {
      const node = ev.name.slice(0, -'_kernel_time'.length);
      let e = byNode.get(node);
      if (!e) byNode.set(node, (e = { op: ev.args?.op_name ?? '?', durs: [] }));
      e.durs.push(ev.dur / 1000);
    }
  return [...byNode].map(([node, { op, durs }]) => {
    const s = durs.sort((a, b) => a - b);
    const m = s.length >> 1;
    return { node, op, ms: s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2 };
  });
}

/** Run `model` `runs` times after `warmup` runs with ORT's profiler on; per-node medians. */
export async function profileModel(
  model: Model | Uint8Array | string,
  feeds: Record<string, HostTensor>,
  opts: { threads?: number; runs?: number; warmup?: number } = {},
): Promise<ProfileResult> {
  const { runs = 100, warmup = 10 } = opts;
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-profile-'));
  try {
    const s = await Session.create(model, {
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      profilePrefix: join(dir, 'ort'),
    });
    const walls: number[] = [];
    try {
      for (let i = 0; i < warmup + runs; i++) {
        const t0 = performance.now();
        await s.run(feeds);
        if (i >= warmup) walls.push(performance.now() - t0);
      }
      s.endProfiling();
    } finally {
      await s.release();
    }
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    const events = file ? (JSON.parse(readFileSync(join(dir, file), 'utf8')) as ProfileEvent[]) : [];
    // drop the warm-up runs: each run has one event per node, in order
    const nodeEvents = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
    const perRun = nodeEvents.length / (warmup + runs);
    const nodes = summarizeProfile(Number.isInteger(perRun) ? nodeEvents.slice(perRun * warmup) : nodeEvents);
    walls.sort((a, b) => a - b);
    return {
      wallMs: walls[walls.length >> 1] ?? 0,
      nodes,
      totalMs: nodes.reduce((a, n) => a + n.ms, 0),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Where a quantized model loses, by family of kernel (issue 17): the families an INT8 profile of a mobile
 * architecture splits into. Order = print order.
 */
export const PROFILE_FAMILIES = [
  'int8 conv/gemm',
  'float conv/gemm',
  'conv-transpose',
  'int8 elementwise (QLinearAdd/Mul/Sigmoid/…)',
  'float activations (SiLU/Sigmoid/HardSwish/…)',
  'float elementwise (SE Mul, residual Add)',
  'channel shuffle / concat (Reshape/Transpose/Split/Concat/Slice)',
  'batchnorm (not folded)',
  'pooling / ReduceMean',
  'resize / upsample',
  'layout (NHWC Transposes, NCHWc reorders)',
  'quantize / dequantize',
  'other',
] as const;
export type ProfileFamily = (typeof PROFILE_FAMILIES)[number];

const FAMILY_OF_OP: Record<string, ProfileFamily> = {};
const put = (f: ProfileFamily, ops: string[]) => ops.forEach((o) => (FAMILY_OF_OP[o] = f));
put('int8 conv/gemm', [
  'QLinearConv',
  'QGemm',
  'QLinearMatMul',
  'MatMulInteger',
  'ConvInteger',
  'MatMulIntegerToFloat',
  'DynamicQuantizeMatMul',
  'MatMulNBits',
]);
put('float conv/gemm', ['Conv', 'FusedConv', 'NhwcFusedConv', 'Gemm', 'FusedGemm', 'MatMul', 'FusedMatMul']);
put('conv-transpose', ['ConvTranspose', 'QLinearConvTranspose']);
put('int8 elementwise (QLinearAdd/Mul/Sigmoid/…)', [
  'QLinearAdd',
  'QLinearMul',
  'QLinearSigmoid',
  'QLinearLeakyRelu',
  'QLinearSoftmax',
  'QLinearWhere',
]);
put('float activations (SiLU/Sigmoid/HardSwish/…)', [
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Relu',
  'Clip',
  'LeakyRelu',
  'Tanh',
  'Erf',
  'Gelu',
  'QuickGelu',
  'Softmax',
]);
put('float elementwise (SE Mul, residual Add)', ['Mul', 'Add', 'Sub', 'Div', 'Sum', 'Where']);
put('channel shuffle / concat (Reshape/Transpose/Split/Concat/Slice)', [
  'Reshape',
  'Transpose',
  'Split',
  'Concat',
  'QLinearConcat',
  'Slice',
  'Gather',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Pad',
  'Expand',
  'Tile',
  'Identity',
  'Shape',
  'Cast',
]);
put('batchnorm (not folded)', ['BatchNormalization']);
put('pooling / ReduceMean', [
  'MaxPool',
  'NhwcMaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'QLinearAveragePool',
  'QLinearGlobalAveragePool',
  'ReduceMean',
  'ReduceMax',
]);
put('resize / upsample', ['Resize', 'Upsample', 'NhwcUpsample']);
put('layout (NHWC Transposes, NCHWc reorders)', ['ReorderInput', 'ReorderOutput']);
put('quantize / dequantize', ['QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear']);

/**
 * The family of a node of ORT's optimised graph. A Transpose that is not a node of the model ORT was given
 * (`modelNodes`, when known) was inserted by ORT's NHWC layout transformer and counts as layout.
 */
export function profileFamily(
  n: { node: string; op: string },
  modelNodes?: ReadonlySet<string>,
): ProfileFamily {
  if (n.op === 'Transpose' && modelNodes && !modelNodes.has(n.node))
    return 'layout (NHWC Transposes, NCHWc reorders)';
  return FAMILY_OF_OP[n.op] ?? 'other';
}

export interface FamilyTime {
  family: ProfileFamily;
  ms: number;
  /** Kernels of the family: op → [count, ms]. */
  ops: Record<string, [number, number]>;
}

/** Kernel times summed per family (families without nodes left out), in PROFILE_FAMILIES order. */
export function profileByFamily(nodes: readonly NodeTime[], modelNodes?: ReadonlySet<string>): FamilyTime[] {
  const by = new Map<ProfileFamily, FamilyTime>();
  for (const n of nodes) {
    const family = profileFamily(n, modelNodes);
    let f = by.get(family);
    if (!f) by.set(family, (f = { family, ms: 0, ops: {} }));
    f.ms += n.ms;
    const o = (f.ops[n.op] ??= [0, 0]);
    o[0]++;
    o[1] += n.ms;
  }
  return PROFILE_FAMILIES.filter((f) => by.has(f)).map((f) => by.get(f)!);
}
