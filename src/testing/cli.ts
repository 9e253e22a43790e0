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
