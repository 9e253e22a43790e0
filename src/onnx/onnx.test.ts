import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  readdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  ModelProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  StringStringEntryProtoSchema,
} from 'onnx-buf';
import { decodeModel, encodeModel, loadModel, saveModel } from './index.js';
import { InputError } from '../errors.js';
import { Graph, Model, allGraphs, Tensor, type DType, tensorType, dtypeByteLength } from '../ir/index.js';
import { createSession, type HostTensor } from '../runtime/index.js';
import {
  bitEqual,
  packageModels,
  prng,
  randomFloat,
  readIo,
  torchFixtures,
  maxAbsDiff,
} from '../testing/fixtures.js';
import { buildModel, MODEL_NAMES } from '../models/index.js';
import { fuzzDecoder } from '../testing/fuzz.js';

function countNodes(m: Model): number {
  let n = 0;
  for (const g of allGraphs(m.graph)) n += g.nodes.length;
  return n;
}

async function runBytes(bytes: Uint8Array | string, feeds: Record<string, HostTensor>) {
  const s = await createSession(bytes, { threads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

async function assertRoundTrip(path: string, feedsFor: (m: Model) => Record<string, HostTensor>) {
  const original = readFileSync(path);
  const m1 = loadModel(path);
  const feeds = feedsFor(m1);
  const b1 = encodeModel(m1);
  const m2 = decodeModel(b1);
  const b2 = encodeModel(m2);
  // decode → encode → decode gives an equal model (encoding is canonical, so equal bytes mean equal models)
  assert.ok(Buffer.compare(Buffer.from(b1), Buffer.from(b2)) === 0, `${path}: re-encoding is not stable`);
  assert.equal(countNodes(m2), countNodes(m1));
  assert.deepEqual([...m2.graph.initializers.keys()], [...m1.graph.initializers.keys()]);
  for (const [k, v] of m1.graph.initializers)
    assert.ok(v.const!.equals(m2.graph.initializers.get(k)!.const!), `initializer ${k}`);
  // ORT gives bit-identical outputs for the original file and our re-encoded bytes
  const a = await runBytes(new Uint8Array(original), feeds);
  const b = await runBytes(b1, feeds);
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
  for (const k of Object.keys(a)) {
    assert.deepEqual(b[k]!.dims, a[k]!.dims, `${path} output ${k} dims`);
    assert.ok(bitEqual(a[k]!.data, b[k]!.data), `${path} output ${k} differs after round trip`);
  }
  return { m1, a };
}

describe('round trip', () => {
  for (const f of torchFixtures()) {
    test(`torch-exported ${f.name}: exact file round trip and bit-identical ORT outputs`, async () => {
      const io = readIo(f.io);
      const { a } = await assertRoundTrip(f.path, () => io.inputs);
      // and ORT reproduces torch's numbers on the file
      for (const [k, want] of Object.entries(io.outputs))
        assert.ok(maxAbsDiff(a[k]!.data, want.data) < 1e-4, `${f.name} ${k} vs torch`);
    });
  }
  for (const p of packageModels()) {
    test(`npm-shipped ${p.name}: round trip, bit-identical ORT outputs`, async () => {
      const { m1 } = await assertRoundTrip(p.path, p.feeds);
      if (p.name.startsWith('silero')) {
        // the If subgraphs survive
        const ifs = m1.graph.nodes.filter((n) => n.opType === 'If');
        assert.ok(ifs.length > 0, 'Silero VAD has If nodes');
        const sub = ifs.flatMap((n) => n.subgraphs());
        assert.ok(sub.length >= 2 && sub.every((g) => g.nodes.length > 0));
        const m2 = decodeModel(encodeModel(m1));
        const sub2 = m2.graph.nodes.filter((n) => n.opType === 'If').flatMap((n) => n.subgraphs());
        assert.deepEqual(
          sub2.map((g) => g.nodes.map((n) => n.opType).join(',')),
          sub.map((g) => g.nodes.map((n) => n.opType).join(',')),
        );
        // subgraph nodes that read outer-scope values point at the outer Value objects
        const outerReads = sub.flatMap((g) =>
          g.nodes.flatMap((n) => n.inputs.filter((v) => v && v.graph !== g)),
        );
        assert.ok(outerReads.length > 0, 'some subgraph node reads an outer value');
      }
    });
  }
});

describe('round trip of the SPEC models built by edgefit', () => {
  for (const name of MODEL_NAMES) {
    test(`${name}: save → load is exact and ORT outputs are bit-identical`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'edgefit-spec-'));
      try {
        const m = buildModel(name, { seed: 5 });
        const path = join(dir, `${name}.onnx`);
        saveModel(m, path);
        const feeds = { input: randomFloat([4, 1, 28, 28], 9) };
        await assertRoundTrip(path, () => feeds);
        const direct = await runBytes(encodeModel(m), feeds);
        const fromFile = await runBytes(path, feeds);
        assert.ok(bitEqual(direct.logits!.data, fromFile.logits!.data));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('external data', () => {
  test('convert to external data: aligned offsets, identical ORT outputs, reload equals', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgefit-ext-'));
    try {
      const f = torchFixtures().find((x) => x.name === 'cnn-s_op13')!;
      const io = readIo(f.io);
      const m = loadModel(f.path);
      for (const align of [4096, 64]) {
        const out = join(dir, `m${align}.onnx`);
        const r = saveModel(m, out, { externalData: true, align });
        assert.ok(r.dataBytes > 1_600_000);
        assert.ok(r.modelBytes < 10_000, `model file is small: ${r.modelBytes}`);
        const proto = fromBinary(ModelProtoSchema, readFileSync(out));
        const ext = proto.graph!.initializer.filter(
          (t) => t.dataLocation === TensorProto_DataLocation.EXTERNAL,
        );
        assert.ok(ext.length >= 4);
        for (const t of ext) {
          const off = Number(t.externalData.find((e) => e.key === 'offset')!.value);
          assert.equal(off % align, 0, `${t.name} offset ${off} aligned to ${align}`);
          assert.match(
            t.externalData.find((e) => e.key === 'location')!.value,
            new RegExp(`^m${align}\\.onnx\\.[0-9a-f]{8}\\.data$`),
          );
        }
        const a = await runBytes(f.path, io.inputs);
        const b = await runBytes(out, io.inputs);
        for (const k of Object.keys(a)) assert.ok(bitEqual(a[k]!.data, b[k]!.data));
        const back = loadModel(out);
        assert.ok(
          Buffer.compare(Buffer.from(encodeModel(back)), Buffer.from(encodeModel(m))) === 0,
          'reloaded model equals the original',
        );
      }
      // nothing half-written is left behind
      assert.deepEqual(
        readdirSync(dir).filter((x) => x.endsWith('.tmp')),
        [],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  function modelWithExternal(location: string): Uint8Array {
    const g = new Graph('g');
    const x = g.addInput('x', tensorType('float32', [4]));
    const w = g.addInitializer('w', Tensor.from('float32', [4], [1, 2, 3, 4]));
    const n = g.addNode({ opType: 'Add', inputs: [x, w], outputs: ['y'] });
    g.outputs.push(n.output());
    const m = new Model(g);
    m.opsetImports.set('', 17);
    const proto = fromBinary(ModelProtoSchema, encodeModel(m));
    const t = proto.graph!.initializer[0]!;
    t.rawData = new Uint8Array(0);
    t.dataLocation = TensorProto_DataLocation.EXTERNAL;
    t.externalData = [
      create(StringStringEntryProtoSchema, { key: 'location', value: location }),
      create(StringStringEntryProtoSchema, { key: 'length', value: '16' }),
    ];
    return toBinary(ModelProtoSchema, proto);
  }

  test('path traversal and absolute locations are refused with InputError', () => {
    const root = mkdtempSync(join(tmpdir(), 'edgefit-trav-'));
    try {
      const inner = join(root, 'models');
      const outside = join(root, 'secret.bin');
      writeFileSync(outside, new Uint8Array(16));
      writeFileSync(join(root, 'placeholder'), '');
      mkdirSync(inner, { recursive: true });
      symlinkSync(outside, join(inner, 'link.bin'));
      writeFileSync(join(inner, 'ok.bin'), new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer));
      for (const loc of ['../secret.bin', 'a/../../secret.bin', outside, 'link.bin', '..\\secret.bin']) {
        const file = join(inner, 'm.onnx');
        writeFileSync(file, modelWithExternal(loc));
        assert.throws(
          () => loadModel(file),
          (e: unknown) =>
            e instanceof InputError &&
            /outside|absolute|does not exist/.test(e.message) &&
            e.message.includes('"w"'),
          `location ${loc} must be refused`,
        );
      }
      const file = join(inner, 'good.onnx');
      writeFileSync(file, modelWithExternal('ok.bin'));
      const m = loadModel(file);
      assert.deepEqual(
        Array.from(m.graph.initializers.get('w')!.const!.typed() as Float32Array),
        [1, 2, 3, 4],
      );
      // bytes without a folder cannot resolve external data
      assert.throws(() => decodeModel(modelWithExternal('ok.bin')), InputError);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('tensor dtypes', () => {
  test('every dtype round-trips bit-exactly (FLOAT16, BFLOAT16, INT4/UINT4, FLOAT8, INT2, strings)', () => {
    const g = new Graph('dtypes');
    const r = prng(3);
    const cases: [DType, number[]][] = [
      ['float32', [3, 2]],
      ['float16', [5]],
      ['bfloat16', [4]],
      ['float64', [2]],
      ['int8', [7]],
      ['uint8', [7]],
      ['int16', [3]],
      ['uint16', [3]],
      ['int32', [3]],
      ['uint32', [3]],
      ['int64', [2, 2]],
      ['uint64', [2]],
      ['bool', [5]],
      ['int4', [7]],
      ['uint4', [8]],
      ['float8e4m3fn', [6]],
      ['float8e5m2', [6]],
      ['float8e4m3fnuz', [3]],
      ['float8e5m2fnuz', [3]],
      ['float4e2m1', [5]],
      ['int2', [9]],
      ['uint2', [4]],
      ['complex64', [2]],
    ];
    for (const [dt, dims] of cases) {
      const numel = dims.reduce((a, b) => a * b, 1);
      const bytes = new Uint8Array(dtypeByteLength(dt, numel));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
      g.addInitializer(`t_${dt}`, new Tensor(dt, dims, bytes));
    }
    g.addInitializer(
      't_string',
      new Tensor('string', [2], new Uint8Array(0), {
        strings: [new TextEncoder().encode('ab'), new Uint8Array([0xce, 0xbb])],
      }),
    );
    const m = new Model(g);
    m.opsetImports.set('', 21);
    const back = decodeModel(encodeModel(m));
    for (const [k, v] of g.initializers)
      assert.ok(v.const!.equals(back.graph.initializers.get(k)!.const!), k);
    // int4 decoding: two's complement nibbles, low nibble first
    const i4 = new Tensor('int4', [4], new Uint8Array([0x7f, 0x18]));
    assert.deepEqual(Array.from(i4.toFloat64()), [-1, 7, -8, 1]);
  });

  test('typed repeated fields (float_data, int64_data, int32_data for float16) decode to the same values', () => {
    const g = new Graph('typed');
    g.addInitializer('a', Tensor.from('float32', [3], [1.5, -2, 3.25]));
    const m = new Model(g);
    m.opsetImports.set('', 17);
    const proto = fromBinary(ModelProtoSchema, encodeModel(m));
    proto.graph!.initializer = [
      create(TensorProtoSchema, { name: 'f', dataType: 1, dims: [3n], floatData: [1.5, -2, 3.25] }),
      create(TensorProtoSchema, {
        name: 'i',
        dataType: 7,
        dims: [2],
        int64Data: [-(2n ** 62n), 5n],
      } as never),
      create(TensorProtoSchema, { name: 'h', dataType: 10, dims: [2n], int32Data: [0x3c00, 0xc000] }),
      create(TensorProtoSchema, { name: 'd', dataType: 11, dims: [1n], doubleData: [Math.PI] }),
    ];
    proto.graph!.initializer[1]!.dims = [2n];
    const back = decodeModel(toBinary(ModelProtoSchema, proto));
    const get = (n: string) => back.graph.initializers.get(n)!.const!;
    assert.deepEqual(Array.from(get('f').typed() as Float32Array), [1.5, -2, 3.25]);
    assert.deepEqual(Array.from(get('i').typed() as BigInt64Array), [-(2n ** 62n), 5n]);
    assert.deepEqual(Array.from(get('h').toFloat64()), [1, -2]);
    assert.deepEqual(Array.from(get('d').typed() as Float64Array), [Math.PI]);
    // a wrong count names the tensor
    proto.graph!.initializer[0]!.floatData = [1];
    assert.throws(
      () => decodeModel(toBinary(ModelProtoSchema, proto), { file: 'bad.onnx' }),
      (e: unknown) =>
        e instanceof InputError && /"f"/.test((e as Error).message) && /bad\.onnx/.test((e as Error).message),
    );
  });

  test('int64 attributes at INT64_MAX survive a round trip', () => {
    const g = new Graph('attrs');
    const x = g.addInput('x', tensorType('float32', [4]));
    const n = g.addNode({
      opType: 'Slice',
      inputs: [x],
      outputs: ['y'],
      attrs: { ends: { type: 'ints', value: [2 ** 63] }, starts: { type: 'ints', value: [-(2 ** 63)] } },
    });
    g.outputs.push(n.output());
    const m = new Model(g);
    m.opsetImports.set('', 9);
    const proto = fromBinary(ModelProtoSchema, encodeModel(m));
    assert.deepEqual(proto.graph!.node[0]!.attribute.find((a) => a.name === 'ends')!.ints, [
      (1n << 63n) - 1n,
    ]);
    assert.deepEqual(proto.graph!.node[0]!.attribute.find((a) => a.name === 'starts')!.ints, [-(1n << 63n)]);
  });
});

describe('decoder fuzz', () => {
  test('thousands of mutated models give only typed errors naming the file', () => {
    // 3,000 here (every npm test); `npm run bench -- fuzz` runs 10,000 (EDGEFIT_FUZZ_N to change either)
    const N = Number(process.env.EDGEFIT_FUZZ_N ?? 3000);
    const r = fuzzDecoder(N, 20261125, ['misc_op13', 'convt_op13', 'mobile_op13']);
    assert.deepEqual(r.violations.slice(0, 5), []);
    assert.equal(r.decoded + r.rejected, N);
    assert.ok(r.rejected > N / 10, `a good share of mutations are rejected (${r.rejected})`);
  });

  test('not an ONNX file at all', () => {
    assert.throws(
      () => decodeModel(new TextEncoder().encode('hello world, not a model'), { file: 'x.onnx' }),
      InputError,
    );
    assert.throws(
      () => loadModel('/nonexistent/model.onnx'),
      (e: unknown) => e instanceof InputError && /does not exist/.test((e as Error).message),
    );
  });
});
