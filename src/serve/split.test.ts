import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '../ir/index.js';
import { buildModel } from '../models/index.js';
import { saveModel } from '../onnx/index.js';
import { Session } from '../runtime/index.js';
import { maxAbsDiff } from '../testing/fixtures.js';

/** Largest difference of JSON numbers from a typed array. */
const maxDiff = (a: number[] | Float32Array, b: Float32Array) => maxAbsDiff(Float32Array.from(a), b);
import { startServer } from './server.js';
import { splitFiles } from './split.js';

let dir: string;
let taskA: string;
let taskB: string;

/** cnn-s with a different last layer: two task heads fine-tuned on one frozen backbone. */
function withHead(seed: number, path: string): void {
  const m = buildModel('cnn-s', { seed: 1 });
  const f2 = m.graph.initializers.get('f2.weight')!;
  const other = buildModel('cnn-s', { seed }).graph.initializers.get('f2.weight')!.const!;
  m.graph.setInitializer(f2, new Tensor(other.dtype, other.dims, other.bytes));
  saveModel(m, path, { externalData: true });
}

function rows(n: number, seed: number): Float32Array {
  let s = seed * 7919 + 1;
  return new Float32Array(n * 784).map(() => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  });
}

async function run(path: string, x: Float32Array, n: number): Promise<Float32Array> {
  const s = await Session.create(path, { threads: 1 });
  try {
    return (await s.run({ input: { dtype: 'float32', dims: [n, 1, 28, 28], data: x } })).logits!
      .data as Float32Array;
  } finally {
    await s.release();
  }
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-split-'));
  taskA = join(dir, 'taskA.onnx');
  taskB = join(dir, 'taskB.onnx');
  withHead(7, taskA);
  withHead(8, taskB);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('split backbone + heads', () => {
  test('two models cut where their weights differ; backbone + head equal the unsplit models', async () => {
    const out = join(dir, 'split');
    const r = await splitFiles([taskA, taskB], out);
    // everything up to the last Gemm is shared; each head is that Gemm
    assert.deepEqual(r.backbone.outputs, ['r3_out0']);
    assert.equal(r.backbone.nodes, 11);
    assert.deepEqual(
      r.heads.map((h) => [h.name, h.nodes]),
      [
        ['taskA', 1],
        ['taskB', 1],
      ],
    );
    assert.ok(r.maxAbsDiff < 1e-5, `${r.maxAbsDiff}`);
    const manifest = JSON.parse(readFileSync(r.manifest, 'utf8')) as {
      heads: Record<string, { inputs: object }>;
    };
    assert.deepEqual(manifest.heads.taskA!.inputs, { r3_out0: 'r3_out0' });
    // the backbone holds the shared weights once; heads hold only their own layer
    assert.ok(r.backbone.bytes > 1_600_000 && r.heads.every((h) => h.bytes < 10_000), JSON.stringify(r));

    // served: concurrent requests to both heads batch through one backbone run and match the unsplit models
    const s = await startServer({
      models: [{ name: 'tasks', path: r.manifest }],
      port: 0,
      batch: { maxDelayMs: 40 },
    });
    try {
      const base = `http://127.0.0.1:${s.port}/v1/models`;
      const reqs = [1, 2, 3, 1, 2, 1].map((n, i) => ({
        n,
        i,
        head: i % 2 ? 'taskB' : 'taskA',
        x: rows(n, i),
      }));
      const answers = await Promise.all(
        reqs.map(async (q) => {
          const r = await fetch(`${base}/${q.head}/infer`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              inputs: { input: { dtype: 'float32', shape: [q.n, 1, 28, 28], data: Array.from(q.x) } },
            }),
          });
          assert.equal(r.status, 200);
          return ((await r.json()) as { outputs: { logits: { data: number[] } } }).outputs.logits.data;
        }),
      );
      for (const [k, q] of reqs.entries()) {
        const want = await run(q.head === 'taskA' ? taskA : taskB, q.x, q.n);
        assert.ok(maxDiff(answers[k]!, want) < 1e-5, `request ${k} (${q.head})`);
      }
      const m = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
      const runs = Number(/edgefit_batch_requests_count\{model="tasks"\} (\d+)/.exec(m)?.[1]);
      assert.ok(runs < reqs.length, `${runs} backbone runs for ${reqs.length} requests`);
      const meta = (await (await fetch(`${base}/taskB`)).json()) as {
        deployment: string;
        inputs: { name: string }[];
      };
      assert.equal(meta.deployment, 'tasks');
      assert.deepEqual(
        meta.inputs.map((i) => i.name),
        ['input'],
      );
    } finally {
      await s.close();
    }
  });

  test('one model cut at a named tensor', async () => {
    const out = join(dir, 'at');
    const r = await splitFiles([taskA], out, { at: ['flatten_out0'] });
    assert.deepEqual(r.backbone.outputs, ['flatten_out0']);
    assert.equal(r.heads[0]!.nodes, 3);
    assert.ok(r.maxAbsDiff < 1e-5);
  });

  test('models that share nothing, or a cut at an unknown tensor, are refused by name', async () => {
    const other = join(dir, 'other.onnx');
    saveModel(buildModel('cnn-s', { seed: 99 }), other, { externalData: true });
    await assert.rejects(splitFiles([taskA, other], join(dir, 'x')), /share no leading layers/);
    await assert.rejects(
      splitFiles([taskA], join(dir, 'y'), { at: ['nope'] }),
      /no node output named "nope"/,
    );
    await assert.rejects(splitFiles([taskA, taskA], join(dir, 'z')), /Head names must differ/);
  });
});
