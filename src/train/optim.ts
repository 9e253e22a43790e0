// Optimizer update graphs: the ONNX nodes that turn (parameter, gradient, optimizer slots) into their next values,
// exactly as torch.optim.SGD / torch.optim.AdamW (torch 1.13, single-tensor path) update them, plus global
// gradient-norm clipping as torch.nn.utils.clip_grad_norm_ does it. Everything a schedule changes (the learning
// rate, AdamW's bias corrections, SGD's first-step dampening) is a scalar graph input computed per step by
// `hyperFeeds`, so one graph serves every step.
//
// The update rules are elementwise, so they are emitted for any list of (parameter, gradient) pairs: one pair per
// parameter, or one pair of flat vectors holding every parameter (what src/train/step.ts does to keep the
// optimizer at a dozen nodes whatever the parameter count).
import { InputError } from '../errors.js';
import { type Emitter, type Graph, type Value, tensorType } from '../ir/index.js';
import type { HostTensor } from '../runtime/index.js';
import type { OptimizerSpec } from './types.js';

/** Defaults of torch.optim.SGD / AdamW. */
export interface ResolvedSgd {
  kind: 'sgd';
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  dampening: number;
}
export interface ResolvedAdamW {
  kind: 'adamw';
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}
export type ResolvedOptimizer = ResolvedSgd | ResolvedAdamW;

export function resolveOptimizer(spec: OptimizerSpec): ResolvedOptimizer {
  const num = (
    v: number | undefined,
    dflt: number,
    name: string,
    lo: number,
    hi: number,
    hiOpen = false,
  ): number => {
    const x = v ?? dflt;
    if (!Number.isFinite(x) || x < lo || (hiOpen ? x >= hi : x > hi))
      throw new InputError(
        'optimizer',
        `Optimizer ${spec.kind}: ${name} must be in [${lo}, ${hi}${hiOpen ? ')' : ']'}: current value is ${v}`,
        {
          value: name,
        },
      );
    return x;
  };
  if (spec.kind === 'sgd') {
    const r: ResolvedSgd = {
      kind: 'sgd',
      momentum: num(spec.momentum, 0, 'momentum', 0, Infinity),
      nesterov: spec.nesterov ?? false,
      weightDecay: num(spec.weightDecay, 0, 'weightDecay', 0, Infinity),
      dampening: num(spec.dampening, 0, 'dampening', 0, 1),
    };
    if (r.nesterov && (r.momentum <= 0 || r.dampening !== 0))
      throw new InputError(
        'optimizer',
        'Nesterov momentum requires a momentum > 0 and zero dampening (as in torch.optim.SGD)',
        { value: 'nesterov' },
      );
    return r;
  }
  if (spec.kind === 'adamw')
    return {
      kind: 'adamw',
      beta1: num(spec.beta1, 0.9, 'beta1', 0, 1, true),
      beta2: num(spec.beta2, 0.999, 'beta2', 0, 1, true),
      eps: num(spec.eps, 1e-8, 'eps', 0, Infinity),
      weightDecay: num(spec.weightDecay, 0.01, 'weightDecay', 0, Infinity),
    };
  throw new InputError(
    'optimizer',
    `Unknown optimizer "${(spec as { kind: string }).kind}" (known: sgd, adamw)`,
    { value: 'optimizer' },
  );
}

/** Optimizer slots per parameter (names are `<param>.<slot>`); all start at zero. */
export function slotNames(o: ResolvedOptimizer): string[] {
  if (o.kind === 'sgd') return o.momentum !== 0 ? ['momentum'] : [];
  return ['adam_m', 'adam_v'];
}

/** Scalar float32 graph inputs of the update, by role. */
export function hyperNames(o: ResolvedOptimizer): string[] {
  if (o.kind === 'sgd') return o.momentum !== 0 && o.dampening !== 0 ? ['lr', 'sgd_damp'] : ['lr'];
  return o.weightDecay !== 0
    ? ['adamw_decay', 'adamw_step_size', 'adamw_bc2_sqrt']
    : ['adamw_step_size', 'adamw_bc2_sqrt'];
}

/**
 * Values of the hyper-parameter inputs for step `step` (1-based) at learning rate `lr`, computed in float64 as
 * PyTorch computes its Python scalars (the graph rounds them to float32 as torch's kernels do).
 */
