// `npm run demo`, the main job: train the cnn-s baseline on Fashion-MNIST (ONNX Runtime training; cached after the
// first run), then run the compression pipeline of examples/fashion-mnist/edgefit.yaml — its stages, its gates
// against the baseline, the deployed version and the Shirt class — register and promote the result, and print a
// summary table with the paths of the manifest and the HTML report. A second run with nothing changed reuses every
// stage from the cache. DEMO_EPOCHS sets the baseline's training length (default 2).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmtBytes, pct, table } from '../src/cli/command.js';
import { main } from '../src/cli/main.js';
import { runPipeline } from '../src/pipeline/run.js';

const example = fileURLToPath(new URL('../examples/fashion-mnist/', import.meta.url));
const baseline = join(example, 'baseline', 'cnn-s.onnx');
const t0 = performance.now();

if (!existsSync(baseline)) {
  const epochs = process.env.DEMO_EPOCHS ?? '2';
  process.stderr.write(`training the cnn-s baseline (${epochs} epochs) → ${baseline}\n`);
  const code = await main([
    'train',
    '--model',
    'cnn-s',
    '--data',
    'fashion-mnist',
    '--epochs',
    epochs,
    '--out',
    baseline,
    '--seed',
    '0',
  ]);
  if (code !== 0) process.exit(code);
} else process.stderr.write(`baseline: ${baseline} (cached; delete it to retrain)\n`);

const r = await runPipeline(join(example, 'edgefit.yaml'), { log: (l) => process.stderr.write(`${l}\n`) });
const m = r.summary;
const rows: (string | number)[][] = [
  [
    'baseline cnn-s (FP32)',
    fmtBytes(m.baseline.bytes),
    pct(m.baseline.accuracy),
    pct(m.baseline.slices.shirt ?? NaN),
    '',
  ],
  ...m.stages.map((s, i) => [
    `${i + 1}. ${s.name}: ${s.technique}`,
    fmtBytes(s.after.bytes),
    pct(s.after.accuracy),
    '',
    `${s.seconds.toFixed(1)} s${s.cached ? ' (cached)' : ''}`,
  ]),
  [
    'candidate',
    fmtBytes(m.candidate.bytes),
    pct(m.candidate.accuracy),
    pct(m.candidate.slices.shirt ?? NaN),
    '',
  ],
];
if (m.deployed)
  rows.push([
    `deployed before (v${m.deployed.version})`,
    fmtBytes(m.deployed.bytes),
    pct(m.deployed.accuracy),
    pct(m.deployed.slices.shirt ?? NaN),
    '',
  ]);
process.stdout.write(
  [
    '',
    table(['model', 'size', 'accuracy', 'shirt recall', 'time'], rows),
    '',
    `${m.compressionRatio.toFixed(1)}× smaller than the FP32 baseline; accuracy ${((m.baseline.accuracy - m.candidate.accuracy) * 100).toFixed(2)} points below it (10,000 test images)`,
    ...m.gates.map((g) => `${g.passed ? 'pass' : 'FAIL'}  ${g.name}: ${g.message}`),
    r.promoted
      ? `promoted: ${m.name}@${r.version} is deployed on ${m.device}`
      : `not promoted (${m.name}@${r.version} stays a candidate)`,
    `manifest: ${r.manifest}`,
    `report:   ${r.report}`,
    `total ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    '',
  ].join('\n'),
);
if (!r.gates.every((g) => g.passed)) process.exitCode = 4;
