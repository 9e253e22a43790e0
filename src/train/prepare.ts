// Getting an external ONNX graph (a torch/torchvision export) ready to train:
//   1. the training-safe clean-up (constant folding, shape simplification; BatchNormalization and Dropout kept),
//      so slice bounds and resize scales computed from shapes become constants gradients can use;
//   2. initializers the exporter de-duplicated are un-shared where training needs one buffer per use: a running
//      statistic of a BatchNormalization read anywhere else, and uniform tensors (the zeros/ones of fresh biases,
//      BN scales and statistics) read by several nodes — PyTorch had one parameter per layer there. Tensors with
//      varied values stay shared (deliberate weight tying);
//   3. models below opset 16 with MaxPools whose windows overlap or are padded (every ResNet-style stem) are
//      upgraded to opset 16, where the gradient scatters with ScatterElements(add) — measured faster than the
//      opset-free one-hot form (bench/grad_maxpool.ts), which stays the fallback when the upgrade is refused; a
//      Dropout below opset 12 (no training_mode input) is upgraded to 12 likewise.
import { UnsupportedError } from '../errors.js';
import type { Model, Node, Value } from '../ir/index.js';
import { allGraphs } from '../ir/index.js';
import {
  ensureOpset,
  type OpsetUpgrade,
  runPasses,
  TRAINING_SAFE_PASSES,
  upgradeNote,
} from '../passes/index.js';

export interface PreparedForTraining {
  model: Model;
  notes: string[];
  opsetUpgrade?: OpsetUpgrade;
  /** Initializers given one copy per reader: name → number of copies made. */
  unshared: Record<string, number>;
}

/** True when the MaxPool's windows overlap, are padded, dilated or cut by ceil mode (not kernel = stride tiles). */
function overlappingMaxPool(n: Node): boolean {
  if (n.opType !== 'MaxPool') return false;
  const k = n.attrInts('kernel_shape') ?? [];
  const s = n.attrInts('strides') ?? k.map(() => 1);
  const pads = n.attrInts('pads') ?? [];
  const d = n.attrInts('dilations') ?? [];
  const auto = n.attrString('auto_pad', 'NOTSET');
  return (
    k.some((x, i) => x !== s[i]) ||
    pads.some((p) => p !== 0) ||
    d.some((x) => x !== 1) ||
    n.attrInt('ceil_mode', 0) === 1 ||
    (auto !== 'NOTSET' && auto !== 'VALID')
  );
}

function uniform(v: Value): boolean {
  const t = v.const;
  if (!t || (t.dtype !== 'float32' && t.dtype !== 'float16') || t.numel < 1) return false;
  const a = t.typed() as Float32Array | Uint16Array;
  for (let i = 1; i < a.length; i++) if (a[i] !== a[0]) return false;
  return true;
}

/** Give every reader but the first of each initializer that training must not share its own copy. */
export function unshareInitializers(model: Model): Record<string, number> {
  const out: Record<string, number> = {};
  for (const g of allGraphs(model.graph))
    for (const v of [...g.initializers.values()]) {
      const uses = [...v.uses];
      if (uses.length < 2 || v.isGraphOutput) continue;
      const stat = uses.some(
        (u) => u.node.opType === 'BatchNormalization' && (u.index === 3 || u.index === 4),
      );
      if (!stat && !uniform(v)) continue;
      for (const u of uses.slice(1)) {
        const copy = u.node.graph.addInitializer(
          u.node.graph.uniqueName(`${v.name}_${u.node.label}`),
          v.const!,
        );
        u.node.setInput(u.index, copy);
      }
      out[v.name] = uses.length - 1;
    }
  return out;
}

/** Steps 1–3 of the header on an external model (pure: `model` is left as it was). */
export async function prepareForTraining(model: Model): Promise<PreparedForTraining> {
  const notes: string[] = [];
  let m = (await runPasses(model, TRAINING_SAFE_PASSES)).model;
  if (m === model) m = model.clone();
  const unshared = unshareInitializers(m);
  const n = Object.keys(unshared).length;
  if (n)
    notes.push(
      `Un-shared ${n} initializer(s) the exporter de-duplicated (${Object.values(unshared).reduce((a, b) => a + b, 0)} copies): ${Object.keys(unshared).slice(0, 5).join(', ')}${n > 5 ? ', …' : ''}`,
    );
  const opset = m.opset('') ?? 17;
  const nodes = [...allGraphs(m.graph)].flatMap((g) => g.nodes);
  const need =
    opset < 16 && nodes.some(overlappingMaxPool)
      ? { to: 16, why: 'overlapping/padded MaxPool gradients scatter with ScatterElements(add), opset 16' }
      : opset < 12 && nodes.some((x) => x.opType === 'Dropout')
        ? { to: 12, why: 'Dropout in training mode needs opset 12' }
        : undefined;
  let opsetUpgrade: OpsetUpgrade | undefined;
  if (need)
    try {
      const u = ensureOpset(m, need.to, need.why);
      m = u.model;
      opsetUpgrade = u.upgrade;
      if (opsetUpgrade) notes.push(upgradeNote(opsetUpgrade));
    } catch (e) {
      if (!(e instanceof UnsupportedError)) throw e;
      notes.push(`Kept opset ${opset} (${e.message.split('\n')[0]}); MaxPool gradients use the one-hot form`);
    }
  return { model: m, notes, unshared, ...(opsetUpgrade ? { opsetUpgrade } : {}) };
}
