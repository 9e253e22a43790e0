// `npx tsx bench/distill.ts --teacher <cnn-s.onnx> [--student mlp:width=48,depth=1] [--epochs 1] [--limit N] [--alpha 0.1]
//   [--temperature 4] [--seed 0] [--threads 2] [--qat-epochs 1 (0: no QAT)] [--augment shift=2,flip] [--lr 0.05]
//   [--batch 64] [--no-scratch] [--logits-only | --skip-logits]`
// The distillation figures of BENCHMARKS.md, as JSON lines: the teacher's logits over the 60,000 Fashion-MNIST
// training images computed cold (fresh cache folder) and read back warm; then teacher / scratch / distilled /
// QAT + KD (INT8 QDQ) test accuracy, parameters, bytes and training time — the scratch student has the same
// initialisation, steps, schedule and seed as the distilled one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadDataset, subset } from '../src/data/index.js';
import {
  distill,
  loadTeacher,
  parseAugmentation,
  parseStudent,
  teacherLogits,
} from '../src/distill/index.js';

const { values } = parseArgs({
  options: {
    teacher: { type: 'string' },
    student: { type: 'string', default: 'mlp:width=48,depth=1' },
    epochs: { type: 'string', default: '1' },
    alpha: { type: 'string', default: '0.1' },
    temperature: { type: 'string', default: '4' },
    seed: { type: 'string', default: '0' },
    threads: { type: 'string', default: '2' },
    'qat-epochs': { type: 'string', default: '1' },
    augment: { type: 'string' },
    lr: { type: 'string' },
    batch: { type: 'string', default: '64' },
    'logits-only': { type: 'boolean' },
    'no-scratch': { type: 'boolean' },
    'skip-logits': { type: 'boolean' },
    limit: { type: 'string' },
  },
});
if (!values.teacher) throw new Error('--teacher <model.onnx> is required');
const threads = Number(values.threads);
const teacher = loadTeacher(values.teacher);
const train = loadDataset('fashion-mnist', 'train');
const test = loadDataset('fashion-mnist', 'test');
const line = (o: object) =>
  process.stdout.write(`${JSON.stringify({ bench: 'distill', teacher: values.teacher, ...o })}\n`);

if (!values['skip-logits']) {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-logits-'));
  try {
    const cold = await teacherLogits(
      teacher,
      { ...train, name: 'fashion-mnist/train' },
      { cacheDir: dir, threads },
    );
    const warm = await teacherLogits(
      teacher,
      { ...train, name: 'fashion-mnist/train' },
      { cacheDir: dir, threads },
    );
    line({
      figure: 'teacher-logits',
      rows: train.n,
      threads,
      cold_s: +cold.seconds.toFixed(3),
      warm_s: +warm.seconds.toFixed(3),
      warmCached: warm.cached,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
if (!values['logits-only']) {
  const spec = parseStudent(values.student!);
  const r = await distill({
    teacher,
    data: values.limit ? subset(train, Number(values.limit), Number(values.seed)) : train,
    test,
    student: spec,
    loss: { alpha: Number(values.alpha), temperature: Number(values.temperature) },
    epochs: Number(values.epochs),
    seed: Number(values.seed),
    threads,
    baselineScratch: !values['no-scratch'],
    ...(values.augment ? { augment: parseAugmentation(values.augment) } : {}),
    ...(values.lr ? { lr: { kind: 'cosine' as const, lr: Number(values.lr) } } : {}),
    batchSize: Number(values.batch),
    ...(Number(values['qat-epochs']) > 0 ? { qat: { epochs: Number(values['qat-epochs']) } } : {}),
    cacheDir: false,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  const fig = (name: string, f: { accuracy?: number; params: number; bytes: number; seconds?: number }) =>
    line({
      figure: name,
      student: values.student,
      epochs: Number(values.epochs),
      trainRows: values.limit ? Number(values.limit) : train.n,
      alpha: Number(values.alpha),
      temperature: Number(values.temperature),
      seed: Number(values.seed),
      augment: values.augment ?? 'none',
      ...(values.lr ? { lr: Number(values.lr) } : {}),
      batch: Number(values.batch),
      accuracy: f.accuracy,
      params: f.params,
      bytes: f.bytes,
      train_s: f.seconds === undefined ? null : +f.seconds.toFixed(1),
    });
  fig('teacher', r.teacher);
  if (r.scratch) fig('scratch', r.scratch);
  fig('distilled', r.student);
  if (r.qat) fig('qat+kd-int8', r.qat);
  line({
    figure: 'summary',
    student: values.student,
    paramsRatio: +(r.student.params / r.teacher.params).toFixed(4),
    gainOverScratchPoints: r.scratch ? +(100 * (r.student.accuracy! - r.scratch.accuracy!)).toFixed(2) : null,
    int8LossPoints: r.qat ? +(100 * (r.student.accuracy! - r.qat.accuracy!)).toFixed(2) : null,
    int8VsFakeQuantPoints:
      r.qat?.fakeQuantAccuracy === undefined
        ? null
        : +(100 * (r.qat.fakeQuantAccuracy - r.qat.accuracy!)).toFixed(2),
    steps: r.steps,
  });
}
