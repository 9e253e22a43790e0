// The stage contract: needs checked before a stage runs, stages chained with their reports, the context's seeded
// calibration sample and validation split, evaluations cached per model, and the built-in stages' structured
// reports (numbers checked in ORT).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  fromDataset,
  loadDataset,
  sampleFeeds,
  splitValidation,
  subset,
  type DataSource,
} from '../data/index.js';
import { InputError } from '../errors.js';
import { buildModel } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { runModel } from '../runtime/index.js';
import { createContext, runStage, runStages } from './context.js';
import { checkContextGates, measureModel } from './measure.js';
import { optimizeStage } from './optimize.js';
import { quantizeStage } from './quantize.js';
import type { Stage } from './types.js';

const mlp = () => buildModel('mlp', { seed: 2 });
const test1k = () => subset(loadDataset('fashion-mnist', 'test'), 1000, 1);

test('runStage checks needs first; runStages chains models and keeps the reports in order', async () => {
  const ctx = createContext();
  const needy: Stage = {
    name: 'needy',
    needs: ['train', 'teacher'],
    run: async () => assert.fail('must not run'),
  };
  await assert.rejects(
    runStage(needy, mlp(), ctx),
    (e: unknown) =>
      e instanceof InputError &&
      /stage needy needs labelled training data and a teacher model/.test(e.message),
  );
  const seen: string[] = [];
  const tag = (name: string): Stage<{ n: number }> => ({
    name,
    needs: [],
    async run(m) {
      seen.push(`${name}:${m.graph.nodes.length}`);
      const out = m.clone();
      out.graph.name = name;
      return {
        model: out,
        report: { stage: name, seconds: 0, figures: {}, notes: [], gates: [], detail: { n: seen.length } },
      };
    },
  });
  const r = await runStages([tag('a'), tag('b')], mlp(), ctx);
  assert.equal(r.model.graph.name, 'b');
  assert.deepEqual(
    r.reports.map((x) => [x.stage, (x.detail as { n: number }).n]),
    [
      ['a', 1],
      ['b', 2],
    ],
  );
});

test('context: the calibration sample is seeded, sized and drawn once; the validation split is the seeded one', async () => {
  const ds = test1k();
  const src = (): DataSource => fromDataset(ds, { model: mlp(), name: 'part' });
  const a = createContext({ data: { train: src() }, seed: 5, calibrationSamples: 100 });
  const fa = await a.calibration();
  assert.equal(await a.calibration(), fa, 'drawn once');
  const want = await sampleFeeds(src(), 100, 5);
  assert.equal(fa.length, want.length);
  assert.deepEqual(
    Array.from(fa.flatMap((f) => Array.from(f.input!.data as Float32Array))),
    Array.from(want.flatMap((f) => Array.from(f.input!.data as Float32Array))),
  );
  const b = createContext({ data: { calibration: src() }, seed: 6, calibrationSamples: 100 });
  assert.notDeepEqual(
    Array.from((await b.calibration())[0]!.input!.data as Float32Array),
    Array.from(fa[0]!.input!.data as Float32Array),
  );
  // training rows: 10 % held out below 50,000 rows, exactly splitValidation's rows
  const rows = await a.trainingRows();
  const s = splitValidation(ds, 100, 5);
  assert.equal(rows.train.n, 900);
  assert.equal(rows.val!.n, 100);
  assert.deepEqual(Array.from(rows.val!.y), Array.from(s.val!.y));
  assert.deepEqual(Array.from(rows.train.x.subarray(0, 784 * 3)), Array.from(s.train.x.subarray(0, 784 * 3)));
  await a.close();
  await b.close();
  await assert.rejects(createContext().trainingRows(), /no train data was given/);
});

test('context: evaluation on the eval data, once per model object', async () => {
  const m = mlp();
  const ctx = createContext({ data: { eval: fromDataset(test1k(), { model: m, name: 'eval' }) } });
  const r = await ctx.evaluate(m);
  assert.equal(r.n, 1000);
  assert.equal(ctx.evaluate(m), ctx.evaluate(m));
  assert.equal(await ctx.score(m), r.accuracy);
  await ctx.close();
});

