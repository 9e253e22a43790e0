// Loss graphs, emitted into a model's graph after its logits: softmax cross-entropy (mean, label smoothing, class
// weights — PyTorch's `F.cross_entropy` semantics, including the weighted mean), knowledge distillation (KL with
// temperature, mixed with CE), and MSE. Every loss is written so that the path from the logits to the loss uses
// only LogSoftmax / Div / Sub / Mul / ReduceSum / ReduceMean / Add, whose gradient rules live in src/ops: the
// targets (one-hot rows, smoothing, class weights, the normaliser Σw[y], teacher probabilities) are computed on a
// side path that depends on labels and teacher logits only, so autodiff never walks it.
//
// Cross-entropy as one weighted sum. With q = (1−ε)·onehot(y) + ε/C and class weights w (all 1 when absent),
// PyTorch's mean-reduced loss is
//     Σ_i [(1−ε)·w[y_i]·(−logp_i[y_i]) + (ε/C)·Σ_c w_c·(−logp_ic)] / Σ_i w[y_i]  =  Σ_ic coef_ic · logp_ic
// with coef = −(q ⊙ w) / Σ_i w[y_i] (aten/src/ATen/native/LossNLL.cpp normalises the smoothing term by the same
// Σ w[y_i] as the NLL term). Without weights Σ_i w[y_i] = N, the plain mean.
import { InputError, ShapeError, UnsupportedError } from '../errors.js';
import { A, type Dim, Emitter, type Model, Tensor, type Value, tensorType } from '../ir/index.js';
import type { LossSpec } from './types.js';

/** Names of the extra graph inputs a loss adds (the actual names may get a suffix if the model already uses them). */
export const LOSS_INPUT_NAMES = {
  labels: 'labels',
  teacher: 'teacher_logits',
  features: 'teacher_features',
  target: 'target',
} as const;

export interface CrossEntropyOptions {
  /** ε in [0, 1): the target mixes (1−ε)·onehot with ε/C (PyTorch's `label_smoothing`). */
  labelSmoothing?: number;
  /** One weight per class (PyTorch's `weight`): the loss is the weighted mean Σ w[y_i]·ℓ_i / Σ w[y_i]. */
  classWeights?: readonly number[];
}

export interface DistillOptions extends CrossEntropyOptions {
  /** Softmax temperature T > 0. */
  temperature: number;
  /** Weight of the KL term in [0, 1]; the CE term gets 1 − alpha. */
  alpha: number;
}

/** Static [N, C] logits: C must be a number (one-hot depth, class weights). */
function classesOf(logits: Value, what: string): { n: Dim; c: number } {
  const s = logits.shape;
  if (!s || s.length !== 2)
    throw new UnsupportedError(
      'loss-rank',
      `${what} needs logits of shape [N, C]: "${logits.name}" has shape ${s ? `[${s.map((d) => d ?? '?').join(', ')}]` : 'unknown'}`,
      { value: logits.name },
    );
  const c = s[1];
  if (typeof c !== 'number' || c < 1)
    throw new ShapeError(
      'loss-classes',
      `${what} needs a known number of classes: "${logits.name}" has shape [${s.map((d) => d ?? '?').join(', ')}]`,
      {
        value: logits.name,
      },
    );
  return { n: s[0]!, c };
}

function checkSmoothing(eps: number | undefined): number {
  const e = eps ?? 0;
  if (!Number.isFinite(e) || e < 0 || e >= 1)
    throw new InputError('label-smoothing', `Label smoothing must be in [0, 1): current value is ${eps}`, {
      value: 'labelSmoothing',
    });
  return e;
}

/** ReduceSum over every axis of a value of known rank, to a scalar. */
function sumAll(e: Emitter, x: Value, rank: number): Value {
  return e.reduceSum(
    x,
    Array.from({ length: rank }, (_, i) => i),
    false,
  );
}

/**
 * The cross-entropy coefficient matrix coef [N, C] (no gradient needed: it depends on the labels only), such that
 * loss = Σ coef ⊙ logp. `scale` multiplies it (e.g. 1 − alpha in distillation).
 */
