import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import '../ops/index.js';
import { A, Emitter, Graph, Model, Tensor, tensorType, type Value } from '../ir/index.js';
import { inferShapes } from '../ops/index.js';
import { runModel } from '../runtime/index.js';
import { buildGradients } from '../autodiff/grad.js';
import {
  dequantizeWeight,
  quantizeBias,
  quantizeWeightInt8,
  QRANGE,
  rint,
  type QType,
} from '../passes/quantize/numeric.js';
import { prng } from '../util/random.js';
import {
  emitActivationFakeQuant,
  emitBiasFakeQuant,
  emitGradScale,
  emitWeightFakeQuant,
} from './fakequant.js';

/** What ORT's QuantizeLinear → DequantizeLinear computes: float32 division, round half to even, saturation. */
function refFakeQuant(x: number, s: number, zp: number, qt: QType): number {
  const { min, max } = QRANGE[qt];
  const q = Math.min(max, Math.max(min, rint(Math.fround(x / s)) + zp));
  return Math.fround((q - zp) * s);
}

/** Values around the grid of scale `s`: random ones, exact ties (k + ½)·s, values where x/s and x·(1/s) round apart, out of range. */
function probeValues(s: number, zp: number, qt: QType, n: number, seed: number): Float32Array {
  const r = prng(seed);
  const { min, max } = QRANGE[qt];
  const lo = (min - zp - 20) * s;
  const hi = (max - zp + 20) * s;
  const out: number[] = [];
  for (let k = min - zp - 3; k <= max - zp + 3; k++) out.push(Math.fround((k + 0.5) * s), Math.fround(k * s));
  const inv = Math.fround(1 / s);
  for (let i = 0; i < 200000 && out.length < n / 2; i++) {
    const v = Math.fround(lo + (hi - lo) * r());
    if (Math.round(Math.fround(v / s)) !== Math.round(Math.fround(v * inv))) out.push(v);
  }
  while (out.length < n) out.push(Math.fround(lo + (hi - lo) * r()));
  return Float32Array.from(out);
}

function model(build: (g: Graph, e: Emitter) => Value[], opset = 17): Model {
  const g = new Graph('fq');
  const e = new Emitter(g, { opset });
  g.outputs.push(...build(g, e));
  const m = new Model(g);
  m.opsetImports.set('', opset);
  inferShapes(m);
  return m;
}

describe('fake quantization forward', () => {
  for (const [qt, s, zp] of [
    ['uint8', 0.0123, 7],
    ['uint8', 1 / 255, 0],
    ['int8', 0.05, -3],
  ] as [QType, number, number][])
    test(`activation fake-quant equals the JS reference and ORT's QuantizeLinear → DequantizeLinear (${qt}, zp ${zp})`, async () => {
      const scale = Math.fround(s);
      const xs = probeValues(scale, zp, qt, 4096, 3);
      const m = model((g, e) => {
        const x = g.addInput('x', tensorType('float32', [xs.length]));
        const sv = g.addInitializer('s', Tensor.from('float32', [1], [scale]));
        const zpv = g.addInitializer('zp', Tensor.scalar(qt, zp));
        const fq = emitActivationFakeQuant(e, x, emitGradScale(e, sv, 0.01), zp, qt);
        const sc = g.addInitializer('s0', Tensor.scalar('float32', scale));
        const dq = e.op('DequantizeLinear', [e.op('QuantizeLinear', [x, sc, zpv]), sc, zpv]);
        return [fq, dq];
      });
      const out = await runModel(m, { x: { dtype: 'float32', dims: [xs.length], data: xs } });
      const [fq, dq] = m.graph.outputs.map((o) => out[o.name]!.data as Float32Array);
      let bad = 0;
      for (let i = 0; i < xs.length; i++) {
        const want = refFakeQuant(xs[i]!, scale, zp, qt);
        if (fq![i] !== want || dq![i] !== want) bad++;
      }
      assert.equal(bad, 0, `${bad} of ${xs.length} values differ from the reference`);
    });

  for (const [rank, axis] of [
    [4, 0],
    [2, 0],
    [2, 1],
    [4, null],
  ] as [number, number | null][])
    test(`weight fake-quant equals quantizeWeightInt8 → dequantize (rank ${rank}, axis ${axis}), bias equals quantizeBias`, async () => {
      const dims = rank === 4 ? [6, 3, 3, 3] : [8, 12];
      const n = dims.reduce((a, b) => a * b, 1);
      const r = prng(11 + rank + (axis ?? 9));
      const w = new Float32Array(n);
      for (let i = 0; i < n; i++) w[i] = (r() * 2 - 1) * (1 + ((i * 7) % 5));
      // a channel of zeros (scale 1 in the exporter) and exact ties
      const C = axis === null ? 1 : dims[axis]!;
      const inner = axis === null ? n : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
      const chan = (i: number) => (axis === null ? 0 : Math.floor(i / inner) % C);
      if (axis !== null) for (let i = 0; i < n; i++) if (chan(i) === 1) w[i] = 0;
      const wt = Tensor.from('float32', dims, w);
      const qw = quantizeWeightInt8(wt, axis);
      for (let i = 0; i < n; i += 5)
        if (w[i] !== 0)
          w[i] = Math.fround((Math.round(w[i]! / qw.scales[chan(i)]!) + 0.5) * qw.scales[chan(i)]!);
      const wt2 = Tensor.from('float32', dims, w);
      const qw2 = quantizeWeightInt8(wt2, axis);
      const want = dequantizeWeight(qw2);
      const bias = Float32Array.from({ length: C === 1 ? 5 : C }, () => (r() * 2 - 1) * 0.3);
      const sx = Math.fround(0.0173);
      const wantB = quantizeBias(Tensor.from('float32', [bias.length], bias), sx, qw2.scales);
      const m = model((g, e) => {
        const wv = g.addInitializer('w', wt2);
        const { value, scale } = emitWeightFakeQuant(e, wv, rank, axis);
        const bv = g.addInitializer('b', Tensor.from('float32', [bias.length], bias));
        const sxv = g.addInitializer('sx', Tensor.from('float32', [1], [sx]));
        return [value, emitBiasFakeQuant(e, bv, sxv, scale, axis !== null)];
      });
      const out = await runModel(m, {});
      const [got, gotB] = m.graph.outputs.map((o) => out[o.name]!.data as Float32Array);
      assert.deepEqual(Array.from(got!), Array.from(want));
      assert.deepEqual(
        Array.from(gotB!),
        Array.from(wantB.q, (q, i) => Math.fround(q * wantB.scales[i]!)),
      );
    });
});

