import { loadModel } from '../../onnx/index.js';
import { inferShapes } from '../../ops/index.js';
import { summarize, formatSummaryTable } from '../../summary/index.js';
import { type Command, intOption } from '../command.js';

export const inspect: Command = {
  name: 'inspect',
  summary:
    'Summarise a model: parameters, bytes by dtype, MACs, peak activation memory, inputs/outputs, op counts, per-layer table.',
  usage: '<model.onnx> [--batch N]',
  positionals: [{ name: 'model.onnx', description: 'the model to inspect' }],
  options: {
    batch: {
      type: 'string',
      valueName: 'N',
      description: 'batch size used for symbolic batch dims (MACs, activations)',
      default: '1',
    },
  },
  examples: ['edgefit inspect cnn-s.onnx --json | jq .params'],
  async run(p) {
    const [file] = p.positionals as [string];
    const batch = intOption(p, 'batch', { min: 1 }) ?? 1;
    const m = loadModel(file);
    const report = inferShapes(m, { strict: false });
    const s = summarize(m, { batch });
    const json = {
      file,
      ...s,
      unsupportedOps: report.unsupported.map((u) => ({ node: u.node, opType: u.opType, domain: u.domain })),
    };
    const warn = report.unsupported.length
      ? `\nnote: shapes unknown after ${report.unsupported.length} node(s) of unsupported ops: ${[...new Set(report.unsupported.map((u) => u.opType))].join(', ')}`
      : '';
    return { json, text: `${file}\n${formatSummaryTable(s)}${warn}` };
  },
};
