// The QAT step of `--auto` (src/passes/quantize/auto.ts): a QatHook that fine-tunes the prepared model with fake
// quantization, placed and calibrated as the static step placed and calibrated it (the hook gets the same
// placement options and calibration batches), and hands back the clean QDQ model for the gate.
import type { Model } from '../ir/index.js';
import type { QatHook } from '../passes/quantize/auto.js';
import { quantizeAwareTrain, type QatOptions, type QatResult } from './qat.js';

/** What the hook needs besides the placement and calibration options auto gives it. */
export type QatHookOptions = Omit<QatOptions, 'test'> & {
  /** Called with the full QAT result (history, learned scales, …) before the model goes to the gate. */
  onResult?: (r: QatResult) => void;
};

/**
 * A QatHook for `autoQuantize`. `data` (and `val`) are the training rows: never the gate's data. The model auto
 * passes in is already prepared by `prepareStatic` (stems, padding): QAT plans it with the options auto passes.
 */
export function qatHook(opts: QatHookOptions): QatHook {
  return async (model: Model, ctx) => {
    const { onResult, ...rest } = opts;
    const r = await quantizeAwareTrain(model, {
      ...ctx.options,
      ...rest,
      // the static step's calibration batches (same ranges) unless the caller gave its own
      calibration: rest.calibration ?? ctx.options.calibration,
    });
    onResult?.(r);
    return r.model;
  };
}
