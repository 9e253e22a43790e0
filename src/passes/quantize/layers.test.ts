import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ModelBuilder } from '../../ir/builder.js';
import { loadModel } from '../../onnx/index.js';
import { randomFeeds, TORCH_FIXTURES } from '../../testing/fixtures.js';
import { compareLayers } from './layers.js';
import { prepareForQuantization } from './index.js';
import { layerSqnr, outputSqnr } from './sqnr.js';

test('a model against its own lossless optimised graph: no false alarm where BatchNorm folding reused a name', async () => {
  const a = loadModel(join(TORCH_FIXTURES, 'mobile_bn_op13.onnx'));
  const b = (await prepareForQuantization(a)).model;
  const feeds = [randomFeeds(a, 3, 4)];
  // matched by name alone, some tensor names mean different values (the pre-BN conv vs the folded one)
  const naive = await layerSqnr(a, b, feeds, { threads: 1 });
  assert.ok(
    naive.some((l) => l.sqnr < 20),
    `by name alone a false alarm: ${naive.map((l) => `${l.name} ${l.sqnr.toFixed(1)}`).join(', ')}`,
  );
  const r = await compareLayers(a, b, feeds, { threads: 1 });
  assert.ok(r.layers.length >= naive.length);
  for (const l of r.layers) assert.ok(l.sqnr >= 60, `${l.name} ${l.sqnr} dB against ${l.reference}`);
  assert.ok(r.layers.some((l) => l.reference === 'a-optimised'));
  // the BatchNorm outputs folding removed are listed as skipped, by name
  assert.ok(r.skipped.length === 0 || r.skipped.every((s) => s.reason.includes('no tensor')));
});

function tiny(width: number) {
  const b = new ModelBuilder({ seed: width });
  const x = b.input('x', 'float32', ['N', 8]);
  const h = b.relu(b.linear(x, 8, width, { name: 'fc1' }), 'h');
  b.output(b.linear(h, width, 3, { name: 'fc2' }), 'y');
  return b.build();
}

test('tensors of different sizes under one name are a size mismatch, never "exact"', async () => {
  const a = tiny(16);
  const b = tiny(12);
  const feeds = [randomFeeds(a, 1, 2)];
  const layers = await layerSqnr(a, b, feeds, { threads: 1 });
  const h = layers.find((l) => l.name === 'h_out0');
  assert.ok(h, layers.map((l) => l.name).join());
  assert.ok(Number.isNaN(h.sqnr) && h.sqnr !== Infinity);
  assert.equal(h.mismatch, '[2, 16] vs [2, 12]');
  const y = layers.find((l) => l.name === 'y')!;
  assert.equal(y.mismatch, undefined);
  assert.ok(Number.isFinite(y.sqnr));
  const c = await compareLayers(a, b, feeds, { threads: 1 });
  assert.ok(c.layers.find((l) => l.name === 'h_out0')!.mismatch);
});

test('outputSqnr refuses outputs of different sizes instead of comparing a prefix', async () => {
  const a = tiny(16);
  const b = new ModelBuilder({ seed: 2 });
  const x = b.input('x', 'float32', ['N', 8]);
  b.output(b.linear(x, 8, 5, { name: 'fc' }), 'y');
  await assert.rejects(outputSqnr(a, b.build(), [randomFeeds(a, 1, 2)]), /first output has 10 values .* 6/);
});
