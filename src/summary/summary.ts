// A model's size and cost at a glance: parameters and their bytes, multiply-accumulates for one inference, an
// estimate of peak activation memory, inputs/outputs, op counts and a per-layer table.
//
// `summarize` never changes the model it is given: when shapes are needed it infers them on a clone (initializer
// data is shared, not copied). Symbolic dims ('n', 'batch', '4 * n') are evaluated with every symbol bound to
// `batch` unless `dims` names it.
//
// Counting rules, chosen to be simple and stated:
// - params / bytes: every initializer of every graph (main and subgraphs), counted once each. Tensors held by
//   Constant nodes are not initializers: they are reported apart (`constantParams`, `constantBytes`).
// - MACs: only the ops in `MAC_RULES` (convolutions, matrix products, recurrent cells); every other op counts 0.
//   An If counts its larger branch; a Loop or Scan counts one iteration of its body.
// - Peak activations: nodes run one at a time in topological order; a tensor is live from the step of its
//   producer (graph inputs: from the first step) to the step of its last reader (graph outputs: to the last
//   step); a node's inputs and outputs are all live while it runs. Initializers and Constant node outputs are
//   not activations. No buffer reuse or in-place execution is assumed, so this is the naive upper bound an
//   arena allocator improves on. A node holding subgraphs adds the largest inner peak of its bodies to its step.
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  type DType,
  type Dim,
  type Graph,
  type Model,
  type Node,
  type Tensor,
  type Value,
  allGraphs,
  dtypeByteLength,
  isOnnxDomain,
  topoOrder,
} from '../ir/index.js';
import { loadModel } from '../onnx/index.js';
import { constantNodeTensor, inferShapes } from '../ops/index.js';
import { evalDim } from '../ops/index.js';

export interface SummaryOptions {
  /** Value of every symbolic dim not named in `dims` (default 1). */
  batch?: number;
  /** Values of particular symbolic dims (e.g. `{ sequence: 512 }`); the rest take `batch`. */
  dims?: Record<string, number>;
  /** Run shape inference (on a clone) before counting (default true). With false, only declared types are used. */
  infer?: boolean;
  /** The model's file: sets `fileBytes` (the file plus any external data files its tensors name). */
  file?: string;
}

export interface TensorInfo {
  name: string;
  dtype: DType | undefined;
  /** Dims as declared/inferred (symbolic dims kept); null when the rank is unknown, undefined when untyped. */
  shape: Dim[] | null | undefined;
}

export interface LayerInfo {
  /** The node's name, or `<opType>#<index>` when it has none. */
  name: string;
  opType: string;
  /** '' for ai.onnx. */
  domain: string;
  /** Path of the graph holding the node: '' for the main graph, else e.g. `If_0/then_branch`. */
  graph: string;
  /** Elements of the initializers this node is the first to read (so layer params sum to at most `params`). */
  params: number;
  bytes: number;
  /** This node's own MACs (a node holding subgraphs counts 0 itself; its body nodes carry theirs). */
  macs: number;
  /** False when the op has a MAC rule but a shape it needs is unknown (macs is then 0). */
  macsKnown: boolean;
  outputShape: Dim[] | null | undefined;
}

export interface ModelSummary {
  batch: number;
  /** Elements of all initializers (all graphs). */
  params: number;
  /** Bytes of all initializers (packed sub-byte types rounded up per tensor). */
  bytes: number;
  bytesByDtype: Partial<Record<DType, number>>;
  initializerCount: number;
  /** Elements and bytes of tensors held by Constant nodes (weights of some exporters live there). */
  constantParams: number;
  constantBytes: number;
  /** Size on disk of the model file plus its external data files (only when `file` was given). */
  fileBytes?: number;
  /** Multiply-accumulates for one inference at `batch`. */
  macs: number;
  macsByOpType: Record<string, number>;
  /** Op types present in the model that have a MAC rule (every other op counts 0). */
  macOps: string[];
  /** Nodes whose op has a MAC rule but whose shapes were unknown (counted 0). */
  macsUnknown: string[];
  /** Estimated peak bytes of live activations (see the file comment for the model of execution). */
  peakActivationBytes: number;
  /** The node running at the peak (null for a graph without nodes). */
  peakAt: string | null;
  /** Activation tensors whose size is unknown (counted as 0 bytes). */
  unknownActivations: number;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  /** Node counts by op type, subgraph nodes included; ops outside ai.onnx are keyed `domain:opType`. */
  opCounts: Record<string, number>;
  nodeCount: number;
  /** Opset by domain ('ai.onnx' for the default domain). */
  opsets: Record<string, number>;
  /**
   * The weighted layers: every node that reads a weight initializer (anything but int32/int64/bool indices and
   * scalars) or whose op has a MAC rule; main graph in topological order, subgraph nodes where their holder is.
   * Small operands (shape tensors, scalars) are not listed but still counted in `params`.
   */
  layers: LayerInfo[];
  /** What shape inference could not do (unsupported ops, problems), when it ran. */
  notes: string[];
}