function crossEntropyCoef(e: Emitter, labels: Value, c: number, o: CrossEntropyOptions, scale = 1): Value {
  const eps = checkSmoothing(o.labelSmoothing);
  const onehot = e.op(
    'OneHot',
    [
      labels,
      e.constant(Tensor.from('int64', [], [c]), 'depth'),
      e.constant(Tensor.from('float32', [2], [0, 1]), 'onehot_values'),
    ],
    {
      axis: A.int(-1),
    },
  );
  let q = onehot;
  if (eps > 0) q = e.add(e.mul(onehot, e.scalar(1 - eps)), e.scalar(eps / c));
  let denom: Value;
  if (o.classWeights) {
    const w = o.classWeights;
    if (w.length !== c || !w.every((x) => Number.isFinite(x) && x >= 0))
      throw new InputError(
        'class-weights',
        `Class weights must be ${c} finite non-negative numbers (one per class): got ${w.length}`,
        {
          value: 'classWeights',
        },
      );
    const wt = e.constant(Tensor.from('float32', [c], [...w]), 'class_weights');
    q = e.mul(q, wt);
    denom = sumAll(e, e.mul(onehot, wt), 2);
  } else {
    denom = sumAll(e, onehot, 2); // = N exactly
  }
  // coef = −scale · q / denom
  return e.mul(e.div(q, denom), e.scalar(-scale));
}

/** Mean softmax cross-entropy of logits [N, C] vs int64 labels [N] (PyTorch `F.cross_entropy`, reduction mean). */
export function crossEntropyLoss(
  e: Emitter,
  logits: Value,
  labels: Value,
  o: CrossEntropyOptions = {},
): Value {
  const { c } = classesOf(logits, 'Cross-entropy');
  const coef = crossEntropyCoef(e, labels, c, o);
  const logp = e.op('LogSoftmax', [logits], { axis: A.int(-1) });
  return sumAll(e, e.mul(coef, logp), 2);
}

/**
 * Distillation: alpha · T² · KLDiv(log_softmax(s/T), softmax(t/T), batchmean) + (1 − alpha) · CE(s, y). The
 * teacher logits get no gradient. `labels` may be omitted when alpha = 1.
 */
export function distillLoss(
  e: Emitter,
  student: Value,
  teacher: Value,
  labels: Value | undefined,
  o: DistillOptions,
): Value {
  const { c } = classesOf(student, 'Distillation');
  const T = o.temperature;
  const alpha = o.alpha;
  if (!Number.isFinite(T) || T <= 0)
    throw new InputError('temperature', `Distillation temperature must be > 0: current value is ${T}`, {
      value: 'temperature',
    });
  if (!Number.isFinite(alpha) || alpha < 0 || alpha > 1)
    throw new InputError('alpha', `Distillation alpha must be in [0, 1]: current value is ${alpha}`, {
      value: 'alpha',
    });
  const terms: Value[] = [];
  if (alpha > 0) {
    const tT = T === 1 ? teacher : e.div(teacher, e.scalar(T));
    const q = e.op('Softmax', [tT], { axis: A.int(-1) });
    const logq = e.op('LogSoftmax', [tT], { axis: A.int(-1) });
    // batchmean: divide by N (taken from the shape, so any batch size works)
    const n = e.cast(
      e.op('Gather', [e.shape(teacher), e.constant(Tensor.from('int64', [], [0]), 'batch_axis')], {
        axis: A.int(0),
      }),
      'float32',
    );
    const k = e.div(e.scalar(alpha * T * T), n); // alpha·T²/N
    // KL = k·Σ q·logq − k·Σ q·logp_s: the first term is a constant of the teacher
    const constant = e.mul(sumAll(e, e.mul(q, logq), 2), k);
    const coef = e.mul(q, e.neg(k));
    const sT = T === 1 ? student : e.div(student, e.scalar(T));
    const logps = e.op('LogSoftmax', [sT], { axis: A.int(-1) });
    terms.push(e.add(sumAll(e, e.mul(coef, logps), 2), constant));
  }
  if (alpha < 1) {
    if (!labels)
      throw new InputError(
        'distill-labels',
        'Distillation with alpha < 1 needs labels for its cross-entropy term',
        { value: 'labels' },
      );
    const coef = crossEntropyCoef(e, labels, c, o, 1 - alpha);
    const logp = e.op('LogSoftmax', [student], { axis: A.int(-1) });
    terms.push(sumAll(e, e.mul(coef, logp), 2));
  }
  return terms.length === 1 ? terms[0]! : e.add(terms[0]!, terms[1]!);
}

