// Knowledge distillation: train a small student on a teacher's softened outputs (and the labels, when there are
// any) with the ordinary trainer — the loss is the trainer's distillation loss (./loss.ts), the teacher logits come
// in as the trainer's extra per-batch inputs: gathered from the on-disk cache (./teacher.ts) by row index, or
// computed online per batch when the batch is augmented (the trainer's batch transform) or features are distilled.
//
// The student is a family spec (./students.ts), a ready model, or chosen by a device profile (./profile.ts).
// Options: a scratch baseline (the same student, same initialisation, steps, schedule and seed, trained with
// cross-entropy only), and QAT + KD (fine-tune the distilled student with fake quantization and the same KD
// loss, exported in the QDQ form of `quantize --mode qat`).
import { InputError } from '../errors.js';
import { evaluate } from '../eval/evaluate.js';
import type { Model } from '../ir/graph.js';
import { encodeModel } from '../onnx/index.js';
import { TRAINING_SAFE_PASSES, runPasses } from '../passes/index.js';
import { type PruneOptions, type PruneReport, prune } from '../passes/prune/index.js';
import { quantizeAwareTrain } from '../qat/qat.js';
import type { EpochRecord } from '../train/checkpoint.js';
import type { LrSchedule } from '../train/schedule.js';
import { type TrainData, type TrainOptions, train } from '../train/trainer.js';

type ExtraInputs = NonNullable<NonNullable<TrainOptions['hooks']>['extraInputs']>;
type TransformBatch = NonNullable<NonNullable<TrainOptions['hooks']>['transformBatch']>;
import type { OptimizerSpec } from '../train/types.js';
import type { HostTensor } from '../runtime/index.js';
import type { ProgressOptions } from '../util/progress.js';
import { type Augmentation, augmentBatch, describeAugmentation, isAugmenting } from './augment.js';
import { type KdLoss, addProjection, kdLossSpec, stripProjection } from './loss.js';
import { type DeviceProfile, type ProfileChoice, chooseStudent } from './profile.js';
import { FAMILY_INFO, type StudentSpec, buildStudent, formatStudent, studentParams } from './students.js';
import { type Teacher, TeacherRunner, gatherRows, loadTeacher, teacherLogits } from './teacher.js';

export interface FeatureDistillation {
  /** Tensor of the teacher (e.g. its last feature map). */
  teacher: string;
  /** Tensor of the student, projected (learned 1×1) to the teacher's channels. */
  student: string;
  /** β, the weight of the MSE term (default 1). */
  weight?: number;
}

export interface DistillOptions {
  /** An ONNX file, a model, or a loaded teacher. */
  teacher: string | Model | Teacher;
  /** Training rows. Labels are used unless `unlabeled` (then `y` may be anything: it is replaced). */
  data: TrainData;
  /** Validation rows (labelled): the best epoch by validation accuracy is kept. */
  val?: TrainData;
  /** Test rows (labelled): teacher, student, scratch and QAT accuracies. */
  test?: TrainData;
  /** The student: a family spec, or a ready model (its float initializers are trained). */
  student?: StudentSpec | Model;
  /** Or: a device profile chooses the student. */
  device?: DeviceProfile;
  /**
   * Or: the student is a structurally pruned copy of the teacher (src/passes/prune: channels, heads, blocks), then
   * fine-tuned with KD. Its scratch baseline is the same pruned copy fine-tuned with cross-entropy only.
   */
  prune?: PruneOptions;
  /** The profile's choice may not exceed this fraction of the teacher's parameters (e.g. 0.1). */
  maxParamsRatio?: number;
  /** Temperature (default 4), alpha = CE weight (default 0.5; 0 when unlabeled). */
  loss?: KdLoss;
  /** The student learns from the teacher alone: no labels are read (alpha is 0). */
  unlabeled?: boolean;
  feature?: FeatureDistillation;
  augment?: Augmentation;
  /** Default 3. */
  epochs?: number;
  /** Default 64. */
  batchSize?: number;
  /** Default: cosine from 0.05 (SGD, momentum 0.9) for convolutional/MLP students, from 2e-3 (AdamW) for token mixers. */
  lr?: LrSchedule;
  optimizer?: OptimizerSpec;
  /** Initialisation, shuffling and augmentation seed (default 0). */
  seed?: number;
  threads?: number;
  /** Also train the same student from scratch (cross-entropy only, same steps, initialisation and seed). */
  baselineScratch?: boolean;
  /** QAT + KD after distillation: `epochs` (default 1) and `lr` (default cosine from 0.005). */
  qat?: { epochs?: number; lr?: LrSchedule };
  /** Teacher-logit cache folder (default ~/.cache/edgefit/teacher-logits); false: none. */
  cacheDir?: string | false;
  log?: (line: string) => void;
  progress?: ProgressOptions;
}

