// openData(spec, options) → DataSource: the one way every command turns `--data` / `--calib-data` into batches.
//
//   spec                      what it opens
//   mnist | fashion-mnist     the built-in datasets (SPEC.md splits; `split` picks train or test). A folder or
//                             file with such a name is reached as ./mnist.
//   <folder>                  class subfolders of PNG/JPEG images (labels = class index; classes.txt may set the
//                             order), or a flat folder of images (unlabeled); see images.ts and preprocess.ts
//   <x.npy>                   inputs [n, ...]; labels from `labels` (--labels y.npy)
//   <d.npz>                   arrays `x` and optional `y` (or arrays named after the model inputs)
//   <t.csv> | <t.tsv>         numeric features + a label column (`labelColumn`, default the last); see csv.ts
//   <m.yaml> | <m.yml>        a manifest mapping each model input to a .npy/.npz array (manifest.ts)
//
// With `model`, everything is checked before a batch is read: input names, dtypes and shapes against the
// model's inputs, labels against its output classes, and image preprocessing defaults come from its first input.
// Errors are InputErrors naming the file. Close the source when done (decoder threads, open files).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, InputError, ShapeError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { ArraySource, bindArray, readLabels, type BoundArray } from './arrays.js';
import { readCsv } from './csv.js';
import { DATASET_NAMES, isDatasetName, loadDataset, type Dataset } from './dataset.js';
import { ImageFolderSource, listImageFolder } from './images.js';
import { readManifest, type ArrayRef } from './manifest.js';
import { openNpy, openNpz, type ArrayReader, type NpzFile } from './npz.js';
import { hasOverrides, itemShape, resolvePreprocess, type PreprocessOverrides } from './preprocess.js';
import {
  checkLabels,
  fitItemShape,
  labelCount,
  MemorySource,
  modelClasses,
  modelIO,
  shapeText,
  BaseSource,
  type DataSource,
  type ModelIO,
  SampledSource,
  type TensorSpec,
} from './source.js';
import type { Split } from './types.js';

export interface OpenDataOptions {
  /** The model the data is for (an IR model or its inputs/outputs): checks and preprocessing defaults. */
  model?: Model | ModelIO;
  /** Split of a built-in dataset (default 'test'). */
  split?: Split;
  /** Only `limit` items, drawn at random (seed `limitSeed`, default 0) and kept in item order. */
  limit?: number;
  limitSeed?: number;
  /** Labels file for a .npy (--labels). */
  labels?: string;
  /** CSV label column: name, index, or "none" (--label-column). */
  labelColumn?: string;
  /** Image preprocessing overrides (flags, or a config's `preprocess:` block). */
  preprocess?: PreprocessOverrides;
  /** Who needs labels (e.g. "edgefit eval"): unlabeled data is then an InputError saying so. */
  needLabels?: string;
  /** Image decoder worker threads (default 1; 0 decodes on the main thread). */
  decodeThreads?: number;
  /** Batches decoded ahead for image folders (default 2). */
  prefetch?: number;
}

import { DATA_FORMATS_HELP } from './names.js';
export { DATA_FORMATS_HELP };

function single(io: ModelIO | undefined, what: string): TensorSpec | undefined {
  if (!io) return undefined;
  if (io.inputs.length !== 1)
    throw new InputError(
      'data-inputs',
      `the model has ${io.inputs.length} inputs (${io.inputs.map((i) => i.name).join(', ')}), but ${what} feeds one: map each input to an array with a manifest (--data inputs.yaml)`,
      { value: what },
    );
  return io.inputs[0];
}

function refuse(spec: string, kind: string, o: OpenDataOptions): void {
  const flags: string[] = [];
  if (o.labels !== undefined && kind !== 'npy') flags.push('--labels (for .npy data)');
  if (o.labelColumn !== undefined && kind !== 'csv') flags.push('--label-column (for CSV data)');
  if (hasOverrides(o.preprocess) && kind !== 'images')
    flags.push('preprocessing options (for image folders)');
  if (flags.length)
    throw new InputError(
      'option',
      `${flags.join(' and ')} do not apply to ${spec} (${kind === 'builtin' ? 'a built-in dataset' : kind})`,
      { value: spec },
    );
}

