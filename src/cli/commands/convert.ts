import { loadModel, MAX_KNOWN_OPSET, MIN_CONVERT_OPSET } from '../../onnx/index.js';
import { assertValid } from '../../ir/index.js';
import { convertOpset } from '../../passes/index.js';
import { type Command, fmtSaved, intOption, SAVE_OPTIONS, saveOutput } from '../command.js';

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
    let m = loadModel(input);
    assertValid(m.graph, { opsetImports: m.opsetImports }, input);
    const target = intOption(p, 'opset', { min: 1, max: 1000 });
    let opset: { from: number; to: number; rewrites: Record<string, number> } | null = null;
    if (target !== undefined) {
      const r = convertOpset(m, target);
      m = r.model;
      opset = { from: r.from, to: r.to, rewrites: r.counts };
    }
    const r = saveOutput(p, m, output);
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
