// The train step: ONE ONNX graph = forward (training mode) + loss + backward (src/autodiff) + optimizer update,
// run by ORT once per batch. Its inputs are the batch, the per-step hyper-parameters (lr, AdamW's bias
// corrections), the trained parameters, the BN running statistics and the optimizer slots; its outputs are the
// loss, the logits and the next parameters / statistics / slots, which the runner feeds back on the next step.
//
// Layout of the trained parameters ("flat", the default): the runner keeps every trained parameter in ONE
// Float32Array; the forward reads each parameter as its own graph input (a zero-copy view of that array) and the
// optimizer reads the same memory as one flat input, updating it with a dozen elementwise nodes over the
// concatenated gradient, whatever the number of parameters. The graph returns the next flat vector, and the runner
// makes new views of it. Optimizer slots are flat vectors too. So a step costs one Concat of the gradients and
// no per-parameter optimizer nodes; JS work per step is O(number of parameter tensors), never O(elements).
// ("per-param" keeps one update chain per parameter; it exists to measure the difference.)
//
// Also here: the gradient-only graph (`buildGradientGraph` / `computeGradients` / `createGradientRunner`): the
// forward + loss + backward returning d(loss)/d(param) for a batch without updating anything (Taylor importance
// in pruning, gradient checks against PyTorch).
import { InputError, InternalError, ShapeError, UnsupportedError } from '../errors.js';
import {
  A,
  Emitter,
  type Graph,
  isOnnxDomain,
  type Model,
  Tensor,
  type Value,
  cleanup,
  isFloat,
  tensorType,
} from '../ir/index.js';
import { buildGradients, selectGradForms } from '../autodiff/grad.js';
import { inferShapes } from '../ops/infer.js';
import { NCHWC_DOMAIN, nchwcConv, nchwcFits } from '../ops/nn.js';
import type { GradForms } from '../ops/registry.js';
import { type HostTensor, Session, type OptimizationLevel, nchwcBlockSize } from '../runtime/index.js';
import { LOSS_INPUT_NAMES, addLoss } from './losses.js';
import { type BnStat, toTrainingMode } from './mode.js';
import {
  type ResolvedOptimizer,
  addHyperInputs,
  emitClipGradNorm,
  emitUpdate,
  hyperFeeds,
  hyperNames,
  resolveOptimizer,
  slotNames,
} from './optim.js';
import type {
  LossSpec,
  StepBatch,
  StepResult,
  TrainState,
  TrainStepOptions,
  TrainStepRunner,
} from './types.js';

/** Knobs beyond the contract, for benchmarks and profiling. */
export interface TrainStepTuning {
  /** "flat" (default): one parameter vector for the optimizer; "per-param": one update chain per parameter. */
  layout?: 'flat' | 'per-param';
  /** ORT graph optimisation level (default 'all'). */
  optimizationLevel?: OptimizationLevel;
  /** Turn on ORT's profiler with this file prefix. */
  profilePrefix?: string;
  /**
   * One graph with a symbolic batch dim for every batch size (needs gradient rules that take symbolic dims).
   * Default false: one graph and session per batch size met, with static shapes (built on first use).
   */
  dynamicBatch?: boolean;
  /** Batch sizes whose sessions are built by `createTrainStep` already (default: none; built on first use). */
  batchSizes?: readonly number[];
  /**
   * Run 2-D convolutions (forward and input gradient) on ORT's NCHWc kernels with this channel block (see
   * `nchwcConv` in src/ops/nn.ts). `createTrainStep` sets it from the ORT build in this process unless it is 0;
   * a graph built with it is specific to that block size (0, the default for `buildTrainGraph`: plain Convs).
   */
  nchwcBlock?: number;
  /** Forced gradient formulations (benchmarks, tests); the NCHWc block comes from `nchwcBlock`. */
  gradForms?: Omit<Partial<GradForms>, 'nchwcBlock'>;
}

/** Graph input / output names of the train-step graph. */
export interface TrainGraphNames {
  /** The batch input. */
  input: string;
  /** int64 labels [N] (cross-entropy, distill with alpha < 1). */
  labels?: string;
  /** Extra loss inputs by contract name (`teacher_logits`, `target`) → graph input name. */
  extra: Record<string, string>;
  /** Hyper-parameter inputs by role (lr, adamw_step_size, …) → graph input name. */
  hyper: Record<string, string>;
  loss: string;
  logits: string;
  gradNorm?: string;
}

