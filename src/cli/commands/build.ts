import { MODEL_NAMES } from '../../models/names.js';
import { type Command, fmtSaved, intOption, outputOptions, SAVE_OPTIONS } from '../command.js';

export const build: Command = {
  name: 'build',
  summary: `Build one of the benchmark models of SPEC.md (${MODEL_NAMES.join(', ')}), untrained, with seeded initialisation.`,
  usage: '<mlp|cnn-s|vit-t> <out.onnx> [--seed N]',
  positionals: [
    { name: 'model', description: MODEL_NAMES.join(' | ') },
    { name: 'out.onnx', description: 'where to write the model' },
  ],
  options: {
    seed: { type: 'string', valueName: 'N', description: 'initialisation seed', default: '0' },
    opset: { type: 'string', valueName: 'N', description: 'ai.onnx opset, 17–26', default: '17' },
    ...SAVE_OPTIONS,
  },
  examples: ['edgefit build cnn-s cnn-s.onnx --seed 1'],
  async run(p) {
    const [name, out] = p.positionals as [string, string];
    const seed = intOption(p, 'seed', { min: 0, max: 2 ** 32 - 1 }) ?? 0;
    const opset = intOption(p, 'opset', { min: 17, max: 26 }) ?? 17;
    const { buildFile } = await import('../../api/files.js');
    const { params, saved: r } = buildFile(name, outputOptions(p, out), { seed, opset });
    return {
      json: {
        model: name,
        output: out,
        seed,
        opset,
        params,
        bytes: r.modelBytes + r.dataBytes,
        dataFile: r.dataFile ?? null,
      },
      text: `${name} → ${out}: ${params.toLocaleString('en-US')} parameters, ${fmtSaved(r)} (seed ${seed})`,
    };
  },
};
