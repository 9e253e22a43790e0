// ModelProto bytes → IR. The only place besides encode.ts that knows protobuf.
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  type AttributeProto,
  AttributeProto_AttributeType as AT,
  AttributeProtoSchema,
  FunctionProtoSchema,
  type GraphProto,
  ModelProtoSchema,
  SparseTensorProtoSchema,
  TensorAnnotationSchema,
  type TensorProto,
  TensorProto_DataLocation,
  TrainingInfoProtoSchema,
  DeviceConfigurationProtoSchema,
  type TypeProto,
  TypeProtoSchema,
} from 'onnx-buf';
import { EdgefitError, ModelFormatError, UnsupportedError } from '../errors.js';
import { type DType, dtypeByteLength, dtypeFromCode } from '../ir/dtype.js';
import {
  type Attr,
  type Dim,
  Graph,
  Model,
  type Node,
  normDomain,
  type Value,
  type ValueType,
} from '../ir/graph.js';
import { Tensor, numelOf } from '../ir/tensor.js';
import { ExternalReader, parseExternalEntries, resolveExternalPath } from './external.js';

export interface DecodeOptions {
  /** The file the bytes came from (for messages). */
  file?: string;
  /** Folder external data locations are relative to. Without it, external tensors are an error. */
  baseDir?: string;
}

interface Ctx {
  file: string;
  baseDir: string | undefined;
  reader: ExternalReader;
}

const utf8 = new TextDecoder('utf-8');