export interface TrainGraph {
  model: Model;
  names: TrainGraphNames;
  optimizer: ResolvedOptimizer;
  layout: 'flat' | 'per-param';
  /** Trained parameters in order (graph inputs of the same name), with their dims and flat offsets. */
  params: { name: string; dims: number[]; offset: number; numel: number }[];
  /** Total trained elements. */
  numel: number;
  /** BN running statistics (graph inputs of the same name) → output holding the next value. */
  stats: { name: string; dims: number[]; next: string }[];
  /** Flat layout: the flat parameter input and output. */
  flat?: { input: string; next: string };
  /**
   * Optimizer slots: flat layout, one vector per slot kind ({slot, input, next}); per-param layout, one per
   * parameter and kind ({slot, param, input, next}).
   */
  slots: { slot: string; param?: string; dims: number[]; input: string; next: string }[];
}

// ---------------------------------------------------------------------------------------------------------------
// Shared preparation: clone, training mode, loss, shapes, parameter choice
// ---------------------------------------------------------------------------------------------------------------

interface Prepared {
  model: Model;
  input: Value;
  logits: Value;
  loss: Value;
  labels?: Value;
  extra: Record<string, string>;
  /** Candidate parameters (float initializers, rank ≥ 1, not running statistics), in initializer order. */
  params: Value[];
  stats: BnStat[];
}

interface PrepareOptions {
  loss: LossSpec;
  training: boolean;
  select?: (name: string) => boolean;
  inputName?: string;
  outputName?: string;
  seed?: number;
  /** Fix the batch dim of the input (and so of every value) to this size. */
  batch?: number;
}

function prepare(model: Model, o: PrepareOptions): Prepared {
  const m = model.clone();
  const g = m.graph;
  const input = o.inputName
    ? g.inputs.find((v) => v.name === o.inputName)
    : g.inputs.find((v) => !v.const && !g.initializers.has(v.name));
  if (!input)
    throw new InputError(
      'train-input',
      o.inputName
        ? `The model has no input "${o.inputName}"`
        : 'The model has no graph input to feed the batch to',
      {
        value: o.inputName ?? 'input',
      },
    );
  if (o.batch !== undefined) {
    const t = input.tensorType;
    const d0 = t?.shape?.[0];
    if (!t || !t.shape || t.shape.length === 0)
      throw new UnsupportedError('train-input-shape', `The batch input "${input.name}" needs a known rank`, {
        value: input.name,
      });
    if (typeof d0 === 'number' && d0 !== o.batch)
      throw new ShapeError(
        'train-batch',
        `Model input "${input.name}" has a fixed batch of ${d0}: the batch has ${o.batch} rows`,
        { value: input.name },
      );
    input.type = tensorType(t.dtype, [o.batch, ...t.shape.slice(1)]);
  }
  const logits = o.outputName ? g.outputs.find((v) => v.name === o.outputName) : g.outputs[0];
  if (!logits)
    throw new InputError(
      'train-output',
      o.outputName ? `The model has no output "${o.outputName}"` : 'The model has no graph output',
      {
        value: o.outputName ?? 'output',
      },
    );
  for (const v of g.inputs)
    if (v !== input && !v.const && !g.initializers.has(v.name))
      throw new UnsupportedError(
        'train-inputs',
        `Training feeds one model input ("${input.name}"); the model also needs "${v.name}"`,
        { value: v.name },
      );

  // running statistics are never trained
  const statValues = new Set<Value>();
  for (const n of g.nodes)
    if (n.opType === 'BatchNormalization' && isOnnxDomain(n))
      for (const i of [3, 4]) if (n.inputs[i]) statValues.add(n.inputs[i]!);

  // only the model's own initializers are parameters (not constants the loss or training mode add)
  const own = new Set(g.initializers.keys());
  poolBeforeRelu(m);
  inferShapes(m); // training mode reads input ranks and shapes
  const stats = o.training ? toTrainingMode(m, { seed: o.seed }).stats : [];
  inferShapes(m);
  const lg = addLoss(m, logits, o.loss);
  inferShapes(m);
  const extra: Record<string, string> = {};
  if (lg.inputs.teacher) extra[LOSS_INPUT_NAMES.teacher] = lg.inputs.teacher.name;
  if (lg.inputs.features) extra[LOSS_INPUT_NAMES.features] = lg.inputs.features.name;
  if (lg.inputs.target) extra[LOSS_INPUT_NAMES.target] = lg.inputs.target.name;

  const params: Value[] = [];
  for (const [name, v] of g.initializers) {
    const t = v.const!;
    if (
      !own.has(name) ||
      !isFloat(t.dtype) ||
      t.dims.length === 0 ||
      statValues.has(v) ||
      v.uses.length === 0
    )
      continue;
    if (o.select && !o.select(name)) continue;
    if (t.dtype !== 'float32')
      throw new UnsupportedError(
        'train-dtype',
        `Training updates float32 parameters: "${name}" is ${t.dtype}`,
        { value: name },
      );
    params.push(v);
  }
  return { model: m, input, logits, loss: lg.loss, labels: lg.inputs.labels, extra, params, stats };
}

