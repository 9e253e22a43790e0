// A small layer API that writes ONNX nodes (ai.onnx domain only) straight into an IR Model.
//
//   const b = new ModelBuilder({ name: 'mlp', opset: 17, seed: 0 });
//   let x = b.input('input', 'float32', ['N', 1, 28, 28]);
//   x = b.relu(b.linear(b.flatten(x), 784, 256, { name: 'fc1' }));
//   b.output(b.linear(x, 256, 10, { name: 'fc2' }), 'logits');
//   const model = b.build();
//
// Conventions:
// - Initializers are exactly the model's state, named like a PyTorch state_dict (`c1.weight`, `b1.running_mean`,
//   `blocks.0.qkv.bias`): trainable parameters plus BatchNorm running statistics. Every other constant (shapes,
//   scalars, gather indices) is a Constant node, so "initializers" never contain anything that is not a
//   parameter or a buffer.
// - Weights are stored in PyTorch's layout ([out, in] for Linear, [out, in/groups, kh, kw] for Conv) with one
//   exception: a Linear applied to a rank ≥ 3 input is MatMul + Add, and its weight is stored transposed,
//   [in, out], so that MatMul reads it directly (as torch's own exporter does). Its doc string says so, and
//   `ParamInfo.transposed` is true. Its values are drawn in torch layout and then transposed, so the same seed
//   gives the same logical weights whichever form a Linear takes.
// - A layer made of one node names the node after the layer (`c1`); layers made of several nodes name them
//   `<layer>/<OpType>` (`blocks.0.attn/Softmax`).
// - Every value gets a tensor type with a shape; the batch dimension may be symbolic (a string such as 'N').
// - Initialisation follows PyTorch's defaults (see init.ts) from a seeded, machine-independent generator; each
//   parameter draws from its own stream keyed by (seed, name).
import { InputError, ShapeError, UnsupportedError } from '../errors.js';
import type { DType } from './dtype.js';
import { type Attr, type Dim, Graph, isOnnxDomain, Model, type Value, tensorType } from './graph.js';
import { type InitSpec, checkSeed, fans, initValues } from './init.js';
import { Tensor, numelOf } from './tensor.js';

export type { InitSpec } from './init.js';

export const MIN_BUILDER_OPSET = 13;
export const MAX_BUILDER_OPSET = 26;

export interface ModelBuilderOptions {
  /** Graph name (default 'main'). */
  name?: string;
  /** ai.onnx opset (default 17). */
  opset?: number;
  /** Seed for parameter initialisation (default 0). */
  seed?: number;
  docString?: string;
}

export interface ParamInfo {
  name: string;
  /** Shape as stored in the initializer. */
  dims: number[];
  /** False for buffers (BatchNorm running statistics). */
  trainable: boolean;
  /** True when stored as the transpose of PyTorch's layout ([in, out] weight of a MatMul Linear). */
  transposed: boolean;
  value: Value;
}

export interface ParameterOptions {
  trainable?: boolean;
  /** Fans for the initialiser (default: torch's fans of `dims`). */
  fanIn?: number;
  fanOut?: number;
  /** Draw a 2-D tensor in the given shape, store its transpose. */
  transpose?: boolean;
  docString?: string;
}

export interface LinearOptions {
  name?: string;
  bias?: boolean;
  /** Weight initialiser (default 'kaiming-uniform', torch's nn.Linear default). */
  init?: InitSpec;
  /** Bias initialiser (default torch's U(−1/√fan_in, 1/√fan_in)). */
  biasInit?: InitSpec;
}

export type Pair = number | readonly [number, number];

export interface Conv2dOptions {
  inC: number;
  outC: number;
  kernel: Pair;
  stride?: Pair;
  /** Symmetric zero padding per spatial axis, like torch's `padding` (default 0). */
  pad?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
  name?: string;
  init?: InitSpec;
  biasInit?: InitSpec;
}

export interface BatchNormOptions {
  name?: string;
  /** Default 1e-5 (torch). */
  eps?: number;
  /** PyTorch's momentum (default 0.1); the node's ONNX `momentum` attribute is 1 − this. */
  momentum?: number;
}

export interface LayerNormOptions {
  name?: string;
  /** Default 1e-5 (torch). */
  eps?: number;
}

export interface PoolOptions {
  kernel: Pair;
  /** Default: the kernel (torch's default). */
  stride?: Pair;
  pad?: Pair;
  ceilMode?: boolean;
  name?: string;
}

export interface MaxPoolOptions extends PoolOptions {
  dilation?: Pair;
}

export interface AvgPoolOptions extends PoolOptions {
  /** Count padded zeros in the average (default true, torch's default; ONNX's default is false). */
  countIncludePad?: boolean;
}

export interface AttentionOptions {
  /** Model width (the last dim of x). */
  dim: number;
  heads: number;
  /** Layer name for the attention's own nodes (default `attn_<k>`). */
  name?: string;
  /** Name of the fused q/k/v Linear (default `<name>.qkv`). */
  qkvName?: string;
  /** Name of the output Linear (default `<name>.proj`). */
  projName?: string;
  bias?: boolean;
}

