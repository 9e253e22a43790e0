// Models ONNX Runtime refuses are the user's input, with one rule across every command that runs them: an
// unsupported opset / IR version / op → exit 3, a malformed model → exit 2, both naming the file and giving ORT's
// reason; never "internal error", never a stack, nothing written. Runs main() in-process on models made here.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Emitter, type Model } from '../ir/index.js';
import { buildModel } from '../models/index.js';
import { saveModel } from '../onnx/index.js';
import { main } from './main.js';

let dir = '';

const BAD: { name: string; make: (m: Model) => void; code: number; reason: RegExp }[] = [
  { name: 'opset99', make: (m) => m.opsetImports.set('', 99), code: 3, reason: /Opset 99/ },
  { name: 'ir99', make: (m) => (m.irVersion = 99), code: 3, reason: /IR version: 99/ },
  { name: 'no-opset-import', make: (m) => m.opsetImports.clear(), code: 2, reason: /Missing opset/ },
  {
    name: 'unknown-domain-op',
    make: (m) => {
      const g = m.graph;
      const x = g.inputs[0]!;
      const use = x.uses[0]!;
      const y = new Emitter(g, { opset: 17 }).op('Frobnicate', [x], {}, { domain: 'com.example' });
      y.type = x.type;
      use.node.setInput(use.index, y);
      g.toposort();
      m.opsetImports.set('com.example', 1);
    },
    code: 3,
    reason: /com\.example:Frobnicate.*not a registered/,
  },
];

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-refused-'));
  saveModel(buildModel('mlp', { seed: 0 }), join(dir, 'ok.onnx'));
  for (const b of BAD) {
    const m = buildModel('mlp', { seed: 0 });
    b.make(m);
    saveModel(m, join(dir, `${b.name}.onnx`));
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

const COMMANDS: { name: string; args: (f: string, out: string) => string[] }[] = [
  { name: 'eval', args: (f) => ['eval', f, '--data', 'mnist', '--limit', '64'] },
  { name: 'compare', args: (f) => ['compare', join(dir, 'ok.onnx'), f, '--data', 'mnist', '--limit', '64'] },
  {
    name: 'train --model',
    args: (f, out) => [
      'train',
      '--model',
      f,
      '--data',
      'mnist',
      '--epochs',
      '1',
      '--limit',
      '128',
      '--out',
      out,
    ],
  },
  { name: 'quantize --mode int4', args: (f, out) => ['quantize', f, out, '--mode', 'int4'] },
  { name: 'quantize --mode dynamic', args: (f, out) => ['quantize', f, out, '--mode', 'dynamic'] },
  { name: 'optimize', args: (f, out) => ['optimize', f, out] },
  { name: 'prune', args: (f, out) => ['prune', f, out, '--ratio', '0.5'] },
];

describe('models ONNX Runtime refuses: exit 2/3 naming the file and ORT reason, in every command', () => {
  for (const b of BAD)
    for (const c of COMMANDS)
      it(`${c.name} on ${b.name} → exit ${b.code}`, async () => {
        const file = join(dir, `${b.name}.onnx`);
        const out = join(dir, `out-${b.name}.onnx`);
        const before = readdirSync(dir).sort();
        const r = await run(c.args(file, out));
        assert.equal(r.code, b.code, r.stderr);
        assert.match(r.stderr, new RegExp(`${b.name}\\.onnx`), 'names the file');
        assert.match(r.stderr, b.reason, "gives ORT's reason");
        assert.doesNotMatch(r.stderr, /internal error|bug in edgefit|\n\s+at /);
        assert.doesNotMatch(r.stderr, /onnxruntime_src|onnxruntime::/, 'no C++ location');
        assert.equal(existsSync(out), false, 'nothing written');
        assert.deepEqual(readdirSync(dir).sort(), before, 'no file left behind');
      });
});
