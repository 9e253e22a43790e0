// The real-world coverage table (issue 16): each model × command through the real CLI, recording the exit code
// (and a figure: max |Δ output| vs FP32 for quantize/convert, first → last training loss for train).
// `npx tsx bench/coverage.ts [--tv <folder of torchvision exports>] [--out table.md]` — the torchvision exports come
// from scripts/fixtures/gen_torchvision_models.py (the tests' cache folder, src/testing/torchvision.ts).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodePng } from '../src/data/png.js';
import { writeNpy } from '../src/data/npy.js';
import { loadModel, MAX_KNOWN_OPSET } from '../src/onnx/index.js';
import { compareModels, randomInputs } from '../src/passes/index.js';
import { EDGEFIT_BIN } from '../src/testing/cli.js';
import { packageModels, REPO_ROOT } from '../src/testing/fixtures.js';
import { TORCHVISION_FAMILIES, torchvisionModels } from '../src/testing/torchvision.js';

const { values } = parseArgs({ options: { tv: { type: 'string' }, out: { type: 'string' } } });
const tv = values.tv ?? ('dir' in torchvisionModels() ? (torchvisionModels() as { dir: string }).dir : '');
const work = mkdtempSync(join(tmpdir(), 'edgefit-coverage-'));

function images(): string {
  const root = join(work, 'images');
  for (let c = 0; c < 4; c++) {
    mkdirSync(join(root, `c${c}`), { recursive: true });
    for (let i = 0; i < 4; i++) {
      const px = new Uint8Array(32 * 32 * 3).map((_, k) => ((k * (c + 3) + i * 17) % 251) & 255);
      writeFileSync(join(root, `c${c}`, `${i}.png`), encodePng(px, 32, 32, 3));
    }
  }
  return root;
}
function npy(dims: number[]): string {
  const p = join(work, `x_${dims.join('x')}.npy`);
  const n = dims.reduce((a, b) => a * b, 1);
  writeNpy(p, {
    dtype: 'float32',
    shape: dims,
    data: Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000),
  });
  return p;
}

interface Row {
  model: string;
  cells: Record<string, string>;
}
/** The convert column upgrades to the newest opset edgefit converts to (ORT 1.30's newest, 26). */
const CONVERT = `convert --opset ${MAX_KNOWN_OPSET}`;
const COMMANDS = [CONVERT, 'quantize dynamic', 'quantize static', 'quantize fp16', 'train'] as const;

function run(args: string[]): { code: number | null; json?: Record<string, any>; err: string } {
  const r = spawnSync(process.execPath, [EDGEFIT_BIN, ...args, '--json', '--quiet'], { encoding: 'utf8' });
  let json: Record<string, any> | undefined;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { code: r.status, json, err: r.stderr.split('\n')[0] ?? '' };
}

async function diff(a: string, b: string, feeds: Parameters<typeof compareModels>[2]): Promise<string> {
  try {
    const c = await compareModels(loadModel(a), loadModel(b), feeds);
    return c.maxAbsDiff.toExponential(1);
  } catch (e) {
    return `run failed: ${(e as Error).message.slice(0, 60)}`;
  }
}

const img = images();
const models: { name: string; path: string; shape?: number[]; classifier: boolean; feeds?: () => any }[] = [];
const OLD = join(REPO_ROOT, 'test', 'fixtures', 'oldopset');
models.push({
  name: 'PP-OCR-style recogniser (opset 10)',
  path: join(OLD, 'rec_op10.onnx'),
  shape: [8, 3, 32, 64],
  classifier: false,
});
models.push({
  name: 'PP-OCR-style direction classifier (opset 9)',
  path: join(OLD, 'cls_op9.onnx'),
  shape: [8, 3, 24, 48],
  classifier: false,
});
for (const p of packageModels().filter((p) => p.name.startsWith('silero')))
  models.push({ name: p.name, path: p.path, classifier: false, feeds: () => p.feeds(loadModel(p.path)) });
if (tv)
  for (const o of [13, 17])
    for (const f of TORCHVISION_FAMILIES)
      models.push({
        name: `${f} (opset ${o})`,
        path: join(tv, `${f}_op${o}.onnx`),
        shape: [8, 3, 32, 32],
        classifier: true,
      });

const rows: Row[] = [];
for (const m of models) {
  const cells: Record<string, string> = {};
  const model = loadModel(m.path);
  const feeds = m.feeds ? m.feeds() : randomInputs(model, { seed: 3, batch: 2 });
  for (const c of COMMANDS) {
    const out = join(work, 'out.onnx');
    let args: string[] | undefined;
    if (c === CONVERT) args = ['convert', m.path, out, '--opset', String(MAX_KNOWN_OPSET)];
    else if (c === 'train')
      args = m.classifier
        ? [
            'train',
            '--model',
            m.path,
            '--data',
            img,
            '--epochs',
            '2',
            '--batch',
            '8',
            '--optimizer',
            'adamw',
            '--lr',
            '0.0003',
            '--val-split',
            '0',
            '--out',
            out,
          ]
        : undefined;
    else {
      const mode = c.split(' ')[1]!;
      args = ['quantize', m.path, out, '--mode', mode];
      if (mode === 'static') {
        if (!m.shape) args = undefined;
        else args.push('--calib-data', npy(m.shape));
      }
    }
    if (!args) {
      cells[c] = 'n/a';
      continue;
    }
    const r = run(args);
    if (r.code !== 0) cells[c] = `exit ${r.code}: ${r.err.replace(/\|/g, '/').slice(0, 80)}`;
    else if (c === 'train') {
      const h = r.json?.history as { trainLoss: number }[];
      cells[c] =
        `exit 0, loss ${h[0]!.trainLoss.toFixed(2)} → ${h[h.length - 1]!.trainLoss.toFixed(2)}${r.json?.opsetUpgrade ? ` (opset → ${r.json.opsetUpgrade.to})` : ''}`;
    } else {
      const up = r.json?.opsetUpgrade ? ` (opset → ${r.json.opsetUpgrade.to})` : '';
      cells[c] = `exit 0, max Δ ${await diff(m.path, out, feeds)}${up}`;
    }
    process.stderr.write(`${m.name} | ${c} | ${cells[c]}\n`);
  }
  rows.push({ model: m.name, cells });
  if (values.out) writeFileSync(values.out, `${tableOf(rows)}\n`);
}
function tableOf(rs: Row[]): string {
  const lines = [`| model | ${COMMANDS.join(' | ')} |`, `| --- | ${COMMANDS.map(() => '---').join(' | ')} |`];
  for (const r of rs) lines.push(`| ${r.model} | ${COMMANDS.map((c) => r.cells[c]).join(' | ')} |`);
  return lines.join('\n');
}
console.log(tableOf(rows));
