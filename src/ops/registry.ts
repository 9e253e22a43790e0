// The op registry: one entry per op type (and domain), holding everything edgefit knows about the op. Shape
// inference, `verify`'s dtype checks, autodiff, pruning and quantization read these entries; none of them has a
// `switch (node.opType)` of its own. Entries live in family files (nn.ts, elementwise.ts, shape.ts, …), each of
// which adds its entries to the table (table.ts); this module loads them all (src/ops/all.ts) before it exports
// `lookup`.
import type { DType, Dim, Emitter, Graph, Node, Tensor, TensorType, Value, ValueType } from '../ir/index.js';
import type { ProblemKind } from '../ir/verify.js';
// Every op family, before anything below is handed out: `lookup` and `allEntries` always see the complete set of
// built-in ops, whoever imports them (autodiff alone, the quantizer, a library user). Registration is part of
// loading the registry, not an import a caller must know about.
import './all.js';

/** The elements of a small tensor known at inference time: numbers, symbols (dims from Shape), or null (unknown). */
export type SymValue = Dim[];

/** What an op rule may ask while inferring one node. */
export interface InferCtx {
  readonly node: Node;
  /** Opset version imported for the node's domain. */
  readonly opset: number;
  /** Opset version imported for another domain (undefined when not imported). */
  opsetOf(domain: string): number | undefined;
  /** Whether input `i` is present (not omitted). */
  hasInput(i: number): boolean;
  /** Tensor type of input `i`. Throws (and the driver leaves the outputs unknown) when it is omitted or unknown. */
  inputType(i: number): TensorType;
  /** Tensor type of an optional input: undefined when omitted or unknown. */
  optInputType(i: number): TensorType | undefined;
  /** Constant data of input `i` (initializer or Constant node output). */
  constValue(i: number): Tensor | undefined;
  /** Elements of input `i` when known at inference time (constants and propagated shape computations). */
  symbolicValue(i: number): SymValue | undefined;
  /** Elements of input `i` when all are known numbers. */
  intsValue(i: number): number[] | undefined;
  /** Infer a subgraph (If/Loop body) given the types of its formal inputs; returns its output types. */
  inferSubgraph(g: Graph, inputTypes?: (ValueType | undefined)[]): (ValueType | undefined)[];
  /** Symbolic value of a subgraph output after `inferSubgraph` (for If branches that pass shape values through). */
  subgraphOutputValue(g: Graph, i: number): SymValue | undefined;
  /** Throw a ShapeError naming this node (and a value or attribute when given). */
  fail(message: string, value?: Value | string): never;
  /** A fresh symbolic dim for data-dependent sizes (NonZero, Unique, NonMaxSuppression…). */
  freshDim(hint: string): string;
}

/** One output of `infer`: a type, or undefined when the rule cannot say (the declared type, if any, is kept). */
export type InferResult = (ValueType | undefined)[];

// ---- slots for later work (declared here so every engine reads the same entry; not implemented yet) ----

/** How a Conv's weight gradient is formed ('auto': per conv shape, from bench/grad_conv.ts's measurements). */
export type ConvWeightGradForm = 'auto' | 'cols-batched' | 'cols-gemm' | 'offset-gemms' | 'batch-conv';
/** How a Conv's input gradient is formed ('auto': per conv shape). */
export type ConvInputGradForm = 'auto' | 'flipped-conv' | 'conv-transpose';

/**
 * The formulation choices of the gradient rules for one `buildGradients` call: chosen once by `selectGradForms`
 * (src/autodiff/grad.ts) and handed to every rule as `GradCtx.forms`. Rules read nothing else: no module state.
 */
export interface GradForms {
  /**
   * NCHWc channel block of the ONNX Runtime that will run the graph (16 with AVX-512, 8 with AVX2), or 0: no NCHWc
   * op is emitted. A graph built with a block is specific to that machine (never save it for elsewhere).
   */
  readonly nchwcBlock: number;
  readonly convWeight: ConvWeightGradForm;
  readonly convInput: ConvInputGradForm;
  /** MaxPool over non-overlapping windows by the equality mask (true) or always by Indices + ScatterElements. */
  readonly maxPoolMask: boolean;
  /**
   * How the Indices form adds overlapping/padded windows' gradients back: ScatterElements(add) (opset ≥ 16) or a
   * grouped one-hot ConvTranspose (src/ops/maxpool_grad.ts, any opset). 'auto': ScatterElements from opset 16
   * (1.4–1.6× faster, bench/grad_maxpool.ts), one-hot below; `edgefit train` upgrades such models to 16.
   */
  readonly maxPoolOverlap: 'auto' | 'scatter' | 'onehot';
}

