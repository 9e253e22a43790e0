// Static INT8 on the architectures people deploy (issue 17): the torchvision exports and the DB-style text detector
// of `scripts/fixtures/gen_torchvision_models.py --preset bench` (random weights, written to bench/out/tv/).
// Per model:
//   - FP32 (after the clean-up passes), INT8 with the placement before issue 17 (`before`: `placement: false`) and
//     INT8 with the default placement, calibrated on Fashion-MNIST images resized to 64×64 (3 channels, ImageNet
//     normalisation; the detector gets 5×5 mosaics of them, 320×320);
//   - the SQNR of the output (logits / probability map) of each INT8 model against FP32, on 32 other images;
//   - the kernels ORT runs for the default INT8 model;
//   - latency at 1 thread (batch 16; the detector batch 1): the files are timed back to back in one process,
//     interleaved, `rounds` rounds of the median of `reps` runs, the minimum per file; then the minimum over
//     `processes` fresh processes (bench/worker.ts `infer-files`). Ratios from one process are the robust figure on
//     a loaded machine;
//   - `profile-family` lines: ORT's per-node kernel times (src/runtime/profile.ts) summed per family (float islands
//     around SiLU/Sigmoid/HardSwish and SE Mul, channel shuffle, un-folded BatchNorm, pooling, NHWC Transposes, …)
//     for FP32, `before` and the default INT8 model.
// `npx tsx bench/quantize_arch.ts [--dir bench/out/tv] [--only a,b] [--processes 3] [--rounds 5] [--reps 10]
//  [--variants name,…] [--no-profile] [--no-time]`, or as part of `npm run bench -- quantize`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadDataset, subset } from '../src/data/index.js';
import type { Model } from '../src/ir/index.js';
import { loadModel, saveModel } from '../src/onnx/index.js';
import {
  ortKernels,
  outputSqnr,
  prepareForQuantization,
  quantizeStatic,
  referenceOutputs,
  type Feeds,
  type StaticQuantOptions,
} from '../src/passes/quantize/index.js';
import { profileByFamily, profileModel } from '../src/runtime/index.js';
import { TORCHVISION_FAMILIES } from '../src/testing/torchvision.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The torchvision families the tests export (src/testing/torchvision.ts), plus the DB-style text detector. */
export const ARCHS = [...TORCHVISION_FAMILIES, 'dbnet'];

