// `npm run bench -- serve [--seconds S] [--requests N] [--clients C]`: the inference server's figures (BENCHMARKS.md,
// "Serving"). Every server runs as its own `edgefit serve` process on 127.0.0.1 (port 0), and the bounded load
// generator (src/serve/load.ts) runs in this process; both share the machine's cores, so throughput figures are
// only comparable within one run. Prints SPEC-style JSON lines:
//   serve-load     64 clients on static INT8 cnn-s, binary and JSON bodies: dynamic batching vs batch-1 (--no-batching),
//                  two rounds each, interleaved: throughput, p50, p99
//   serve-memory   PSS of 4 workers serving a model with 64 MiB of weights: external data mapped with pre-packing
//                  off (the default), with pre-packing on (--no-mmap), inline weights; against 4 workers serving a
//                  tiny model of the same graph (the workers' baseline)
//   serve-split    PSS of one server process: one model, the two task models unsplit, backbone + two heads
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Graph, Model, Tensor, tensorType } from '../src/ir/index.js';
import { saveModel } from '../src/onnx/index.js';
import { runLoad, splitFiles, BINARY_CONTENT_TYPE, HEADER_LENGTH } from '../src/serve/index.js';

type Emit = (line: string) => void;
const CLI = join('bin', 'edgefit.mjs');

interface ServerProc {
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** `edgefit serve … --port 0` as a child process; resolves when it listens. */
function startServe(args: string[]): Promise<ServerProc> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--quiet', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`edgefit serve did not start in 120 s:\n${err}`));
    }, 120_000);
    proc.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        proc.stderr!.removeAllListeners('data');
        proc.stderr!.resume();
        resolve({
          port: Number(m[1]),
          proc,
          stop: () =>
            new Promise<void>((r) => {
              proc.once('exit', () => r());
              proc.kill('SIGINT');
            }),
        });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`edgefit serve exited with ${code}:\n${err}`));
    });
  });
}

function cli(args: string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...args, '--quiet'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`edgefit ${args.join(' ')} failed:\n${r.stderr}`);
}

function jsonBody(shape: number[], fill: (i: number) => number): Buffer {
  const n = shape.reduce((a, b) => a * b, 1);
  return Buffer.from(
    JSON.stringify({
      inputs: { input: { dtype: 'float32', shape, data: Array.from({ length: n }, (_, i) => fill(i)) } },
    }),
  );
}

function binaryBody(shape: number[], fill: (i: number) => number): { body: Buffer; headerLength: number } {
  const n = shape.reduce((a, b) => a * b, 1);
  const header = Buffer.from(JSON.stringify({ inputs: { input: { dtype: 'float32', shape } } }));
  const data = Float32Array.from({ length: n }, (_, i) => fill(i));
  return { body: Buffer.concat([header, Buffer.from(data.buffer)]), headerLength: header.byteLength };
}

async function pssOf(
  port: number,
): Promise<{ total: number; perWorker: number[]; file: number; anon: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const read = (name: string) =>
    [...text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'gm'))].map((m) => Number(m[1]));
  const per = read('edgefit_process_pss_bytes');
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  return {
    total: sum(per),
    perWorker: per,
    file: sum(read('edgefit_process_pss_file_bytes')),
    anon: sum(read('edgefit_process_pss_anon_bytes')),
  };
}

/** x [N, d] → MatMul W1 [d, d] → Relu → MatMul W2 [d, 16] (seeded weights): `d`=4096 holds 64 MiB in W1. */
function matmulModel(d: number, seed: number, headSeed = seed): Model {
  const g = new Graph('mm');
  const x = g.addInput('input', tensorType('float32', ['N', d]));
  const rand = (n: number, s: number) => {
    let v = s * 7919 + 17;
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      v = (v * 1103515245 + 12345) % 2147483648;
      a[i] = (v / 2147483648 - 0.5) / Math.sqrt(d);
    }
    return new Uint8Array(a.buffer);
  };
  const w1 = g.addInitializer('w1', new Tensor('float32', [d, d], rand(d * d, seed)));
  const w2 = g.addInitializer('w2', new Tensor('float32', [d, 16], rand(d * 16, headSeed + 1000)));
  const h = g.addNode({ opType: 'MatMul', name: 'mm1', inputs: [x, w1], outputs: ['h'] }).output(0);
  const r = g.addNode({ opType: 'Relu', name: 'relu', inputs: [h], outputs: ['r'] }).output(0);
  const y = g.addNode({ opType: 'MatMul', name: 'mm2', inputs: [r, w2], outputs: ['y'] }).output(0);
  y.type = tensorType('float32', ['N', 16]);
  g.outputs = [y];
  const m = new Model(g);
  m.opsetImports.set('', 17);
  return m;
}

