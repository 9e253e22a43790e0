// The gradient rules' formulation choices (Conv weight/input gradient forms, MaxPool mask, NCHWc block) come in
// through the gradient context, chosen once by `selectGradForms`: no module state, so two builds with different
// choices never see each other's, and nothing has to be set and restored around a build.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { A, Emitter, Graph, Model, type Value, tensorType } from '../ir/index.js';
import { inferShapes } from '../ops/index.js';
import { NCHWC_DOMAIN } from '../ops/nn.js';
import type { GradForms } from '../ops/registry.js';
import { REPO_ROOT } from '../testing/fixtures.js';
import { buildGradients, selectGradForms } from './grad.js';

/** Conv(x [N, cin, 8, 8], w [cout, cin, 3, 3], pad 1) → ReduceSum, ready for autodiff. */
function convModel(cin: number, cout: number): { m: Model; loss: Value; x: Value; w: Value } {
  const g = new Graph('main');
  const m = new Model(g);
  m.opsetImports.set('', 17);
  const x = g.addInput('x', tensorType('float32', [2, cin, 8, 8]));
  const w = g.addInput('w', tensorType('float32', [cout, cin, 3, 3]));
  const e = new Emitter(g, { opset: 17 });
  const y = e.op('Conv', [x, w], { pads: A.ints([1, 1, 1, 1]) });
  const loss = e.op('ReduceSum', [y], { keepdims: A.int(0) });
  inferShapes(m);
  return { m, loss, x, w };
}

function inputGradOp(cin: number, cout: number, forms?: Partial<GradForms>): string {
  const { m, loss, x } = convModel(cin, cout);
  const { grads } = buildGradients(m, loss, [x], forms ? { forms: selectGradForms(forms) } : {});
  const p = grads.get(x)!.producer!;
  return p.domain === NCHWC_DOMAIN ? `nchwc.${p.opType}` : p.opType;
}

describe('gradient formulations through the context', () => {
  it('selectGradForms: defaults, overrides, frozen, refuses unknown choices', () => {
    assert.deepEqual(
      { ...selectGradForms() },
      { nchwcBlock: 0, convWeight: 'auto', convInput: 'auto', maxPoolMask: true, maxPoolOverlap: 'auto' },
    );
    const f = selectGradForms({ nchwcBlock: 16, convInput: 'conv-transpose' });
    assert.equal(f.nchwcBlock, 16);
    assert.equal(f.convInput, 'conv-transpose');
    assert.ok(Object.isFrozen(f));
    assert.throws(() => selectGradForms({ nchwcBlock: 3 }), /NCHWc block 3/);
    assert.throws(() => selectGradForms({ convWeight: 'im2col' as never }), /im2col/);
  });

  it('each build gets its own choice; a forced form does not leak into the next build', () => {
    // 6 → 4 channels, stride 1: 'auto' picks the flipped Conv
    assert.equal(inputGradOp(6, 4), 'Conv');
    assert.equal(inputGradOp(6, 4, { convInput: 'conv-transpose' }), 'ConvTranspose');
    assert.equal(inputGradOp(6, 4), 'Conv');
    assert.equal(inputGradOp(3, 4), 'ConvTranspose');
    assert.equal(inputGradOp(3, 4, { convInput: 'flipped-conv' }), 'Conv');
  });

  it('the NCHWc block of the build decides whether the input gradient runs on NCHWc kernels', () => {
    assert.equal(inputGradOp(8, 8), 'Conv');
    assert.equal(inputGradOp(8, 8, { nchwcBlock: 8 }), 'nchwc.ReorderOutput');
    assert.equal(inputGradOp(8, 8), 'Conv');
    assert.equal(inputGradOp(8, 12, { nchwcBlock: 8 }), 'ConvTranspose'); // 12 channels: not a multiple of 8
  });

  it('the weight-gradient form of the build is the one emitted', () => {
    const opsOf = (forms: Partial<GradForms>) => {
      const { m, loss, w } = convModel(8, 4);
      return buildGradients(m, loss, [w], { forms: selectGradForms(forms) }).emitted.map((n) => n.opType);
    };
    // 'batch-conv' is one Conv over the batch axis; 'offset-gemms' (auto at 8 channels) one Gemm per kernel offset
    assert.ok(opsOf({ convWeight: 'batch-conv' }).includes('Conv'));
    assert.equal(opsOf({ convWeight: 'offset-gemms' }).filter((o) => o === 'Gemm').length, 9);
    assert.equal(opsOf({}).filter((o) => o === 'Gemm').length, 9);
    assert.ok(!opsOf({ convWeight: 'cols-batched' }).includes('Gemm'));
  });

  it('no op module exports mutable state (rules read their choices from the context only)', async () => {
    const dir = join(REPO_ROOT, 'src', 'ops');
    const mutable: string[] = [];
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
      const mod = (await import(pathToFileURL(join(dir, f)).href)) as Record<string, unknown>;
      for (const [k, v] of Object.entries(mod))
        if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) mutable.push(`src/ops/${f}: ${k}`);
    }
    assert.deepEqual(mutable, []);
  });
});
