// Run a classifier over a dataset in batches through ORT: accuracy, per-class precision/recall, confusion matrix.
import { DataError, ShapeError } from '../errors.js';
import type { BatchSource } from '../data/batch.js';
import { batches, numBatches } from '../data/batch.js';
import type { Model } from '../ir/graph.js';
import { Session, type HostTensor } from '../runtime/index.js';
import { type ClassMetrics, Confusion } from './metrics.js';

export interface EvalData extends BatchSource {
  numClasses: number;
  classNames?: readonly string[];
  name?: string;
}

export interface EvalOptions {
  batchSize?: number;
  threads?: number;
  /** Which model input takes the images (default: the first graph input without an initializer). */
  inputName?: string;
  /** Which output holds the logits (default: the first). */
  outputName?: string;
  onBatch?: (rowsDone: number, total: number) => void;
  label?: string;
}

export interface EvalResult {
  accuracy: number;
  n: number;
  correct: number;
  perClass: ClassMetrics[];
  confusion: number[][];
  seconds: number;
  /** Rows per second through the model. */
  throughput: number;
}

/** Evaluate a model (IR, ONNX bytes, a path, or an open Session) on labelled data. */
export async function evaluate(model: Model | Uint8Array | string | Session, data: EvalData, opts: EvalOptions = {}): Promise<EvalResult> {
  const own = !(model instanceof Session);
  const session = model instanceof Session ? model : await Session.create(model, { threads: opts.threads, label: opts.label });
  try {
    return await evaluateSession(session, model instanceof Session ? undefined : model, data, opts);
  } finally {
    if (own) await session.release();
  }
}

async function evaluateSession(
  session: Session,
  source: Model | Uint8Array | string | undefined,
  data: EvalData,
  opts: EvalOptions,
): Promise<EvalResult> {
  const label = opts.label ?? session.label;
  const inputName = opts.inputName ?? session.inputNames[0]!;
  if (!session.inputNames.includes(inputName))
    throw new ShapeError('eval-input', `${label} has no input "${inputName}" (inputs: ${session.inputNames.join(', ')})`, { value: inputName });
  const outputName = opts.outputName ?? session.outputNames[0]!;
  if (!session.outputNames.includes(outputName))
    throw new ShapeError('eval-output', `${label} has no output "${outputName}" (outputs: ${session.outputNames.join(', ')})`, { value: outputName });

  // the declared input shape decides the feed layout (NCHW as is, or flattened rows) and a fixed batch size
  const declared = typeof source === 'object' && !(source instanceof Uint8Array) ? source.graph.inputs.find((v) => v.name === inputName)?.shape : undefined;
  const rowSize = data.inputShape.reduce((a, b) => a * b, 1);
  let rowShape = [...data.inputShape];
  let fixedBatch: number | undefined;
  if (declared) {
    if (typeof declared[0] === 'number') fixedBatch = declared[0];
    const rest = declared.slice(1);
    if (rest.every((d): d is number => typeof d === 'number')) {
      const restSize = rest.reduce((a, b) => a * b, 1);
      if (restSize !== rowSize)
        throw new ShapeError(
          'eval-shape',
          `${label} input "${inputName}" has shape [${declared.map((d) => d ?? '?').join(',')}], which does not fit ${data.name ?? 'the data'} rows of shape [${data.inputShape}]`,
          { value: inputName },
        );
      rowShape = rest;
    }
  }
  const batchSize = fixedBatch ?? opts.batchSize ?? 256;
  let conf: Confusion | undefined;
  const total = data.n;
  const start = performance.now();
  let done = 0;
  for (const b of batches(data, { batchSize })) {
    let x = b.x;
    let k = b.n;
    if (fixedBatch !== undefined && k < fixedBatch) {
      // pad the last batch of a fixed-batch model with zeros; padded rows are ignored
      const padded = new Float32Array(fixedBatch * rowSize);
      padded.set(x);
      x = padded;
      k = fixedBatch;
    }
    const feed: HostTensor = { dtype: 'float32', dims: [k, ...rowShape], data: x };
    const out = await session.run({ [inputName]: feed }, [outputName]);
    const logits = out[outputName]!;
    if (logits.dtype !== 'float32' && logits.dtype !== 'float64')
      throw new ShapeError('eval-output', `${label} output "${outputName}" is ${logits.dtype}, not float scores`, { value: outputName });
    const c = logits.dims[logits.dims.length - 1]!;
    if (logits.dims.length !== 2 || logits.dims[0] !== k || c < data.numClasses)
      throw new ShapeError(
        'eval-output',
        `${label} output "${outputName}" has shape [${logits.dims}]: expected [${k}, ${data.numClasses}] class scores`,
        { value: outputName },
      );
    // a model may score more classes than the data has: the confusion matrix covers all the model's classes
    conf ??= new Confusion(Math.max(c, data.numClasses));
    const s = logits.data as Float32Array;
    for (let i = 0; i < b.n; i++) {
      let best = 0;
      let bv = -Infinity;
      for (let j = 0; j < c; j++) {
        const v = s[i * c + j]!;
        if (Number.isNaN(v))
          throw new DataError('nan-output', `${label} output "${outputName}" is NaN for row ${done + i} of ${data.name ?? 'the data'}`, {
            value: outputName,
          });
        if (v > bv) {
          bv = v;
          best = j;
        }
      }
      const truth = Number(b.y[i]!);
      if (truth < 0 || truth >= data.numClasses)
        throw new DataError('label-range', `Label ${truth} of row ${done + i} of ${data.name ?? 'the data'} is outside 0..${data.numClasses - 1}`, {
          value: 'label',
        });
      conf.add(truth, best);
    }
    done += b.n;
    opts.onBatch?.(done, total);
  }
  const seconds = (performance.now() - start) / 1000;
  conf ??= new Confusion(data.numClasses);
  return {
    accuracy: conf.accuracy,
    n: conf.n,
    correct: conf.correct,
    perClass: conf.perClass(data.classNames),
    confusion: conf.matrix(),
    seconds,
    throughput: seconds > 0 ? total / seconds : 0,
  };
}

export { numBatches };
