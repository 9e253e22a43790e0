import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { A, Model, Tensor } from '../../ir/index.js';
import { runModel } from '../../runtime/index.js';
import { prng } from '../../testing/fixtures.js';
import {
  blockParams,
  dequantizeArray,
  dequantizeBlocks,
  dequantizeWeight,
  packMatMulNBits,
  quantizeArray,
  quantizeBias,
  quantizeBlocksRtn,
  quantizeWeightInt8,
  rangeParams,
  rint,
  sqnr,
  unpackMatMulNBits,
  type QType,
} from './numeric.js';

function randoms(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = prng(seed);
  return Float32Array.from({ length: n }, () => lo + r() * (hi - lo));
}

/** One-node model computing op(x, scale, zp) in ORT. */
async function ortQuantize(
  op: 'QuantizeLinear' | 'DequantizeLinear',
  x: Tensor,
  scale: Tensor,
  zp: Tensor,
  axis?: number,
) {
  const m = new Model();
  m.opsetImports.set('', 19);
  m.irVersion = 9;
  const g = m.graph;
  const xi = g.addInput('x', { kind: 'tensor', dtype: x.dtype, shape: [...x.dims] });
  const n = g.addNode({
    opType: op,
    inputs: [xi, g.addInitializer('s', scale), g.addInitializer('z', zp)],
    outputs: ['y'],
    attrs: axis === undefined ? {} : { axis: A.int(axis) },
  });
  n.output(0).type = {
    kind: 'tensor',
    dtype: op === 'QuantizeLinear' ? zp.dtype : 'float32',
    shape: [...x.dims],
  };
  g.outputs.push(n.output(0));
  const r = await runModel(m, { x: { dtype: x.dtype, dims: x.dims, data: x.typed() } });
  return r.y!.data;
}

