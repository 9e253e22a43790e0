// Training mode for a forward graph: BatchNormalization normalises with batch statistics and its running statistics
// are updated as PyTorch updates them; Dropout is active with a seeded mask. The inference graph is never touched:
// this works on a clone, and the export is the original graph with new initializer data.
//
// BatchNormalization. ORT runs `training_mode=1` (opset ≥ 14) and then normalises with the batch statistics, but
// its running variance uses the biased batch variance (measured: with momentum m it returns m·var + (1−m)·σ²_B
// where σ²_B = Σ(x−μ)²/n), while PyTorch uses the unbiased one, n/(n−1)·σ²_B. So the training BN node gets
// momentum 0: its two extra outputs are then exactly the batch mean μ_B and the biased batch variance σ²_B (ORT
// computes them anyway), and the running statistics are updated from them with a few ops on [C] vectors:
//     running_mean' = m·running_mean + (1−m)·μ_B
//     running_var'  = m·running_var  + (1−m)·σ²_B·n/(n−1),      n = N·H·W (elements per channel)
// (m = the node's ONNX momentum = 1 − PyTorch's momentum). Nothing on that side path needs a gradient, and the
// normalised output Y — what the loss sees — is the one ORT's training-mode kernel computes.
// Careful: ORT's training-mode kernel aliases outputs 1/2 to inputs 3/4 and writes the new statistics into those
// buffers, even when they are graph inputs fed from JS; so the node reads a fresh zero vector, never the state.
// Below opset 14 (no training_mode attribute) the node is replaced by primitive ops computing the same thing.
import { UnsupportedError } from '../errors.js';
import { A, Emitter, isOnnxDomain, type Model, type Node, Tensor, type Value } from '../ir/index.js';

export interface BnStat {
  node: Node;
  /** Which running statistic. */
  role: 'mean' | 'var';
  /** The current value (an initializer of the model, read by the node). */
  value: Value;
  /** Its next value, computed in the graph. */
  next: Value;
}

export interface TrainingModeResult {
  /** Running statistics updated by the graph (each an initializer of the model). */
  stats: BnStat[];
  /** BatchNormalization nodes switched to training mode. */
  batchNorms: Node[];
  /** Dropout nodes made active. */
  dropouts: Node[];
}

export interface TrainingModeOptions {
  /** Seed of the Dropout masks (node k gets seed + k). ORT draws a new mask every run from this seed. */
  seed?: number;
}

/** Switch BatchNormalization and Dropout nodes of `model` (edited in place: pass a clone) to training mode. */
export function toTrainingMode(model: Model, opts: TrainingModeOptions = {}): TrainingModeResult {
  const g = model.graph;
  const opset = model.opset('') ?? 17;
  const e = new Emitter(g, { opset, prefix: 'train_mode' });
  const res: TrainingModeResult = { stats: [], batchNorms: [], dropouts: [] };
  const seen = new Set<Value>();
  for (const node of [...g.nodes]) {
    if (!isOnnxDomain(node)) continue;
    if (node.opType === 'BatchNormalization') {
      const x = node.input(0);
      const mean = node.input(3);
      const variance = node.input(4);
      const m = node.attrFloat('momentum', 0.9);
      e.prefix = `train_mode/${node.label}`;
      const stat = opset >= 14 ? trainingNode(e, node) : decompose(e, node);
      res.batchNorms.push(node);
      // n = elements per channel = Size(X) / C
      const shape = x.shape;
      const c = shape?.[1];
      let count: Value;
      const known = shape && shape.every((d): d is number => typeof d === 'number');
      if (known) count = e.scalar((shape as number[]).reduce((a, b) => a * b, 1) / (shape as number[])[1]!);
      else if (typeof c === 'number') count = e.div(e.cast(e.op('Size', [x]), 'float32'), e.scalar(c));
      else count = e.div(e.cast(e.op('Size', [x]), 'float32'), e.cast(e.op('Size', [mean]), 'float32'));
      const unbias = e.div(count, e.sub(count, e.scalar(1))); // n / (n − 1)
      const keep = e.scalar(m);
      const take = e.scalar(1 - m);
      for (const [role, cur, batch] of [
        ['mean', mean, stat.mean],
        ['var', variance, stat.variance],
      ] as const) {
        if (!cur.const) continue; // not a stored statistic: nothing to carry between steps
        if (seen.has(cur))
          throw new UnsupportedError(
            'bn-shared-stats',
            `BatchNormalization "${node.label}" shares its running ${role} "${cur.name}" with another node`,
            {
              node: node.label,
              value: cur.name,
            },
          );
        seen.add(cur);
        const b = role === 'var' ? e.mul(batch, unbias) : batch;
        const next = e.add(e.mul(cur, keep), e.mul(b, take));
        res.stats.push({ node, role, value: cur, next });
      }
    } else if (node.opType === 'Dropout') {
      if (opset < 12)
        throw new UnsupportedError(
          'dropout-training-opset',
          `Dropout "${node.label}": training needs opset ≥ 12 (training_mode input); the model imports opset ${opset}`,
          { node: node.label, opType: node.opType },
        );
      e.prefix = `train_mode/${node.label}`;
      if (!node.inputs[1]) node.setInput(1, e.scalar(0.5)); // ONNX's default ratio
      node.setInput(2, e.constant(Tensor.from('bool', [], [1]), 'training_mode'));
      node.setAttr('seed', A.int(((opts.seed ?? 0) + res.dropouts.length) | 0));
      if (!node.outputs[1]) {
        while (node.outputs.length < 2) g.attachOutput(node, null);
        const o = g.newValue(`${node.label}/mask`);
        node.outputs[1] = o;
        o.producer = node;
        o.producerIndex = 1;
      }
      res.dropouts.push(node);
    }
  }
  return res;
}