export interface ModelFigures {
  accuracy?: number;
  params: number;
  /** Bytes of the serialized model. */
  bytes: number;
  seconds?: number;
}

export interface DistillResult {
  /** The distilled float student. */
  model: Model;
  /** The student's spec (when built from a family). */
  spec?: StudentSpec;
  /** The device profile's choice and reasons. */
  choice?: ProfileChoice;
  /** The pruning report (pruned-teacher students). */
  prune?: PruneReport;
  teacher: ModelFigures;
  student: ModelFigures;
  scratch?: ModelFigures & { model: Model };
  /** QAT + KD: the QDQ INT8 model and its figures (`floatAccuracy`: its fake-quant float self). */
  qat?: ModelFigures & { model: Model; fakeQuantAccuracy?: number };
  /** How the teacher's logits were had. */
  teacherLogits: { mode: 'cached' | 'computed' | 'online'; seconds: number; file?: string };
  loss: {
    temperature: number;
    alpha: number;
    feature?: { teacher: string; student: string; weight: number };
  };
  augmentation: string;
  history: EpochRecord[];
  steps: number;
  seconds: number;
  notes: string[];
}

function bytesOf(m: Model): number {
  return encodeModel(m).byteLength;
}

async function accuracyOf(m: Model, test: TrainData | undefined, threads: number | undefined, label: string) {
  return test ? (await evaluate(m, test, { threads, label })).accuracy : undefined;
}

function inputRow(teacher: Teacher, data: TrainData): void {
  const v = teacher.model.graph.inputs.find((i) => i.name === teacher.inputName)!;
  const s = v.shape;
  if (s && s.length === data.inputShape.length + 1)
    s.slice(1).forEach((d, i) => {
      if (typeof d === 'number' && d !== data.inputShape[i])
        throw new InputError(
          'teacher-input-shape',
          `The teacher's input "${v.name}" takes rows [${s.slice(1).map((x) => x ?? '?')}]; the data's rows are [${data.inputShape}]`,
          { value: v.name, ...(teacher.file ? { file: teacher.file } : {}) },
        );
    });
}

