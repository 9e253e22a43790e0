import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../errors.js';
import { Emitter, Graph, Model, type Value, tensorType } from '../ir/index.js';
import { type HostTensor, Session } from '../runtime/index.js';
import { mulberry32 } from '../data/index.js';
import {
  addHyperInputs,
  emitClipGradNorm,
  emitUpdate,
  hyperFeeds,
  resolveOptimizer,
  slotNames,
} from './optim.js';
import type { OptimizerSpec } from './types.js';

const fr = Math.fround;
/** Uniform [0, 1) stream. */
const uniform = (seed: number) => {
  const u = mulberry32(seed);
  return () => u() / 2 ** 32;
};
const K = 257;

/** torch.optim.SGD / AdamW (single-tensor path), one float32 rounding per op like torch's CPU kernels. */
function torchStep(
  spec: OptimizerSpec,
  p: Float32Array,
  g: Float32Array,
  st: Record<string, Float32Array>,
  lr: number,
  step: number,
): void {
  const o = resolveOptimizer(spec);
  if (o.kind === 'sgd') {
    for (let i = 0; i < p.length; i++) {
      let d = g[i]!;
      if (o.weightDecay) d = fr(d + fr(o.weightDecay * p[i]!));
      if (o.momentum) {
        const buf = st.momentum!;
        buf[i] = step === 1 ? d : fr(fr(buf[i]! * fr(o.momentum)) + fr(d * fr(1 - o.dampening)));
        d = o.nesterov ? fr(d + fr(buf[i]! * fr(o.momentum))) : buf[i]!;
      }
      p[i] = fr(p[i]! - fr(d * fr(lr)));
    }
    return;
  }
  const bc1 = 1 - o.beta1 ** step;
  const bc2s = Math.sqrt(1 - o.beta2 ** step);
  const m = st.adam_m!;
  const v = st.adam_v!;
  for (let i = 0; i < p.length; i++) {
    const p1 = o.weightDecay ? fr(p[i]! * fr(1 - lr * o.weightDecay)) : p[i]!;
    m[i] = fr(fr(m[i]! * fr(o.beta1)) + fr(g[i]! * fr(1 - o.beta1)));
    v[i] = fr(fr(v[i]! * fr(o.beta2)) + fr(fr(g[i]! * g[i]!) * fr(1 - o.beta2)));
    const denom = fr(fr(fr(Math.sqrt(v[i]!)) / fr(bc2s)) + fr(o.eps));
    p[i] = fr(p1 - fr(fr(m[i]! / denom) * fr(lr / bc1)));
  }
}

async function updateSession(spec: OptimizerSpec) {
  const o = resolveOptimizer(spec);
  const g = new Graph('opt');
  const m = new Model(g);
  m.opsetImports.set('', 17);
  const p = g.addInput('p', tensorType('float32', [K]));
  const gr = g.addInput('g', tensorType('float32', [K]));
  const slots: Record<string, Value> = {};
  for (const s of slotNames(o)) slots[s] = g.addInput(s, tensorType('float32', [K]));
  const hyper = addHyperInputs(g, o);
  const e = new Emitter(g, { opset: 17 });
  const u = emitUpdate(e, o, hyper, p, gr, slots);
  g.outputs = [u.param, ...slotNames(o).map((s) => u.slots[s]!)];
  const session = await Session.create(m, { threads: 1 });
  const names = Object.fromEntries(Object.entries(hyper).map(([k, v]) => [k, v.name]));
  return { o, session, names, outNames: g.outputs.map((v) => v.name) };
}

const SPECS: OptimizerSpec[] = [
  { kind: 'sgd' },
  { kind: 'sgd', momentum: 0.9 },
  { kind: 'sgd', momentum: 0.9, dampening: 0.3, weightDecay: 1e-2 },
  { kind: 'sgd', momentum: 0.8, nesterov: true, weightDecay: 5e-4 },
  { kind: 'adamw' },
  { kind: 'adamw', beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0 },
];

