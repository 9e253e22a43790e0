import { DATA_FORMATS_HELP } from '../../data/names.js';
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
      description:
        'random augmentation per batch: shift=N, flip, mixup (blend two rows), e.g. shift=2,flip (the teacher then runs online)',
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
    const { formatStudent, loadProfile, parseAugmentation, parseStudent } =
      await import('../../distill/index.js');
    const { distillModel } = await import('../../api/distill.js');
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
    const testData = p.values['test-data'] as string | undefined;

    const r = await distillModel(teacherPath, {
      data: dataArg,
      ...(testData !== undefined ? { evalData: testData } : {}),
      ...(limit !== undefined ? { trainLimit: limit } : {}),
      ...(testLimit !== undefined ? { evalLimit: testLimit } : {}),
      read: dataOptions(p),
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
      out: outputOptions(p, out),
      ...(qatOut ? { qatOut: outputOptions(p, qatOut) } : {}),
      ...(io.quiet ? {} : { log: (l: string) => io.err(`${l}\n`) }),
      quiet: io.quiet,
    });
    const d = r.report.detail;
    const f = r.report.figures;
    const saved = r.saved!;
    const qatSaved = r.qatSaved;
    const accuracy = (v: number | null | undefined) => (typeof v === 'number' ? v : null);
    const studentBytes = saved.modelBytes + saved.dataBytes;
    const qatBytes = qatSaved ? qatSaved.modelBytes + qatSaved.dataBytes : undefined;

    const json = {
      teacher: teacherPath,
      output: out,
      student: d.spec
        ? formatStudent(d.spec)
        : d.prune
          ? `pruned teacher (${pruneRatio} of channels removed)`
          : null,
      ...(d.choice
        ? {
            device: {
              family: d.choice.spec.family,
              reasons: d.choice.reasons,
              candidate: d.choice.candidate,
            },
          }
        : {}),
      teacherAccuracy: accuracy(f.teacherAccuracy),
      studentAccuracy: accuracy(f.studentAccuracy),
      ...(d.scratch ? { scratchAccuracy: accuracy(f.scratchAccuracy) } : {}),
      teacherParams: d.teacher.params,
      studentParams: d.student.params,
      paramsRatio: d.student.params / d.teacher.params,
      teacherBytes: d.teacher.bytes,
      studentBytes,
      ...(d.qat
        ? {
            qat: {
              output: qatOut,
              accuracy: accuracy(f.qatAccuracy),
              bytes: qatBytes ?? d.qat.bytes,
              seconds: d.qat.seconds,
            },
          }
        : {}),
      temperature: d.loss.temperature,
      alpha: d.loss.alpha,
      unlabeled,
      ...(d.loss.feature ? { feature: d.loss.feature } : {}),
      augmentation: d.augmentation,
      epochs,
      steps: d.steps,
      teacherLogits: d.teacherLogits,
      studentSeconds: d.student.seconds,
      ...(d.scratch ? { scratchSeconds: d.scratch.seconds } : {}),
      seconds: r.report.seconds,
      dataFile: saved.dataFile ?? null,
      notes: d.notes,
      gates: r.report.gates,
    };
    const acc = (a: number | null) => (a === null ? '–' : pct(a));
    const count = (n: number) => n.toLocaleString('en-US');
    const secs = (s: number | undefined) => (s === undefined ? '–' : `${s.toFixed(1)} s`);
    const rows: (string | number)[][] = [
      ['teacher', acc(json.teacherAccuracy), count(d.teacher.params), fmtBytes(d.teacher.bytes), '–'],
      [
        `student ${json.student ?? ''}`.trim(),
        acc(json.studentAccuracy),
        count(d.student.params),
        fmtBytes(studentBytes),
        secs(d.student.seconds),
      ],
    ];
    if (d.scratch)
      rows.push([
        'same student from scratch',
        acc(accuracy(f.scratchAccuracy)),
        count(d.scratch.params),
        fmtBytes(d.scratch.bytes),
        secs(d.scratch.seconds),
      ]);
    if (d.qat)
      rows.push([
        'QAT + KD (INT8)',
        acc(accuracy(f.qatAccuracy)),
        count(d.qat.params),
        fmtBytes(qatBytes ?? d.qat.bytes),
        secs(d.qat.seconds),
      ]);
    const text = [
      ...(d.choice ? ['device profile:', ...d.choice.reasons.map((x) => `  ${x}`), ''] : []),
      table(['model', 'accuracy', 'params', 'bytes', 'train time'], rows),
      '',
      `student → ${out}: ${fmtSaved(saved)}${qatSaved ? `; INT8 → ${qatOut}: ${fmtSaved(qatSaved)}` : ''}`,
      `teacher logits: ${d.teacherLogits.mode}${d.teacherLogits.mode !== 'online' ? ` in ${d.teacherLogits.seconds.toFixed(2)} s` : ''}; T ${d.loss.temperature}, alpha ${d.loss.alpha}, ${d.steps} steps`,
    ].join('\n');
    return { json, text };
  },
};
