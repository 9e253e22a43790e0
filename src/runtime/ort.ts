// The ONNX Runtime adapter: the only module of edgefit that imports onnxruntime-node. Everything that computes on
// tensors does it through a Session made here. Feeds and fetches are plain typed arrays (HostTensor).
import * as ort from 'onnxruntime-node';
import {
  EdgefitError,
  ModelRefusedError,
  RuntimeUnsupportedError,
  ShapeError,
  UnsupportedError,
} from '../errors.js';
import type { DType } from '../ir/dtype.js';
import { Graph, Model, type Value } from '../ir/graph.js';
import { tensorType } from '../ir/index.js';
import type { TypedArray } from '../ir/tensor.js';
import { encodeModel } from '../onnx/encode.js';
import { loadModel } from '../onnx/index.js';

export interface HostTensor {
  dtype: DType;
  dims: readonly number[];
  data: TypedArray;
}

export type OptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** Intra-op threads (default: ORT's choice, all cores). */
  threads?: number;
  /** Graph optimisation level (default 'all'). */
  optimizationLevel?: OptimizationLevel;
  /** Write the graph ORT actually runs to this file (to check which kernels a model uses). */
  optimizedModelPath?: string;
  /** Session config entries, e.g. { 'session.disable_prepacking': '1' }. */
  config?: Record<string, string>;
  /** Use ORT's memory arena / pattern planner (default true). */
  memoryPattern?: boolean;
  /** Turn on ORT's profiler; the file prefix. */
  profilePrefix?: string;
  /** Name for messages (a file path or model name). */
  label?: string;
  /**
   * Serve weights from the file's pages: for a model loaded from a path whose tensors are in an external data file
   * at page-aligned offsets, ORT maps that file; turning pre-packing off keeps its kernels reading the mapped
   * weights instead of packed private copies, so processes that map the same file share those pages
   * (`session.disable_prepacking`; measured in BENCHMARKS.md, "Serving").
   */
  mapWeights?: boolean;
}

/** A graph input or output as ORT reports it: dtype and dims (a string for a named symbolic dim, -1 unknown). */
export interface ValueInfo {
  name: string;
  /** ORT's tensor type name (float32, int64, …), or undefined for a non-tensor value. */
  dtype: DType | undefined;
  /** [] for a scalar, and also when ORT knows no shape (ORT does not tell the two apart). */
  shape: (number | string)[];
}

/**
 * ORT failed to load or run a graph edgefit built or passed on (a train step, a quantized model, a probe): edgefit's
 * own inconsistency (exit 1). A user's model file ORT refuses is a ModelRefusedError or RuntimeUnsupportedError
 * instead (see `checkRuntimeAccepts`).
 */
export class RuntimeError extends EdgefitError {}

/**
 * ORT's reason for a failure, without the parts that only help ORT's developers: the "Load model from … failed:"
 * wrapper, the C++ source location and function signature, "Fatal error:".
 */
export function ortReason(e: unknown): string {
  let m = (e instanceof Error ? e.message : String(e)).trim();
  m = m.replace(/^Load model from [\s\S]*? failed:\s*/, '');
  m = m.replace(/^\S*onnxruntime\S*\.(?:cc|h|cpp):\d+\s+(?:[^()]*\([^()]*\)(?:\s*const)?\s+)?/, '');
  m = m.replace(/^Fatal error:\s*/, '');
  return m.split('\n')[0]!.trim().slice(0, 600);
}

// What makes a refusal "unsupported" (exit 3) rather than "malformed" (exit 2): an op or domain ORT has no kernel
// or schema for, an opset or IR version newer than this ORT build.
const UNSUPPORTED_REASONS: readonly RegExp[] = [
  /is not a registered function\/op/,
  /Could not find an implementation for/,
  /Unsupported model IR version/i,
  /Opset \d+ is under development/,
  /official support for domain/i,
  /\bnot supported\b|\bunsupported\b/i,
];

/**
 * The one rule for a model ONNX Runtime refuses to load: the user's input, never a bug of edgefit. An unsupported
 * op, domain, opset or IR version is a RuntimeUnsupportedError (exit 3); anything else (malformed) a
 * ModelRefusedError (exit 2). Both name the file and give ORT's reason.
 */
export function runtimeRefusal(file: string, e: unknown): ModelRefusedError | RuntimeUnsupportedError {
  const reason = ortReason(e);
  if (UNSUPPORTED_REASONS.some((r) => r.test(reason)))
    return new RuntimeUnsupportedError(
      'ort-unsupported',
      `ONNX Runtime does not support ${file}: ${reason}`,
      {
        file,
      },
    );
  return new ModelRefusedError('ort-refused', `ONNX Runtime refuses ${file}: ${reason}`, { file });
}

/**
 * Check once, before anything runs, that ONNX Runtime loads the user's model file itself (its bytes, not edgefit's
 * re-encoding; no graph optimisation, so it is quick). Throws `runtimeRefusal`'s error when it does not, so that a
 * later failure of a graph edgefit derives from the file can only be edgefit's own.
 */
