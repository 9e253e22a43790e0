// Learning-rate schedules. The trainer computes the lr of every optimiser step here, in JS, and feeds it to the
// train-step graph as an input (the graph has no notion of epochs or schedules).
//
// Steps are global optimiser steps counted from 0. An optional linear warm-up comes first:
//   step < warmup:  lr · (step + 1) / warmup
// then the schedule runs on t = step − warmup:
//   constant  lr
//   step      lr · gamma^floor(t / stepSize)
//   cosine    minLr + (lr − minLr) · (1 + cos(π · min(t, T) / T)) / 2,   T = totalSteps − warmup (at least 1)
// (cosine without warm-up is torch's CosineAnnealingLR with T_max = totalSteps, eta_min = minLr.)
import { InputError } from '../errors.js';

export type ScheduleSpec =
  | { kind: 'constant'; lr: number; warmup?: number }
  | {
      kind: 'step';
      lr: number;
      /** Steps between decays. */ stepSize: number;
      /** Default 0.1. */ gamma?: number;
      warmup?: number;
    }
  | {
      kind: 'cosine';
      lr: number;
      /** Default: the trainer's epochs × steps per epoch. */ totalSteps?: number;
      /** Default 0. */ minLr?: number;
      warmup?: number;
    };

export type ScheduleKind = ScheduleSpec['kind'];
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['constant', 'step', 'cosine'];

/** A schedule spec, a plain number (constant lr), or any function of the global step. */
export type LrSchedule = ScheduleSpec | number | ((step: number) => number);

function bad(message: string, value: string): never {
  throw new InputError('bad-schedule', message, { value });
}

function checkNonNegInt(v: number | undefined, what: string): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || v < 0))
    bad(`${what} must be a non-negative integer: current value is ${v}`, what);
}

function checkLr(v: number | undefined, what: string): void {
  if (v !== undefined && (!Number.isFinite(v) || v < 0))
    bad(`${what} must be a finite number ≥ 0: current value is ${v}`, what);
}

/** Throws InputError when the spec cannot give a learning rate for every step. */
export function checkSchedule(s: ScheduleSpec): void {
  if (!SCHEDULE_KINDS.includes(s.kind))
    bad(`unknown schedule "${String(s.kind)}" (known: ${SCHEDULE_KINDS.join(', ')})`, 'kind');
  checkLr(s.lr, 'lr');
  checkNonNegInt(s.warmup, 'warmup');
  if (s.kind === 'step') {
    if (!Number.isSafeInteger(s.stepSize) || s.stepSize < 1)
      bad(`step schedule: stepSize must be a positive integer: current value is ${s.stepSize}`, 'stepSize');
    if (s.gamma !== undefined && (!Number.isFinite(s.gamma) || s.gamma <= 0))
      bad(`step schedule: gamma must be > 0: current value is ${s.gamma}`, 'gamma');
  }
  if (s.kind === 'cosine') {
    checkLr(s.minLr, 'minLr');
    if (s.totalSteps !== undefined && (!Number.isSafeInteger(s.totalSteps) || s.totalSteps < 1))
      bad(
        `cosine schedule: totalSteps must be a positive integer: current value is ${s.totalSteps}`,
        'totalSteps',
      );
  }
}

/** The learning rate of global step `step` (0-based). `totalSteps` is used by cosine when the spec has none. */
export function lrAt(s: ScheduleSpec, step: number, totalSteps?: number): number {
  const warmup = s.warmup ?? 0;
  if (step < warmup) return (s.lr * (step + 1)) / warmup;
  const t = step - warmup;
  switch (s.kind) {
    case 'constant':
      return s.lr;
    case 'step':
      return s.lr * Math.pow(s.gamma ?? 0.1, Math.floor(t / s.stepSize));
    case 'cosine': {
      const total = s.totalSteps ?? totalSteps;
      if (total === undefined) bad('cosine schedule needs totalSteps', 'totalSteps');
      const T = Math.max(1, total - warmup);
      const minLr = s.minLr ?? 0;
      return minLr + ((s.lr - minLr) * (1 + Math.cos((Math.PI * Math.min(t, T)) / T))) / 2;
    }
  }
}

/** Resolve an LrSchedule to a function of the global step; validates specs and every value it returns. */
export function scheduleFn(s: LrSchedule, totalSteps: number): (step: number) => number {
  let f: (step: number) => number;
  if (typeof s === 'number') {
    checkLr(s, 'lr');
    f = () => s;
  } else if (typeof s === 'function') {
    f = s;
  } else {
    checkSchedule(s);
    const spec = s.kind === 'cosine' && s.totalSteps === undefined ? { ...s, totalSteps } : s;
    f = (step) => lrAt(spec, step, totalSteps);
  }
  return (step) => {
    const lr = f(step);
    if (!Number.isFinite(lr) || lr < 0)
      bad(`the learning-rate schedule gave ${lr} at step ${step}: it must be a finite number ≥ 0`, 'lr');
    return lr;
  };
}

/** A short description for logs, e.g. "cosine lr 0.05 → 0 over 2580 steps, warm-up 100". */
export function describeSchedule(s: LrSchedule, totalSteps: number): string {
  if (typeof s === 'number') return `constant lr ${s}`;
  if (typeof s === 'function') return 'custom lr schedule';
  const w = s.warmup ? `, warm-up ${s.warmup} steps` : '';
  if (s.kind === 'constant') return `constant lr ${s.lr}${w}`;
  if (s.kind === 'step') return `step lr ${s.lr} × ${s.gamma ?? 0.1} every ${s.stepSize} steps${w}`;
  return `cosine lr ${s.lr} → ${s.minLr ?? 0} over ${s.totalSteps ?? totalSteps} steps${w}`;
}
