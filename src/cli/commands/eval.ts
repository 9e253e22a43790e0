import { evaluate } from '../../eval/index.js';
import { loadModel } from '../../onnx/index.js';
import { progress } from '../../util/progress.js';
import { type Command, intOption, pct, stringOption, table } from '../command.js';
import { resolveData } from '../datasource.js';

export const evalCommand: Command = {
  name: 'eval',
  summary: 'Run a classifier over a dataset through ONNX Runtime: accuracy, per-class precision/recall, confusion matrix.',
  usage: '<model.onnx> --data fashion-mnist|mnist [--split test|train] [--limit N]',
  positionals: [{ name: 'model.onnx', description: 'classifier: input images [N,1,28,28] (or flat [N,784]), output class scores [N,C]' }],
  options: {
    data: { type: 'string', valueName: 'dataset', description: 'fashion-mnist | mnist' },
    split: { type: 'string', valueName: 'split', description: 'test | train', default: 'test' },
    limit: { type: 'string', valueName: 'N', description: 'only the first N rows' },
    batch: { type: 'string', valueName: 'N', description: 'batch size', default: '256' },
    threads: { type: 'string', valueName: 'N', description: 'ORT intra-op threads (default: all cores)' },
  },
  examples: ['edgefit eval model.onnx --data fashion-mnist --json | jq .accuracy'],
  async run(p, io) {
    const [file] = p.positionals as [string];
    const split = stringOption(p, 'split', ['test', 'train'] as const) ?? 'test';
    const limit = intOption(p, 'limit', { min: 1 });
    const batchSize = intOption(p, 'batch', { min: 1, max: 65536 }) ?? 256;
    const threads = intOption(p, 'threads', { min: 1, max: 256 });
    const model = loadModel(file);
    const data = resolveData(stringOption(p, 'data'), split, limit);
    const bar = progress(`eval ${data.name}/${split}`, data.n, { quiet: io.quiet });
    let last = 0;
    const r = await evaluate(model, data, {
      batchSize,
      threads,
      label: file,
      onBatch: (done) => {
        bar.tick(done - last);
        last = done;
      },
    });
    bar.done();
    const json = {
      model: file,
      data: data.name,
      split,
      n: r.n,
      correct: r.correct,
      accuracy: r.accuracy,
      perClass: r.perClass,
      confusion: r.confusion,
      seconds: r.seconds,
      throughput: r.throughput,
      dropped: data.dropped,
    };
    const rows = r.perClass.map((c) => [`${c.class}${c.name ? ` ${c.name}` : ''}`, c.support, pct(c.precision, 1), pct(c.recall, 1)]);
    const text = [
      `${file} on ${data.name} ${split} (${r.n} rows): accuracy ${pct(r.accuracy)} (${r.correct}/${r.n}), ${r.throughput.toFixed(0)} rows/s`,
      data.dropped.length ? `dropped ${data.dropped.length} malformed source rows: ${data.dropped.map((d) => `class ${d.class} row ${d.index} (${d.length} values)`).join(', ')}` : '',
      '',
      table(['class', 'rows', 'precision', 'recall'], rows),
    ]
      .filter((l, i) => l !== '' || i === 2)
      .join('\n');
    return { json, text };
  },
};