// ---------------------------------------------------------------------------------------------------- dims

type Bind = (d: Dim) => number | undefined;

function binder(batch: number, dims: Record<string, number> = {}): Bind {
  const bindings = new (class extends Map<string, number> {
    override get(k: string): number | undefined {
      if (Object.prototype.hasOwnProperty.call(dims, k)) return dims[k];
      // an expression ('4 * n') is not a symbol: evalDim then evaluates it term by term
      return k.includes(' ') ? undefined : batch;
    }
  })();
  return (d) => evalDim(d, bindings);
}

function shapeAt(v: Value | null | undefined, bind: Bind): number[] | undefined {
  const s = v?.tensorType?.shape;
  if (!s) return undefined;
  const out: number[] = [];
  for (const d of s) {
    const x = bind(d);
    if (x === undefined || !Number.isFinite(x) || x < 0) return undefined;
    out.push(x);
  }
  return out;
}

function prod(xs: readonly number[]): number {
  let p = 1;
  for (const x of xs) p *= x;
  return p;
}

function numelAt(v: Value | null | undefined, bind: Bind): number | undefined {
  const s = shapeAt(v, bind);
  return s ? prod(s) : undefined;
}

function bytesAt(v: Value | null | undefined, bind: Bind): number | undefined {
  const dt = v?.tensorType?.dtype;
  const n = numelAt(v, bind);
  return dt === undefined || n === undefined ? undefined : dtypeByteLength(dt, n);
}

// ---------------------------------------------------------------------------------------------------- MACs

/** A MAC rule: the node's multiply-accumulates, or undefined when a shape it needs is unknown. */
type MacRule = (n: Node, bind: Bind) => number | undefined;

const input = (n: Node, i: number): Value | null => n.inputs[i] ?? null;
const output = (n: Node, i = 0): Value | null => n.outputs[i] ?? null;

/** Y = conv(X, W): every output element takes Cin/groups · prod(kernel) products; W is [Cout, Cin/g, k…]. */
function convMacs(wIndex: number): MacRule {
  return (n, bind) => {
    const w = shapeAt(input(n, wIndex), bind);
    const y = numelAt(output(n), bind);
    if (!w || w.length < 2 || y === undefined) return undefined;
    return y * prod(w.slice(1));
  };
}

/** ConvTranspose: every input element is scattered through Cout/groups · prod(kernel) products; W is [Cin, Cout/g, k…]. */
const convTransposeMacs: MacRule = (n, bind) => {
  const x = numelAt(input(n, 0), bind);
  const w = shapeAt(input(n, 1), bind);
  if (!w || w.length < 2 || x === undefined) return undefined;
  return x * prod(w.slice(1));
};

/** MatMul (numpy semantics, batched and broadcast): each output element is a dot product of length K. */
function matmulMacs(aIndex: number, yIndex = 0): MacRule {
  return (n, bind) => {
    const a = shapeAt(input(n, aIndex), bind);
    const y = numelAt(output(n, yIndex), bind);
    if (!a || a.length === 0 || y === undefined) return undefined;
    return y * a[a.length - 1]!;
  };
}

