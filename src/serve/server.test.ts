import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel } from '../models/index.js';
import { loadModel, saveModel } from '../onnx/index.js';
import { InputError } from '../errors.js';
import { Session } from '../runtime/index.js';
import { maxAbsDiff } from '../testing/fixtures.js';

/** Largest difference of JSON numbers from a typed array. */
const maxDiff = (a: number[] | Float32Array, b: Float32Array) => maxAbsDiff(Float32Array.from(a), b);
import { runLoad } from './load.js';
import { writeDeployed } from './registry.js';
import { Registry, modelDigest } from '../pipeline/registry.js';
import { type InferenceServer, startServer } from './server.js';
import { BINARY_CONTENT_TYPE, HEADER_LENGTH } from './tensor.js';

interface Answer {
  status: number;
  headers: Headers;
  json: {
    outputs?: Record<string, { dtype: string; shape: number[]; data: number[] }>;
    version?: string;
    error?: { code: string; message: string };
    [k: string]: unknown;
  };
}

function input(rows: number, seed: number): number[] {
  let s = seed * 7919 + 1;
  return Array.from({ length: rows * 784 }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  });
}

function inferBody(rows: number, seed: number): string {
  return JSON.stringify({
    inputs: { input: { dtype: 'float32', shape: [rows, 1, 28, 28], data: input(rows, seed) } },
  });
}

