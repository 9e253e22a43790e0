// `npm run bench -- quantize [--models DIR] [--processes N] [--reps N]`: quantization figures (BENCHMARKS.md,
// "Quantization"). Builds the models once in this process, into bench/out/quant/, then times each in fresh worker
// processes (bench/worker.ts `infer-file`, the minimum over --processes of the median of --reps runs).
//   cnn-s   FP32 (after the clean-up passes) and static INT8 placements: the default (float stem), all layers
//           int8 with padded channels, all layers int8 without padding (the naive QDQ placement), int8
//           activations, per-tensor weights, the last Gemm float; batch 1 and 64, 2 and 1 threads.
//           Then `profile` lines: ORT's per-node kernel times (median of 100 profiled runs, src/runtime/profile.ts)
//           of FP32 and the default INT8 at batch 64, 1 and 2 threads — where the INT8 speed-up is won and lost.
//   mlp, vit-t  INT4 (MatMulNBits, block 32, round-to-nearest and GPTQ) and dynamic INT8 against FP32.
//   architectures  static INT8 of the torchvision exports and the DB-style text detector written by
//           `/usr/bin/python3 scripts/fixtures/gen_torchvision_models.py --preset bench` (bench/out/tv/; skipped
//           with a note when missing): FP32, the placement before issue 17 and the default, SQNR, kernels,
//           1-thread latency measured interleaved, and `profile-family` lines — where each family's INT8 time goes
//           (bench/quantize_arch.ts); `conv-ceiling` lines — FP32 vs every integer form of ORT's Conv on those
//           families' shapes alone (bench/conv_ceiling.ts).
// With --models DIR holding trained exports (DIR/cnn-s.onnx from `torch_reference.py ptq --out DIR`, DIR/mlp.onnx
// and DIR/vit-t.onnx from `scripts/fixtures/gen_quant_models.py --trained DIR`) the accuracy lines are meaningful;
// without it the untrained torch fixture and builder models are used (same graphs, same timings).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset, subset } from '../src/data/index.js';
import { evaluate } from '../src/eval/index.js';
import type { Model } from '../src/ir/index.js';
import { buildModel } from '../src/models/index.js';
import { encodeModel, loadModel, saveModel } from '../src/onnx/index.js';
import {
  ortKernels,
  prepareForQuantization,
  quantizeDynamic,
  quantizeInt4,
  quantizeStatic,
  type Feeds,
  type StaticQuantOptions,
} from '../src/passes/quantize/index.js';
import { TORCH_FIXTURES } from '../src/testing/fixtures.js';
import { profileModel } from '../src/runtime/index.js';
import type { WorkerArgs } from './worker.js';
import { archBench } from './quantize_arch.js';
import { convCeiling } from './conv_ceiling.js';

type Measure = (a: WorkerArgs) => number;
type Emit = (line: string) => void;

/** The first graph input of a model file. */
function inputName(path: string): string {
  return loadModel(path).graph.inputs.find((v) => !v.const)!.name;
}

function calibrationSet(n: number): Feeds[] {
  const ds = subset(loadDataset('fashion-mnist', 'train'), n, 0);
  const out: Feeds[] = [];
  for (let i = 0; i < ds.n; i += 64) {
    const k = Math.min(64, ds.n - i);
    out.push({
      input: { dtype: 'float32', dims: [k, 1, 28, 28], data: ds.x.subarray(i * 784, (i + k) * 784) },
    });
  }
  return out;
}