/** Gemm: Y[M, N] = A'[M, K] · B'[K, N] (the bias add is not a MAC). */
const gemmMacs: MacRule = (n, bind) => {
  const a = shapeAt(input(n, 0), bind);
  const y = numelAt(output(n), bind);
  if (!a || a.length !== 2 || y === undefined) return undefined;
  return y * (n.attrInt('transA', 0) ? a[0]! : a[1]!);
};

/** RNN/GRU/LSTM: per time step and batch row, W·x and R·h for every gate and direction. */
const recurrentMacs: MacRule = (n, bind) => {
  const x = shapeAt(input(n, 0), bind);
  const w = numelAt(input(n, 1), bind);
  const r = numelAt(input(n, 2), bind);
  if (!x || x.length !== 3 || w === undefined || r === undefined) return undefined;
  // X is [seq, batch, input] (layout 0) or [batch, seq, input] (layout 1): seq · batch either way
  return x[0]! * x[1]! * (w + r);
};

/** MAC rules by op type (ai.onnx and com.microsoft); ops not listed count 0. */
export const MAC_RULES: Readonly<Record<string, MacRule>> = {
  Conv: convMacs(1),
  ConvInteger: convMacs(1),
  QLinearConv: convMacs(3),
  ConvTranspose: convTransposeMacs,
  MatMul: matmulMacs(0),
  MatMulInteger: matmulMacs(0),
  QLinearMatMul: matmulMacs(0),
  FusedMatMul: matmulMacs(0),
  Gemm: gemmMacs,
  FusedConv: convMacs(1),
  RNN: recurrentMacs,
  GRU: recurrentMacs,
  LSTM: recurrentMacs,
};

const MAC_DOMAINS = new Set(['', 'ai.onnx', 'com.microsoft']);

function macRule(n: Node): MacRule | undefined {
  return MAC_DOMAINS.has(n.domain) && Object.prototype.hasOwnProperty.call(MAC_RULES, n.opType)
    ? MAC_RULES[n.opType]
    : undefined;
}

// ---------------------------------------------------------------------------------------------- activations

/** Whether a value is an activation (not an initializer, not constant data from a Constant node). */
function isActivation(v: Value): boolean {
  if (v.const) return false;
  const p = v.producer;
  return !(p && p.opType === 'Constant' && isOnnxDomain(p));
}

interface PeakResult {
  bytes: number;
  at: Node | null;
}

/**
 * Peak live bytes of the activations owned by `g` (values of enclosing graphs are the caller's business).
 * `unknown` collects activations whose size cannot be known.
 */
function graphPeak(g: Graph, bind: Bind, unknown: Set<Value>): PeakResult {
  const order = topoOrder(g);
  const nodes = [...order.sorted, ...order.cycle];
  const step = new Map<Node, number>(nodes.map((n, i) => [n, i]));
  const last = Math.max(nodes.length - 1, 0);

  // the node of `g` that a (possibly nested) reader belongs to
  const holder = new Map<Graph, Node>();
  for (const n of nodes) for (const s of n.subgraphs()) for (const sg of allGraphs(s)) holder.set(sg, n);
  const stepOfReader = (r: Node): number | undefined => {
    if (r.graph === g) return step.get(r);
    const h = holder.get(r.graph);
    return h ? step.get(h) : undefined;
  };

  // live ranges
  const ranges: { v: Value; from: number; to: number; bytes: number }[] = [];
  const add = (v: Value, from: number): void => {
    if (!isActivation(v)) return;
    let to = from;
    for (const u of v.uses) {
      const s = stepOfReader(u.node);
      if (s !== undefined && s > to) to = s;
    }
    if (v.isGraphOutput) to = last;
    const b = bytesAt(v, bind);
    if (b === undefined) unknown.add(v);
    ranges.push({ v, from, to, bytes: b ?? 0 });
  };
  const seen = new Set<Value>();
  for (const v of g.inputs) if (!seen.has(v)) (seen.add(v), add(v, 0));
  for (const n of nodes)
    for (const o of n.outputs) if (o && !seen.has(o)) (seen.add(o), add(o, step.get(n)!));

  // sweep: +bytes at `from`, −bytes after `to`
  const delta = new Float64Array(last + 2);
  for (const r of ranges) {
    delta[r.from] += r.bytes;
    delta[r.to + 1] -= r.bytes;
  }
  let live = 0;
  let best: PeakResult = { bytes: 0, at: nodes[0] ?? null };
  for (let i = 0; i <= last; i++) {
    live += delta[i]!;
    const n = nodes[i];
    let inner = 0;
    if (n) for (const s of n.subgraphs()) inner = Math.max(inner, graphPeak(s, bind, unknown).bytes);
    if (live + inner > best.bytes) best = { bytes: live + inner, at: n ?? null };
  }
  return best;
}