export function hyperValues(o: ResolvedOptimizer, lr: number, step: number): Record<string, number> {
  if (!Number.isFinite(lr) || lr < 0)
    throw new InputError('lr', `The learning rate must be ≥ 0: current value is ${lr}`, { value: 'lr' });
  if (o.kind === 'sgd') {
    const r: Record<string, number> = { lr };
    // torch: buf = d_p on the first step, buf·momentum + (1 − dampening)·d_p afterwards (buf starts at 0 here)
    if (o.momentum !== 0 && o.dampening !== 0) r.sgd_damp = step <= 1 ? 1 : 1 - o.dampening;
    return r;
  }
  const bc1 = 1 - o.beta1 ** step;
  const bc2 = 1 - o.beta2 ** step;
  const r: Record<string, number> = { adamw_step_size: lr / bc1, adamw_bc2_sqrt: Math.sqrt(bc2) };
  if (o.weightDecay !== 0) r.adamw_decay = 1 - lr * o.weightDecay;
  return r;
}

/** Host tensors for `hyperValues` (scalar float32), keyed by the graph input names in `names`. */
export function hyperFeeds(
  o: ResolvedOptimizer,
  lr: number,
  step: number,
  names: Record<string, string>,
): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [k, v] of Object.entries(hyperValues(o, lr, step)))
    out[names[k] ?? k] = { dtype: 'float32', dims: [], data: new Float32Array([v]) };
  return out;
}

/** Add the hyper-parameter inputs to `g` (scalar float32); returns the values by role. */
export function addHyperInputs(g: Graph, o: ResolvedOptimizer): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const n of hyperNames(o)) out[n] = g.addInput(n, tensorType('float32', []));
  return out;
}

export interface UpdateOut {
  param: Value;
  /** Next values of the slots, by slot name. */
  slots: Record<string, Value>;
}

/**
 * Emit the update of one (parameter, gradient) pair. `slots` holds the current slot values by `slotNames`;
 * `hyper` the inputs made by `addHyperInputs`.
 */
export function emitUpdate(
  e: Emitter,
  o: ResolvedOptimizer,
  hyper: Record<string, Value>,
  p: Value,
  g: Value,
  slots: Record<string, Value>,
): UpdateOut {
  if (o.kind === 'sgd') {
    // torch.optim.SGD: d = g + wd·p; buf = momentum·buf + (1 − dampening)·d; d = nesterov ? d + momentum·buf : buf; p −= lr·d
    let d = g;
    if (o.weightDecay !== 0) d = e.add(d, e.mul(p, e.scalar(o.weightDecay)));
    const next: Record<string, Value> = {};
    if (o.momentum !== 0) {
      const buf = slots.momentum!;
      const scaled = hyper.sgd_damp ? e.mul(d, hyper.sgd_damp) : d;
      const b = e.add(e.mul(buf, e.scalar(o.momentum)), scaled);
      next.momentum = b;
      d = o.nesterov ? e.add(d, e.mul(b, e.scalar(o.momentum))) : b;
    }
    return { param: e.sub(p, e.mul(d, hyper.lr!)), slots: next };
  }
  // torch.optim.AdamW: p ·= 1 − lr·wd; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
  // p −= lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps)
  const p1 = hyper.adamw_decay ? e.mul(p, hyper.adamw_decay) : p;
  const m = e.add(e.mul(slots.adam_m!, e.scalar(o.beta1)), e.mul(g, e.scalar(1 - o.beta1)));
  const v = e.add(e.mul(slots.adam_v!, e.scalar(o.beta2)), e.mul(e.mul(g, g), e.scalar(1 - o.beta2)));
  const denom = e.add(e.div(e.op('Sqrt', [v]), hyper.adamw_bc2_sqrt!), e.scalar(o.eps));
  const param = e.sub(p1, e.mul(e.div(m, denom), hyper.adamw_step_size!));
  return { param, slots: { adam_m: m, adam_v: v } };
}

/**
 * torch.nn.utils.clip_grad_norm_: total = ‖(‖g_1‖, …, ‖g_k‖)‖₂; every gradient is multiplied by
 * min(maxNorm / (total + 1e-6), 1). Returns the scaled gradients and the norm before clipping.
 */
export function emitClipGradNorm(
  e: Emitter,
  grads: readonly Value[],
  maxNorm: number,
): { grads: Value[]; norm: Value } {
  if (!Number.isFinite(maxNorm) || maxNorm <= 0)
    throw new InputError('grad-clip', `The gradient clipping norm must be > 0: current value is ${maxNorm}`, {
      value: 'gradClipNorm',
    });
  // squared norms of each gradient (every axis, no axes given), summed: the square of torch's norm of norms
  const sq = grads.map((gv) => e.op('ReduceSumSquare', [gv], { keepdims: { type: 'int', value: 0 } }));
  const norm = e.op('Sqrt', [e.sum(sq)]);
  const coef = e.op('Min', [e.div(e.scalar(maxNorm), e.add(norm, e.scalar(1e-6))), e.scalar(1)]);
  return { grads: grads.map((gv) => e.mul(gv, coef)), norm };
}
