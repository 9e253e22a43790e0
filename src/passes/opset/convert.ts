// Opset conversion: upgrade a model's ai.onnx opset import one version at a time, rewriting every node whose
// op changed form or meaning at that version so the model computes the same outputs (subgraphs of If/Loop/Scan
// included: they share the import). Each rule below is tested in ORT before/after (convert.test.ts,
// convert22.test.ts); an op version change without a rule here is a type-only extension (the ONNX version
// converter's "compatible" adapters).
//
// Opsets 22–26 (the ONNX changelog read version by version) change no form an older model can have: 22 adds
// bfloat16 to ~50 ops; 23–25 add 4-bit, float8e8m0 and 2-bit types and optional attributes whose default is the
// old meaning (DequantizeLinear output_dtype, QuantizeLinear precision, Cast/CastLike round_mode, Attention's
// nonpad_kv_seqlen input and windows); the rest are new ops (Attention, RMSNormalization, RotaryEmbedding, Swish,
// TensorScatter, BitCast, CumProd). Two spec changes of meaning are what ORT 1.30 already does at every opset
// (measured in convert22.test.ts), so the outputs stay the same: MaxPool/AveragePool-22 ignore a ceil_mode window
// that starts in the right padding, and Cast-24 saturates ±Inf to the largest float8e4m3fnuz/e5m2fnuz value (NaN
// before). What does need a rule is ORT itself: it has no opset-22 kernel for GlobalLpPool (rewritten as a Reduce)
// nor for the ops of NO_ORT_KERNEL_22 (refused past 21, naming the node).
//
// After converting, the model is checked with `opsetProblems`: a node left in a form the new opset does not have
// is an UnsupportedError naming it, never a model ORT refuses later.
import { UnsupportedError } from '../../errors.js';
import {
  A,
  allGraphs,
  Emitter,
  type Graph,
  type Model,
  type Node,
  Tensor,
  type Value,
} from '../../ir/index.js';
import { MAX_KNOWN_OPSET, MIN_CONVERT_OPSET, opsetProblems } from '../../onnx/index.js';
import { isOnnxDomain } from '../../ir/index.js';
import { constOf } from '../../ops/index.js';

export interface OpsetConversion {
  model: Model;
  from: number;
  to: number;
  /** Rewrites per rule, e.g. { 'Squeeze-13 axes→input': 4 }. */
  counts: Record<string, number>;
}

/** The lowest IR version that may carry an ai.onnx opset (ONNX's versioning table). */
export function irVersionFor(opset: number): number {
  if (opset >= 25) return 13;
  if (opset >= 24) return 12;
  if (opset >= 23) return 11;
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  if (opset >= 15) return 8;
  if (opset >= 12) return 7;
  if (opset >= 11) return 6;
  if (opset >= 10) return 5;
  if (opset >= 9) return 4;
  return 3;
}

interface RuleCtx {
  node: Node;
  graph: Graph;
  /** Emits new nodes just before `node` (and constants into its graph). */
  e: Emitter;
  fail(why: string): never;
}

type Rule = (c: RuleCtx) => string | void;

const ints = (c: RuleCtx, xs: readonly number[]): Value =>
  c.graph.addInitializer(
    c.graph.uniqueName(`${c.node.name || c.node.opType}_ints`),
    Tensor.from('int64', [xs.length], [...xs]),
  );

/** Move an ints attribute to input `index` as an int64 tensor (omitted inputs before it stay omitted). */
function attrToInput(attr: string, index: number): Rule {
  return (c) => {
    const v = c.node.attrInts(attr);
    if (v === undefined) return;
    c.node.setAttr(attr, undefined);
    while (c.node.inputs.length < index) c.node.addInput(null);
    c.node.setInput(index, ints(c, v));
    return `${attr}→input`;
  };
}

/** A scalar constant of the dtype of the node's input 0 (float32 when its type is unknown). */
function scalarLike(c: RuleCtx, value: number): Value {
  const dtype = c.node.inputs[0]?.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float64' && !dtype.startsWith('int') && !dtype.startsWith('uint'))
    c.fail(`needs a ${dtype} constant, which the converter cannot write`);
  return c.graph.addInitializer(
    c.graph.uniqueName(`${c.node.name || c.node.opType}_scalar`),
    Tensor.scalar(dtype, value),
  );
}