/** Placement variants: `before` is the placement before issue 17; `default` today's. Others are experiments. */
export const VARIANTS: Record<string, StaticQuantOptions> = {
  before: { placement: false },
  default: {},
  'no-hardswish': { placement: { hardSwish: false } },
  'no-hardsigmoid': { placement: { hardSigmoid: false } },
  'no-concat': {
    placement: { qlinear: ['Add', 'Mul', 'Sigmoid', 'LeakyRelu', 'AveragePool', 'GlobalAveragePool'] },
  },
  'no-sigmoid-mul': {
    placement: { qlinear: ['Add', 'LeakyRelu', 'AveragePool', 'GlobalAveragePool', 'Concat'] },
  },
  'no-pools': { placement: { qlinear: ['Add', 'Mul', 'Sigmoid', 'LeakyRelu', 'Concat'] } },
  'no-add': {
    placement: { qlinear: ['Mul', 'Sigmoid', 'LeakyRelu', 'AveragePool', 'GlobalAveragePool', 'Concat'] },
  },
  'no-slice-resize': { placement: { passThrough: false } },
  'no-affine-conv': { placement: { affineConv: false } },
  'stem-dw': { placement: { stemDepthwise: true } },
  'no-scale-fold': { placement: { scaleFold: false } },
  'no-pad-dw': { placement: { padDepthwise: false } },
};

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** Fashion-MNIST images (from `offset`) bilinearly resized to side×side, 3 channels, ImageNet-normalised. With
 * `tile` > 1 each image is a tile×tile mosaic of such images (the detector's 320×320 inputs). */
export function fashionImages(n: number, side: number, offset: number, tile = 1): Float32Array {
  const ds = subset(loadDataset('fashion-mnist', 'train'), offset + n * tile * tile, 0);
  const S = side * tile;
  const out = new Float32Array(n * 3 * S * S);
  const f = 27 / (side - 1);
  for (let i = 0; i < n; i++)
    for (let ty = 0; ty < tile; ty++)
      for (let tx = 0; tx < tile; tx++) {
        const src = offset + (i * tile + ty) * tile + tx;
        const img = ds.x.subarray(src * 784, (src + 1) * 784);
        for (let y = 0; y < side; y++) {
          const sy = y * f;
          const y0 = Math.floor(sy);
          const y1 = Math.min(27, y0 + 1);
          const wy = sy - y0;
          for (let x = 0; x < side; x++) {
            const sx = x * f;
            const x0 = Math.floor(sx);
            const x1 = Math.min(27, x0 + 1);
            const wx = sx - x0;
            const v =
              (1 - wy) * ((1 - wx) * img[y0 * 28 + x0]! + wx * img[y0 * 28 + x1]!) +
              wy * ((1 - wx) * img[y1 * 28 + x0]! + wx * img[y1 * 28 + x1]!);
            const p = (ty * side + y) * S + tx * side + x;
            for (let c = 0; c < 3; c++) out[((i * 3 + c) * S + 0) * S + p] = (v - MEAN[c]!) / STD[c]!;
          }
        }
      }
  return out;
}

function feeds(x: Float32Array, n: number, batch: number, side: number): Feeds[] {
  const per = 3 * side * side;
  const out: Feeds[] = [];
  for (let i = 0; i < n; i += batch) {
    const k = Math.min(batch, n - i);
    out.push({
      input: { dtype: 'float32', dims: [k, 3, side, side], data: x.subarray(i * per, (i + k) * per) },
    });
  }
  return out;
}

export interface ArchRow {
  model: string;
  batch: number;
  fp32_ms: number;
  /** Process CPU ms per run (the load-robust figure at 1 thread). */
  fp32_cpu_ms: number;
  variants: Record<
    string,
    {
      ms: number;
      speedup: number;
      cpu_ms: number;
      cpu_speedup: number;
      sqnr_db: number;
      kernels: Record<string, number>;
    }
  >;
}

/** Time `paths` back to back (interleaved) in `processes` fresh processes; per path the minimum wall and CPU ms. */
function timeInterleaved(
  paths: string[],
  o: { batch: number; shape: number[]; processes: number; rounds: number; reps: number },
): { wall: number[]; cpu: number[] } {
  const wall = paths.map(() => Infinity);
  const cpu = paths.map(() => Infinity);
  for (let p = 0; p < o.processes; p++) {
    const args = {
      bench: 'infer-files',
      paths,
      shape: o.shape,
      batch: o.batch,
      threads: 1,
      reps: o.reps,
      rounds: o.rounds,
      warmup: 3,
    };
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(here, 'worker.ts'), JSON.stringify(args)],
      {
        encoding: 'utf8',
      },
    );
    if (r.status !== 0) throw new Error(`bench worker failed for ${paths.join(', ')}:\n${r.stderr}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { median_ms: number[]; cpu_ms: number[] };
    res.median_ms.forEach((v, i) => (wall[i] = Math.min(wall[i]!, v)));
    res.cpu_ms.forEach((v, i) => (cpu[i] = Math.min(cpu[i]!, v)));
  }
  return { wall, cpu };
}

const kernelSummary = (ops: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(ops)
      .filter(([k]) => !/^(Constant|Identity)$/.test(k))
      .map(([k, v]) => [k.replace(/^com\.microsoft(\.nchwc)?:/, ''), v]),
  );

export async function archBench(o: {
  dir: string;
  only?: string[];
  variants?: string[];
  processes: number;
  rounds: number;
  reps: number;
  profile: boolean;
  /** Time the files (default true; false: quantize, SQNR, kernels and profiles only). */
  time?: boolean;
  emit: (line: string) => void;
  log: (s: string) => void;
}): Promise<ArchRow[]> {
  const out = join('bench', 'out', 'quant-arch');
  mkdirSync(out, { recursive: true });
  const variants = o.variants ?? ['before', 'default'];
  const rows: ArchRow[] = [];
  for (const name of o.only ?? ARCHS) {
    const src = join(o.dir, `${name}.onnx`);
    if (!existsSync(src)) {
      o.log(
        `${name}: ${src} missing (run /usr/bin/python3 scripts/fixtures/gen_torchvision_models.py --preset bench)`,
      );
      continue;
    }
    const det = name === 'dbnet';
    const side = det ? 320 : 64;
    const batch = det ? 1 : 16;
    const tile = det ? 5 : 1;
    const nCal = det ? 16 : 64;
    const nEval = det ? 8 : 32;
    const calib = feeds(fashionImages(nCal, 64, 0, tile), nCal, det ? 4 : 16, side);
    const evalSet = feeds(fashionImages(nEval, 64, 20_000, tile), nEval, det ? 4 : 16, side);
    const fp32 = (await prepareForQuantization(loadModel(src))).model;
    const fpPath = join(out, `${name}.fp32.onnx`);
    saveModel(fp32, fpPath);
    const ref = await referenceOutputs(fp32, evalSet, { threads: 2 });
    const paths = [fpPath];
    const models: Model[] = [];
    const row: ArchRow = { model: name, batch, fp32_ms: 0, fp32_cpu_ms: 0, variants: {} };
    for (const v of variants) {
      const t0 = performance.now();
      const r = await quantizeStatic(fp32, { calibration: calib, threads: 2, ...VARIANTS[v] });
      const p = join(out, `${name}.int8.${v}.onnx`);
      saveModel(r.model, p);
      paths.push(p);
      models.push(r.model);
      const sqnr = await outputSqnr(fp32, r.model, evalSet, { reference: ref, threads: 2 });
      const k = await ortKernels(r.model);
      row.variants[v] = {
        ms: 0,
        speedup: 0,
        cpu_ms: 0,
        cpu_speedup: 0,
        sqnr_db: +sqnr.toFixed(2),
        kernels: kernelSummary(k.ops),
      };
      o.log(
        `${name} ${v}: quantized in ${((performance.now() - t0) / 1000).toFixed(1)} s, SQNR ${sqnr.toFixed(2)} dB`,
      );
    }
    const none = paths.map(() => NaN);
    const t =
      o.time === false
        ? { wall: none, cpu: none }
        : timeInterleaved(paths, { batch, shape: [3, side, side], ...o });
    row.fp32_ms = +t.wall[0]!.toFixed(3);
    row.fp32_cpu_ms = +t.cpu[0]!.toFixed(3);
    variants.forEach((v, i) => {
      const r = row.variants[v]!;
      r.ms = +t.wall[i + 1]!.toFixed(3);
      r.speedup = +(t.wall[0]! / t.wall[i + 1]!).toFixed(3);
      r.cpu_ms = +t.cpu[i + 1]!.toFixed(3);
      r.cpu_speedup = +(t.cpu[0]! / t.cpu[i + 1]!).toFixed(3);
    });
    rows.push(row);
    o.emit(JSON.stringify({ bench: 'quantize-arch', threads: 1, ...row }));
    o.log(
      `${name}: FP32 ${row.fp32_ms} ms (CPU ${row.fp32_cpu_ms}); ` +
        variants
          .map((v) => {
            const r = row.variants[v]!;
            return `${v} ${r.ms} ms ${r.speedup}× (CPU ${r.cpu_ms} ms ${r.cpu_speedup}×) ${r.sqnr_db} dB`;
          })
          .join('; '),
    );
    if (!o.profile) continue;
    const x = {
      input: {
        dtype: 'float32' as const,
        dims: [batch, 3, side, side],
        data: fashionImages(batch, 64, 0, tile),
      },
    };
    for (const [label, p] of [['fp32', fpPath], ...variants.map((v, i) => [v, paths[i + 1]!])] as [
      string,
      string,
    ][]) {
      const modelNodes = new Set(loadModel(p).graph.nodes.map((n) => n.name));
      const pr = await profileModel(p, x, { threads: 1, runs: 20, warmup: 3 });
      const fam = profileByFamily(pr.nodes, modelNodes);
      o.emit(
        JSON.stringify({
          bench: 'profile-family',
          model: name,
          precision: label === 'fp32' ? 'fp32' : 'int8',
          ...(label === 'fp32' ? {} : { variant: label }),
          batch,
          threads: 1,
          total_ms: +pr.totalMs.toFixed(3),
          families: fam.map((f) => ({
            family: f.family,
            ms: +f.ms.toFixed(3),
            ops: Object.fromEntries(Object.entries(f.ops).map(([k, [c, t]]) => [k, [c, +t.toFixed(3)]])),
          })),
        }),
      );
      o.log(
        `  profile ${name} ${label}: ${pr.totalMs.toFixed(2)} ms = ` +
          fam.map((f) => `${f.family.replace(/ \(.*$/, '')} ${f.ms.toFixed(2)}`).join(', '),
      );
    }
  }
  return rows;
}

if (process.argv[1]?.endsWith('quantize_arch.ts')) {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string', default: join('bench', 'out', 'tv') },
      only: { type: 'string' },
      variants: { type: 'string' },
      processes: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '5' },
      reps: { type: 'string', default: '10' },
      'no-profile': { type: 'boolean', default: false },
      'no-time': { type: 'boolean', default: false },
    },
  });
  if (!existsSync(values.dir))
    throw new Error(
      `${values.dir} missing: run /usr/bin/python3 scripts/fixtures/gen_torchvision_models.py --preset bench`,
    );
  readFileSync(join(values.dir, 'models.json'));
  await archBench({
    dir: values.dir,
    only: values.only?.split(','),
    variants: values.variants?.split(','),
    processes: Number(values.processes),
    rounds: Number(values.rounds),
    reps: Number(values.reps),
    profile: !values['no-profile'],
    time: !values['no-time'],
    emit: (l) => process.stdout.write(`${l}\n`),
    log: (s) => process.stderr.write(`${s}\n`),
  });
}
