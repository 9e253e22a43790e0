// Element types of ONNX tensors, named as numpy names them. The numeric codes are ONNX's TensorProto.DataType.

export const DTYPES = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  complex64: 14,
  complex128: 15,
  bfloat16: 16,
  float8e4m3fn: 17,
  float8e4m3fnuz: 18,
  float8e5m2: 19,
  float8e5m2fnuz: 20,
  uint4: 21,
  int4: 22,
  float4e2m1: 23,
  float8e8m0: 24,
  uint2: 25,
  int2: 26,
} as const;

export type DType = keyof typeof DTYPES;

const BY_CODE = new Map<number, DType>(Object.entries(DTYPES).map(([k, v]) => [v, k as DType]));

export function dtypeFromCode(code: number): DType | undefined {
  return BY_CODE.get(code);
}

export function dtypeCode(d: DType): number {
  return DTYPES[d];
}

/** Bits one element occupies in raw (packed) storage. 0 for string. */
export function dtypeBits(d: DType): number {
  switch (d) {
    case 'string':
      return 0;
    case 'bool':
    case 'uint8':
    case 'int8':
    case 'float8e4m3fn':
    case 'float8e4m3fnuz':
    case 'float8e5m2':
    case 'float8e5m2fnuz':
    case 'float8e8m0':
      return 8;
    case 'uint16':
    case 'int16':
    case 'float16':
    case 'bfloat16':
      return 16;
    case 'float32':
    case 'int32':
    case 'uint32':
      return 32;
    case 'float64':
    case 'int64':
    case 'uint64':
    case 'complex64':
      return 64;
    case 'complex128':
      return 128;
    case 'uint4':
    case 'int4':
    case 'float4e2m1':
      return 4;
    case 'uint2':
    case 'int2':
      return 2;
  }
}

/** Bytes needed to store `numel` elements (sub-byte types are packed, rounded up). */
export function dtypeByteLength(d: DType, numel: number): number {
  return Math.ceil((dtypeBits(d) * numel) / 8);
}

export const FLOAT_DTYPES: ReadonlySet<DType> = new Set<DType>([
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'float8e4m3fn',
  'float8e4m3fnuz',
  'float8e5m2',
  'float8e5m2fnuz',
  'float4e2m1',
  'float8e8m0',
]);

export function isFloat(d: DType): boolean {
  return FLOAT_DTYPES.has(d);
}

export function isInteger(d: DType): boolean {
  return !isFloat(d) && d !== 'string' && d !== 'bool' && d !== 'complex64' && d !== 'complex128';
}
