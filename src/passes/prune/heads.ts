// Attention heads: recognise multi-head attention subgraphs (the builder's fused qkv → Reshape [N, T, 3, H, hd], and
// torch's nn.MultiheadAttention / TransformerEncoderLayer export: in_proj MatMul → Slice q/k/v → Reshape [T, N·H, hd]),
// score heads by the gradient of a head mask (or by weight magnitude without data), and remove whole heads: the
// head's Q, K, V projection columns and output-projection rows together, with the Reshape targets rewritten.
import { InputError, UnsupportedError } from '../../errors.js';
import { type Dim, type Model, type Node, Tensor, type Value } from '../../ir/index.js';
import { inferShapes } from '../../ops/index.js';
import { tryInferShapes } from '../util.js';
import { gatherAxis } from './apply.js';
import { unshareConstants } from './deps.js';
import { type ImportanceKind, type CalibrationData, maskGradients } from './importance.js';
import { topK } from './select.js';

interface Projection {
  node: Node;
  weight: Value;
  /** Axis of the weight holding the projection's output features. */
  outAxis: number;
  bias?: { value: Value; axis: number };
}

export interface AttentionBlock {
  /** The Softmax node's label. */
  name: string;
  heads: number;
  headDim: number;
  embed: number;
  /** One projection (fused q|k|v, 3·embed wide) or three. */
  qkv: Projection[];
  out: { node: Node; weight: Value; inAxis: number; input: Value };
  /** Reshapes between the projections whose targets name head counts. */
  reshapes: Node[];
}

const PASS = new Set([
  'Transpose',
  'Reshape',
  'Slice',
  'Gather',
  'Split',
  'Squeeze',
  'Unsqueeze',
  'Identity',
  'Cast',
]);

function isConstScalar(v: Value | null): boolean {
  return !!v && ((v.const && v.const.numel === 1) || v.producer?.opType === 'Constant');
}

/** Walk back from a Q/K/V value to the Linear producing it, collecting the reshapes on the way. */
function toProjection(v: Value, reshapes: Set<Node>): Projection | undefined {
  let cur: Value | null = v;
  let bias: Projection['bias'];
  for (let i = 0; i < 40 && cur; i++) {
    const p: Node | null = cur.producer;
    if (!p) return undefined;
    if (p.opType === 'MatMul' && p.inputs[1]?.const?.dims.length === 2)
      return { node: p, weight: p.inputs[1]!, outAxis: 1, bias };
    if (p.opType === 'Gemm' && p.inputs[1]?.const) {
      const transB = p.attrInt('transB', 0) === 1;
      const c = p.inputs[2];
      return {
        node: p,
        weight: p.inputs[1]!,
        outAxis: transB ? 0 : 1,
        bias: c?.const ? { value: c, axis: c.const.dims.length - 1 } : undefined,
      };
    }
    if (p.opType === 'Add') {
      const k = p.inputs.findIndex((x) => x?.const && x.const.dims.length === 1);
      if (k < 0) return undefined;
      bias = { value: p.inputs[k]!, axis: 0 };
      cur = p.inputs[1 - k]!;
      continue;
    }
    if ((p.opType === 'Div' || p.opType === 'Mul') && isConstScalar(p.inputs[1])) {
      cur = p.inputs[0]!;
      continue;
    }
    if (p.opType === 'Mul' && isConstScalar(p.inputs[0])) {
      cur = p.inputs[1]!;
      continue;
    }
    if (!PASS.has(p.opType)) return undefined;
    if (p.opType === 'Reshape') reshapes.add(p);
    cur = p.inputs[0]!;
  }
  return undefined;
}

