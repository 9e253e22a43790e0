// Test support stays out of the library: no production module under src/ imports src/testing or node:assert, and
// no test helper sits in a production folder (every non-test module outside src/testing is library code).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from './fixtures.js';

const SRC = join(REPO_ROOT, 'src');
const TESTING = join(SRC, 'testing');

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

const production = walk(SRC).filter((f) => !f.endsWith('.test.ts') && !f.startsWith(TESTING + '/'));

/** The relative module specifiers a file imports (static and dynamic). */
function imports(file: string): string[] {
  const s = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of s.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)) out.push(m[1]);
  return out;
}

test('no library module imports test support (src/testing) or node:assert', () => {
  assert.ok(production.length > 50, `found only ${production.length} production modules`);
  const bad: string[] = [];
  for (const f of production)
    for (const spec of imports(f)) {
      if (spec === 'node:assert' || spec.startsWith('node:assert/') || spec === 'node:test')
        bad.push(`${relative(REPO_ROOT, f)} imports ${spec}`);
      if (spec.startsWith('.') && resolve(dirname(f), spec).startsWith(TESTING + '/'))
        bad.push(`${relative(REPO_ROOT, f)} imports ${spec}`);
    }
  assert.deepEqual(bad, []);
});

test('no test helper modules in production folders', () => {
  const names = /(^|\/)(testkit|testutil|testing|gradtest|bench-[^/]*)\.ts$/;
  assert.deepEqual(
    production.filter((f) => names.test(relative(SRC, f))).map((f) => relative(REPO_ROOT, f)),
    [],
  );
});

test('one implementation each: the mulberry32 PRNG, constInts, the default-domain check', () => {
  const where = (re: RegExp) =>
    production.filter((f) => re.test(readFileSync(f, 'utf8'))).map((f) => relative(REPO_ROOT, f));
  // the PRNG's increment appears once (src/util/random.ts); data/batch.ts seeds through it
  assert.deepEqual(where(/0x6d2b79f5/i), ['src/util/random.ts']);
  assert.deepEqual(where(/export function constInts\b/), ['src/ops/const.ts']);
  // '' and 'ai.onnx' are the same domain: src/util/domain.ts decides it (isOnnxDomain / normDomain)
  assert.deepEqual(
    where(/domain [!=]== '' (\|\||&&) [\w.]*domain [!=]== 'ai\.onnx'|domain === 'ai\.onnx' \? ''/),
    [],
  );
});
