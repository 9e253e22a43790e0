// Depth pruning: drop whole residual blocks (y = x + f(x) becomes y = x), ranked by importance: the first-order
// change of the loss when the block's branch is masked out (gradient of a scalar block mask over calibration
// batches), or without data the magnitude of the branch's last scale (BatchNorm γ or weight) per element.
import { UnsupportedError } from '../../errors.js';
import type { Model, Node, Value } from '../../ir/index.js';
import { inferShapes } from '../../ops/index.js';
import { tryInferShapes } from '../util.js';
import { type CalibrationData, type ImportanceKind, maskGradients } from './importance.js';

export interface ResidualBlock {
  /** The Add node joining skip and branch. */
  add: Node;
  skip: Value;
  branch: Value;
  /** Nodes of the branch (x excluded). */
  nodes: Node[];
}

const sameShape = (a: Value, b: Value) => {
  const s = a.shape;
  const t = b.shape;
  return !!s && !!t && s.length === t.length && s.every((d, i) => d === t[i]);
};

/** The branch nodes of f when every path into f starts at x or a constant; undefined otherwise. */
function branchFrom(f: Value, x: Value): Node[] | undefined {
  const seen = new Set<Node>();
  const stack: Value[] = [f];
  while (stack.length) {
    const v = stack.pop()!;
    if (v === x || v.const) continue;
    const p = v.producer;
    if (!p) return undefined;
    if (seen.has(p)) continue;
    if (p.subgraphs().length) return undefined;
    seen.add(p);
    for (const i of p.inputs) if (i) stack.push(i);
  }
  const nodes = [...seen];
  if (!nodes.some((n) => n.inputs.some((i) => i?.const && i.const.dims.length >= 2))) return undefined;
  return nodes;
}

export function findResidualBlocks(model: Model): ResidualBlock[] {
  tryInferShapes(model);
  const out: ResidualBlock[] = [];
  for (const n of model.graph.nodes) {
    if (n.opType !== 'Add' || n.inputs.length !== 2 || !n.inputs[0] || !n.inputs[1]) continue;
    for (const [a, b] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const x = n.inputs[a]!;
      const f = n.inputs[b]!;
      if (x.const || !sameShape(x, f) || !sameShape(x, n.output(0))) continue;
      const nodes = branchFrom(f, x);
      if (nodes) {
        out.push({ add: n, skip: x, branch: f, nodes });
        break;
      }
    }
  }
  return out;
}

export interface DepthReport {
  candidates: { block: string; score: number }[];
  dropped: string[];
  importance: 'block-mask' | 'magnitude';
}

export interface DepthOptions {
  count: number;
  importance?: ImportanceKind;
  data?: CalibrationData;
  batches?: number;
  batchSize?: number;
  seed?: number;
  threads?: number;
}

function magnitude(b: ResidualBlock): number {
  // the last scaling node of the branch: BatchNorm γ, else the last weight
  const order = b.nodes;
  const last = b.branch.producer!;
  const bn =
    last.opType === 'BatchNormalization'
      ? last
      : order.find((n) => n.opType === 'BatchNormalization' && n.output(0) === b.branch);
  const t = bn
    ? bn.inputs[1]?.const
    : [last, ...order].find((n) => n.inputs[1]?.const && n.inputs[1].const.dims.length >= 2)?.inputs[1]
        ?.const;
  if (!t || t.dtype !== 'float32') return 0;
  const d = t.typed() as Float32Array;
  let s = 0;
  for (const v of d) s += Math.abs(v);
  return s / d.length;
}

async function maskScores(model: Model, blocks: ResidualBlock[], opts: DepthOptions): Promise<number[]> {
  const scores = new Array<number>(blocks.length).fill(0);
  const sites = blocks.map((b) => ({
    node: model.graph.nodes.indexOf(b.add),
    input: b.add.inputs.indexOf(b.branch),
    dims: [1],
  }));
  await maskGradients(model, sites, opts, (i, gr) => (scores[i]! += Math.abs(gr[0]!)));
  return scores;
}

/** Replace the `count` least important residual blocks by their skip connection. */
export async function dropBlocks(
  model: Model,
  opts: DepthOptions,
): Promise<{ model: Model; report: DepthReport }> {
  const m = model.clone();
  const blocks = findResidualBlocks(m);
  if (opts.count > blocks.length)
    throw new UnsupportedError(
      'prune-depth',
      `Cannot drop ${opts.count} residual blocks: the model has ${blocks.length} (x + f(x) with matching shapes)`,
      { value: 'depth' },
    );
  const useMask =
    opts.data !== undefined &&
    opts.importance !== 'l1' &&
    opts.importance !== 'l2' &&
    opts.importance !== 'bn';
  const scores = useMask ? await maskScores(m, blocks, opts) : blocks.map(magnitude);
  const order = blocks.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]! || a - b);
  const dropped = order.slice(0, opts.count);
  for (const i of dropped) {
    const b = blocks[i]!;
    b.add.opType = 'Identity';
    const x = b.skip;
    b.add.setInput(0, x);
    b.add.setInput(1, null);
    b.add.trimInputs();
  }
  m.graph.removeUnused();
  inferShapes(m, { strict: false });
  return {
    model: m,
    report: {
      candidates: blocks.map((b, i) => ({ block: b.add.label, score: scores[i]! })),
      dropped: dropped.map((i) => blocks[i]!.add.label),
      importance: useMask ? 'block-mask' : 'magnitude',
    },
  };
}