export interface EmbeddingOptions {
  name?: string;
  /** Default 'normal' (N(0, 1), torch's nn.Embedding default). */
  init?: InitSpec;
}

function pair(p: Pair | undefined, dflt: number): [number, number] {
  if (p === undefined) return [dflt, dflt];
  return typeof p === 'number' ? [p, p] : [p[0], p[1]];
}

const ints = (value: number[]): Attr => ({ type: 'ints', value });
const int = (value: number): Attr => ({ type: 'int', value });
const float = (value: number): Attr => ({ type: 'float', value });

// ---------------------------------------------------------------------------------------------------------------
// Shape rules (symbolic dims allowed; null = unknown)
// ---------------------------------------------------------------------------------------------------------------

/** Product of dims: a number, a single symbol (times 1), or null. */
export function dimProduct(dims: readonly Dim[]): Dim {
  let n = 1;
  const syms: string[] = [];
  for (const d of dims) {
    if (d === null) return null;
    if (typeof d === 'number') n *= d;
    else syms.push(d);
  }
  if (syms.length === 0) return n;
  if (syms.length === 1 && n === 1) return syms[0]!;
  return null;
}

export function broadcastShapes(a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const r = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const x = i < r - a.length ? 1 : a[i - (r - a.length)]!;
    const y = i < r - b.length ? 1 : b[i - (r - b.length)]!;
    if (x === y) out.push(x);
    else if (x === 1) out.push(y);
    else if (y === 1) out.push(x);
    else if (typeof x === 'number' && typeof y === 'number')
      throw new ShapeError(
        'broadcast',
        `Shapes [${a}] and [${b}] do not broadcast (axis ${i}: ${x} vs ${y})`,
      );
    else if (typeof x === 'number') out.push(x);
    else if (typeof y === 'number') out.push(y);
    else out.push(null);
  }
  return out;
}

/** ONNX Reshape (allowzero = 0): 0 copies the input dim, one -1 is inferred. */
export function reshapeShape(input: readonly Dim[] | null, target: readonly number[]): Dim[] | null {
  const out: Dim[] = target.map((t, i) =>
    t === 0 ? (input ? (input[i] ?? null) : null) : t === -1 ? null : t,
  );
  const k = target.indexOf(-1);
  if (k < 0) return out;
  if (!input) return out;
  // cancel symbols between the input and the known output dims, then divide the numeric parts
  if (input.some((d) => d === null) || out.some((d, i) => i !== k && d === null)) return out;
  const num = input.filter((d): d is string => typeof d === 'string');
  const den: string[] = [];
  for (const d of out)
    if (typeof d === 'string') {
      const j = num.indexOf(d);
      if (j >= 0) num.splice(j, 1);
      else den.push(d);
    }
  const p = input.reduce<number>((a, d) => (typeof d === 'number' ? a * d : a), 1);
  const q = out.reduce<number>((a, d, i) => (i !== k && typeof d === 'number' ? a * d : a), 1);
  if (den.length || q === 0 || p % q !== 0) return out;
  if (num.length === 0) out[k] = p / q;
  else if (num.length === 1 && p === q) out[k] = num[0]!;
  return out;
}

function convDim(x: Dim, k: number, s: number, p0: number, p1: number, d: number, ceil = false): Dim {
  if (typeof x !== 'number') return null;
  const v = (x + p0 + p1 - d * (k - 1) - 1) / s;
  let o = (ceil ? Math.ceil(v) : Math.floor(v)) + 1;
  // torch / ONNX: with ceil_mode the last window must start inside the (left-padded) input
  if (ceil && (o - 1) * s >= x + p0) o--;
  return o;
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new ShapeError('axis', `Axis ${axis} is out of range for rank ${rank}`);
  return a;
}

// ---------------------------------------------------------------------------------------------------------------

export class ModelBuilder {
  readonly model: Model;
  readonly graph: Graph;
  readonly opset: number;
  readonly seed: number;
  private readonly params: ParamInfo[] = [];
  private readonly counters = new Map<string, number>();

