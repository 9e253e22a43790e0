// `npm run demo`: the longest chain of edgefit that has landed, on real data, ending in a size/accuracy table.
// Today: build cnn-s → inspect → save with external data (aligned, mappable) → evaluate on Fashion-MNIST test.
// (Training, INT8 and the pipeline join this chain as they land.)
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildModel } from '../src/models/index.js';
import { saveModel, loadModel } from '../src/onnx/index.js';
import { inferShapes } from '../src/ops/index.js';
import { summarize } from '../src/summary/index.js';
import { loadDataset } from '../src/data/index.js';
import { evaluate } from '../src/eval/index.js';
import { table, fmtBytes, pct } from '../src/cli/command.js';

const out = join(process.cwd(), 'demo-out');
mkdirSync(out, { recursive: true });
const rows: (string | number)[][] = [];
const step = (s: string) => process.stderr.write(`• ${s}\n`);

step('building cnn-s (SPEC.md) with seed 0');
const m = buildModel('cnn-s', { seed: 0 });
const inline = join(out, 'cnn-s.onnx');
saveModel(m, inline);
inferShapes(m);
const s = summarize(m, { batch: 1 });
step(`cnn-s: ${s.params.toLocaleString('en-US')} parameters, ${(s.macs / 1e6).toFixed(2)} M MACs per image`);

step('saving with external data aligned to 4096 bytes');
const ext = join(out, 'cnn-s.ext.onnx');
const r = saveModel(loadModel(inline), ext, { externalData: true });

const test = loadDataset('fashion-mnist', 'test');
step(
  `evaluating on Fashion-MNIST test (${test.n} images; ${test.dropped.length} malformed source rows dropped)`,
);
for (const [label, file, bytes] of [
  ['cnn-s fp32 (untrained)', inline, s.bytes],
  ['cnn-s fp32, external data', ext, r.modelBytes + r.dataBytes],
] as const) {
  const e = await evaluate(file, test, { batchSize: 256, threads: 2 });
  rows.push([label, fmtBytes(bytes), pct(e.accuracy), `${e.throughput.toFixed(0)}/s`]);
}
process.stdout.write(`\n${table(['model', 'size', 'accuracy', 'eval speed'], rows)}\n\nfiles in ${out}\n`);
