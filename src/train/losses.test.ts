import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../errors.js';
import { Graph, Model, type Value, tensorType } from '../ir/index.js';
import { buildGradients } from '../autodiff/grad.js';
import { inferShapes } from '../ops/infer.js';
import { type HostTensor, runModel } from '../runtime/index.js';
import { addLoss } from './losses.js';
import { type FxTensor, assertRel, maxAbsDiff, readFixture } from '../testing/train.js';
import type { LossSpec } from './types.js';

interface LossCase {
  name: string;
  loss: string;
  value: number;
  logits: FxTensor;
  grad_logits: FxTensor;
  targets?: number[];
  label_smoothing?: number;
  weight?: FxTensor;
  temperature?: number;
  teacher_logits?: FxTensor;
  target?: FxTensor;
}
const fx = readFixture<{ cases: LossCase[] }>('losses.json');

/** A model whose input is the logits and whose outputs are the loss (and d loss / d logits when `grad`). */
function lossModel(
  spec: LossSpec,
  n: number,
  c: number,
  grad: boolean,
): { model: Model; names: Record<string, string> } {
  const g = new Graph('loss');
  const m = new Model(g);
  m.opsetImports.set('', 17);
  const x = g.addInput('x', tensorType('float32', [n, c]));
  const lg = addLoss(m, x, spec);
  inferShapes(m);
  const outs: Value[] = [lg.loss];
  if (grad) outs.push(buildGradients(m, lg.loss, [x]).grads.get(x)!);
  g.outputs = outs;
  g.toposort();
  g.removeUnused();
  const names: Record<string, string> = { loss: lg.loss.name };
  if (grad) names.grad = outs[1]!.name;
  for (const [k, v] of Object.entries(lg.inputs)) if (v) names[k] = v.name;
  return { model: m, names };
}

function specOf(c: LossCase): LossSpec {
  switch (c.loss) {
    case 'cross_entropy':
      return {
        kind: 'cross-entropy',
        labelSmoothing: c.label_smoothing,
        classWeights: c.weight ? c.weight.data.map((v) => Math.fround(v)) : undefined,
      };
    case 'kl_distillation':
      return { kind: 'distill', temperature: c.temperature!, alpha: 1 };
    case 'mse':
      return { kind: 'mse' };
  }
  throw new Error(`unknown case ${c.loss}`);
}

const t32 = (t: FxTensor): HostTensor => ({
  dtype: 'float32',
  dims: t.shape,
  data: Float32Array.from(t.data),
});

async function runCase(c: LossCase, grad: boolean): Promise<{ loss: number; grad?: Float32Array }> {
  const [n, k] = c.logits.shape as [number, number];
  const { model, names } = lossModel(specOf(c), n, k, grad);
  const feeds: Record<string, HostTensor> = { x: t32(c.logits) };
  if (names.labels)
    feeds[names.labels] = { dtype: 'int64', dims: [n], data: BigInt64Array.from(c.targets!, BigInt) };
  if (names.teacher) feeds[names.teacher] = t32(c.teacher_logits!);
  if (names.target) feeds[names.target] = t32(c.target!);
  const r = await runModel(model, feeds, { threads: 1 });
  return {
    loss: Number(r[names.loss]!.data[0]),
    grad: grad ? (r[names.grad!]!.data as Float32Array) : undefined,
  };
}

test('loss values equal PyTorch (losses.json: CE, label smoothing, class weights, KD T=4, MSE) to 1e-5', async () => {
  assert.equal(fx.cases.length, 5);
  for (const c of fx.cases) {
    const r = await runCase(c, false);
    assertRel(r.loss, c.value, 1e-5, c.name);
  }
});

test('d loss / d logits equal PyTorch (losses.json) to 1e-5 (autodiff through the loss graph)', async () => {
  for (const c of fx.cases) {
    const r = await runCase(c, true);
    assertRel(r.loss, c.value, 1e-5, c.name);
    const d = maxAbsDiff(r.grad!, c.grad_logits.data);
    assert.ok(d <= 1e-5, `${c.name}: gradient differs by ${d}`);
  }
});

