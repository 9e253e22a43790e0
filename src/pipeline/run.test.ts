import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openData } from '../data/index.js';
import { evaluate } from '../eval/index.js';
import { Tensor, type Model } from '../ir/index.js';
import { loadModel, saveModel } from '../onnx/index.js';
import type { Stage } from '../stage/types.js';
import { edgefit } from '../testing/cli.js';
import { REPO_ROOT } from '../testing/fixtures.js';
import { Registry } from './registry.js';
import { runPipeline } from './run.js';
import { watchPipeline } from './watch.js';

let dir = '';
let base = '';

const CONFIG = (extra = '') => `version: 1
name: fm-mlp
source:
  model: base.onnx
data:
  train: fashion-mnist
  evaluation: fashion-mnist
  evaluationLimit: 1000
slices:
  shirt: {class: 6}
device:
  name: box
  threads: 1
stages:
  - optimize:
  - quantize: {mode: static, calibrator: minmax, calibSamples: 128}
gates:
  maxDropPoints: 2
registry:
  path: registry
${extra}`;

/** A config folder with the trained baseline and `text` as edgefit.yaml. */
function project(name: string, text: string): string {
  const d = join(dir, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  copyFileSync(base, join(d, 'base.onnx'));
  writeFileSync(join(d, 'edgefit.yaml'), text);
  return join(d, 'edgefit.yaml');
}

/** A stage that scales the last Gemm's weights by `factor` (a damaged model, for gate tests). */
function damage(factor: number): Stage<unknown> {
  return {
    name: 'finetune',
    needs: [],
    async run(m: Model) {
      const out = m.clone();
      const w = [...out.graph.initializers.values()]
        .filter((v) => v.const && v.const.dtype === 'float32' && v.const.dims.length === 2)
        .at(-1)!;
      const data = new Float32Array(w.const!.toFloat32());
      for (let i = 0; i < data.length; i += 3) data[i]! *= factor;
      out.graph.setInitializer(w, Tensor.from('float32', w.const!.dims, data));
      return {
        model: out,
        report: { stage: 'finetune', seconds: 0, figures: {}, notes: [], gates: [], detail: {} },
      };
    },
  };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-pipeline-'));
  base = join(dir, 'base.onnx');
  const r = edgefit(
    'train',
    '--model',
    'mlp',
    '--data',
    'fashion-mnist',
    '--epochs',
    '1',
    '--limit',
    '2000',
    '--test-limit',
    '500',
    '--out',
    base,
    '--quiet',
  );
  assert.equal(r.code, 0, r.stderr);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('pipeline run', () => {
  test('runs the stages, registers and promotes; a rerun reuses every stage; --if-changed does nothing; a new upstream model reruns all', async () => {
    const cfg = project('p1', CONFIG());
    const r1 = await runPipeline(cfg);
    assert.equal(r1.promoted, true);
    assert.deepEqual(
      r1.summary.stages.map((s) => s.cached),
      [false, false],
    );
    assert.ok(r1.bytes < 0.35 * r1.summary.baseline.bytes, `${r1.bytes} vs ${r1.summary.baseline.bytes}`);
    assert.ok(Math.abs(r1.accuracy - r1.summary.baseline.accuracy) < 0.02);
    assert.equal(r1.gates.length, 1);
    assert.equal(r1.gates[0]!.name, 'max-drop');
    assert.ok(existsSync(r1.manifest) && existsSync(r1.report) && existsSync(r1.model));
    const manifest = JSON.parse(readFileSync(r1.manifest, 'utf8'));
    assert.equal(manifest.schema, 'edgefit.manifest/1');
    assert.equal(manifest.stages[1].technique, 'static INT8 (QDQ)');
    assert.equal(manifest.candidate.perClassRecall.length, 10);
    assert.equal(typeof manifest.slices.shirt.class, 'number');
    // The candidate's accuracy is what evaluate() gives on the same 1,000 items.
    const src = await openData('fashion-mnist', { limit: 1000, split: 'test' });
    const e = await evaluate(loadModel(r1.model), src);
    await src.close();
    assert.equal(e.accuracy, r1.accuracy);

    const t0 = performance.now();
    const r2 = await runPipeline(cfg);
    const seconds = (performance.now() - t0) / 1000;
    assert.deepEqual(
      r2.summary.stages.map((s) => s.cached),
      [true, true],
    );
    assert.equal(r2.accuracy, r1.accuracy);
    assert.equal(r2.version, r1.version, 'the same candidate keeps its registry version');
    assert.ok(seconds < 10, `rerun took ${seconds} s`);
    const r3 = await runPipeline(cfg, { ifChanged: true });
    assert.equal(r3.skipped, true);

    // A changed upstream model: every stage runs again, and a new version is registered.
    const m = loadModel(join(dir, 'p1', 'base.onnx'));
    const w = [...m.graph.initializers.values()].find((v) => v.const && v.const.dims.length === 2)!;
    const d = new Float32Array(w.const!.toFloat32());
    d[0]! += 0.5;
    m.graph.setInitializer(w, Tensor.from('float32', w.const!.dims, d));
    saveModel(m, join(dir, 'p1', 'base.onnx'));
    const r4 = await runPipeline(cfg, { ifChanged: true });
    assert.equal(r4.skipped, false);
    assert.deepEqual(
      r4.summary.stages.map((s) => s.cached),
      [false, false],
    );
    assert.equal(r4.version, r1.version! + 1);
  });

  test('a gate failing on the critical slice blocks promotion while overall accuracy passes', async () => {
    const cfg = project(
      'p2',
      CONFIG().replace(
        '  maxDropPoints: 2\n',
        '  maxDropPoints: 2\n  slices:\n    shirt: {minRecall: 0.99}\n',
      ),
    );
    const r = await runPipeline(cfg);
    const byName = Object.fromEntries(r.gates.map((g) => [g.name, g]));
    assert.equal(byName['max-drop']!.passed, true);
    assert.equal(byName['min-recall:shirt']!.passed, false);
    assert.equal(byName['min-recall:shirt']!.value, r.summary.candidate.perClassRecall[6]);
    assert.equal(r.promoted, false);
    const reg = Registry.open(join(dir, 'p2', 'registry'));
    assert.equal(reg.deployed('fm-mlp', 'box'), undefined);
    assert.equal(reg.list().length, 1);
    assert.equal(reg.list()[0]!.state, 'candidate');
    reg.close();
    // The CLI prints the verdicts and exits 4.
    const c = edgefit('pipeline', 'run', cfg, '--json', '--quiet');
    assert.equal(c.code, 4, c.stderr);
    const j = c.json();
    assert.equal(j.promoted, false);
    assert.ok(
      j.gates.some((g: any) => g.name === 'min-recall:shirt' && g.passed === false && g.limit === 0.99),
    );
    for (const k of ['manifest', 'report', 'bytes', 'accuracy']) assert.ok(k in j, k);
  });

  test('the deployed-model gate compares against the version deployed in the registry', async () => {
    const cfg = project(
      'p3',
      CONFIG('').replace('  maxDropPoints: 2\n', '  maxDropPoints: 100\n  maxDropVsDeployedPoints: 0.5\n'),
    );
    const good = await runPipeline(cfg);
    assert.equal(good.promoted, true, JSON.stringify(good.gates));
    const cfg2 = cfg;
    // A damaged float model before quantization: the candidate loses accuracy against the deployed version.
    writeFileSync(
      cfg2,
      readFileSync(cfg2, 'utf8').replace('  - optimize:\n', '  - optimize:\n  - finetune: {epochs: 1}\n'),
    );
    const bad = await runPipeline(cfg2, { stages: { finetune: () => damage(-3) } });
    const g = bad.gates.find((x) => x.name === 'max-drop-vs-deployed')!;
    assert.equal(g.passed, false);
    assert.ok(bad.summary.deployed, 'the deployed version was evaluated');
    assert.equal(bad.summary.deployed!.version, good.version);
    assert.equal(bad.summary.deployed!.accuracy, good.accuracy);
    assert.ok(Math.abs(g.value! - (good.accuracy - bad.accuracy) * 100) < 1e-9);
    assert.ok(g.value! > 0.5, String(g.value));
    assert.equal(bad.promoted, false);
    const reg = Registry.open(join(dir, 'p3', 'registry'));
    assert.equal(reg.deployed('fm-mlp', 'box')!.version, good.version);
    reg.close();
  });

  test('killing the runner mid-stage and rerunning resumes from the last finished stage; the registry stays consistent', async () => {
    const cfg = project(
      'p4',
      CONFIG('').replace(
        '  - quantize: {mode: static, calibrator: minmax, calibSamples: 128}\n',
        '  - quantize: {mode: static, calibrator: minmax, calibSamples: 128}\n  - finetune: {epochs: 1}\n',
      ),
    );
    const script = join(dir, 'hang.mts');
    writeFileSync(
      script,
      `import { runPipeline } from ${JSON.stringify(join(REPO_ROOT, 'src/pipeline/run.ts'))};
await runPipeline(${JSON.stringify(cfg)}, {
  log: (l) => process.stderr.write(l + '\\n'),
  stages: { finetune: () => ({ name: 'finetune', needs: [], run: () => new Promise(() => setInterval(() => {}, 1000)) }) },
});`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the runner never reached stage 3: ${err}`)), 120_000);
      child.stderr.on('data', (b) => {
        err += String(b);
        if (/stage 3\/3 finetune: running/.test(err)) {
          clearTimeout(t);
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((r) => child.once('exit', r));
    const logs: string[] = [];
    const finished: Stage<unknown> = {
      name: 'finetune',
      needs: [],
      run: async (m: Model) => ({
        model: m,
        report: { stage: 'finetune', seconds: 0, figures: {}, notes: [], gates: [], detail: {} },
      }),
    };
    const r = await runPipeline(cfg, { stages: { finetune: () => finished }, log: (l) => logs.push(l) });
    assert.deepEqual(
      r.summary.stages.map((s) => s.cached),
      [true, true, false],
      logs.join('\n'),
    );
    assert.equal(r.version, 1);
    const db = new Database(join(dir, 'p4', 'registry', 'registry.db'));
    assert.equal((db.prepare('PRAGMA integrity_check').get() as any).integrity_check, 'ok');
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM versions').get() as any).n, 1);
    db.close();
    // No half-written stage entry is ever taken as a finished stage.
    const entries = readdirSync(join(dir, 'p4', '.edgefit', 'cache', 'stages')).filter(
      (f) => !f.startsWith('.'),
    );
    for (const e of entries)
      assert.ok(existsSync(join(dir, 'p4', '.edgefit', 'cache', 'stages', e, 'entry.json')));
  });

  test('config errors name the YAML path and line; a missing source names the file', async () => {
    const cfg = project('p5', CONFIG().replace('calibrator: minmax', 'calibrator: kl'));
    const c = edgefit('pipeline', 'run', cfg, '--quiet');
    assert.equal(c.code, 2);
    assert.match(
      c.stderr,
      /stages\[1\]\.quantize\.calibrator: expected one of minmax\|percentile\|entropy\|mse, got "kl" \(.*edgefit\.yaml:16\)/,
    );
    const cfg2 = project('p6', CONFIG().replace('model: base.onnx', 'model: nothere.onnx'));
    const c2 = edgefit('pipeline', 'run', cfg2, '--quiet');
    assert.equal(c2.code, 2);
    assert.match(c2.stderr, /source\.model: nothere\.onnx does not exist/);
  });
  test('watch reruns when the upstream model file changes, and only then', async () => {
    const cfg = project('p7', CONFIG());
    const ac = new AbortController();
    const runs: number[] = [];
    const w = watchPipeline(cfg, {
      intervalSeconds: 0.2,
      maxRuns: 2,
      signal: ac.signal,
      onRun: (r) => {
        runs.push(r.version!);
        if (runs.length === 1) {
          // A new upstream model: the watcher sees the file change and runs again.
          const m = loadModel(join(dir, 'p7', 'base.onnx'));
          const v = [...m.graph.initializers.values()].find((x) => x.const && x.const.dims.length === 2)!;
          const d = new Float32Array(v.const!.toFloat32());
          d[1]! -= 0.25;
          m.graph.setInitializer(v, Tensor.from('float32', v.const!.dims, d));
          saveModel(m, join(dir, 'p7', 'base.onnx'));
        }
      },
    });
    const timer = setTimeout(() => ac.abort(), 120_000);
    const done = await w;
    clearTimeout(timer);
    assert.deepEqual(runs, [1, 2]);
    assert.deepEqual(
      done[1]!.summary.stages.map((s) => s.cached),
      [false, false],
    );
    // The report of a real run has one chart point per model: baseline, each stage, the deployed version.
    const html = readFileSync(done[1]!.report, 'utf8');
    assert.equal((html.match(/class="point"/g) ?? []).length, 1 + 2 + 1);
    assert.match(html, /data-kind="deployed"/);
  });
  test('a prune stage: a dense smaller model before quantization (library pruning through the stage contract)', async () => {
    const cfg = project(
      'p8',
      CONFIG()
        .replace('  - optimize:\n', '  - optimize:\n  - prune: {ratio: 0.5, importance: l1}\n')
        .replace('maxDropPoints: 2', 'maxDropPoints: 100'),
    );
    const r = await runPipeline(cfg);
    const [, pruned, quantized] = r.summary.stages;
    assert.equal(pruned!.name, 'prune');
    assert.equal(pruned!.technique, 'structured pruning (l1)');
    assert.ok(
      pruned!.after.params < 0.5 * r.summary.baseline.params,
      `${pruned!.after.params} of ${r.summary.baseline.params}`,
    );
    assert.ok(
      quantized!.after.bytes < 0.15 * r.summary.baseline.bytes,
      `${quantized!.after.bytes} of ${r.summary.baseline.bytes}`,
    );
    assert.equal((pruned!.report as any).detail.kind, 'prune');
  });
  test("a distill stage: the stage input learns from the source model (the run's teacher)", async () => {
    const cfg = project(
      'p9',
      CONFIG()
        .replace('  evaluationLimit: 1000\n', '  evaluationLimit: 1000\n  trainLimit: 1500\n')
        .replace(
          '  - optimize:\n',
          '  - optimize:\n  - distill: {student: input, epochs: 1, temperature: 4, alpha: 0.5}\n',
        )
        .replace('maxDropPoints: 2', 'maxDropPoints: 100'),
    );
    const r = await runPipeline(cfg);
    const d = r.summary.stages[1]!;
    assert.equal(d.name, 'distill');
    assert.equal(d.technique, 'knowledge distillation');
    // The student is the input model (same size), trained: its weights changed, its accuracy is measured.
    assert.equal(d.after.params, r.summary.baseline.params);
    assert.notEqual(d.after.digest, r.summary.stages[0]!.after.digest);
    assert.ok(d.after.accuracy > 0.3, String(d.after.accuracy));
  });
});