/** Decode a serialized ModelProto. Every failure is an EdgefitError naming the file. */
export function decodeModel(bytes: Uint8Array, opts: DecodeOptions = {}): Model {
  const file = opts.file ?? '<bytes>';
  const ctx: Ctx = { file, baseDir: opts.baseDir, reader: new ExternalReader() };
  try {
    let proto;
    try {
      proto = fromBinary(ModelProtoSchema, bytes);
    } catch (e) {
      throw new ModelFormatError('protobuf', `${file} is not a valid ONNX model: ${(e as Error).message}`, {
        file,
      });
    }
    if (!proto.graph)
      throw new ModelFormatError('no-graph', `${file} is not an ONNX model: it has no graph`, { file });
    const m = new Model();
    m.irVersion = toNum(proto.irVersion);
    for (const o of proto.opsetImport) m.opsetImports.set(normDomain(o.domain), toNum(o.version));
    m.producerName = proto.producerName;
    m.producerVersion = proto.producerVersion;
    m.domain = proto.domain;
    m.modelVersion = toNum(proto.modelVersion);
    m.docString = proto.docString;
    m.metadataProps = proto.metadataProps.map((p) => [p.key, p.value]);
    m.opaque = {
      functions: proto.functions.map((f) => toBinary(FunctionProtoSchema, f)),
      trainingInfo: proto.trainingInfo.map((t) => toBinary(TrainingInfoProtoSchema, t)),
      configuration: proto.configuration.map((c) => toBinary(DeviceConfigurationProtoSchema, c)),
    };
    m.graph = decodeGraph(proto.graph, null, ctx);
    return m;
  } catch (e) {
    if (e instanceof EdgefitError) {
      if (!e.subject.file) e.subject.file = file;
      throw e;
    }
    throw new ModelFormatError(
      'decode',
      `Cannot decode ${file}: ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  } finally {
    ctx.reader.close();
  }
}

function toNum(b: bigint): number {
  return Number(b);
}

function decodeGraph(gp: GraphProto, parent: Graph | null, ctx: Ctx): Graph {
  const g = new Graph(gp.name, parent);
  g.docString = gp.docString;
  g.opaque = {
    sparseInitializers: gp.sparseInitializer.map((s) => toBinary(SparseTensorProtoSchema, s)),
    quantizationAnnotation: gp.quantizationAnnotation.map((q) => toBinary(TensorAnnotationSchema, q)),
    metadata: gp.metadataProps.map((p) => [p.key, p.value]),
  };
  const scope = new Map<string, Value>();
  const define = (v: Value) => {
    if (!scope.has(v.name)) scope.set(v.name, v);
  };

  for (const vi of gp.input) {
    const v = g.newValue(vi.name, decodeType(vi.type, vi.name, ctx), false);
    v.docString = vi.docString;
    g.inputs.push(v);
    define(v);
  }
  for (const tp of gp.initializer) {
    const t = decodeTensor(tp, ctx);
    const existing = g.inputs.find((i) => i.name === tp.name);
    if (existing && !existing.const) {
      existing.const = t;
      g.initializers.set(tp.name, existing);
    } else {
      const v = g.newValue(tp.name, { kind: 'tensor', dtype: t.dtype, shape: [...t.dims] }, false);
      v.const = t;
      if (!g.initializers.has(tp.name)) g.initializers.set(tp.name, v);
      define(v);
    }
  }
  // pass 1: nodes and their outputs
  const pending: { node: Node; inputs: string[]; attrs: AttributeProto[] }[] = [];
  for (const np of gp.node) {
    const node = g.addNode({
      opType: np.opType,
      domain: normDomain(np.domain),
      name: np.name,
      outputs: [],
    });
    node.docString = np.docString;
    node.metadata = np.metadataProps.map((p) => [p.key, p.value]);
    for (const o of np.output) {
      if (o === '') g.attachOutput(node, null);
      else {
        const v = g.newValue(o, undefined, false);
        g.attachOutput(node, v);
        define(v);
      }
    }
    pending.push({ node, inputs: np.input, attrs: np.attribute });
  }
  // value_info: types of intermediate values
  for (const vi of gp.valueInfo) {
    const v = scope.get(vi.name);
    if (v && !v.type) {
      v.type = decodeType(vi.type, vi.name, ctx);
      v.docString = vi.docString;
    }
  }
  // pass 2: resolve inputs (this scope, then enclosing ones) and attributes (subgraphs see this scope)
  const resolveName = (name: string): Value => {
    const local = scope.get(name);
    if (local) return local;
    for (let p = g.parent; p; p = p.parent) {
      const v = (p as GraphWithScope).__scope?.get(name);
      if (v) return v;
    }
    // dangling: a value nobody defines; kept so that `verify` can report it
    return g.newValue(name, undefined, false);
  };
  (g as GraphWithScope).__scope = scope;
  for (const { node, inputs, attrs } of pending) {
    for (const name of inputs) node.addInput(name === '' ? null : resolveName(name));
    for (const ap of attrs) node.attrs.set(ap.name, decodeAttr(ap, g, ctx, node));
  }
  delete (g as GraphWithScope).__scope;

  g.outputs = gp.output.map((vi) => {
    const v = resolveName(vi.name);
    const t = decodeType(vi.type, vi.name, ctx);
    if (t) v.type = t;
    if (vi.docString) v.docString = vi.docString;
    return v;
  });
  return g;
}

type GraphWithScope = Graph & { __scope?: Map<string, Value> };

export function decodeType(
  tp: TypeProto | undefined,
  name: string,
  ctx: { file: string },
): ValueType | undefined {
  if (!tp || tp.value.case === undefined) return undefined;
  if (tp.value.case !== 'tensorType') return { kind: 'opaque', proto: toBinary(TypeProtoSchema, tp) };
  const tt = tp.value.value;
  const dtype = dtypeFromCode(tt.elemType);
  if (!dtype) {
    if (tt.elemType === 0) return { kind: 'opaque', proto: toBinary(TypeProtoSchema, tp) };
    throw new UnsupportedError(
      'dtype',
      `Value "${name}" in ${ctx.file} has unknown element type ${tt.elemType}`,
      { value: name, file: ctx.file },
    );
  }
  let shape: Dim[] | null = null;
  if (tt.shape) {
    shape = tt.shape.dim.map((d): Dim => {
      if (d.value.case === 'dimValue') return Number(d.value.value);
      if (d.value.case === 'dimParam') return d.value.value;
      return null;
    });
  }
  return { kind: 'tensor', dtype, shape };
}

export function decodeTensor(tp: TensorProto, ctx: Ctx): Tensor {
  const name = tp.name;
  const subject = { file: ctx.file, value: name };
  const dtype = dtypeFromCode(tp.dataType);
  if (!dtype)
    throw new ModelFormatError(
      'dtype',
      `Tensor "${name}" in ${ctx.file} has unknown data type ${tp.dataType}`,
      subject,
    );
  if (tp.segment)
    throw new UnsupportedError(
      'segment',
      `Tensor "${name}" in ${ctx.file} is segmented, which edgefit does not read`,
      subject,
    );
  const dims = tp.dims.map((d) => {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER))
      throw new ModelFormatError('dims', `Tensor "${name}" in ${ctx.file} has dimension ${d}`, subject);
    return Number(d);
  });
  const numel = numelOf(dims);
  if (!Number.isSafeInteger(numel) || numel > 2 ** 34)
    throw new ModelFormatError(
      'dims',
      `Tensor "${name}" in ${ctx.file} has dims [${dims}]: too many elements`,
      subject,
    );
  const meta = { name, docString: tp.docString };

  if (tp.dataLocation === TensorProto_DataLocation.EXTERNAL) {
    const ref = parseExternalEntries(tp.externalData, name, ctx.file);
    if (ctx.baseDir === undefined)
      throw new ModelFormatError(
        'external-data',
        `Tensor "${name}" in ${ctx.file} is stored in an external file, but the model was given as bytes without a folder`,
        subject,
      );
    if (dtype === 'string')
      throw new UnsupportedError(
        'external-string',
        `String tensor "${name}" in ${ctx.file} is stored externally`,
        subject,
      );
    const path = resolveExternalPath(ctx.baseDir, ref.location, name, ctx.file);
    const expected = dtypeByteLength(dtype, numel);
    const bytes = ctx.reader.read(path, ref.offset, ref.length, name, ctx.file, expected);
    return new Tensor(dtype, dims, bytes, {
      ...meta,
      external: { location: ref.location, offset: ref.offset, length: expected },
    });
  }
  if (dtype === 'string')
    return new Tensor(dtype, dims, new Uint8Array(0), { ...meta, strings: tp.stringData });
  if (tp.rawData.byteLength > 0 || numel === 0) {
    const expected = dtypeByteLength(dtype, numel);
    if (tp.rawData.byteLength !== expected)
      throw new ModelFormatError(
        'raw-size',
        `Tensor "${name}" in ${ctx.file} has ${tp.rawData.byteLength} bytes of raw data but dtype ${dtype} and dims [${dims}] need ${expected}`,
        subject,
      );
    return new Tensor(dtype, dims, tp.rawData, meta);
  }
  return new Tensor(dtype, dims, fromTypedFields(tp, dtype, numel, ctx), meta);
}

/** Convert the typed repeated fields (float_data, int32_data, …) to raw little-endian bytes. */
function fromTypedFields(tp: TensorProto, dtype: DType, numel: number, ctx: Ctx): Uint8Array {
  const name = tp.name;
  const bad = (field: string, got: number, want: number) =>
    new ModelFormatError(
      'typed-size',
      `Tensor "${name}" in ${ctx.file} has ${got} values in ${field} but dims need ${want}`,
      {
        file: ctx.file,
        value: name,
      },
    );
  // check the field's length before allocating anything (a corrupt file may claim huge dims)
  const [field, have, want] = typedFieldCount(tp, dtype, numel);
  if (have !== want) throw bad(field, have, want);
  const out = new Uint8Array(dtypeByteLength(dtype, numel));
  const dv = new DataView(out.buffer);
  switch (dtype) {
    case 'float32':
    case 'complex64': {
      tp.floatData.forEach((v, i) => dv.setFloat32(i * 4, v, true));
      return out;
    }
    case 'float64':
    case 'complex128': {
      tp.doubleData.forEach((v, i) => dv.setFloat64(i * 8, v, true));
      return out;
    }
    case 'int64':
      tp.int64Data.forEach((v, i) => dv.setBigInt64(i * 8, v, true));
      return out;
    case 'uint64':
    case 'uint32':
      tp.uint64Data.forEach((v, i) =>
        dtype === 'uint64' ? dv.setBigUint64(i * 8, v, true) : dv.setUint32(i * 4, Number(v), true),
      );
      return out;
    case 'int32':
      tp.int32Data.forEach((v, i) => dv.setInt32(i * 4, v, true));
      return out;
    case 'int16':
    case 'uint16':
    case 'float16':
    case 'bfloat16':
      tp.int32Data.forEach((v, i) => dv.setUint16(i * 2, v & 0xffff, true));
      return out;
    case 'int8':
    case 'uint8':
    case 'bool':
    case 'float8e4m3fn':
    case 'float8e4m3fnuz':
    case 'float8e5m2':
    case 'float8e5m2fnuz':
    case 'float8e8m0':
      tp.int32Data.forEach((v, i) => (out[i] = v & 0xff));
      return out;
    case 'int4':
    case 'uint4':
    case 'float4e2m1':
    case 'int2':
    case 'uint2':
      // packed: each int32_data entry holds one byte of packed elements
      tp.int32Data.forEach((v, i) => (out[i] = v & 0xff));
      return out;
    case 'string':
      return out;
  }
}

function typedFieldCount(tp: TensorProto, dtype: DType, numel: number): [string, number, number] {
  switch (dtype) {
    case 'float32':
      return ['float_data', tp.floatData.length, numel];
    case 'complex64':
      return ['float_data', tp.floatData.length, numel * 2];
    case 'float64':
      return ['double_data', tp.doubleData.length, numel];
    case 'complex128':
      return ['double_data', tp.doubleData.length, numel * 2];
    case 'int64':
      return ['int64_data', tp.int64Data.length, numel];
    case 'uint64':
    case 'uint32':
      return ['uint64_data', tp.uint64Data.length, numel];
    case 'int4':
    case 'uint4':
    case 'float4e2m1':
    case 'int2':
    case 'uint2':
      return ['int32_data', tp.int32Data.length, dtypeByteLength(dtype, numel)];
    case 'string':
      return ['string_data', tp.stringData.length, numel];
    default:
      return ['int32_data', tp.int32Data.length, numel];
  }
}

function decodeAttr(ap: AttributeProto, g: Graph, ctx: Ctx, node: Node): Attr {
  if (ap.refAttrName) return { type: 'opaque', value: toBinary(AttributeProtoSchema, ap) };
  let type = ap.type;
  if (type === AT.UNDEFINED) type = guessAttrType(ap);
  switch (type) {
    case AT.FLOAT:
      return { type: 'float', value: ap.f };
    case AT.INT:
      return { type: 'int', value: Number(ap.i) };
    case AT.STRING:
      return { type: 'string', value: utf8.decode(ap.s) };
    case AT.TENSOR:
      if (!ap.t)
        throw new ModelFormatError(
          'attr',
          `Attribute "${ap.name}" of node "${node.label}" in ${ctx.file} is a tensor attribute without a tensor`,
          { file: ctx.file, node: node.label },
        );
      return { type: 'tensor', value: decodeTensor(ap.t, ctx) };
    case AT.GRAPH:
      if (!ap.g)
        throw new ModelFormatError(
          'attr',
          `Attribute "${ap.name}" of node "${node.label}" in ${ctx.file} is a graph attribute without a graph`,
          { file: ctx.file, node: node.label },
        );
      return { type: 'graph', value: decodeGraph(ap.g, g, ctx) };
    case AT.FLOATS:
      return { type: 'floats', value: [...ap.floats] };
    case AT.INTS:
      return { type: 'ints', value: ap.ints.map(Number) };
    case AT.STRINGS:
      return { type: 'strings', value: ap.strings.map((s) => utf8.decode(s)) };
    case AT.TENSORS:
      return { type: 'tensors', value: ap.tensors.map((t) => decodeTensor(t, ctx)) };
    case AT.GRAPHS:
      return { type: 'graphs', value: ap.graphs.map((sg) => decodeGraph(sg, g, ctx)) };
    default:
      return { type: 'opaque', value: toBinary(AttributeProtoSchema, ap) };
  }
}

function guessAttrType(ap: AttributeProto): AT {
  if (ap.ints.length) return AT.INTS;
  if (ap.floats.length) return AT.FLOATS;
  if (ap.strings.length) return AT.STRINGS;
  if (ap.tensors.length) return AT.TENSORS;
  if (ap.graphs.length) return AT.GRAPHS;
  if (ap.t) return AT.TENSOR;
  if (ap.g) return AT.GRAPH;
  if (ap.s.byteLength) return AT.STRING;
  if (ap.i !== 0n) return AT.INT;
  return AT.FLOAT;
}
