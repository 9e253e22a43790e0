// IR → ModelProto bytes. Tensor data is written as raw_data (or to an external data file, at aligned offsets).
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  type AttributeProto,
  AttributeProto_AttributeType as AT,
  AttributeProtoSchema,
  DeviceConfigurationProtoSchema,
  FunctionProtoSchema,
  type GraphProto,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  SparseTensorProtoSchema,
  StringStringEntryProtoSchema,
  TensorAnnotationSchema,
  type TensorProto,
  TensorProto_DataLocation,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TrainingInfoProtoSchema,
  type TypeProto,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from 'onnx-buf';
import { dtypeCode } from '../ir/dtype.js';
import type { Attr, Graph, Model, Value, ValueType } from '../ir/graph.js';
import type { Tensor } from '../ir/tensor.js';

export interface ExternalDataOptions {
  /** File name of the data file, relative to the model's folder. */
  location: string;
  /** Alignment of every tensor's offset in the data file (default 4096, so ORT can map tensors). */
  align?: number;
  /** Tensors smaller than this many bytes stay inline (default 1024). */
  threshold?: number;
}

export interface EncodedModel {
  model: Uint8Array;
  /** Chunks of the external data file, in order (empty when all data is inline). */
  data: Uint8Array[];
  dataBytes: number;
}

const MAX_I64 = (1n << 63n) - 1n;
const MIN_I64 = -(1n << 63n);
const utf8 = new TextEncoder();

/** int64 attribute values are numbers in the IR; ±2^63 (from INT64_MAX/MIN) are clamped back to int64's range. */
function toI64(n: number): bigint {
  if (n >= 2 ** 63) return MAX_I64;
  if (n <= -(2 ** 63)) return MIN_I64;
  return BigInt(Math.trunc(n));
}

export function encodeModel(m: Model): Uint8Array {
  return encodeModelParts(m).model;
}

export function encodeModelParts(m: Model, ext?: ExternalDataOptions): EncodedModel {
  const writer = ext ? new DataWriter(ext) : undefined;
  const proto = create(ModelProtoSchema, {
    irVersion: BigInt(m.irVersion),
    opsetImport: [...m.opsetImports].map(([domain, version]) =>
      create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }),
    ),
    producerName: m.producerName,
    producerVersion: m.producerVersion,
    domain: m.domain,
    modelVersion: BigInt(m.modelVersion),
    docString: m.docString,
    metadataProps: m.metadataProps.map(([key, value]) =>
      create(StringStringEntryProtoSchema, { key, value }),
    ),
    graph: encodeGraph(m.graph, writer),
    functions: m.opaque.functions.map((b) => fromBinary(FunctionProtoSchema, b)),
    trainingInfo: m.opaque.trainingInfo.map((b) => fromBinary(TrainingInfoProtoSchema, b)),
    configuration: m.opaque.configuration.map((b) => fromBinary(DeviceConfigurationProtoSchema, b)),
  });
  return {
    model: toBinary(ModelProtoSchema, proto),
    data: writer?.chunks ?? [],
    dataBytes: writer?.size ?? 0,
  };
}

class DataWriter {
  chunks: Uint8Array[] = [];
  size = 0;
  constructor(readonly opts: ExternalDataOptions) {}
  /** Append bytes at the next aligned offset; returns the offset. */
  add(bytes: Uint8Array): number {
    const align = this.opts.align ?? 4096;
    const pad = align > 1 ? (align - (this.size % align)) % align : 0;
    if (pad) {
      this.chunks.push(new Uint8Array(pad));
      this.size += pad;
    }
    const off = this.size;
    this.chunks.push(bytes);
    this.size += bytes.byteLength;
    return off;
  }
}

