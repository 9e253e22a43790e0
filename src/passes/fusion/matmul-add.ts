// matmul-add-to-gemm: MatMul(A, W) followed by Add(·, bias) becomes Gemm(A, W, bias) when A is 2-D, W is a 2-D
// constant, the bias a constant that Gemm's C can broadcast to [M, N] ([], [1], [N], [1, N], [M, 1], [M, N]), the
// MatMul output has no other reader, and the dtype is float32/float64 (ONNX Runtime's CPU Gemm). The Add's
// output keeps its name.
import type { Node, Tensor, Value } from '../../ir/index.js';
import { definePass } from '../manager.js';
import { applyRules, rule } from '../rule.js';
import { constTensor, isOp, replaceNodes, soleReader, withShapes } from '../util.js';

interface Match {
  add: Node;
  matmul: Node;
  bias: Value;
}

export const matmulAddRule = rule<Match>({
  name: 'matmul-add-to-gemm',
  anchors: ['Add'],
  match(add) {
    for (const i of [0, 1]) {
      const x = add.inputs[i];
      const p = x?.producer;
      const bias = add.inputs[1 - i];
      if (
        x &&
        bias &&
        p &&
        isOp(p, 'MatMul') &&
        p.graph === add.graph &&
        soleReader(x) === add &&
        constTensor(bias)
      )
        return { add, matmul: p, bias };
    }
    return undefined;
  },
  check({ add, matmul, bias }) {
    const why = (s: string) => `Kept MatMul "${matmul.label}" + Add "${add.label}" (no Gemm) as ${s}`;
    const a = matmul.inputs[0];
    const w = constTensor(matmul.inputs[1]);
    const b = constTensor(bias) as Tensor;
    if (!w) return why(`the MatMul's second input "${matmul.inputs[1]?.name}" is not a constant`);
    if (w.dims.length !== 2) return why(`the weight has rank ${w.dims.length}, not 2`);
    if (w.dtype !== 'float32' && w.dtype !== 'float64')
      return why(`the weight is ${w.dtype} (Gemm is folded for float32/float64)`);
    const as = a?.shape;
    if (!as) return why(`the rank of its input "${a?.name}" is unknown`);
    if (as.length !== 2) return why(`its input "${a!.name}" has rank ${as.length}, not 2`);
    if (a!.dtype !== w.dtype || b.dtype !== w.dtype)
      return why(`its dtypes differ (A ${a!.dtype}, W ${w.dtype}, bias ${b.dtype})`);
    const N = w.dims[1]!;
    const M = as[0];
    const d = b.dims;
    const ok =
      d.length === 0 ||
      (d.length === 1 && (d[0] === 1 || d[0] === N)) ||
      (d.length === 2 && (d[1] === 1 || d[1] === N) && (d[0] === 1 || (typeof M === 'number' && d[0] === M)));
    if (!ok) return why(`the bias shape [${d}] does not broadcast to [M, ${N}] as Gemm's C`);
    return undefined;
  },
  rewrite({ add, matmul, bias }) {
    const g = add.graph;
    const out = add.output(0);
    const [ml, al] = [matmul.label, add.label];
    const gemm = replaceNodes(
      g,
      [matmul, add],
      {
        opType: 'Gemm',
        name: g.uniqueName(matmul.name ? `${matmul.name}_gemm` : 'Gemm'),
        inputs: [matmul.input(0), matmul.input(1), bias],
      },
      [out],
    );
    return `MatMul "${ml}" + Add "${al}" → Gemm "${gemm.label}"`;
  },
});

export const matmulAddToGemm = definePass(
  'matmul-add-to-gemm',
  'Fuse a 2-D MatMul with a constant weight and the Add of a constant bias into one Gemm.',
  (m) => withShapes(m, (shapes) => applyRules(m, [matmulAddRule], { shapes })),
  {},
);
