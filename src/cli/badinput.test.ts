// The bad-input suite: every command on every bad input (fixtures from scripts/fixtures/gen_bad_inputs.ts in
// test/fixtures/bad, plus a folder named like a model, a missing path and bad output paths made here). Each run
// must end with the documented exit code class (2 bad input, 3 unsupported), a message that names the file or
// value (a first line `edgefit <command>: …`; a list of graph problems may follow), no stack and no "internal error", nothing left in the output folder (no temp file, no partial
// output, no data file) and every input file byte-identical. BADINPUT_PRINT=1 prints the outcome table.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../testing/fixtures.js';
import { main } from './main.js';

interface Case {
  /** Case name (the table row). */
  name: string;
  /** The command line; `{in}` is the fixture folder's copy, `{out}` the run's empty output folder. */
  args: string[];
  /** Expected exit code. */
  code: 2 | 3;
  /** What the message must name (a file path, option or value). */
  names: string;
}

/** Every file under `dir` (relative path → sha256). */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

// model inputs that are broken, and the commands that read a model
const BAD_MODELS: [string, string][] = [
  ['empty.onnx', 'empty.onnx'],
  ['text.onnx', 'text.onnx'],
  ['garbage.onnx', 'garbage.onnx'],
  ['truncated.onnx', 'truncated.onnx'],
  ['no-graph.onnx', 'no-graph.onnx'],
  ['dangling.onnx', 'defined_nowhere'],
  ['no-opset.onnx', 'no-opset.onnx'],
  ['ext-missing.onnx', 'ext-missing.weights'],
  ['ext-escape.onnx', '../outside.weights'],
  ['ext-short.onnx', 'ext-short.onnx'],
  ['folder.onnx', 'folder.onnx'],
  ['missing.onnx', 'missing.onnx'],
];
const MODEL_COMMANDS: [string, (m: string) => string[]][] = [
  ['inspect', (m) => ['inspect', m]],
  ['convert', (m) => ['convert', m, '{out}/o.onnx', '--external-data']],
  ['eval', (m) => ['eval', m, '--data', '{in}/ok.npy', '--labels', '{in}/labels.npy']],
  ['optimize', (m) => ['optimize', m, '{out}/o.onnx']],
  ['quantize', (m) => ['quantize', m, '{out}/o.onnx', '--mode', 'dynamic']],
  [
    'compare a',
    (m) => ['compare', m, '{in}/good.onnx', '--data', '{in}/ok.npy', '--labels', '{in}/labels.npy'],
  ],
  [
    'compare b',
    (m) => ['compare', '{in}/good.onnx', m, '--data', '{in}/ok.npy', '--labels', '{in}/labels.npy'],
  ],
  [
    'train',
    (m) => [
      'train',
      '--model',
      m,
      '--data',
      '{in}/ok.npy',
      '--labels',
      '{in}/labels.npy',
      '--epochs',
      '1',
      '--val-split',
      '0',
      '--out',
      '{out}/o.onnx',
    ],
  ],
  ['prune', (m) => ['prune', m, '{out}/o.onnx', '--ratio', '0.5']],
];
/** inspect reports what it can of a graph that other commands refuse (a warning, exit 0): not a failure case. */
const INSPECT_WARNS = new Set(['dangling.onnx', 'no-opset.onnx']);

// data inputs that are broken, for the good model, and the commands that read data
const BAD_DATA: [string, string[], string][] = [
  ['nan', ['{in}/nan.npy', '--labels', '{in}/labels.npy'], 'nan.npy'],
  ['label out of range', ['{in}/ok.npy', '--labels', '{in}/labels-range.npy'], 'labels-range.npy'],
  ['wrong shape', ['{in}/shape.npy', '--labels', '{in}/labels.npy'], 'shape.npy'],
  ['truncated .npy', ['{in}/truncated.npy', '--labels', '{in}/labels.npy'], 'truncated.npy'],
  ['text in a CSV', ['{in}/words.csv'], 'words.csv'],
  ['empty folder', ['{in}/empty-folder'], 'empty-folder'],
  ['corrupt images only', ['{in}/corrupt-images'], 'corrupt-images'],
  ['missing path', ['{in}/nosuch-data'], 'nosuch-data'],
];
const DATA_COMMANDS: [string, (d: string[]) => string[]][] = [
  ['eval', (d) => ['eval', '{in}/good.onnx', '--data', ...d]],
  ['compare', (d) => ['compare', '{in}/good.onnx', '{in}/good.onnx', '--data', ...d]],
  [
    'train',
    (d) => [
      'train',
      '--model',
      '{in}/good.onnx',
      '--data',
      ...d,
      '--epochs',
      '1',
      '--val-split',
      '0',
      '--out',
      '{out}/o.onnx',
    ],
  ],
  [
    'quantize static',
    (d) => ['quantize', '{in}/good.onnx', '{out}/o.onnx', '--mode', 'static', '--calib-data', ...d],
  ],
];
/** Data cases a command does not fail on, by design (calibration needs no labels). */
const DATA_OK = new Set(['quantize static/label out of range']);