/** Distil `opts.teacher` into a student. */
export async function distill(opts: DistillOptions): Promise<DistillResult> {
  const t0 = performance.now();
  const notes: string[] = [];
  const log = opts.log ?? (() => {});
  const seed = opts.seed ?? 0;
  const threads = opts.threads;
  const teacher =
    typeof opts.teacher === 'object' && 'hash' in opts.teacher ? opts.teacher : loadTeacher(opts.teacher);
  const data = opts.data;
  inputRow(teacher, data);
  const teacherParams = studentParams(teacher.model);

  // the student
  if ((opts.student ? 1 : 0) + (opts.device ? 1 : 0) + (opts.prune ? 1 : 0) !== 1)
    throw new InputError(
      'distill-student',
      'Give exactly one of a student (family spec or model), a device profile and pruning options',
      {
        value: 'student',
      },
    );
  const classes = data.numClasses || (await classesOf(teacher, data));
  const shape = { input: data.inputShape, classes };
  let choice: ProfileChoice | undefined;
  let spec: StudentSpec | undefined;
  if (opts.device) {
    const device =
      opts.maxParamsRatio !== undefined
        ? {
            ...opts.device,
            maxParams: Math.min(
              opts.device.maxParams ?? Infinity,
              Math.floor(opts.maxParamsRatio * teacherParams),
            ),
          }
        : opts.device;
    choice = chooseStudent(device, shape);
    spec = choice.spec;
    for (const r of choice.reasons) log(`device: ${r}`);
    log(`device: chose ${formatStudent(spec)}`);
  } else if (opts.student && !('graph' in opts.student)) spec = opts.student;
  let pruned: { model: Model; report: PruneReport } | undefined;
  if (opts.prune) {
    // a training-safe copy of the teacher (exporters' computed shapes folded), pruned with the training rows
    const safe = (await runPasses(teacher.model.clone(), TRAINING_SAFE_PASSES)).model;
    pruned = await prune(
      safe,
      { seed, ...(threads !== undefined ? { threads } : {}), log, ...opts.prune },
      { train: data },
    );
    log(`pruned student: ${pruned.report.paramsBefore} → ${pruned.report.paramsAfter} params`);
  }
  const fresh = (): Model =>
    spec ? buildStudent(spec, shape, seed) : pruned ? pruned.model.clone() : (opts.student as Model).clone();

  const unlabeled = !!opts.unlabeled;
  const alpha = unlabeled ? 0 : (opts.loss?.alpha ?? 0.5);
  if (unlabeled && opts.loss?.alpha)
    throw new InputError(
      'distill-unlabeled',
      `Unlabeled distillation learns from the teacher alone: alpha must be 0 (got ${opts.loss.alpha})`,
      {
        value: 'alpha',
      },
    );
  if (unlabeled && opts.baselineScratch)
    throw new InputError(
      'distill-unlabeled',
      'A scratch baseline needs labels: it cannot run with unlabeled data',
      {
        value: 'baseline-scratch',
      },
    );
  const temperature = opts.loss?.temperature ?? 4;
  const aug = opts.augment;
  const augmenting = isAugmenting(aug);
  const online = augmenting || !!opts.feature;

  // teacher logits: cached over the whole training set, or online per batch
  let cached: { logits: Float32Array; classes: number } | undefined;
  let logitInfo: DistillResult['teacherLogits'];
  if (!online) {
    const tl = await teacherLogits(teacher, data, {
      cacheDir: opts.cacheDir,
      augmentation: describeAugmentation(aug),
      threads,
    });
    cached = tl;
    logitInfo = {
      mode: tl.cached ? 'cached' : 'computed',
      seconds: tl.seconds,
      ...(tl.file ? { file: tl.file } : {}),
    };
    log(
      `teacher logits: ${tl.cached ? 'read from the cache' : 'computed'} for ${data.n} rows in ${tl.seconds.toFixed(2)} s`,
    );
    if (tl.classes !== classes)
      throw new InputError(
        'teacher-classes',
        `The teacher scores ${tl.classes} classes; the data has ${classes}`,
        { value: teacher.outputName, ...(teacher.file ? { file: teacher.file } : {}) },
      );
  } else logitInfo = { mode: 'online', seconds: 0 };

  // unlabeled: labels are never read; y holds the teacher's argmax only for the trainer's running accuracy
  let trainData: TrainData = classes === data.numClasses ? data : { ...data, numClasses: classes };
  if (unlabeled) {
    const y = new BigInt64Array(data.n);
    if (cached)
      for (let i = 0; i < data.n; i++) {
        let best = 0;
        for (let j = 1; j < cached.classes; j++)
          if (cached.logits[i * cached.classes + j]! > cached.logits[i * cached.classes + best]!) best = j;
        y[i] = BigInt(best);
      }
    trainData = { ...trainData, y };
  }

  // the student model, with the feature projection when distilling features
  const student = fresh();
  let featureSpec: { value: string; weight: number } | undefined;
  let runner: TeacherRunner | undefined;
  if (online)
    runner = await TeacherRunner.create(teacher, {
      threads,
      features: opts.feature ? [opts.feature.teacher] : [],
    });
  try {
    if (opts.feature) {
      // the teacher feature's per-row shape, from one row
      const probe = await runner!.run(
        data.x.subarray(
          0,
          data.inputShape.reduce((a, b) => a * b, 1),
        ),
        1,
        data.inputShape,
      );
      const tf = probe[runner!.features[0]!]!;
      const proj = addProjection(student, opts.feature.student, tf.dims.slice(1), seed);
      featureSpec = { value: proj.value, weight: opts.feature.weight ?? 1 };
    }
    const lossSpec = kdLossSpec({ temperature, alpha, ...(featureSpec ? { feature: featureSpec } : {}) });
    const rowShape = data.inputShape;
    // augmentation: the trainer's batch transform, seeded by (seed, step); the teacher then sees the same images
    const augmentAt =
      (offset: number): TransformBatch =>
      (batch, at) =>
        augmentBatch(batch.x, batch.n, rowShape, aug!, seed, offset + at.step, batch.y);
    const transform = augmenting ? { transformBatch: augmentAt(0) } : {};
    const extraInputs: ExtraInputs = async (indices, batch) => {
      if (cached) return { teacher_logits: gatherRows(cached.logits, cached.classes, indices) };
      // online: the teacher on the (augmented) batch the student is fed
      const r = await runner!.run(batch.x, batch.n, rowShape);
      const out: Record<string, HostTensor> = { teacher_logits: copy(r[teacher.outputName]!) };
      if (opts.feature) out.teacher_features = copy(r[runner!.features[0]!]!);
      if (unlabeled) argmaxInto(out.teacher_logits!, batch.y);
      return out;
    };

    const tokenFamily = spec ? FAMILY_INFO[spec.family].attention || spec.family === 'mixer' : false;
    const optimizer: OptimizerSpec =
      opts.optimizer ?? (tokenFamily ? { kind: 'adamw', weightDecay: 0.01 } : { kind: 'sgd', momentum: 0.9 });
    const lr: LrSchedule = opts.lr ?? { kind: 'cosine', lr: optimizer.kind === 'adamw' ? 2e-3 : 0.05 };
    const epochs = opts.epochs ?? 3;
    const common = {
      epochs,
      batchSize: opts.batchSize ?? 64,
      optimizer,
      lr,
      seed,
      ...(opts.val && !unlabeled ? { val: opts.val, selection: { keepBest: true } } : {}),
    };
    const run = (label: string): TrainOptions['run'] => ({
      ...(threads !== undefined ? { threads } : {}),
      log,
      ...(opts.progress ? { progress: { ...opts.progress, label } } : {}),
    });

    const teacherAccuracy = await accuracyOf(teacher.model, opts.test, threads, 'teacher');
    if (teacherAccuracy !== undefined) log(`teacher: test accuracy ${(100 * teacherAccuracy).toFixed(2)}%`);

    const tStudent = performance.now();
    const tr = await train(student, {
      ...common,
      data: trainData,
      loss: lossSpec,
      hooks: { extraInputs, ...transform },
      run: run('distill'),
    });
    const model = featureSpec ? stripProjection(tr.model) : tr.model;
    const studentSeconds = (performance.now() - tStudent) / 1000;
    const studentAccuracy = await accuracyOf(model, opts.test, threads, 'student');
    if (studentAccuracy !== undefined) log(`student: test accuracy ${(100 * studentAccuracy).toFixed(2)}%`);

    const result: DistillResult = {
      model,
      teacher: {
        params: teacherParams,
        bytes: bytesOf(teacher.model),
        ...(teacherAccuracy !== undefined ? { accuracy: teacherAccuracy } : {}),
      },
      student: {
        params: studentParams(model),
        bytes: bytesOf(model),
        seconds: studentSeconds,
        ...(studentAccuracy !== undefined ? { accuracy: studentAccuracy } : {}),
      },
      teacherLogits: logitInfo,
      loss: {
        temperature,
        alpha,
        ...(opts.feature
          ? {
              feature: {
                teacher: opts.feature.teacher,
                student: opts.feature.student,
                weight: featureSpec!.weight,
              },
            }
          : {}),
      },
      augmentation: describeAugmentation(aug),
      history: tr.history,
      steps: tr.steps,
      seconds: 0,
      notes,
    };
    if (spec) result.spec = spec;
    if (pruned) result.prune = pruned.report;
    if (choice) result.choice = choice;

    if (opts.baselineScratch) {
      // same student, same initialisation (seed), schedule and steps; cross-entropy on the labels, same augmentation
      const tScratch = performance.now();
      const sr = await train(fresh(), {
        ...common,
        data,
        loss: { kind: 'cross-entropy' },
        hooks: transform,
        run: run('scratch'),
      });
      const acc = await accuracyOf(sr.model, opts.test, threads, 'scratch student');
      result.scratch = {
        model: sr.model,
        params: studentParams(sr.model),
        bytes: bytesOf(sr.model),
        seconds: (performance.now() - tScratch) / 1000,
        ...(acc !== undefined ? { accuracy: acc } : {}),
      };
      if (acc !== undefined) log(`scratch: test accuracy ${(100 * acc).toFixed(2)}%`);
    }

    if (opts.qat) {
      // QAT + KD: fake quantization in the distilled student, the same KD loss (logits only), QDQ export
      const tQat = performance.now();
      const q = await quantizeAwareTrain(model, {
        data: trainData,
        ...(opts.val && !unlabeled ? { val: opts.val } : {}),
        ...(opts.test ? { test: opts.test } : {}),
        epochs: opts.qat.epochs ?? 1,
        ...(opts.qat.lr !== undefined ? { lr: opts.qat.lr } : {}),
        batchSize: opts.batchSize ?? 64,
        seed,
        ...(threads !== undefined ? { threads } : {}),
        loss: kdLossSpec({ temperature, alpha }),
        ...(augmenting ? { transformBatch: augmentAt(1_000_000) } : {}),
        extraInputs: async (indices, batch) => {
          if (cached) return { teacher_logits: gatherRows(cached.logits, cached.classes, indices) };
          const r = await runner!.run(batch.x, batch.n, rowShape);
          return { teacher_logits: copy(r[teacher.outputName]!) };
        },
        log,
      });
      notes.push(...q.notes.map((n) => `qat: ${n}`));
      result.qat = {
        model: q.model,
        params: studentParams(q.float),
        bytes: bytesOf(q.model),
        seconds: (performance.now() - tQat) / 1000,
        ...(q.accuracy !== undefined ? { accuracy: q.accuracy } : {}),
        ...(q.fakeQuantAccuracy !== undefined ? { fakeQuantAccuracy: q.fakeQuantAccuracy } : {}),
      };
      if (q.accuracy !== undefined) log(`QAT + KD INT8: test accuracy ${(100 * q.accuracy).toFixed(2)}%`);
    }
    result.seconds = (performance.now() - t0) / 1000;
    return result;
  } finally {
    await runner?.release();
  }
}

/** Classes the teacher scores: its output's static last dim, else from one row. */
async function classesOf(teacher: Teacher, data: TrainData): Promise<number> {
  const d = teacher.model.graph.outputs.find((v) => v.name === teacher.outputName)?.shape?.[1];
  if (typeof d === 'number') return d;
  const r = await TeacherRunner.create(teacher);
  try {
    const row = data.inputShape.reduce((a, b) => a * b, 1);
    return (await r.run(data.x.subarray(0, row), 1, data.inputShape))[teacher.outputName]!.dims[1]!;
  } finally {
    await r.release();
  }
}

function copy(t: HostTensor): HostTensor {
  return { dtype: t.dtype, dims: [...t.dims], data: (t.data as Float32Array).slice() };
}

function argmaxInto(logits: HostTensor, y: BigInt64Array): void {
  const [k, c] = logits.dims as [number, number];
  const d = logits.data as Float32Array;
  for (let i = 0; i < k; i++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (d[i * c + j]! > d[i * c + best]!) best = j;
    y[i] = BigInt(best);
  }
}
