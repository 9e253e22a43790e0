import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../errors.js';
import { checkSchedule, describeSchedule, lrAt, scheduleFn } from './schedule.js';

const close = (a: number, b: number, msg?: string) =>
  assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${msg ?? ''} ${a} vs ${b}`);

describe('learning-rate schedules', () => {
  test('constant, with and without linear warm-up', () => {
    for (const s of [0, 1, 999]) assert.equal(lrAt({ kind: 'constant', lr: 0.1 }, s), 0.1);
    const w = { kind: 'constant', lr: 0.1, warmup: 4 } as const;
    close(lrAt(w, 0), 0.025);
    close(lrAt(w, 1), 0.05);
    close(lrAt(w, 2), 0.075);
    close(lrAt(w, 3), 0.1);
    close(lrAt(w, 4), 0.1);
    close(lrAt(w, 1000), 0.1);
  });

  test('step decay: lr · gamma^floor(t / stepSize), t counted after warm-up', () => {
    const s = { kind: 'step', lr: 0.1, stepSize: 10, gamma: 0.5 } as const;
    close(lrAt(s, 0), 0.1);
    close(lrAt(s, 9), 0.1);
    close(lrAt(s, 10), 0.05);
    close(lrAt(s, 19), 0.05);
    close(lrAt(s, 25), 0.025);
    const w = { kind: 'step', lr: 0.1, stepSize: 10, warmup: 5 } as const; // gamma defaults to 0.1
    close(lrAt(w, 0), 0.02);
    close(lrAt(w, 4), 0.1);
    close(lrAt(w, 14), 0.1);
    close(lrAt(w, 15), 0.01);
    close(lrAt(w, 25), 0.001);
  });

  test('cosine: hand values, minLr, clamping past the end, warm-up', () => {
    const c = { kind: 'cosine', lr: 1, totalSteps: 100 } as const;
    close(lrAt(c, 0), 1);
    close(lrAt(c, 25), (1 + Math.SQRT1_2) / 2); // 0.8535533905932737
    close(lrAt(c, 50), 0.5);
    close(lrAt(c, 75), (1 - Math.SQRT1_2) / 2);
    close(lrAt(c, 100), 0);
    close(lrAt(c, 200), 0);
    close(lrAt({ kind: 'cosine', lr: 1, totalSteps: 100, minLr: 0.1 }, 50), 0.55);
    const w = { kind: 'cosine', lr: 1, totalSteps: 110, warmup: 10 } as const;
    close(lrAt(w, 0), 0.1);
    close(lrAt(w, 4), 0.5);
    close(lrAt(w, 9), 1);
    close(lrAt(w, 10), 1);
    close(lrAt(w, 60), 0.5);
    close(lrAt(w, 110), 0);
  });

  test('cosine takes the trainer total when the spec has none; torch CosineAnnealingLR values', () => {
    // torch: eta_min + (base - eta_min) * (1 + cos(pi * T_cur / T_max)) / 2 with base 0.05, T_max 8
    const f = scheduleFn({ kind: 'cosine', lr: 0.05 }, 8);
    // (printed by torch 1.13's CosineAnnealingLR(opt, T_max=8), stepping once per step)
    const torch = [
      0.05, 0.04809698831278217, 0.04267766952966369, 0.03456708580912725, 0.025, 0.015432914190872758,
      0.0073223304703363135, 0.0019030116872178317,
    ];
    torch.forEach((v, i) => close(f(i), v, `step ${i}`));
  });

  test('numbers and functions; bad specs and values are InputErrors', () => {
    assert.equal(scheduleFn(0.3, 10)(7), 0.3);
    assert.equal(scheduleFn((s) => s / 10, 10)(7), 0.7);
    assert.throws(() => scheduleFn(() => NaN, 10)(0), InputError);
    assert.throws(() => scheduleFn(-1, 10), InputError);
    assert.throws(() => checkSchedule({ kind: 'step', lr: 0.1, stepSize: 0 }), InputError);
    assert.throws(() => checkSchedule({ kind: 'constant', lr: 0.1, warmup: 1.5 }), InputError);
    assert.throws(() => checkSchedule({ kind: 'cosine', lr: Infinity }), InputError);
    assert.throws(() => checkSchedule({ kind: 'nope' } as never), InputError);
    assert.match(
      describeSchedule({ kind: 'cosine', lr: 0.05, warmup: 10 }, 100),
      /cosine lr 0.05 → 0 over 100 steps, warm-up 10/,
    );
  });
});
