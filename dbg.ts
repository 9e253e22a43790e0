import { loadModel } from './src/onnx/index.js';
import './src/ops/index.js';
import { tryInferShapes } from './src/passes/util.js';
const m = loadModel(process.argv[2]!);
tryInferShapes(m);
for (const n of m.graph.nodes) {
  const a = [...n.attrs].map(([k, v]) => `${k}=${JSON.stringify((v as any).value?.dims ?? (v as any).value)}`).join(' ');
  console.log(n.opType, n.name, '(', n.inputs.map((v) => v ? (v.const ? `${v.name}:c[${v.const.dims}]${v.const.numel<=6 && v.const.dtype==='int64'? '='+v.const.toNumbers():''}` : `${v.name}[${v.shape}]`) : '-').join(', '), ') ->', n.outputs.map((v) => `${v?.name}[${v?.shape}]`).join(', '), a);
}
