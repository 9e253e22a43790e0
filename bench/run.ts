// `npm run bench [-- <group> …] [--processes N] [--reps N]`: prints one SPEC JSON line per figure on stdout
// (see ../shared/bench/SPEC.md): the minimum over N fresh processes of the median of `reps` timed runs after 5
// warm-up runs. Groups: infer (FP32 inference of mlp, cnn-s, vit-t at batch 1 and 64, 2 and 1 threads);
// train-step (one SPEC optimisation step of mlp, cnn-s, vit-t at batch 64, 2 and 1 threads); quantize (INT8/INT4
// against FP32, see bench/quantize.ts; --models DIR for trained models); prune (bench/prune.ts; --only
// cnn-s,vit-t,torchvision); fuzz (decoder fuzzing, 10,000 mutated models); serve
// (the inference server on loopback: batching vs batch-1, PSS of workers, backbone + heads; --seconds, --requests,
// --clients bound the load).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { WorkerArgs } from './worker.js';
import { dataBench } from './data.js';
import { quantizeBench } from './quantize.js';
import { pruneBench } from './prune.js';
import { serveBench } from './serve.js';

const here = dirname(fileURLToPath(import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    processes: { type: 'string', default: '3' },
    reps: { type: 'string', default: '50' },
    models: { type: 'string' },
    only: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    requests: { type: 'string', default: '20000' },
    clients: { type: 'string', default: '64' },
  },
});
const processes = Number(values.processes);
const reps = Number(values.reps);
const groups = positionals.length ? positionals : ['infer'];

function measure(a: WorkerArgs): number {
  let best = Infinity;
  for (let p = 0; p < processes; p++) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'worker.ts'), JSON.stringify(a)], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`bench worker failed for ${JSON.stringify(a)}:\n${r.stderr}`);
    const line = r.stdout.trim().split('\n').pop()!;
    best = Math.min(best, (JSON.parse(line) as { median_ms: number }).median_ms);
  }
  return best;
}

for (const g of groups) {
  if (g === 'infer') {
    for (const model of ['mlp', 'cnn-s', 'vit-t'])
      for (const batch of [1, 64])
        for (const threads of [2, 1]) {
          const ms = measure({ bench: 'infer', model, precision: 'fp32', batch, threads, reps, warmup: 5 });
          process.stdout.write(
            `${JSON.stringify({ bench: 'infer', model, precision: 'fp32', batch, threads, median_ms: +ms.toFixed(4) })}\n`,
          );
        }
  } else if (g === 'train-step') {
    for (const model of ['mlp', 'cnn-s', 'vit-t'])
      for (const threads of [2, 1]) {
        const ms = measure({ bench: 'train-step', model, batch: 64, threads, reps, warmup: 5 });
        process.stdout.write(
          `${JSON.stringify({ bench: 'train-step', model, batch: 64, threads, median_ms: +ms.toFixed(4) })}\n`,
        );
      }
  } else if (g === 'data') {
    // PNG-folder decode items/s vs cnn-s ORT items/s at batch 64, and both in one eval pipeline (bench/data.ts)
    dataBench(processes, (line) => process.stdout.write(`${line}\n`));
  } else if (g === 'quantize') {
    // INT8/INT4 vs FP32: sizes, accuracy, calibration time, latency of each placement (bench/quantize.ts)
    await quantizeBench({
      models: values.models,
      measure,
      reps,
      processes,
      emit: (line) => process.stdout.write(`${line}\n`),
      log: (s) => process.stderr.write(`${s}\n`),
    });
  } else if (g === 'prune') {
    // structured pruning: cnn-s channels + fine-tune, pruned INT8, vit-t heads, torchvision families (bench/prune.ts)
    await pruneBench({
      models: values.models,
      measure,
      reps,
      only: values.only?.split(','),
      emit: (line) => process.stdout.write(`${line}\n`),
      log: (s) => process.stderr.write(`${s}\n`),
    });
  } else if (g === 'fuzz') {
    // decoder fuzzing at nightly size: 10,000 seeded mutations of torch exports (EDGEFIT_FUZZ_N to change);
    // exit 1 when any mutation gives an untyped error or one that does not name the file
    const { fuzzDecoder } = await import('../src/testing/fuzz.js');
    const r = fuzzDecoder(Number(process.env.EDGEFIT_FUZZ_N ?? 10_000));
    process.stdout.write(
      `${JSON.stringify({ bench: 'fuzz-decoder', mutations: r.mutations, decoded: r.decoded, rejected: r.rejected, violations: r.violations.length, seconds: Number(r.seconds.toFixed(1)) })}\n`,
    );
    for (const v of r.violations.slice(0, 10))
      process.stderr.write(`mutation ${v.index} (kind ${v.kind}): ${v.message}\n`);
    if (r.violations.length) process.exitCode = 1;
  } else if (g === 'serve') {
    // the inference server on loopback: batching vs batch-1, PSS of 4 workers, backbone + heads (bench/serve.ts)
    await serveBench({
      emit: (line) => process.stdout.write(`${line}\n`),
      log: (s) => process.stderr.write(`${s}\n`),
      seconds: Number(values.seconds),
      requests: Number(values.requests),
      clients: Number(values.clients),
    });
  } else {
    process.stderr.write(
      `unknown benchmark group "${g}" (known: infer, train-step, data, quantize, prune, fuzz, serve)\n`,
    );
    process.exitCode = 2;
  }
}
