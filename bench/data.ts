// The `data` benchmark group and the full-test-set check of bring-your-own data.
//
//   npm run bench -- data [--processes N]      PNG-folder decode items/s vs cnn-s ORT inference items/s at batch
//                                              64, and eval items/s with both in one pipeline (SPEC JSON lines)
//   tsx bench/data.ts check [model.onnx]       writes the 10,000 Fashion-MNIST test images as PNG class folders
//                                              and as .npz (bench/out/), runs `edgefit eval` on each and on
//                                              --data fashion-mnist, prints the three results and whether equal
//
// Each figure is measured in fresh processes (FACTS.md: 2-thread ORT timings are bimodal per process) and the
// best is printed. The PNG folder is made once in bench/out/ (gitignored).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommand } from '../src/cli/command.js';
import { evalCommand } from '../src/cli/commands/eval.js';
import { encodePng, loadDataset, openData, writeNpz, type DataSource } from '../src/data/index.js';
import { evaluate } from '../src/eval/index.js';
import { buildModel } from '../src/models/index.js';
import { Session } from '../src/runtime/index.js';

const here = dirname(fileURLToPath(import.meta.url));
export const OUT = join(here, 'out');
export const PNG_DIR = join(OUT, 'fashion-mnist-test-png');
export const NPZ_FILE = join(OUT, 'fashion-mnist-test.npz');