const softmaxRule: Rule = (c) => {
  // before 13: the input is coerced to 2-D at `axis` (default 1) and normalised over the flattened tail;
  // from 13: over the single axis `axis` (default -1). Same when `axis` is the last axis; else Flatten first.
  const n = c.node;
  const axis = n.attrInt('axis', 1);
  const rank = n.inputs[0]?.shape?.length;
  if (axis === -1 || (rank !== undefined && (axis === rank - 1 || axis + rank === rank - 1))) {
    n.setAttr('axis', A.int(-1));
    return 'axis kept (last axis)';
  }
  // the node becomes Reshape(Softmax(Flatten(x, axis), -1), Shape(x)), keeping its output value and name
  const x = n.input(0);
  const flat = c.e.op('Flatten', [x], { axis: A.int(axis) });
  const y2d = c.e.op(n.opType, [flat], { axis: A.int(-1) });
  const shape = c.e.op('Shape', [x]);
  n.opType = 'Reshape';
  n.attrs.clear();
  n.setInput(0, y2d);
  n.setInput(1, shape);
  return 'coerced to 2-D (Flatten → op → Reshape)';
};

/**
 * Ops whose opset-22 version ONNX Runtime 1.30's CPU provider does not implement (measured: "Could not find an
 * implementation for RoiAlign(22)"; convert22.test.ts checks ORT still refuses them). Bernoulli is a function of
 * RandomUniformLike.
 */
export const NO_ORT_KERNEL_22 = [
  'Bernoulli',
  'MaxRoiPool',
  'Multinomial',
  'RandomNormal',
  'RandomNormalLike',
  'RandomUniform',
  'RandomUniformLike',
  'RoiAlign',
] as const;

