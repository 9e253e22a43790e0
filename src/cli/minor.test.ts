// Small CLI defects from the first-hour report: each used to be silent or confusing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import { buildModel } from '../models/index.js';
import { encodeModel, saveModel } from '../onnx/index.js';
import { edgefitInProcess as run } from '../testing/cli.js';

let dir = '';
let mlp = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-minor-'));
  mlp = join(dir, 'mlp.onnx');
  saveModel(buildModel('mlp', { seed: 1 }), mlp);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function edited(
  name: string,
  f: (p: ReturnType<typeof fromBinary<typeof ModelProtoSchema>>) => void,
): string {
  const p = fromBinary(ModelProtoSchema, encodeModel(buildModel('mlp', { seed: 1 })));
  f(p);
  const out = join(dir, name);
  writeFileSync(out, toBinary(ModelProtoSchema, p));
  return out;
}

test('inspect warns about a node input defined nowhere and an opset newer than ORT runs', async () => {
  const dangling = edited('dangling.onnx', (p) => (p.graph!.node[1]!.input[0] = 'defined_nowhere'));
  const r = await run('inspect', dangling, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(
    JSON.parse(r.stdout).warnings.some((w: string) =>
      /"defined_nowhere" of node .* is not a graph input/.test(w),
    ),
    r.stdout,
  );
  const future = edited('future.onnx', (p) => (p.opsetImport.find((o) => o.domain === '')!.version = 30n));
  const t = await run('inspect', future);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /warning: opset 30 \(ai\.onnx\) is newer than ONNX Runtime 1\.30 supports \(26\)/);
  const clean = await run('inspect', mlp, '--json');
  assert.deepEqual(JSON.parse(clean.stdout).warnings, []);
});

test('names that match nothing are refused like --include: --shapes, --values, --dims, --keep-fp32', async () => {
  const out = join(dir, 'o.onnx');
  const cases: [string[], RegExp][] = [
    [
      ['optimize', mlp, out, '--shapes', 'nosuch=1x2'],
      /--shapes names "nosuch", which is not an input of the model \(inputs: input\)/,
    ],
    [['optimize', mlp, out, '--values', 'nosuch=3'], /--values names "nosuch"/],
    [
      ['optimize', mlp, out, '--dims', 'nosuch=3'],
      /--dims names "nosuch", which is not a symbolic dimension .*\(N\)/,
    ],
    [
      ['quantize', mlp, out, '--mode', 'fp16', '--keep-fp32', 'nosuch'],
      /--keep-fp32 entry "nosuch" matches no node/,
    ],
    [
      ['quantize', mlp, out, '--mode', 'dynamic', '--include', 'nosuch'],
      /--include entry "nosuch" matches no node/,
    ],
  ];
  for (const [args, msg] of cases) {
    const r = await run(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
  }
  assert.ok(!existsSync(out));
});

test('--limit -1 gets the range message; a negative value works as --opt=-x too', async () => {
  for (const args of [
    ['eval', mlp, '--data', 'fashion-mnist', '--limit', '-1'],
    ['eval', mlp, '--data', 'fashion-mnist', '--limit=-1'],
  ]) {
    const r = await run(...args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--limit must be an integer from 1 to \d+: current value is "-1"/);
    assert.doesNotMatch(r.stderr, /ambiguous/);
  }
});

test('convert --align 3 is refused with the reason; nothing written', async () => {
  const out = join(dir, 'a3.onnx');
  for (const align of ['3', '32', '1000']) {
    const r = await run('convert', mlp, out, '--external-data', '--align', align);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--align must be a power of two from 64/);
  }
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.startsWith('a3')),
    [],
  );
  const ok = await run('convert', mlp, out, '--external-data', '--align', '64', '--json');
  assert.equal(ok.code, 0, ok.stderr);
});

test('an unexpected argument: the prefix once, and what the command takes', async () => {
  const r = await run('inspect', mlp, 'extra');
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    'edgefit inspect: unexpected argument "extra" (edgefit inspect takes <model.onnx>; see `edgefit inspect --help`)\n',
  );
  const m = await run('convert', mlp);
  assert.equal(m.stderr, 'edgefit convert: needs <in.onnx> <out.onnx> (see `edgefit convert --help`)\n');
});

test('--version names edgefit, onnxruntime-node and node; --mode int8 says which modes mean INT8', async () => {
  for (const v of ['--version', '-v', 'version']) {
    const r = await run(v);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^edgefit \d+\.\d+\.\d+ \(onnxruntime-node 1\.\d+\.\d+, node v\d+/);
  }
  const q = await run('quantize', mlp, join(dir, 'q.onnx'), '--mode', 'int8');
  assert.equal(q.code, 2);
  assert.match(q.stderr, /current value is "int8" \(INT8 is --mode static .* or --mode dynamic/);
});
