// `edgefit split`: cut models into one backbone and heads. Given several models whose leading layers are the same
// computation on the same weights (fine-tuned task heads on one frozen backbone), every node is hashed by what it
// computes — op, domain, attributes and the hashes of its inputs, where a graph input hashes by name and type and
// an initializer by its dtype, dims and bytes — so a node whose hash is in every model is shared. The shared
// nodes form the backbone; its outputs are the shared values that some non-shared node (or a graph output) reads;
// each model minus the shared nodes is a head taking those values. With one model, `at` names the tensors to cut
// at: the backbone is everything they depend on. A split deployment (split.json) is served by deployment.ts:
// the backbone runs once per batch, each head on its requests' rows, and the backbone's weights are loaded once.
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { InputError } from '../errors.js';
import { type Attr, Model, type Node, type Value, type Tensor } from '../ir/index.js';
import { inferShapes } from '../ops/infer.js';
import { loadModel, saveModel } from '../onnx/index.js';
import { createSession, type HostTensor } from '../runtime/index.js';
import { writeAtomic } from '../util/fs.js';
import { SPLIT_FORMAT, type SplitManifest } from './deployment.js';

export interface SplitInput {
  name: string;
  model: Model;
}

export interface SplitParts {
  backbone: Model;
  /** Backbone output names (model 0's value names). */
  cut: string[];
  heads: { name: string; model: Model; inputs: Record<string, string> }[];
  /** Nodes in the backbone, and in each original model. */
  sharedNodes: number;
  nodes: number[];
}

function tensorDigest(t: Tensor): string {
  const h = createHash('sha256');
  h.update(`${t.dtype}[${t.dims.join(',')}]`);
  if (t.strings) for (const s of t.strings) h.update(s);
  else h.update(t.bytes);
  return h.digest('hex');
}

function attrKey(a: Attr, unique: () => string): string {
  switch (a.type) {
    case 'tensor':
      return `t:${tensorDigest(a.value)}`;
    case 'tensors':
      return `ts:${a.value.map(tensorDigest).join(',')}`;
    case 'graph':
    case 'graphs':
    case 'opaque':
      // nodes holding subgraphs or opaque attributes are never shared
      return unique();
    default:
      return `${a.type}:${JSON.stringify(a.value)}`;
  }
}

/** Hash of every value (by what computes it) and of every node of a graph. */
function hashGraph(model: Model, tag: string): { values: Map<Value, string>; nodes: Map<Node, string> } {
  const g = model.graph;
  g.toposort();
  const values = new Map<Value, string>();
  const nodes = new Map<Node, string>();
  let k = 0;
  const unique = () => `unique:${tag}:${k++}`;
  const typeKey = (v: Value) => JSON.stringify(v.type ?? null);
  for (const v of g.inputs) if (!v.const) values.set(v, `in:${v.name}:${typeKey(v)}`);
  for (const v of g.initializers.values()) values.set(v, `init:${tensorDigest(v.const!)}`);
  for (const n of g.nodes) {
    const h = createHash('sha256');
    h.update(`${n.domain}/${n.opType}|`);
    for (const [name, a] of [...n.attrs].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      h.update(`${name}=${attrKey(a, unique)}|`);
    for (const i of n.inputs) h.update(`${i ? (values.get(i) ?? unique()) : '-'}|`);
    const nh = h.digest('hex');
    nodes.set(n, nh);
    n.outputs.forEach((o, i) => o && values.set(o, `${nh}:${i}`));
  }
  return { values, nodes };
}

/** Nodes `targets` depend on (inclusive). */
function ancestors(values: Value[]): Set<Node> {
  const seen = new Set<Node>();
  const stack = values.map((v) => v.producer).filter((n): n is Node => !!n);
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    for (const i of n.inputs) if (i?.producer) stack.push(i.producer);
  }
  return seen;
}

