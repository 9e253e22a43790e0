import { test } from 'node:test';
import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { defaultCacheDir } from '../distill/teacher.js';
import { defaultRegistryCache } from '../serve/registry-client.js';
import { userCacheDir } from './cache.js';

test('userCacheDir: $EDGEFIT_CACHE when set, else ~/.cache/edgefit; teacher logits and registry artifacts below it', () => {
  const saved = process.env.EDGEFIT_CACHE;
  try {
    process.env.EDGEFIT_CACHE = join('some', 'where');
    assert.equal(userCacheDir('x'), join('some', 'where', 'x'));
    assert.equal(defaultCacheDir(), join('some', 'where', 'teacher-logits'));
    assert.equal(defaultRegistryCache(), join('some', 'where', 'registry'));
    delete process.env.EDGEFIT_CACHE;
    assert.equal(userCacheDir('x'), join(homedir(), '.cache', 'edgefit', 'x'));
  } finally {
    if (saved === undefined) delete process.env.EDGEFIT_CACHE;
    else process.env.EDGEFIT_CACHE = saved;
  }
});