/**
 * Relu → MaxPool becomes MaxPool → Relu (the same values: Relu is monotone, so it commutes with a max over any
 * window). The Relu and its gradient then run on the pooled tensor (¼ of the elements for 2×2 pools), and the
 * MaxPool gradient's mask compares with the pre-Relu input. The gradient is the same: where a window's maximum is
 * > 0 it flows to the same elements, and where it is ≤ 0 both forms give 0. Only when the Relu feeds nothing else
 * and the pool's Indices output is unused (its tie-breaking among zeros would differ).
 */
function poolBeforeRelu(m: Model): void {
  const g = m.graph;
  let changed = false;
  for (const r of [...g.nodes]) {
    if (r.opType !== 'Relu' || !isOnnxDomain(r)) continue;
    const out = r.outputs[0];
    if (!out || out.isGraphOutput || out.uses.length !== 1) continue;
    const { node: p, index } = out.uses[0]!;
    if (p.opType !== 'MaxPool' || !isOnnxDomain(p) || index !== 0 || p.graph !== g) continue;
    if (p.outputs.slice(1).some((o) => o && !o.isUnused)) continue;
    const pooled = p.outputs[0];
    if (!pooled) continue;
    p.setInput(0, r.input(0));
    const name = r.label;
    g.removeNode(r, true);
    const relu = new Emitter(g, { opset: m.opset('') ?? 17 }).op('Relu', [pooled], {}, { name });
    pooled.replaceAllUsesWith(relu, relu.producer!);
    changed = true;
  }
  if (changed) g.toposort();
}

/**
 * Forward 2-D group-1 Convs whose channel counts are multiples of `block` become NCHWc Convs (ORT only does this
 * itself for constant weights; here the weights are graph inputs). Runs after autodiff: the gradient nodes read
 * the Conv's input, weights and output value, which stay the same values. Convs producing a value in `keep` (the
 * logits) or a graph output are left alone.
 */
function forwardConvsToNchwc(m: Model, block: number, keep: ReadonlySet<Value>): void {
  const g = m.graph;
  for (const n of [...g.nodes]) {
    if (n.opType !== 'Conv' || !isOnnxDomain(n)) continue;
    const ws = n.input(1).shape;
    const xs = n.input(0).shape;
    if (!ws || ws.length !== 4 || !ws.every((d): d is number => typeof d === 'number')) continue;
    if (!xs || xs.length !== 4 || n.input(0).dtype !== 'float32') continue;
    if (n.attrString('auto_pad', 'NOTSET') !== 'NOTSET') continue;
    const [M, C, kh, kw] = ws as [number, number, number, number];
    if (!nchwcFits(C, M, 2, n.attrInt('group', 1), block)) continue;
    const y = n.output(0);
    if (keep.has(y) || y.isGraphOutput) continue; // a value the caller holds on to (the logits) stays
    const e = new Emitter(g, { opset: m.opset('') ?? 17, prefix: n.label });
    const attrs = Object.fromEntries(n.attrs);
    attrs.kernel_shape = A.ints([kh, kw]);
    const out = nchwcConv(e, n.input(0), n.input(1), n.inputs[2] ?? null, C, M, [kh, kw], attrs, block);
    y.replaceAllUsesWith(out);
    g.removeNode(n, true);
    out.type = y.type;
  }
  if (g.nodes.some((n) => n.domain === NCHWC_DOMAIN)) m.opsetImports.set(NCHWC_DOMAIN, 1);
}

/** Turn an initializer into a graph input of the same name and type (its data is fed per run). */
function toInput(g: Graph, v: Value): void {
  if (!v.const) return;
  g.initializers.delete(v.name);
  v.const = undefined;
  if (!g.inputs.includes(v)) g.inputs.push(v);
}

