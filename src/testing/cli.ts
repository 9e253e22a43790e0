// Run the real `edgefit` binary (bin/edgefit.mjs) in a child process, as a user would, for CLI tests.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './fixtures.js';

export const EDGEFIT_BIN = join(REPO_ROOT, 'bin', 'edgefit.mjs');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as the one JSON object `--json` prints. */
  json: () => Record<string, any>;
}

export function edgefit(...args: string[]): CliRun {
  const r = spawnSync(process.execPath, [EDGEFIT_BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) };
}

/** The CLI in this process (fast: no start-up), both streams captured. */
export async function edgefitInProcess(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../cli/main.js');
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

/** Newest mtime under `dir` (ms). */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * dist/ as `npm ci` / `npm test` leave it (so bin/edgefit.mjs runs the compiled CLI): rebuilt here only when a
 * source is newer (a run of a test subset after an edit).
 */
export function ensureBuilt(): void {
  const entry = join(REPO_ROOT, 'dist', 'src', 'index.js');
  if (existsSync(entry) && statSync(entry).mtimeMs >= newest(join(REPO_ROOT, 'src'))) return;
  const r = spawnSync(join(REPO_ROOT, 'node_modules', '.bin', 'tsc'), ['-p', REPO_ROOT], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
}
