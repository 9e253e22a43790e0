// The distill stage: knowledge distillation (./distill.ts) on the stage contract. The teacher is the context's
// teacher, else the model the stage is given; the student is a family spec, a pruned copy of the teacher, or chosen
// for the context's device profile; training rows (and the held-out validation rows) come from the context, the
// accuracies from its evaluation data. The stage returns the distilled student (the QDQ INT8 model with `qat`),
// figures for teacher / student / scratch / QAT + KD, the device choice's reasons as notes, and the context's
// accuracy and size gates checked on the result. Unlabeled training data (options.unlabeled) is read whole, without
// a validation part: the student then learns from the teacher alone. Besides the stage's model the result carries
// the float student, the scratch baseline and the INT8 model (`models`), which `edgefit distill` writes.
import { checkGates } from '../eval/gates.js';
import type { Model } from '../ir/index.js';
import { encodeModel } from '../onnx/index.js';
import type { StageContext, TrainingRows } from '../stage/context.js';
import type { DeviceProfile as StageDevice, Stage, StageReport, StageResult } from '../stage/types.js';
import type { Note } from '../util/note.js';
import { sourceRows } from './data.js';
import { type DistillOptions, type DistillResult, distill } from './distill.js';
import { type DeviceProfile, profileFrom } from './profile.js';

export type DistillStageOptions = Omit<
  DistillOptions,
  'teacher' | 'data' | 'val' | 'test' | 'seed' | 'threads' | 'log' | 'progress'
> & {
  /** Size the student for the context's device profile (default: when no student, pruning or `device` is given). */
  useDevice?: boolean;
};

/** The stage's result, with every model the run produced. */
export interface DistillStageResult extends StageResult<DistillDetail> {
  models: { student: Model; scratch?: Model; int8?: Model };
}

export interface DistillStage extends Stage<DistillDetail> {
  run(model: Model, ctx: StageContext): Promise<DistillStageResult>;
}

export type DistillDetail = Omit<DistillResult, 'model' | 'scratch' | 'qat' | 'history'> & {
  scratch?: Omit<NonNullable<DistillResult['scratch']>, 'model'>;
  qat?: Omit<NonNullable<DistillResult['qat']>, 'model'>;
};

/** The contract's device profile as the student chooser reads it (RAM and storage default to 2 GB / 64 MB). */
export function profileOfStage(d: StageDevice): DeviceProfile {
  return profileFrom({
    ...(d.name ? { name: d.name } : {}),
    ram: d.ramBytes ?? 2 * 2 ** 30,
    storage: d.storageBytes ?? 64 * 2 ** 20,
    ...(d.threads ? { threads: d.threads } : {}),
    ...(d.latencyBudgetMs ? { latency_ms: d.latencyBudgetMs } : {}),
    ...(d.traits?.length ? { traits: [...d.traits] } : {}),
  });
}

/** Training rows: the context's (a validation part held out), or an unlabeled source read whole. */
async function rowsFor(ctx: StageContext, unlabeled: boolean): Promise<TrainingRows> {
  if (unlabeled) {
    const src = await ctx.source('train');
    if (!src.labeled)
      return {
        train: (await sourceRows(src, { split: 'train', allowUnlabeled: true })).data,
        name: src.name,
      };
  }
  return ctx.trainingRows();
}

export function distillStage(o: DistillStageOptions = {}): DistillStage {
  const chooses = !o.student && !o.prune && !o.device;
  return {
    name: 'distill',
    needs: chooses && o.useDevice !== false ? ['train', 'device'] : ['train'],
    uses: ['teacher', 'eval', 'device'],
    async run(model: Model, ctx: StageContext) {
      const t0 = performance.now();
      const rows = await rowsFor(ctx, !!o.unlabeled);
      const { useDevice, ...rest } = o;
      const r = await distill({
        ...rest,
        teacher: ctx.teacher ?? model,
        data: rows.train,
        ...(rows.val ? { val: rows.val } : {}),
        ...(chooses && useDevice !== false && ctx.device ? { device: profileOfStage(ctx.device) } : {}),
        seed: ctx.seed,
        ...(ctx.threads !== undefined ? { threads: ctx.threads } : {}),
        log: ctx.log,
        ...(ctx.quiet ? {} : { progress: { quiet: false } }),
      });
      const out = r.qat?.model ?? r.model;
      // accuracies on the context's evaluation data
      const score = async (m: Model | undefined) => (m && ctx.has('eval') ? await ctx.score(m) : undefined);
      const teacherAcc = await score(ctx.teacher ?? model);
      const studentAcc = await score(r.model);
      const scratchAcc = await score(r.scratch?.model);
      const qatAcc = await score(r.qat?.model);
      const outBytes = encodeModel(out).byteLength;
      const notes: Note[] = [
        ...(r.choice?.reasons ?? []).map((text) => ({ kind: 'info' as const, text, rule: 'device-profile' })),
        ...r.notes.map((text) => ({ kind: 'info' as const, text, rule: 'distill' })),
        {
          kind: 'rewrite',
          text: `distilled into ${r.spec ? `${r.spec.family} width ${r.spec.width} depth ${r.spec.depth}` : r.prune ? 'a pruned copy of the teacher' : 'the given student'} (${r.student.params} params, teacher ${r.teacher.params}); T ${r.loss.temperature}, alpha ${r.loss.alpha}; teacher logits ${r.teacherLogits.mode}`,
          rule: 'distill',
        },
      ];
      const accuracy = r.qat ? qatAcc : studentAcc;
      const gates = checkGates(
        {
          ...(ctx.gates.minAccuracy !== undefined ? { minAccuracy: ctx.gates.minAccuracy } : {}),
          ...(ctx.gates.maxBytes !== undefined ? { maxBytes: ctx.gates.maxBytes } : {}),
        },
        { ...(accuracy !== undefined ? { accuracy } : {}), bytes: outBytes },
      );
      const { model: _m, scratch, qat, history: _h, ...detail } = r;
      const report: StageReport<DistillDetail> = {
        stage: 'distill',
        seconds: (performance.now() - t0) / 1000,
        figures: {
          teacherParams: r.teacher.params,
          studentParams: r.student.params,
          teacherAccuracy: teacherAcc ?? null,
          studentAccuracy: studentAcc ?? null,
          scratchAccuracy: scratchAcc ?? null,
          qatAccuracy: qatAcc ?? null,
          bytesBefore: r.teacher.bytes,
          bytesAfter: outBytes,
          steps: r.steps,
        },
        notes,
        gates,
        detail: {
          ...detail,
          ...(scratch ? { scratch: { ...scratch, model: undefined } } : {}),
          ...(qat ? { qat: { ...qat, model: undefined } } : {}),
        } as DistillDetail,
      };
      return {
        model: out,
        report,
        models: {
          student: r.model,
          ...(r.scratch ? { scratch: r.scratch.model } : {}),
          ...(r.qat ? { int8: r.qat.model } : {}),
        },
      };
    },
  };
}
