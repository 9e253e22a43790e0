// What the public functions share: a model given as an IR Model or a file, data given as a spec string or an open
// DataSource, and an output file written atomically.
import {
  fromDataset,
  isDatasetName,
  loadDataset,
  openData,
  subset,
  type DataSource,
  type OpenDataOptions,
  type Split,
} from '../data/index.js';
import { assertValid, type Model } from '../ir/index.js';
import { loadModel, saveModel, type SaveResult } from '../onnx/index.js';
import { checkRuntimeAccepts } from '../runtime/index.js';

/** A model: an IR model, or the path of an ONNX file. */
export type ModelArg = Model | string;

/** Data: a spec (a built-in dataset name, an image folder, .npy/.npz, CSV, a manifest) or an open source. */
export type DataArg = string | DataSource;

/** How data specs are read (the CLI's --labels, --label-column and preprocessing flags). */
export type DataReadOptions = Pick<
  OpenDataOptions,
  'labels' | 'labelColumn' | 'preprocess' | 'decodeThreads'
>;

/** Where to write a result model. */
export interface OutputOptions {
  path: string;
  /** Tensors of `threshold` bytes or more in `<path>.data`, aligned to `align` bytes (default 4096). */
  externalData?: boolean;
  align?: number;
  threshold?: number;
}

export type SavedModel = SaveResult & { externalData: boolean; align: number };

/** The model and what to call it in messages (its file). */
export function resolveModel(m: ModelArg, what = 'the model'): { model: Model; name: string } {
  if (typeof m !== 'string') return { model: m, name: what };
  const model = loadModel(m);
  assertValid(model.graph, { opsetImports: model.opsetImports }, m);
  return { model, name: m };
}

/**
 * `resolveModel` for a model that will run in ONNX Runtime: a file ORT refuses is the user's input (exit 3 for an
 * unsupported op/opset/IR version, 2 when malformed, naming the file and ORT's reason), checked before anything
 * runs, so that a later ORT failure of a graph derived from it is edgefit's own (exit 1).
 */
export async function resolveRunnableModel(
  m: ModelArg,
  what = 'the model',
): Promise<{ model: Model; name: string }> {
  if (typeof m !== 'string') return resolveModel(m, what);
  // decoded first (our decoder names the broken field), then ORT's verdict on the file, then our graph checks
  const model = loadModel(m);
  await checkRuntimeAccepts(m);
  assertValid(model.graph, { opsetImports: model.opsetImports }, m);
  return { model, name: m };
}

/** Write `model` atomically (the data file first, the model last). */
export function writeOutput(model: Model, out: string | OutputOptions): SavedModel {
  const o = typeof out === 'string' ? { path: out } : out;
  const externalData = !!o.externalData;
  const align = o.align ?? 4096;
  return {
    ...saveModel(model, o.path, { externalData, align, threshold: o.threshold ?? 1024 }),
    externalData,
    align,
  };
}

/** Whether a data argument is a built-in dataset name. */
export function isBuiltin(d: DataArg | undefined): d is string {
  return typeof d === 'string' && isDatasetName(d);
}

/**
 * A lazy opener for a data argument (the source is opened when a stage first asks, and closed by the context):
 * a spec is opened with `o`; a given source is used as it is (and not closed: its owner closes it).
 */
export function dataRef(
  d: DataArg,
  model: Model,
  read: DataReadOptions | undefined,
  o: { split?: Split; limit?: number; limitSeed?: number; needLabels?: string } = {},
): () => Promise<DataSource> {
  if (typeof d !== 'string') return async () => borrowed(d);
  return () =>
    openData(d, {
      ...(read ?? {}),
      model,
      ...(o.split ? { split: o.split } : {}),
      ...(o.limit !== undefined ? { limit: o.limit } : {}),
      ...(o.limitSeed !== undefined ? { limitSeed: o.limitSeed } : {}),
      ...(o.needLabels ? { needLabels: o.needLabels } : {}),
    });
}

/** A source whose close() does nothing (its owner closes it). */
export function borrowed(src: DataSource): DataSource {
  return new Proxy(src, {
    get(t, k) {
      if (k === 'close') return async () => {};
      const v = Reflect.get(t, k);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

/**
 * Labelled evaluation rows: `spec`, else the test split of a built-in `data` (a seeded class-balanced `limit`
 * subset); undefined when neither names any. `command` is named when the rows carry no labels.
 */
export function testDataRef(
  spec: DataArg | undefined,
  data: DataArg | undefined,
  model: Model,
  read: DataReadOptions | undefined,
  o: { limit?: number; seed: number; command: string },
): (() => Promise<DataSource>) | undefined {
  const s = spec ?? (isBuiltin(data) ? data : undefined);
  if (s === undefined) return undefined;
  if (isBuiltin(s))
    return async () => {
      let ds = loadDataset(s, 'test');
      if (o.limit !== undefined) ds = subset(ds, o.limit, o.seed);
      return fromDataset(ds, { model, name: s });
    };
  return dataRef(s, model, read, {
    split: 'test',
    needLabels: o.command,
    ...(o.limit !== undefined ? { limit: o.limit, limitSeed: o.seed } : {}),
  });
}