test('SGD (momentum, dampening, Nesterov, weight decay) and AdamW updates equal torch.optim over 6 steps', async () => {
  for (const spec of SPECS) {
    const { o, session, names, outNames } = await updateSession(spec);
    const rnd = uniform(7);
    const p = Float32Array.from({ length: K }, () => rnd() * 2 - 1);
    const st: Record<string, Float32Array> = {};
    for (const s of slotNames(o)) st[s] = new Float32Array(K);
    let gp: Float32Array = p.slice();
    let gst: Record<string, Float32Array> = Object.fromEntries(
      Object.entries(st).map(([k, v]) => [k, v.slice()]),
    );
    for (let step = 1; step <= 6; step++) {
      const lr = 0.05 / step; // a schedule: lr changes every step, the graph does not
      const g = Float32Array.from({ length: K }, () => (rnd() * 2 - 1) * 3);
      const feeds: Record<string, HostTensor> = {
        p: { dtype: 'float32', dims: [K], data: gp },
        g: { dtype: 'float32', dims: [K], data: g },
        ...hyperFeeds(o, lr, step, names),
      };
      for (const s of slotNames(o)) feeds[s] = { dtype: 'float32', dims: [K], data: gst[s]! };
      const out = await session.run(feeds);
      gp = out[outNames[0]!]!.data as Float32Array;
      gst = Object.fromEntries(slotNames(o).map((s, i) => [s, out[outNames[i + 1]!]!.data as Float32Array]));
      torchStep(spec, p, g, st, lr, step);
      for (let i = 0; i < K; i++)
        assert.ok(
          Math.abs(gp[i]! - p[i]!) <= 2e-6 * Math.max(1, Math.abs(p[i]!)),
          `${JSON.stringify(spec)} step ${step} [${i}]: ${gp[i]} vs ${p[i]}`,
        );
    }
    await session.release();
  }
});

test('gradient clipping: clip_grad_norm_ semantics (norm before clipping, scale min(max/(norm+1e-6), 1))', async () => {
  const g = new Graph('clip');
  const m = new Model(g);
  m.opsetImports.set('', 17);
  const a = g.addInput('a', tensorType('float32', [3, 4]));
  const b = g.addInput('b', tensorType('float32', [5]));
  const e = new Emitter(g, { opset: 17 });
  for (const max of [0.5, 100]) {
    const c = emitClipGradNorm(e, [a, b], max);
    g.outputs = [c.norm, ...c.grads];
    const rnd = uniform(3);
    const A = Float32Array.from({ length: 12 }, () => rnd() * 2 - 1);
    const B = Float32Array.from({ length: 5 }, () => rnd() * 4 - 2);
    const s = await Session.create(m, { threads: 1 });
    const r = await s.run({
      a: { dtype: 'float32', dims: [3, 4], data: A },
      b: { dtype: 'float32', dims: [5], data: B },
    });
    await s.release();
    const norm = Math.hypot(...A, ...B);
    assert.ok(Math.abs(Number(r[g.outputs[0]!.name]!.data[0]) - norm) < 1e-5 * norm);
    const coef = Math.min(max / (norm + 1e-6), 1);
    const ga = r[g.outputs[1]!.name]!.data as Float32Array;
    const gb = r[g.outputs[2]!.name]!.data as Float32Array;
    const clipped = Math.hypot(...ga, ...gb);
    assert.ok(Math.abs(clipped - Math.min(max, norm)) < 1e-5 * max, `clipped norm ${clipped}`);
    for (let i = 0; i < 12; i++)
      assert.ok(Math.abs(ga[i]! - A[i]! * coef) < 1e-6, `a[${i}]: ${ga[i]} vs ${A[i]! * coef}`);
    for (let i = 0; i < 5; i++)
      assert.ok(Math.abs(gb[i]! - B[i]! * coef) < 1e-6, `b[${i}]: ${gb[i]} vs ${B[i]! * coef} (max ${max})`);
  }
});

test('bad optimizer settings are InputErrors', () => {
  assert.throws(() => resolveOptimizer({ kind: 'sgd', nesterov: true }), InputError);
  assert.throws(
    () => resolveOptimizer({ kind: 'sgd', momentum: 0.9, nesterov: true, dampening: 0.1 }),
    InputError,
  );
  assert.throws(() => resolveOptimizer({ kind: 'adamw', beta1: 1 }), InputError);
  assert.throws(() => resolveOptimizer({ kind: 'sgd', momentum: -1 }), InputError);
  assert.throws(() => hyperFeeds(resolveOptimizer({ kind: 'sgd' }), -1, 1, {}), InputError);
});