export async function checkRuntimeAccepts(file: string): Promise<void> {
  let s: ort.InferenceSession;
  try {
    s = await ort.InferenceSession.create(file, {
      graphOptimizationLevel: 'disabled',
      logSeverityLevel: 4,
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    });
  } catch (e) {
    throw runtimeRefusal(file, e);
  }
  await s.release();
}

/** `loadModel` (src/onnx) for a model that will run in ONNX Runtime: decoded, then `checkRuntimeAccepts`. */
export async function loadRunnableModel(file: string): Promise<Model> {
  const m = loadModel(file);
  await checkRuntimeAccepts(file);
  return m;
}

const ORT_DTYPES: Partial<Record<DType, ort.Tensor.Type>> = {
  float32: 'float32',
  float16: 'float16',
  float64: 'float64',
  int8: 'int8',
  uint8: 'uint8',
  int16: 'int16',
  uint16: 'uint16',
  int32: 'int32',
  uint32: 'uint32',
  int64: 'int64',
  uint64: 'uint64',
  bool: 'bool',
  string: 'string',
  // int4/uint4 are left out on purpose: onnxruntime-node 1.30 aborts the process when it returns such a tensor
};

function toOrtTensor(name: string, t: HostTensor, label: string): ort.Tensor {
  const type = ORT_DTYPES[t.dtype];
  if (!type)
    throw new ShapeError(
      'feed-dtype',
      `Input "${name}" of ${label} has dtype ${t.dtype}, which ONNX Runtime cannot take from Node`,
      { value: name },
    );
  try {
    return new ort.Tensor(type, t.data as never, t.dims as number[]);
  } catch (e) {
    throw new ShapeError(
      'feed',
      `Input "${name}" of ${label} is not a valid ${t.dtype} tensor of dims [${t.dims}]: ${(e as Error).message}`,
      {
        value: name,
      },
    );
  }
}

function fromOrtTensor(t: ort.Tensor): HostTensor {
  const dtype = (t.type === 'bool' ? 'bool' : t.type) as DType;
  return { dtype, dims: [...t.dims], data: t.data as TypedArray };
}

export class Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly label: string;
  /** Inputs and outputs with dtype and shape, as ORT reports them. */
  readonly inputInfo: readonly ValueInfo[];
  readonly outputInfo: readonly ValueInfo[];
  private readonly model: Model | undefined;

  private constructor(
    private readonly inner: ort.InferenceSession,
    label: string,
    model: Model | undefined,
  ) {
    this.inputNames = inner.inputNames;
    this.outputNames = inner.outputNames;
    this.label = label;
    this.model = model;
    this.inputInfo = inner.inputMetadata.map(valueInfo);
    this.outputInfo = inner.outputMetadata.map(valueInfo);
  }

  /** A session from an IR model, serialized bytes, or a path to an ONNX file. */
  static async create(model: Model | Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
    const label = opts.label ?? (typeof model === 'string' ? model : 'model');
    const so: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: opts.optimizationLevel ?? 'all',
      executionMode: 'sequential',
      interOpNumThreads: 1,
      // fatal only: every failure reaches the caller as a RuntimeError carrying ORT's message, so ORT's own error
      // log lines on stderr would only repeat it (coloured, with source file names)
      logSeverityLevel: 4,
    };
    if (opts.threads !== undefined) so.intraOpNumThreads = opts.threads;
    if (opts.optimizedModelPath !== undefined) so.optimizedModelFilePath = opts.optimizedModelPath;
    if (opts.memoryPattern !== undefined) so.enableMemPattern = opts.memoryPattern;
    if (opts.profilePrefix !== undefined) {
      so.enableProfiling = true;
      so.profileFilePrefix = opts.profilePrefix;
    }
    const config = { ...(opts.mapWeights ? { 'session.disable_prepacking': '1' } : {}), ...opts.config };
    if (Object.keys(config).length) {
      // ORT takes session config entries through `extra` (nested by the dots of the key)
      const extra: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(config)) {
        const parts = k.split('.');
        let o = extra;
        for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
        o[parts[parts.length - 1]!] = v;
      }
      so.extra = extra;
    }
    let inner: ort.InferenceSession;
    const ir = typeof model === 'string' || model instanceof Uint8Array ? undefined : model;
    try {
      if (typeof model === 'string') inner = await ort.InferenceSession.create(model, so);
      else
        inner = await ort.InferenceSession.create(
          model instanceof Uint8Array ? model : encodeModel(model),
          so,
        );
    } catch (e) {
      // a file on disk is the user's model; a graph in memory is one edgefit built or re-encoded
      if (typeof model === 'string') throw runtimeRefusal(model, e);
      throw new RuntimeError('ort-load', `ONNX Runtime cannot load ${label}: ${ortReason(e)}`, {});
    }
    return new Session(inner, label, ir);
  }

  /** Run the model; returns the requested outputs (all by default). */
  async run(
    feeds: Record<string, HostTensor>,
    fetches?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    this.checkFeeds(feeds);
    this.checkFetches(fetches ?? this.outputNames);
    const f: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) f[k] = toOrtTensor(k, v, this.label);
    let out: ort.InferenceSession.ReturnType;
    try {
      out = fetches ? await this.inner.run(f, fetches as string[]) : await this.inner.run(f);
    } catch (e) {
      throw new RuntimeError('ort-run', `ONNX Runtime failed running ${this.label}: ${ortReason(e)}`, {});
    }
    const res: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(out)) res[k] = fromOrtTensor(v);
    return res;
  }

  /** Stop profiling and return the profile file's path (when `profilePrefix` was set). */
  endProfiling(): void {
    this.inner.endProfiling();
  }

  async release(): Promise<void> {
    await this.inner.release();
  }

  /** Refuse outputs Node cannot receive (ORT 1.30 aborts the process on int4/uint4 outputs). */
  private checkFetches(names: readonly string[]): void {
    for (const name of names) {
      const v: Value | undefined = this.model?.graph.outputs.find((o) => o.name === name);
      const d = v ? v.dtype : this.outputInfo.find((o) => o.name === name)?.dtype;
      if (d && !ORT_DTYPES[d])
        throw new UnsupportedError(
          'fetch-dtype',
          `Output "${name}" of ${this.label} is ${d}, which ONNX Runtime cannot return to Node: dequantize it in the graph`,
          {
            value: name,
          },
        );
    }
  }

  /** Feeds must name every graph input that has no initializer, with the declared dtype and static dims. */
  private checkFeeds(feeds: Record<string, HostTensor>): void {
    for (const name of Object.keys(feeds))
      if (!this.inputNames.includes(name))
        throw new ShapeError(
          'feed-name',
          `${this.label} has no input "${name}" (inputs: ${this.inputNames.join(', ')})`,
          { value: name },
        );
    if (!this.model) return;
    for (const v of this.model.graph.inputs) {
      const t = feeds[v.name];
      if (!t) {
        if (v.const) continue;
        throw new ShapeError('feed-missing', `Input "${v.name}" of ${this.label} was not given`, {
          value: v.name,
        });
      }
      const tt = v.tensorType;
      if (!tt) continue;
      if (tt.dtype !== t.dtype)
        throw new ShapeError(
          'feed-dtype',
          `Input "${v.name}" of ${this.label} must be ${tt.dtype}: it is ${t.dtype}`,
          { value: v.name },
        );
      if (tt.shape) {
        const ok =
          tt.shape.length === t.dims.length &&
          tt.shape.every((d, i) => typeof d !== 'number' || d === t.dims[i]);
        if (!ok)
          throw new ShapeError(
            'feed-shape',
            `Input "${v.name}" of ${this.label} must have shape [${tt.shape.map((d) => d ?? '?').join(',')}]: it has [${t.dims.join(',')}]`,
            { value: v.name },
          );
      }
    }
  }
}

