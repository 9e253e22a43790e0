// evaluate() and inspect() of the public API: a model (IR or file) on data given as a spec or a source; a model's
// summary with the ops shape inference does not know.
import type { DataSource } from '../data/index.js';
import { evaluate as evaluateData, type EvalData, type EvalOptions, type EvalResult } from '../eval/index.js';
import type { Model } from '../ir/index.js';
import { loadModel } from '../onnx/index.js';
import { loadRunnableModel } from '../runtime/index.js';
import { inferShapes } from '../ops/index.js';
import { modelWarnings } from '../summary/warnings.js';
import { summarize, type ModelSummary } from '../summary/index.js';
import { progress, type ProgressOptions } from '../util/progress.js';
import { borrowed, dataRef, type DataReadOptions } from './common.js';

export interface EvaluateOptions extends EvalOptions {
  /** Split of a built-in dataset (default test). */
  split?: 'train' | 'test';
  /** N items drawn at random (fixed seed `limitSeed`, default 0), in item order. */
  limit?: number;
  limitSeed?: number;
  read?: DataReadOptions;
  /** Who needs the labels, for the error on unlabelled data (default "evaluate"). */
  needLabels?: string;
  /** A progress bar on stderr (default none). */
  progress?: ProgressOptions;
}

export interface EvaluateOutcome extends EvalResult {
  /** The data evaluated: its name, format, split (built-in datasets) and items skipped while reading. */
  data: {
    name: string;
    format: string;
    split: string | null;
    /** Rows a built-in dataset's loader dropped. */
    dropped: DataSource['dropped'];
    /** Items that could not be read (corrupt images). */
    skipped: DataSource['skipped'];
    /** The image preprocessing used (image folders). */
    preprocess: DataSource['preprocess'] | null;
  };
}

/** Accuracy, per-class precision/recall and the confusion matrix of a classifier on labelled data, through ORT. */
export async function evaluate(
  model: Model | string,
  data: string | DataSource | EvalData,
  o: EvaluateOptions = {},
): Promise<EvaluateOutcome> {
  const m = typeof model === 'string' ? await loadRunnableModel(model) : model;
  const { split, limit, limitSeed, read, needLabels, progress: bar, ...evalOpts } = o;
  if (typeof data !== 'string' && !('read' in data)) {
    const r = await evaluateData(m, data, {
      label: typeof model === 'string' ? model : 'the model',
      ...evalOpts,
    });
    return {
      ...r,
      data: {
        name: data.name ?? 'the data',
        format: 'memory',
        split: null,
        dropped: [],
        skipped: [],
        preprocess: null,
      },
    };
  }
  const src = await dataRef(typeof data === 'string' ? data : borrowed(data), m, read, {
    split: split ?? 'test',
    needLabels: needLabels ?? 'evaluate',
    ...(limit !== undefined ? { limit } : {}),
    ...(limitSeed !== undefined ? { limitSeed } : {}),
  })();
  try {
    const shown = progress(
      `eval ${src.name}${src.format === 'builtin' ? `/${split ?? 'test'}` : ''}`,
      src.n,
      {
        quiet: true,
        ...(bar ?? {}),
      },
    );
    let last = 0;
    const r = await evaluateData(m, src, {
      label: typeof model === 'string' ? model : 'the model',
      ...evalOpts,
      onBatch: (done, total) => {
        shown.tick(done - last);
        last = done;
        evalOpts.onBatch?.(done, total);
      },
    });
    shown.done();
    return {
      ...r,
      data: {
        name: src.name,
        format: src.format,
        split: src.format === 'builtin' ? (split ?? 'test') : null,
        dropped: [...src.dropped],
        skipped: [...src.skipped],
        preprocess: src.preprocess ?? null,
      },
    };
  } finally {
    await src.close();
  }
}

export interface InspectOutcome extends ModelSummary {
  /** Nodes whose op shape inference does not know (shapes after them are unknown). */
  unsupportedOps: { node: string; opType: string; domain: string }[];
  /** What makes ORT or edgefit refuse the model later: inputs defined nowhere, opsets newer than ORT loads. */
  warnings: string[];
}

/** A model's summary: parameters, bytes by dtype, MACs, peak activation memory, inputs/outputs, op counts, layers. */
export function inspect(model: Model | string, o: { batch?: number } = {}): InspectOutcome {
  const m = typeof model === 'string' ? loadModel(model) : model;
  const report = inferShapes(m, { strict: false });
  const s = summarize(m, { batch: o.batch ?? 1 });
  return {
    ...s,
    unsupportedOps: report.unsupported.map((u) => ({ node: u.node, opType: u.opType, domain: u.domain })),
    warnings: modelWarnings(m),
  };
}