/** The attention blocks of a model (edited: shared constants unshared, shapes inferred), and why other Softmax nodes were not taken. */
export function findAttention(model: Model): { blocks: AttentionBlock[]; skipped: string[] } {
  unshareConstants(model);
  model.graph.toposort();
  tryInferShapes(model);
  const blocks: AttentionBlock[] = [];
  const skipped: string[] = [];
  for (const s of model.graph.nodes) {
    if (s.opType !== 'Softmax') continue;
    const why = (r: string) => skipped.push(`Softmax "${s.label}": ${r}`);
    const m2 = s.output(0).uses.find((u) => u.node.opType === 'MatMul' && u.index === 0)?.node;
    let sc: Value | null = s.inputs[0]!;
    while (sc?.producer && ['Div', 'Mul', 'Add', 'Where', 'Cast'].includes(sc.producer.opType))
      sc = sc.producer.inputs[0]!;
    const m1 = sc?.producer?.opType === 'MatMul' ? sc.producer : undefined;
    if (!m2 || !m1) {
      why('not softmax(Q Kᵀ) V');
      continue;
    }
    const reshapes = new Set<Node>();
    const q = toProjection(m1.input(0), reshapes);
    const k = toProjection(m1.input(1), reshapes);
    const v = toProjection(m2.input(1), reshapes);
    if (!q || !k || !v) {
      why('Q, K or V does not come from a Linear with constant weights');
      continue;
    }
    // forward to the output projection
    let cur = m2.output(0);
    let out: AttentionBlock['out'] | undefined;
    for (let i = 0; i < 10; i++) {
      if (cur.uses.length !== 1) break;
      const n = cur.uses[0]!.node;
      if (n.opType === 'MatMul' && n.inputs[1]?.const?.dims.length === 2 && cur.uses[0]!.index === 0) {
        out = { node: n, weight: n.inputs[1]!, inAxis: 0, input: cur };
        break;
      }
      if (n.opType === 'Gemm' && n.inputs[1]?.const && cur.uses[0]!.index === 0) {
        out = { node: n, weight: n.inputs[1]!, inAxis: n.attrInt('transB', 0) === 1 ? 1 : 0, input: cur };
        break;
      }
      if (!PASS.has(n.opType)) break;
      if (n.opType === 'Reshape') reshapes.add(n);
      cur = n.output(0);
    }
    const hd = m2.output(0).shape?.at(-1);
    if (!out || typeof hd !== 'number') {
      why('no output projection after the heads are merged');
      continue;
    }
    const E = out.weight.const!.dims[out.inAxis]!;
    const fused = q.node === k.node && k.node === v.node;
    const width = (p: Projection) => p.weight.const!.dims[p.outAxis]!;
    if (E % hd || (fused ? width(q) !== 3 * E : [q, k, v].some((p) => width(p) !== E) || q.node === k.node)) {
      why(`projection widths do not match ${E} = heads × ${hd}`);
      continue;
    }
    blocks.push({
      name: s.label,
      heads: E / hd,
      headDim: hd,
      embed: E,
      qkv: fused ? [q] : [q, k, v],
      out,
      reshapes: [...reshapes],
    });
  }
  return { blocks, skipped };
}

function headIndices(block: AttentionBlock, keep: number[], parts: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < parts; j++)
    for (const h of keep)
      for (let k = 0; k < block.headDim; k++) out.push(j * block.embed + h * block.headDim + k);
  return out;
}

/** New Reshape target for a shape with `E` features becoming `E2` (heads H → H2), or a reason it is ambiguous. */
function rewriteTarget(n: Node, b: AttentionBlock, H2: number): number[] | string {
  const s = n.input(0).shape;
  const o = n.output(0).shape;
  if (!s || !o) return 'unknown shapes';
  const E2 = H2 * b.headDim;
  const copies = (i: number) =>
    i < s.length && s[i] === o[i] && o[i] !== b.heads && o[i] !== b.embed && o[i] !== 3 * b.embed;
  // the head axis: a dim equal to the head count that is not copied from the input; where the count also names
  // another axis (3 heads next to the q|k|v axis of 3), the one followed by the head size
  let heads = o.map((d, i) => (d === b.heads && !copies(i) ? i : -1)).filter((i) => i >= 0);
  if (heads.length > 1) heads = heads.filter((i) => o[i + 1] === b.headDim);
  if (heads.length > 1) return `the head count ${b.heads} appears twice in [${o.join(', ')}]`;
  let minus = false;
  const t: number[] = [];
  for (let i = 0; i < o.length; i++) {
    const d: Dim = o[i]!;
    if (copies(i)) t.push(0);
    else if (typeof d !== 'number') {
      if (minus) return `two computed dims in [${o.join(', ')}]`;
      minus = true;
      t.push(-1);
    } else if (d === 3 * b.embed) t.push(3 * E2);
    else if (d === b.embed) t.push(E2);
    else if (i === heads[0]) t.push(H2);
    else t.push(d);
  }
  return t;
}

export interface HeadsReport {
  blocks: { name: string; heads: number; kept: number[]; scores: number[] }[];
  skipped: string[];
  importance: 'head-mask' | 'l1';
}

export interface HeadsOptions {
  /** Fraction of each block's heads to remove (of `baseHeads` where it names the block). */
  ratio: number;
  /** Original head count per block (by its Softmax's label): iterative schedules remove a fraction of those. */
  baseHeads?: ReadonlyMap<string, number>;
  importance?: ImportanceKind;
  data?: CalibrationData;
  batches?: number;
  batchSize?: number;
  seed?: number;
  threads?: number;
}

