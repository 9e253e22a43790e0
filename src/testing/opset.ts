// Test helpers for the opset converter (src/passes/opset): one-op models at a source opset, and the check every
// conversion rule test makes (ORT outputs before/after equal, no opset problem on either side, the rule applied).
import assert from 'node:assert/strict';
import type { DType, Model, Value } from '../ir/index.js';
import { opsetProblems } from '../onnx/index.js';
import { compareModels, randomInputs } from '../passes/check.js';
import { convertOpset, irVersionFor } from '../passes/opset/convert.js';
import type { HostTensor } from '../runtime/index.js';
import { hand } from './passes.js';

/** One-op model at `opset`: `build` wires the node given the input; the returned values become graph outputs. */
export function oneOp(
  opset: number,
  shape: number[],
  build: (h: ReturnType<typeof hand>, x: Value) => Value[],
  dtype: DType = 'float32',
): Model {
  const h = hand(opset);
  h.m.irVersion = irVersionFor(opset);
  const x = h.input('x', shape, dtype);
  build(h, x).forEach((v, i) => h.output(v, `y${i}`));
  return h.m;
}

/**
 * Convert `m` to every target: before/after outputs equal in ORT within `tol`, no opset problem on either side,
 * and (unless `expectRule` is null) a rewrite whose name starts with `expectRule` counted.
 */
export async function checkConversion(
  m: Model,
  targets: number[],
  expectRule: string | null,
  tol = 1e-6,
  feeds: Record<string, HostTensor> = randomInputs(m, { seed: 3 }),
): Promise<void> {
  assert.deepEqual(opsetProblems(m), [], 'the source model is valid at its opset');
  for (const to of targets) {
    const r = convertOpset(m, to);
    assert.equal(r.model.opset(''), to);
    assert.deepEqual(opsetProblems(r.model), [], `valid at opset ${to}`);
    assert.ok(
      expectRule === null || Object.keys(r.counts).some((k) => k.startsWith(expectRule)),
      `rule ${expectRule} applied converting to ${to}: ${JSON.stringify(r.counts)}`,
    );
    const c = await compareModels(m, r.model, feeds);
    assert.ok(c.maxAbsDiff <= tol, `opset ${m.opset('')} → ${to}: max |diff| ${c.maxAbsDiff}`);
  }
}