/**
 * What a gradient rule gets from the autodiff driver (src/autodiff/grad.ts). Forward values carry their inferred
 * types, so rules read static shapes with `shapeOf`; they emit gradient nodes through `e` (src/ir/emit.ts).
 */
export interface GradCtx {
  readonly node: Node;
  /** The graph gradient nodes are emitted into (the forward graph itself). */
  readonly graph: Graph;
  /** ai.onnx opset of the graph. */
  readonly opset: number;
  /** Emits nodes named `grad/<node>/…`: `e.op('Mul', [a, b])`, `e.reduceSum(x, axes, keep)`, `e.ints([..])`, … */
  readonly e: Emitter;
  /** The formulation choices of this build (see GradForms). */
  readonly forms: GradForms;
  /** Gradient flowing into output `i` of the node, or null when none flows. */
  outputGrad(i: number): Value | null;
  /** Whether input `i` needs a gradient (float and on the path from a parameter); return null for the others. */
  needsGrad(i: number): boolean;
  /** Sum a gradient shaped like the node's (broadcast) output 0 down to the shape of input `i`. */
  unbroadcast(grad: Value, i: number): Value;
  /**
   * Static shape of a FORWARD value (throws UnsupportedGradientError when unknown). Gradient values emitted by
   * rules carry no inferred types: a rule must derive shapes from the forward values, never from gradients.
   */
  shapeOf(v: Value): Dim[];
  dtypeOf(v: Value): DType;
  /** Throw UnsupportedGradientError naming this node. */
  fail(message: string): never;
}

/**
 * A run of channels along a traced axis: channels [start, start + count) of pruning group `group`, each repeated
 * `inner` times in a row (a Flatten of [N, C, H, W] gives inner = H·W; a depthwise Conv with multiplier m, inner m).
 */
export interface ChannelSegment {
  group: number;
  start: number;
  count: number;
  inner: number;
}
/** What an axis carries, in order: its length is Σ count · inner. */
export type ChannelLayout = ChannelSegment[];
/** A traced axis of a value and its layout. */
export interface TracedAxis {
  axis: number;
  layout: ChannelLayout;
  /**
   * The channel axis split in two: axes `axis` and `axis + 1` of sizes [split, C / split] carry `layout` in row-major
   * order (a Reshape of the channels into [g, C/g], on the way to a channel shuffle). Only rules of entries with
   * `pruneSplit` see such inputs; every other op blocks them.
   */
  split?: number;
}

/**
 * What a pruning rule may ask and declare while the dependency analysis (src/passes/prune/deps.ts) visits a node in
 * topological order. Channel counts are static: a rule that cannot tell blocks the channels it sees.
 */
export interface PruneCtx {
  readonly node: Node;
  /** The traced axis of input i (undefined: the input carries no prunable channels). */
  traced(i: number): TracedAxis | undefined;
  /** Static shape of input i (null dims when unknown; undefined when the rank is unknown). */
  inShape(i: number): Dim[] | undefined;
  outShape(i: number): Dim[] | undefined;
  /** Whether input i is an initializer (or a Constant node output): something the pass can slice. */
  isConst(i: number): boolean;
  /** Integer elements of a constant input. */
  constInts(i: number): number[] | undefined;
  /** Output i carries these channels on `axis` (split: on `axis` and `axis + 1`, see TracedAxis.split). */
  setOutput(i: number, axis: number, layout: ChannelLayout, split?: number): void;
  /** A new group of `size` channels produced here (a Conv's or Linear's output channels). */
  newGroup(size: number): ChannelLayout;
  /** Slice constant input i along `axis` as `layout` is pruned (weights, biases, BN statistics); blocks when not constant. */
  slice(i: number, axis: number, layout: ChannelLayout): void;
  /** These layouts must be pruned alike (residual Add, SE Mul); blocks them when their structure differs. */
  couple(a: ChannelLayout, b: ChannelLayout): void;
  /**
   * Cut `layout` into `parts` equal chunks: channel i of every chunk is pruned with channel i of the first (the
   * groups of a grouped Conv, the rows of a channel shuffle), so every chunk keeps the same channels and count.
   */
  coupleChunks(layout: ChannelLayout, parts: number): void;
  /** At least one channel of this layout must stay (a part cut out by a Slice: a zero-width tensor is no model). */
  keepOne(layout: ChannelLayout): void;
  /** These channels cannot be pruned, because … */
  block(layout: ChannelLayout, reason: string): void;
  /** Called after pruning with the kept length of a layout: update attributes and shape constants. */
  onPrune(fix: (kept: (layout: ChannelLayout) => number) => void): void;
}
/**
 * Structured-pruning knowledge of an op: given the traced inputs, declare the traced outputs, the constants to slice,
 * the couplings and the blocks. An op with no rule blocks every channel it receives.
 */