function encodeGraph(g: Graph, writer: DataWriter | undefined): GraphProto {
  const inputSet = new Set(g.inputs);
  const outputSet = new Set(g.outputs);
  const valueInfo: ValueInfoProto[] = [];
  const seen = new Set<Value>();
  for (const n of g.nodes)
    for (const o of n.outputs)
      if (o && o.type && !outputSet.has(o) && !inputSet.has(o) && !seen.has(o)) {
        seen.add(o);
        valueInfo.push(encodeValueInfo(o));
      }
  return create(GraphProtoSchema, {
    name: g.name,
    docString: g.docString,
    input: g.inputs.map(encodeValueInfo),
    output: g.outputs.map(encodeValueInfo),
    valueInfo,
    initializer: [...g.initializers.values()].map((v) => encodeTensor(v.const!, v.name, writer)),
    node: g.nodes.map((n) =>
      create(NodeProtoSchema, {
        name: n.name,
        opType: n.opType,
        domain: n.domain,
        docString: n.docString,
        input: n.inputs.map((v) => (v ? v.name : '')),
        output: n.outputs.map((v) => (v ? v.name : '')),
        attribute: [...n.attrs].map(([name, a]) => encodeAttr(name, a, writer)),
        metadataProps: n.metadata.map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
      }),
    ),
    sparseInitializer: g.opaque.sparseInitializers.map((b) => fromBinary(SparseTensorProtoSchema, b)),
    quantizationAnnotation: g.opaque.quantizationAnnotation.map((b) => fromBinary(TensorAnnotationSchema, b)),
    metadataProps: g.opaque.metadata.map(([key, value]) =>
      create(StringStringEntryProtoSchema, { key, value }),
    ),
  });
}

function encodeValueInfo(v: Value): ValueInfoProto {
  return create(ValueInfoProtoSchema, { name: v.name, type: encodeType(v.type), docString: v.docString });
}

export function encodeType(t: ValueType | undefined): TypeProto | undefined {
  if (!t) return undefined;
  if (t.kind === 'opaque') return fromBinary(TypeProtoSchema, t.proto);
  return create(TypeProtoSchema, {
    value: {
      case: 'tensorType',
      value: create(TypeProto_TensorSchema, {
        elemType: dtypeCode(t.dtype),
        shape:
          t.shape === null
            ? undefined
            : create(TensorShapeProtoSchema, {
                dim: t.shape.map((d) =>
                  create(TensorShapeProto_DimensionSchema, {
                    value:
                      typeof d === 'number'
                        ? { case: 'dimValue', value: BigInt(d) }
                        : typeof d === 'string'
                          ? { case: 'dimParam', value: d }
                          : { case: undefined },
                  }),
                ),
              }),
      }),
    },
  });
}

export function encodeTensor(t: Tensor, name: string, writer?: DataWriter): TensorProto {
  const base = {
    name,
    docString: t.docString,
    dims: t.dims.map((d) => BigInt(d)),
    dataType: dtypeCode(t.dtype),
  };
  if (t.dtype === 'string')
    return create(TensorProtoSchema, { ...base, stringData: [...t.strings!] as Uint8Array<ArrayBuffer>[] });
  if (writer && t.byteLength >= (writer.opts.threshold ?? 1024)) {
    const offset = writer.add(t.bytes);
    return create(TensorProtoSchema, {
      ...base,
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [
        create(StringStringEntryProtoSchema, { key: 'location', value: writer.opts.location }),
        create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
        create(StringStringEntryProtoSchema, { key: 'length', value: String(t.byteLength) }),
      ],
    });
  }
  return create(TensorProtoSchema, { ...base, rawData: t.bytes as Uint8Array<ArrayBuffer> });
}

function encodeAttr(name: string, a: Attr, writer: DataWriter | undefined): AttributeProto {
  switch (a.type) {
    case 'float':
      return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: a.value });
    case 'int':
      return create(AttributeProtoSchema, { name, type: AT.INT, i: toI64(a.value) });
    case 'string':
      return create(AttributeProtoSchema, { name, type: AT.STRING, s: utf8.encode(a.value) });
    case 'tensor':
      return create(AttributeProtoSchema, { name, type: AT.TENSOR, t: encodeTensor(a.value, a.value.name) });
    case 'graph':
      return create(AttributeProtoSchema, { name, type: AT.GRAPH, g: encodeGraph(a.value, writer) });
    case 'floats':
      return create(AttributeProtoSchema, { name, type: AT.FLOATS, floats: a.value });
    case 'ints':
      return create(AttributeProtoSchema, { name, type: AT.INTS, ints: a.value.map(toI64) });
    case 'strings':
      return create(AttributeProtoSchema, {
        name,
        type: AT.STRINGS,
        strings: a.value.map((s) => utf8.encode(s)),
      });
    case 'tensors':
      return create(AttributeProtoSchema, {
        name,
        type: AT.TENSORS,
        tensors: a.value.map((t) => encodeTensor(t, t.name)),
      });
    case 'graphs':
      return create(AttributeProtoSchema, {
        name,
        type: AT.GRAPHS,
        graphs: a.value.map((g) => encodeGraph(g, writer)),
      });
    case 'opaque': {
      const ap = fromBinary(AttributeProtoSchema, a.value);
      ap.name = name;
      return ap;
    }
  }
}
