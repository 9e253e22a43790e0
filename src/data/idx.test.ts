import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../errors.js';
import { parseIdx, readIdx, readIdxImages, readIdxLabels } from './idx.js';
import { mnistDataDir } from './mnist.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-idx-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function be32(...v: number[]): Buffer {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeUInt32BE(x, 4 * i));
  return b;
}

function file(name: string, ...parts: Uint8Array[]): string {
  const p = join(dir, name);
  writeFileSync(p, Buffer.concat(parts));
  return p;
}

function assertDataError(fn: () => unknown, path: string, code: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.subject.file, path);
    assert.ok(e.message.includes(path), e.message);
    return true;
  });
}

test('reads an images file: big-endian header, row-major pixels', () => {
  const p = file(
    'img',
    be32(2051, 2, 2, 3),
    Uint8Array.from([0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]),
  );
  const f = readIdxImages(p);
  assert.equal(f.kind, 'images');
  assert.deepEqual([f.n, f.rows, f.cols], [2, 2, 3]);
  assert.deepEqual(Array.from(f.data), [0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]);
});

test('reads a labels file', () => {
  const p = file('lab', be32(2049, 4), Uint8Array.from([7, 2, 1, 0]));
  const f = readIdxLabels(p);
  assert.equal(f.kind, 'labels');
  assert.equal(f.n, 4);
  assert.deepEqual(Array.from(f.data), [7, 2, 1, 0]);
  assert.equal(readIdx(p).kind, 'labels');
});

test('bad magic, truncation, trailing bytes and kind mismatch are DataErrors naming the file', () => {
  assertDataError(
    () => readIdx(file('magic', be32(2050, 1), Uint8Array.of(1))),
    join(dir, 'magic'),
    'idx-bad-magic',
  );
  assertDataError(() => readIdx(file('short', Uint8Array.of(0, 0, 8))), join(dir, 'short'), 'idx-truncated');
  assertDataError(() => readIdx(file('shorthdr', be32(2051, 1, 28))), join(dir, 'shorthdr'), 'idx-truncated');
  assertDataError(
    () => readIdx(file('shortbody', be32(2051, 2, 28, 28), new Uint8Array(784 * 2 - 1))),
    join(dir, 'shortbody'),
    'idx-truncated',
  );
  assertDataError(
    () => readIdx(file('shortlab', be32(2049, 10), new Uint8Array(9))),
    join(dir, 'shortlab'),
    'idx-truncated',
  );
  assertDataError(
    () => readIdx(file('long', be32(2049, 2), new Uint8Array(3))),
    join(dir, 'long'),
    'idx-trailing-bytes',
  );
  const img = file('img2', be32(2051, 1, 1, 1), Uint8Array.of(9));
  assertDataError(() => readIdxLabels(img), img, 'idx-bad-magic');
  const lab = file('lab2', be32(2049, 1), Uint8Array.of(9));
  assertDataError(() => readIdxImages(lab), lab, 'idx-bad-magic');
  assertDataError(() => readIdx(join(dir, 'missing')), join(dir, 'missing'), 'data-unreadable');
});

test('parseIdx works on a view with a non-zero byteOffset', () => {
  const bytes = Buffer.concat([Buffer.alloc(3), be32(2049, 2), Uint8Array.of(5, 6)]);
  const f = parseIdx(bytes.subarray(3), 'view');
  assert.deepEqual(Array.from(f.data), [5, 6]);
});

test('the real MNIST test files have the expected headers', () => {
  const d = mnistDataDir();
  const img = readIdxImages(join(d, 't10k-images-idx3-ubyte'));
  assert.deepEqual([img.n, img.rows, img.cols, img.data.length], [10000, 28, 28, 7840000]);
  const lab = readIdxLabels(join(d, 'train-labels-idx1-ubyte'));
  assert.deepEqual([lab.n, lab.data.length], [60000, 60000]);
});
