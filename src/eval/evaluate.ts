// Run a classifier over data in batches through ORT: accuracy, per-class precision/recall, confusion matrix.
// The data is a DataSource (any --data: image folders decoded ahead of ORT, .npy/.npz, CSV, manifests) or an
// in-memory EvalData (a Dataset), which is wrapped as one.
import { DataError, InputError, ShapeError } from '../errors.js';
import type { BatchSource } from '../data/batch.js';
import { numBatches } from '../data/batch.js';
import { MemorySource, isDataSource, type DataSource } from '../data/source.js';
import type { Model } from '../ir/graph.js';
import type { TypedArray } from '../ir/tensor.js';
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

/** Evaluate a model (IR, ONNX bytes, a path, or an open Session) on labelled data (a DataSource or in memory). */
export async function evaluate(
  model: Model | Uint8Array | string | Session,
  data: EvalData | DataSource,
  opts: EvalOptions = {},
): Promise<EvalResult> {
  const own = !(model instanceof Session);
  const session =
    model instanceof Session
      ? model
      : await Session.create(model, { threads: opts.threads, label: opts.label });
  try {
    return await evaluateSession(session, model instanceof Session ? undefined : model, data, opts);
  } finally {
    if (own) await session.release();
  }
}

async function evaluateSession(
  session: Session,
  source: Model | Uint8Array | string | undefined,
  data: EvalData | DataSource,
  opts: EvalOptions,
): Promise<EvalResult> {
  const label = opts.label ?? session.label;
  const graph = typeof source === 'object' && !(source instanceof Uint8Array) ? source.graph : undefined;
  let src: DataSource;
  if (isDataSource(data)) {
    src = data;
    for (const inp of src.inputs)
      if (!session.inputNames.includes(inp.name))
        throw new ShapeError(
          'eval-input',
          `${label} has no input "${inp.name}" (inputs: ${session.inputNames.join(', ')}), which ${src.name} feeds`,
          { value: inp.name },
        );
  } else {
    const inputName = opts.inputName ?? session.inputNames[0]!;
    if (!session.inputNames.includes(inputName))
      throw new ShapeError(
        'eval-input',
        `${label} has no input "${inputName}" (inputs: ${session.inputNames.join(', ')})`,
        { value: inputName },
      );
    // the declared input shape decides the feed layout (NCHW as is, or flattened rows)
    const declared = graph?.inputs.find((v) => v.name === inputName)?.shape;
    const rowSize = data.inputShape.reduce((a, b) => a * b, 1);
    let rowShape = [...data.inputShape];
    if (declared) {
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
    src = new MemorySource({
      name: data.name ?? 'the data',
      format: 'memory',
      n: data.n,
      inputs: [{ name: inputName, dtype: 'float32', shape: rowShape }],
      arrays: [data.x],
      labels: data.y,
      numClasses: data.numClasses,
      ...(data.classNames ? { classNames: data.classNames } : {}),
    });
  }
  if (!src.labeled)
    throw new InputError('needs-labels', `evaluation needs labelled data, and ${src.name} has no labels`, {
      file: src.name,
    });
  const outputName = opts.outputName ?? session.outputNames[0]!;
  if (!session.outputNames.includes(outputName))
    throw new ShapeError(
      'eval-output',
      `${label} has no output "${outputName}" (outputs: ${session.outputNames.join(', ')})`,
      { value: outputName },
    );
  const dataName = src.name;
  const numClasses = src.numClasses ?? 0;

  // a model with a fixed batch dimension gets its last batch padded with zeros (padded rows are ignored)
  const first = graph?.inputs.find((v) => v.name === src.inputs[0]!.name)?.shape;
  const fixedBatch = first && typeof first[0] === 'number' ? first[0] : undefined;
  const batchSize = fixedBatch ?? opts.batchSize ?? 256;
  let conf: Confusion | undefined;
  const total = src.n;
  const start = performance.now();
  let done = 0;
  for await (const b of src.batches({ batchSize })) {
    let k = b.n;
    let feeds: Record<string, HostTensor> = b.feeds;
    if (fixedBatch !== undefined && k < fixedBatch) {
      feeds = {};
      for (const [name, t] of Object.entries(b.feeds)) {
        const padded = new (t.data.constructor as new (n: number) => TypedArray)(
          (t.data.length / k) * fixedBatch,
        );
        (padded as Float32Array).set(t.data as Float32Array);
        feeds[name] = { dtype: t.dtype, dims: [fixedBatch, ...t.dims.slice(1)], data: padded };
      }
      k = fixedBatch;
    }
    const out = await session.run(feeds, [outputName]);
    const logits = out[outputName]!;
    if (logits.dtype !== 'float32' && logits.dtype !== 'float64')
      throw new ShapeError(
        'eval-output',
        `${label} output "${outputName}" is ${logits.dtype}, not float scores`,
        { value: outputName },
      );
    const c = logits.dims[logits.dims.length - 1]!;
    if (logits.dims.length !== 2 || logits.dims[0] !== k)
      throw new ShapeError(
        'eval-output',
        `${label} output "${outputName}" has shape [${logits.dims}]: expected [${k}, ${numClasses}] class scores`,
        { value: outputName },
      );
    // scores for another number of classes than the data's labels: index i would mean different classes in the
    // two (a 1000-class model on 10-class data scores 0 % with a 1000×1000 matrix and no hint why)
    if (c !== numClasses) throw classCountError(label, outputName, c, src, numClasses);
    conf ??= new Confusion(numClasses);
    const s = logits.data as Float32Array;
    const y = b.labels!;
    for (let i = 0; i < b.n; i++) {
      let best = 0;
      let bv = -Infinity;
      for (let j = 0; j < c; j++) {
        const v = s[i * c + j]!;
        if (Number.isNaN(v))
          throw new DataError(
            'nan-output',
            `${label} output "${outputName}" is NaN for row ${b.indices[i]} of ${dataName}`,
            {
              value: outputName,
            },
          );
        if (v > bv) {
          bv = v;
          best = j;
        }
      }
      const truth = Number(y[i]!);
      if (truth < 0 || truth >= numClasses)
        throw new DataError(
          'label-range',
          `Label ${truth} of row ${b.indices[i]} of ${dataName} is outside 0..${numClasses - 1}`,
          {
            value: 'label',
          },
        );
      conf.add(truth, best);
    }
    done += b.n;
    opts.onBatch?.(done, total);
  }
  const seconds = (performance.now() - start) / 1000;
  conf ??= new Confusion(numClasses);
  return {
    accuracy: conf.accuracy,
    n: conf.n,
    correct: conf.correct,
    perClass: conf.perClass(src.classNames),
    confusion: conf.matrix(),
    seconds,
    throughput: seconds > 0 ? conf.n / seconds : 0,
  };
}

/** The InputError for a model scoring `c` classes on data labelled with `numClasses`. */
function classCountError(
  label: string,
  outputName: string,
  c: number,
  src: DataSource,
  numClasses: number,
): ShapeError {
  const names = src.classNames?.length
    ? ` (${src.classNames.slice(0, 5).join(', ')}${numClasses > 5 ? ', …' : ''})`
    : '';
  const hint =
    src.format === 'image-folder'
      ? c > numClasses
        ? `: if these are ${numClasses} of the model's ${c} classes, list all ${c} class names in the model's order in ${src.name}/classes.txt (a class may have no folder)`
        : ''
      : '';
  return new ShapeError(
    'class-count',
    `${label} scores ${c} classes (output "${outputName}" has ${c} columns) but ${src.name} has ${numClasses} classes${names}: label i would not mean class i of the model${hint}`,
    { value: outputName, file: src.name },
  );
}

export { numBatches };
