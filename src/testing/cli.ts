// Run the real `edgefit` binary (bin/edgefit.mjs) in a child process, as a user would, for CLI tests.
import { spawnSync } from 'node:child_process';
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