// output paths that cannot be written, for every command that writes a model
const BAD_OUTPUTS: [string, string, string][] = [
  ['output is a folder', '{out}/folder.onnx', 'folder.onnx'],
  ['output parent is a file', '{out}/file/o.onnx', 'file'],
];
const WRITE_COMMANDS: [string, (o: string) => string[]][] = [
  ['convert', (o) => ['convert', '{in}/good.onnx', o, '--external-data']],
  ['optimize', (o) => ['optimize', '{in}/good.onnx', o]],
  ['quantize', (o) => ['quantize', '{in}/good.onnx', o, '--mode', 'dynamic']],
  ['build', (o) => ['build', 'mlp', o]],
  [
    'train',
    (o) => [
      'train',
      '--model',
      '{in}/good.onnx',
      '--data',
      '{in}/ok.npy',
      '--labels',
      '{in}/labels.npy',
      '--epochs',
      '1',
      '--val-split',
      '0',
      '--out',
      o,
    ],
  ],
  ['prune', (o) => ['prune', '{in}/good.onnx', o, '--ratio', '0.5']],
];

export const CASES: Case[] = [
  ...BAD_MODELS.flatMap(([file, names]) =>
    MODEL_COMMANDS.filter(([c]) => !(c === 'inspect' && INSPECT_WARNS.has(file))).map(([c, f]) => ({
      name: `${c} / model ${file}`,
      args: f(`{in}/${file}`),
      code: 2 as const,
      names,
    })),
  ),
  ...BAD_DATA.flatMap(([what, d, names]) =>
    DATA_COMMANDS.filter(([c]) => !DATA_OK.has(`${c}/${what}`)).map(([c, f]) => ({
      name: `${c} / data ${what}`,
      args: f(d),
      code: 2 as const,
      names,
    })),
  ),
  ...BAD_OUTPUTS.flatMap(([what, o, names]) =>
    WRITE_COMMANDS.map(([c, f]) => ({ name: `${c} / ${what}`, args: f(o), code: 2 as const, names })),
  ),
];

let root = '';
let inDir = '';
before(() => {
  root = mkdtempSync(join(tmpdir(), 'edgefit-bad-'));
  inDir = join(root, 'in');
  cpSync(join(REPO_ROOT, 'test', 'fixtures', 'bad'), inDir, { recursive: true });
  mkdirSync(join(inDir, 'folder.onnx'));
  writeFileSync(join(root, 'outside.weights'), new Uint8Array(31360)); // what ext-escape.onnx points at
});
after(() => rmSync(root, { recursive: true, force: true }));

test(`bad-input suite: ${CASES.length} runs`, async () => {
  const inputs = snapshot(inDir);
  const failures: string[] = [];
  const rows: string[] = [];
  for (const [i, c] of CASES.entries()) {
    const out = join(root, `out${i}`);
    mkdirSync(out);
    mkdirSync(join(out, 'folder.onnx'));
    writeFileSync(join(out, 'file'), 'a file, not a folder');
    const before = snapshot(out);
    const args = c.args.map((a) => a.replaceAll('{in}', inDir).replaceAll('{out}', out));
    let stdout = '';
    let stderr = '';
    const code = await main([...args, '--quiet'], {
      stdout: (s) => void (stdout += s),
      stderr: (s) => void (stderr += s),
    });
    const msg = stderr.trim();
    rows.push(`${c.name.padEnd(44)} exit ${code}  ${msg.replaceAll(root, '…').slice(0, 160)}`);
    const bad: string[] = [];
    if (code !== c.code) bad.push(`exit ${code}, expected ${c.code}`);
    if (!msg.startsWith(`edgefit ${args[0]}: `)) bad.push('message does not start with the command');
    if (/internal error|bug in edgefit|\n\s+at /.test(stderr)) bad.push('internal error or stack');
    if (!msg.includes(c.names)) bad.push(`message does not name ${c.names}`);
    if (stdout !== '') bad.push('stdout not empty');
    const after = snapshot(out);
    const extra = [...after.keys()].filter((k) => !before.has(k));
    if (extra.length) bad.push(`left ${extra.join(', ')}`);
    if (readdirSync(join(out, 'folder.onnx')).length) bad.push('wrote into the folder');
    if (bad.length) failures.push(`${c.name}: ${bad.join('; ')}\n    ${args.join(' ')}\n    ${msg}`);
  }
  if (process.env.BADINPUT_PRINT) console.log(rows.join('\n'));
  const now = snapshot(inDir);
  assert.deepEqual([...now], [...inputs], 'every input file is unchanged');
  assert.deepEqual(
    failures,
    [],
    `${failures.length} of ${CASES.length} runs failed:\n${failures.join('\n')}`,
  );
});