/** Wrap an in-memory Dataset (or arrays of the same form) as a DataSource feeding `model`'s input. */
export function fromDataset(
  ds: Pick<Dataset, 'n' | 'x' | 'y' | 'inputShape' | 'numClasses'> &
    Partial<Pick<Dataset, 'name' | 'classNames' | 'dropped'>>,
  opts: { model?: Model | ModelIO; inputName?: string; name?: string } = {},
): MemorySource {
  const io = opts.model ? modelIO(opts.model) : undefined;
  const name = opts.name ?? ds.name ?? 'the data';
  let input: TensorSpec | undefined;
  if (io) {
    input = opts.inputName ? io.inputs.find((i) => i.name === opts.inputName) : single(io, name);
    if (!input)
      throw new ShapeError(
        'data-inputs',
        `the model has no input "${opts.inputName}" (inputs: ${io.inputs.map((i) => i.name).join(', ')})`,
        { value: opts.inputName },
      );
    if (input.dtype !== 'float32')
      throw new ShapeError(
        'data-dtype',
        `model input "${input.name}" takes ${input.dtype}, but ${name} is float32`,
        { value: input.name },
      );
  }
  const shape = fitItemShape(input?.shape ?? null, ds.inputShape);
  if (!shape)
    throw new ShapeError(
      'data-shape',
      `model input "${input!.name}" has shape ${shapeText(input!.shape)}, which does not fit ${name} items of shape [${ds.inputShape.join(',')}]`,
      {
        value: input!.name,
      },
    );
  const classes = io ? modelClasses(io) : undefined;
  if (classes !== undefined && ds.numClasses > classes) {
    const max = labelCount(ds.y);
    if (max > classes) checkLabels(ds.y, classes, name);
  }
  return new MemorySource({
    name,
    format: ds.name ? 'builtin' : 'memory',
    n: ds.n,
    inputs: [{ name: input?.name ?? opts.inputName ?? 'input', dtype: 'float32', shape }],
    arrays: [ds.x],
    labels: ds.y,
    numClasses: ds.numClasses,
    ...(ds.classNames ? { classNames: ds.classNames } : {}),
    ...(ds.dropped ? { dropped: ds.dropped.map((d) => ({ ...d })) } : {}),
  });
}

/** Open `--data` (or `--calib-data`) as a lazy DataSource; see the table at the top of this file. */
export async function openData(spec: string, opts: OpenDataOptions = {}): Promise<DataSource> {
  if (!spec) throw new InputError('usage', `no data given: one of ${DATA_FORMATS_HELP}`, { value: 'data' });
  if (opts.limit !== undefined && (!Number.isSafeInteger(opts.limit) || opts.limit < 1))
    throw new InputError('bad-argument', `limit must be a positive integer, got ${opts.limit}`, {
      value: String(opts.limit),
    });
  const all = await openUnchecked(spec, opts);
  const src =
    opts.limit !== undefined && opts.limit < all.n
      ? new SampledSource(all, opts.limit, opts.limitSeed ?? 0)
      : all;
  if (opts.needLabels && !src.labeled) {
    await src.close();
    throw new InputError(
      'needs-labels',
      `${opts.needLabels} needs labelled data, and ${spec} has no labels (use class subfolders, --labels y.npy, an array y in the .npz, labels: in the manifest, or a CSV label column)`,
      { file: spec },
    );
  }
  return src;
}

function kindOf(path: string): 'images' | 'npy' | 'npz' | 'csv' | 'manifest' | undefined {
  let st;
  try {
    st = statSync(path);
  } catch {
    return undefined;
  }
  if (st.isDirectory()) return 'images';
  const m = /\.(npy|npz|csv|tsv|ya?ml)$/i.exec(path);
  if (!m) return undefined;
  const e = m[1]!.toLowerCase();
  return e === 'npy' ? 'npy' : e === 'npz' ? 'npz' : e === 'csv' || e === 'tsv' ? 'csv' : 'manifest';
}

async function openUnchecked(spec: string, o: OpenDataOptions): Promise<BaseSource> {
  const io = o.model ? modelIO(o.model) : undefined;
  const classes = io ? modelClasses(io) : undefined;
  if (isDatasetName(spec)) {
    refuse(spec, 'builtin', o);
    const ds = loadDataset(spec, o.split ?? 'test');
    return fromDataset(ds, io ? { model: io, name: spec } : { name: spec });
  }
  const kind = kindOf(spec);
  if (!kind) {
    let exists = true;
    try {
      statSync(spec);
    } catch {
      exists = false;
    }
    throw new InputError(
      exists ? 'data-format' : 'unknown-dataset',
      exists
        ? `${spec}: unknown data format (expected a folder of images, .npy, .npz, .csv, .tsv or a .yaml manifest)`
        : `"${spec}" is neither a built-in dataset (${DATASET_NAMES.join(', ')}) nor an existing file or folder`,
      { file: spec },
    );
  }
  refuse(spec, kind, o);
  switch (kind) {
    case 'images':
      return openImages(spec, io, classes, o);
    case 'csv':
      return openCsv(spec, io, classes, o);
    default:
      return openArrays(spec, kind, io, classes, o);
  }
}

