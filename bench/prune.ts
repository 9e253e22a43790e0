// `npm run bench -- prune [--models DIR]`: structured-pruning figures (BENCHMARKS.md, "Pruning"). Trains the SPEC
// models on Fashion-MNIST with `edgefit train` into bench/out/prune/ once (the file name holds the recipe, so a rerun
// reuses it; or takes DIR/cnn-s.onnx, DIR/vit-t.onnx), then:
//   cnn-s   (3 epochs, SGD) 50 % of the channels removed (L1, two steps of 25 % with 600 fine-tuning steps each, SGD
//           lr 0.01): accuracy on the 10,000 test rows before/after, parameters, MACs, batch-64 latency (1 and 2
//           threads, minimum over --processes fresh processes of the median of --reps runs); then static INT8 of the
//           pruned file: size against the FP32 cnn-s and accuracy.
//   vit-t   (10 epochs, AdamW 1e-3, 200 warm-up steps) 50 % of the heads removed in VIT_RECIPE's steps (head-mask
//           gradient scores), each step fine-tuned with AdamW and distillation from the unpruned model.
//   torchvision families (scripts/fixtures/gen_prune_models.py bench: random init, 3×64×64): 50 % of the channels
//           by L1 magnitude; parameters, MACs, batch-1 latency (1 thread, fresh processes; the original re-encoded by
//           edgefit, like the pruned file) before/after, output shapes.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset, subset } from '../src/data/index.js';
import { evaluate } from '../src/eval/index.js';
import type { Model } from '../src/ir/index.js';
import { loadModel, saveModel } from '../src/onnx/index.js';
import { prune, type PruneOptions } from '../src/passes/prune/index.js';
import { quantizeStatic } from '../src/passes/quantize/index.js';
import { runModel } from '../src/runtime/index.js';
import { summarize } from '../src/summary/summary.js';
import { torchModels } from '../src/testing/torchgen.js';
import type { WorkerArgs } from './worker.js';

type Emit = (line: string) => void;
const CNN_FINETUNE_STEPS = 600;
const here = dirname(fileURLToPath(import.meta.url));
const ROOT = join(here, '..');

/** The SPEC baselines: `edgefit train` flags (defaults: SGD 0.05 for cnn-s, AdamW 1e-3 wd 0.01 for vit-t, cosine). */
const BASELINES = {
  'cnn-s': { file: 'cnn-s.e3.onnx', flags: ['--epochs', '3'] },
  'vit-t': { file: 'vit-t.e10-w200.onnx', flags: ['--epochs', '10', '--warmup', '200'] },
} as const;

/** vit-t heads: two steps of 25 % of the original heads (4 → 3 → 2 per block), each fine-tuned with distillation. */
export const VIT_RECIPE = {
  ratio: 0,
  heads: 0.5,
  step: 0.25,
  finetuneSteps: 2000,
  importance: 'taylor',
  optimizer: { kind: 'adamw', weightDecay: 0.01 },
  lr: 1e-3,
  warmup: 100,
  distill: { temperature: 4, alpha: 0.5 },
} as const satisfies PruneOptions;

function trained(
  name: 'cnn-s' | 'vit-t',
  dir: string | undefined,
  out: string,
  log: (s: string) => void,
): string {
  const given = dir && join(dir, `${name}.onnx`);
  if (given && existsSync(given)) return given;
  const { file, flags } = BASELINES[name];
  const path = join(out, file);
  if (existsSync(path)) return path;
  log(`training ${name} (${flags.join(' ')}) …`);
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'bin', 'edgefit.mjs'),
      'train',
      '--model',
      name,
      '--data',
      'fashion-mnist',
      ...flags,
      '--out',
      path,
      '--quiet',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (r.status !== 0) throw new Error(`edgefit train ${name} failed`);
  return path;
}

