import { InputError } from '../../errors.js';
import { type Command, fmtBytes, intOption } from '../command.js';

export const splitCommand: Command = {
  name: 'split',
  summary:
    'Cut models whose leading layers have identical weights (found by hashing) into one backbone and a head each, for `edgefit serve`.',
  usage: '<a.onnx> [b.onnx ...] --out <dir> [--names a,b] [--at tensor,...]',
  positionals: [
    { name: 'a.onnx', description: 'a model' },
    {
      name: 'more.onnx',
      description: 'more models sharing leading layers with it (repeatable)',
      optional: true,
    },
  ],
  variadic: true,
  options: {
    out: {
      type: 'string',
      valueName: 'dir',
      description: 'folder for backbone.onnx, <head>.onnx and split.json',
    },
    names: { type: 'string', valueName: 'a,b', description: "head names (default: the files' base names)" },
    at: { type: 'string', valueName: 'tensor,...', description: 'one model: cut at these tensors' },
    align: { type: 'string', valueName: 'N', description: 'external data alignment', default: '4096' },
  },
  examples: [
    'edgefit split shirt.onnx shoes.onnx --out tasks/',
    'edgefit serve --model tasks=tasks/split.json   # POST /v1/models/shirt/infer, /v1/models/shoes/infer',
  ],
  async run(p) {
    const out = p.values.out;
    if (typeof out !== 'string')
      throw new InputError('usage', 'edgefit split needs --out <dir>', { value: 'out' });
    const list = (k: string) =>
      typeof p.values[k] === 'string' ? (p.values[k] as string).split(',').filter(Boolean) : undefined;
    const { splitFiles } = await import('../../serve/split.js');
    const r = await splitFiles(p.positionals, out, {
      names: list('names'),
      at: list('at'),
      align: intOption(p, 'align'),
    });
    const text = [
      `backbone: ${r.backbone.nodes} nodes, ${fmtBytes(r.backbone.bytes)} → ${r.backbone.file} (outputs ${r.backbone.outputs.join(', ')})`,
      ...r.heads.map((h) => `head ${h.name}: ${h.nodes} nodes, ${fmtBytes(h.bytes)} → ${h.file}`),
      `max |difference| vs the unsplit models: ${r.maxAbsDiff.toExponential(2)}`,
      `serve with: edgefit serve --model NAME=${r.manifest}`,
    ].join('\n');
    return { json: r, text };
  },
};
