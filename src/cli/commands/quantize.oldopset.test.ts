// The paddle2onnx-style old-opset models (test/fixtures/oldopset, opsets 9/10) quantize in every mode that applies:
// modes whose ops need a newer opset upgrade the graph first and say so in --json (`opsetUpgrade`).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { writeNpy } from '../../data/npy.js';
import { loadModel, opsetProblems } from '../../onnx/index.js';
import { maxAbsDiff } from '../../passes/check.js';
import { runModel } from '../../runtime/index.js';
import { edgefit } from '../../testing/cli.js';
import { REPO_ROOT, randomFloat } from '../../testing/fixtures.js';

const OLD = join(REPO_ROOT, 'test', 'fixtures', 'oldopset');
const dir = mkdtempSync(join(tmpdir(), 'edgefit-qold-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Image-like inputs in [0, 1) for a model's input shape, batch n, as .npy. */
function calib(name: string, dims: number[], seed: number): string {
  const x = randomFloat(dims, seed, 1);
  const data = Float32Array.from(x.data as Float32Array, (v) => (v + 1) / 2);
  const p = join(dir, `${name}.npy`);
  writeNpy(p, { dtype: 'float32', shape: dims, data });
  return p;
}

const CASES = [
  {
    name: 'rec_op10',
    dims: [16, 3, 32, 64],
    modes: ['dynamic', 'static', 'fp16'],
    tol: { dynamic: 0.15, static: 0.15, fp16: 0.01 },
  },
  { name: 'cls_op9', dims: [16, 3, 24, 48], modes: ['static', 'fp16'], tol: { static: 0.15, fp16: 0.01 } },
] as const;

for (const c of CASES)
  for (const mode of c.modes)
    test(`quantize ${c.name} --mode ${mode}: exit 0, valid at its opset, close to FP32`, async () => {
      const src = join(OLD, `${c.name}.onnx`);
      const out = join(dir, `${c.name}.${mode}.onnx`);
      const data = calib(c.name, [...c.dims], 11);
      const args = ['quantize', src, out, '--mode', mode, '--json', '--quiet'];
      if (mode === 'static') args.push('--calib-data', data);
      const r = edgefit(...args);
      assert.equal(r.code, 0, r.stderr);
      const j = r.json();
      const m = loadModel(out);
      assert.deepEqual(opsetProblems(m), []);
      const from = loadModel(src).opset('')!;
      if (mode === 'dynamic') assert.deepEqual([j.opsetUpgrade.from, j.opsetUpgrade.to], [from, 11]);
      else if (mode === 'static') assert.deepEqual([j.opsetUpgrade.from, j.opsetUpgrade.to], [from, 13]);
      else assert.equal(j.opsetUpgrade, null);
      assert.ok(j.nodes.length > 0);
      // outputs (softmax probabilities) on held-out inputs stay close to the float model's
      const x = randomFloat([4, ...c.dims.slice(1)], 23, 1);
      const feeds = { x: { ...x, data: Float32Array.from(x.data as Float32Array, (v) => (v + 1) / 2) } };
      const a = await runModel(src, feeds, { threads: 1 });
      const b = await runModel(out, feeds, { threads: 1 });
      const d = maxAbsDiff(a.y!, b.y!);
      assert.ok(d <= c.tol[mode as keyof typeof c.tol], `${mode}: max |diff| ${d}`);
    });

test('quantize cls_op9 (opset 9) --mode dynamic upgrades to 11 and quantizes the Gemm head', () => {
  const out = join(dir, 'cls.dyn.onnx');
  const r = edgefit('quantize', join(OLD, 'cls_op9.onnx'), out, '--mode', 'dynamic', '--json', '--quiet');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json().opsetUpgrade.to, 11);
});

test('quantize cls_op9 (opset 9) --mode qat upgrades to 13 before fine-tuning and says so', async () => {
  const src = join(OLD, 'cls_op9.onnx');
  const out = join(dir, 'cls.qat.onnx');
  const x = calib('cls_qat', [64, 3, 24, 48], 5);
  const classes = (await runModel(src, { x: randomFloat([1, 3, 24, 48], 1, 1) }, { threads: 1 })).y!.dims[1]!;
  const labels = join(dir, 'cls_qat_y.npy');
  writeNpy(labels, {
    dtype: 'int64',
    shape: [64],
    data: BigInt64Array.from({ length: 64 }, (_, i) => BigInt(i % classes)),
  });
  const r = edgefit(
    'quantize',
    src,
    out,
    '--mode',
    'qat',
    '--train-data',
    x,
    '--labels',
    labels,
    '--epochs',
    '1',
    '--json',
    '--quiet',
  );
  assert.equal(r.code, 0, r.stderr);
  const j = r.json();
  assert.deepEqual([j.opsetUpgrade.from, j.opsetUpgrade.to], [9, 13]);
  const m = loadModel(out);
  assert.deepEqual(opsetProblems(m), []);
  assert.ok(m.graph.nodes.some((n) => n.opType === 'QuantizeLinear'));
});
