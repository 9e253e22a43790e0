// The data flags every command that reads data shares (eval, train, quantize --calib-data, prune, distill):
// --labels, --label-column and the image preprocessing overrides. A command spreads DATA_FLAGS into its options
// and calls dataOptions(parsed) to get what openData() takes:
//
//   options: { data: {...}, ...DATA_FLAGS, ... }
//   const src = await openData(spec, { model, split, ...dataOptions(p), needLabels: 'edgefit train' });
import type { OpenDataOptions, PreprocessOverrides } from '../data/index.js';
import { parseCrop, parseNumberList } from '../data/preprocess.js';
import { InputError } from '../errors.js';
import type { OptionSpec, Parsed } from './command.js';

/** Which items of --data an evaluation reads: the split of a built-in dataset, and a seeded sample of them. */
export const EVAL_SUBSET_FLAGS: Record<string, OptionSpec> = {
  split: {
    type: 'string',
    valueName: 'split',
    description: 'test | train (built-in datasets)',
    default: 'test',
  },
  limit: {
    type: 'string',
    valueName: 'N',
    description: 'N items drawn at random (fixed seed), in item order',
  },
};

export const DATA_FLAGS: Record<string, OptionSpec> = {
  labels: { type: 'string', valueName: 'y.npy', description: 'labels for .npy data: integers, one per row' },
  'label-column': {
    type: 'string',
    valueName: 'column',
    description:
      'CSV label column: header name, 0-based index (negative from the end), or none (default: the last)',
  },
  resize: {
    type: 'string',
    valueName: 'N',
    description: 'images: resize the shorter side to N pixels before the crop (default: the crop size)',
  },
  crop: {
    type: 'string',
    valueName: 'HxW',
    description: "images: center crop size (default: the model input's H and W)",
  },
  mean: {
    type: 'string',
    valueName: 'a,b,c',
    description: 'images: per-channel mean subtracted after scaling (default 0)',
  },
  std: {
    type: 'string',
    valueName: 'a,b,c',
    description: 'images: per-channel std divided by after the mean (default 1)',
  },
  scale: {
    type: 'string',
    valueName: 'F',
    description: 'images: pixel multiplier before mean/std (default 1/255)',
  },
  bgr: { type: 'boolean', description: 'images: feed channels in BGR order' },
  layout: {
    type: 'string',
    valueName: 'nchw|nhwc',
    description: "images: tensor layout (default: from the model input's shape)",
  },
};

function str(p: Parsed, k: string): string | undefined {
  const v = p.values[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new InputError('option', `--${k} takes a value`, { value: k });
  return v;
}

/** The preprocessing overrides given as flags. */
export function preprocessFlags(p: Parsed): PreprocessOverrides {
  const o: PreprocessOverrides = {};
  const resize = str(p, 'resize');
  if (resize !== undefined) {
    const n = Number(resize);
    if (!/^\d+$/.test(resize.trim()) || n < 1 || n > 65535)
      throw new InputError(
        'option',
        `--resize must be an integer from 1 to 65535: current value is "${resize}"`,
        { value: 'resize' },
      );
    o.resize = n;
  }
  const crop = str(p, 'crop');
  if (crop !== undefined) o.crop = parseCrop(crop);
  const mean = str(p, 'mean');
  if (mean !== undefined) o.mean = parseNumberList(mean, '--mean');
  const std = str(p, 'std');
  if (std !== undefined) o.std = parseNumberList(std, '--std');
  const scale = str(p, 'scale');
  if (scale !== undefined) {
    const v = Number(scale);
    if (scale.trim() === '' || !Number.isFinite(v) || v === 0)
      throw new InputError('option', `--scale must be a non-zero number: current value is "${scale}"`, {
        value: 'scale',
      });
    o.scale = v;
  }
  if (p.values.bgr) o.bgr = true;
  const layout = str(p, 'layout');
  if (layout !== undefined) {
    if (layout !== 'nchw' && layout !== 'nhwc')
      throw new InputError('option', `--layout must be nchw or nhwc: current value is "${layout}"`, {
        value: 'layout',
      });
    o.layout = layout;
  }
  return o;
}

/** What openData() takes from DATA_FLAGS. */
export function dataOptions(p: Parsed): Pick<OpenDataOptions, 'labels' | 'labelColumn' | 'preprocess'> {
  const o: Pick<OpenDataOptions, 'labels' | 'labelColumn' | 'preprocess'> = {
    preprocess: preprocessFlags(p),
  };
  const labels = str(p, 'labels');
  if (labels !== undefined) o.labels = labels;
  const lc = str(p, 'label-column');
  if (lc !== undefined) o.labelColumn = lc;
  return o;
}