async function post(
  url: string,
  body: string | Buffer,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<Answer> {
  const r = await fetch(url, { method: 'POST', headers, body });
  const text = await r.text();
  return { status: r.status, headers: r.headers, json: JSON.parse(text) as Answer['json'] };
}

async function reference(path: string, rows: number, seed: number): Promise<Float32Array> {
  const s = await Session.create(path, { threads: 1 });
  try {
    const out = await s.run({
      input: { dtype: 'float32', dims: [rows, 1, 28, 28], data: Float32Array.from(input(rows, seed)) },
    });
    return out.logits!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function assertNoStack(a: Answer): void {
  assert.ok(a.json.error, `expected an error body, got ${JSON.stringify(a.json).slice(0, 200)}`);
  assert.ok(a.json.error.message.length > 10);
  assert.doesNotMatch(JSON.stringify(a.json), /\n\s+at |\.ts:\d+|node_modules/);
}

let dir: string;
let cnn: string;
let cnn2: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-serve-'));
  cnn = join(dir, 'cnn.onnx');
  cnn2 = join(dir, 'cnn2.onnx');
  saveModel(buildModel('cnn-s', { seed: 1 }), cnn, { externalData: true });
  saveModel(buildModel('cnn-s', { seed: 2 }), cnn2, { externalData: true });
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('inference server', () => {
  test('batching answers every concurrent request of mixed batch sizes with exactly its own rows', async () => {
    const s = await startServer({
      models: [{ name: 'cnn', path: cnn }],
      port: 0,
      batch: { maxBatch: 16, maxDelayMs: 30 },
      threads: 1,
    });
    try {
      const url = `http://127.0.0.1:${s.port}/v1/models/cnn/infer`;
      const sizes = Array.from({ length: 24 }, (_, i) => 1 + (i % 4));
      const answers = await Promise.all(sizes.map((r, i) => post(url, inferBody(r, i))));
      for (let i = 0; i < sizes.length; i++) {
        const a = answers[i]!;
        assert.equal(a.status, 200);
        const out = a.json.outputs!.logits!;
        assert.deepEqual(out.shape, [sizes[i], 10]);
        const ref = await reference(cnn, sizes[i]!, i);
        // batched kernels may round differently, but each row must be its own request's row
        assert.ok(maxDiff(out.data, ref) < 1e-5, `request ${i}: ${maxDiff(out.data, ref)}`);
      }
      const m = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
      const runs = Number(/edgefit_batch_requests_count\{model="cnn"\} (\d+)/.exec(m)?.[1]);
      const rows = Number(/edgefit_batch_size_sum\{model="cnn"\} (\d+)/.exec(m)?.[1]);
      assert.equal(
        rows,
        sizes.reduce((a, b) => a + b, 0),
      );
      assert.ok(runs < sizes.length, `${runs} runs for ${sizes.length} requests: nothing was batched`);
      // binary body: same answer as JSON
      const data = Float32Array.from(input(3, 5));
      const header = Buffer.from(
        JSON.stringify({ inputs: { input: { dtype: 'float32', shape: [3, 1, 28, 28] } } }),
      );
      const r = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': BINARY_CONTENT_TYPE, [HEADER_LENGTH]: String(header.byteLength) },
        body: Buffer.concat([header, Buffer.from(data.buffer)]),
      });
      assert.equal(r.status, 200);
      const buf = Buffer.from(await r.arrayBuffer());
      const hl = Number(r.headers.get(HEADER_LENGTH));
      const h = JSON.parse(buf.subarray(0, hl).toString()) as { outputs: { logits: { shape: number[] } } };
      assert.deepEqual(h.outputs.logits.shape, [3, 10]);
      const bin = new Float32Array(buf.buffer.slice(buf.byteOffset + hl, buf.byteOffset + buf.byteLength));
      assert.ok(maxDiff(bin, await reference(cnn, 3, 5)) < 1e-5);
    } finally {
      await s.close();
    }
  });

  test('batching off: each request runs alone and gets the same answers', async () => {
    const s = await startServer({
      models: [{ name: 'cnn', path: cnn }],
      port: 0,
      batch: { batching: false },
    });
    try {
      const url = `http://127.0.0.1:${s.port}/v1/models/cnn/infer`;
      const answers = await Promise.all([1, 2, 3, 1, 2].map((r, i) => post(url, inferBody(r, i))));
      for (const [i, a] of answers.entries())
        assert.ok(maxDiff(a.json.outputs!.logits!.data, await reference(cnn, [1, 2, 3, 1, 2][i]!, i)) < 1e-5);
      const m = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
      assert.match(m, /edgefit_batch_requests_count\{model="cnn"\} 5\n/);
      assert.match(m, /edgefit_batch_requests_sum\{model="cnn"\} 5\n/);
      const meta = (await (await fetch(`http://127.0.0.1:${s.port}/v1/models/cnn`)).json()) as {
        batching: { enabled: boolean };
      };
      assert.equal(meta.batching.enabled, false);
    } finally {
      await s.close();
    }
  });

  test('a full queue answers 429 with Retry-After; a passed deadline answers 504', async () => {
    const s = await startServer({
      models: [{ name: 'cnn', path: cnn }],
      port: 0,
      batch: { maxBatch: 64, maxDelayMs: 1500, maxQueue: 2 },
    });
    try {
      const url = `http://127.0.0.1:${s.port}/v1/models/cnn/infer`;
      const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => post(url, inferBody(1, i))));
      const by = (st: number) => answers.filter((a) => a.status === st);
      assert.equal(by(200).length, 2);
      assert.equal(by(429).length, 3);
      for (const a of by(429)) {
        assert.match(a.headers.get('retry-after') ?? '', /^\d+$/);
        assert.equal(a.json.error!.code, 'queue-full');
        assertNoStack(a);
      }
      const t = performance.now();
      const late = await post(url, inferBody(1, 9), {
        'content-type': 'application/json',
        'x-deadline-ms': '50',
      });
      assert.equal(late.status, 504);
      assert.equal(late.json.error!.code, 'deadline');
      assert.ok(
        performance.now() - t < 1400,
        'the 504 came when the deadline passed, not when the batch ran',
      );
      assertNoStack(late);
    } finally {
      await s.close();
    }
  });

  test('bad requests get 400 with a message and no stack; unknown models 404', async () => {
    const s = await startServer({
      models: [{ name: 'cnn', path: cnn }],
      port: 0,
      limits: { maxBodyBytes: 200_000, maxElements: 10_000 },
    });
    try {
      const base = `http://127.0.0.1:${s.port}/v1/models`;
      const url = `${base}/cnn/infer`;
      const cases: [string, string | Buffer, Record<string, string> | undefined, RegExp][] = [
        ['malformed JSON', '{"inputs": {', undefined, /not valid JSON/],
        ['no inputs', '{"x": 1}', undefined, /"inputs"/],
        [
          'wrong shape',
          JSON.stringify({
            inputs: { input: { dtype: 'float32', shape: [1, 1, 27, 28], data: new Array(756).fill(0) } },
          }),
          undefined,
          /must have shape \[N, 1, 28, 28\]: it has \[1, 1, 27, 28\]/,
        ],
        [
          'wrong dtype',
          JSON.stringify({
            inputs: { input: { dtype: 'int32', shape: [1, 1, 28, 28], data: new Array(784).fill(0) } },
          }),
          undefined,
          /must be float32: it is int32/,
        ],
        [
          'data length',
          JSON.stringify({ inputs: { input: { dtype: 'float32', shape: [1, 1, 28, 28], data: [1, 2] } } }),
          undefined,
          /2 values in "data"; its shape holds 784/,
        ],
        [
          'non-number',
          JSON.stringify({
            inputs: {
              input: { dtype: 'float32', shape: [1, 1, 28, 28], data: ['a', ...new Array(783).fill(0)] },
            },
          }),
          undefined,
          /data\[0\] is "a"/,
        ],
        [
          'unknown input',
          JSON.stringify({ inputs: { image: { dtype: 'float32', shape: [1], data: [0] } } }),
          undefined,
          /has no input "image"/,
        ],
        ['too many elements', inferBody(13, 0), undefined, /more than 10000 tensor elements/],
        [
          'oversized body',
          JSON.stringify({ inputs: { input: { pad: 'x'.repeat(300_000) } } }),
          undefined,
          /larger than the server's limit of 200000 bytes/,
        ],
        ['content type', 'hello', { 'content-type': 'text/plain' }, /Unsupported Content-Type/],
        [
          'binary without header',
          Buffer.alloc(16),
          { 'content-type': BINARY_CONTENT_TYPE },
          /Inference-Header-Content-Length/,
        ],
      ];
      for (const [what, body, headers, msg] of cases) {
        const a = await post(url, body, headers);
        assert.equal(a.status, 400, `${what}: ${a.status} ${JSON.stringify(a.json)}`);
        assert.match(a.json.error!.message, msg, what);
        assertNoStack(a);
      }
      const nf = await post(`${base}/nope/infer`, inferBody(1, 0));
      assert.equal(nf.status, 404);
      assert.match(nf.json.error!.message, /No model named "nope" \(served: cnn\)/);
      const m = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
      assert.match(m, /edgefit_errors_total\{model="cnn",code="shape"\} 1/);
    } finally {
      await s.close();
    }
  });

  test('metadata, liveness, readiness and metrics', async () => {
    const s = await startServer({ models: [{ name: 'cnn', path: cnn }], port: 0 });
    const base = `http://127.0.0.1:${s.port}`;
    try {
      assert.equal((await fetch(`${base}/health/live`)).status, 200);
      const ready = await fetch(`${base}/health/ready`);
      assert.equal(ready.status, 200);
      assert.deepEqual(((await ready.json()) as { models: string[] }).models, ['cnn']);
      const meta = (await (await fetch(`${base}/v1/models/cnn`)).json()) as Record<string, unknown>;
      assert.deepEqual(meta.inputs, [{ name: 'input', dtype: 'float32', shape: ['N', 1, 28, 28] }]);
      assert.deepEqual(meta.outputs, [{ name: 'logits', dtype: 'float32', shape: ['N', 10] }]);
      assert.ok((meta.bytes as number) > 1_600_000);
      await post(`${base}/v1/models/cnn/infer`, inferBody(2, 0));
      const m = await (await fetch(`${base}/metrics`)).text();
      for (const name of [
        'edgefit_request_duration_seconds_bucket',
        'edgefit_batch_size_bucket',
        'edgefit_queue_depth',
        'edgefit_model_bytes',
        'edgefit_process_pss_bytes',
      ])
        assert.match(m, new RegExp(`^${name}`, 'm'));
      const pss = Number(/^edgefit_process_pss_bytes\{[^}]*\} (\d+)/m.exec(m)?.[1]);
      assert.ok(pss > 10e6, `PSS ${pss}`);
    } finally {
      await s.close();
    }
  });

  test('admin endpoints refuse a missing or wrong token, and are off without one', async () => {
    const s = await startServer({ models: [{ name: 'cnn', path: cnn }], port: 0, token: 's3cret' });
    const off = await startServer({ models: [{ name: 'cnn', path: cnn }], port: 0 });
    try {
      const url = `http://127.0.0.1:${s.port}/admin/reload`;
      const none = await post(url, '{}');
      assert.equal(none.status, 401);
      assertNoStack(none);
      const wrong = await post(url, '{}', {
        'content-type': 'application/json',
        authorization: 'Bearer s3cre7',
      });
      assert.equal(wrong.status, 403);
      const right = await post(url, '{}', {
        'content-type': 'application/json',
        authorization: 'Bearer s3cret',
      });
      assert.equal(right.status, 200);
      assert.deepEqual(
        (right.json as { reloaded: { changed: boolean }[] }).reloaded.map((r) => r.changed),
        [false],
      );
      const disabled = await post(`http://127.0.0.1:${off.port}/admin/reload`, '{}', {
        'content-type': 'application/json',
        authorization: 'Bearer s3cret',
      });
      assert.equal(disabled.status, 403);
      assert.match(disabled.json.error!.message, /--token/);
    } finally {
      await s.close();
      await off.close();
    }
  });

  test('hot reload from a registry folder under concurrent load: zero failed requests, then the new version', async () => {
    const reg = join(dir, 'registry');
    mkdirSync(join(reg, 'cnn', 'v1'), { recursive: true });
    mkdirSync(join(reg, 'cnn', 'v2'), { recursive: true });
    saveModel(buildModel('cnn-s', { seed: 1 }), join(reg, 'cnn', 'v1', 'model.onnx'), { externalData: true });
    saveModel(buildModel('cnn-s', { seed: 2 }), join(reg, 'cnn', 'v2', 'model.onnx'), { externalData: true });
    writeDeployed(reg, 'cnn', 'v1', 'v1/model.onnx');
    let s: InferenceServer | undefined;
    try {
      s = await startServer({ registry: reg, port: 0, token: 't', pollMs: 0, batch: { maxDelayMs: 5 } });
      const url = `http://127.0.0.1:${s.port}/v1/models/cnn/infer`;
      const versions: string[] = [];
      const body = Buffer.from(inferBody(1, 3));
      const load = runLoad({
        url,
        body,
        headers: { 'content-type': 'application/json' },
        concurrency: 8,
        requests: 600,
        durationMs: 20_000,
        onResponse: (st, b) => {
          if (st === 200) versions.push((JSON.parse(b.toString()) as { version: string }).version);
        },
      });
      // switch while requests are in flight
      while (versions.length < 50) await new Promise((r) => setTimeout(r, 5));
      writeDeployed(reg, 'cnn', 'v2', 'v2/model.onnx');
      const rel = await post(`http://127.0.0.1:${s.port}/admin/reload`, '{"models": ["cnn"]}', {
        'content-type': 'application/json',
        authorization: 'Bearer t',
      });
      assert.equal(rel.status, 200);
      assert.deepEqual((rel.json as { reloaded: unknown[] }).reloaded, [
        { name: 'cnn', from: 'v1', to: 'v2', changed: true },
      ]);
      const r = await load;
      assert.deepEqual(r.statuses, { '200': r.requests }, JSON.stringify(r.statuses));
      assert.ok(versions.includes('v1') && versions.at(-1) === 'v2');
      // after the switch every answer is v2's, and v2's numbers
      const a = await post(url, inferBody(2, 4));
      assert.equal(a.json.version, 'v2');
      assert.ok(maxDiff(a.json.outputs!.logits!.data, await reference(cnn2, 2, 4)) < 1e-5);
      // a poll-driven reload picks up a rollback
      writeDeployed(reg, 'cnn', 'v1', 'v1/model.onnx');
      const res = await s.reload();
      assert.equal(res[0]!.to, 'v1');
      assert.equal((await post(url, inferBody(1, 0))).json.version, 'v1');
    } finally {
      await s?.close();
    }
  });
  test("serves the pipeline registry's deployed version and follows promote / rollback on reload", async () => {
    const root = join(dir, 'pipeline-registry');
    const reg = Registry.open(root, { create: true });
    const v1 = reg.register(buildModel('cnn-s', { seed: 1 }), {}, { name: 'fashion', device: 'box' });
    const v2 = reg.register(buildModel('cnn-s', { seed: 2 }), {}, { name: 'fashion', device: 'box' });
    reg.promote({ name: 'fashion', device: 'box', version: 1 });
    let s: InferenceServer | undefined;
    try {
      s = await startServer({ registry: root, port: 0, token: 't', pollMs: 0, batch: { maxDelayMs: 5 } });
      const url = `http://127.0.0.1:${s.port}/v1/models/fashion/infer`;
      let a = await post(url, inferBody(2, 4));
      assert.equal(a.json.version, '1');
      assert.ok(maxDiff(a.json.outputs!.logits!.data, await reference(reg.modelPath(v1), 2, 4)) < 1e-5);
      reg.promote({ name: 'fashion', device: 'box', version: 2 });
      assert.equal((await s.reload())[0]!.to, '2');
      a = await post(url, inferBody(2, 4));
      assert.equal(a.json.version, '2');
      assert.ok(maxDiff(a.json.outputs!.logits!.data, await reference(reg.modelPath(v2), 2, 4)) < 1e-5);
      reg.rollback('fashion', 'box');
      assert.equal((await s.reload())[0]!.to, '1');
      assert.equal((await post(url, inferBody(1, 0))).json.version, '1');
    } finally {
      await s?.close();
      reg.close();
    }
  });
  test('serves from an `edgefit registry serve` URL: cached by digest, promote + reload under load, unreachable named', async () => {
    const root = join(dir, 'remote-registry');
    const reg = Registry.open(root, { create: true });
    const v1 = reg.register(buildModel('cnn-s', { seed: 1 }), {}, { name: 'fashion', device: 'box' });
    const v2 = reg.register(buildModel('cnn-s', { seed: 2 }), {}, { name: 'fashion', device: 'box' });
    reg.promote({ name: 'fashion', device: 'box', version: 1 });
    const cache = join(dir, 'cache');
    // a damaged cache folder for v2 (another model under its digest): must not be reused
    mkdirSync(join(cache, v2.digest), { recursive: true });
    saveModel(buildModel('cnn-s', { seed: 3 }), join(cache, v2.digest, 'model.onnx'));
    const { serveRegistry } = await import('../pipeline/registry-server.js');
    const rs = await serveRegistry({ dir: root, token: 'registry-token' });
    let rsOpen = true;
    let s: InferenceServer | undefined;
    try {
      await assert.rejects(
        startServer({ registry: rs.url, registryToken: 'wrong-token', cacheDir: cache, port: 0 }),
        (e: Error) => e instanceof InputError && e.message.includes(rs.url) && /401/.test(e.message),
      );
      s = await startServer({
        registry: rs.url,
        registryToken: 'registry-token',
        cacheDir: cache,
        port: 0,
        token: 't',
        pollMs: 0,
        batch: { maxDelayMs: 5 },
      });
      const url = `http://127.0.0.1:${s.port}/v1/models/fashion/infer`;
      let a = await post(url, inferBody(2, 4));
      assert.equal(a.json.version, '1');
      const d1 = maxDiff(a.json.outputs!.logits!.data, await reference(reg.modelPath(v1), 2, 4));
      assert.ok(d1 < 1e-5, `v1 differs from ORT by ${d1}`);
      const cached1 = join(cache, v1.digest, 'model.onnx');
      assert.equal(modelDigest(loadModel(cached1)), v1.digest);
      assert.deepEqual(
        readdirSync(cache).filter((f) => f.endsWith('.tmp')),
        [],
      );
      // promote, then reload while 8 clients keep sending: zero failures, then v2's numbers
      reg.promote({ name: 'fashion', device: 'box', version: 2 });
      const versions: string[] = [];
      const load = runLoad({
        url,
        body: Buffer.from(inferBody(1, 3)),
        headers: { 'content-type': 'application/json' },
        concurrency: 8,
        requests: 300,
        durationMs: 20_000,
        onResponse: (st, b) => {
          if (st === 200) versions.push((JSON.parse(b.toString()) as { version: string }).version);
        },
      });
      while (versions.length < 30) await new Promise((r) => setTimeout(r, 5));
      const rel = await post(`http://127.0.0.1:${s.port}/admin/reload`, '{}', {
        'content-type': 'application/json',
        authorization: 'Bearer t',
      });
      assert.equal(rel.status, 200, JSON.stringify(rel.json));
      const r = await load;
      assert.deepEqual(r.statuses, { '200': r.requests }, JSON.stringify(r.statuses));
      assert.ok(versions.includes('1') && versions.at(-1) === '2', versions.join());
      a = await post(url, inferBody(2, 4));
      assert.equal(a.json.version, '2');
      const d2 = maxDiff(a.json.outputs!.logits!.data, await reference(reg.modelPath(v2), 2, 4));
      assert.ok(d2 < 1e-5, `v2 differs from ORT by ${d2}`);
      assert.equal(modelDigest(loadModel(join(cache, v2.digest, 'model.onnx'))), v2.digest);
      // a rollback reuses the cached v1 (not downloaded again)
      const before = statSync(cached1).mtimeMs;
      reg.rollback('fashion', 'box');
      assert.equal((await s.reload())[0]!.to, '1');
      assert.equal((await post(url, inferBody(1, 0))).json.version, '1');
      assert.equal(statSync(cached1).mtimeMs, before);
      // the registry goes away: a reload fails naming the URL, and the server keeps serving what it has
      await rs.close();
      rsOpen = false;
      await assert.rejects(s.reload(), (e: Error) => e.message.includes(rs.url));
      assert.equal((await post(url, inferBody(1, 0))).json.version, '1');
      await assert.rejects(
        startServer({ registry: rs.url, registryToken: 'registry-token', cacheDir: cache, port: 0 }),
        (e: Error) => e instanceof InputError && e.message.includes(`Cannot reach the registry at ${rs.url}`),
      );
    } finally {
      await s?.close();
      if (rsOpen) await rs.close();
      reg.close();
    }
  });
});
