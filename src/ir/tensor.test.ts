import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from './tensor.js';

test('typed() on unaligned bytes inside a Node Buffer copies the right values', () => {
  const values = BigInt64Array.from([8n, -3n, 1n << 40n]);
  const buf = Buffer.alloc(1 + values.byteLength);
  buf.set(new Uint8Array(values.buffer), 1); // offset 1: unaligned for int64
  const t = new Tensor('int64', [3], buf.subarray(1));
  assert.deepEqual(Array.from(t.typed() as BigInt64Array), [8n, -3n, 1n << 40n]);
  assert.deepEqual(t.toNumbers(), [8, -3, 2 ** 40]);
});
