// The quantizers as passes: each returns the quantizer's own model (its opset imports cover every domain its nodes
// use, with no graph swapped into a clone), leaves its input as it was, and reports kept nodes as structured notes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allGraphs } from '../../ir/index.js';
import { encodeModel } from '../../onnx/index.js';
import { calibrationBatches, fixture, prepared } from '../../testing/quantize.js';
import { runPasses } from '../manager.js';
import { dynamicQuantPass } from './dynamic.js';
import { fp16Pass } from './fp16.js';
import { int4QuantPass } from './int4.js';
import { staticQuantPass } from './static.js';

test('quantizer passes: the result imports every domain it uses; the input is untouched; kept nodes are findings', async () => {
  const m = await prepared(fixture('builder/mlp').model);
  const bytes = encodeModel(m);
  const calibration = calibrationBatches(m, 2, 8);
  const first = m.graph.nodes.find((n) => n.opType === 'Gemm' || n.opType === 'MatMul')!;
  for (const [pass, options] of [
    [staticQuantPass, { calibration, exclude: [first.name] }],
    [dynamicQuantPass, { exclude: [first.name] }],
    [int4QuantPass, { exclude: [first.name] }],
    [fp16Pass, {}],
  ] as const) {
    const r = await runPasses(m, [{ pass, options }], { maxIterations: 1 });
    assert.ok(r.changed, pass.name);
    const domains = new Set<string>();
    for (const g of allGraphs(r.model.graph)) for (const n of g.nodes) domains.add(n.domain ?? '');
    for (const d of domains)
      assert.ok(r.model.opsetImports.has(d), `${pass.name}: domain "${d}" used but not imported`);
    assert.deepEqual(encodeModel(m), bytes, `${pass.name} changed its input`);
    if (pass !== fp16Pass) {
      const kept = r.passes[0]!.findings.filter((f) => f.kind === 'kept');
      assert.ok(
        kept.some((f) => f.node === first.name && f.rule === pass.name && f.reason),
        `${pass.name}: ${JSON.stringify(r.passes[0]!.findings)}`,
      );
    }
  }
});
