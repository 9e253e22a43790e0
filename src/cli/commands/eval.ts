import { DATA_FORMATS_HELP } from '../../data/names.js';
import { InputError } from '../../errors.js';
import { type Command, intOption, pct, stringOption, table } from '../command.js';
import { DATA_FLAGS, EVAL_SUBSET_FLAGS, dataOptions } from '../dataflags.js';

export const evalCommand: Command = {
  name: 'eval',
  summary:
    'Run a classifier over a dataset through ONNX Runtime: accuracy, per-class precision/recall, confusion matrix.',
  usage:
    '<model.onnx> --data <dataset|folder|x.npy|d.npz|t.csv|inputs.yaml> [--split test|train] [--limit N]',
  positionals: [
    {
      name: 'model.onnx',
      description: 'classifier: inputs as the data gives them, output class scores [N,C]',
    },
  ],
  options: {
    data: { type: 'string', valueName: 'data', description: DATA_FORMATS_HELP },
    ...EVAL_SUBSET_FLAGS,
    batch: { type: 'string', valueName: 'N', description: 'batch size', default: '256' },
    threads: { type: 'string', valueName: 'N', description: 'ORT intra-op threads (default: all cores)' },
    'decode-threads': {
      type: 'string',
      valueName: 'N',
      description: 'image decoder threads (default: 1 for 4,096+ images, else 0 = decode on the main thread)',
    },
    ...DATA_FLAGS,
  },
  examples: [
    'edgefit eval model.onnx --data fashion-mnist --json | jq .accuracy',
    'edgefit eval model.onnx --data photos/ --resize 256 --crop 224x224 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225',
    'edgefit eval model.onnx --data x.npy --labels y.npy',
    'edgefit eval mlp.onnx --data table.csv --label-column species',
  ],
  async run(p, io) {
    const [file] = p.positionals as [string];
    const split = stringOption(p, 'split', ['test', 'train'] as const) ?? 'test';
    const limit = intOption(p, 'limit', { min: 1 });
    const batchSize = intOption(p, 'batch', { min: 1, max: 65536 }) ?? 256;
    const threads = intOption(p, 'threads', { min: 1, max: 256 });
    const decodeThreads = intOption(p, 'decode-threads', { min: 0, max: 64 });
    const spec = p.values.data;
    if (typeof spec !== 'string' || spec === '')
      throw new InputError('usage', `--data is required: ${DATA_FORMATS_HELP}`, { value: 'data' });
    const { evaluate } = await import('../../api/evaluate.js');
    const r = await evaluate(file, spec, {
      split,
      ...(limit !== undefined ? { limit } : {}),
      batchSize,
      threads,
      read: { ...dataOptions(p), ...(decodeThreads !== undefined ? { decodeThreads } : {}) },
      needLabels: 'edgefit eval',
      progress: { quiet: io.quiet },
    });
    const data = r.data;
    const json = {
      model: file,
      data: data.name,
      format: data.format,
      split: data.split,
      n: r.n,
      correct: r.correct,
      accuracy: r.accuracy,
      perClass: r.perClass,
      confusion: r.confusion,
      seconds: r.seconds,
      throughput: r.throughput,
      dropped: data.dropped,
      skipped: data.skipped,
      preprocess: data.preprocess,
    };
    const rows = r.perClass.map((c) => [
      `${c.class}${c.name ? ` ${c.name}` : ''}`,
      c.support,
      pct(c.precision, 1),
      pct(c.recall, 1),
    ]);
    const pp = data.preprocess;
    const lines = [
      `${file} on ${data.name}${data.format === 'builtin' ? ` ${split}` : ''} (${r.n} rows): accuracy ${pct(r.accuracy)} (${r.correct}/${r.n}), ${r.throughput.toFixed(0)} rows/s`,
      pp
        ? `preprocess: ${pp.channels === 1 ? 'grey' : pp.bgr ? 'BGR' : 'RGB'}, resize ${pp.resize}, crop ${pp.crop[0]}x${pp.crop[1]}, scale ${+pp.scale.toPrecision(6)}, mean [${pp.mean}], std [${pp.std}], ${pp.layout}${pp.flatten ? ' (flattened)' : ''}`
        : '',
      data.dropped.length
        ? `dropped ${data.dropped.length} malformed source rows: ${data.dropped.map((d) => `class ${d.class} row ${d.index} (${d.length} values)`).join(', ')}`
        : '',
      data.skipped.length
        ? `skipped ${data.skipped.length} unreadable item${data.skipped.length > 1 ? 's' : ''}: ${data.skipped
            .slice(0, 10)
            .map((s) => `${s.file} (${s.reason})`)
            .join(', ')}${data.skipped.length > 10 ? `, … (--json lists all)` : ''}`
        : '',
    ].filter((l) => l !== '');
    const text = [...lines, '', table(['class', 'rows', 'precision', 'recall'], rows)].join('\n');
    return { json, text };
  },
};