  constructor(opts: ModelBuilderOptions = {}) {
    const opset = opts.opset ?? 17;
    if (!Number.isInteger(opset) || opset < MIN_BUILDER_OPSET || opset > MAX_BUILDER_OPSET)
      throw new UnsupportedError(
        'builder-opset',
        `The model builder emits ai.onnx opsets ${MIN_BUILDER_OPSET}..${MAX_BUILDER_OPSET}: current value is ${opset}`,
        { value: 'opset' },
      );
    this.opset = opset;
    this.seed = checkSeed(opts.seed ?? 0);
    this.graph = new Graph(opts.name ?? 'main');
    this.model = new Model(this.graph);
    this.model.opsetImports.set('', opset);
    this.model.irVersion = opset <= 18 ? 8 : opset <= 20 ? 9 : 10;
    this.model.producerName = 'edgefit';
    if (opts.docString) this.model.docString = opts.docString;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Graph inputs / outputs / parameters
  // -------------------------------------------------------------------------------------------------------------

  input(name: string, dtype: DType, shape: readonly Dim[]): Value {
    if (this.graph.hasName(name))
      throw new InputError('duplicate-name', `Input name "${name}" is already used in the graph`, {
        value: name,
      });
    return this.graph.addInput(name, tensorType(dtype, [...shape]));
  }

  /** Mark `v` as a graph output named `name` (renamed in place, or through an Identity when it must be). */
  output(v: Value, name: string = v.name): Value {
    if (name !== v.name) {
      if (this.graph.hasName(name))
        throw new InputError('duplicate-name', `Output name "${name}" is already used in the graph`, {
          value: name,
        });
      if (v.producer && !v.isGraphOutput) {
        this.graph.claimName(name);
        v.name = name;
      } else {
        v = this.emit(
          'Identity',
          [v],
          {},
          this.nodeName(`${name}/Identity`),
          v.shape ?? null,
          v.dtype ?? 'float32',
          name,
        );
      }
    } else if (v.isGraphOutput) return v;
    this.graph.outputs.push(v);
    return v;
  }

  /** Create a parameter (initializer) named exactly `name`. Values are drawn in `dims` (torch layout). */
  parameter(name: string, dims: readonly number[], init: InitSpec, opts: ParameterOptions = {}): Value {
    if (this.graph.hasName(name))
      throw new InputError('duplicate-parameter', `Parameter name "${name}" is already used in the graph`, {
        value: name,
      });
    let data = initValues(dims, init, { seed: this.seed, name, fanIn: opts.fanIn, fanOut: opts.fanOut });
    let stored = [...dims];
    if (opts.transpose) {
      if (dims.length !== 2)
        throw new ShapeError('transpose', `Only 2-D parameters can be stored transposed ("${name}")`);
      const [r, c] = [dims[0]!, dims[1]!];
      const t = new Float32Array(data.length);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = data[i * c + j]!;
      data = t;
      stored = [c, r];
    }
    const tensor = Tensor.from('float32', stored, data, name);
    if (opts.docString) tensor.docString = opts.docString;
    const v = this.graph.addInitializer(name, tensor);
    if (v.name !== name)
      throw new InputError('duplicate-parameter', `Parameter name "${name}" is already used`, {
        value: name,
      });
    this.params.push({
      name,
      dims: stored,
      trainable: opts.trainable ?? true,
      transposed: !!opts.transpose,
      value: v,
    });
    return v;
  }

  /** Parameters and buffers created so far, in creation order. */
  parameters(): readonly ParamInfo[] {
    return this.params;
  }

  /** Number of trainable parameter elements (what torch's `sum(p.numel() for p in model.parameters())` counts). */
  trainableCount(): number {
    return this.params.filter((p) => p.trainable).reduce((s, p) => s + numelOf(p.dims), 0);
  }

  /** A Constant node holding `t`; returns its output. */
  constant(t: Tensor, name = 'const'): Value {
    return this.emit(
      'Constant',
      [],
      { value: { type: 'tensor', value: t } },
      this.nodeName(name),
      [...t.dims],
      t.dtype,
    );
  }

  constInts(values: readonly number[], name = 'const'): Value {
    return this.constant(Tensor.from('int64', [values.length], [...values]), name);
  }

  constScalar(value: number, name = 'const', dtype: DType = 'float32'): Value {
    return this.constant(Tensor.from(dtype, [], [value]), name);
  }

  /** Finish: returns the model (the builder keeps a reference; do not keep building after this). */
  build(): Model {
    if (this.graph.outputs.length === 0)
      throw new InputError('no-output', `Model "${this.graph.name}" has no output: call output() first`);
    return this.model;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Layers with parameters
  // -------------------------------------------------------------------------------------------------------------

  /** y = x Wᵀ + b. Gemm for 2-D x; MatMul (+ Add) with a stored-transposed weight for rank ≥ 3. */
  linear(x: Value, inF: number, outF: number, opts: LinearOptions = {}): Value {
    const name = opts.name ?? this.auto('linear');
    const shape = this.shapeOf(x, name);
    if (shape.length < 2)
      throw new ShapeError(
        'linear-rank',
        `Linear "${name}" needs an input of rank ≥ 2: it has rank ${shape.length}`,
        { node: name },
      );
    const last = shape[shape.length - 1];
    if (typeof last === 'number' && last !== inF)
      throw new ShapeError(
        'linear-in',
        `Linear "${name}" expects ${inF} input features: the input's last dim is ${last}`,
        { node: name },
      );
    const bias = opts.bias ?? true;
    const bound = 1 / Math.sqrt(inF);
    const biasInit = opts.biasInit ?? { uniform: [-bound, bound] };
    const outShape = [...shape.slice(0, -1), outF];
    if (shape.length === 2) {
      const w = this.parameter(`${name}.weight`, [outF, inF], opts.init ?? 'kaiming-uniform');
      const inputs: Value[] = [x, w];
      if (bias) inputs.push(this.parameter(`${name}.bias`, [outF], biasInit, { fanIn: inF }));
      return this.emit('Gemm', inputs, { transB: int(1) }, this.nodeName(name), outShape);
    }
    const w = this.parameter(`${name}.weight`, [outF, inF], opts.init ?? 'kaiming-uniform', {
      transpose: true,
      docString: 'stored transposed: [in_features, out_features] (torch weight.T), read by MatMul',
    });
    if (!bias) return this.emit('MatMul', [x, w], {}, this.nodeName(name), outShape);
    const b = this.parameter(`${name}.bias`, [outF], biasInit, { fanIn: inF });
    const mm = this.emit('MatMul', [x, w], {}, this.nodeName(`${name}/MatMul`), outShape);
    return this.emit('Add', [mm, b], {}, this.nodeName(`${name}/Add`), outShape);
  }

  /** 2-D convolution, NCHW, torch semantics (symmetric padding). groups = inC = outC/k is depthwise. */
  conv2d(x: Value, o: Conv2dOptions): Value {
    const name = o.name ?? this.auto('conv');
    const groups = o.groups ?? 1;
    const [kh, kw] = pair(o.kernel, 1);
    const [sh, sw] = pair(o.stride, 1);
    const [ph, pw] = pair(o.pad, 0);
    const [dh, dw] = pair(o.dilation, 1);
    if (!Number.isInteger(groups) || groups < 1 || o.inC % groups !== 0 || o.outC % groups !== 0)
      throw new ShapeError(
        'conv-groups',
        `Conv "${name}": groups ${groups} must divide inC ${o.inC} and outC ${o.outC}`,
        { node: name },
      );
    const shape = this.shapeOf(x, name);
    if (shape.length !== 4)
      throw new ShapeError('conv-rank', `Conv2d "${name}" needs an NCHW input: it has rank ${shape.length}`, {
        node: name,
      });
    if (typeof shape[1] === 'number' && shape[1] !== o.inC)
      throw new ShapeError(
        'conv-in',
        `Conv "${name}" expects ${o.inC} input channels: the input has ${shape[1]}`,
        { node: name },
      );
    const wDims = [o.outC, o.inC / groups, kh, kw];
    const w = this.parameter(`${name}.weight`, wDims, o.init ?? 'kaiming-uniform');
    const inputs: Value[] = [x, w];
    if (o.bias ?? true) {
      const fanIn = fans(wDims).fanIn;
      const bound = 1 / Math.sqrt(fanIn);
      inputs.push(
        this.parameter(`${name}.bias`, [o.outC], o.biasInit ?? { uniform: [-bound, bound] }, { fanIn }),
      );
    }
    const outShape: Dim[] = [
      shape[0]!,
      o.outC,
      convDim(shape[2]!, kh, sh, ph, ph, dh),
      convDim(shape[3]!, kw, sw, pw, pw, dw),
    ];
    return this.emit(
      'Conv',
      inputs,
      {
        kernel_shape: ints([kh, kw]),
        strides: ints([sh, sw]),
        pads: ints([ph, pw, ph, pw]),
        dilations: ints([dh, dw]),
        group: int(groups),
      },
      this.nodeName(name),
      outShape,
    );
  }

  /** Depthwise conv: groups = channels, outC = channels × multiplier. */
  depthwiseConv2d(
    x: Value,
    o: Omit<Conv2dOptions, 'inC' | 'outC' | 'groups'> & { channels: number; multiplier?: number },
  ): Value {
    const { channels, multiplier, ...rest } = o;
    return this.conv2d(x, { ...rest, inC: channels, outC: channels * (multiplier ?? 1), groups: channels });
  }

  /** Inference-form BatchNormalization over axis 1; `weight`/`bias` are trainable, running stats are buffers. */
  batchNorm(x: Value, C: number, o: BatchNormOptions = {}): Value {
    const name = o.name ?? this.auto('bn');
    const shape = this.shapeOf(x, name);
    if (shape.length < 2 || (typeof shape[1] === 'number' && shape[1] !== C))
      throw new ShapeError(
        'bn-channels',
        `BatchNorm "${name}" expects ${C} channels on axis 1: input shape is [${shape}]`,
        { node: name },
      );
    const scale = this.parameter(`${name}.weight`, [C], 'ones');
    const bias = this.parameter(`${name}.bias`, [C], 'zeros');
    const mean = this.parameter(`${name}.running_mean`, [C], 'zeros', { trainable: false });
    const variance = this.parameter(`${name}.running_var`, [C], 'ones', { trainable: false });
    return this.emit(
      'BatchNormalization',
      [x, scale, bias, mean, variance],
      { epsilon: float(o.eps ?? 1e-5), momentum: float(1 - (o.momentum ?? 0.1)) },
      this.nodeName(name),
      [...shape],
    );
  }

  /** LayerNorm over the last dim (LayerNormalization; a ReduceMean/Sub/… decomposition below opset 17). */
  layerNorm(x: Value, dim: number, o: LayerNormOptions = {}): Value {
    const name = o.name ?? this.auto('ln');
    const shape = this.shapeOf(x, name);
    const last = shape[shape.length - 1];
    if (shape.length < 1 || (typeof last === 'number' && last !== dim))
      throw new ShapeError(
        'ln-dim',
        `LayerNorm "${name}" normalises ${dim} features: input shape is [${shape}]`,
        { node: name },
      );
    const eps = o.eps ?? 1e-5;
    const w = this.parameter(`${name}.weight`, [dim], 'ones');
    const b = this.parameter(`${name}.bias`, [dim], 'zeros');
    if (this.opset >= 17)
      return this.emit(
        'LayerNormalization',
        [x, w, b],
        { axis: int(-1), epsilon: float(eps) },
        this.nodeName(name),
        [...shape],
      );
    const s = [...shape];
    const keep = [...shape.slice(0, -1), 1];
    const mu = this.reduceMean(x, [-1], true, `${name}/ReduceMean`, keep);
    const d = this.emit('Sub', [x, mu], {}, this.nodeName(`${name}/Sub`), s);
    const sq = this.emit('Mul', [d, d], {}, this.nodeName(`${name}/Mul`), s);
    const v = this.reduceMean(sq, [-1], true, `${name}/ReduceMean`, keep);
    const ve = this.emit(
      'Add',
      [v, this.constScalar(eps, `${name}/eps`)],
      {},
      this.nodeName(`${name}/Add`),
      keep,
    );
    const sd = this.emit('Sqrt', [ve], {}, this.nodeName(`${name}/Sqrt`), keep);
    const n = this.emit('Div', [d, sd], {}, this.nodeName(`${name}/Div`), s);
    const y = this.emit('Mul', [n, w], {}, this.nodeName(`${name}/Mul`), s);
    return this.emit('Add', [y, b], {}, this.nodeName(`${name}/Add`), s);
  }

  /** Lookup table: Gather(weight [num, dim], indices) → indices.shape + [dim]. */
  embedding(indices: Value, num: number, dim: number, o: EmbeddingOptions = {}): Value {
    const name = o.name ?? this.auto('embedding');
    const shape = this.shapeOf(indices, name);
    if (indices.dtype !== 'int64' && indices.dtype !== 'int32')
      throw new ShapeError(
        'embedding-dtype',
        `Embedding "${name}" needs int64 or int32 indices: they are ${indices.dtype}`,
        { node: name },
      );
    const w = this.parameter(`${name}.weight`, [num, dim], o.init ?? 'normal');
    return this.emit('Gather', [w, indices], { axis: int(0) }, this.nodeName(name), [...shape, dim]);
  }

  /**
   * Multi-head self-attention on x [N, T, dim], as torch_reference.py's VitT writes it: fused qkv Linear, reshape
   * to [N, T, 3, heads, hd], permute to [3, N, heads, T, hd], softmax(q kᵀ / √hd) v, merge heads back to
   * [N, T, dim], output Linear.
   */
  attention(x: Value, o: AttentionOptions): Value {
    const name = o.name ?? this.auto('attn');
    const { dim, heads } = o;
    if (!Number.isInteger(heads) || heads < 1 || dim % heads !== 0)
      throw new ShapeError('attn-heads', `Attention "${name}": ${heads} heads do not divide width ${dim}`, {
        node: name,
      });
    const shape = this.shapeOf(x, name);
    if (shape.length !== 3)
      throw new ShapeError(
        'attn-rank',
        `Attention "${name}" needs [N, T, dim]: input has rank ${shape.length}`,
        { node: name },
      );
    const hd = dim / heads;
    const qkv = this.linear(x, dim, 3 * dim, { name: o.qkvName ?? `${name}.qkv`, bias: o.bias });
    const split = this.reshape(qkv, [0, 0, 3, heads, hd], `${name}/Reshape`);
    const perm = this.transpose(split, [2, 0, 3, 1, 4], `${name}/Transpose`);
    const [q, k, v] = [0, 1, 2].map((i) => this.gather(perm, i, 0, `${name}/Gather`));
    const kt = this.transpose(k!, [0, 1, 3, 2], `${name}/Transpose`);
    const s = this.matmul(q!, kt, `${name}/MatMul`);
    const scaled = this.div(s, Math.sqrt(hd), `${name}/Div`);
    const p = this.softmax(scaled, -1, `${name}/Softmax`);
    const a = this.matmul(p, v!, `${name}/MatMul`);
    const merged = this.reshape(
      this.transpose(a, [0, 2, 1, 3], `${name}/Transpose`),
      [0, 0, dim],
      `${name}/Reshape`,
    );
    return this.linear(merged, dim, dim, { name: o.projName ?? `${name}.proj`, bias: o.bias });
  }

  /**
   * Split images [N, C, H, W] into non-overlapping p×p patches → [N, (H/p)(W/p), C·p·p], patches in row-major
   * order and pixels inside a patch ordered (C, py, px): torch's
   * x.reshape(N, C, H/p, p, W/p, p).permute(0, 2, 4, 1, 3, 5).reshape(N, -1, C·p·p).
   */
  patchify(x: Value, patch: number, name?: string): Value {
    const n = name ?? this.auto('patchify');
    const shape = this.shapeOf(x, n);
    const [, c, h, w] = shape;
    if (
      shape.length !== 4 ||
      typeof c !== 'number' ||
      typeof h !== 'number' ||
      typeof w !== 'number' ||
      h % patch ||
      w % patch
    )
      throw new ShapeError(
        'patchify',
        `Patchify "${n}" needs [N, C, H, W] with H and W multiples of ${patch}: input is [${shape}]`,
        { node: n },
      );
    const gh = h / patch;
    const gw = w / patch;
    const r = this.reshape(x, [0, c, gh, patch, gw, patch], `${n}/Reshape`);
    const t = this.transpose(r, [0, 2, 4, 1, 3, 5], `${n}/Transpose`);
    return this.reshape(t, [0, gh * gw, c * patch * patch], `${n}/Reshape`);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Activations
  // -------------------------------------------------------------------------------------------------------------

  relu(x: Value, name?: string): Value {
    return this.unary('Relu', x, name ?? this.auto('relu'));
  }
  sigmoid(x: Value, name?: string): Value {
    return this.unary('Sigmoid', x, name ?? this.auto('sigmoid'));
  }
  tanh(x: Value, name?: string): Value {
    return this.unary('Tanh', x, name ?? this.auto('tanh'));
  }
  /** torch's LeakyReLU (default slope 0.01). */
  leakyRelu(x: Value, alpha = 0.01, name?: string): Value {
    return this.unary('LeakyRelu', x, name ?? this.auto('leaky_relu'), { alpha: float(alpha) });
  }
  /** torch's Hardsigmoid: relu6(x + 3) / 6, i.e. ONNX HardSigmoid with alpha 1/6, beta 0.5 (not ONNX's 0.2). */
  hardSigmoid(x: Value, name?: string, alpha = 1 / 6, beta = 0.5): Value {
    return this.unary('HardSigmoid', x, name ?? this.auto('hard_sigmoid'), {
      alpha: float(alpha),
      beta: float(beta),
    });
  }
  /** torch's Hardswish: x · relu6(x + 3) / 6 (HardSwish from opset 14, else x · HardSigmoid(x)). */
  hardSwish(x: Value, name?: string): Value {
    const n = name ?? this.auto('hard_swish');
    if (this.opset >= 14) return this.unary('HardSwish', x, n);
    const hs = this.unary('HardSigmoid', x, `${n}/HardSigmoid`, { alpha: float(1 / 6), beta: float(0.5) });
    return this.emit('Mul', [x, hs], {}, this.nodeName(`${n}/Mul`), this.shapeOf(x, n));
  }
  /** Exact (erf) GELU, torch's default: x · ½ · (1 + erf(x / √2)). The Gelu op from opset 20. */
  gelu(x: Value, name?: string): Value {
    const n = name ?? this.auto('gelu');
    const s = this.shapeOf(x, n);
    if (this.opset >= 20) return this.unary('Gelu', x, n, { approximate: { type: 'string', value: 'none' } });
    const d = this.emit(
      'Div',
      [x, this.constScalar(Math.SQRT2, `${n}/sqrt2`)],
      {},
      this.nodeName(`${n}/Div`),
      s,
    );
    const e = this.emit('Erf', [d], {}, this.nodeName(`${n}/Erf`), s);
    const a = this.emit('Add', [e, this.constScalar(1, `${n}/one`)], {}, this.nodeName(`${n}/Add`), s);
    const m = this.emit('Mul', [x, a], {}, this.nodeName(`${n}/Mul`), s);
    return this.emit('Mul', [m, this.constScalar(0.5, `${n}/half`)], {}, this.nodeName(`${n}/Mul`), s);
  }
  softmax(x: Value, axis = -1, name?: string): Value {
    const n = name ?? this.auto('softmax');
    normAxis(axis, this.shapeOf(x, n).length);
    return this.unary('Softmax', x, n, { axis: int(axis) });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Pooling and shape helpers
  // -------------------------------------------------------------------------------------------------------------

  maxPool(x: Value, o: MaxPoolOptions): Value {
    const name = o.name ?? this.auto('maxpool');
    const [kh, kw] = pair(o.kernel, 1);
    const [sh, sw] = o.stride === undefined ? [kh, kw] : pair(o.stride, 1);
    const [ph, pw] = pair(o.pad, 0);
    const [dh, dw] = pair(o.dilation, 1);
    const shape = this.pool4(x, name);
    const ceil = !!o.ceilMode;
    return this.emit(
      'MaxPool',
      [x],
      {
        kernel_shape: ints([kh, kw]),
        strides: ints([sh, sw]),
        pads: ints([ph, pw, ph, pw]),
        dilations: ints([dh, dw]),
        ceil_mode: int(ceil ? 1 : 0),
      },
      this.nodeName(name),
      [
        shape[0]!,
        shape[1]!,
        convDim(shape[2]!, kh, sh, ph, ph, dh, ceil),
        convDim(shape[3]!, kw, sw, pw, pw, dw, ceil),
      ],
    );
  }

  avgPool(x: Value, o: AvgPoolOptions): Value {
    const name = o.name ?? this.auto('avgpool');
    const [kh, kw] = pair(o.kernel, 1);
    const [sh, sw] = o.stride === undefined ? [kh, kw] : pair(o.stride, 1);
    const [ph, pw] = pair(o.pad, 0);
    const shape = this.pool4(x, name);
    const ceil = !!o.ceilMode;
    return this.emit(
      'AveragePool',
      [x],
      {
        kernel_shape: ints([kh, kw]),
        strides: ints([sh, sw]),
        pads: ints([ph, pw, ph, pw]),
        ceil_mode: int(ceil ? 1 : 0),
        count_include_pad: int((o.countIncludePad ?? true) ? 1 : 0),
      },
      this.nodeName(name),
      [
        shape[0]!,
        shape[1]!,
        convDim(shape[2]!, kh, sh, ph, ph, 1, ceil),
        convDim(shape[3]!, kw, sw, pw, pw, 1, ceil),
      ],
    );
  }

  /** [N, C, H, W] → [N, C, 1, 1]. */
  globalAvgPool(x: Value, name?: string): Value {
    const n = name ?? this.auto('gap');
    const s = this.pool4(x, n);
    return this.emit('GlobalAveragePool', [x], {}, this.nodeName(n), [s[0]!, s[1]!, 1, 1]);
  }

  /** ONNX Flatten: [d0..d(axis-1)] × [d(axis)..] → 2-D (torch.flatten(x, 1) for axis 1 and rank-2 results). */
  flatten(x: Value, axis = 1, name?: string): Value {
    const n = name ?? this.auto('flatten');
    const s = this.shapeOf(x, n);
    const a = axis < 0 ? axis + s.length : axis;
    if (a < 0 || a > s.length)
      throw new ShapeError('axis', `Flatten "${n}": axis ${axis} is out of range for rank ${s.length}`, {
        node: n,
      });
    return this.emit('Flatten', [x], { axis: int(a) }, this.nodeName(n), [
      dimProduct(s.slice(0, a)),
      dimProduct(s.slice(a)),
    ]);
  }

  /** Reshape to `shape` (ONNX semantics: 0 copies the input dim, one -1 is inferred). */
  reshape(x: Value, shape: readonly number[], name?: string): Value {
    const n = name ?? this.auto('reshape');
    const s = this.shapeOf(x, n);
    const c = this.constInts(shape, `${n}/shape`);
    return this.emit('Reshape', [x, c], {}, this.nodeName(n), reshapeShape(s, shape));
  }

  transpose(x: Value, perm: readonly number[], name?: string): Value {
    const n = name ?? this.auto('transpose');
    const s = this.shapeOf(x, n);
    if (perm.length !== s.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i))
      throw new ShapeError('perm', `Transpose "${n}": [${perm}] is not a permutation of rank ${s.length}`, {
        node: n,
      });
    return this.emit(
      'Transpose',
      [x],
      { perm: ints([...perm]) },
      this.nodeName(n),
      perm.map((p) => s[p]!),
    );
  }

  /** Mean over `axes` (ReduceMean; axes as an attribute before opset 18, as an input from 18). */
  mean(x: Value, axes: readonly number[], keepdims = false, name?: string): Value {
    const n = name ?? this.auto('mean');
    const s = this.shapeOf(x, n);
    const ax = new Set(axes.map((a) => normAxis(a, s.length)));
    const out = keepdims ? s.map((d, i) => (ax.has(i) ? 1 : d)) : s.filter((_, i) => !ax.has(i));
    return this.reduceMean(x, axes, keepdims, n, out);
  }

  concat(xs: readonly Value[], axis: number, name?: string): Value {
    const n = name ?? this.auto('concat');
    if (xs.length === 0)
      throw new ShapeError('concat-empty', `Concat "${n}" needs at least one input`, { node: n });
    const shapes = xs.map((x) => this.shapeOf(x, n));
    const r = shapes[0]!.length;
    const a = normAxis(axis, r);
    const out = [...shapes[0]!];
    let total: Dim = 0;
    for (const s of shapes) {
      if (s.length !== r)
        throw new ShapeError(
          'concat-rank',
          `Concat "${n}": inputs have ranks ${shapes.map((q) => q.length)}`,
          { node: n },
        );
      total = typeof total === 'number' && typeof s[a] === 'number' ? total + (s[a] as number) : null;
    }
    out[a] = total;
    return this.emit('Concat', [...xs], { axis: int(a) }, this.nodeName(n), out);
  }

  /** Gather along `axis` with a constant scalar index (drops the axis) or index list. */
  gather(x: Value, index: number | readonly number[], axis = 0, name?: string): Value {
    const n = name ?? this.auto('gather');
    const s = this.shapeOf(x, n);
    const a = normAxis(axis, s.length);
    const scalar = typeof index === 'number';
    const idx = this.constant(
      scalar ? Tensor.from('int64', [], [index]) : Tensor.from('int64', [index.length], [...index]),
      `${n}/index`,
    );
    const out = scalar
      ? [...s.slice(0, a), ...s.slice(a + 1)]
      : [...s.slice(0, a), index.length, ...s.slice(a + 1)];
    return this.emit('Gather', [x, idx], { axis: int(a) }, this.nodeName(n), out);
  }

  matmul(a: Value, b: Value, name?: string): Value {
    const n = name ?? this.auto('matmul');
    const sa = this.shapeOf(a, n);
    const sb = this.shapeOf(b, n);
    if (sa.length < 2 || sb.length < 2)
      throw new ShapeError('matmul-rank', `MatMul "${n}": inputs need rank ≥ 2`, { node: n });
    const k1 = sa[sa.length - 1];
    const k2 = sb[sb.length - 2];
    if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2)
      throw new ShapeError('matmul-k', `MatMul "${n}": [${sa}] × [${sb}] do not agree (${k1} vs ${k2})`, {
        node: n,
      });
    const batch = broadcastShapes(sa.slice(0, -2), sb.slice(0, -2));
    return this.emit('MatMul', [a, b], {}, this.nodeName(n), [
      ...batch,
      sa[sa.length - 2]!,
      sb[sb.length - 1]!,
    ]);
  }

  add(a: Value, b: Value | number, name?: string): Value {
    return this.binary('Add', a, b, name ?? this.auto('add'));
  }
  sub(a: Value, b: Value | number, name?: string): Value {
    return this.binary('Sub', a, b, name ?? this.auto('sub'));
  }
  mul(a: Value, b: Value | number, name?: string): Value {
    return this.binary('Mul', a, b, name ?? this.auto('mul'));
  }
  div(a: Value, b: Value | number, name?: string): Value {
    return this.binary('Div', a, b, name ?? this.auto('div'));
  }

  // -------------------------------------------------------------------------------------------------------------
  // Internals
  // -------------------------------------------------------------------------------------------------------------

  private binary(op: string, a: Value, b: Value | number, name: string): Value {
    const bv = typeof b === 'number' ? this.constScalar(b, `${name}/const`, a.dtype ?? 'float32') : b;
    const shape = broadcastShapes(this.shapeOf(a, name), this.shapeOf(bv, name));
    return this.emit(op, [a, bv], {}, this.nodeName(name), shape, a.dtype ?? 'float32');
  }

  private unary(op: string, x: Value, name: string, attrs: Record<string, Attr> = {}): Value {
    return this.emit(op, [x], attrs, this.nodeName(name), [...this.shapeOf(x, name)], x.dtype ?? 'float32');
  }

  private reduceMean(x: Value, axes: readonly number[], keepdims: boolean, name: string, out: Dim[]): Value {
    const k = int(keepdims ? 1 : 0);
    if (this.opset >= 18)
      return this.emit(
        'ReduceMean',
        [x, this.constInts(axes, `${name}/axes`)],
        { keepdims: k },
        this.nodeName(name),
        out,
      );
    return this.emit('ReduceMean', [x], { axes: ints([...axes]), keepdims: k }, this.nodeName(name), out);
  }

  private pool4(x: Value, name: string): Dim[] {
    const s = this.shapeOf(x, name);
    if (s.length !== 4)
      throw new ShapeError('pool-rank', `Pool "${name}" needs an NCHW input: it has rank ${s.length}`, {
        node: name,
      });
    return s;
  }

  private shapeOf(x: Value, layer: string): Dim[] {
    const s = x.shape;
    if (!s)
      throw new ShapeError('unknown-shape', `Layer "${layer}": the shape of ${x} is unknown`, {
        node: layer,
        value: x.name,
      });
    return [...s];
  }

  /** `<kind>_<k>`, counted per kind. */
  private auto(kind: string): string {
    for (;;) {
      const k = this.counters.get(kind) ?? 0;
      this.counters.set(kind, k + 1);
      const n = `${kind}_${k}`;
      if (!this.graph.hasName(n)) return n;
    }
  }

  private nodeName(base: string): string {
    return this.graph.uniqueName(base);
  }

  private emit(
    opType: string,
    inputs: (Value | null)[],
    attrs: Record<string, Attr>,
    nodeName: string,
    shape: Dim[] | null,
    dtype: DType = 'float32',
    outName?: string,
  ): Value {
    const node = this.graph.addNode({
      opType,
      inputs,
      attrs,
      name: nodeName,
      outputs: outName ? [outName] : undefined,
    });
    const out = node.output(0);
    out.type = tensorType(dtype, shape);
    return out;
  }
}

/**
 * Parameter count of a model built this way: the elements of its float initializers, without BatchNorm running
 * statistics (inputs 3 and 4 of BatchNormalization) when `trainableOnly` (the default).
 */
export function countParameters(model: Model, opts: { trainableOnly?: boolean } = {}): number {
  const trainableOnly = opts.trainableOnly ?? true;
  const buffers = new Set<Value>();
  if (trainableOnly)
    for (const n of model.graph.nodes)
      if (n.opType === 'BatchNormalization' && isOnnxDomain(n))
        for (const i of [3, 4]) {
          const v = n.inputs[i];
          if (v) buffers.add(v);
        }
  let total = 0;
  for (const v of model.graph.initializers.values())
    if (
      !buffers.has(v) &&
      v.const &&
      (v.const.dtype === 'float32' || v.const.dtype === 'float16' || v.const.dtype === 'bfloat16')
    )
      total += v.const.numel;
  return total;
}