test('quantize stage (dynamic): structured report, kernels ORT runs, outputs close to the float model', async () => {
  const m = mlp();
  const bytes = encodeModel(m);
  const first = m.graph.nodes.find((n) => n.opType === 'Gemm')!.name;
  const r = await runStage(quantizeStage({ mode: 'dynamic', exclude: [first] }), m, createContext());
  assert.deepEqual(encodeModel(m), bytes, 'input left as it was');
  const d = r.report.detail;
  assert.equal(d.mode, 'dynamic');
  assert.equal(d.nodes.length, 2);
  assert.equal(d.kernels.ops['com.microsoft:DynamicQuantizeMatMul'], 2, JSON.stringify(d.kernels));
  assert.equal(r.report.figures.quantizedNodes, d.nodes.length);
  for (const n of r.report.notes) assert.ok(['info', 'kept', 'rewrite'].includes(n.kind) && n.text);
  const kept = r.report.notes.filter((n) => n.kind === 'kept');
  assert.equal(kept.length, d.skipped.length);
  assert.ok(
    kept.some((k) => k.node === first),
    JSON.stringify(kept),
  );
  for (const k of kept) assert.ok(k.node && k.reason && d.skipped.some((s) => s.node === k.node));
  const x = {
    input: { dtype: 'float32' as const, dims: [4, 1, 28, 28], data: new Float32Array(4 * 784).fill(0.3) },
  };
  const [a, b] = [await runModel(m, x), await runModel(r.model, x)];
  const ya = a.logits!.data as Float32Array;
  const yb = b.logits!.data as Float32Array;
  let diff = 0;
  for (let i = 0; i < ya.length; i++) diff = Math.max(diff, Math.abs(ya[i]! - yb[i]!));
  assert.ok(diff < 0.05 * Math.max(...Array.from(ya, Math.abs)), `max diff ${diff}`);
});

test('optimize stage: kept/rewrite notes from the rules, the output gate verdict with its figure', async () => {
  const r = await runStage(optimizeStage(), buildModel('cnn-s', { seed: 1 }), createContext());
  assert.equal(r.report.gates.length, 1);
  const g = r.report.gates[0]!;
  assert.equal(g.name, 'max-abs-diff');
  assert.equal(g.passed, true);
  assert.ok(g.value! <= 1e-4 && g.value === r.report.figures.maxAbsDiff);
  const rewrites = r.report.notes.filter((n) => n.kind === 'rewrite');
  assert.ok(
    rewrites.some((n) => n.rule === 'fold-bn-into-conv' && n.node),
    JSON.stringify(r.report.notes),
  );
  assert.equal(
    rewrites.filter((n) => n.rule === 'fold-bn-into-conv').length,
    r.report.detail.passes.find((p) => p.name === 'fold-batchnorm')!.counts['fold-bn-into-conv'],
  );
});

test('measure and gate: bytes, peak memory, accuracy and recall on the eval data, latency; a recall gate blocks', async () => {
  const m = mlp();
  const ds = test1k();
  const ctx = createContext({
    data: { eval: fromDataset(ds, { model: m, name: 'eval' }) },
    gates: { maxDrop: 5, minRecall: { '0': 0.99 } },
  });
  const q = (await runStage(quantizeStage({ mode: 'dynamic' }), m, ctx)).model;
  const f = await measureModel(q, ctx, { latency: { batch: 4, runs: 5 } });
  assert.equal(f.bytes, encodeModel(q).byteLength);
  assert.ok(f.peakBytes! > 0 && f.latencyMs! > 0);
  const e = await ctx.evaluate(q);
  assert.equal(f.accuracy, e.accuracy);
  assert.deepEqual(
    f.recall,
    e.perClass.map((c) => c.recall),
  );
  const g = await checkContextGates(q, ctx, { baseline: m });
  const drop = g.results.find((r) => r.name === 'max-drop')!;
  assert.ok(Math.abs(drop.value! - (g.baseline!.accuracy! - g.candidate.accuracy!) * 100) < 1e-9);
  // an untrained mlp cannot recall 99 % of class 0: the per-class gate fails with its figure
  const rec = g.results.find((r) => r.name === 'min-recall:0')!;
  assert.equal(rec.passed, rec.value! >= 0.99);
  assert.equal(rec.value, f.recall![0]);
  await ctx.close();
});