/** The Fashion-MNIST test split as PNG class folders 0..9 (and an .npz), made once. */
export function ensureExport(): void {
  if (existsSync(PNG_DIR) && existsSync(NPZ_FILE)) return;
  const ds = loadDataset('fashion-mnist', 'test');
  const tmp = `${PNG_DIR}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  const px = new Uint8Array(784);
  for (let i = 0; i < ds.n; i++) {
    for (let j = 0; j < 784; j++) px[j] = Math.round(ds.x[i * 784 + j]! * 255);
    const cls = join(tmp, String(ds.y[i]));
    if (i === 0 || ds.y[i] !== ds.y[i - 1]) mkdirSync(cls, { recursive: true });
    writeFileSync(join(cls, `${String(i).padStart(5, '0')}.png`), encodePng(px, 28, 28, 1));
  }
  rmSync(PNG_DIR, { recursive: true, force: true });
  renameSync(tmp, PNG_DIR);
  writeNpz(NPZ_FILE, {
    x: { dtype: 'float32', shape: [ds.n, 1, 28, 28], data: ds.x },
    y: { dtype: 'int64', shape: [ds.n], data: ds.y },
  });
}

export interface DataWorkerArgs {
  kind: 'decode' | 'infer' | 'eval';
  batch: number;
  threads?: number;
  decodeThreads?: number;
  format?: 'png-folder' | 'builtin';
}

async function warm(src: DataSource, batch: number): Promise<void> {
  // start decoder threads (if any) and fill caches outside the timing
  await src.read(Array.from({ length: batch }, (_, i) => i));
}

/** One measurement in this process: items per second. */
async function measureOnce(a: DataWorkerArgs): Promise<number> {
  const model = buildModel('cnn-s', { seed: 0 });
  if (a.kind === 'decode') {
    const src = await openData(PNG_DIR, { model, decodeThreads: a.decodeThreads ?? 0 });
    await warm(src, a.batch);
    const t0 = performance.now();
    let n = 0;
    for await (const b of src.batches({ batchSize: a.batch })) n += b.n;
    const s = (performance.now() - t0) / 1000;
    await src.close();
    return n / s;
  }
  if (a.kind === 'infer') {
    const ds = loadDataset('fashion-mnist', 'test');
    const session = await Session.create(model, { threads: a.threads ?? 2 });
    const feed = (k: number) => ({
      input: {
        dtype: 'float32' as const,
        dims: [a.batch, 1, 28, 28],
        data: ds.x.subarray(k * a.batch * 784, (k + 1) * a.batch * 784),
      },
    });
    for (let i = 0; i < 5; i++) await session.run(feed(i));
    const count = Math.floor(ds.n / a.batch);
    const t0 = performance.now();
    for (let k = 0; k < count; k++) await session.run(feed(k));
    const s = (performance.now() - t0) / 1000;
    await session.release();
    return (count * a.batch) / s;
  }
  const src = await openData(a.format === 'builtin' ? 'fashion-mnist' : PNG_DIR, {
    model,
    ...(a.decodeThreads !== undefined ? { decodeThreads: a.decodeThreads } : {}),
  });
  await warm(src, a.batch);
  const session = await Session.create(model, { threads: a.threads ?? 2 });
  const first = await src.read(Array.from({ length: a.batch }, (_, i) => i));
  for (let i = 0; i < 5; i++) await session.run(first.feeds);
  const r = await evaluate(session, src, { batchSize: a.batch });
  await session.release();
  await src.close();
  return r.n / r.seconds;
}

/** Best items/s over `processes` fresh processes. */
function measure(a: DataWorkerArgs, processes: number): number {
  let best = 0;
  for (let p = 0; p < processes; p++) {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), 'worker', JSON.stringify(a)],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`data bench worker failed for ${JSON.stringify(a)}:\n${r.stderr}`);
    best = Math.max(
      best,
      (JSON.parse(r.stdout.trim().split('\n').pop()!) as { items_per_s: number }).items_per_s,
    );
  }
  return best;
}

/** The `data` group of bench/run.ts: prints SPEC-style JSON lines. */
export function dataBench(processes: number, write: (line: string) => void): void {
  ensureExport();
  const batch = 64;
  const items = 10_000;
  for (const decodeThreads of [0, 1, 2]) {
    const v = measure({ kind: 'decode', batch, decodeThreads }, processes);
    write(
      JSON.stringify({
        bench: 'data-decode',
        format: 'png-folder',
        dataset: 'fashion-mnist-test',
        items,
        batch,
        decode_threads: decodeThreads,
        items_per_s: Math.round(v),
      }),
    );
  }
  for (const threads of [2, 1]) {
    const v = measure({ kind: 'infer', batch, threads }, processes);
    write(
      JSON.stringify({
        bench: 'data-infer',
        model: 'cnn-s',
        precision: 'fp32',
        batch,
        threads,
        items_per_s: Math.round(v),
      }),
    );
  }
  for (const threads of [2, 1]) {
    const b = measure({ kind: 'eval', batch, threads, format: 'builtin' }, processes);
    write(
      JSON.stringify({
        bench: 'data-eval',
        model: 'cnn-s',
        format: 'builtin',
        batch,
        threads,
        items_per_s: Math.round(b),
      }),
    );
    for (const decodeThreads of [0, 1]) {
      const v = measure({ kind: 'eval', batch, threads, decodeThreads, format: 'png-folder' }, processes);
      write(
        JSON.stringify({
          bench: 'data-eval',
          model: 'cnn-s',
          format: 'png-folder',
          batch,
          threads,
          decode_threads: decodeThreads,
          items_per_s: Math.round(v),
        }),
      );
    }
  }
}

async function evalJson(
  model: string,
  data: string,
): Promise<{
  n: number;
  correct: number;
  accuracy: number;
  confusion: number[][];
  skipped: unknown[];
  seconds: number;
}> {
  const p = parseCommand(evalCommand, [model, '--data', data, '--json', '--quiet']);
  const r = await evalCommand.run(p, { out: () => {}, err: () => {}, quiet: true, json: true });
  return r.json as never;
}

/** Eval on the whole test set as PNG folders, as .npz and built in: the figures, and whether they are equal. */
export async function check(model: string): Promise<void> {
  ensureExport();
  const builtin = await evalJson(model, 'fashion-mnist');
  const png = await evalJson(model, PNG_DIR);
  const npz = await evalJson(model, NPZ_FILE);
  const same = (a: typeof builtin) =>
    a.n === builtin.n &&
    a.correct === builtin.correct &&
    JSON.stringify(a.confusion) === JSON.stringify(builtin.confusion);
  const line = (name: string, r: typeof builtin) => ({
    data: name,
    n: r.n,
    correct: r.correct,
    accuracy: r.accuracy,
    skipped: r.skipped.length,
    seconds: +r.seconds.toFixed(2),
  });
  process.stdout.write(
    `${JSON.stringify({ check: 'byo-data-fashion-test', model, results: [line('fashion-mnist', builtin), line('png-folder', png), line('npz', npz)], equal: same(png) && same(npz) })}\n`,
  );
  if (!same(png) || !same(npz)) process.exitCode = 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mode, arg] = process.argv.slice(2);
  if (mode === 'worker') {
    const v = await measureOnce(JSON.parse(arg!) as DataWorkerArgs);
    process.stdout.write(`${JSON.stringify({ items_per_s: v })}\n`);
  } else if (mode === 'check') {
    await check(arg ?? join(here, '..', 'test', 'fixtures', 'torch', 'cnn-s_op13.onnx'));
  } else {
    process.stderr.write(
      'usage: tsx bench/data.ts check [model.onnx]   (the benchmark: npm run bench -- data)\n',
    );
    process.exitCode = 2;
  }
}
