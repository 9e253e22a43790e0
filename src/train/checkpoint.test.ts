import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import {
  type Checkpoint,
  type TrainerPosition,
  decodeCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
} from './checkpoint.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-ckpt-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function position(): TrainerPosition {
  return {
    epoch: 1,
    batch: 3,
    step: 11,
    seed: 7,
    batchSize: 64,
    dropLast: true,
    rows: 512,
    partial: { lossSum: 1.5, lossRows: 192, correct: 100, labelled: 192, seconds: 0.25, trainSeconds: 0.2 },
    best: { metric: 'val_accuracy', value: 0.5, epoch: 1 },
    improvedRef: 0.5,
    sinceImproved: 0,
    history: [
      {
        epoch: 1,
        trainLoss: 1.2,
        trainAccuracy: 0.6,
        valLoss: 1.1,
        valAccuracy: 0.5,
        lr: 0.05,
        seconds: 1,
        steps: 8,
        rowsPerSecond: 512,
      },
    ],
  };
}

function sample(): Checkpoint {
  const w = new Float32Array([1.5, -2, Math.PI, Number.MIN_VALUE, -0, NaN, Infinity]);
  return {
    state: {
      step: 11,
      tensors: {
        'net.1.weight': { dtype: 'float32', dims: [7], data: w },
        'b1.num_batches': { dtype: 'int64', dims: [], data: new BigInt64Array([123n]) },
        odd: { dtype: 'float32', dims: [1, 3], data: new Float32Array([1, 2, 3]) },
      },
      optimizer: { 'net.1.weight.momentum': { dtype: 'float32', dims: [7], data: w.map((v) => v / 3) } },
    },
    position: position(),
    best: {
      step: 8,
      tensors: { 'net.1.weight': { dtype: 'float32', dims: [7], data: w.map((v) => v * 2) } },
      optimizer: {},
    },
    meta: { model: 'mlp', trainable: ['net.1.weight'] },
  };
}

const bytesOf = (d: ArrayBufferView) => Buffer.from(d.buffer, d.byteOffset, d.byteLength);

describe('training checkpoints', () => {
  test('round trip: every tensor bit-identical (NaN, -0, denormals), position, best state, meta', () => {
    const c = sample();
    const path = join(dir, 'a.ckpt');
    saveCheckpoint(path, c);
    const r = loadCheckpoint(path);
    assert.equal(r.state.step, 11);
    assert.deepEqual(Object.keys(r.state.tensors).sort(), Object.keys(c.state.tensors).sort());
    for (const [k, t] of Object.entries(c.state.tensors)) {
      const u = r.state.tensors[k]!;
      assert.equal(u.dtype, t.dtype);
      assert.deepEqual([...u.dims], [...t.dims]);
      assert.ok(bytesOf(u.data).equals(bytesOf(t.data)), k);
      assert.equal(u.data.constructor, t.data.constructor, k);
    }
    assert.ok(
      bytesOf(r.state.optimizer['net.1.weight.momentum']!.data).equals(
        bytesOf(c.state.optimizer['net.1.weight.momentum']!.data),
      ),
    );
    assert.equal(r.best?.step, 8);
    assert.ok(
      bytesOf(r.best!.tensors['net.1.weight']!.data).equals(bytesOf(c.best!.tensors['net.1.weight']!.data)),
    );
    assert.deepEqual(r.position, c.position);
    assert.deepEqual(r.meta, c.meta);
    // tensor data is 64-byte aligned in the file and copied out on read
    const raw = readFileSync(path);
    assert.equal(raw.subarray(0, 8).toString('latin1'), 'EFCKPT01');
  });

  test('a failure part-way through the write leaves the previous checkpoint intact and no temp file', () => {
    const path = join(dir, 'b.ckpt');
    saveCheckpoint(path, sample());
    const before = readFileSync(path);
    const bad = sample();
    // the header is written from dtype/dims; this tensor's data is short, so the write fails after the header and
    // the earlier tensors are already in the temp file
    bad.state.tensors['zz.last'] = { dtype: 'float32', dims: [1000], data: new Float32Array(10) };
    assert.throws(() => saveCheckpoint(path, bad), InputError);
    assert.ok(readFileSync(path).equals(before), 'previous checkpoint unchanged');
    const fresh = join(dir, 'c.ckpt');
    assert.throws(() => saveCheckpoint(fresh, bad), InputError);
    assert.ok(!existsSync(fresh), 'no partial file where there was none');
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  test('truncated, extended, foreign and missing files are typed input errors', () => {
    const path = join(dir, 'd.ckpt');
    saveCheckpoint(path, sample());
    const raw = readFileSync(path);
    assert.throws(
      () => decodeCheckpoint(raw.subarray(0, raw.length - 1), 'x'),
      (e: unknown) => e instanceof InputError && /truncated/.test(e.message),
    );
    assert.throws(() => decodeCheckpoint(Buffer.concat([raw, Buffer.alloc(1)])), InputError);
    assert.throws(() => decodeCheckpoint(raw.subarray(0, 30)), InputError);
    assert.throws(() => decodeCheckpoint(Buffer.from('not a checkpoint at all')), /wrong magic/);
    const other = join(dir, 'e.ckpt');
    writeFileSync(other, Buffer.alloc(4));
    assert.throws(() => loadCheckpoint(other), InputError);
    assert.throws(
      () => loadCheckpoint(join(dir, 'missing.ckpt')),
      (e: unknown) => e instanceof InputError && /does not exist/.test(e.message),
    );
  });
});