async function touch(port: number, model: string, d: number): Promise<void> {
  for (let i = 0; i < 16; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/v1/models/${model}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: jsonBody([1, d], (k) => (k % 13) / 13),
    });
    if (r.status !== 200) throw new Error(`infer ${model}: ${r.status} ${await r.text()}`);
  }
}

export async function serveBench(o: {
  emit: Emit;
  log: (s: string) => void;
  seconds: number;
  requests: number;
  clients: number;
}): Promise<void> {
  const out = join('bench', 'out', 'serve');
  mkdirSync(out, { recursive: true });
  const fp32 = join(out, 'cnn-s.onnx');
  const int8 = join(out, 'cnn-s.int8.onnx');
  if (!existsSync(int8)) {
    o.log('building cnn-s and its static INT8 model');
    cli(['build', 'cnn-s', fp32, '--seed', '1']);
    cli([
      'quantize',
      fp32,
      int8,
      '--mode',
      'static',
      '--calib-data',
      'fashion-mnist',
      '--calib-samples',
      '256',
      '--external-data',
    ]);
  }

  // 1. batching vs batch-1, interleaved in one sitting
  const img = (i: number) => ((i * 37) % 255) / 255;
  const bin = binaryBody([1, 1, 28, 28], img);
  const bodies = {
    binary: {
      body: bin.body,
      headers: { 'content-type': BINARY_CONTENT_TYPE, [HEADER_LENGTH]: String(bin.headerLength) },
    },
    json: { body: jsonBody([1, 1, 28, 28], img), headers: { 'content-type': 'application/json' } },
  };
  for (const round of [1, 2])
    for (const kind of ['binary', 'json'] as const)
      for (const batching of [true, false]) {
        const args = ['--model', `cnn=${int8}`, '--threads', '1', '--max-queue', '1024'];
        if (batching) args.push('--max-batch', '64', '--max-delay-ms', '5');
        else args.push('--no-batching');
        const s = await startServe(args);
        try {
          const url = `http://127.0.0.1:${s.port}/v1/models/cnn/infer`;
          const b = bodies[kind];
          const r = await runLoad({
            url,
            ...b,
            concurrency: o.clients,
            requests: o.requests,
            durationMs: o.seconds * 1000,
            warmup: 4 * o.clients,
          });
          const text = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
          const runs = Number(/edgefit_batch_requests_count\{model="cnn"\} (\d+)/.exec(text)?.[1]);
          const reqs = Number(/edgefit_batch_requests_sum\{model="cnn"\} (\d+)/.exec(text)?.[1]);
          o.emit(
            JSON.stringify({
              bench: 'serve-load',
              model: 'cnn-s',
              precision: 'int8',
              threads: 1,
              body: kind,
              batching,
              round,
              clients: o.clients,
              requests: r.requests,
              ok: r.ok,
              statuses: r.statuses,
              throughput_rps: +r.throughput.toFixed(1),
              p50_ms: +r.p50Ms.toFixed(2),
              p99_ms: +r.p99Ms.toFixed(2),
              mean_requests_per_run: +(reqs / runs).toFixed(2),
            }),
          );
        } finally {
          await s.stop();
        }
      }

  // 2. PSS of 4 workers: a 64 MiB weight, mapped or not, against the workers' baseline (the same graph, d=64)
  const d = 4096;
  const big = join(out, 'mm-big.onnx');
  const bigInline = join(out, 'mm-big-inline.onnx');
  const tiny = join(out, 'mm-tiny.onnx');
  if (!existsSync(big)) {
    o.log('building the 64 MiB MatMul models');
    saveModel(matmulModel(d, 1), big, { externalData: true, align: 4096 });
    saveModel(matmulModel(d, 1), bigInline);
    saveModel(matmulModel(64, 1), tiny, { externalData: true });
  }
  const weightBytes = (d * d + d * 16) * 4;
  const memRun = async (label: string, model: string, dim: number, extra: string[]) => {
    const s = await startServe(['--model', `mm=${model}`, '--workers', '4', '--threads', '1', ...extra]);
    try {
      // every worker runs the model (connections go round-robin), so all weight pages are touched
      await touch(s.port, 'mm', dim);
      await new Promise((r) => setTimeout(r, 500));
      const p = await pssOf(s.port);
      o.emit(
        JSON.stringify({
          bench: 'serve-memory',
          case: label,
          workers: 4,
          weight_bytes: dim === d ? weightBytes : (dim * dim + dim * 16) * 4,
          pss_total_mb: +(p.total / 2 ** 20).toFixed(1),
          pss_file_mb: +(p.file / 2 ** 20).toFixed(1),
          pss_anon_mb: +(p.anon / 2 ** 20).toFixed(1),
          pss_per_worker_mb: p.perWorker.map((x) => +(x / 2 ** 20).toFixed(1)),
        }),
      );
      return p.total;
    } finally {
      await s.stop();
    }
  };
  const baseline = await memRun('baseline (tiny model)', tiny, 64, []);
  const mapped = await memRun('external data, mapped, pre-packing off (default)', big, d, []);
  await memRun('external data, pre-packing on (--no-mmap)', big, d, ['--no-mmap']);
  await memRun('inline weights', bigInline, d, []);
  o.emit(
    JSON.stringify({
      bench: 'serve-memory',
      case: 'target check',
      weights_mb: +(weightBytes / 2 ** 20).toFixed(1),
      mapped_minus_baseline_mb: +((mapped - baseline) / 2 ** 20).toFixed(1),
      limit_mb: +((weightBytes * 1.25) / 2 ** 20).toFixed(1),
      within: mapped - baseline <= weightBytes * 1.25,
    }),
  );

  // 3. two task heads on one backbone vs one model (one process)
  const taskA = join(out, 'taskA.onnx');
  const taskB = join(out, 'taskB.onnx');
  const splitDir = join(out, 'split');
  if (!existsSync(join(splitDir, 'split.json'))) {
    saveModel(matmulModel(d, 1, 7), taskA, { externalData: true });
    saveModel(matmulModel(d, 1, 8), taskB, { externalData: true });
    await splitFiles([taskA, taskB], splitDir);
  }
  const procPss = async (label: string, args: string[], models: string[]) => {
    const s = await startServe([...args, '--threads', '1']);
    try {
      for (const m of models) await touch(s.port, m, d);
      await new Promise((r) => setTimeout(r, 500));
      const p = await pssOf(s.port);
      o.emit(
        JSON.stringify({
          bench: 'serve-split',
          case: label,
          pss_mb: +(p.total / 2 ** 20).toFixed(1),
          pss_file_mb: +(p.file / 2 ** 20).toFixed(1),
          pss_anon_mb: +(p.anon / 2 ** 20).toFixed(1),
        }),
      );
      return p.total;
    } finally {
      await s.stop();
    }
  };
  const one = await procPss('one model', ['--model', `taskA=${taskA}`], ['taskA']);
  await procPss(
    'two models, unsplit',
    ['--model', `taskA=${taskA}`, '--model', `taskB=${taskB}`],
    ['taskA', 'taskB'],
  );
  const split = await procPss(
    'backbone + two heads',
    ['--model', `tasks=${join(splitDir, 'split.json')}`],
    ['taskA', 'taskB'],
  );
  o.emit(
    JSON.stringify({
      bench: 'serve-split',
      case: 'target check',
      ratio: +(split / one).toFixed(3),
      within: split <= one * 1.1,
    }),
  );
}
