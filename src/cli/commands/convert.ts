import { loadModel } from '../../onnx/index.js';
import { assertValid } from '../../ir/index.js';
import { type Command, fmtSaved, SAVE_OPTIONS, saveOutput } from '../command.js';

export const convert: Command = {
  name: 'convert',
  summary:
    'Re-save an ONNX model, inline or with its weights in an external data file (aligned so ORT can map them).',
  usage: '<in.onnx> <out.onnx> [--external-data] [--align N]',
  positionals: [
    { name: 'in.onnx', description: 'model to read (external data is read from its folder)' },
    { name: 'out.onnx', description: 'model to write (written atomically)' },
  ],
  options: SAVE_OPTIONS,
  examples: ['edgefit convert cnn-s.onnx cnn-s.ext.onnx --external-data --align 4096'],
  async run(p) {
    const [input, output] = p.positionals as [string, string];
    const m = loadModel(input);
    assertValid(m.graph, { opsetImports: m.opsetImports }, input);
    const r = saveOutput(p, m, output);
    const json = {
      input,
      output,
      externalData: r.externalData,
      align: r.align,
      modelBytes: r.modelBytes,
      dataBytes: r.dataBytes,
      dataFile: r.dataFile ?? null,
    };
    const text = `${output}: ${fmtSaved(r)}${r.dataFile ? ` (aligned to ${r.align})` : ''}`;
    return { json, text };
  },
};