describe('straight-through gradients', () => {
  test('d fq(x)/dx is 1 inside the range and 0 outside; d/ds is the LSQ gradient, times its scale g', async () => {
    const scale = Math.fround(0.02);
    const zp = 10;
    const g0 = 0.125;
    const xs = probeValues(scale, zp, 'uint8', 2048, 5);
    const wr = prng(8);
    const weights = Float32Array.from(xs, () => wr() * 2 - 1);
    const m = model((g, e) => {
      const x = g.addInput('x', tensorType('float32', [xs.length]));
      const sv = g.addInitializer('s', Tensor.from('float32', [1], [scale]));
      const wv = g.addInitializer('r', Tensor.from('float32', [xs.length], weights));
      const fq = emitActivationFakeQuant(e, x, emitGradScale(e, sv, g0), zp, 'uint8');
      return [e.op('ReduceSum', [e.mul(fq, wv)], { keepdims: A.int(0) })];
    });
    const x = m.graph.inputs[0]!;
    const s = m.graph.initializers.get('s')!;
    const { grads } = buildGradients(m, m.graph.outputs[0]!, [x, s]);
    m.graph.outputs.push(grads.get(x)!, grads.get(s)!);
    const out = await runModel(m, { x: { dtype: 'float32', dims: [xs.length], data: xs } });
    const gx = out[grads.get(x)!.name]!.data as Float32Array;
    const gs = out[grads.get(s)!.name]!.data as Float32Array;
    let ds = 0;
    let inside = 0;
    for (let i = 0; i < xs.length; i++) {
      const c = Math.fround(xs[i]! / scale);
      const lo = 0 - zp;
      const hi = 255 - zp;
      const isIn = c >= lo && c <= hi;
      if (isIn) inside++;
      // inside: (d·s)/s, the upstream gradient up to float rounding; outside: exactly 0
      if (isIn)
        assert.ok(
          Math.abs(gx[i]! - weights[i]!) <= 2e-7 * Math.abs(weights[i]!),
          `dx at x = ${xs[i]} (x/s = ${c}): ${gx[i]} vs ${weights[i]}`,
        );
      else assert.ok(gx[i] === 0, `dx at x = ${xs[i]} (x/s = ${c}) outside the range: ${gx[i]}`);
      ds += weights[i]! * (isIn ? rint(c) - c : c < lo ? lo : hi);
    }
    assert.ok(inside > 500 && inside < xs.length - 200, `both sides covered (${inside} inside)`);
    assert.ok(
      Math.abs(gs[0]! - g0 * ds) <= 1e-4 * Math.max(1, Math.abs(g0 * ds)),
      `ds ${gs[0]} vs ${g0 * ds}`,
    );
  });

  test('weights and biases get the identity gradient through their fake quantization', async () => {
    const r = prng(21);
    const w = Float32Array.from({ length: 4 * 6 }, () => r() * 2 - 1);
    const b = Float32Array.from({ length: 4 }, () => r() - 0.5);
    const up = Float32Array.from({ length: 4 * 6 }, () => r() * 2 - 1);
    const ub = Float32Array.from({ length: 4 }, () => r() * 2 - 1);
    const m = model((g, e) => {
      const wv = g.addInitializer('w', Tensor.from('float32', [4, 6], w));
      const bv = g.addInitializer('b', Tensor.from('float32', [4], b));
      const sx = g.addInitializer('sx', Tensor.from('float32', [1], [0.01]));
      const { value, scale } = emitWeightFakeQuant(e, wv, 2, 0);
      const bfq = emitBiasFakeQuant(e, bv, sx, scale, true);
      const lw = e.op(
        'ReduceSum',
        [e.mul(value, g.addInitializer('uw', Tensor.from('float32', [4, 6], up)))],
        { keepdims: A.int(0) },
      );
      const lb = e.op('ReduceSum', [e.mul(bfq, g.addInitializer('ub', Tensor.from('float32', [4], ub)))], {
        keepdims: A.int(0),
      });
      return [e.add(lw, lb)];
    });
    const wv = m.graph.initializers.get('w')!;
    const bv = m.graph.initializers.get('b')!;
    const { grads } = buildGradients(m, m.graph.outputs[0]!, [wv, bv]);
    m.graph.outputs.push(grads.get(wv)!, grads.get(bv)!);
    const out = await runModel(m, {});
    assert.deepEqual(Array.from(out[grads.get(wv)!.name]!.data as Float32Array), Array.from(up));
    assert.deepEqual(Array.from(out[grads.get(bv)!.name]!.data as Float32Array), Array.from(ub));
  });
});
