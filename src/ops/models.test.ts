// Whole-model shape inference vs ONNX Runtime: for every torch-exported fixture and every model shipped in an npm
// package, expose each intermediate value whose inferred shape resolves under the sample inputs' dims as a graph
// output, run ORT, and require every exposed value's dtype and dims to equal the inferred ones.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type HostTensor } from '../runtime/index.js';
import { loadModel } from '../onnx/index.js';
import { allGraphs, Tensor, tensorType } from '../ir/index.js';
import { packageModels, randomFloat, readIo, torchFixtures } from '../testing/fixtures.js';
import { buildModel, MODEL_NAMES } from '../models/index.js';
import { checkModel, freezeInput, inlineKnownIfs } from '../testing/ops.js';

/** Share of main-graph node outputs that must be checked against ORT. */
const MIN_FRACTION = 0.9;

function summary(name: string, r: { total: number; checked: number; skipped: string[] }): string {
  return `${name}: ${r.checked}/${r.total} values checked against ORT${r.skipped.length ? `; unresolved: ${r.skipped.slice(0, 5).join(', ')}` : ''}`;
}

describe('whole-model inference vs ONNX Runtime', () => {
  for (const f of torchFixtures()) {
    test(`torch fixture ${f.name}`, async (t) => {
      const m = loadModel(f.path);
      const r = await checkModel(m, readIo(f.io).inputs);
      t.diagnostic(summary(f.name, r));
      assert.equal(r.report.conflicts.length, 0, r.report.conflicts.map((c) => c.message).join('\n'));
      assert.equal(r.report.problems.length, 0, r.report.problems.map((c) => c.message).join('\n'));
      assert.ok(r.checked >= MIN_FRACTION * r.total, summary(f.name, r));
    });
  }

  for (const name of MODEL_NAMES) {
    test(`SPEC model ${name} (our builder, symbolic batch)`, async (t) => {
      const m = buildModel(name, { seed: 0 });
      const r = await checkModel(m, { input: randomFloat([3, 1, 28, 28], 1) });
      t.diagnostic(summary(name, r));
      assert.equal(r.report.conflicts.length, 0, r.report.conflicts.map((c) => c.message).join('\n'));
      assert.equal(r.report.problems.length, 0, r.report.problems.map((c) => c.message).join('\n'));
      assert.ok(r.checked >= MIN_FRACTION * r.total, summary(name, r));
    });
  }

  for (const p of packageModels()) {
    const silero = p.name.startsWith('silero');
    test(`package model ${p.name}${silero ? ' (as shipped: main graph only)' : ''}`, async (t) => {
      const m = loadModel(p.path);
      const r = await checkModel(m, p.feeds(m));
      t.diagnostic(summary(p.name, r));
      assert.equal(r.report.conflicts.length, 0, r.report.conflicts.map((c) => c.message).join('\n'));
      assert.equal(r.report.problems.length, 0, r.report.problems.map((c) => c.message).join('\n'));
      if (!silero) assert.ok(r.checked >= MIN_FRACTION * r.total, summary(p.name, r));
      else assert.ok(r.checked >= 1, summary(p.name, r));
    });
    if (!silero) continue;
    test(`package model ${p.name} specialized (sr frozen, input dims fixed, known Ifs inlined)`, async (t) => {
      const m = loadModel(p.path);
      const feeds: Record<string, HostTensor> = { ...p.feeds(m) };
      const sr = feeds.sr!;
      freezeInput(m, 'sr', Tensor.from('int64', [...sr.dims], [Number((sr.data as BigInt64Array)[0])]));
      delete feeds.sr;
      for (const v of m.graph.inputs) {
        const fd = feeds[v.name];
        if (fd) v.type = tensorType(fd.dtype, [...fd.dims]);
      }
      const before = [...allGraphs(m.graph)].reduce((a, g) => a + g.nodes.length, 0);
      const inlined = inlineKnownIfs(m);
      const r = await checkModel(m, feeds);
      t.diagnostic(`${summary(p.name, r)} (${inlined} Ifs inlined; ${before} nodes in all graphs before)`);
      assert.ok(inlined > 0);
      assert.ok(r.checked >= MIN_FRACTION * r.total, summary(p.name, r));
      assert.ok(r.checked >= 100, summary(p.name, r));
    });
  }
});
