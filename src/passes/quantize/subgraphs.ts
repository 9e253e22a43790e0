// Static INT8 inside If/Loop/Scan subgraphs. The main-graph placement (static.ts) plans one graph; nodes of
// subgraphs get a local QDQ form here: each Conv/MatMul/Gemm with a constant float weight reads
// DequantizeLinear(QuantizeLinear(x)) for its activation (calibrated range), a per-channel int8 weight through
// DequantizeLinear, and its output goes through Q/DQ too (so ORT can fuse QLinearConv / QGemm / MatMulIntegerToFloat
// inside the subgraph). Outer-scope values are read where they are; nothing moves out of its graph.
//
// Calibration runs through the branches actually taken: each probed tensor gets ReduceMin/ReduceMax in its own
// subgraph, carried out as extra outputs level by level — an If's other branch outputs +inf/-inf (neutral for
// min/max), a Loop/Scan body adds them as per-iteration scan outputs — up to the main graph, whose outputs are read
// per calibration batch. A node whose tensors no batch reached (a branch never taken) stays float.
import { InputError } from '../../errors.js';
import {
  A,
  allGraphs,
  Emitter,
  type Graph,
  type Model,
  type Node,
  Tensor as T,
  type Value,
} from '../../ir/index.js';
import { Session } from '../../runtime/index.js';
import { constTensor, isOnnxDomain, isOp, tryInferShapes } from '../util.js';
import type { Feeds } from './calibrate.js';
import { quantizeWeightInt8, rangeParams } from './numeric.js';
import type { NodeFilter } from './select.js';
import { filterFor } from './select.js';
import type { SkippedNode } from './static.js';

export interface SubgraphStaticResult {
  model: Model;
  nodes: string[];
  skipped: SkippedNode[];
  notes: string[];
}

interface Candidate {
  node: Node;
  x: Value;
  y: Value;
  /** Weight channel axis (output channels). */
  axis: number;
}

function candidates(m: Model, ok: (n: Node) => boolean, skipped: SkippedNode[]): Candidate[] {
  const out: Candidate[] = [];
  for (const g of allGraphs(m.graph)) {
    if (g === m.graph) continue;
    for (const n of g.nodes) {
      if (!isOnnxDomain(n) || !isOp(n, 'Conv', 'MatMul', 'Gemm')) continue;
      if (!ok(n)) {
        skipped.push({ node: n.label, opType: n.opType, reason: 'excluded' });
        continue;
      }
      const w = constTensor(n.inputs[1]);
      const x = n.inputs[0];
      if (!w || w.dtype !== 'float32' || !x || constTensor(x)) {
        skipped.push({
          node: n.label,
          opType: n.opType,
          reason: 'its weight is not a constant float32 tensor',
        });
        continue;
      }
      if (n.opType === 'Gemm' && (n.attrInt('transA', 0) || w.dims.length !== 2)) {
        skipped.push({ node: n.label, opType: n.opType, reason: 'transA = 1' });
        continue;
      }
      if (n.opType === 'MatMul' && w.dims.length !== 2) {
        skipped.push({ node: n.label, opType: n.opType, reason: `its weight has rank ${w.dims.length}` });
        continue;
      }
      const b = n.inputs[2];
      if (b && !constTensor(b)) {
        skipped.push({ node: n.label, opType: n.opType, reason: 'its bias is not a constant' });
        continue;
      }
      const axis = n.opType === 'Conv' ? 0 : n.opType === 'Gemm' && n.attrInt('transB', 0) ? 0 : 1;
      out.push({ node: n, x, y: n.output(0), axis });
    }
  }
  return out;
}

/** The node of `g.parent` that holds `g` as an attribute. */
function ownerOf(g: Graph): Node {
  for (const n of g.parent!.nodes) if (n.subgraphs().includes(g)) return n;
  throw new InputError('subgraph-owner', `Subgraph "${g.name}" has no owner node`, { value: g.name });
}

/**
 * Add min/max probes of `values` (each in some subgraph) and carry them to main-graph outputs. Returns, per value,
 * the names of the main-graph outputs holding its per-run minima and maxima (tensors: ±inf where not reached).
 */
