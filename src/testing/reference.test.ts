// In CI (CI=true) the reference checks cannot skip: a missing Python/numpy or a missing shared reference folder
// fails them, with what is missing; outside CI they skip with the reason. Each case runs in a fresh process,
// because the reason is computed from the environment once.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './fixtures.js';

function probe(env: Record<string, string>): { code: number | null; out: string; err: string } {
  const mod = JSON.stringify(pathToFileURL(join(REPO_ROOT, 'src', 'testing', 'reference.ts')).href);
  const code = `import { referenceSkipReason, numpySkipReason } from ${mod};
    try { console.log(JSON.stringify({ numpy: numpySkipReason() ?? null, reference: referenceSkipReason() ?? null })); }
    catch (e) { console.error(e.message); process.exit(7); }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    encoding: 'utf8',
    cwd: REPO_ROOT,
    env: { ...process.env, CI: '', ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('a missing reference folder skips outside CI and fails in CI', () => {
  const env = { EDGEFIT_REFERENCE_DIR: join(REPO_ROOT, 'no-such-reference-dir') };
  const local = probe(env);
  if (local.code === 0 && JSON.parse(local.out).numpy === null) {
    assert.match(JSON.parse(local.out).reference, /no-such-reference-dir\/datasets\.py is not there/);
  } else assert.equal(local.code, 0, local.err);
  const ci = probe({ ...env, CI: 'true' });
  assert.equal(ci.code, 7, ci.out);
  assert.match(ci.err, /(datasets\.py is not there|lacks numpy).*CI=true requires the reference checks/);
});

test('a missing Python / numpy skips outside CI and fails in CI', () => {
  const env = { EDGEFIT_PYTHON: join(REPO_ROOT, 'no-such-python') };
  const local = probe(env);
  assert.equal(local.code, 0, local.err);
  assert.match(JSON.parse(local.out).numpy, /no-such-python lacks numpy/);
  const ci = probe({ ...env, CI: 'true' });
  assert.equal(ci.code, 7, ci.out);
  assert.match(ci.err, /no-such-python lacks numpy.*CI=true requires the reference checks/);
});