export async function quantizeBench(o: {
  models?: string;
  measure: Measure;
  reps: number;
  processes: number;
  emit: Emit;
  log: (s: string) => void;
}): Promise<void> {
  const out = join('bench', 'out', 'quant');
  mkdirSync(out, { recursive: true });
  const test = loadDataset('fashion-mnist', 'test');
  const testData = { ...test, numClasses: test.numClasses };
  const trained = (name: string) =>
    o.models && existsSync(join(o.models, `${name}.onnx`)) ? join(o.models, `${name}.onnx`) : undefined;
  const accuracy = async (m: Model) => (await evaluate(m, testData, { threads: 2 })).accuracy;
  const save = (m: Model, name: string) => {
    const p = join(out, `${name}.onnx`);
    saveModel(m, p);
    return p;
  };
  const time = (
    model: string,
    precision: string,
    path: string,
    extra: Record<string, unknown> = {},
    shapes = [1, 64],
  ) => {
    for (const batch of shapes)
      for (const threads of [2, 1]) {
        const ms = o.measure({ bench: 'infer-file', path, batch, threads, reps: o.reps, warmup: 5 });
        o.emit(
          JSON.stringify({
            bench: 'infer',
            model,
            precision,
            ...extra,
            batch,
            threads,
            median_ms: +ms.toFixed(4),
          }),
        );
      }
  };

  // ---------------------------------------------------------------------------------------------- cnn-s INT8
  const cnnSrc = trained('cnn-s') ?? join(TORCH_FIXTURES, 'cnn-s_op13.onnx');
  o.log(`cnn-s from ${cnnSrc}`);
  const fp32 = (await prepareForQuantization(loadModel(cnnSrc))).model;
  const calib = calibrationSet(512);
  const fp32Acc = await accuracy(fp32);
  const fp32Bytes = encodeModel(fp32).byteLength;
  const variants: [string, StaticQuantOptions][] = [
    ['default', {}],
    ['all-int8-padded', { floatStem: false }],
    ['all-int8-naive', { floatStem: false, padChannels: 1 }],
    ['int8-activations', { activationType: 'int8' }],
    ['per-tensor', { perChannel: false }],
    ['last-gemm-float', { exclude: ['/f2/Gemm'] }],
  ];
  const paths: [string, string][] = [['fp32', save(fp32, 'cnn-s.fp32')]];
  for (const [name, opts] of variants) {
    const t0 = performance.now();
    const r = await quantizeStatic(fp32, { calibration: calib, ...opts });
    const seconds = (performance.now() - t0) / 1000;
    const bytes = encodeModel(r.model).byteLength;
    const acc = await accuracy(r.model);
    const k = await ortKernels(r.model);
    o.emit(
      JSON.stringify({
        bench: 'quantize',
        model: 'cnn-s',
        mode: 'static',
        variant: name,
        calibrator: 'minmax',
        calib_samples: r.calibration?.samples ?? 0,
        calib_s: +(r.calibration?.seconds ?? 0).toFixed(3),
        quantize_s: +seconds.toFixed(3),
        bytes,
        size_ratio: +(bytes / fp32Bytes).toFixed(4),
        fp32_acc: fp32Acc,
        acc,
        drop_points: +((fp32Acc - acc) * 100).toFixed(2),
        kernels: k.ops,
      }),
    );
    paths.push([name, save(r.model, `cnn-s.int8.${name}`)]);
  }
  for (const calibrator of ['percentile', 'entropy', 'mse'] as const) {
    const r = await quantizeStatic(fp32, { calibration: calib, calibrator });
    const acc = await accuracy(r.model);
    o.emit(
      JSON.stringify({
        bench: 'quantize',
        model: 'cnn-s',
        mode: 'static',
        variant: 'default',
        calibrator,
        calib_samples: r.calibration?.samples ?? 0,
        calib_s: +(r.calibration?.seconds ?? 0).toFixed(3),
        fp32_acc: fp32Acc,
        acc,
        drop_points: +((fp32Acc - acc) * 100).toFixed(2),
      }),
    );
  }
  for (const [name, path] of paths)
    time('cnn-s', name === 'fp32' ? 'fp32' : 'int8', path, name === 'fp32' ? {} : { variant: name });
  // where the batch-64 time goes, FP32 against the default INT8 placement: ORT's per-node kernel times
  const x64 = calib[0]!.input!;
  for (const [name, path] of paths.filter(([n]) => n === 'fp32' || n === 'default'))
    for (const threads of [1, 2]) {
      const pr = await profileModel(path, { [inputName(path)]: x64 }, { threads, runs: 100, warmup: 10 });
      o.emit(
        JSON.stringify({
          bench: 'profile',
          model: 'cnn-s',
          precision: name === 'fp32' ? 'fp32' : 'int8',
          ...(name === 'fp32' ? {} : { variant: name }),
          batch: 64,
          threads,
          wall_ms: +pr.wallMs.toFixed(4),
          total_ms: +pr.totalMs.toFixed(4),
          nodes: pr.nodes.map((n) => ({ node: n.node, op: n.op, ms: +n.ms.toFixed(4) })),
        }),
      );
    }

  // ------------------------------------------------------------------------------------------- mlp, vit-t INT4
  for (const model of ['mlp', 'vit-t']) {
    const src = trained(model);
    o.log(`${model} from ${src ?? 'the builder (untrained)'}`);
    const f = (await prepareForQuantization(src ? loadModel(src) : buildModel(model, { seed: 0 }))).model;
    const fAcc = await accuracy(f);
    const fp = save(f, `${model}.fp32`);
    time(model, 'fp32', fp);
    for (const [method, blockSize] of [
      ['rtn', 32],
      ['gptq', 32],
      ['rtn', 64],
      ['gptq', 64],
      ['rtn', 128],
    ] as const) {
      const t0 = performance.now();
      const r = await quantizeInt4(f, {
        method,
        blockSize,
        calibration: method === 'gptq' ? calib : undefined,
      });
      const seconds = (performance.now() - t0) / 1000;
      const acc = await accuracy(r.model);
      o.emit(
        JSON.stringify({
          bench: 'quantize',
          model,
          mode: 'int4',
          method,
          block_size: blockSize,
          quantize_s: +seconds.toFixed(3),
          matmul_weight_bytes_fp32: r.weightBytesBefore,
          matmul_weight_bytes_int4: r.weightBytesAfter,
          weight_ratio: +(r.weightBytesAfter / r.weightBytesBefore).toFixed(4),
          fp32_acc: fAcc,
          acc,
          drop_points: +((fAcc - acc) * 100).toFixed(2),
        }),
      );
      if (method === 'gptq' && blockSize === 32)
        time(model, 'int4', save(r.model, `${model}.int4`), { method, block_size: blockSize });
    }
    const d = quantizeDynamic(f);
    const dAcc = await accuracy(d.model);
    o.emit(
      JSON.stringify({
        bench: 'quantize',
        model,
        mode: 'dynamic',
        fp32_acc: fAcc,
        acc: dAcc,
        drop_points: +((fAcc - dAcc) * 100).toFixed(2),
      }),
    );
    time(model, 'int8-dynamic', save(d.model, `${model}.dynamic`));
  }

  // ------------------------------------------------------------------------ architectures (issue 17)
  const tv = join('bench', 'out', 'tv');
  if (!existsSync(join(tv, 'models.json')))
    o.log(
      `architectures skipped: ${tv} has no models (run /usr/bin/python3 scripts/fixtures/gen_torchvision_models.py --preset bench)`,
    );
  else
    await archBench({
      dir: tv,
      processes: o.processes,
      rounds: 5,
      reps: 10,
      profile: true,
      emit: o.emit,
      log: o.log,
    });
  // the ceiling of ORT's integer convolutions on the shapes the mobile families lose on (bench/conv_ceiling.ts)
  for (const r of await convCeiling(40)) o.emit(JSON.stringify(r));
}
