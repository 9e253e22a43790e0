import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { summarize } from '../summary/index.js';
import {
  type DeviceProfile,
  WIDTHS,
  chooseStudent,
  loadProfile,
  misfit,
  parseBytes,
  profileFrom,
} from './profile.js';
import { buildStudent, studentParams } from './students.js';

const shape = { input: [1, 28, 28], classes: 10 };

/** Check a choice against the budget with an independent summary of the built student. */
function checkFits(p: DeviceProfile) {
  const c = chooseStudent(p, shape);
  const m = buildStudent(c.spec, shape);
  const s = summarize(m, { batch: p.batch });
  assert.ok(s.bytes <= p.storageBytes, `weights ${s.bytes} ≤ storage ${p.storageBytes}`);
  assert.ok(s.bytes + s.peakActivationBytes <= p.ramBytes, `weights + activations ≤ ram ${p.ramBytes}`);
  if (p.latencyMs !== undefined)
    assert.ok((1000 * s.macs) / (p.macsPerSecondPerThread * p.threads) <= p.latencyMs, 'latency budget');
  if (p.maxParams !== undefined) assert.ok(studentParams(m) <= p.maxParams);
  // the largest: one width up in the same family and depth does not fit
  const up = WIDTHS.find((w) => w > c.spec.width);
  if (up) {
    const bigger = buildStudent({ ...c.spec, width: up }, shape);
    const sb = summarize(bigger, { batch: p.batch });
    const over =
      sb.bytes > p.storageBytes ||
      sb.bytes + sb.peakActivationBytes > p.ramBytes ||
      (p.latencyMs !== undefined &&
        (1000 * sb.macs) / (p.macsPerSecondPerThread * p.threads) > p.latencyMs) ||
      (p.maxParams !== undefined && studentParams(bigger) > p.maxParams);
    assert.ok(over, `${JSON.stringify(c.spec)}: width ${up} would not fit either`);
  }
  assert.ok(c.reasons.length >= 2, 'reasons are given');
  return c;
}

test('the device-profile choice respects storage, RAM (weights + peak activations), latency and params budgets', () => {
  const tiny = profileFrom({ ram: '256KB', storage: '64KB', threads: 1, latency_ms: 0.5 });
  const c1 = checkFits(tiny);
  assert.equal(c1.spec.family, 'dsconv', 'no traits: depthwise-separable first');
  const c2 = checkFits(
    profileFrom({ ram: '4MB', storage: '512KB', threads: 4, latency_ms: 1, gmacs_per_thread: 2 }),
  );
  assert.ok(c2.candidate.params > c1.candidate.params, 'a bigger budget buys a bigger student');
  // RAM is the binding limit at batch 64: activations dominate
  const c3 = checkFits(profileFrom({ ram: '3MB', storage: '64MB', threads: 2, batch: 64 }));
  assert.ok(c3.candidate.weightBytes + c3.candidate.peakActivationBytes > 1.5 * 2 ** 20);
  const c4 = chooseStudent(
    profileFrom({ ram: '64MB', storage: '64MB', threads: 2, max_params: 20000 }),
    shape,
  );
  assert.ok(c4.candidate.params <= 20000);
});

test('traits: no fast matrix units → attention-free; matrix units → transformer first; no-depthwise drops dsconv', () => {
  const base = { ram: '8MB', storage: '1MB', threads: 2, latency_ms: 2 };
  const a = checkFits(profileFrom({ ...base, traits: ['matrix-units'] }));
  assert.equal(a.spec.family, 'transformer');
  const b = chooseStudent(profileFrom({ ...base, traits: ['matrix-units', 'no-matrix-units'] }), shape);
  assert.equal(b.spec.family, 'mixer', 'the attention-free token mixer replaces the transformer');
  assert.ok(b.reasons.some((r) => r.includes('no-matrix-units')));
  const c = chooseStudent(profileFrom({ ...base, traits: ['no-depthwise'] }), shape);
  assert.equal(c.spec.family, 'cnn');
  // a family where nothing fits is skipped with its reason: dsconv's 3×3 stem at 28×28 needs activations the
  // cnn family's pooled blocks need as well, so make only latency bind: 1 µs fits nothing at all
  assert.throws(() => chooseStudent(profileFrom({ ...base, latency_ms: 0.001 }), shape), InputError);
});

test('profile files: YAML with units; bad profiles are InputErrors naming the file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-profile-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'mcu.yaml');
  writeFileSync(
    f,
    'name: mcu\nram: 512KB\nstorage: 1.5MB\nthreads: 1\nlatency_ms: 20\ntraits: [no-matrix-units]\n',
  );
  const p = loadProfile(f);
  assert.equal(p.ramBytes, 512 * 1024);
  assert.equal(p.storageBytes, 1.5 * 2 ** 20);
  assert.deepEqual(p.traits, ['no-matrix-units']);
  assert.equal(parseBytes('2GB', 'ram'), 2 ** 31);
  for (const bad of [
    'ram: lots\nstorage: 1MB\n',
    'ram: 1MB\n',
    'ram: 1MB\nstorage: 1MB\ntraits: [warp-drive]\n',
    'ram: 1MB\nstorage: 1MB\ncolour: red\n',
    'ram: [1\n',
  ])
    assert.throws(
      () => {
        writeFileSync(f, bad);
        loadProfile(f);
      },
      (e: unknown) => e instanceof InputError && e.message.includes('profile'),
      bad,
    );
  assert.throws(() => loadProfile(join(dir, 'missing.yaml')), InputError);
  // misfit names the limit
  const c = {
    spec: { family: 'mlp' as const, width: 8, depth: 1 },
    params: 10,
    weightBytes: 2000,
    peakActivationBytes: 0,
    macs: 1,
    latencyMs: 0,
  };
  assert.match(misfit(c, profileFrom({ ram: '1MB', storage: '1KB' }))!, /storage/);
});