function probe(m: Model, values: Value[]): Map<Value, [string, string]> {
  const opset = m.opset('') ?? 13;
  const out = new Map<Value, [string, string]>();
  for (const v of values) {
    let g = v.graph;
    const e = new Emitter(g, { opset, prefix: 'calib' });
    let pair: Value[] = [
      e.op('ReduceMin', [v], { keepdims: A.int(0) }),
      e.op('ReduceMax', [v], { keepdims: A.int(0) }),
    ];
    while (g.parent) {
      const owner = ownerOf(g);
      const parent = g.parent;
      const neutral = [Infinity, -Infinity];
      if (owner.opType === 'If') {
        for (const branch of owner.subgraphs()) {
          if (branch === g) branch.outputs.push(...pair);
          else
            for (const k of [0, 1]) {
              const c = branch.addInitializer(
                branch.uniqueName('calib_neutral'),
                T.scalar('float32', neutral[k]!),
              );
              const id = branch.addNode({
                opType: 'Identity',
                inputs: [c],
                outputs: [branch.uniqueName('calib_id')],
              });
              branch.outputs.push(id.output(0));
            }
        }
      } else if (owner.opType === 'Loop' || owner.opType === 'Scan') {
        // appended body outputs are scan outputs: one value per iteration, stacked
        g.outputs.push(...pair);
      } else
        throw new InputError('subgraph-op', `Cannot calibrate inside ${owner.opType}`, { node: owner.label });
      pair = pair.map((_, k) => {
        const o = parent.newValue(`${owner.label}/calib_${k ? 'max' : 'min'}`);
        parent.attachOutput(owner, o);
        return o;
      });
      g = parent;
    }
    m.graph.outputs.push(...pair);
    out.set(v, [pair[0]!.name, pair[1]!.name]);
  }
  return out;
}

/** Min and max of the reached elements (±inf entries are branches not taken); undefined when none was reached. */
async function calibrateSubgraphs(
  model: Model,
  values: Value[],
  batches: readonly Feeds[],
  threads: number | undefined,
): Promise<Map<Value, { min: number; max: number }>> {
  const m = model.clone();
  // the clone's graphs in the same order as the model's: values are found by name within their own graph
  const twin = new Map<Graph, Graph>();
  const a = [...allGraphs(model.graph)];
  const b = [...allGraphs(m.graph)];
  a.forEach((g, i) => twin.set(g, b[i]!));
  const mine = values.map((v) => twin.get(v.graph)!.valuesByName().get(v.name)!);
  const outs = probe(m, mine);
  const s = await Session.create(m, { threads, label: 'the calibration model (subgraphs)' });
  const stats = new Map<Value, { min: number; max: number }>();
  try {
    const fetch = [...outs.values()].flat();
    for (const batch of batches) {
      const r = await s.run(batch, fetch);
      mine.forEach((v, i) => {
        const [mn, mx] = outs.get(v)!;
        const st = stats.get(values[i]!) ?? { min: Infinity, max: -Infinity };
        for (const x of r[mn]!.data as Float32Array) if (Number.isFinite(x)) st.min = Math.min(st.min, x);
        for (const x of r[mx]!.data as Float32Array) if (Number.isFinite(x)) st.max = Math.max(st.max, x);
        stats.set(values[i]!, st);
      });
    }
  } finally {
    await s.release();
  }
  return stats;
}

/**
 * Static INT8 QDQ for the Conv/MatMul/Gemm nodes inside subgraphs of `model` (edited on a clone), calibrated with
 * min/max over `batches` through the branches taken.
 */