/** Split models (clones are cut; the inputs are not changed). */
export function splitModels(inputs: SplitInput[], opts: { at?: string[] } = {}): SplitParts {
  if (inputs.length === 0) throw new InputError('split', 'Nothing to split', {});
  const models = inputs.map((i) => i.model.clone());
  // types of the values that become head inputs
  for (const m of models) inferShapes(m, { strict: false });
  const hashes = models.map((m, i) => hashGraph(m, String(i)));
  let shared: Set<string>;
  if (inputs.length === 1) {
    if (!opts.at?.length)
      throw new InputError('split', 'Splitting one model needs the tensors to cut at (--at a,b)', {
        value: 'at',
      });
    const g = models[0]!.graph;
    const byName = g.valuesByName();
    const targets = opts.at.map((n) => {
      const v = byName.get(n);
      if (!v?.producer)
        throw new InputError('split', `${inputs[0]!.name} has no node output named "${n}" to cut at`, {
          value: n,
        });
      return v;
    });
    shared = new Set([...ancestors(targets)].map((n) => hashes[0]!.nodes.get(n)!));
  } else {
    if (opts.at?.length)
      throw new InputError(
        'split',
        '--at is for one model; several models are cut where they stop being equal',
        {
          value: 'at',
        },
      );
    shared = new Set(hashes[0]!.nodes.values());
    for (const h of hashes.slice(1)) {
      const mine = new Set(h.nodes.values());
      for (const x of shared) if (!mine.has(x)) shared.delete(x);
    }
    // the same models' inputs: a head must not need an input the others lack
    const names = (m: Model) =>
      m.graph.inputs.filter((v) => !v.const).map((v) => `${v.name}:${JSON.stringify(v.type)}`);
    for (const [i, m] of models.entries())
      if (names(m).join() !== names(models[0]!).join())
        throw new InputError(
          'split',
          `${inputs[i]!.name} and ${inputs[0]!.name} take different inputs (${names(m).join(', ')} vs ${names(models[0]!).join(', ')}): a shared backbone needs the same inputs`,
          { value: inputs[i]!.name },
        );
  }
  if (shared.size === 0)
    throw new InputError(
      'split',
      `${inputs.map((i) => i.name).join(', ')} share no leading layers (no node computes the same thing on the same weights in all of them)`,
      {},
    );
  // cut values, by hash: outputs of shared nodes read by a non-shared node or a graph output, in any model
  const cutHashes = new Set<string>();
  for (const [i, m] of models.entries()) {
    const h = hashes[i]!;
    for (const n of m.graph.nodes) {
      if (!shared.has(h.nodes.get(n)!)) continue;
      for (const o of n.outputs) {
        if (!o) continue;
        if (o.isGraphOutput || o.uses.some((u) => !shared.has(h.nodes.get(u.node) ?? '')))
          cutHashes.add(h.values.get(o)!);
      }
    }
  }
  if (cutHashes.size === 0)
    throw new InputError(
      'split',
      'The shared part produces nothing the heads read: the models are identical',
      {},
    );
  // backbone: model 0 without its non-shared nodes, its outputs the cut values
  const bb = models[0]!;
  const h0 = hashes[0]!;
  const byHash0 = new Map<string, Value>();
  for (const [v, h] of h0.values) byHash0.set(h, v);
  const cutValues = [...cutHashes].map((h) => byHash0.get(h)!).sort((a, b) => (a.name < b.name ? -1 : 1));
  const heads = inputs.map((inp, i) => {
    const m = i === 0 ? bb.clone() : models[i]!;
    const h = i === 0 ? hashGraph(m, '0') : hashes[i]!;
    const g = m.graph;
    const map: Record<string, string> = {};
    const cutHere: Value[] = [];
    for (const [v, vh] of h.values)
      if (
        cutHashes.has(vh) &&
        (v.isGraphOutput || v.uses.some((u) => !shared.has(h.nodes.get(u.node) ?? '')))
      ) {
        cutHere.push(v);
        map[v.name] = byHash0.get(vh)!.name;
      }
    for (const n of [...g.nodes].reverse()) if (shared.has(h.nodes.get(n)!)) g.removeNode(n, true);
    const modelInputs = g.inputs.filter((v) => !v.const && v.uses.length > 0);
    for (const v of modelInputs) map[v.name] = v.name;
    g.inputs = [...modelInputs, ...cutHere.sort((a, b) => (a.name < b.name ? -1 : 1))];
    for (const v of cutHere)
      if (v.tensorType === undefined)
        throw new InputError(
          'split',
          `The type of "${v.name}" in ${inp.name} is unknown, so it cannot be a head's input`,
          {
            value: v.name,
          },
        );
    g.removeUnused();
    m.graph.name = `${inp.name}_head`;
    return { name: inp.name, model: m, inputs: map };
  });
  const g0 = bb.graph;
  for (const n of [...g0.nodes].reverse()) if (!shared.has(h0.nodes.get(n)!)) g0.removeNode(n, true);
  g0.outputs = cutValues;
  g0.removeUnused();
  g0.name = 'backbone';
  return {
    backbone: bb,
    cut: cutValues.map((v) => v.name),
    heads,
    sharedNodes: g0.nodes.length,
    nodes: models.map((_, i) => inputs[i]!.model.graph.nodes.length),
  };
}

export interface SplitFilesOptions {
  /** Head names (default: the files' base names). */
  names?: string[];
  /** For one model: the tensors to cut at. */
  at?: string[];
  /** External data alignment (default 4096: pages, so ORT maps the weights). */
  align?: number;
}

