import { MAX_KNOWN_OPSET } from '../../onnx/schemas.gen.js';
import { type Command, fmtSaved, intOption, outputOptions, SAVE_OPTIONS } from '../command.js';

/** The oldest opset `--opset` converts from and to (src/onnx/opsets.ts MIN_CONVERT_OPSET; a test checks they agree). */
export const MIN_CONVERT_OPSET = 7;

export const convert: Command = {
  name: 'convert',
  summary:
    'Re-save an ONNX model, inline or with its weights in an external data file (aligned so ORT can map them), optionally upgraded to a newer ai.onnx opset.',
  usage: '<in.onnx> <out.onnx> [--opset N] [--external-data] [--align N]',
  positionals: [
    { name: 'in.onnx', description: 'model to read (external data is read from its folder)' },
    { name: 'out.onnx', description: 'model to write (written atomically)' },
  ],
  options: {
    opset: {
      type: 'string',
      valueName: 'N',
      description: `upgrade to ai.onnx opset N (${MIN_CONVERT_OPSET}–${MAX_KNOWN_OPSET}; attribute→input moves, Upsample → Resize, …; outputs unchanged)`,
    },
    ...SAVE_OPTIONS,
  },
  examples: [
    'edgefit convert cnn-s.onnx cnn-s.ext.onnx --external-data --align 4096',
    'edgefit convert old-opset9.onnx new.onnx --opset 17',
  ],
  async run(p) {
    const [input, output] = p.positionals as [string, string];
    const target = intOption(p, 'opset', { min: 1, max: 1000 });
    const { convertFile } = await import('../../api/files.js');
    const { saved: r, opset } = convertFile(input, outputOptions(p, output), {
      ...(target !== undefined ? { opset: target } : {}),
    });
    const json = {
      input,
      output,
      opset,
      externalData: r.externalData,
      align: r.align,
      modelBytes: r.modelBytes,
      dataBytes: r.dataBytes,
      dataFile: r.dataFile ?? null,
    };
    const conv = opset
      ? ` (opset ${opset.from} → ${opset.to}, ${Object.values(opset.rewrites).reduce((a, b) => a + b, 0)} node(s) rewritten)`
      : '';
    const text = `${output}: ${fmtSaved(r)}${r.dataFile ? ` (aligned to ${r.align})` : ''}${conv}`;
    return { json, text };
  },
};
