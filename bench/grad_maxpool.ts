// Overlapping/padded MaxPool gradient: the two formulations of the rule's Indices form, timed in ORT on ResNet
// stem shapes (3×3, stride 2, pad 1) — forward MaxPool (with Indices) + input gradient, 1 thread:
//   scatter  ScatterElements(reduction="add") into the flat input (needs opset 16; an older model would have to be
//            upgraded to 16 to use it);
//   onehot   per-offset masks scattered by a grouped one-hot ConvTranspose (src/ops/maxpool_grad.ts, any opset).
// Both are checked to give the same dX before timing. Interleaved rounds, minimum over `--processes` fresh
// processes of the median per process.
// `npx tsx bench/grad_maxpool.ts [--processes 3] [--reps 30]`
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildGradients, selectGradForms } from '../src/autodiff/grad.js';
import { A, Emitter, Graph, Model, tensorType } from '../src/ir/index.js';
import { inferShapes } from '../src/ops/index.js';
import { Session } from '../src/runtime/index.js';
import { randomFloat } from '../src/testing/fixtures.js';

const SHAPES = [
  { name: 'resnet stem [16,64,32,32]', dims: [16, 64, 32, 32] },
  { name: 'resnet stem [16,64,56,56]', dims: [16, 64, 56, 56] },
  { name: 'squeezenet [16,96,31,31] k3 s2 ceil', dims: [16, 96, 31, 31], ceil: true },
];
const FORMS = ['scatter', 'onehot'] as const;

function build(dims: number[], form: (typeof FORMS)[number], ceil: boolean): Model {
  const g = new Graph('main');
  const m = new Model(g);
  m.opsetImports.set('', 17);
  const x = g.addInput('x', tensorType('float32', dims));
  const e = new Emitter(g, { opset: 17 });
  const y = e.op('MaxPool', [x], {
    kernel_shape: A.ints([3, 3]),
    strides: A.ints([2, 2]),
    ...(ceil ? { ceil_mode: A.int(1) } : { pads: A.ints([1, 1, 1, 1]) }),
  });
  inferShapes(m);
  const dy = g.addInput('dy', tensorType('float32', [...y.shape!]));
  const { grads } = buildGradients(m, y, [x], {
    seed: dy,
    prefix: 'grad',
    forms: selectGradForms({ maxPoolOverlap: form }),
  });
  g.outputs = [grads.get(x)!, y];
  g.removeUnused();
  return m;
}

async function worker(reps: number): Promise<void> {
  const rows: Record<string, number> = {};
  for (const S of SHAPES) {
    const ms = FORMS.map((f) => build(S.dims, f, !!S.ceil));
    const dyDims = [...ms[0]!.graph.inputs[1]!.shape!] as number[];
    const feeds = { x: randomFloat(S.dims, 1), dy: randomFloat(dyDims, 2) };
    const sessions = await Promise.all(ms.map((m) => Session.create(m, { threads: 1 })));
    const outs = await Promise.all(sessions.map((s) => s.run(feeds)));
    const a = outs[0]![sessions[0]!.outputNames[0]!]!.data as Float32Array;
    const b = outs[1]![sessions[1]!.outputNames[0]!]!.data as Float32Array;
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
    if (d > 1e-5) throw new Error(`${S.name}: forms disagree (${d})`);
    const times: number[][] = FORMS.map(() => []);
    for (let w = 0; w < 5; w++) for (const s of sessions) await s.run(feeds);
    for (let r = 0; r < reps; r++)
      for (let i = 0; i < sessions.length; i++) {
        const t0 = performance.now();
        await sessions[i]!.run(feeds);
        times[i]!.push(performance.now() - t0);
      }
    FORMS.forEach((f, i) => {
      const t = times[i]!.sort((p, q) => p - q);
      rows[`${S.name}|${f}`] = t[t.length >> 1]!;
    });
    for (const s of sessions) await s.release();
  }
  process.stdout.write(JSON.stringify(rows));
}

const { values } = parseArgs({
  options: {
    worker: { type: 'boolean' },
    processes: { type: 'string', default: '3' },
    reps: { type: 'string', default: '30' },
  },
});
if (values.worker) await worker(Number(values.reps));
else {
  const best: Record<string, number> = {};
  for (let p = 0; p < Number(values.processes); p++) {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--worker', '--reps', values.reps!],
      {
        encoding: 'utf8',
      },
    );
    if (r.status !== 0) throw new Error(r.stderr);
    for (const [k, v] of Object.entries(JSON.parse(r.stdout) as Record<string, number>))
      best[k] = Math.min(best[k] ?? Infinity, v);
  }
  console.log('shape | form | forward+dX ms (1 thread, min over processes of the median)');
  for (const [k, v] of Object.entries(best)) console.log(`${k.replace('|', ' | ')} | ${v.toFixed(2)}`);
}
