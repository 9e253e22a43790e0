import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.js';
import { countParameters } from '../ir/builder.js';
import type { Model } from '../ir/graph.js';
import { Tensor } from '../ir/tensor.js';
import { verifyModel } from '../ir/verify.js';
import { opsetProblems } from '../onnx/opsets.js';
import { runModel } from '../runtime/index.js';
import { initializerDigest } from '../testing/fixtures.js';
import { MODEL_NAMES, PARAMETER_COUNTS, buildModel } from './index.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'builder');

function sampleInput(batch: number): Float32Array {
  // deterministic pixel-like values in [0, 1)
  const x = new Float32Array(batch * 784);
  for (let i = 0; i < x.length; i++) x[i] = ((i * 7919) % 1000) / 1000;
  return x;
}

async function logits(
  model: Model,
  data: Float32Array,
  batch: number,
): Promise<{ dims: readonly number[]; data: Float32Array }> {
  const r = await runModel(
    model,
    { input: { dtype: 'float32', dims: [batch, 1, 28, 28], data } },
    { threads: 1 },
  );
  const out = r.logits!;
  return { dims: out.dims, data: out.data as Float32Array };
}

test('MODEL_NAMES lists the SPEC models; an unknown name is an InputError naming them', () => {
  assert.deepEqual([...MODEL_NAMES], ['mlp', 'cnn-s', 'vit-t']);
  assert.throws(
    () => buildModel('resnet'),
    (e: unknown) =>
      e instanceof InputError && /resnet/.test(e.message) && MODEL_NAMES.every((n) => e.message.includes(n)),
  );
});

for (const name of MODEL_NAMES) {
  test(`${name}: trainable parameters equal PyTorch's count`, () => {
    const m = buildModel(name);
    assert.equal(countParameters(m), PARAMETER_COUNTS[name]);
    assert.deepEqual(verifyModel(m), []);
  });

  test(`${name}: input [N,1,28,28] float32, output logits [N,10]; opset 17; numeric batch option`, () => {
    const m = buildModel(name);
    assert.equal(m.opset(), 17);
    assert.deepEqual(
      m.graph.inputs.map((v) => [v.name, v.dtype, v.shape]),
      [['input', 'float32', ['N', 1, 28, 28]]],
    );
    assert.deepEqual(
      m.graph.outputs.map((v) => [v.name, v.dtype, v.shape]),
      [['logits', 'float32', ['N', 10]]],
    );
    const m3 = buildModel(name, { batch: 3 });
    assert.deepEqual(m3.graph.inputs[0]!.shape, [3, 1, 28, 28]);
    assert.deepEqual(m3.graph.outputs[0]!.shape, [3, 10]);
    // only parameters and buffers are initializers (every other constant is a Constant node)
    for (const v of m.graph.initializers.values()) assert.equal(v.const!.dtype, 'float32', v.name);
  });

  test(`${name}: runs in ORT at batch 1 and 5 with finite [N,10] logits`, async () => {
    const m = buildModel(name, { seed: 3 });
    const x5 = sampleInput(5);
    const r5 = await logits(m, x5, 5);
    assert.deepEqual([...r5.dims], [5, 10]);
    assert.ok(r5.data.every(Number.isFinite));
    const r1 = await logits(m, x5.subarray(0, 784), 1);
    assert.deepEqual([...r1.dims], [1, 10]);
    assert.ok(r1.data.every(Number.isFinite));
    for (let i = 0; i < 10; i++)
      assert.ok(Math.abs(r1.data[i]! - r5.data[i]!) < 1e-5, 'batch-1 row equals batch-5 row 0');
    // not a degenerate network: samples give different logits
    assert.ok(r5.data.slice(0, 10).some((v, i) => Math.abs(v - r5.data[10 + i]!) > 1e-4));
  });

  test(`${name}: same seed gives identical initializer bytes, another seed different ones`, () => {
    const a = buildModel(name, { seed: 11 });
    const b = buildModel(name, { seed: 11 });
    const c = buildModel(name, { seed: 12 });
    assert.deepEqual([...a.graph.initializers.keys()], [...b.graph.initializers.keys()]);
    for (const [k, v] of a.graph.initializers) {
      assert.ok(
        v.const!.equals(b.graph.initializers.get(k)!.const!),
        `${k} differs between two builds with seed 11`,
      );
      const w = v.const!;
      const cw = c.graph.initializers.get(k)!.const!;
      const constant = (w.typed() as Float32Array).every((x) => x === (w.typed() as Float32Array)[0]);
      // random parameters change with the seed; constant-initialised ones (BN, LN, pos) do not
      assert.equal(w.equals(cw), constant, `${k}: seed 12 ${constant ? 'should not' : 'should'} change it`);
    }
    assert.notEqual(initializerDigest(a), initializerDigest(c));
  });

  test(`${name}: matches PyTorch (torch_reference.py) on the committed batch-4 fixture`, async (t) => {
    const fx = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as {
      builder_seed: number;
      opset: number;
      parameters: number;
      initializer_sha256: string;
      input: { shape: number[]; data: number[] };
      overrides: Record<string, { shape: number[]; data: number[] }>;
      logits: { shape: number[]; data: number[] };
    };
    assert.equal(fx.parameters, PARAMETER_COUNTS[name], 'PyTorch counted the same parameters');
    const m = buildModel(name, { seed: fx.builder_seed, opset: fx.opset });
    assert.equal(
      initializerDigest(m),
      fx.initializer_sha256,
      'the builder no longer makes the bytes torch was given: rerun scripts/fixtures/gen_builder_reference.py',
    );
    for (const [k, o] of Object.entries(fx.overrides)) {
      const v = m.graph.initializers.get(k);
      assert.ok(v, `override ${k} names an initializer`);
      assert.deepEqual([...v.const!.dims], o.shape);
      m.graph.setInitializer(v, Tensor.from('float32', o.shape, Float32Array.from(o.data)));
    }
    const batch = fx.input.shape[0]!;
    const got = await logits(m, Float32Array.from(fx.input.data), batch);
    assert.deepEqual([...got.dims], fx.logits.shape);
    let worst = 0;
    for (let i = 0; i < got.data.length; i++)
      worst = Math.max(worst, Math.abs(got.data[i]! - Math.fround(fx.logits.data[i]!)));
    t.diagnostic(`${name}: max |ORT - torch| = ${worst.toExponential(2)} over ${got.data.length} logits`);
    assert.ok(worst <= 1e-4, `max |diff| ${worst} > 1e-4`);
  });
}

test('every model gives the same logits at opsets 13, 18, 20, 22, 24 and 26 as at 17 (decompositions, axes inputs, Gelu op); forms valid at its opset', async () => {
  const x = sampleInput(2);
  for (const name of MODEL_NAMES) {
    const ref = await logits(buildModel(name, { seed: 5 }), x, 2);
    for (const opset of [13, 18, 20, 22, 24, 26]) {
      const m = buildModel(name, { seed: 5, opset });
      assert.equal(m.opset(), opset);
      assert.deepEqual(opsetProblems(m), [], `${name} at opset ${opset}`);
      const got = await logits(m, x, 2);
      for (let i = 0; i < ref.data.length; i++)
        assert.ok(Math.abs(got.data[i]! - ref.data[i]!) < 1e-5, `${name} at opset ${opset}: logit ${i}`);
    }
  }
});