describe('quantization arithmetic', () => {
  test('rint rounds half to even like QuantizeLinear', () => {
    assert.deepEqual(
      [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 2.4, -2.6].map(rint),
      [-2, -2, -0, 0, 2, 2, 4, 2, -3],
    );
  });

  test('rangeParams: 0 is exact, the range is covered, symmetric zero points', () => {
    for (const qt of ['uint8', 'int8'] as QType[])
      for (const [lo, hi] of [
        [-1, 3],
        [0.5, 2],
        [-4, -1],
        [0, 0],
      ] as const) {
        const p = rangeParams(lo, hi, qt);
        assert.ok(p.scale > 0);
        const z = dequantizeArray(quantizeArray([0], p), p);
        assert.equal(z[0], 0, `0 exact for [${lo}, ${hi}] ${qt}`);
        for (const v of [Math.min(lo, 0), Math.max(hi, 0)])
          assert.ok(Math.abs(dequantizeArray(quantizeArray([v], p), p)[0]! - v) <= p.scale / 2 + 1e-7);
      }
    assert.equal(rangeParams(-1, 3, 'int8', true).zeroPoint, 0);
    assert.equal(rangeParams(-1, 3, 'uint8', true).zeroPoint, 128);
  });

  test('quantize → dequantize round trip: |x − x̂| ≤ scale/2 inside the range, clipped outside', () => {
    const x = randoms(5000, 1, -3, 5);
    for (const qt of ['uint8', 'int8'] as QType[]) {
      const p = rangeParams(-2, 4, qt);
      const y = dequantizeArray(quantizeArray(x, p), p);
      for (let i = 0; i < x.length; i++) {
        const v = x[i]!;
        const lo = (QT[qt].min - p.zeroPoint) * p.scale;
        const hi = (QT[qt].max - p.zeroPoint) * p.scale;
        const want = Math.min(Math.max(v, lo), hi);
        assert.ok(Math.abs(y[i]! - want) <= p.scale / 2 + 1e-6, `${qt} x=${v} got ${y[i]}`);
      }
    }
  });

  test('our QuantizeLinear / DequantizeLinear give ORT’s codes and values bit for bit (halves included)', async () => {
    const p = rangeParams(-1, 1, 'uint8');
    const x = Float32Array.from([
      ...randoms(997, 2, -1.3, 1.3),
      0.5 * p.scale,
      1.5 * p.scale,
      -2.5 * p.scale,
      0,
    ]);
    for (const qt of ['uint8', 'int8'] as QType[]) {
      const q = rangeParams(-1, 1, qt);
      const ours = quantizeArray(x, q);
      const theirs = await ortQuantize(
        'QuantizeLinear',
        Tensor.from('float32', [x.length], x),
        Tensor.scalar('float32', q.scale),
        Tensor.scalar(qt, q.zeroPoint),
      );
      assert.deepEqual(Array.from(ours), Array.from(theirs as Int8Array), qt);
      const dq = await ortQuantize(
        'DequantizeLinear',
        Tensor.from(qt, [x.length], ours),
        Tensor.scalar('float32', q.scale),
        Tensor.scalar(qt, q.zeroPoint),
      );
      assert.deepEqual(Array.from(dequantizeArray(ours, q)), Array.from(dq as Float32Array));
    }
  });

  test('per-channel symmetric int8 weights: zero point 0, codes in [−127, 127], error ≤ scale[c]/2, ORT agrees', async () => {
    const dims = [6, 3, 3, 3];
    const data = randoms(6 * 27, 3);
    for (let i = 0; i < 27; i++) data[27 * 2 + i]! *= 20; // one channel much larger
    for (let i = 0; i < 27; i++) data[27 * 4 + i] = 0; // one all-zero channel
    const w = Tensor.from('float32', dims, data);
    const q = quantizeWeightInt8(w, 0);
    assert.equal(q.scales.length, 6);
    assert.equal(q.scales[4], 1);
    const back = dequantizeWeight(q);
    for (let i = 0; i < data.length; i++) {
      assert.ok(q.q[i]! >= -127 && q.q[i]! <= 127);
      assert.ok(Math.abs(back[i]! - data[i]!) <= q.scales[Math.floor(i / 27)]! / 2 + 1e-7);
    }
    const ort = await ortQuantize(
      'DequantizeLinear',
      new Tensor('int8', dims, new Uint8Array(q.q.buffer)),
      Tensor.from('float32', [6], q.scales),
      Tensor.from('int8', [6], new Int8Array(6)),
      0,
    );
    assert.deepEqual(Array.from(ort as Float32Array), Array.from(back));
    const pt = quantizeWeightInt8(w, null);
    assert.equal(pt.scales.length, 1);
    assert.ok(pt.scales[0]! > q.scales[0]!, 'per-tensor scale is the largest channel’s');
  });

  test('int32 bias: scale = input scale · weight scale[c], error ≤ scale/2', () => {
    const b = Tensor.from('float32', [4], [0.3, -1.7, 12.5, 0]);
    const ws = Float32Array.from([0.01, 0.02, 0.05, 0.1]);
    const { q, scales } = quantizeBias(b, 0.04, ws);
    for (let i = 0; i < 4; i++) {
      assert.equal(scales[i], Math.fround(0.04 * ws[i]!));
      assert.ok(Math.abs(q[i]! * scales[i]! - b.toFloat64()[i]!) <= scales[i]! / 2 + 1e-9);
    }
  });

  test('SQNR', () => {
    assert.equal(sqnr([1, 2, 3], [1, 2, 3]), Infinity);
    assert.ok(Math.abs(sqnr([1, 1, 1, 1], [1.1, 0.9, 1.1, 0.9]) - 20) < 1e-9);
  });
});

const QT = { uint8: { min: 0, max: 255 }, int8: { min: -128, max: 127 } };

