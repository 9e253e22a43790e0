import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NumberSpan, parseFloat32Span, parseJsonBody } from './json-body.js';

function span(text: string): NumberSpan {
  const b = Buffer.from(`{"x": ${text}}`);
  return new NumberSpan(b, 6, b.length - 1);
}

/** Math.fround of JSON.parse, bit for bit (so -0 and NaN patterns count). */
function reference(text: string): Float32Array {
  return Float32Array.from(JSON.parse(text) as number[]);
}

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

test('float32 spans parse exactly as Math.fround(JSON.parse(...)) across number forms', () => {
  let s = 12345;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648), s / 2147483648);
  const values: string[] = [];
  for (let i = 0; i < 4000; i++) {
    const x = (rnd() - 0.5) * 10 ** Math.floor(rnd() * 20 - 10);
    values.push(String(x), x.toFixed(3), x.toExponential(6), x.toPrecision(17));
  }
  // exact float32 rounding boundaries (midpoints between neighbours: ties to even) and their neighbours
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < 2000; i++) {
    f[0] = (rnd() - 0.5) * 10 ** Math.floor(rnd() * 12 - 6);
    const a = f[0]!;
    u[0]! += 1;
    const mid = (a + f[0]!) / 2; // exact in double
    values.push(String(mid), mid.toPrecision(17), mid.toPrecision(16), mid.toPrecision(9));
  }
  values.push(
    '0',
    '-0',
    '0.0',
    '-0.0e5',
    '1',
    '-1',
    '123456789012345678901234567890',
    '1e38',
    '3.4028235e38',
    '3.5e38',
    '1e39',
    '-1e400',
    '1e-45',
    '1.4e-45',
    '7e-46',
    '1e-400',
    '0.000000000000000000000000001234',
    '9007199254740993',
    '0.1',
    '0.30000000000000004',
    '1E+2',
    '2.5e-3',
    '65504',
    '16777217',
  );
  const text = `[${values.join(', ')}]`;
  const out = new Float32Array(values.length);
  assert.equal(parseFloat32Span(span(text), out), values.length);
  const [got, exp] = [bits(out), bits(reference(text))];
  const bad = values.filter((_, i) => got[i] !== exp[i]);
  assert.deepEqual(bad, []);
  // whitespace of every kind, and the empty array
  assert.equal(parseFloat32Span(span('[ \n\t1 ,\r\n2\t]'), new Float32Array(2)), 2);
  assert.equal(parseFloat32Span(span('[ ]'), new Float32Array(0)), 0);
  // it counts past the end of `out` (the caller reports the length mismatch)
  assert.equal(parseFloat32Span(span('[1, 2, 3]'), new Float32Array(2)), 3);
});

test('anything JSON.parse would refuse, or that is not a number, is left to JSON.parse (-1)', () => {
  for (const t of [
    '[01]',
    '[1.]',
    '[.5]',
    '[+1]',
    '[1e]',
    '[1e+]',
    '[1,]',
    '[,1]',
    '[1 2]',
    '[-]',
    '[NaN]',
    '[true]',
    '[null]',
    '[1,,2]',
    '[0x10]',
    '[Infinity]',
  ])
    assert.equal(parseFloat32Span(span(t), new Float32Array(4)), -1, t);
});

test('a body parses like JSON.parse, with inputs.<name>.data arrays of numbers left as spans', () => {
  const body = Buffer.from(
    '{"inputs": {"a": {"dtype": "float32", "shape": [2], "data" : [1.5, -2]}, "b\\"data": {"data": [3], "shape": [1], "dtype": "int64"}}, "x": "\\"data\\": [9]"}',
  );
  const p = parseJsonBody(body) as any;
  assert.ok(p.inputs.a.data instanceof NumberSpan);
  assert.deepEqual(p.inputs.a.data.parse(), [1.5, -2]);
  assert.ok(p.inputs['b"data'].data instanceof NumberSpan);
  assert.deepEqual(p.inputs['b"data'].data.parse(), [3]);
  assert.deepEqual({ ...p, inputs: undefined }, { ...JSON.parse(body.toString()), inputs: undefined });
  assert.deepEqual(p.inputs.a.shape, [2]);
  // bodies the fast path does not take are JSON.parse's, errors included
  for (const t of [
    '{"inputs": {"a": {"data": [[1, 2], [3]]}}}', // nested arrays
    '{"inputs": {"a": {"data": [1, "2"]}}}', // a string among the numbers
    '{"inputs": {"data": [1, 2]}}', // a span not at inputs.<name>.data
    '{"data": [1, 2], "inputs": {}}',
    '{"inputs": {"a": {"d\\u0061ta": [1]}}}', // an escaped key
    '[1, 2]',
    '{"inputs": {"a": {"data": [1, 2]}}} trailing',
  ]) {
    const b = Buffer.from(t);
    let want: unknown;
    let wantErr: string | undefined;
    try {
      want = JSON.parse(t);
    } catch (e) {
      wantErr = (e as Error).message;
    }
    if (wantErr) assert.throws(() => parseJsonBody(b), { message: wantErr }, t);
    else assert.deepEqual(parseJsonBody(b), want, t);
  }
});