// ---------------------------------------------------------------------------------------------- summarize

function tensorInfo(v: Value): TensorInfo {
  const t = v.tensorType;
  return { name: v.name, dtype: t?.dtype, shape: t ? (t.shape ? [...t.shape] : null) : undefined };
}

function opKey(n: Node): string {
  return isOnnxDomain(n) ? n.opType : `${n.domain}:${n.opType}`;
}

/**
 * Whether an initializer is a weight (listed as a layer) rather than a small operand: shapes, axes, indices
 * (int32/int64), scalars (epsilons, exponents) and masks are not.
 */
function isWeight(t: Tensor): boolean {
  return (
    t.numel > 1 && t.dtype !== 'int64' && t.dtype !== 'int32' && t.dtype !== 'bool' && t.dtype !== 'string'
  );
}

/** Summarize `model` (see `ModelSummary`). The model is not changed. */
export function summarize(model: Model, opts: SummaryOptions = {}): ModelSummary {
  const batch = opts.batch ?? 1;
  if (!Number.isFinite(batch) || batch < 0)
    throw new RangeError(`batch must be a non-negative number: current value is ${batch}`);
  const bind = binder(batch, opts.dims);
  const notes: string[] = [];
  let m = model;
  if (opts.infer !== false) {
    m = model.clone();
    const report = inferShapes(m, { strict: false });
    const unsupported = new Map<string, number>();
    for (const u of report.unsupported) {
      const k = u.domain === 'ai.onnx' ? u.opType : `${u.domain}:${u.opType}`;
      unsupported.set(k, (unsupported.get(k) ?? 0) + 1);
    }
    if (unsupported.size)
      notes.push(
        `shape inference does not know ${[...unsupported].map(([k, c]) => (c > 1 ? `${k} (${c} nodes)` : k)).join(', ')}`,
      );
    for (const p of report.problems) notes.push(`shape inference: ${p.message}`);
  }
  const main = m.graph;

  // ---- parameters, constants, op counts
  let params = 0;
  let bytes = 0;
  let initializerCount = 0;
  let constantParams = 0;
  let constantBytes = 0;
  const bytesByDtype: Partial<Record<DType, number>> = {};
  const opCounts: Record<string, number> = {};
  let nodeCount = 0;
  for (const g of allGraphs(main)) {
    for (const v of g.initializers.values()) {
      const t = v.const!;
      initializerCount++;
      params += t.numel;
      bytes += t.byteLength;
      bytesByDtype[t.dtype] = (bytesByDtype[t.dtype] ?? 0) + t.byteLength;
    }
    for (const n of g.nodes) {
      nodeCount++;
      const k = opKey(n);
      opCounts[k] = (opCounts[k] ?? 0) + 1;
      if (n.opType === 'Constant' && isOnnxDomain(n)) {
        const t = constantNodeTensor(n);
        if (t) {
          constantParams += t.numel;
          constantBytes += t.byteLength;
        }
      }
    }
  }

  // ---- layers and MACs
  const layers: LayerInfo[] = [];
  const macsByOpType: Record<string, number> = {};
  const macOps = new Set<string>();
  const macsUnknown: string[] = [];
  const claimed = new Set<Value>();
  const graphMacs = (g: Graph, path: string): number => {
    const { sorted, cycle } = topoOrder(g);
    let total = 0;
    for (const n of [...sorted, ...cycle]) {
      let own = 0;
      let known = true;
      const rule = macRule(n);
      if (rule) {
        macOps.add(opKey(n));
        const x = rule(n, bind);
        if (x === undefined) {
          known = false;
          macsUnknown.push(n.label);
        } else own = x;
        macsByOpType[opKey(n)] = (macsByOpType[opKey(n)] ?? 0) + own;
      }
      let p = 0;
      let b = 0;
      let weighted = false;
      for (const v of n.inputs)
        if (v?.const && !claimed.has(v)) {
          claimed.add(v);
          p += v.const.numel;
          b += v.const.byteLength;
          weighted ||= isWeight(v.const);
        }
      if (weighted || rule)
        layers.push({
          name: n.label,
          opType: n.opType,
          domain: n.domain,
          graph: path,
          params: p,
          bytes: b,
          macs: own,
          macsKnown: known,
          outputShape: n.outputs[0] ? tensorInfo(n.outputs[0]).shape : undefined,
        });
      // bodies: an If runs one branch (count the larger); a Loop or Scan counts one iteration
      const subs: number[] = [];
      for (const [attr, a] of n.attrs) {
        const gs = a.type === 'graph' ? [a.value] : a.type === 'graphs' ? a.value : [];
        gs.forEach((s, i) =>
          subs.push(
            graphMacs(s, `${path ? `${path}/` : ''}${n.label}/${attr}${gs.length > 1 ? `[${i}]` : ''}`),
          ),
        );
      }
      const inner =
        subs.length === 0 ? 0 : n.opType === 'If' ? Math.max(...subs) : subs.reduce((s, x) => s + x, 0);
      total += own + inner;
    }
    return total;
  };
  const macs = graphMacs(main, '');

  // ---- activations
  const unknown = new Set<Value>();
  const peak = graphPeak(main, bind, unknown);

  const opsets: Record<string, number> = {};
  for (const [d, v] of m.opsetImports) opsets[d === '' ? 'ai.onnx' : d] = v;

  const summary: ModelSummary = {
    batch,
    params,
    bytes,
    bytesByDtype,
    initializerCount,
    constantParams,
    constantBytes,
    macs,
    macsByOpType,
    macOps: [...macOps].sort(),
    macsUnknown,
    peakActivationBytes: peak.bytes,
    peakAt: peak.at ? peak.at.label : null,
    unknownActivations: unknown.size,
    inputs: main.inputs.filter((v) => !v.const).map(tensorInfo),
    outputs: main.outputs.map(tensorInfo),
    opCounts,
    nodeCount,
    opsets,
    layers,
    notes,
  };
  if (opts.file !== undefined) summary.fileBytes = fileBytesOf(opts.file, main);
  return summary;
}