/** Per block, per head: Σ over calibration batches of |∂L/∂m_h| for a head mask m (all ones) on the merged heads. */
export async function headMaskScores(
  model: Model,
  blocks: AttentionBlock[],
  opts: HeadsOptions,
): Promise<number[][]> {
  const scores = blocks.map((b) => new Array<number>(b.heads).fill(0));
  const sites = blocks.map((b) => ({
    node: model.graph.nodes.indexOf(b.out.node),
    input: b.out.node.inputs.indexOf(b.out.input),
    dims: [b.embed],
  }));
  await maskGradients(model, sites, opts, (i, gr) => {
    const b = blocks[i]!;
    for (let h = 0; h < b.heads; h++) {
      let s = 0;
      for (let k = 0; k < b.headDim; k++) s += gr[h * b.headDim + k]!;
      scores[i]![h]! += Math.abs(s);
    }
  });
  return scores;
}

function magnitudeScores(b: AttentionBlock): number[] {
  const w = b.out.weight.const!;
  const data = w.typed() as Float32Array;
  const [r, c] = w.dims as [number, number];
  const s = new Array<number>(b.heads).fill(0);
  for (let i = 0; i < r; i++)
    for (let j = 0; j < c; j++) {
      const f = b.out.inAxis === 0 ? i : j;
      s[Math.floor(f / b.headDim)]! += Math.abs(data[i * c + j]!);
    }
  return s;
}

/** Remove the listed heads' weights (keep: sorted head indices per block) from `model` in place. */
export function removeHeads(model: Model, blocks: AttentionBlock[], keep: number[][]): string[] {
  const g = model.graph;
  const problems: string[] = [];
  blocks.forEach((b, i) => {
    const kept = keep[i]!;
    if (kept.length === b.heads) return;
    const targets = new Map<Node, number[]>();
    for (const r of b.reshapes) {
      const t = rewriteTarget(r, b, kept.length);
      if (typeof t === 'string') {
        problems.push(`attention "${b.name}" keeps its heads: Reshape "${r.label}": ${t}`);
        keep[i] = Array.from({ length: b.heads }, (_, h) => h);
        return;
      }
      targets.set(r, t);
    }
    const parts = b.qkv.length === 1 ? 3 : 1;
    const slice = (v: Value, axis: number, idx: number[]) =>
      g.setInitializer(v, gatherAxis(v.const!, axis, idx));
    for (const p of b.qkv) {
      const idx = headIndices(b, kept, parts);
      slice(p.weight, p.outAxis, idx);
      if (p.bias) slice(p.bias.value, p.bias.axis, idx);
    }
    slice(b.out.weight, b.out.inAxis, headIndices(b, kept, 1));
    for (const [r, t] of targets) {
      const v = g.addInitializer(g.uniqueName(`${r.label}/shape`), Tensor.from('int64', [t.length], t));
      r.setInput(1, v);
    }
  });
  return problems;
}

/** Remove `ratio` of the heads of every attention block (at least one head stays). */
export async function pruneHeads(
  model: Model,
  opts: HeadsOptions,
): Promise<{ model: Model; report: HeadsReport }> {
  const m = model.clone();
  const { blocks, skipped } = findAttention(m);
  if (!blocks.length)
    throw new UnsupportedError(
      'prune-heads',
      `No multi-head attention found to prune heads in${skipped.length ? `: ${skipped.join('; ')}` : ''}`,
      {
        value: 'heads',
      },
    );
  const useMask =
    opts.importance === 'taylor' ||
    (opts.data !== undefined && opts.importance !== 'l1' && opts.importance !== 'l2');
  if (opts.importance === 'taylor' && !opts.data)
    throw new InputError('prune-data', 'Head-mask importance needs labelled data', { value: 'data' });
  const scores = useMask ? await headMaskScores(m, blocks, opts) : blocks.map(magnitudeScores);
  const keep = blocks.map((b, i) => {
    const base = opts.baseHeads?.get(b.name) ?? b.heads;
    const n = Math.min(b.heads, Math.max(1, Math.round(base * (1 - opts.ratio))));
    return topK(Float64Array.from(scores[i]!), n);
  });
  const problems = removeHeads(m, blocks, keep);
  for (const n of m.graph.nodes)
    for (const o of n.outputs) if (o && !m.graph.outputs.includes(o)) o.type = undefined;
  m.graph.removeUnused();
  inferShapes(m, { strict: false });
  return {
    model: m,
    report: {
      blocks: blocks.map((b, i) => ({ name: b.name, heads: b.heads, kept: keep[i]!, scores: scores[i]! })),
      skipped: [...skipped, ...problems],
      importance: useMask ? 'head-mask' : 'l1',
    },
  };
}
