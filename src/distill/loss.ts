// The distillation loss, as this issue states it:
//     α · CE(student, labels) + (1 − α) · T² · KL(softmax(teacher/T) ‖ softmax(student/T))  [+ β · MSE(P·f_s, f_t)]
// It is the trainer's own distillation loss (src/train/losses.ts, LossSpec kind 'distill'), whose `alpha` weighs
// the KL term: α here is the weight of the CE term, so the trainer's alpha is 1 − α. With α = 0 the loss needs no
// labels (unlabeled deployment data: the student learns from the teacher alone).
//
// Feature distillation: β · MSE between a named teacher tensor f_t and P·f_s, where f_s is a named student tensor
// and P a learned 1×1 projection (a 1×1 Conv for [N, C, H, W] maps, a Linear for [N, D] and [N, T, D]) mapping
// the student's channels to the teacher's. The projection is added to the student for training only (its output
// feeds the loss, not the logits) and removed afterwards (`stripProjection`).
import { InputError, ShapeError } from '../errors.js';
import { A, Emitter, type Model, Tensor, type Value } from '../ir/index.js';
import { initValues } from '../ir/init.js';
import { inferShapes } from '../ops/infer.js';
import type { LossSpec } from '../train/types.js';

/** A tensor of the main graph by its name, or by the name of the node producing it (its first output). */
export function resolveTensor(model: Model, name: string): Value | undefined {
  const g = model.graph;
  const v = g.lookup(name);
  if (v && v.graph === g) return v;
  return g.node(name)?.outputs[0] ?? undefined;
}

export interface KdLoss {
  /** Softmax temperature T > 0 (default 4). */
  temperature?: number;
  /** Weight α of the cross-entropy term in [0, 1] (default 0.5); 1 − α weighs T²·KL. 0 without labels. */
  alpha?: number;
  labelSmoothing?: number;
  /** Feature distillation: the projected student tensor's name (see addProjection) and β. */
  feature?: { value: string; weight: number };
}

export const DEFAULT_TEMPERATURE = 4;
export const DEFAULT_ALPHA = 0.5;

/** The trainer's LossSpec for the distillation loss above. */
export function kdLossSpec(o: KdLoss = {}): LossSpec {
  const alpha = o.alpha ?? DEFAULT_ALPHA;
  if (!Number.isFinite(alpha) || alpha < 0 || alpha > 1)
    throw new InputError(
      'alpha',
      `Distillation alpha (the CE weight) must be in [0, 1]: current value is ${alpha}`,
      {
        value: 'alpha',
      },
    );
  return {
    kind: 'distill',
    temperature: o.temperature ?? DEFAULT_TEMPERATURE,
    alpha: 1 - alpha,
    ...(o.labelSmoothing ? { labelSmoothing: o.labelSmoothing } : {}),
    ...(o.feature ? { feature: o.feature } : {}),
  };
}

export interface Projection {
  /** Name of the projected student tensor (what the loss compares with the teacher's). */
  value: string;
  /** The projection's parameters. */
  params: string[];
}

/**
 * Add a learned projection from the student tensor `studentTensor` to the teacher's feature shape (one row:
 * `teacherRow`) to `student` (changed in place). Spatial dims (or tokens) must agree; channels may differ.
 */
export function addProjection(
  student: Model,
  studentTensor: string,
  teacherRow: readonly number[],
  seed = 0,
): Projection {
  inferShapes(student);
  const g = student.graph;
  const v = resolveTensor(student, studentTensor);
  if (!v)
    throw new InputError(
      'student-feature',
      `The student has no tensor or node "${studentTensor}" in its main graph`,
      {
        value: studentTensor,
      },
    );
  const s = v.shape;
  const bad = (why: string) =>
    new ShapeError(
      'feature-shape',
      `Feature distillation: student tensor "${studentTensor}" [${s ? s.map((d) => d ?? '?').join(', ') : '?'}] vs teacher rows [${teacherRow.join(', ')}]: ${why}`,
      { value: studentTensor },
    );
  if (!s || v.dtype !== 'float32' || s.slice(1).some((d) => typeof d !== 'number'))
    throw bad('the student tensor needs a float32 type with static dims after the batch');
  const row = s.slice(1) as number[];
  if (row.length !== teacherRow.length) throw bad('ranks differ');
  const e = new Emitter(g, { opset: student.opset('') ?? 17, prefix: 'kd_proj' });
  const name = 'kd_proj.weight'; // addInitializer makes it unique
  let wv: Value;
  let out;
  if (row.length === 3) {
    const [cs, h, w] = row as [number, number, number];
    const [ct, ht, wt] = teacherRow as [number, number, number];
    if (h !== ht || w !== wt) throw bad('spatial dims differ (a 1×1 projection maps channels only)');
    const dims = [ct, cs, 1, 1];
    wv = g.addInitializer(
      name,
      Tensor.from('float32', dims, initValues(dims, 'kaiming-uniform', { seed, name }), name),
    );
    out = e.op('Conv', [v, wv], { kernel_shape: A.ints([1, 1]) });
  } else if (row.length === 1 || row.length === 2) {
    const ds = row[row.length - 1]!;
    const dt = teacherRow[teacherRow.length - 1]!;
    if (row.length === 2 && row[0] !== teacherRow[0]) throw bad('token counts differ');
    const dims = [ds, dt];
    wv = g.addInitializer(
      name,
      Tensor.from(
        'float32',
        dims,
        initValues(dims, 'kaiming-uniform', { seed, name, fanIn: ds, fanOut: dt }),
        name,
      ),
    );
    out = e.op('MatMul', [v, wv]);
  } else throw bad('features must be [N, D], [N, T, D] or [N, C, H, W]');
  inferShapes(student);
  return { value: out.name, params: [wv.name] };
}

/** Remove the projection (and anything else that no output reads) from a trained student. */
export function stripProjection(model: Model): Model {
  while (model.graph.removeUnused() > 0);
  return model;
}