/** The model file's size plus the sizes of the external data files its initializers name. */
function fileBytesOf(file: string, main: Graph): number {
  let total = statSync(file).size;
  const dir = dirname(resolve(file));
  const seen = new Set<string>();
  for (const g of allGraphs(main))
    for (const v of g.initializers.values()) {
      const loc = v.const?.external?.location;
      if (!loc || seen.has(loc)) continue;
      seen.add(loc);
      try {
        total += statSync(resolve(dir, loc)).size;
      } catch {
        // a data file that is gone: the decoder already read what it needed
      }
    }
  return total;
}

/** Load an ONNX file and summarize it (`fileBytes` is set). */
export function summarizeFile(path: string, opts: Omit<SummaryOptions, 'file'> = {}): ModelSummary {
  return summarize(loadModel(path), { ...opts, file: path });
}

// ---------------------------------------------------------------------------------------------- rendering

const SI = ['', 'k', 'M', 'G', 'T', 'P'];

/** 1234 → "1.2 k", 4241152 → "4.2 M"; below 1000 the plain integer. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  let i = 0;
  let x = Math.abs(n);
  while (x >= 999.95 && i < SI.length - 1) {
    x /= 1000;
    i++;
  }
  const s = i === 0 ? String(Math.round(x)) : `${x.toFixed(1)} ${SI[i]}`;
  return n < 0 ? `-${s}` : s;
}

/** 1686568 → "1.7 MB" (decimal units); below 1000 "512 B". */
export function formatBytes(n: number): string {
  const s = formatCount(n);
  return /[a-zA-Z]$/.test(s) ? `${s}B` : `${s} B`;
}

