// `npm run demo`: the longest chain of edgefit that has landed, run through the real CLI on real data:
//   train cnn-s on Fashion-MNIST (ONNX Runtime training) → inspect → static INT8 (calibrated QDQ) → compare,
// ending in a size / accuracy / latency table. Files go to ./demo-out. Set DEMO_EPOCHS to change the training
// length (default 1 epoch, about 20 s on 2 cores; 3 epochs reach ≈ 91.5 %).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../src/cli/main.js';
import { fmtBytes, pct, table } from '../src/cli/command.js';

const out = join(process.cwd(), 'demo-out');
mkdirSync(out, { recursive: true });
const epochs = process.env.DEMO_EPOCHS ?? '1';

/** Run one CLI command with --json and return its result object (stderr progress passes through). */
async function edgefit(...args: string[]): Promise<Record<string, unknown>> {
  process.stderr.write(`\n$ edgefit ${args.join(' ')}\n`);
  let stdout = '';
  const code = await main([...args, '--json'], { stdout: (s) => (stdout += s) });
  if (code !== 0) {
    process.stderr.write(`edgefit ${args[0]} failed with exit code ${code}\n`);
    process.exit(code);
  }
  return JSON.parse(stdout) as Record<string, unknown>;
}

const fp32 = join(out, 'cnn-s.onnx');
const int8 = join(out, 'cnn-s.int8.onnx');
const t = await edgefit(
  'train',
  '--model',
  'cnn-s',
  '--data',
  'fashion-mnist',
  '--epochs',
  epochs,
  '--out',
  fp32,
  '--seed',
  '0',
);
const info = await edgefit('inspect', fp32);
const q = await edgefit(
  'quantize',
  fp32,
  int8,
  '--mode',
  'static',
  '--calib-data',
  'fashion-mnist',
  '--calib-samples',
  '512',
  '--data',
  'fashion-mnist',
);
const fp = await edgefit('eval', fp32, '--data', 'fashion-mnist', '--quiet');
const i8 = await edgefit('eval', int8, '--data', 'fashion-mnist', '--quiet');

const n = (x: unknown) => Number(x);
const rows = [
  [
    'cnn-s fp32 (trained by edgefit)',
    fmtBytes(n(q.bytesBefore)),
    pct(n(fp.accuracy)),
    `${n(fp.throughput).toFixed(0)}/s`,
  ],
  [
    'cnn-s int8 (static QDQ)',
    fmtBytes(n(q.bytesAfter)),
    pct(n(i8.accuracy)),
    `${n(i8.throughput).toFixed(0)}/s`,
  ],
];
process.stdout.write(
  [
    '',
    `trained ${t.epochs} epoch(s) in ${n(t.seconds).toFixed(1)} s; ${n(info.params).toLocaleString('en-US')} parameters, ${(n(info.macs) / 1e6).toFixed(2)} M MACs per image`,
    `INT8: ${(n(q.bytesAfter) / n(q.bytesBefore)).toFixed(3)}× the FP32 size, accuracy ${pct(n(q.accuracyBefore))} → ${pct(n(q.accuracyAfter))} on the 10,000 test images`,
    '',
    table(['model', 'size', 'test accuracy', 'eval throughput'], rows),
    '',
    `files in ${out}`,
    '',
  ].join('\n'),
);
