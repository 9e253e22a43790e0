// What ONNX Runtime actually runs: the optimised graph it writes with `optimizedModelPath`, as op counts. The way
// to prove that a quantized model runs integer kernels (QLinearConv, QGemm, MatMulIntegerToFloat, MatMulNBits…)
// and not float kernels between Q/DQ pairs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Model } from '../../ir/index.js';
import { encodeModel, loadModel } from '../../onnx/index.js';
import { Session } from '../../runtime/index.js';
import { opCounts } from '../util.js';

/** Integer / low-precision kernels (op counts keys, `domain:Op` for custom domains). */
export const INTEGER_KERNELS: readonly string[] = [
  'QLinearConv',
  'com.microsoft:QLinearConv',
  'QLinearMatMul',
  'com.microsoft:QGemm',
  'MatMulInteger',
  'ConvInteger',
  'com.microsoft:MatMulIntegerToFloat',
  'com.microsoft:DynamicQuantizeMatMul',
  'com.microsoft:MatMulNBits',
  'com.microsoft:QLinearAdd',
  'com.microsoft:QLinearMul',
  'com.microsoft:QLinearAveragePool',
  'com.microsoft:QLinearGlobalAveragePool',
  'com.microsoft:QLinearConcat',
  'com.microsoft:QLinearSigmoid',
  'com.microsoft:QLinearLeakyRelu',
  'com.microsoft:QLinearSoftmax',
];

/** Float compute kernels that should not survive in a fully quantized graph. */
export const FLOAT_COMPUTE_KERNELS: readonly string[] = [
  'Conv',
  'Gemm',
  'MatMul',
  'com.microsoft:FusedConv',
  'com.microsoft:FusedGemm',
  'com.microsoft:FusedMatMul',
  'com.microsoft:NhwcFusedConv',
  // ORT's NCHWc layout transformer rewrites float Convs (a kept-float stem, say) into its own domain
  'com.microsoft.nchwc:Conv',
  'com.microsoft.nchwc:FusedConv',
];

export interface KernelReport {
  /** Op counts of the graph ORT runs. */
  ops: Record<string, number>;
  integer: number;
  floatCompute: number;
}

/** Load `model` in ORT (optimisation level 'all') and count the ops of the graph it actually runs. */
export async function ortKernels(
  model: Model | Uint8Array,
  opts: { threads?: number } = {},
): Promise<KernelReport> {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-kernels-'));
  const path = join(dir, 'optimized.onnx');
  try {
    const s = await Session.create(model instanceof Uint8Array ? model : encodeModel(model), {
      optimizedModelPath: path,
      threads: opts.threads ?? 1,
      label: 'the quantized model',
    });
    await s.release();
    const ops = opCounts(loadModel(path));
    const sum = (keys: readonly string[]) => keys.reduce((a, k) => a + (ops[k] ?? 0), 0);
    return { ops, integer: sum(INTEGER_KERNELS), floatCompute: sum(FLOAT_COMPUTE_KERNELS) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
