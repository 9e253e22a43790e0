import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GateError, InputError, exitCodeOf } from '../errors.js';
import { checkGates, enforceGates, gatesPassed, hasGates, validateGates } from './gates.js';

const names = ['T-shirt', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt'];

test('accuracy, drop against baseline and deployed, per-class recall by name and index, bytes, latency', () => {
  const cand = {
    accuracy: 0.9,
    recall: [0.95, 0.97, 0.85, 0.9, 0.88, 0.99, 0.62],
    classNames: names,
    bytes: 60_000,
    latencyMs: 0.8,
  };
  const baseline = { accuracy: 0.91, recall: [0.95, 0.97, 0.86, 0.9, 0.88, 0.99, 0.66] };
  const r = checkGates(
    {
      minAccuracy: 0.895,
      maxDrop: 1,
      maxDropVsDeployed: 0,
      minRecall: { Shirt: 0.6, '2': 0.9 },
      maxRecallDrop: { Shirt: 2 },
      maxBytes: 50_000,
      maxLatencyMs: 1,
    },
    cand,
    { baseline, deployed: { accuracy: 0.899 } },
  );
  const by = Object.fromEntries(r.map((g) => [g.name, g]));
  assert.equal(by['min-accuracy']!.passed, true);
  assert.equal(by['max-drop']!.passed, true);
  assert.ok(Math.abs(by['max-drop']!.value! - 1) < 1e-9);
  // 0.9 is 0.1 points above the deployed 0.899: a negative drop, which passes
  assert.equal(by['max-drop-vs-deployed']!.passed, true);
  assert.ok(Math.abs(by['max-drop-vs-deployed']!.value! + 0.1) < 1e-9);
  assert.equal(by['min-recall:Shirt']!.passed, true);
  assert.equal(by['min-recall:2']!.passed, false);
  assert.equal(by['min-recall:2']!.value, 0.85);
  assert.equal(by['max-recall-drop:Shirt']!.passed, false);
  assert.ok(Math.abs(by['max-recall-drop:Shirt']!.value! - 4) < 1e-9);
  assert.equal(by['max-bytes']!.passed, false);
  assert.equal(by['max-latency-ms']!.passed, true);
  assert.equal(gatesPassed(r), false);
  assert.match(by['max-bytes']!.message, /60000 bytes \(at most 50000\)/);
});

test('a gate whose figure was not measured fails with value null; no limits, no verdicts', () => {
  const r = checkGates({ maxDrop: 1, maxPeakBytes: 10, minRecall: { Nope: 0.5 } }, { accuracy: 0.5 });
  assert.deepEqual(
    r.map((g) => [g.name, g.passed, g.value]),
    [
      ['max-drop', false, null],
      ['min-recall:Nope', false, null],
      ['max-peak-bytes', false, null],
    ],
  );
  assert.deepEqual(checkGates({}, { accuracy: 0.5 }), []);
  assert.equal(hasGates({}), false);
  assert.equal(hasGates({ maxBytes: 1 }), true);
  // NaN never passes
  assert.equal(checkGates({ minAccuracy: 0 }, { accuracy: NaN })[0]!.passed, false);
});

test('enforceGates: a GateError (exit 4) naming every failed gate; limits are validated', () => {
  const r = checkGates(
    { maxAbsDiff: 1e-4, maxBytes: 100 },
    { maxAbsDiff: 0.5, worstOutput: 'logits', bytes: 10 },
  );
  assert.throws(
    () => enforceGates(r, 'the candidate', { file: 'm.onnx' }),
    (e: unknown) =>
      e instanceof GateError &&
      exitCodeOf(e) === 4 &&
      /logits/.test(e.message) &&
      !/max-bytes/.test(e.message),
  );
  enforceGates(checkGates({ maxBytes: 100 }, { bytes: 10 }), 'ok');
  assert.throws(() => validateGates({ maxDrop: -1 }), InputError);
  assert.throws(() => validateGates({ minRecall: { Shirt: 2 } }), InputError);
  validateGates({ minAccuracy: 0.9, maxDrop: 1, minRecall: { Shirt: 0.5 } });
});