/** 421642 → "421,642". */
export function formatInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function formatShape(s: Dim[] | null | undefined): string {
  if (s === undefined) return '?';
  if (s === null) return '[?]';
  return `[${s.map((d) => (d === null ? '?' : typeof d === 'string' && d.includes(' ') ? `(${d})` : String(d))).join(', ')}]`;
}

function tensorLine(t: TensorInfo): string {
  return `${t.name} ${t.dtype ?? '?'} ${formatShape(t.shape)}`;
}

/** A text table of the layers (aligned columns, a totals line) followed by the model-wide figures. */
export function formatSummaryTable(s: ModelSummary): string {
  const head = ['Layer', 'Op', 'Output shape', 'Params', 'Weights', 'MACs'];
  const right = [false, false, false, true, true, true];
  const rows: string[][] = s.layers.map((l) => [
    l.graph ? `${l.graph}/${l.name}` : l.name,
    l.domain && l.domain !== 'ai.onnx' ? `${l.domain}:${l.opType}` : l.opType,
    formatShape(l.outputShape),
    l.params ? formatInt(l.params) : '-',
    l.bytes ? formatBytes(l.bytes) : '-',
    l.macsKnown ? (l.macs ? formatCount(l.macs) : '-') : '?',
  ]);
  const listed = s.layers.reduce((a, l) => a + l.params, 0);
  const listedBytes = s.layers.reduce((a, l) => a + l.bytes, 0);
  if (s.params > listed)
    rows.push([
      '(other initializers)',
      '',
      '',
      formatInt(s.params - listed),
      formatBytes(s.bytes - listedBytes),
      '',
    ]);
  const total = ['Total', '', '', formatInt(s.params), formatBytes(s.bytes), formatCount(s.macs)];
  const widths = head.map((h, c) => Math.max(h.length, total[c]!.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((x, c) => (right[c] ? x.padStart(widths[c]!) : x.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const out = [line(head), rule, ...rows.map(line), rule, line(total), ''];

  const dtypes = Object.entries(s.bytesByDtype)
    .sort((a, b) => b[1] - a[1])
    .map(([d, b]) => `${d} ${formatBytes(b)}`)
    .join(', ');
  out.push(
    `Params:      ${formatInt(s.params)} in ${s.initializerCount} initializer(s), ${formatBytes(s.bytes)}${dtypes ? ` (${dtypes})` : ''}`,
  );
  if (s.constantParams)
    out.push(
      `Constants:   ${formatInt(s.constantParams)} elements in Constant nodes, ${formatBytes(s.constantBytes)}`,
    );
  if (s.fileBytes !== undefined) out.push(`File:        ${formatBytes(s.fileBytes)}`);
  const macNote = [
    s.macOps.length ? `counted: ${s.macOps.join(', ')}` : 'no op with a MAC rule',
    s.macsUnknown.length ? `${s.macsUnknown.length} node(s) of unknown shape` : '',
  ]
    .filter(Boolean)
    .join('; ');
  out.push(`MACs:        ${formatCount(s.macs)} MACs at batch ${s.batch} (${macNote})`);
  out.push(
    `Activations: peak ${formatBytes(s.peakActivationBytes)}${s.peakAt ? ` at ${s.peakAt}` : ''}` +
      (s.unknownActivations ? ` (${s.unknownActivations} tensor(s) of unknown size not counted)` : ''),
  );
  out.push(`Inputs:      ${s.inputs.map(tensorLine).join('; ') || '-'}`);
  out.push(`Outputs:     ${s.outputs.map(tensorLine).join('; ') || '-'}`);
  const ops = Object.entries(s.opCounts)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([k, c]) => `${k} ${c}`)
    .join(', ');
  out.push(`Nodes:       ${s.nodeCount}${ops ? ` (${ops})` : ''}`);
  out.push(
    `Opsets:      ${
      Object.entries(s.opsets)
        .map(([d, v]) => `${d} ${v}`)
        .join(', ') || '-'
    }`,
  );
  for (const n of s.notes) out.push(`Note:        ${n}`);
  return out.join('\n');
}