/** Rules by the opset version they convert INTO, then op type. */
const RULES: Record<number, Record<string, Rule>> = {
  9: {
    BatchNormalization: (c) => {
      const spatial = c.node.attrInt('spatial');
      if (spatial === undefined) return;
      if (spatial !== 1)
        return c.fail('spatial=0 (per-activation statistics) has no form at opset 9 and later');
      c.node.setAttr('spatial', undefined);
      return 'spatial dropped';
    },
    Upsample: attrToScalesInput(),
  },
  10: {
    Upsample: (c) => {
      c.node.opType = 'Resize';
      return '→ Resize-10';
    },
    Slice: (c) => {
      const n = c.node;
      const starts = n.attrInts('starts');
      const ends = n.attrInts('ends');
      if (!starts || !ends) return c.fail('has no starts/ends attributes');
      const axes = n.attrInts('axes');
      for (const a of ['starts', 'ends', 'axes']) n.setAttr(a, undefined);
      n.setInput(1, ints(c, starts));
      n.setInput(2, ints(c, ends));
      if (axes) n.setInput(3, ints(c, axes));
      return 'starts/ends/axes→inputs';
    },
    TopK: (c) => {
      const k = c.node.attrInt('k');
      if (k === undefined) return c.fail('has no k attribute');
      c.node.setAttr('k', undefined);
      c.node.setInput(1, ints(c, [k]));
      return 'k→input';
    },
  },
  11: {
    Resize: (c) => {
      // Resize-10 samples at asymmetric coordinates; ORT rounds a nearest neighbour down on an upsampled axis and
      // up on a downsampled one (measured). With both kinds of axes, two Resizes: the upsampled axes, then the rest.
      const n = c.node;
      const scales = n.input(1);
      const nearest = n.attrString('mode', 'nearest') === 'nearest';
      const s =
        constOf(scales)?.dtype === 'float32'
          ? Array.from(constOf(scales)!.typed() as Float32Array)
          : undefined;
      const roi = () =>
        c.graph.addInitializer(c.graph.uniqueName(`${n.label}_roi`), Tensor.from('float32', [0], []));
      const asym = A.string('asymmetric');
      n.setAttr('coordinate_transformation_mode', asym);
      if (!nearest || (s && s.every((x) => x >= 1))) {
        if (nearest) n.setAttr('nearest_mode', A.string('floor'));
      } else if (s && s.every((x) => x <= 1)) n.setAttr('nearest_mode', A.string('ceil'));
      else if (s) {
        const up = s.map((x) => Math.max(x, 1));
        const first = c.e.op(
          'Resize',
          [
            n.input(0),
            roi(),
            c.graph.addInitializer(
              c.graph.uniqueName(`${n.label}_up`),
              Tensor.from('float32', [up.length], up),
            ),
          ],
          {
            mode: A.string('nearest'),
            coordinate_transformation_mode: asym,
            nearest_mode: A.string('floor'),
          },
        );
        n.setInput(0, first);
        const down = s.map((x) => Math.min(x, 1));
        n.setInput(1, roi());
        n.setInput(
          2,
          c.graph.addInitializer(
            c.graph.uniqueName(`${n.label}_down`),
            Tensor.from('float32', [down.length], down),
          ),
        );
        n.setAttr('nearest_mode', A.string('ceil'));
        return 'roi input, asymmetric coordinates (split into up- and downsampling)';
      } else
        return c.fail(
          'nearest Resize-10 with computed scales: rounding depends on the scales, which are not constant',
        );
      n.setInput(1, roi());
      n.setInput(2, scales);
      return 'roi input, asymmetric coordinates';
    },
    Clip: (c) => {
      const n = c.node;
      const lo = n.attrFloat('min');
      const hi = n.attrFloat('max');
      n.setAttr('min', undefined);
      n.setAttr('max', undefined);
      if (lo !== undefined) n.setInput(1, scalarLike(c, lo));
      if (hi !== undefined) n.setInput(2, scalarLike(c, hi));
      return 'min/max→inputs';
    },
    Pad: (c) => {
      const n = c.node;
      const pads = n.attrInts('pads');
      if (!pads) return c.fail('has no pads attribute');
      const value = n.attrFloat('value', 0);
      n.setAttr('pads', undefined);
      n.setAttr('value', undefined);
      n.setInput(1, ints(c, pads));
      if (value !== 0 && n.attrString('mode', 'constant') === 'constant') n.setInput(2, scalarLike(c, value));
      return 'pads/value→inputs';
    },
    Scatter: (c) => {
      c.node.opType = 'ScatterElements';
      return '→ ScatterElements';
    },
  },
  12: {
    Dropout: (c) => {
      const ratio = c.node.attrFloat('ratio');
      c.node.setAttr('ratio', undefined);
      if (ratio !== undefined) c.node.setInput(1, scalarLike(c, ratio));
      return 'ratio→input';
    },
  },
  13: {
    Squeeze: attrToInput('axes', 1),
    Unsqueeze: attrToInput('axes', 1),
    ReduceSum: attrToInput('axes', 1),
    Split: attrToInput('split', 1),
    Softmax: softmaxRule,
    LogSoftmax: softmaxRule,
    Hardmax: softmaxRule,
    Resize: (c) => {
      if (c.node.attrString('coordinate_transformation_mode') === 'tf_half_pixel_for_nn')
        return c.fail(
          'coordinate_transformation_mode "tf_half_pixel_for_nn" has no form at opset 13 and later',
        );
    },
  },
  14: {
    BatchNormalization: (c) => {
      const n = c.node;
      // before 14 the optional outputs (mean, var, saved mean, saved var) were training-only; inference has Y
      if (n.outputs.slice(1).some((o) => o && !o.isUnused))
        return c.fail(
          'reads the training-mode outputs of BatchNormalization (mean/var), which changed at opset 14',
        );
      if (n.outputs.length > 1) {
        for (const o of n.outputs.slice(1)) if (o) o.producer = null;
        (n.outputs as (Value | null)[]).length = 1;
        return 'unused training outputs dropped';
      }
    },
  },
  16: {
    RoiAlign: (c) => {
      if (c.node.attr('coordinate_transformation_mode')) return;
      c.node.setAttr('coordinate_transformation_mode', A.string('output_half_pixel'));
      return 'output_half_pixel kept';
    },
  },
  18: {
    ...Object.fromEntries(
      [
        'ReduceL1',
        'ReduceL2',
        'ReduceLogSum',
        'ReduceLogSumExp',
        'ReduceMax',
        'ReduceMean',
        'ReduceMin',
        'ReduceProd',
        'ReduceSumSquare',
      ].map((op) => [op, attrToInput('axes', 1)]),
    ),
    Split: (c) => {
      if (c.node.inputs[1]) return;
      c.node.setAttr('num_outputs', A.int(c.node.outputs.length));
      return 'num_outputs';
    },
  },
  20: {
    GridSample: (c) => {
      const mode = c.node.attrString('mode', 'bilinear');
      const renamed = mode === 'bilinear' ? 'linear' : mode === 'bicubic' ? 'cubic' : mode;
      c.node.setAttr('mode', A.string(renamed));
      return `mode ${mode}→${renamed}`;
    },
    DFT: (c) => {
      const axis = c.node.attrInt('axis', 1);
      c.node.setAttr('axis', undefined);
      while (c.node.inputs.length < 2) c.node.addInput(null);
      c.node.setInput(
        2,
        c.graph.addInitializer(c.graph.uniqueName(`${c.node.label}_axis`), Tensor.scalar('int64', axis)),
      );
      return 'axis→input';
    },
  },
  21: {
    GroupNormalization: (c) => {
      // scale and bias were per group before 21, per channel from 21: repeat each group's value C/G times
      const n = c.node;
      const G = n.attrInt('num_groups');
      const C = n.input(0).shape?.[1];
      if (G === undefined || typeof C !== 'number')
        return c.fail('needs a known channel count to move scale/bias to channels');
      for (const i of [1, 2]) {
        const t = n.input(i).const;
        if (!t || t.dtype !== 'float32') return c.fail(`input ${i} is not a float32 initializer`);
        const src = t.typed() as Float32Array;
        const out = new Float32Array(C);
        for (let ch = 0; ch < C; ch++) out[ch] = src[Math.floor((ch * G) / C)]!;
        n.setInput(
          i,
          c.graph.addInitializer(
            c.graph.uniqueName(`${n.label}_${i === 1 ? 'scale' : 'bias'}_c`),
            Tensor.from('float32', [C], out),
          ),
        );
      }
      return 'scale/bias per channel';
    },
  },
  22: {
    GlobalLpPool: (c) => {
      // ORT 1.30 has no GlobalLpPool-22 kernel: the same norm over the spatial axes as a Reduce (keepdims)
      const n = c.node;
      const rank = n.input(0).shape?.length;
      if (rank === undefined)
        return c.fail('needs a known input rank to become a Reduce over the spatial axes');
      const p = n.attrInt('p', 2);
      const axes = ints(
        c,
        Array.from({ length: rank - 2 }, (_, i) => i + 2),
      );
      n.attrs.clear();
      n.setAttr('keepdims', A.int(1));
      if (p === 1 || p === 2) {
        n.opType = p === 1 ? 'ReduceL1' : 'ReduceL2';
        n.setInput(1, axes);
        return `→ ReduceL${p}`;
      }
      const x = n.input(0);
      const powed = c.e.op('Pow', [c.e.op('Abs', [x]), scalarLike(c, p)]);
      const summed = c.e.op('ReduceSum', [powed, axes], { keepdims: A.int(1) });
      n.attrs.clear();
      n.opType = 'Pow';
      n.setInput(0, summed);
      n.setInput(1, scalarLike(c, 1 / p));
      return '→ (ReduceSum |x|^p)^(1/p)';
    },
    // ops ONNX Runtime 1.30 (CPU) runs only at their pre-22 versions: the converted model would not load
    ...Object.fromEntries(
      NO_ORT_KERNEL_22.map((op) => [
        op,
        (c: RuleCtx) =>
          c.fail(
            `ONNX Runtime 1.30 has no ${op}-22 kernel (it runs ${op} only at opset 21 and below), so the model would not load after conversion; convert to --opset 21`,
          ),
      ]),
    ),
  },
};

