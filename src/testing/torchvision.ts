// Torchvision exports for tests, generated at test time (they are too big to commit: resnet18 is 45 MB) by
// scripts/fixtures/gen_torchvision_models.py (`--preset tests`; the same generator writes the benchmarks' exports
// with `--preset bench`) into a cache folder keyed by the script's hash and arguments, so they are made once per
// machine and remade when either changes. Python with torch/torchvision is guaranteed in CI
// (scripts/setup-system.sh): there a missing interpreter fails the tests; elsewhere they are skipped with a reason.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './fixtures.js';

export const TORCHVISION_FAMILIES = [
  'resnet18',
  'mobilenet_v2',
  'mobilenet_v3_small',
  'squeezenet1_1',
  'shufflenet_v2_x0_5',
  'densenet121',
  'efficientnet_b0',
  'regnet_x_400mf',
  'mnasnet0_5',
] as const;

/** The one torchvision exporter (tests and benchmarks). */
export const TORCHVISION_SCRIPT = join(REPO_ROOT, 'scripts', 'fixtures', 'gen_torchvision_models.py');
const SCRIPT = TORCHVISION_SCRIPT;
const ARGS = ['--preset', 'tests', '--families', TORCHVISION_FAMILIES.join(',')];
const PYTHON = '/usr/bin/python3';

/**
 * The cache folder with every export (`<family>_op13.onnx`, `<family>_op17.onnx`, `resnet18_train_op13.*`), or a
 * skip reason when python/torch is missing outside CI. Throws in CI when it cannot be made.
 */
export function torchvisionModels(): { dir: string } | { skip: string } {
  const hash = createHash('sha256')
    .update(readFileSync(SCRIPT))
    .update(ARGS.join(' '))
    .digest('hex')
    .slice(0, 16);
  const root = join(REPO_ROOT, 'node_modules', '.cache', 'edgefit-torchvision');
  const dir = join(root, hash);
  if (existsSync(join(dir, 'done'))) return { dir };
  const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision, onnx'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    const why = `${PYTHON} with torch/torchvision/onnx is not available (scripts/setup-system.sh installs them)`;
    if (process.env.CI === 'true')
      throw new Error(`${why}: the torchvision tests cannot run in CI without it`);
    return { skip: why };
  }
  mkdirSync(root, { recursive: true });
  const tmp = join(root, `${hash}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  const r = spawnSync(PYTHON, [SCRIPT, ...ARGS, '--out', tmp], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0 || !existsSync(join(tmp, 'done'))) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`${SCRIPT} failed (exit ${r.status}):\n${r.stderr.slice(-2000)}`);
  }
  try {
    renameSync(tmp, dir);
  } catch {
    // another process finished first: its copy is complete
    rmSync(tmp, { recursive: true, force: true });
  }
  return { dir };
}