export interface SplitFilesResult {
  manifest: string;
  backbone: { file: string; outputs: string[]; nodes: number; bytes: number };
  heads: { name: string; file: string; nodes: number; bytes: number }[];
  /** Largest difference between an original model's outputs and backbone + head's, on random inputs. */
  maxAbsDiff: number;
}

/** Split model files into `outDir` (backbone.onnx, <head>.onnx, split.json) and check the outputs in ORT. */
export async function splitFiles(
  paths: string[],
  outDir: string,
  opts: SplitFilesOptions = {},
): Promise<SplitFilesResult> {
  const names = opts.names ?? paths.map((p) => basename(p).replace(/\.onnx$/, ''));
  if (names.length !== paths.length)
    throw new InputError('split', `${names.length} names for ${paths.length} models`, { value: 'names' });
  for (const n of names)
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(n) || n === 'backbone')
      throw new InputError(
        'split',
        `Head name "${n}" must be letters, digits, ".", "_" or "-" (and not "backbone")`,
        {
          value: n,
        },
      );
  if (new Set(names).size !== names.length)
    throw new InputError('split', `Head names must differ: ${names.join(', ')} (give --names)`, {
      value: 'names',
    });
  const originals = paths.map((p) => loadModel(p));
  const parts = splitModels(
    originals.map((model, i) => ({ name: names[i]!, model })),
    { at: opts.at },
  );
  const save = { externalData: true, align: opts.align ?? 4096 };
  const bbFile = 'backbone.onnx';
  const bbSaved = saveModel(parts.backbone, join(outDir, bbFile), save);
  const heads = parts.heads.map((h) => {
    const file = `${h.name}.onnx`;
    const r = saveModel(h.model, join(outDir, file), save);
    return {
      name: h.name,
      file,
      nodes: h.model.graph.nodes.length,
      bytes: r.modelBytes + r.dataBytes,
      inputs: h.inputs,
    };
  });
  const manifest: SplitManifest = {
    format: SPLIT_FORMAT,
    version: 1,
    backbone: { file: bbFile, outputs: parts.cut },
    heads: Object.fromEntries(
      heads.map((h) => [
        h.name,
        {
          file: h.file,
          inputs: h.inputs,
          outputs: parts.heads.find((x) => x.name === h.name)!.model.graph.outputs.map((o) => o.name),
        },
      ]),
    ),
  };
  const manifestPath = join(outDir, 'split.json');
  const maxAbsDiff = await checkSplit(originals, parts);
  writeAtomic(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return {
    manifest: manifestPath,
    backbone: {
      file: join(outDir, bbFile),
      outputs: parts.cut,
      nodes: parts.sharedNodes,
      bytes: bbSaved.modelBytes + bbSaved.dataBytes,
    },
    heads: heads.map((h) => ({ name: h.name, file: join(outDir, h.file), nodes: h.nodes, bytes: h.bytes })),
    maxAbsDiff,
  };
}

/** Random inputs (batch 2 for named dims) through each original and through backbone + its head. */
async function checkSplit(originals: Model[], parts: SplitParts): Promise<number> {
  const feeds: Record<string, HostTensor> = {};
  let seed = 1;
  for (const v of originals[0]!.graph.inputs) {
    if (v.const) continue;
    const tt = v.tensorType;
    if (!tt?.shape) return NaN;
    const dims = tt.shape.map((d) => (typeof d === 'number' ? d : 2));
    const n = dims.reduce((a, b) => a * b, 1);
    if (tt.dtype !== 'float32') return NaN;
    const data = new Float32Array(n).map(() => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    });
    feeds[v.name] = { dtype: 'float32', dims, data };
  }
  const bb = await createSession(parts.backbone, { threads: 1 });
  let worst = 0;
  try {
    const mid = { ...feeds, ...(await bb.run(feeds)) };
    for (const [i, m] of originals.entries()) {
      const head = parts.heads[i]!;
      const o = await createSession(m, { threads: 1 });
      const hs = await createSession(head.model, { threads: 1 });
      try {
        const want = await o.run(feeds);
        const hf: Record<string, HostTensor> = {};
        for (const n of hs.inputNames) hf[n] = mid[head.inputs[n]!]!;
        const got = await hs.run(hf);
        for (const [k, t] of Object.entries(want)) {
          const a = t.data as Float32Array;
          const b = got[k]!.data as Float32Array;
          for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(Number(a[j]) - Number(b[j])));
        }
      } finally {
        await o.release();
        await hs.release();
      }
    }
  } finally {
    await bb.release();
  }
  return worst;
}
