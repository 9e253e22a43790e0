import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PruneGroup } from './deps.js';
import { keptCount, selectChannels } from './select.js';

const group = (id: number, size: number, prunable = true): PruneGroup => ({
  id,
  size,
  period: size,
  producers: [`g${id}`],
  prunable,
  reasons: prunable ? [] : ['blocked'],
  members: [],
});

describe('channel selection', () => {
  it('rounds kept counts to a multiple and respects the minimum', () => {
    assert.equal(keptCount(64, 32, 8, 8), 32);
    assert.equal(keptCount(64, 29, 8, 8), 32);
    assert.equal(keptCount(64, 27, 8, 8), 24);
    assert.equal(keptCount(64, 2, 16, 8), 16);
    assert.equal(keptCount(12, 6, 8, 8), 8);
    assert.equal(keptCount(4, 2, 8, 8), 4, 'a group smaller than the minimum keeps all');
    assert.equal(keptCount(10, 3, 1, 1), 3);
  });

  it('per layer: every group loses the ratio, keeping its highest scores; blocked groups untouched', () => {
    const a = Float64Array.from([5, 1, 4, 2, 3, 0, 7, 6]);
    const keep = selectChannels(
      [group(0, 8), group(1, 8, false)],
      new Map([
        [0, a],
        [1, a],
      ]),
      {
        ratio: 0.5,
        roundTo: 1,
        minChannels: 1,
      },
    );
    assert.deepEqual(keep.get(0), [0, 2, 6, 7]);
    assert.equal(keep.has(1), false);
  });

  it('global: scores normalised by their group mean, the lowest fraction of all channels removed', () => {
    // group 0: one strong channel, the rest weak; group 1: uniform
    const g0 = Float64Array.from([10, 0.1, 0.1, 0.1]);
    const g1 = Float64Array.from([1, 1, 1, 1]);
    const keep = selectChannels(
      [group(0, 4), group(1, 4)],
      new Map([
        [0, g0],
        [1, g1],
      ]),
      {
        ratio: 3 / 8,
        scope: 'global',
        roundTo: 1,
        minChannels: 1,
      },
    );
    assert.deepEqual(keep.get(0), [0]);
    assert.equal(keep.has(1), false, 'the uniform group keeps everything');
  });

  it('refuses a ratio outside [0, 1)', () => {
    assert.throws(() => selectChannels([], new Map(), { ratio: 1 }), /ratio must be in \[0, 1\)/);
  });
});