/** Make `v` a graph output named `want` (renamed when possible, else through an Identity); returns the name. */
function expose(g: Graph, v: Value, want: string): string {
  if (v.name === want && !g.outputs.includes(v) && !g.inputs.includes(v) && !v.const) {
    g.outputs.push(v);
    return want;
  }
  if (v.producer && v.producer.graph === g && !g.outputs.includes(v) && !g.hasName(want)) {
    g.claimName(want);
    v.name = want;
    g.outputs.push(v);
    return want;
  }
  const node = g.addNode({
    opType: 'Identity',
    inputs: [v],
    outputs: [g.uniqueName(want)],
    name: g.uniqueName(`${want}/Identity`),
  });
  const out = node.output(0);
  out.type =
    v.type && v.type.kind === 'tensor'
      ? tensorType(v.type.dtype, v.type.shape ? [...v.type.shape] : null)
      : v.type;
  g.outputs.push(out);
  return out.name;
}

function dimsOf(v: Value): number[] {
  const s = v.shape;
  if (!s || !s.every((d): d is number => typeof d === 'number'))
    throw new InternalError('train-dims', `"${v.name}" has no static shape`, { value: v.name });
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Train-step graph
// ---------------------------------------------------------------------------------------------------------------

/** Build the train-step graph of `model` (the model is not changed). */
export function buildTrainGraph(
  model: Model,
  opts: TrainStepOptions & TrainStepTuning,
  batch?: number,
): TrainGraph {
  const opt = resolveOptimizer(opts.optimizer);
  const layout = opts.layout ?? 'flat';
  const p = prepare(model, {
    loss: opts.loss,
    training: true,
    select: opts.trainable,
    inputName: opts.inputName,
    outputName: opts.outputName,
    seed: opts.seed,
    batch,
  });
  const m = p.model;
  const g = m.graph;
  const opset = m.opset('') ?? 17;
  // the one selection of the gradient formulations for this graph (the NCHWc block: probed by createTrainStep)
  const forms = selectGradForms({ ...opts.gradForms, nchwcBlock: opts.nchwcBlock ?? 0 });
  const { grads, unreached } = buildGradients(m, p.loss, p.params, { forms });
  if (forms.nchwcBlock) forwardConvsToNchwc(m, forms.nchwcBlock, new Set([p.logits, p.loss]));
  const dead = new Set(unreached);
  const params = p.params.filter((v) => !dead.has(v));
  if (params.length === 0)
    throw new InputError(
      'train-nothing',
      'No parameter of the model is trained (none selected, or none reaches the loss)',
      {},
    );

  for (const v of params) toInput(g, v);
  for (const s of p.stats) toInput(g, s.value);
  const hyperVals = addHyperInputs(g, opt);
  const e = new Emitter(g, { opset, prefix: 'optim' });

  g.outputs = [];
  const names: TrainGraphNames = {
    input: p.input.name,
    labels: p.labels?.name,
    extra: p.extra,
    hyper: Object.fromEntries(hyperNames(opt).map((n) => [n, hyperVals[n]!.name])),
    loss: expose(g, p.loss, 'loss'),
    logits: '',
  };
  names.logits = expose(g, p.logits, p.logits.name);

  let offset = 0;
  const info = params.map((v) => {
    const dims = dimsOf(v);
    const numel = dims.reduce((a, b) => a * b, 1);
    const r = { name: v.name, dims, offset, numel };
    offset += numel;
    return r;
  });
  let gs = params.map((v) => grads.get(v)!);
  const slots: TrainGraph['slots'] = [];
  let flat: TrainGraph['flat'];
  if (layout === 'flat') {
    let gflat =
      gs.length === 1
        ? e.reshape(gs[0]!, [-1])
        : e.op(
            'Concat',
            gs.map((gv) => e.reshape(gv, [-1])),
            { axis: { type: 'int', value: 0 } },
          );
    if (opts.gradClipNorm !== undefined) {
      const c = emitClipGradNorm(e, [gflat], opts.gradClipNorm);
      gflat = c.grads[0]!;
      names.gradNorm = expose(g, c.norm, 'grad_norm');
    }
    const pflat = g.addInput('params.flat', tensorType('float32', [offset]));
    const cur: Record<string, Value> = {};
    for (const s of slotNames(opt)) cur[s] = g.addInput(`optimizer.${s}`, tensorType('float32', [offset]));
    const upd = emitUpdate(e, opt, hyperVals, pflat, gflat, cur);
    flat = { input: pflat.name, next: expose(g, upd.param, 'params.flat.next') };
    for (const s of slotNames(opt))
      slots.push({
        slot: s,
        dims: [offset],
        input: cur[s]!.name,
        next: expose(g, upd.slots[s]!, `optimizer.${s}.next`),
      });
  } else {
    if (opts.gradClipNorm !== undefined) {
      const c = emitClipGradNorm(e, gs, opts.gradClipNorm);
      gs = c.grads;
      names.gradNorm = expose(g, c.norm, 'grad_norm');
    }
    params.forEach((v, k) => {
      const cur: Record<string, Value> = {};
      for (const s of slotNames(opt))
        cur[s] = g.addInput(`${v.name}.${s}`, tensorType('float32', [...info[k]!.dims]));
      e.prefix = `optim/${v.name}`;
      const upd = emitUpdate(e, opt, hyperVals, v, gs[k]!, cur);
      expose(g, upd.param, `${v.name}.next`);
      for (const s of slotNames(opt))
        slots.push({
          slot: s,
          param: v.name,
          dims: [...info[k]!.dims],
          input: cur[s]!.name,
          next: expose(g, upd.slots[s]!, `${v.name}.${s}.next`),
        });
    });
  }
  const stats = p.stats.map((s) => ({
    name: s.value.name,
    dims: dimsOf(s.value),
    next: expose(g, s.next, `${s.value.name}.next`),
  }));
  cleanup(m);
  inferShapes(m); // typed outputs (the encoded graph declares them)
  return { model: m, names, optimizer: opt, layout, params: info, numel: offset, stats, flat, slots };
}

// ---------------------------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------------------------

const f32 = (dims: readonly number[], data: Float32Array): HostTensor => ({ dtype: 'float32', dims, data });

/** Key of an optimizer slot in the runner's state (independent of graph input names). */
const slotKey = (s: TrainGraph['slots'][number]) => (s.param ? `${s.param}.${s.slot}` : s.slot);

function sameLayout(a: TrainGraph, b: TrainGraph): boolean {
  const j = (t: TrainGraph) =>
    JSON.stringify([
      t.layout,
      t.params,
      t.stats.map((s) => [s.name, s.dims]),
      t.slots.map((s) => [slotKey(s), s.dims]),
    ]);
  return j(a) === j(b);
}

interface Compiled {
  tg: TrainGraph;
  session: Session;
}

/**
 * Create the train step of `model` (which is cloned, never changed). Sessions are built per batch size on first
 * use (or up front for `batchSizes`); the parameters, statistics and optimizer slots live in the runner between
 * steps, as typed arrays fed to ORT and swapped for its outputs.
 */
export async function createTrainStep(
  model: Model,
  opts: TrainStepOptions & TrainStepTuning,
): Promise<TrainStepRunner> {
  const original = model.clone();
  if (opts.nchwcBlock === undefined) opts = { ...opts, nchwcBlock: await nchwcBlockSize() };
  const dynamic = opts.dynamicBatch ?? false;
  const first = opts.batchSizes?.[0];
  // the layout (trained parameters, statistics, slots) is the same at every batch size: take it from one graph
  const metaKey = dynamic ? -1 : (first ?? 1);
  const meta = buildTrainGraph(original, opts, metaKey === -1 ? undefined : metaKey);
  const runner = new StepRunner(original, opts, meta, metaKey);
  for (const n of opts.batchSizes ?? []) await runner.compiled(n);
  return runner;
}

class StepRunner implements TrainStepRunner {
  readonly trainable: readonly string[];
  private step = 0;
  /** Flat layout: every trained parameter; per-param layout: unused. */
  private flat: Float32Array;
  private views: Record<string, HostTensor> = {};
  /** Running statistics and (per-param layout) parameters, by name. */
  private tensors = new Map<string, Float32Array>();
  /** Optimizer slots by `slotKey`. */
  private slots = new Map<string, Float32Array>();
  private readonly classes: number | undefined;
  private readonly graphs = new Map<number, Promise<Compiled>>();
  private released = false;

  constructor(
    private readonly original: Model,
    private readonly opts: TrainStepOptions & TrainStepTuning,
    private readonly meta: TrainGraph,
    /** Batch size `meta` was built for (−1: symbolic). */
    private readonly metaKey: number,
  ) {
    const tg = meta;
    this.trainable = tg.params.map((p) => p.name);
    const inits = original.graph.initializers;
    const initial = (name: string): Float32Array => {
      const v = inits.get(name);
      if (!v?.const)
        throw new InternalError('train-init', `No initializer "${name}" in the model`, { value: name });
      return v.const.toFloat32();
    };
    this.flat = new Float32Array(tg.numel);
    for (const p of tg.params) {
      const d = initial(p.name);
      if (tg.layout === 'flat') this.flat.set(d, p.offset);
      else this.tensors.set(p.name, d);
    }
    for (const s of tg.stats) this.tensors.set(s.name, initial(s.name));
    for (const s of tg.slots) this.slots.set(slotKey(s), new Float32Array(s.dims.reduce((a, b) => a * b, 1)));
    this.makeViews();
    const logits = tg.model.graph.outputs.find((v) => v.name === tg.names.logits);
    const c = logits?.shape?.[1];
    this.classes = typeof c === 'number' ? c : undefined;
  }

  /** The graph and session for batches of `n` rows (one for all sizes with `dynamicBatch`). */
  compiled(n: number): Promise<Compiled> {
    const key = this.opts.dynamicBatch ? -1 : n;
    let c = this.graphs.get(key);
    if (!c) {
      c = (async () => {
        const tg =
          key === this.metaKey
            ? this.meta
            : buildTrainGraph(this.original, this.opts, key === -1 ? undefined : n);
        if (!sameLayout(tg, this.meta))
          throw new InternalError(
            'train-layout',
            `The train graph for batch ${n} has another parameter layout`,
          );
        const session = await Session.create(tg.model, {
          threads: this.opts.threads,
          optimizationLevel: this.opts.optimizationLevel,
          profilePrefix: this.opts.profilePrefix,
          label: `train-step graph (batch ${key === -1 ? 'N' : n})`,
        });
        return { tg, session };
      })();
      this.graphs.set(key, c);
      c.catch(() => this.graphs.delete(key));
    }
    return c;
  }

  private makeViews(): void {
    if (this.meta.layout !== 'flat') return;
    const v: Record<string, HostTensor> = {};
    for (const p of this.meta.params)
      v[p.name] = f32(p.dims, this.flat.subarray(p.offset, p.offset + p.numel));
    this.views = v;
  }

  async run(batch: StepBatch, lr: number): Promise<StepResult> {
    if (this.released) throw new InputError('train-released', 'This train step was released', {});
    const rows = batch.x.dims[0];
    if (rows === undefined || !Number.isInteger(rows) || rows < 1)
      throw new ShapeError(
        'train-batch',
        `The batch input needs a leading batch dim: it has dims [${batch.x.dims}]`,
        { value: 'x' },
      );
    const { tg, session } = await this.compiled(rows);
    const n = tg.names;
    const feeds: Record<string, HostTensor> = { [n.input]: batch.x };
    if (n.labels) {
      const y = batch.y;
      if (!y)
        throw new InputError('train-labels', 'This loss needs labels (batch.y, int64 [N])', { value: 'y' });
      if (y.dtype !== 'int64')
        throw new InputError('train-labels', `Labels must be int64: they are ${y.dtype}`, { value: 'y' });
      if (this.classes !== undefined) {
        const d = y.data as BigInt64Array;
        const c = BigInt(this.classes);
        for (let i = 0; i < d.length; i++)
          if (d[i]! < 0n || d[i]! >= c)
            throw new InputError(
              'train-labels',
              `Label ${d[i]} at row ${i} is outside 0..${this.classes - 1}`,
              { value: 'y' },
            );
      }
      feeds[n.labels] = y;
    }
    for (const [k, name] of Object.entries(n.extra)) {
      const t = batch.extra?.[k];
      if (!t) throw new InputError('train-extra', `This loss needs batch.extra.${k}`, { value: k });
      feeds[name] = t;
    }
    Object.assign(feeds, hyperFeeds(tg.optimizer, lr, this.step + 1, n.hyper));
    if (tg.layout === 'flat') {
      Object.assign(feeds, this.views);
      feeds[tg.flat!.input] = f32([tg.numel], this.flat);
    } else for (const p of tg.params) feeds[p.name] = f32(p.dims, this.tensors.get(p.name)!);
    for (const s of tg.stats) feeds[s.name] = f32(s.dims, this.tensors.get(s.name)!);
    for (const s of tg.slots) feeds[s.input] = f32(s.dims, this.slots.get(slotKey(s))!);
    const out = await session.run(feeds);
    // feed the outputs back: swap references, no copies
    if (tg.layout === 'flat') {
      this.flat = out[tg.flat!.next]!.data as Float32Array;
      this.makeViews();
    } else for (const p of tg.params) this.tensors.set(p.name, out[`${p.name}.next`]!.data as Float32Array);
    for (const s of tg.stats) this.tensors.set(s.name, out[s.next]!.data as Float32Array);
    for (const s of tg.slots) this.slots.set(slotKey(s), out[s.next]!.data as Float32Array);
    this.step++;
    const res: StepResult = { loss: Number(out[n.loss]!.data[0]), logits: out[n.logits]! };
    if (n.gradNorm) res.gradNorm = Number(out[n.gradNorm]!.data[0]);
    return res;
  }

  /** Current value of a trained parameter or running statistic (a view: do not write). */
  private current(name: string): Float32Array {
    const p = this.meta.params.find((q) => q.name === name);
    if (p && this.meta.layout === 'flat') return this.flat.subarray(p.offset, p.offset + p.numel);
    return this.tensors.get(name)!;
  }

  state(): TrainState {
    const tg = this.meta;
    const tensors: Record<string, HostTensor> = {};
    for (const p of tg.params) tensors[p.name] = f32(p.dims, this.current(p.name).slice());
    for (const s of tg.stats) tensors[s.name] = f32(s.dims, this.current(s.name).slice());
    const optimizer: Record<string, HostTensor> = {};
    for (const s of tg.slots) {
      const d = this.slots.get(slotKey(s))!;
      if (s.param) optimizer[slotKey(s)] = f32(s.dims, d.slice());
      else
        for (const p of tg.params)
          optimizer[`${p.name}.${s.slot}`] = f32(p.dims, d.slice(p.offset, p.offset + p.numel));
    }
    return { step: this.step, tensors, optimizer };
  }

  load(state: TrainState): void {
    const tg = this.meta;
    const get = (rec: Record<string, HostTensor>, key: string, dims: readonly number[]): Float32Array => {
      const t = rec[key];
      if (!t) throw new InputError('train-state', `The training state has no "${key}"`, { value: key });
      const numel = dims.reduce((a, b) => a * b, 1);
      if (
        t.dtype !== 'float32' ||
        t.data.length !== numel ||
        t.dims.length !== dims.length ||
        t.dims.some((d, i) => d !== dims[i])
      )
        throw new ShapeError(
          'train-state',
          `State tensor "${key}" must be float32 [${dims}]: it is ${t.dtype} [${t.dims}]`,
          { value: key },
        );
      return t.data as Float32Array;
    };
    if (!Number.isInteger(state.step) || state.step < 0)
      throw new InputError('train-state', `Bad step counter ${state.step} in the training state`, {
        value: 'step',
      });
    const flat = new Float32Array(tg.numel);
    const tensors = new Map<string, Float32Array>();
    for (const p of tg.params) {
      const d = get(state.tensors, p.name, p.dims);
      if (tg.layout === 'flat') flat.set(d, p.offset);
      else tensors.set(p.name, d.slice());
    }
    for (const s of tg.stats) tensors.set(s.name, get(state.tensors, s.name, s.dims).slice());
    const slots = new Map<string, Float32Array>();
    for (const s of tg.slots) {
      if (s.param) slots.set(slotKey(s), get(state.optimizer, slotKey(s), s.dims).slice());
      else {
        const v = new Float32Array(tg.numel);
        for (const p of tg.params) v.set(get(state.optimizer, `${p.name}.${s.slot}`, p.dims), p.offset);
        slots.set(slotKey(s), v);
      }
    }
    this.flat = flat;
    this.tensors = tensors;
    this.slots = slots;
    this.step = state.step;
    this.makeViews();
  }

  exportModel(): Model {
    const m = this.original.clone();
    const g = m.graph;
    for (const name of [...this.meta.params.map((p) => p.name), ...this.meta.stats.map((s) => s.name)]) {
      const v = g.initializers.get(name)!;
      g.setInitializer(v, Tensor.from('float32', v.const!.dims, this.current(name), name));
    }
    return m;
  }

  async release(): Promise<void> {
    this.released = true;
    const all = [...this.graphs.values()];
    this.graphs.clear();
    for (const c of all) {
      try {
        await (await c).session.release();
      } catch {
        // a graph that failed to build has no session
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Gradient-only graph
// ---------------------------------------------------------------------------------------------------------------

export interface GradientGraphOptions {
  loss: LossSpec;
  /** Parameters to differentiate: names, or a predicate on initializer names (default: every trainable one). */
  wrt?: readonly string[] | ((name: string) => boolean);
  /** Training mode (BN batch statistics, active Dropout); default true. */
  training?: boolean;
  inputName?: string;
  outputName?: string;
  /** Dropout seed in training mode. */
  seed?: number;
  /** Fix the batch dim to this size (default: the model's own, usually symbolic). */
  batch?: number;
}

export interface GradientGraph {
  /** Inputs: the batch, labels / extra loss inputs; outputs: loss, logits, one gradient per parameter. */
  model: Model;
  names: { input: string; labels?: string; extra: Record<string, string>; loss: string; logits: string };
  /** Parameter name → output name of its gradient (`<param>.grad`), in initializer order. */
  grads: Record<string, string>;
}

/** A graph returning d(loss)/d(param) for a batch, parameters baked in as initializers; updates nothing. */
export function buildGradientGraph(model: Model, opts: GradientGraphOptions): GradientGraph {
  const wrt = opts.wrt;
  let select: ((n: string) => boolean) | undefined;
  if (Array.isArray(wrt)) {
    const set = new Set<string>(wrt);
    for (const n of set)
      if (!model.graph.initializers.has(n))
        throw new InputError('grad-wrt', `The model has no initializer "${n}" to differentiate`, {
          value: n,
        });
    select = (n) => set.has(n);
  } else select = wrt as ((n: string) => boolean) | undefined;
  const p = prepare(model, {
    loss: opts.loss,
    training: opts.training ?? true,
    select,
    inputName: opts.inputName,
    outputName: opts.outputName,
    seed: opts.seed,
    batch: opts.batch,
  });
  const g = p.model.graph;
  const { grads } = buildGradients(p.model, p.loss, p.params);
  g.outputs = [];
  const names = {
    input: p.input.name,
    labels: p.labels?.name,
    extra: p.extra,
    loss: expose(g, p.loss, 'loss'),
    logits: '',
  };
  names.logits = expose(g, p.logits, p.logits.name);
  const out: Record<string, string> = {};
  for (const v of p.params) out[v.name] = expose(g, grads.get(v)!, `${v.name}.grad`);
  cleanup(p.model);
  inferShapes(p.model);
  return { model: p.model, names, grads: out };
}

export interface GradientRunResult {
  loss: number;
  logits: HostTensor;
  /** d(loss)/d(param) by parameter name, in the parameter's layout. */
  grads: Record<string, HostTensor>;
}

export interface GradientRunner {
  run(batch: StepBatch): Promise<GradientRunResult>;
  release(): Promise<void>;
}

/**
 * A reusable runner over `buildGradientGraph` (e.g. to accumulate Taylor importance over many batches): one graph
 * and session per batch size (built on first use), or one for all sizes with `dynamicBatch`.
 */
export async function createGradientRunner(
  model: Model,
  opts: GradientGraphOptions & {
    threads?: number;
    optimizationLevel?: OptimizationLevel;
    dynamicBatch?: boolean;
  },
): Promise<GradientRunner> {
  const original = model.clone();
  const sessions = new Map<number, Promise<{ graph: GradientGraph; session: Session }>>();
  const compiled = (n: number) => {
    const key = opts.dynamicBatch ? -1 : n;
    let c = sessions.get(key);
    if (!c) {
      c = (async () => {
        const graph = buildGradientGraph(original, { ...opts, batch: key === -1 ? undefined : key });
        const session = await Session.create(graph.model, {
          threads: opts.threads,
          optimizationLevel: opts.optimizationLevel,
          label: 'gradient graph',
        });
        return { graph, session };
      })();
      sessions.set(key, c);
      c.catch(() => sessions.delete(key));
    }
    return c;
  };
  return {
    async run(batch: StepBatch): Promise<GradientRunResult> {
      const { graph, session } = await compiled(batch.x.dims[0] ?? 1);
      const n = graph.names;
      const feeds: Record<string, HostTensor> = { [n.input]: batch.x };
      if (n.labels) {
        if (!batch.y)
          throw new InputError('train-labels', 'This loss needs labels (batch.y, int64 [N])', { value: 'y' });
        feeds[n.labels] = batch.y;
      }
      for (const [k, name] of Object.entries(n.extra)) {
        const t = batch.extra?.[k];
        if (!t) throw new InputError('train-extra', `This loss needs batch.extra.${k}`, { value: k });
        feeds[name] = t;
      }
      const out = await session.run(feeds);
      const grads: Record<string, HostTensor> = {};
      for (const [p, o] of Object.entries(graph.grads)) grads[p] = out[o]!;
      return { loss: Number(out[n.loss]!.data[0]), logits: out[n.logits]!, grads };
    },
    async release() {
      const all = [...sessions.values()];
      sessions.clear();
      for (const c of all) {
        try {
          await (await c).session.release();
        } catch {
          // a graph that failed to build has no session
        }
      }
    },
  };
}

/** One-shot: d(loss)/d(param) of `model` for one batch. */
export async function computeGradients(
  model: Model,
  batch: StepBatch,
  opts: GradientGraphOptions & { threads?: number; optimizationLevel?: OptimizationLevel },
): Promise<GradientRunResult> {
  const r = await createGradientRunner(model, opts);
  try {
    return await r.run(batch);
  } finally {
    await r.release();
  }
}