function attrToScalesInput(): Rule {
  return (c) => {
    const s = c.node.attrFloats('scales');
    if (!s) return;
    c.node.setAttr('scales', undefined);
    c.node.setInput(
      1,
      c.graph.addInitializer(
        c.graph.uniqueName(`${c.node.label}_scales`),
        Tensor.from('float32', [s.length], s),
      ),
    );
    return 'scales→input';
  };
}

/** Nodes whose versions need more than we can say: refused before anything is rewritten. */
function refuse(n: Node, from: number): string | undefined {
  if (n.opType === 'Scan' && from < 9) return 'Scan-8 (batch axis and sequence_lens) has no rule';
  return undefined;
}

/**
 * Upgrade `model` to ai.onnx opset `to` (pure: `model` is left as it was). Only upgrades: `to` below the model's
 * opset is an UnsupportedError, as is a source opset below 7 or a target above the newest known one.
 */
export function convertOpset(model: Model, to: number): OpsetConversion {
  const from = model.opset('');
  if (from === undefined)
    throw new UnsupportedError(
      'opset',
      'The model does not import the ai.onnx domain; there is nothing to convert',
    );
  if (!Number.isInteger(to) || to < MIN_CONVERT_OPSET || to > MAX_KNOWN_OPSET)
    throw new UnsupportedError(
      'opset',
      `Target opset ${to} is outside ${MIN_CONVERT_OPSET}–${MAX_KNOWN_OPSET}, the opsets edgefit converts to`,
      {
        value: 'opset',
      },
    );
  if (to < from)
    throw new UnsupportedError(
      'opset',
      `The model is at opset ${from}; converting down to ${to} is not supported`,
      { value: 'opset' },
    );
  if (from < MIN_CONVERT_OPSET)
    throw new UnsupportedError(
      'opset',
      `The model is at opset ${from}; edgefit converts from opset ${MIN_CONVERT_OPSET} up`,
      { value: 'opset' },
    );
  const m = model.clone();
  const counts: Record<string, number> = {};
  if (to === from) return { model: m, from, to, counts };
  for (const g of allGraphs(m.graph))
    for (const n of g.nodes) {
      if (!isOnnxDomain(n)) continue;
      const why = refuse(n, from);
      if (why)
        throw new UnsupportedError(
          'opset-convert',
          `Cannot convert node "${n.label}" (${n.opType}) from opset ${from}: ${why}`,
          { node: n.label, opType: n.opType },
        );
    }
  for (let v = from + 1; v <= to; v++) {
    const rules = RULES[v];
    if (!rules) continue;
    for (const g of [...allGraphs(m.graph)]) {
      let touched = false;
      for (const n of [...g.nodes]) {
        if (!isOnnxDomain(n)) continue;
        const rule = Object.hasOwn(rules, n.opType) ? rules[n.opType] : undefined;
        if (!rule) continue;
        const op = n.opType;
        const at = g.nodes.indexOf(n);
        let inserted = 0;
        const e = new Emitter(g, {
          opset: v,
          prefix: `${n.label}/opset${v}`,
          insertAt: () => at + inserted++,
        });
        const note = rule({
          node: n,
          graph: g,
          e,
          fail: (why) => {
            throw new UnsupportedError(
              'opset-convert',
              `Cannot convert node "${n.label}" (${op}) to opset ${v}: ${why}`,
              { node: n.label, opType: op },
            );
          },
        });
        if (note) {
          const k = `${op}-${v} ${note}`;
          counts[k] = (counts[k] ?? 0) + 1;
          touched = true;
        }
      }
      if (touched) g.toposort();
    }
  }
  m.opsetImports.set('', to);
  m.irVersion = Math.max(m.irVersion, irVersionFor(to));
  const left = opsetProblems(m);
  if (left.length)
    throw new UnsupportedError(
      'opset-convert',
      `Converting to opset ${to} left ${left.length} node(s) in a form opset ${to} does not have (no rule for them yet):\n${left
        .slice(0, 10)
        .map((p) => `  - ${p.message}`)
        .join('\n')}`,
      { node: left[0]!.node, opType: left[0]!.opType },
    );
  return { model: m, from, to, counts };
}