/**
 * Opset ≥ 14: the node itself in training mode with momentum 0, so that its outputs 1 and 2 are the batch mean and
 * the biased batch variance.
 */
function trainingNode(e: Emitter, node: Node): { mean: Value; variance: Value } {
  const g = node.graph;
  // ORT's training-mode kernel writes its running-statistic outputs into the buffers of inputs 3 and 4
  // (measured: a graph input fed from JS comes back overwritten). With momentum 0 their values do not matter,
  // so the node reads fresh zeros (0 · stat: a new buffer each run), and the update reads the real ones.
  node.setInput(3, e.mul(node.input(3), e.scalar(0)));
  node.setInput(4, e.mul(node.input(4), e.scalar(0)));
  node.setAttr('training_mode', A.int(1));
  node.setAttr('momentum', A.float(0));
  while (node.outputs.length < 3) g.attachOutput(node, null);
  const outs = [1, 2].map((i) => {
    let o = node.outputs[i];
    if (!o) {
      o = g.newValue(`${node.label}/batch_${i === 1 ? 'mean' : 'var'}`);
      node.outputs[i] = o;
      o.producer = node;
      o.producerIndex = i;
    }
    return o;
  });
  return { mean: outs[0]!, variance: outs[1]! };
}

/**
 * Opset < 14 has no training_mode attribute (and ORT runs the old training form only with extra outputs):
 * replace the node by primitive ops, y = (x − μ)/√(σ² + ε)·γ + β with batch statistics over every axis but 1.
 * Autodiff differentiates through μ and σ² with the elementwise/reduce rules.
 */
function decompose(e: Emitter, node: Node): { mean: Value; variance: Value } {
  const g = node.graph;
  const x = node.input(0);
  const r = x.shape?.length;
  if (r === undefined || r < 2)
    throw new UnsupportedError(
      'bn-training-rank',
      `BatchNormalization "${node.label}": training needs an input of known rank ≥ 2`,
      {
        node: node.label,
        opType: node.opType,
      },
    );
  if (node.outputs.slice(1).some((o) => o && !o.isUnused))
    throw new UnsupportedError(
      'bn-training-outputs',
      `BatchNormalization "${node.label}": its statistics outputs are read by the graph`,
      {
        node: node.label,
        opType: node.opType,
      },
    );
  const axes = [0, ...Array.from({ length: r - 2 }, (_, i) => i + 2)];
  const bshape = [1, -1, ...new Array<number>(r - 2).fill(1)];
  const mu = e.reduceMean(x, axes, true);
  const xc = e.sub(x, mu);
  const v = e.reduceMean(e.mul(xc, xc), axes, true);
  const std = e.op('Sqrt', [e.add(v, e.scalar(node.attrFloat('epsilon', 1e-5)))]);
  const y = e.add(e.mul(e.div(xc, std), e.reshape(node.input(1), bshape)), e.reshape(node.input(2), bshape));
  const out = node.output(0);
  out.replaceAllUsesWith(y);
  g.removeNode(node, true);
  return { mean: e.reshape(mu, [-1]), variance: e.reshape(v, [-1]) };
}