export type PruneRule = (node: Node, p: PruneCtx) => void;

/** Which inputs hold weights (quantized offline) and which carry activations (quantized with calibration). */
export interface QuantSpec {
  /** Inputs holding weights (quantized offline: int8 per channel, or int4 blocks). */
  weightInputs: number[];
  /** Inputs carrying activations (quantized with calibrated ranges). */
  activationInputs: number[];
  /** The bias input (int32 with scale = input scale · weight scale), when the op has one. */
  biasInput?: number;
  /** The weight's output-channel axis (per-channel scales), as a function of the node (Gemm's transB). */
  channelAxis?: (node: Node) => number;
}

export interface OpEntry {
  type: string;
  /** '' (the default, ai.onnx) or e.g. 'com.microsoft'. */
  domain?: string;
  /** Opset versions where the op's signature changed that this entry handles; the first is the oldest supported. */
  sinceVersion: number[];
  /** Output types (dtypes and shapes, symbolic dims allowed). */
  infer(node: Node, ctx: InferCtx): InferResult;
  /** Elements of the outputs when they are computable at inference time (shape arithmetic, constants). */
  value?(node: Node, ctx: InferCtx): (SymValue | undefined)[];
  /** Inputs that must share one dtype ('all' = every present input). Checked by `checkNode` and `inferShapes`. */
  sameDtype?: number[] | 'all';
  /** Extra dtype/attribute checks, given the current input types; return problem messages. */
  check?(node: Node, inputs: (TensorType | undefined)[]): { kind: ProblemKind; message: string }[];
  /** Gradient rule: emits ONNX nodes computing input gradients (null where no gradient flows). Later work. */
  grad?(node: Node, g: GradCtx): (Value | null)[];
  /** Structured pruning: how channels flow through the op (src/ops/prune.ts has the common rules). */
  prune?: PruneRule;
  /** The prune rule maps a channel axis split in two (TracedAxis.split): Reshape and Transpose of a channel shuffle. */
  pruneSplit?: boolean;
  /** Quantizable inputs: ops with integer kernels in ORT (QLinearConv, QGemm, MatMulIntegerToFloat). */
  quant?: QuantSpec;
  /**
   * The op only moves or selects elements (or takes a max): quantized data may flow through it unchanged, so a
   * DQ → op → Q with equal parameters lets ORT run it on integers. The value is the input carrying the data.
   */
  quantPassThrough?: number;
  /** ORT folds this activation into the quantization of its producer's output (Relu, Clip(0, 6)). */
  quantFusedActivation?: boolean;
  /**
   * ORT 1.30 replaces DQ → op → Q by this integer kernel (`com.microsoft` QLinearAdd, QLinearSigmoid, QLinearConcat,
   * …) when the activation inputs `inputs` (or every input: 'all') are dequantized and the output is quantized.
   * The static quantizer's placement rules (src/passes/quantize/placement) read it.
   */
  quantQLinear?: { op: string; inputs: number[] | 'all' };
  /**
   * A per-channel affine op on axis 1 (y = a[c]·x + b[c]) that ORT has no integer kernel for: the static quantizer
   * may rewrite it as a depthwise 1×1 Conv (weight a, bias b), which runs as QLinearConv with exact per-channel
   * int8 weights (src/passes/quantize/placement). Returns a and b when they are constants, else undefined.
   */
  quantAffine?(node: Node): { scale: Float64Array; bias: Float64Array } | undefined;
  /**
   * The op multiplies activation input `input` by the positive constant `factor` (Mul/Div by a scalar): between
   * quantized tensors the static quantizer drops it and dequantizes its input with the scale × factor instead (the
   * same values, no kernel, no second rounding; HardSwish's ×1/6). Undefined when the node is not of that form.
   */
  quantScale?(node: Node): { input: number; factor: number } | undefined;
}

// The table (src/ops/table.ts) is filled by the op families; this module's readers get it complete.
export { allEntries, lookup, normDomain, register, registerAll } from './table.js';

/** Thrown by `InferCtx.inputType` when an input's type is unknown; the driver catches it. */
export class UnknownInputType extends Error {
  constructor(readonly index: number) {
    super(`input ${index} has no known tensor type`);
  }
}

export type { DType };