export async function quantizeSubgraphsStatic(
  model: Model,
  opts: NodeFilter & { calibration?: readonly Feeds[]; threads?: number; activationType?: 'uint8' | 'int8' },
): Promise<SubgraphStaticResult> {
  const m = model.clone();
  tryInferShapes(m);
  const skipped: SkippedNode[] = [];
  const cands = candidates(m, filterFor(m, opts), skipped);
  if (!cands.length) return { model, nodes: [], skipped, notes: [] };
  if (!opts.calibration?.length)
    throw new InputError('calib-missing', 'Static quantization needs calibration data (--calib-data)', {
      value: 'calib-data',
    });
  const tensors = [...new Set(cands.flatMap((c) => [c.x, c.y]))];
  const stats = await calibrateSubgraphs(m, tensors, opts.calibration, opts.threads);
  const qt = opts.activationType ?? 'uint8';
  const opset = m.opset('') ?? 13;
  const nodes: string[] = [];
  const qdq = new Map<Graph, Map<Value, Value>>();
  const rangeOf = (v: Value) => {
    const s = stats.get(v);
    return s && Number.isFinite(s.min) && Number.isFinite(s.max) ? s : undefined;
  };
  for (const c of cands) {
    const xr = rangeOf(c.x);
    const yr = rangeOf(c.y);
    if (!xr || !yr) {
      skipped.push({
        node: c.node.label,
        opType: c.node.opType,
        reason: 'no calibration batch ran it (branch never taken)',
      });
      continue;
    }
    const g = c.node.graph;
    const e = new Emitter(g, { opset, prefix: `${c.node.label}/qdq` });
    const qdqOf = (v: Value, r: { min: number; max: number }): Value => {
      const cache = qdq.get(g) ?? new Map<Value, Value>();
      qdq.set(g, cache);
      let d = cache.get(v);
      if (d) return d;
      const p = rangeParams(r.min, r.max, qt);
      const s = e.constant(T.scalar('float32', p.scale), 'scale');
      const z = e.constant(T.scalar(qt, p.zeroPoint), 'zero_point');
      d = e.op('DequantizeLinear', [e.op('QuantizeLinear', [v, s, z]), s, z]);
      cache.set(v, d);
      return d;
    };
    // weight: int8 per output channel
    const w = constTensor(c.node.inputs[1])!;
    const q = quantizeWeightInt8(w, opset >= 13 ? c.axis : null);
    const wq = e.constant(
      new T('int8', w.dims, new Uint8Array(q.q.buffer, q.q.byteOffset, q.q.byteLength)),
      'weight_q',
    );
    const ws = e.constant(
      q.scales.length === 1
        ? T.scalar('float32', q.scales[0]!)
        : T.from('float32', [q.scales.length], q.scales),
      'weight_scale',
    );
    const wz = e.constant(
      q.scales.length === 1
        ? T.scalar('int8', 0)
        : T.from('int8', [q.scales.length], new Int8Array(q.scales.length)),
      'weight_zero_point',
    );
    const wdq = e.op('DequantizeLinear', [wq, ws, wz], q.scales.length === 1 ? {} : { axis: A.int(c.axis) });
    c.node.setInput(0, qdqOf(c.x, xr));
    c.node.setInput(1, wdq);
    // output: the node writes a new value; Q/DQ of it takes over the old one's readers
    const y = c.y;
    const inner = g.newValue(`${y.name}_float`, y.type ? { ...y.type } : undefined);
    const idx = y.producerIndex;
    (c.node.outputs as (Value | null)[])[idx] = inner;
    inner.producer = c.node;
    inner.producerIndex = idx;
    y.producer = null;
    const p = rangeParams(yr.min, yr.max, qt);
    const s = e.constant(T.scalar('float32', p.scale), 'out_scale');
    const z = e.constant(T.scalar(qt, p.zeroPoint), 'out_zero_point');
    const qn = e.node('QuantizeLinear', [inner, s, z]);
    const dn = g.addNode({
      opType: 'DequantizeLinear',
      name: g.uniqueName(`${c.node.label}/qdq/out_dq`),
      inputs: [qn.output(0), s, z],
      outputs: 0,
    });
    g.attachOutput(dn, y);
    nodes.push(c.node.label);
  }
  for (const g of allGraphs(m.graph)) {
    g.toposort();
    g.removeUnused();
  }
  const notes = nodes.length
    ? [
        `Quantized ${nodes.length} Conv/MatMul/Gemm node(s) inside If/Loop/Scan subgraphs (QDQ, min/max calibrated through the branches taken)`,
      ]
    : [];
  for (const s of skipped) notes.push(`Kept ${s.opType} "${s.node}" float: ${s.reason}`);
  return { model: m, nodes, skipped, notes };
}
