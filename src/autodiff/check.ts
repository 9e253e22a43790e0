// Gradient checking through ORT: the analytic gradient graph that autodiff emits vs central finite differences of
// the same forward graph, both run by ONNX Runtime. The loss is L = Σ_outputs Σ(y ⊙ R_y) with fixed random R, so
// every output element matters. For each value checked, directional derivatives along random directions d are
// compared: <∇L, d> vs (L(x + εd) − L(x − εd)) / 2ε.
import { InternalError } from '../errors.js';
import { Emitter, type Model, Tensor, type Value, cleanup, isFloat } from '../ir/index.js';
import { inferShapes } from '../ops/infer.js';
import { Session, type HostTensor } from '../runtime/index.js';
import type { GradForms } from '../ops/registry.js';
import { buildGradients, selectGradForms } from './grad.js';
import { prng } from '../util/random.js';

export interface GradCheckOptions {
  /** Concrete inputs of the forward model (float inputs may also be checked). */
  feeds: Record<string, HostTensor>;
  /** Names of graph inputs or initializers to differentiate with respect to (default: every float one). */
  wrt?: string[];
  /** Step (default 1e-3). */
  eps?: number;
  /** Random directions per value (default 3). */
  directions?: number;
  seed?: number;
  rtol?: number;
  atol?: number;
  /** Gradient formulations to check (default: `selectGradForms()`). */
  forms?: Partial<GradForms>;
}

export interface GradCheckRow {
  wrt: string;
  analytic: number;
  numeric: number;
  error: number;
  ok: boolean;
}

export interface GradCheckResult {
  rows: GradCheckRow[];
  ok: boolean;
  /** Largest |analytic − numeric| / (atol + rtol·max(|a|,|n|)); ≤ 1 passes. */
  worst: number;
  /** Number of backward nodes emitted. */
  backwardNodes: number;
}

export async function gradCheck(model: Model, opts: GradCheckOptions): Promise<GradCheckResult> {
  const eps = opts.eps ?? 1e-3;
  const rtol = opts.rtol ?? 2e-2;
  const atol = opts.atol ?? 1e-3;
  const r = prng(opts.seed ?? 1234);
  const m = model.clone();
  const g = m.graph;
  const feeds: Record<string, HostTensor> = { ...opts.feeds };

  // the values to check become graph inputs fed from `feeds` so they can be perturbed
  const wrtNames = opts.wrt ?? [
    ...g.inputs.filter((v) => v.dtype && isFloat(v.dtype) && !v.const).map((v) => v.name),
    ...[...g.initializers.values()].filter((v) => v.dtype && isFloat(v.dtype)).map((v) => v.name),
  ];
  const wrt: Value[] = [];
  for (const name of wrtNames) {
    const init = g.initializers.get(name);
    if (init) {
      const t = init.const!;
      g.initializers.delete(name);
      init.const = undefined;
      if (!g.inputs.includes(init)) g.inputs.push(init);
      feeds[name] = { dtype: t.dtype, dims: [...t.dims], data: t.toFloat32() };
      wrt.push(init);
    } else {
      const v = g.inputs.find((x) => x.name === name);
      if (!v) throw new InternalError('gradcheck', `gradCheck: no input or initializer "${name}"`);
      wrt.push(v);
    }
  }
  // concrete input shapes, then inference
  for (const v of g.inputs) {
    const f = feeds[v.name];
    if (f) v.type = { kind: 'tensor', dtype: f.dtype, shape: [...f.dims] };
  }
  inferShapes(m);

  // L = Σ_outputs ReduceSum(y * R_y)
  const e = new Emitter(g, { opset: m.opset('') ?? 17, prefix: 'gradcheck' });
  const terms: Value[] = [];
  for (const y of g.outputs) {
    if (!y.dtype || !isFloat(y.dtype)) continue;
    const shape = y.shape;
    if (!shape || !shape.every((d): d is number => typeof d === 'number'))
      throw new InternalError('gradcheck', `gradCheck: output "${y.name}" has no static shape`);
    const n = shape.reduce((a, b) => a * b, 1);
    const R = Tensor.from(
      'float32',
      shape,
      Float32Array.from({ length: n }, () => r() * 2 - 1),
    );
    terms.push(e.op('ReduceSum', [e.mul(y, e.constant(R, 'R'))], { keepdims: { type: 'int', value: 0 } })); // all axes
  }
  const loss = e.sum(terms);
  inferShapes(m); // types for the loss nodes too
  const lossOnly = m.clone();
  lossOnly.graph.outputs = [lossOnly.graph.lookup(loss.name)!];
  lossOnly.graph.removeUnused();

  const { grads, emitted } = buildGradients(m, loss, wrt, { forms: selectGradForms(opts.forms) });
  g.outputs = [loss, ...wrt.map((v) => grads.get(v)!)];
  cleanup(m);

  const both = await Session.create(m, { threads: 1, label: 'gradient graph' });
  const fwd = await Session.create(lossOnly, { threads: 1, label: 'loss graph' });
  try {
    const analytic = await both.run(feeds);
    const lossAt = async (f: Record<string, HostTensor>) => Number((await fwd.run(f))[loss.name]!.data[0]);
    const rows: GradCheckRow[] = [];
    for (let k = 0; k < wrt.length; k++) {
      const v = wrt[k]!;
      const base = feeds[v.name]!;
      const gv = analytic[g.outputs[k + 1]!.name]!.data as Float32Array;
      const x = base.data as Float32Array;
      for (let d = 0; d < (opts.directions ?? 3); d++) {
        const dir = Float32Array.from({ length: x.length }, () => r() * 2 - 1);
        let a = 0;
        for (let i = 0; i < x.length; i++) a += gv[i]! * dir[i]!;
        const plus = Float32Array.from(x, (xi, i) => xi + eps * dir[i]!);
        const minus = Float32Array.from(x, (xi, i) => xi - eps * dir[i]!);
        const lp = await lossAt({ ...feeds, [v.name]: { ...base, data: plus } });
        const lm = await lossAt({ ...feeds, [v.name]: { ...base, data: minus } });
        const num = (lp - lm) / (2 * eps);
        const err = Math.abs(a - num) / (atol + rtol * Math.max(Math.abs(a), Math.abs(num)));
        rows.push({ wrt: v.name, analytic: a, numeric: num, error: err, ok: err <= 1 && Number.isFinite(a) });
      }
    }
    const worst = Math.max(0, ...rows.map((x) => x.error));
    return { rows, ok: rows.every((x) => x.ok), worst, backwardNodes: emitted.length };
  } finally {
    await both.release();
    await fwd.release();
  }
}
