import { DATA_FORMATS_HELP, DATASET_NAMES } from '../../data/names.js';
import { InputError } from '../../errors.js';
import {
  type Command,
  type Parsed,
  fmtBytes,
  fmtSaved,
  intOption,
  pct,
  numberOption,
  outputOptions,
  SAVE_OPTIONS,
  table,
} from '../command.js';
import { DATA_FLAGS, dataOptions } from '../dataflags.js';

function str(p: Parsed, name: string, what: string): string {
  const v = p.values[name];
  if (typeof v !== 'string' || v === '')
    throw new InputError('usage', `--${name} is required: ${what} (see \`edgefit distill --help\`)`, {
      value: name,
    });
  return v;
}

export const distillCommand: Command = {
  name: 'distill',
  summary:
    'Distil a teacher ONNX classifier into a small student (a family spec, or chosen for a device profile).',
  usage:
    '--teacher <t.onnx> --data <data> (--student <family:width=W,depth=D> | --device <profile.yaml> | --prune R) --out <s.onnx> [--temperature 4] [--alpha 0.5] [--epochs N] [--unlabeled] [--baseline-scratch] [--qat]',
  positionals: [],
  options: {
    teacher: { type: 'string', valueName: 't.onnx', description: 'the teacher: any ONNX classifier' },
    data: {
      type: 'string',
      valueName: 'data',
      description: `training data: ${DATA_FORMATS_HELP} (built-in: the train split); labels optional with --unlabeled`,
    },
    'test-data': {
      type: 'string',
      valueName: 'data',
      description: 'labelled data for the accuracies (default: the test split of a built-in --data)',
    },
    ...DATA_FLAGS,
    student: {
      type: 'string',
      valueName: 'spec',
      description: 'dsconv | cnn | mlp | mixer | transformer, with knobs: e.g. dsconv:width=16,depth=3',
    },
    device: {
      type: 'string',
      valueName: 'profile.yaml',
      description:
        'choose the family and the largest size that fits this device profile (ram, storage, threads, latency_ms, traits)',
    },
    prune: {
      type: 'string',
      valueName: 'R',
      description:
        'instead of --student/--device: the student is the teacher with a fraction R of its channels pruned (structured), then fine-tuned with KD',
    },
    'max-params-ratio': {
      type: 'string',
      valueName: 'X',
      description: "with --device: at most X × the teacher's parameters (e.g. 0.1)",
    },
    out: {
      type: 'string',
      valueName: 's.onnx',
      description: 'where to write the distilled student (atomically)',
    },
    temperature: { type: 'string', valueName: 'T', description: 'softmax temperature', default: '4' },
    alpha: {
      type: 'string',
      valueName: 'X',
      description: 'weight of the label cross-entropy; 1 − X weighs T²·KL to the teacher',
      default: '0.5',
    },
    epochs: { type: 'string', valueName: 'N', description: 'training epochs', default: '3' },
    unlabeled: {
      type: 'boolean',
      description: 'ignore labels (or have none): the student learns from the teacher alone (alpha 0)',
    },
    'baseline-scratch': {
      type: 'boolean',
      description:
        'also train the same student from scratch (same steps, initialisation and seed) and report it',
    },
    qat: {
      type: 'boolean',
      description:
        'then QAT + KD: fake-quantized fine-tuning with the same loss, INT8 QDQ written to --qat-out',
    },
    'qat-out': {
      type: 'string',
      valueName: 'q.onnx',
      description: 'where --qat writes the INT8 model (default: <out>.int8.onnx)',
    },
    'qat-epochs': { type: 'string', valueName: 'N', description: 'QAT + KD epochs', default: '1' },
    feature: {
      type: 'string',
      valueName: 'teacher:student',
      description:
        'also distil a feature: MSE between a teacher tensor and a student tensor through a learned 1×1 projection',
    },
    'feature-weight': {
      type: 'string',
      valueName: 'X',
      description: 'weight of the feature MSE',
      default: '1',
    },
    augment: {
      type: 'string',
      valueName: 'spec',
      description: 'random augmentation per batch, e.g. shift=2,flip (the teacher then runs online)',
    },
    lr: {
      type: 'string',
      valueName: 'X',
      description: 'learning rate (default 0.05 SGD; 2e-3 AdamW for token students)',
    },
    batch: { type: 'string', valueName: 'N', description: 'batch size', default: '64' },
    seed: {
      type: 'string',
      valueName: 'N',
      description: 'initialisation, shuffling and augmentation seed',
      default: '0',
    },
    limit: { type: 'string', valueName: 'N', description: 'train on a seeded subset of N rows' },
    'test-limit': { type: 'string', valueName: 'N', description: 'test on a seeded subset of N rows' },
    'cache-dir': {
      type: 'string',
      valueName: 'dir',
      description:
        'teacher-logit cache (default $EDGEFIT_CACHE/teacher-logits or ~/.cache/edgefit/teacher-logits)',
    },
    'no-cache': { type: 'boolean', description: 'compute the teacher logits, read and write no cache' },
    threads: { type: 'string', valueName: 'N', description: 'ORT intra-op threads (default: all cores)' },
    ...SAVE_OPTIONS,
  },
  examples: [
    'edgefit distill --teacher cnn-s.onnx --data fashion-mnist --student dsconv:width=16,depth=3 --out s.onnx --baseline-scratch',
    'edgefit distill --teacher cnn-s.onnx --data fashion-mnist --device pi-zero.yaml --max-params-ratio 0.1 --out s.onnx --qat',
    'edgefit distill --teacher cnn-s.onnx --data ./unlabeled-images --unlabeled --student mlp:width=64 --out s.onnx',
  ],
  async run(p, io) {
    const { distill, formatStudent, loadProfile, loadTeacher, parseAugmentation, parseStudent } =
      await import('../../distill/index.js');
    const { loadDistillData } = await import('../../distill/data.js');
    const { writeOutput } = await import('../../api/common.js');
    const teacherPath = str(p, 'teacher', 'the teacher ONNX file');
    const dataArg = str(p, 'data', DATA_FORMATS_HELP);
    const out = str(p, 'out', 'the output ONNX file');
    if (['student', 'device', 'prune'].filter((k) => p.values[k] !== undefined).length !== 1)
      throw new InputError(
        'usage',
        'Give exactly one of --student <family:width=W,depth=D>, --device <profile.yaml> and --prune R',
        {
          value: 'student',
        },
      );
    const student =
      p.values.student !== undefined ? parseStudent(str(p, 'student', 'a student spec')) : undefined;
    const device =
      p.values.device !== undefined ? loadProfile(str(p, 'device', 'a device profile')) : undefined;
    const pruneRatio = numberOption(p, 'prune', { min: 0.01, max: 0.99 });
    const maxParamsRatio = numberOption(p, 'max-params-ratio', { min: 1e-6, max: 1 });
    if (maxParamsRatio !== undefined && !device)
      throw new InputError('usage', '--max-params-ratio goes with --device', { value: 'max-params-ratio' });
    const unlabeled = !!p.values.unlabeled;
    const alpha = numberOption(p, 'alpha', { min: 0, max: 1 }) ?? 0.5;
    const temperature = numberOption(p, 'temperature', { min: 1e-3, max: 1000 }) ?? 4;
    const epochs = intOption(p, 'epochs', { min: 1, max: 100_000 }) ?? 3;
    const seed = intOption(p, 'seed', { min: 0, max: 2 ** 32 - 1 }) ?? 0;
    const batchSize = intOption(p, 'batch', { min: 1, max: 65536 }) ?? 64;
    const threads = intOption(p, 'threads', { min: 1, max: 256 });
    const limit = intOption(p, 'limit', { min: 1 });
    const testLimit = intOption(p, 'test-limit', { min: 1 });
    const lr = numberOption(p, 'lr', { min: 0, max: 10 });
    const qatEpochs = intOption(p, 'qat-epochs', { min: 1, max: 1000 }) ?? 1;
    const qatOut = p.values.qat
      ? ((p.values['qat-out'] as string | undefined) ?? out.replace(/(\.onnx)?$/i, '.int8.onnx'))
      : undefined;
    let feature;
    if (p.values.feature !== undefined) {
      const [t, s, ...rest] = str(p, 'feature', 'teacher:student tensor names').split(':');
      if (!t || !s || rest.length)
        throw new InputError(
          'usage',
          `--feature takes teacherTensor:studentTensor: got "${String(p.values.feature)}"`,
          {
            value: 'feature',
          },
        );
      feature = {
        teacher: t,
        student: s,
        weight: numberOption(p, 'feature-weight', { min: 0, max: 1e6 }) ?? 1,
      };
    }
    const augment =
      p.values.augment !== undefined ? parseAugmentation(str(p, 'augment', 'shift=N,flip')) : undefined;

    const teacher = loadTeacher(teacherPath);
    const common = { model: teacher.model, ...dataOptions(p) };
    const train = await loadDistillData(dataArg, {
      ...common,
      split: 'train',
      ...(limit !== undefined ? { limit } : {}),
      seed,
      allowUnlabeled: unlabeled,
    });
    const testSpec =
      (p.values['test-data'] as string | undefined) ??
      ((DATASET_NAMES as readonly string[]).includes(dataArg) ? dataArg : undefined);
    const test = testSpec
      ? (
          await loadDistillData(testSpec, {
            ...common,
            split: 'test',
            ...(testLimit !== undefined ? { limit: testLimit } : {}),
            seed,
          })
        ).data
      : undefined;

    const r = await distill({
      teacher,
      data: train.data,
      ...(test ? { test } : {}),
      ...(student ? { student } : {}),
      ...(device ? { device } : {}),
      ...(pruneRatio !== undefined ? { prune: { ratio: pruneRatio } } : {}),
      ...(maxParamsRatio !== undefined ? { maxParamsRatio } : {}),
      loss: { temperature, alpha: unlabeled ? 0 : alpha },
      unlabeled,
      ...(feature ? { feature } : {}),
      ...(augment ? { augment } : {}),
      epochs,
      batchSize,
      ...(lr !== undefined ? { lr: { kind: 'cosine', lr } } : {}),
      seed,
      ...(threads !== undefined ? { threads } : {}),
      baselineScratch: !!p.values['baseline-scratch'],
      ...(qatOut ? { qat: { epochs: qatEpochs } } : {}),
      cacheDir: p.values['no-cache'] ? false : (p.values['cache-dir'] as string | undefined),
      log: (l) => io.err(l),
      progress: { quiet: io.quiet },
    });
    const saved = writeOutput(r.model, outputOptions(p, out));
    const qatSaved = qatOut && r.qat ? writeOutput(r.qat.model, outputOptions(p, qatOut)) : undefined;

    const json = {
      teacher: teacherPath,
      output: out,
      student: r.spec
        ? formatStudent(r.spec)
        : r.prune
          ? `pruned teacher (${pruneRatio} of channels removed)`
          : null,
      ...(r.choice
        ? {
            device: {
              family: r.choice.spec.family,
              reasons: r.choice.reasons,
              candidate: r.choice.candidate,
            },
          }
        : {}),
      teacherAccuracy: r.teacher.accuracy ?? null,
      studentAccuracy: r.student.accuracy ?? null,
      ...(r.scratch ? { scratchAccuracy: r.scratch.accuracy ?? null } : {}),
      teacherParams: r.teacher.params,
      studentParams: r.student.params,
      paramsRatio: r.student.params / r.teacher.params,
      teacherBytes: r.teacher.bytes,
      studentBytes: saved.modelBytes + saved.dataBytes,
      ...(r.qat
        ? {
            qat: {
              output: qatOut,
              accuracy: r.qat.accuracy ?? null,
              fakeQuantAccuracy: r.qat.fakeQuantAccuracy ?? null,
              bytes: qatSaved ? qatSaved.modelBytes + qatSaved.dataBytes : r.qat.bytes,
              seconds: r.qat.seconds,
            },
          }
        : {}),
      temperature: r.loss.temperature,
      alpha: r.loss.alpha,
      unlabeled,
      ...(r.loss.feature ? { feature: r.loss.feature } : {}),
      augmentation: r.augmentation,
      epochs,
      steps: r.steps,
      teacherLogits: r.teacherLogits,
      studentSeconds: r.student.seconds,
      ...(r.scratch ? { scratchSeconds: r.scratch.seconds } : {}),
      seconds: r.seconds,
      dataFile: saved.dataFile ?? null,
      notes: r.notes,
    };
    const acc = (a: number | undefined) => (a === undefined ? '–' : pct(a));
    const rows: (string | number)[][] = [
      [
        'teacher',
        acc(r.teacher.accuracy),
        r.teacher.params.toLocaleString('en-US'),
        fmtBytes(r.teacher.bytes),
        '–',
      ],
      [
        `student ${json.student ?? ''}`.trim(),
        acc(r.student.accuracy),
        r.student.params.toLocaleString('en-US'),
        fmtBytes(json.studentBytes),
        `${r.student.seconds!.toFixed(1)} s`,
      ],
    ];
    if (r.scratch)
      rows.push([
        'same student from scratch',
        acc(r.scratch.accuracy),
        r.scratch.params.toLocaleString('en-US'),
        fmtBytes(r.scratch.bytes),
        `${r.scratch.seconds!.toFixed(1)} s`,
      ]);
    if (r.qat)
      rows.push([
        'QAT + KD (INT8)',
        acc(r.qat.accuracy),
        r.qat.params.toLocaleString('en-US'),
        fmtBytes(json.qat!.bytes),
        `${r.qat.seconds!.toFixed(1)} s`,
      ]);
    const text = [
      ...(r.choice ? ['device profile:', ...r.choice.reasons.map((x) => `  ${x}`), ''] : []),
      table(['model', 'accuracy', 'params', 'bytes', 'train time'], rows),
      '',
      `student → ${out}: ${fmtSaved(saved)}${qatSaved ? `; INT8 → ${qatOut}: ${fmtSaved(qatSaved)}` : ''}`,
      `teacher logits: ${r.teacherLogits.mode}${r.teacherLogits.mode !== 'online' ? ` in ${r.teacherLogits.seconds.toFixed(2)} s` : ''}; T ${r.loss.temperature}, alpha ${r.loss.alpha}, ${r.steps} steps`,
    ].join('\n');
    return { json, text };
  },
};
