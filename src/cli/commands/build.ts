import { buildModel, MODEL_NAMES } from '../../models/index.js';
import { type Command, fmtSaved, intOption, SAVE_OPTIONS, saveOutput } from '../command.js';

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
    opset: { type: 'string', valueName: 'N', description: 'ai.onnx opset', default: '17' },
    ...SAVE_OPTIONS,
  },
  examples: ['edgefit build cnn-s cnn-s.onnx --seed 1'],
  async run(p) {
    const [name, out] = p.positionals as [string, string];
    const seed = intOption(p, 'seed', { min: 0, max: 2 ** 32 - 1 }) ?? 0;
    const opset = intOption(p, 'opset', { min: 17, max: 21 }) ?? 17;
    const m = buildModel(name, { seed, opset });
    const r = saveOutput(p, m, out);
    let params = 0;
    for (const v of m.graph.initializers.values()) params += v.const!.numel;
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
