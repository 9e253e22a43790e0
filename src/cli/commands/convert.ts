import { loadModel, saveModel } from '../../onnx/index.js';
import { assertValid } from '../../ir/index.js';
import { type Command, fmtBytes, intOption } from '../command.js';

export const convert: Command = {
  name: 'convert',
  summary:
    'Re-save an ONNX model, inline or with its weights in an external data file (aligned so ORT can map them).',
  usage: '<in.onnx> <out.onnx> [--external-data] [--align N]',
  positionals: [
    { name: 'in.onnx', description: 'model to read (external data is read from its folder)' },
    { name: 'out.onnx', description: 'model to write (written atomically)' },
  ],
  options: {
    'external-data': { type: 'boolean', description: 'store tensors of 1 kB or more in <out.onnx>.data' },
    align: {
      type: 'string',
      valueName: 'N',
      description: 'byte alignment of tensors in the data file',
      default: '4096',
    },
    threshold: {
      type: 'string',
      valueName: 'BYTES',
      description: 'tensors below this size stay inline',
      default: '1024',
    },
  },
  examples: ['edgefit convert cnn-s.onnx cnn-s.ext.onnx --external-data --align 4096'],
  async run(p) {
    const [input, output] = p.positionals as [string, string];
    const align = intOption(p, 'align', { min: 1, max: 1 << 30 }) ?? 4096;
    const threshold = intOption(p, 'threshold', { min: 0 }) ?? 1024;
    const m = loadModel(input);
    assertValid(m.graph, { opsetImports: m.opsetImports }, input);
    const r = saveModel(m, output, { externalData: !!p.values['external-data'], align, threshold });
    const json = {
      input,
      output,
      externalData: !!p.values['external-data'],
      align,
      modelBytes: r.modelBytes,
      dataBytes: r.dataBytes,
      dataFile: r.dataFile ?? null,
    };
    const text = `${output}: ${fmtBytes(r.modelBytes)} model${r.dataFile ? ` + ${fmtBytes(r.dataBytes)} external data in ${r.dataFile.split('/').pop()} (aligned to ${align})` : ''}`;
    return { json, text };
  },
};