function valueInfo(m: ort.InferenceSession.ValueMetadata): ValueInfo {
  if (!m.isTensor) return { name: m.name, dtype: undefined, shape: [] };
  return { name: m.name, dtype: m.type as DType, shape: [...m.shape] };
}

export function createSession(
  model: Model | Uint8Array | string,
  opts: SessionOptions = {},
): Promise<Session> {
  return Session.create(model, opts);
}

/** Build a session, run once, release. */
export async function runModel(
  model: Model | Uint8Array | string,
  feeds: Record<string, HostTensor>,
  opts: SessionOptions & { fetches?: string[] } = {},
): Promise<Record<string, HostTensor>> {
  const s = await Session.create(model, opts);
  try {
    return await s.run(feeds, opts.fetches);
  } finally {
    await s.release();
  }
}

export const ortVersion: string =
  (ort.env as { versions?: { common?: string } }).versions?.common ?? 'unknown';

let nchwcProbe: Promise<number> | undefined;

/**
 * The NCHWc block size of this ONNX Runtime build (16 with AVX-512, 8 with AVX2; 0 when it has none or this is not
 * x64): the channel block of ORT's internal `com.microsoft.nchwc` ops, read from the shape ReorderInput gives four
 * channels (the fewest it takes; padded up to a whole block). Cached per process.
 */
export function nchwcBlockSize(): Promise<number> {
  nchwcProbe ??= (async () => {
    if (process.arch !== 'x64') return 0;
    const g = new Graph('nchwc_probe');
    const x = g.addInput('x', tensorType('float32', [1, 4, 1, 1]));
    const n = g.addNode({
      opType: 'ReorderInput',
      domain: 'com.microsoft.nchwc',
      name: 'r',
      inputs: [x],
      outputs: ['y'],
    });
    g.outputs = [n.output(0)];
    const m = new Model(g);
    m.opsetImports.set('', 17);
    m.opsetImports.set('com.microsoft.nchwc', 1);
    try {
      const s = await ort.InferenceSession.create(encodeModel(m), {
        logSeverityLevel: 4,
        graphOptimizationLevel: 'disabled',
      });
      try {
        const out = await s.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4, 1, 1]) });
        const b = out.y?.dims[1] ?? 0;
        return b === 8 || b === 16 ? b : 0;
      } finally {
        await s.release();
      }
    } catch {
      return 0;
    }
  })();
  return nchwcProbe;
}
