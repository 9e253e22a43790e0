// Test helpers for src/data (not part of the public API): running the system Python when it has numpy (for
// cross-checks against numpy and shared/reference/datasets.py), and image checksums. Outside CI a missing
// prerequisite skips those checks (with the reason); in CI (env CI=true) they must run, so a missing one fails.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './fixtures.js';

/** The Python with numpy/torch/onnx (Debian's; `EDGEFIT_PYTHON` overrides it). */
export const PYTHON = process.env.EDGEFIT_PYTHON || '/usr/bin/python3';
/** The shared reference scripts, beside the repository (`../shared/reference`; `EDGEFIT_REFERENCE_DIR` overrides). */
export const REFERENCE_DIR =
  process.env.EDGEFIT_REFERENCE_DIR || join(REPO_ROOT, '..', 'shared', 'reference');
/** In CI every reference check must run: a missing prerequisite is a failure, not a skip. */
export const REFERENCE_REQUIRED = /^(1|true|yes)$/i.test(process.env.CI ?? '');

/** A skip reason outside CI; in CI, an error saying what is missing and how to provide it. */
function skipOrFail(why: string | undefined): string | undefined {
  if (why && REFERENCE_REQUIRED)
    throw new Error(
      `${why}: CI=true requires the reference checks (scripts/setup-system.sh installs python3-numpy/torch/onnx; ` +
        'the shared reference folder must sit beside the repository)',
    );
  return why;
}

/** Why cross-checks against shared/reference/datasets.py must be skipped (no numpy, or no shared folder). */
export function referenceSkipReason(): string | undefined {
  const why = numpySkipReason();
  if (why) return why;
  return skipOrFail(
    existsSync(join(REFERENCE_DIR, 'datasets.py')) ? undefined : `${REFERENCE_DIR}/datasets.py is not there`,
  );
}

let reason: string | undefined | null = null;

/** Why numpy cross-checks must be skipped, or undefined when the Python has numpy. */
export function numpySkipReason(): string | undefined {
  if (reason === null) {
    const r = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
    reason = r.status === 0 ? undefined : `${PYTHON} lacks numpy (${(r.error?.message ?? r.stderr).trim()})`;
  }
  return skipOrFail(reason);
}

/** Run `code` with python3 (args in sys.argv[1:]); resolves to stdout, rejects on a non-zero exit. */
export function runPython(code: string, args: string[] = [], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, ['-c', code, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`python exited ${code}: ${err}`))));
  });
}

export function sum(a: ArrayLike<number>, from = 0, to = a.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += a[i]!;
  return s;
}

// sum(x) * 255 vs the raw byte sum of image i: every float32 k/255 is off by at most 2^-25 (half an ulp below 1),
// so the sum of 784 of them, times 255, may be off by up to 784 * 255 * 2^-25 = 0.006 (Fashion-MNIST test image 0
// is off by 0.0013, more than 1e-3). Check that bound, and the exact integer sum of round(x * 255).
export const IMAGE_SUM_TOLERANCE = 784 * 255 * 2 ** -25;
export function assertImageSum(x: Float32Array, i: number, expected: number): void {
  const s = sum(x, i * 784, (i + 1) * 784);
  assert.ok(
    Math.abs(s * 255 - expected) <= IMAGE_SUM_TOLERANCE,
    `sum(x)*255 = ${s * 255}, raw sum ${expected}`,
  );
  let k = 0;
  for (let j = i * 784; j < (i + 1) * 784; j++) k += Math.round(x[j]! * 255);
  assert.equal(k, expected);
}