/** Mean squared error over every element (PyTorch `F.mse_loss`, reduction mean). */
export function mseLoss(e: Emitter, pred: Value, target: Value): Value {
  const r = pred.shape?.length;
  if (r === undefined || r === null)
    throw new ShapeError(
      'loss-rank',
      `MSE needs a prediction of known rank: "${pred.name}" has no known shape`,
      { value: pred.name },
    );
  const d = e.sub(pred, target);
  const sq = e.mul(d, d);
  if (r === 0) return sq;
  return e.reduceMean(
    sq,
    Array.from({ length: r }, (_, i) => i),
    false,
  );
}

/** weight · MSE(value, teacher_features): the feature-distillation term, with its new graph input. */
function featureTerm(
  e: Emitter,
  model: Model,
  f: { value: string; weight: number },
): { loss: Value; input: Value } {
  const g = model.graph;
  const v = g.lookup(f.value);
  if (!v)
    throw new InputError('feature-value', `Feature distillation: the model has no tensor "${f.value}"`, {
      value: f.value,
    });
  if (!Number.isFinite(f.weight) || f.weight < 0)
    throw new InputError(
      'feature-weight',
      `Feature distillation weight must be ≥ 0: current value is ${f.weight}`,
      {
        value: 'featureWeight',
      },
    );
  const shape = v.shape;
  if (v.dtype !== 'float32' || !shape)
    throw new ShapeError(
      'feature-shape',
      `Feature distillation needs a float32 tensor of known shape: "${v.name}"`,
      {
        value: v.name,
      },
    );
  const input = g.addInput(LOSS_INPUT_NAMES.features, tensorType('float32', [...shape]));
  return { loss: e.mul(mseLoss(e, v, input), e.scalar(f.weight)), input };
}

export interface LossGraph {
  /** The scalar loss value. */
  loss: Value;
  /**
   * Graph inputs the loss added, by role (`labels` int64 [N], `teacher_logits` [N, C], `teacher_features` like the
   * distilled feature, `target` like the output).
   */
  inputs: { labels?: Value; teacher?: Value; features?: Value; target?: Value };
}

/**
 * Add the loss of `spec` on `logits` (a value of `model.graph` with a known type) to the graph, with the graph
 * inputs it needs. Does not change the graph outputs. Names are prefixed with `prefix` (default "loss").
 */
export function addLoss(model: Model, logits: Value, spec: LossSpec, prefix = 'loss'): LossGraph {
  const g = model.graph;
  const e = new Emitter(g, { opset: model.opset('') ?? 17, prefix });
  const shape = logits.shape;
  const dtype = logits.dtype;
  if (dtype !== 'float32')
    throw new UnsupportedError(
      'loss-dtype',
      `Losses are built for float32 outputs: "${logits.name}" is ${dtype ?? 'of unknown type'}`,
      {
        value: logits.name,
      },
    );
  const inputs: LossGraph['inputs'] = {};
  const labelsInput = (): Value => {
    const { n } = classesOf(logits, 'The loss');
    return (inputs.labels = g.addInput(LOSS_INPUT_NAMES.labels, tensorType('int64', [n])));
  };
  let loss: Value;
  switch (spec.kind) {
    case 'cross-entropy':
      loss = crossEntropyLoss(e, logits, labelsInput(), spec);
      break;
    case 'distill': {
      const { n, c } = classesOf(logits, 'Distillation');
      inputs.teacher = g.addInput(LOSS_INPUT_NAMES.teacher, tensorType('float32', [n, c]));
      const labels = spec.alpha < 1 ? labelsInput() : undefined;
      loss = distillLoss(e, logits, inputs.teacher, labels, spec);
      if (spec.feature) {
        const f = featureTerm(e, model, spec.feature);
        inputs.features = f.input;
        loss = e.add(loss, f.loss);
      }
      break;
    }
    case 'mse':
      if (!shape)
        throw new ShapeError('loss-shape', `MSE needs the shape of "${logits.name}"`, { value: logits.name });
      inputs.target = g.addInput(LOSS_INPUT_NAMES.target, tensorType('float32', [...shape]));
      loss = mseLoss(e, logits, inputs.target);
      break;
    default:
      throw new InputError(
        'loss-kind',
        `Unknown loss kind "${(spec as { kind: string }).kind}" (known: cross-entropy, distill, mse)`,
        {
          value: 'loss',
        },
      );
  }
  return { loss, inputs };
}
