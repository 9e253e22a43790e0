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
    const { inspect } = await import('../../api/evaluate.js');
    const { formatSummaryTable } = await import('../../summary/index.js');
    const s = inspect(file, { batch });
    const json = { file, ...s };
    const warn = s.unsupportedOps.length
      ? `\nnote: shapes unknown after ${s.unsupportedOps.length} node(s) of unsupported ops: ${[...new Set(s.unsupportedOps.map((u) => u.opType))].join(', ')}`
      : '';
    const warnings = json.warnings.map((w) => `\nwarning: ${w}`).join('');
    return { json, text: `${file}\n${formatSummaryTable(s)}${warn}${warnings}` };
  },
};
