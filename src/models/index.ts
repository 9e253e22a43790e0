// The benchmark models of ../shared/bench/SPEC.md, built with the IR model builder. Their structure follows
// ../shared/reference/torch_reference.py exactly, and their initializer names are that file's state_dict keys
// (`net.1.weight`, `c1.weight`, `b1.running_var`, `blocks.0.qkv.bias`, `pos`, …), so weights can be copied
// between the two one for one (test/fixtures/builder/ checks this against PyTorch).
//
// Input `input` [N, 1, 28, 28] float32, output `logits` [N, 10] float32; N is a symbolic dim (default 'N').
import { InputError } from '../errors.js';
import { ModelBuilder } from '../ir/builder.js';
import type { Dim, Model } from '../ir/graph.js';

import { MODEL_NAMES, type ModelName } from './names.js';
export { MODEL_NAMES, type ModelName } from './names.js';

/**
 * Trainable parameters of each model, as PyTorch counts them. Computed once with Debian's torch 1.13.1:
 *   /usr/bin/python3 -c "import sys; sys.path.insert(0, '../shared/reference'); import torch_reference as r;
 *     print({k: sum(p.numel() for p in c().parameters()) for k, c in r.MODELS.items()})"
 * (BatchNorm running statistics are buffers, not parameters.)
 */
export const PARAMETER_COUNTS: Readonly<Record<ModelName, number>> = {
  mlp: 269_322,
  'cnn-s': 421_834,
  'vit-t': 71_946,
};

export interface BuildModelOptions {
  /** Initialisation seed (default 0). */
  seed?: number;
  /** Batch dim: a number, or a symbolic name (default 'N'). */
  batch?: number | string;
  /** ai.onnx opset (default 17). */
  opset?: number;
}

export function isModelName(name: string): name is ModelName {
  return (MODEL_NAMES as readonly string[]).includes(name);
}

export function buildModel(name: ModelName | string, opts: BuildModelOptions = {}): Model {
  if (!isModelName(name))
    throw new InputError(
      'unknown-model',
      `Unknown model "${name}": known models are ${MODEL_NAMES.join(', ')}`,
      { value: name },
    );
  const batch: Dim = opts.batch ?? 'N';
  if (typeof batch === 'number' && (!Number.isInteger(batch) || batch < 1))
    throw new InputError(
      'batch',
      `Batch must be a positive integer or a dim name: current value is ${batch}`,
      { value: 'batch' },
    );
  const b = new ModelBuilder({
    name,
    opset: opts.opset ?? 17,
    seed: opts.seed ?? 0,
    docString: `edgefit ${name} (SPEC.md)`,
  });
  const x = b.input('input', 'float32', [batch, 1, 28, 28]);
  const logits = name === 'mlp' ? mlp(b, x) : name === 'cnn-s' ? cnnS(b, x) : vitT(b, x);
  b.output(logits, 'logits');
  return b.build();
}

type V = ReturnType<ModelBuilder['input']>;

/** Flatten → Linear 784→256 → ReLU → Linear 256→256 → ReLU → Linear 256→10 (nn.Sequential indices as names). */
function mlp(b: ModelBuilder, x: V): V {
  let h = b.flatten(x, 1, 'net.0');
  h = b.relu(b.linear(h, 784, 256, { name: 'net.1' }), 'net.2');
  h = b.relu(b.linear(h, 256, 256, { name: 'net.3' }), 'net.4');
  return b.linear(h, 256, 10, { name: 'net.5' });
}

/** Conv 1→32 k3 p1 → BN → ReLU → MaxPool 2 → Conv 32→64 k3 p1 → BN → ReLU → MaxPool 2 → Flatten → 3136→128 → ReLU → 128→10. */
function cnnS(b: ModelBuilder, x: V): V {
  let h = b.conv2d(x, { inC: 1, outC: 32, kernel: 3, pad: 1, name: 'c1' });
  h = b.relu(b.batchNorm(h, 32, { name: 'b1' }), 'r1');
  h = b.maxPool(h, { kernel: 2, name: 'pool1' });
  h = b.conv2d(h, { inC: 32, outC: 64, kernel: 3, pad: 1, name: 'c2' });
  h = b.relu(b.batchNorm(h, 64, { name: 'b2' }), 'r2');
  h = b.maxPool(h, { kernel: 2, name: 'pool2' });
  h = b.flatten(h, 1, 'flatten');
  h = b.relu(b.linear(h, 64 * 7 * 7, 128, { name: 'f1' }), 'r3');
  return b.linear(h, 128, 10, { name: 'f2' });
}

/**
 * 7×7 patches → Linear 49→64 + pos [1,16,64] → 2 × pre-LN block (x += proj(attn(ln1 x)); x += fc2(gelu(fc1(ln2 x))))
 * → LayerNorm → mean over tokens → Linear 64→10. dim 64, 4 heads of 16, MLP 128, LayerNorm eps 1e-5.
 */
function vitT(b: ModelBuilder, x: V, dim = 64, heads = 4, depth = 2, hidden = 128): V {
  let h = b.patchify(x, 7, 'patchify'); // [N, 16, 49]
  h = b.linear(h, 49, dim, { name: 'patch' });
  // nn.Parameter(torch.zeros(1, 16, dim)): zeros, as in the reference
  const pos = b.parameter('pos', [1, 16, dim], 'zeros');
  h = b.add(h, pos, 'pos_add');
  for (let i = 0; i < depth; i++) {
    const p = `blocks.${i}`;
    const a = b.attention(b.layerNorm(h, dim, { name: `${p}.ln1` }), {
      dim,
      heads,
      name: `${p}.attn`,
      qkvName: `${p}.qkv`,
      projName: `${p}.proj`,
    });
    h = b.add(h, a, `${p}/attn_residual`);
    let m = b.linear(b.layerNorm(h, dim, { name: `${p}.ln2` }), dim, hidden, { name: `${p}.fc1` });
    m = b.linear(b.gelu(m, `${p}.gelu`), hidden, dim, { name: `${p}.fc2` });
    h = b.add(h, m, `${p}/mlp_residual`);
  }
  h = b.mean(b.layerNorm(h, dim, { name: 'ln' }), [1], false, 'mean'); // [N, 64]
  return b.linear(h, dim, 10, { name: 'head' });
}
