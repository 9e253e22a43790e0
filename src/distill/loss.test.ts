import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGradients } from '../autodiff/grad.js';
import { InputError, ShapeError } from '../errors.js';
import { Graph, Model, type Value, tensorType } from '../ir/index.js';
import { inferShapes } from '../ops/infer.js';
import { type HostTensor, runModel } from '../runtime/index.js';
import { addLoss } from '../train/losses.js';
import { addProjection, kdLossSpec, stripProjection } from './loss.js';

const N = 3;
const C = 5;
// fixed values (no RNG): logits of very different scales, so both softmax temperatures matter
const S = [0.3, -1.2, 2.5, 0.0, 0.7, 1.1, 0.4, -0.3, -2.0, 0.9, -0.5, 3.0, 1.5, 0.2, -1.0];
const T_ = [1.0, -0.5, 4.0, 0.5, 0.0, 2.5, 1.0, 0.0, -3.0, 0.5, 0.0, 2.0, 3.0, -1.0, -0.5];
const Y = [2, 0, 1];

const softmax = (row: number[], temp = 1): number[] => {
  const z = row.map((v) => v / temp);
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const rows = (v: number[]) => Array.from({ length: N }, (_, i) => v.slice(i * C, (i + 1) * C));

/** float64 transcription of the formula, and its gradient by hand (d/ds of each term). */
function hand(alpha: number, T: number, labels: boolean): { loss: number; grad: number[] } {
  let loss = 0;
  const grad: number[] = [];
  rows(S).forEach((s, i) => {
    const t = rows(T_)[i]!;
    const p = softmax(s);
    const pT = softmax(s, T);
    const qT = softmax(t, T);
    const kl = qT.reduce((a, q, c) => a + q * Math.log(q / pT[c]!), 0);
    const ce = labels ? -Math.log(p[Y[i]!]!) : 0;
    loss += (alpha * ce + (1 - alpha) * T * T * kl) / N;
    // dCE/ds = p − onehot; d(T²·KL)/ds = T·(pT − qT)
    for (let c = 0; c < C; c++)
      grad.push(
        ((labels ? alpha * (p[c]! - (c === Y[i] ? 1 : 0)) : 0) + (1 - alpha) * T * (pT[c]! - qT[c]!)) / N,
      );
  });
  return { loss, grad };
}

const f32 = (dims: number[], v: number[]): HostTensor => ({
  dtype: 'float32',
  dims,
  data: Float32Array.from(v),
});

async function run(alpha: number, T: number, labels: boolean) {
  const g = new Graph('kd');
  const m = new Model(g);
  m.opsetImports.set('', 17);
  const x = g.addInput('s', tensorType('float32', ['N', C]));
  const lg = addLoss(m, x, kdLossSpec({ temperature: T, alpha }));
  inferShapes(m);
  g.outputs = [lg.loss, buildGradients(m, lg.loss, [x]).grads.get(x)!];
  g.toposort();
  const feeds: Record<string, HostTensor> = { s: f32([N, C], S), [lg.inputs.teacher!.name]: f32([N, C], T_) };
  if (lg.inputs.labels)
    feeds[lg.inputs.labels.name] = { dtype: 'int64', dims: [N], data: BigInt64Array.from(Y, BigInt) };
  assert.equal(!!lg.inputs.labels, labels, 'labels are an input exactly when alpha > 0');
  const r = await runModel(m, feeds, { threads: 1 });
  return {
    loss: Number(r[g.outputs[0]!.name]!.data[0]),
    grad: Array.from(r[g.outputs[1]!.name]!.data as Float32Array),
  };
}

test('KD loss α·CE + (1−α)·T²·KL and d/d(student logits) equal a hand computation (α = 0.3, 0.5, 1; T = 1, 4)', async () => {
  for (const [alpha, T] of [
    [0.3, 4],
    [0.5, 4],
    [0.5, 1],
    [1, 2],
  ] as const) {
    const h = hand(alpha, T, true);
    const r = await run(alpha, T, true);
    assert.ok(
      Math.abs(r.loss - h.loss) <= 1e-5 * Math.max(1, h.loss),
      `α ${alpha} T ${T}: loss ${r.loss} vs ${h.loss}`,
    );
    for (let i = 0; i < h.grad.length; i++)
      assert.ok(
        Math.abs(r.grad[i]! - h.grad[i]!) <= 2e-6,
        `α ${alpha} T ${T}: grad[${i}] ${r.grad[i]} vs ${h.grad[i]}`,
      );
  }
  // the two terms really are weighted as the issue says: α = 1 is pure CE, α = 0 pure T²·KL
  const ce = hand(1, 4, true).loss;
  const kl = hand(0, 4, false).loss;
  assert.ok(Math.abs(hand(0.3, 4, true).loss - (0.3 * ce + 0.7 * kl)) < 1e-12);
  assert.ok(Math.abs(kl - ce) > 0.1, 'the terms differ, so a swapped α would fail');
});

test('unlabeled KD (α = 0): no labels input, the teacher alone drives the gradient', async () => {
  const h = hand(0, 4, false);
  const r = await run(0, 4, false);
  assert.ok(Math.abs(r.loss - h.loss) <= 1e-5 * Math.max(1, h.loss), `${r.loss} vs ${h.loss}`);
  for (let i = 0; i < h.grad.length; i++) assert.ok(Math.abs(r.grad[i]! - h.grad[i]!) <= 2e-6);
  assert.throws(() => kdLossSpec({ alpha: 1.2 }), InputError);
});

test('feature distillation: β·MSE(W·f_s, f_t) through a learned 1×1 projection, value and dL/dW by hand; stripped after', async () => {
  const [cs, ct, h, w] = [3, 2, 2, 2];
  const g = new Graph('kdf');
  const m = new Model(g);
  m.opsetImports.set('', 17);
  const s = g.addInput('s', tensorType('float32', ['N', C]));
  g.addInput('fs', tensorType('float32', [N, cs, h, w]));
  // a student whose logits do not depend on the feature (so the projection is all the feature term trains)
  const logits = g.addNode({ opType: 'Identity', inputs: [s], outputs: ['logits'], name: 'id' }).output(0);
  g.outputs = [logits];
  const proj = addProjection(m, 'fs', [ct, h, w], 7);
  const beta = 0.25;
  const lg = addLoss(
    m,
    logits,
    kdLossSpec({ temperature: 4, alpha: 0.5, feature: { value: proj.value, weight: beta } }),
  );
  inferShapes(m);
  const W = g.initializers.get(proj.params[0]!)!;
  const wv = W.const!.toNumbers();
  assert.deepEqual(W.const!.dims, [ct, cs, 1, 1]);
  const grads = buildGradients(m, lg.loss, [W as Value]).grads;
  g.outputs = [lg.loss, grads.get(W)!];
  g.toposort();
  const fsv = Array.from({ length: N * cs * h * w }, (_, i) => Math.sin(i * 1.7));
  const ftv = Array.from({ length: N * ct * h * w }, (_, i) => Math.cos(i * 0.9));
  const r = await runModel(
    m,
    {
      s: f32([N, C], S),
      fs: f32([N, cs, h, w], fsv),
      [lg.inputs.teacher!.name]: f32([N, C], T_),
      [lg.inputs.labels!.name]: { dtype: 'int64', dims: [N], data: BigInt64Array.from(Y, BigInt) },
      [lg.inputs.features!.name]: f32([N, ct, h, w], ftv),
    },
    { threads: 1 },
  );
  // by hand: P[n,o,p] = Σ_c W[o,c]·fs[n,c,p]; L_f = β·mean((P − ft)²); dL/dW[o,c] = 2β/M Σ_{n,p} (P − ft)·fs
  const M = N * ct * h * w;
  const hw = h * w;
  let lf = 0;
  const dW = new Array<number>(ct * cs).fill(0);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < ct; o++)
      for (let p = 0; p < hw; p++) {
        let P = 0;
        for (let c = 0; c < cs; c++) P += wv[o * cs + c]! * fsv[(n * cs + c) * hw + p]!;
        const d = P - ftv[(n * ct + o) * hw + p]!;
        lf += (beta * d * d) / M;
        for (let c = 0; c < cs; c++) dW[o * cs + c]! += ((2 * beta) / M) * d * fsv[(n * cs + c) * hw + p]!;
      }
  const want = hand(0.5, 4, true).loss + lf;
  const got = Number(r[g.outputs[0]!.name]!.data[0]);
  assert.ok(Math.abs(got - want) <= 1e-5 * want, `${got} vs ${want}`);
  const gw = r[g.outputs[1]!.name]!.data as Float32Array;
  for (let i = 0; i < dW.length; i++)
    assert.ok(Math.abs(gw[i]! - dW[i]!) <= 1e-6, `dW[${i}] ${gw[i]} vs ${dW[i]}`);

  // mismatched spatial dims are a ShapeError; after training the projection leaves the graph
  const m2 = new Model(new Graph('x'));
  m2.opsetImports.set('', 17);
  const f2 = m2.graph.addInput('f', tensorType('float32', ['N', 3, 4, 4]));
  const o2 = m2.graph.addNode({ opType: 'Relu', inputs: [f2], outputs: ['y'], name: 'r' }).output(0);
  m2.graph.outputs = [o2];
  assert.throws(() => addProjection(m2, 'f', [2, 2, 2]), ShapeError);
  assert.throws(() => addProjection(m2, 'nope', [2, 4, 4]), InputError);
  addProjection(m2, 'r', [2, 4, 4]); // a node name stands for its output
  assert.equal(m2.graph.nodes.length, 2);
  stripProjection(m2);
  assert.equal(m2.graph.nodes.length, 1);
  assert.equal(m2.graph.initializers.size, 0);
});