function openImages(
  root: string,
  io: ModelIO | undefined,
  classes: number | undefined,
  o: OpenDataOptions,
): BaseSource {
  const input = single(io, root);
  const spec = resolvePreprocess(input, o.preprocess, root);
  const listing = listImageFolder(root);
  const names = listing.classNames;
  if (names && classes !== undefined && names.length > classes) {
    // the first class folder (in class order) whose index the model does not score
    const bad = names.findIndex((c, k) => k >= classes && isDirectory(join(root, c)));
    if (bad >= 0)
      throw new DataError(
        'label-range',
        `${join(root, names[bad]!)}: class folder "${names[bad]}" has class index ${bad}, outside the model's ${classes} output classes (0..${classes - 1}); ${names.length} classes in ${root}`,
        { file: join(root, names[bad]!) },
      );
  }
  // fewer class folders than the model scores, with nothing saying which model class each is: folder i would be
  // scored as class i (a 10-class model on a 2-class folder reported 0 % with no hint)
  if (
    o.needLabels &&
    names &&
    classes !== undefined &&
    names.length < classes &&
    !existsSync(join(root, 'classes.txt'))
  )
    throw new DataError(
      'class-count',
      `${root} has ${names.length} class folder${names.length === 1 ? '' : 's'} (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}) but the model scores ${classes} classes: put a classes.txt in ${root} listing the model's ${classes} class names in its output order (a class may have no folder), so each folder gets the right class index`,
      { file: root },
    );
  const shape = itemShape(spec, input?.shape?.length);
  const numClasses = names ? (classes ?? names.length) : undefined;
  return new ImageFolderSource({
    name: root,
    listing,
    spec,
    input: { name: input?.name ?? 'input', dtype: 'float32', shape },
    ...(numClasses !== undefined ? { numClasses } : {}),
    ...(o.decodeThreads !== undefined ? { decodeThreads: o.decodeThreads } : {}),
    ...(o.prefetch !== undefined ? { prefetch: o.prefetch } : {}),
  });
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function rowSizeOf(input: TensorSpec | undefined): number | undefined {
  const s = input?.shape?.slice(1);
  if (!s || !s.every((d): d is number => typeof d === 'number')) return undefined;
  return s.reduce((a, b) => a * b, 1);
}

function openCsv(
  path: string,
  io: ModelIO | undefined,
  classes: number | undefined,
  o: OpenDataOptions,
): BaseSource {
  const input = single(io, path);
  if (input && input.dtype !== 'float32')
    throw new InputError(
      'data-dtype',
      `${path}: CSV features are float32, but model input "${input.name}" takes ${input.dtype}`,
      { file: path, value: input.name },
    );
  const rs = rowSizeOf(input);
  const csv = readCsv(path, {
    ...(o.labelColumn !== undefined ? { labelColumn: o.labelColumn } : {}),
    ...(rs !== undefined ? { rowSize: rs } : {}),
  });
  const shape = fitItemShape(input?.shape ?? null, [csv.features]);
  if (!shape)
    throw new InputError(
      'data-shape',
      `${path}: rows of ${csv.features} feature columns${csv.labelColumn !== undefined ? ` (plus label column ${csv.labelColumn + 1})` : ''} do not fit model input "${input!.name}" of shape ${shapeText(input!.shape)}`,
      { file: path, value: input!.name },
    );
  const n = csv.n;
  const x = csv.x;
  const y = csv.y;
  let numClasses: number | undefined;
  if (y) {
    const dataClasses = Math.max(csv.classNames?.length ?? 0, labelCount(y));
    if (classes !== undefined) {
      if (csv.classNames && csv.classNames.length > classes)
        throw new DataError(
          'label-range',
          `${path}: ${csv.classNames.length} label names (${csv.classNames.join(', ')}), more than the model's ${classes} output classes`,
          { file: path },
        );
      checkLabels(y, classes, path, (i) => `data row ${i + 1}`);
    }
    numClasses = classes ?? dataClasses;
  }
  return new MemorySource({
    name: path,
    format: 'csv',
    n,
    inputs: [{ name: input?.name ?? 'input', dtype: 'float32', shape }],
    arrays: [x],
    ...(y ? { labels: y } : {}),
    ...(numClasses !== undefined ? { numClasses } : {}),
    ...(csv.classNames ? { classNames: csv.classNames } : {}),
  });
}

function openArrays(
  path: string,
  kind: 'npy' | 'npz' | 'manifest',
  io: ModelIO | undefined,
  classes: number | undefined,
  o: OpenDataOptions,
): BaseSource {
  const opened: { close(): void }[] = [];
  const archives = new Map<string, NpzFile>();
  const archive = (file: string): NpzFile => {
    let z = archives.get(file);
    if (!z) {
      z = openNpz(file);
      archives.set(file, z);
      opened.push(z);
    }
    return z;
  };
  const readerOf = (r: ArrayRef, fallbackName: string): ArrayReader => {
    if (/\.npy$/i.test(r.file)) {
      const a = openNpy(r.file);
      opened.push(a);
      return a;
    }
    const z = archive(r.file);
    const name =
      r.array ?? (z.has(fallbackName) ? fallbackName : z.names.length === 1 ? z.names[0]! : undefined);
    if (name === undefined)
      throw new InputError(
        'manifest',
        `${r.file}: ${r.path}: the .npz has arrays ${z.names.join(', ')}: name one (${r.file}:NAME)`,
        { file: r.file, path: r.path },
      );
    return z.get(name);
  };
  try {
    let arrays: BoundArray[];
    let labelsReader: ArrayReader | undefined;
    let classNames: string[] | undefined;
    if (kind === 'npy') {
      const input = single(io, path);
      const a = openNpy(path);
      opened.push(a);
      arrays = [bindArray(a, input, input?.name ?? 'x')];
      if (o.labels !== undefined) {
        labelsReader = openNpy(o.labels);
        opened.push(labelsReader);
      }
    } else if (kind === 'npz') {
      const z = archive(path);
      const byName =
        io &&
        io.inputs.length > 0 &&
        io.inputs.every((i) => z.has(i.name)) &&
        (io.inputs.length > 1 || !z.has('x'));
      if (byName) arrays = io!.inputs.map((i) => bindArray(z.get(i.name), i, i.name));
      else {
        if (!z.has('x'))
          throw new InputError(
            'npz-missing-array',
            `${path}: has no array "x" (arrays: ${z.names.join(', ') || 'none'})${io && io.inputs.length > 1 ? `; or name its arrays after the model inputs (${io.inputs.map((i) => i.name).join(', ')})` : ''}`,
            { file: path, value: 'x' },
          );
        const input = single(io, path);
        arrays = [bindArray(z.get('x'), input, input?.name ?? 'x')];
      }
      if (z.has('y')) labelsReader = z.get('y');
    } else {
      const m = readManifest(path);
      if (io) {
        const missing = io.inputs.filter((i) => !m.inputs.has(i.name)).map((i) => i.name);
        const extra = [...m.inputs.keys()].filter((k) => !io.inputs.some((i) => i.name === k));
        if (missing.length || extra.length)
          throw new InputError(
            'manifest',
            `${path}: ${missing.length ? `does not map model input${missing.length > 1 ? 's' : ''} ${missing.join(', ')}` : ''}${missing.length && extra.length ? '; ' : ''}${extra.length ? `maps ${extra.join(', ')}, which the model does not have` : ''} (model inputs: ${io.inputs.map((i) => i.name).join(', ')})`,
            { file: path },
          );
        arrays = io.inputs.map((i) => bindArray(readerOf(m.inputs.get(i.name)!, i.name), i, i.name));
      } else arrays = [...m.inputs].map(([name, r]) => bindArray(readerOf(r, name), undefined, name));
      if (m.labels) labelsReader = readerOf(m.labels, 'y');
      classNames = m.classes;
    }
    const n = arrays[0]!.reader.shape[0]!;
    let labels: BigInt64Array | undefined;
    let numClasses: number | undefined;
    if (labelsReader) {
      labels = readLabels(labelsReader, n);
      if (classes !== undefined) checkLabels(labels, classes, labelsReader.file);
      else {
        const bad = labels.findIndex((v) => v < 0n);
        if (bad >= 0)
          throw new DataError(
            'label-range',
            `${labelsReader.file}: label ${labels[bad]} at row ${bad} is negative`,
            { file: labelsReader.file, index: bad },
          );
      }
      numClasses = classes ?? Math.max(labelCount(labels), classNames?.length ?? 0);
      if (classNames && classes !== undefined && classNames.length > classes)
        throw new DataError(
          'label-range',
          `${path}: ${classNames.length} class names, more than the model's ${classes} output classes`,
          { file: path },
        );
    }
    return new ArraySource({
      name: path,
      format: kind,
      arrays,
      ...(labels ? { labels } : {}),
      ...(numClasses !== undefined ? { numClasses } : {}),
      ...(classNames ? { classNames } : {}),
      resources: opened,
    });
  } catch (e) {
    for (const r of opened) r.close();
    throw e;
  }
}