/** float64 transcription of aten's cross_entropy with weight and label_smoothing (LossNLL.cpp), reduction mean. */
function torchCE(x: number[][], y: number[], w: number[] | undefined, eps: number): number {
  const C = x[0]!.length;
  const wt = w ?? new Array<number>(C).fill(1);
  let nll = 0;
  let smooth = 0;
  let denom = 0;
  for (let i = 0; i < x.length; i++) {
    const mx = Math.max(...x[i]!);
    const lse = mx + Math.log(x[i]!.reduce((a, v) => a + Math.exp(v - mx), 0));
    const logp = x[i]!.map((v) => v - lse);
    nll += -wt[y[i]!]! * logp[y[i]!]!;
    denom += wt[y[i]!]!;
    smooth += -logp.reduce((a, v, c) => a + v * wt[c]!, 0);
  }
  // (1 − ε)·nll_loss(weighted mean) + (ε/C)·Σ smooth / Σ w[y]
  return (1 - eps) * (nll / denom) + (eps / C) * (smooth / denom);
}

test('class weights combined with label smoothing: the weighted-mean semantics of F.cross_entropy', async () => {
  const c = fx.cases.find((k) => k.name === 'ce_class_weights')!;
  const [n, k] = c.logits.shape as [number, number];
  const rows = Array.from({ length: n }, (_, i) => c.logits.data.slice(i * k, (i + 1) * k).map(Math.fround));
  const w = c.weight!.data.map(Math.fround);
  for (const eps of [0, 0.1, 0.3]) {
    const spec: LossSpec = { kind: 'cross-entropy', labelSmoothing: eps, classWeights: w };
    const { model, names } = lossModel(spec, n, k, false);
    const r = await runModel(
      model,
      {
        x: t32(c.logits),
        [names.labels!]: { dtype: 'int64', dims: [n], data: BigInt64Array.from(c.targets!, BigInt) },
      },
      { threads: 1 },
    );
    assertRel(Number(r[names.loss]!.data[0]), torchCE(rows, c.targets!, w, eps), 2e-6, `eps ${eps}`);
  }
  // ε = 0.1 without weights is the fixture's own case
  const ls = fx.cases.find((q) => q.name === 'ce_label_smoothing_0.1')!;
  assertRel(torchCE(rows, ls.targets!, undefined, 0.1), ls.value, 1e-6, 'reference transcription');
});

test('distillation mixes alpha·KD + (1 − alpha)·CE, and any batch size runs (symbolic N)', async () => {
  const kd = fx.cases.find((q) => q.name === 'kd_T4')!;
  const ce = fx.cases.find((q) => q.name === 'ce_mean')!;
  assert.deepEqual(kd.logits.data, ce.logits.data, 'the fixture cases share logits');
  const [n, k] = kd.logits.shape as [number, number];
  const g = new Graph('loss');
  const m = new Model(g);
  m.opsetImports.set('', 17);
  const x = g.addInput('x', tensorType('float32', ['N', k]));
  const lg = addLoss(m, x, { kind: 'distill', temperature: 4, alpha: 0.3 });
  g.outputs = [lg.loss];
  inferShapes(m);
  const r = await runModel(
    m,
    {
      x: t32(kd.logits),
      [lg.inputs.teacher!.name]: t32(kd.teacher_logits!),
      [lg.inputs.labels!.name]: { dtype: 'int64', dims: [n], data: BigInt64Array.from(ce.targets!, BigInt) },
    },
    { threads: 1 },
  );
  assertRel(Number(r[lg.loss.name]!.data[0]), 0.3 * kd.value + 0.7 * ce.value, 1e-5, 'mixed loss');
});

test('bad loss options are InputErrors', () => {
  const g = new Graph('loss');
  const m = new Model(g);
  m.opsetImports.set('', 17);
  const x = g.addInput('x', tensorType('float32', ['N', 10]));
  assert.throws(() => addLoss(m, x, { kind: 'cross-entropy', labelSmoothing: 1 }), InputError);
  assert.throws(() => addLoss(m, x, { kind: 'cross-entropy', classWeights: [1, 2] }), InputError);
  assert.throws(() => addLoss(m, x, { kind: 'distill', temperature: 0, alpha: 0.5 }), InputError);
  assert.throws(() => addLoss(m, x, { kind: 'distill', temperature: 2, alpha: 1.5 }), InputError);
});
