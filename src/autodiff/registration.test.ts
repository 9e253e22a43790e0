// Registering the ops is part of loading the library: a program that imports only the autodiff driver and the IR
// (not src/ops/index.ts) differentiates a graph, and the quantizer's op table sees every op. Each check runs in a
// fresh process so no other test's imports can complete the registry for it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from '../testing/fixtures.js';

const url = (p: string) => JSON.stringify(pathToFileURL(join(REPO_ROOT, p)).href);

function runAlone(code: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    encoding: 'utf8',
    cwd: REPO_ROOT,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('buildGradients alone (without importing src/ops/index.ts) differentiates Relu(x·w)', () => {
  const r = runAlone(`
    import { buildGradients } from ${url('src/autodiff/grad.ts')};
    import { Emitter, Graph, Model, tensorType } from ${url('src/ir/index.ts')};
    const g = new Graph('main');
    const m = new Model(g);
    m.opsetImports.set('', 17);
    const x = g.addInput('x', tensorType('float32', [4]));
    const w = g.addInput('w', tensorType('float32', [4]));
    const e = new Emitter(g, { opset: 17 });
    const p = e.mul(x, w);
    p.type = tensorType('float32', [4]);
    const y = e.op('Relu', [p]);
    y.type = tensorType('float32', [4]);
    const loss = e.op('ReduceSum', [y], { keepdims: { type: 'int', value: 0 } });
    loss.type = tensorType('float32', []);
    const { grads } = buildGradients(m, loss, [x, w]);
    console.log(JSON.stringify([...grads.values()].map((v) => v.producer?.opType ?? 'none')));
  `);
  assert.equal(r.code, 0, r.stderr);
  const ops = JSON.parse(r.stdout.trim()) as string[];
  assert.equal(ops.length, 2);
  assert.ok(
    ops.every((o) => o !== 'none'),
    r.stdout,
  );
});

test('the registry is complete for any module that imports it (quantizer op table, lookup)', () => {
  const r = runAlone(`
    import { lookup, allEntries } from ${url('src/ops/registry.ts')};
    console.log(JSON.stringify({ relu: !!lookup('Relu', '', 17)?.grad, conv: !!lookup('Conv', '', 17)?.quant, n: allEntries().length }));
  `);
  assert.equal(r.code, 0, r.stderr);
  const o = JSON.parse(r.stdout.trim()) as { relu: boolean; conv: boolean; n: number };
  assert.deepEqual({ relu: o.relu, conv: o.conv }, { relu: true, conv: true });
  assert.ok(o.n > 150, `only ${o.n} entries`);
});
