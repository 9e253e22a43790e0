// Torch-exported models made at test time by scripts/fixtures/gen_prune_models.py (Debian's python3-torch), into a
// cache folder keyed by the script's hash. Without python/torch the caller skips — except in CI (CI=true), where
// that is a failure.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './fixtures.js';

export const PRUNE_GENERATOR = join(REPO_ROOT, 'scripts', 'fixtures', 'gen_prune_models.py');
const PYTHON = '/usr/bin/python3';

/** The folder of generated models (`<name>.onnx`), or a reason when python/torch is missing outside CI. */
export function torchModels(set: 'test' | 'bench'): { dir: string } | { skip: string } {
  const hash = createHash('sha256').update(readFileSync(PRUNE_GENERATOR)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), 'edgefit-torch-models', `${set}-${hash}`);
  if (existsSync(join(dir, 'done.json'))) return { dir };
  const r = spawnSync(PYTHON, [PRUNE_GENERATOR, dir, set], { encoding: 'utf8' });
  if (r.status === 0 && existsSync(join(dir, 'done.json'))) return { dir };
  const why = `${PYTHON} ${PRUNE_GENERATOR} failed: ${r.error?.message ?? r.stderr.trim().split('\n').slice(-3).join(' ')}`;
  if (process.env.CI === 'true') throw new Error(`${why} (CI needs python3-torch: scripts/setup-system.sh)`);
  return { skip: why };
}
