// `edgefit serve --workers 2` as a user runs it: the compiled CLI (bin/edgefit.mjs on a fresh dist/), two worker
// processes on one port answering correctly, requests spread over both, and a clean stop on SIGTERM.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildModel } from '../models/index.js';
import { saveModel } from '../onnx/index.js';
import { Session } from '../runtime/index.js';
import { EDGEFIT_BIN, ensureBuilt } from '../testing/cli.js';
import { maxAbsDiff } from '../testing/fixtures.js';
import { runLoad } from './load.js';

let dir: string;
let model: string;

before(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'edgefit-cluster-'));
  model = join(dir, 'cnn.onnx');
  saveModel(buildModel('cnn-s', { seed: 1 }), model, { externalData: true, align: 4096 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

function rows(n: number, seed: number): Float32Array {
  const a = new Float32Array(n * 784);
  for (let i = 0; i < a.length; i++) a[i] = Math.sin(seed * 1000 + i * 0.37) * 0.5 + 0.5;
  return a;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('compiled CLI with --workers 2: correct answers from both worker processes, then a clean stop', async () => {
  const child = spawn(
    process.execPath,
    [
      EDGEFIT_BIN,
      'serve',
      '--model',
      `cnn=${model}`,
      '--port',
      '0',
      '--workers',
      '2',
      '--threads',
      '1',
      '--json',
    ],
    { env: { ...process.env, EDGEFIT_FROM_SOURCE: '0' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b) => (stdout += b));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line in 90 s:\n${stderr}`)), 90_000);
    child.stderr.on('data', (b) => {
      stderr += b;
      const m = /listening on (http:\/\/\S+) \(2 workers\)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`edgefit serve exited (${code}):\n${stderr}`));
    });
  });
  try {
    // answers vs ORT, over enough connections that both workers get some
    const s = await Session.create(model, { threads: 1 });
    const want = new Map<number, Float32Array>();
    try {
      for (const seed of [1, 2, 3])
        want.set(
          seed,
          (await s.run({ input: { dtype: 'float32', dims: [2, 1, 28, 28], data: rows(2, seed) } })).logits!
            .data as Float32Array,
        );
    } finally {
      await s.release();
    }
    let worst = 0;
    for (const seed of [1, 2, 3]) {
      const body = Buffer.from(
        JSON.stringify({
          inputs: { input: { dtype: 'float32', shape: [2, 1, 28, 28], data: Array.from(rows(2, seed)) } },
        }),
      );
      const r = await runLoad({
        url: `${base}/v1/models/cnn/infer`,
        body,
        headers: { 'content-type': 'application/json' },
        concurrency: 6,
        requests: 30,
        onResponse: (status, b) => {
          assert.equal(status, 200, b.toString());
          const out = (JSON.parse(b.toString()) as { outputs: { logits: { data: number[] } } }).outputs;
          worst = Math.max(worst, maxAbsDiff(Float32Array.from(out.logits.data), want.get(seed)!));
        },
      });
      assert.deepEqual(r.statuses, { '200': 30 });
    }
    assert.ok(worst < 1e-5, `served answers differ from ORT by ${worst}`);
    // the cluster's metrics: requests per worker process
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const perPid = new Map<number, number>();
    for (const m of metrics.matchAll(/^edgefit_worker_requests_total\{[^}]*pid="(\d+)"[^}]*\} (\d+)/gm))
      perPid.set(Number(m[1]), Number(m[2]));
    assert.equal(
      perPid.size,
      2,
      metrics
        .split('\n')
        .filter((l) => l.includes('worker_requests'))
        .join('\n'),
    );
    assert.ok(
      [...perPid.values()].every((n) => n > 0),
      JSON.stringify([...perPid]),
    );
    assert.equal(
      [...perPid.values()].reduce((a, b) => a + b, 0),
      90,
    );
    // the workers run the compiled entry (the source one is cluster-worker.mjs through tsx)
    for (const pid of perPid.keys()) {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      assert.match(cmd, /dist\/src\/serve\/cluster-entry\.js/, cmd);
    }
    // SIGTERM: the primary stops the workers, then exits 0 with its JSON line
    child.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { url: base, workers: 2, stoppedBy: 'SIGTERM' });
    for (const pid of perPid.keys()) assert.equal(alive(pid), false, `worker ${pid} still runs`);
    assert.doesNotMatch(stderr, /error|exited \(/i);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
