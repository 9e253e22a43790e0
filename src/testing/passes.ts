// Test helpers for the pass tests: small hand-built graphs, the external models, and the before/after check every
// pass test makes (ORT outputs equal within a tolerance, `verify` clean, the rewrite counted).
import assert from 'node:assert/strict';
import type { DType, Dim, Graph, Model, Value } from '../ir/index.js';
import { Emitter, Model as ModelCtor, Tensor, verifyModel } from '../ir/index.js';
import { buildModel } from '../models/index.js';
import { loadModel } from '../onnx/index.js';
import { makeCheckNode } from '../ops/index.js';
import type { HostTensor } from '../runtime/index.js';
import { packageModels, prng, randomFeeds, readIo, torchFixtures } from './fixtures.js';
import { compareModels } from '../passes/check.js';
import type { Pass, PassResult } from '../passes/manager.js';
import { nodeCount, opCounts } from '../passes/util.js';

export interface Hand {
  m: Model;
  g: Graph;
  e: Emitter;
  input(name: string, shape: Dim[], dtype?: DType): Value;
  init(name: string, t: Tensor): Value;
  output(v: Value, name?: string): Value;
}

/** An empty model at `opset` with helpers to add inputs, initializers and outputs. */
export function hand(opset = 17): Hand {
  const m = new ModelCtor();
  m.opsetImports.set('', opset);
  m.irVersion = opset <= 18 ? 8 : 9;
  const g = m.graph;
  const e = new Emitter(g, { opset });
  return {
    m,
    g,
    e,
    input: (name, shape, dtype = 'float32') => g.addInput(name, { kind: 'tensor', dtype, shape }),
    init: (name, t) => g.addInitializer(name, t),
    output(v, name) {
      if (name && name !== v.name) {
        g.claimName(name);
        v.name = name;
      }
      g.outputs.push(v);
      return v;
    },
  };
}

/** A float32 tensor of values in [-scale, scale) (or [lo, hi) with `range`). */
export function rand(dims: number[], seed: number, scale = 1, range?: [number, number]): Tensor {
  const r = prng(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  const [lo, hi] = range ?? [-scale, scale];
  return Tensor.from(
    'float32',
    dims,
    Float32Array.from({ length: n }, () => lo + r() * (hi - lo)),
  );
}

export function ints(values: number[]): Tensor {
  return Tensor.from('int64', [values.length], values);
}

export function feed(dims: number[], seed: number): HostTensor {
  const t = rand(dims, seed);
  return { dtype: 'float32', dims, data: t.typed() as Float32Array };
}

export function count(m: Model, op: string): number {
  return opCounts(m)[op] ?? 0;
}

/** `verify` + the op registry's checks find nothing (nothing that `before` did not have already). */
export function assertVerified(m: Model, what = 'model', before?: Model): void {
  const problems = (x: Model) => verifyModel(x, { checkNode: makeCheckNode(x) }).map((p) => p.message);
  const known = new Set(before ? problems(before) : []);
  assert.deepEqual(
    problems(m).filter((p) => !known.has(p)),
    [],
    `${what}: verify found problems`,
  );
}

export interface Checked {
  result: PassResult;
  diff: number;
  nodesBefore: number;
  nodesAfter: number;
}

/**
 * Run `pass` on `model` and check: the input model is left as it was (pure), the result verifies, and ORT gives
 * the same outputs (within `tol`) on `feeds`. Returns the result and the measured difference.
 */
export async function checkPass(
  pass: Pass<any>,
  model: Model,
  feeds: Record<string, HostTensor>,
  opts: { tol?: number; options?: object } = {},
): Promise<Checked> {
  const before = nodeCount(model);
  const countsBefore = opCounts(model);
  const outNames = model.graph.outputs.map((v) => v.name);
  const result = await pass.run(model, opts.options);
  assert.equal(nodeCount(model), before, `${pass.name} modified its input model`);
  assert.deepEqual(opCounts(model), countsBefore, `${pass.name} modified its input model`);
  assert.deepEqual(
    result.model.graph.outputs.map((v) => v.name),
    outNames,
    `${pass.name} changed the graph output names`,
  );
  assertVerified(result.model, `after ${pass.name}`, model);
  const c = await compareModels(model, result.model, feeds);
  assert.ok(
    c.maxAbsDiff <= (opts.tol ?? 1e-5),
    `${pass.name}: outputs differ by ${c.maxAbsDiff}: ${JSON.stringify(c.outputs)}`,
  );
  return { result, diff: c.maxAbsDiff, nodesBefore: before, nodesAfter: nodeCount(result.model) };
}

export interface ExternalModel {
  name: string;
  model: Model;
  feeds: Record<string, HostTensor>;
}

/** Builder cnn-s with non-trivial BatchNorm statistics (the builder initialises them to 0/1). */
export function cnnSWithStats(): Model {
  const m = buildModel('cnn-s', { seed: 3 });
  let seed = 100;
  for (const v of m.graph.initializers.values()) {
    const n = v.name;
    const C = v.const!.numel;
    if (/^b\d\.(weight|bias|running_mean)$/.test(n))
      m.graph.setInitializer(v, rand([C], seed++, 0.5, n.endsWith('weight') ? [0.5, 1.5] : undefined));
    else if (/^b\d\.running_var$/.test(n)) m.graph.setInitializer(v, rand([C], seed++, 1, [0.2, 2]));
  }
  return m;
}

/** The external models (loaded on demand): torch fixtures, npm-shipped models, our builder's models. */
export function externalModelNames(): string[] {
  return [
    ...torchFixtures().map((f) => f.name),
    ...packageModels().map((f) => f.name),
    'builder/mlp',
    'builder/vit-t',
    'builder/cnn-s',
  ];
}

/** One external model by name, with inputs that run it. */
export function externalModel(name: string): ExternalModel {
  const t = torchFixtures().find((f) => f.name === name);
  if (t) return { name, model: loadModel(t.path), feeds: readIo(t.io).inputs };
  const p = packageModels().find((f) => f.name === name);
  if (p) {
    const model = loadModel(p.path);
    return { name, model, feeds: p.feeds(model) };
  }
  const b = /^builder\/(mlp|vit-t|cnn-s)$/.exec(name);
  if (b) {
    const model = b[1] === 'cnn-s' ? cnnSWithStats() : buildModel(b[1]!, { seed: 1 });
    return { name, model, feeds: randomFeeds(model, 5, 2) };
  }
  throw new Error(`no external model ${name}`);
}

export function externalModels(): ExternalModel[] {
  return externalModelNames().map(externalModel);
}