describe('4-bit blocks (MatMulNBits)', () => {
  test('block parameters: symmetric codes around 8, asymmetric cover [min, max]', () => {
    const s = blockParams([-0.7, 0.1, 0.35], 4, true);
    assert.equal(s.zeroPoint, 8);
    assert.ok(Math.abs(s.scale - 0.7 / 8) < 1e-7);
    const a = blockParams([0.2, 0.5, 1.7], 4, false);
    assert.ok(a.zeroPoint >= 0 && a.zeroPoint <= 15);
    assert.ok(Math.abs(a.scale - 1.7 / 15) < 1e-7);
  });

  for (const symmetric of [true, false])
    test(`round to nearest (${symmetric ? 'symmetric' : 'asymmetric'}): |w − ŵ| ≤ scale/2 per block, padding K`, () => {
      const K = 45;
      const N = 7;
      const w = randoms(K * N, 4);
      const q = quantizeBlocksRtn(w, K, N, { blockSize: 16, symmetric });
      assert.equal(q.kBlocks, 3);
      const d = dequantizeBlocks(q);
      for (let k = 0; k < K; k++)
        for (let n = 0; n < N; n++) {
          const s = q.scales[n * q.kBlocks + Math.floor(k / 16)]!;
          assert.ok(Math.abs(d[k * N + n]! - w[k * N + n]!) <= s / 2 + 1e-6, `k ${k} n ${n}`);
        }
      // the transposed ([N, K]) input gives the same blocks
      const wt = new Float32Array(K * N);
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) wt[n * K + k] = w[k * N + n]!;
      const qt = quantizeBlocksRtn(wt, K, N, { blockSize: 16, symmetric, transposed: true });
      assert.deepEqual(qt.codes, q.codes);
    });

  for (const [K, N, bs, symmetric] of [
    [64, 8, 32, true],
    [40, 5, 16, false],
    [100, 3, 64, true],
    [33, 6, 16, false],
  ] as const)
    test(`packing matches MatMulNBits: unpack and compare; ORT dequantizes to the same weights (K ${K}, N ${N}, block ${bs}, ${symmetric ? 'sym' : 'asym'})`, async () => {
      const w = randoms(K * N, K + N);
      const q = quantizeBlocksRtn(w, K, N, { blockSize: bs, symmetric });
      const p = packMatMulNBits(q, { b: 'B', scales: 's', zeroPoints: 'z' });
      assert.deepEqual(p.B.dims, [N, Math.ceil(K / bs), bs / 2]);
      assert.equal(p.zeroPoints === undefined, symmetric);
      const u = unpackMatMulNBits(p.B, p.scales, p.zeroPoints, K, N, bs);
      assert.deepEqual(u.codes, q.codes);
      assert.deepEqual(u.scales, q.scales);
      assert.deepEqual(u.zeroPoints, q.zeroPoints);
      // ORT: A = identity [K, K] → the output is the dequantized weight [K, N]
      const m = new Model();
      m.opsetImports.set('', 17);
      m.opsetImports.set('com.microsoft', 1);
      const g = m.graph;
      const a = g.addInput('a', { kind: 'tensor', dtype: 'float32', shape: [K, K] });
      const n = g.addNode({
        opType: 'MatMulNBits',
        domain: 'com.microsoft',
        inputs: [
          a,
          g.addInitializer('B', p.B),
          g.addInitializer('s', p.scales),
          ...(p.zeroPoints ? [g.addInitializer('z', p.zeroPoints)] : []),
        ],
        outputs: ['y'],
        attrs: { K: A.int(K), N: A.int(N), bits: A.int(4), block_size: A.int(bs) },
      });
      n.output(0).type = { kind: 'tensor', dtype: 'float32', shape: [K, N] };
      g.outputs.push(n.output(0));
      const eye = new Float32Array(K * K);
      for (let i = 0; i < K; i++) eye[i * K + i] = 1;
      const r = await runModel(m, { a: { dtype: 'float32', dims: [K, K], data: eye } });
      const d = dequantizeBlocks(q);
      const y = r.y!.data as Float32Array;
      for (let i = 0; i < K * N; i++)
        assert.ok(
          Math.abs(y[i]! - d[i]!) <= 1e-6 * Math.max(1, Math.abs(d[i]!)),
          `element ${i}: ORT ${y[i]} ours ${d[i]}`,
        );
    });
});