export async function pruneBench(o: {
  models?: string;
  measure: (a: WorkerArgs) => number;
  reps: number;
  emit: Emit;
  log: (s: string) => void;
  only?: string[];
}): Promise<void> {
  const out = join(here, 'out', 'prune');
  mkdirSync(out, { recursive: true });
  const want = (k: string) => !o.only?.length || o.only.includes(k);
  const train = loadDataset('fashion-mnist', 'train');
  const test = loadDataset('fashion-mnist', 'test');
  const acc = async (m: Model | string) => (await evaluate(m, test, { threads: 2 })).accuracy;
  const lat = (path: string, batch: number, threads: number, shape?: number[]) =>
    +o.measure({ bench: 'infer-file', path, batch, threads, reps: o.reps, warmup: 5, shape }).toFixed(4);

  if (want('cnn-s')) {
    const src = trained('cnn-s', o.models, out, o.log);
    const model = loadModel(src);
    const t0 = performance.now();
    const r = await prune(
      model,
      {
        ratio: 0.5,
        step: 0.25,
        finetuneSteps: CNN_FINETUNE_STEPS,
        lr: 0.01,
        importance: 'l1',
        seed: 0,
        threads: 2,
        log: o.log,
      },
      { train, val: test },
    );
    const seconds = (performance.now() - t0) / 1000;
    const path = join(out, 'cnn-s.pruned.onnx');
    saveModel(r.model, path);
    const rep = r.report;
    const line: Record<string, unknown> = {
      bench: 'prune',
      model: 'cnn-s',
      channels_removed: 0.5,
      finetune_steps: CNN_FINETUNE_STEPS,
      accuracy_before: rep.accuracyBefore,
      accuracy_after: rep.accuracyAfter,
      drop_points: +((rep.accuracyBefore! - rep.accuracyAfter!) * 100).toFixed(2),
      params_before: rep.paramsBefore,
      params_after: rep.paramsAfter,
      params_ratio: +(rep.paramsAfter / rep.paramsBefore).toFixed(4),
      macs_before: rep.macsBefore,
      macs_after: rep.macsAfter,
      seconds: +seconds.toFixed(1),
    };
    for (const threads of [1, 2]) {
      const a = lat(src, 64, threads);
      const b = lat(path, 64, threads);
      line[`b64_t${threads}_ms_before`] = a;
      line[`b64_t${threads}_ms_after`] = b;
      line[`b64_t${threads}_speedup`] = +(a / b).toFixed(2);
    }
    o.emit(JSON.stringify(line));
    // pruned, then static INT8 (the existing quantizer on the pruned file)
    const calib = subset(train, 512, 0);
    const feeds = [];
    for (let i = 0; i < calib.n; i += 64)
      feeds.push({
        input: {
          dtype: 'float32' as const,
          dims: [64, 1, 28, 28],
          data: calib.x.subarray(i * 784, (i + 64) * 784),
        },
      });
    const q = await quantizeStatic(r.model, { calibration: feeds });
    const qpath = join(out, 'cnn-s.pruned.int8.onnx');
    const saved = saveModel(q.model, qpath);
    const fp32Bytes = readFileSync(src).byteLength;
    const qacc = await acc(qpath);
    o.emit(
      JSON.stringify({
        bench: 'prune+int8',
        model: 'cnn-s',
        fp32_file_bytes: fp32Bytes,
        pruned_int8_file_bytes: saved.modelBytes,
        smaller: +(fp32Bytes / saved.modelBytes).toFixed(2),
        accuracy_fp32: rep.accuracyBefore,
        accuracy_pruned_int8: qacc,
        drop_points: +((rep.accuracyBefore! - qacc) * 100).toFixed(2),
        b64_t1_ms: lat(qpath, 64, 1),
      }),
    );
  }

  if (want('vit-t')) {
    const src = trained('vit-t', o.models, out, o.log);
    const model = loadModel(src);
    const t0 = performance.now();
    const r = await prune(model, { ...VIT_RECIPE, seed: 0, threads: 2, log: o.log }, { train, val: test });
    const seconds = (performance.now() - t0) / 1000;
    const path = join(out, 'vit-t.heads.onnx');
    saveModel(r.model, path);
    const rep = r.report;
    o.emit(
      JSON.stringify({
        bench: 'prune-heads',
        model: 'vit-t',
        heads_removed: VIT_RECIPE.heads,
        step: VIT_RECIPE.step,
        finetune_steps: VIT_RECIPE.finetuneSteps,
        distill: VIT_RECIPE.distill,
        kept: rep.heads?.blocks.map((b) => b.kept),
        steps: rep.steps.map((st) => st.accuracy),
        accuracy_before: rep.accuracyBefore,
        accuracy_after: rep.accuracyAfter,
        drop_points: +((rep.accuracyBefore! - rep.accuracyAfter!) * 100).toFixed(2),
        params_before: rep.paramsBefore,
        params_after: rep.paramsAfter,
        macs_before: rep.macsBefore,
        macs_after: rep.macsAfter,
        b64_t1_ms_before: lat(src, 64, 1),
        b64_t1_ms_after: lat(path, 64, 1),
        seconds: +seconds.toFixed(1),
      }),
    );
  }

  if (want('torchvision')) {
    const gen = torchModels('bench');
    if ('skip' in gen) throw new Error(gen.skip);
    const list = JSON.parse(readFileSync(join(gen.dir, 'done.json'), 'utf8')) as {
      name: string;
      input: number[];
    }[];
    for (const { name, input } of list) {
      const model = loadModel(join(gen.dir, `${name}.onnx`));
      const r = await prune(model, { ratio: 0.5, importance: 'l1' });
      const pruned = join(out, `${name}.pruned.onnx`);
      saveModel(r.model, pruned);
      // the original as edgefit writes it: ORT runs torch's own file of some of these models ~20× slower than the
      // same graph re-encoded (mobilenet_v2 29 ms vs 1.5 ms at b1), which would flatter the pruned model
      const original = join(out, `${name}.onnx`);
      saveModel(model, original);
      const x = {
        input: {
          dtype: 'float32' as const,
          dims: [1, ...input],
          data: new Float32Array(input.reduce((a, b) => a * b, 1)).fill(0.5),
        },
      };
      const [a, b] = [await runModel(model, x), await runModel(r.model, x)];
      const sa = summarize(model);
      const groups = r.report.groups;
      o.emit(
        JSON.stringify({
          bench: 'prune-torchvision',
          model: name,
          params_before: r.report.paramsBefore,
          params_after: r.report.paramsAfter,
          params_ratio: +(r.report.paramsAfter / r.report.paramsBefore).toFixed(4),
          macs_before: sa.macs,
          macs_after: r.report.macsAfter,
          prunable_groups: groups.filter((g) => g.prunable).length,
          groups: groups.length,
          same_output_shape: JSON.stringify(a.logits!.dims) === JSON.stringify(b.logits!.dims),
          b1_t1_ms_before: lat(original, 1, 1, input),
          b1_t1_ms_after: lat(pruned, 1, 1, input),
        }),
      );
    }
  }
}
