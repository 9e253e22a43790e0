import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRuntimeAccepts, ortReason, runtimeRefusal, Session, runModel, RuntimeError } from './index.js';
import {
  exitCodeOf,
  ModelRefusedError,
  RuntimeUnsupportedError,
  ShapeError,
  UnsupportedError,
} from '../errors.js';
import { decodeModel, saveModel } from '../onnx/index.js';
import { Graph, Model, Tensor, tensorType } from '../ir/index.js';
import { TORCH_FIXTURES, readIo, bitEqual, maxAbsDiff } from '../testing/fixtures.js';

const CNN = join(TORCH_FIXTURES, 'cnn-s_op13.onnx');
const io = readIo(join(TORCH_FIXTURES, 'cnn-s_op13.io.json'));

describe('ORT adapter', () => {
  test('sessions from a path, bytes and an IR model give identical outputs matching torch', async () => {
    const bytes = new Uint8Array(readFileSync(CNN));
    const ir = decodeModel(bytes);
    const a = await runModel(CNN, io.inputs, { threads: 1 });
    const b = await runModel(bytes, io.inputs, { threads: 2 });
    const c = await runModel(ir, io.inputs, { threads: 1 });
    assert.ok(bitEqual(a.logits!.data, c.logits!.data));
    assert.ok(maxAbsDiff(a.logits!.data, b.logits!.data) < 1e-6);
    assert.ok(maxAbsDiff(a.logits!.data, io.outputs.logits!.data) < 1e-5);
    assert.deepEqual(a.logits!.dims, [2, 10]);
    assert.equal(a.logits!.dtype, 'float32');
  });

  test('optimisation levels agree; optimizedModelPath writes the graph ORT runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgefit-ort-'));
    try {
      const opt = join(dir, 'opt.onnx');
      const off = await runModel(CNN, io.inputs, { optimizationLevel: 'disabled', threads: 1 });
      const all = await runModel(CNN, io.inputs, {
        optimizationLevel: 'all',
        threads: 1,
        optimizedModelPath: opt,
      });
      assert.ok(maxAbsDiff(off.logits!.data, all.logits!.data) < 1e-5);
      assert.ok(existsSync(opt));
      const m = decodeModel(new Uint8Array(readFileSync(opt)));
      assert.ok(m.graph.nodes.length > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('session config entries (disable prepacking) are accepted', async () => {
    const r = await runModel(CNN, io.inputs, { threads: 1, config: { 'session.disable_prepacking': '1' } });
    assert.ok(maxAbsDiff(r.logits!.data, io.outputs.logits!.data) < 1e-5);
  });

  test('feeds are checked before ORT runs: names, dtypes, static dims, missing inputs', async () => {
    const s = await Session.create(decodeModel(new Uint8Array(readFileSync(CNN))), {
      threads: 1,
      label: 'cnn-s',
    });
    try {
      const x = io.inputs.input!;
      await assert.rejects(
        s.run({ input: { ...x, dtype: 'float64', data: Float64Array.from(x.data as Float32Array) } }),
        (e: unknown) => e instanceof ShapeError && /"input".*float32.*float64/.test((e as Error).message),
      );
      await assert.rejects(
        s.run({ input: { dtype: 'float32', dims: [2, 3, 28, 28], data: new Float32Array(2 * 3 * 784) } }),
        (e: unknown) => e instanceof ShapeError && /\[n,1,28,28\].*\[2,3,28,28\]/.test((e as Error).message),
      );
      await assert.rejects(
        s.run({}),
        (e: unknown) => e instanceof ShapeError && /"input".*not given/.test((e as Error).message),
      );
      await assert.rejects(
        s.run({ input: x, extra: x }),
        (e: unknown) => e instanceof ShapeError && /no input "extra"/.test((e as Error).message),
      );
      // data length that does not fit the dims
      await assert.rejects(
        s.run({ input: { dtype: 'float32', dims: [2, 1, 28, 28], data: new Float32Array(5) } }),
        ShapeError,
      );
      // a symbolic batch takes any size
      const one = await s.run({
        input: { dtype: 'float32', dims: [1, 1, 28, 28], data: (x.data as Float32Array).subarray(0, 784) },
      });
      assert.deepEqual(one.logits!.dims, [1, 10]);
    } finally {
      await s.release();
    }
  });

  test('a model ORT cannot load gives RuntimeError naming the model', async () => {
    const g = new Graph('bad');
    const x = g.addInput('x', tensorType('float32', [2]));
    const n = g.addNode({ opType: 'NoSuchOp', inputs: [x], outputs: ['y'], name: 'mystery' });
    g.outputs.push(n.output());
    const m = new Model(g);
    m.opsetImports.set('', 17);
    await assert.rejects(
      Session.create(m, { label: 'bad.onnx' }),
      (e: unknown) => e instanceof RuntimeError && /bad\.onnx/.test((e as Error).message),
    );
    await assert.rejects(
      Session.create(new TextEncoder().encode('garbage'), { label: 'garbage.onnx' }),
      RuntimeError,
    );
  });

  test("a user's file ORT refuses is an input error by cause (3 unsupported, 2 malformed); a graph edgefit built is exit 1", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgefit-ort-'));
    try {
      const custom = () => {
        const g = new Graph('custom');
        const x = g.addInput('x', tensorType('float32', [2]));
        const n = g.addNode({
          opType: 'Mystery',
          domain: 'com.example',
          inputs: [x],
          outputs: ['y'],
          name: 'm',
        });
        g.outputs.push(n.output());
        const m = new Model(g);
        m.opsetImports.set('', 17);
        m.opsetImports.set('com.example', 1);
        return m;
      };
      const file = join(dir, 'custom.onnx');
      saveModel(custom(), file);
      for (const attempt of [checkRuntimeAccepts(file), Session.create(file)])
        await assert.rejects(attempt, (e: unknown) => {
          assert.ok(e instanceof RuntimeUnsupportedError, String(e));
          assert.equal(exitCodeOf(e), 3);
          assert.equal(e.subject.file, file);
          assert.match(
            e.message,
            /custom\.onnx: com\.example:Mystery\(-1\) is not a registered function\/op$/,
          );
          return true;
        });
      // the same graph built in memory (a train step, a quantized model) refused by ORT: edgefit's inconsistency
      await assert.rejects(Session.create(custom(), { label: 'the train-step graph' }), (e: unknown) => {
        assert.ok(e instanceof RuntimeError && exitCodeOf(e) === 1, String(e));
        assert.match(
          (e as Error).message,
          /^ONNX Runtime cannot load the train-step graph: com\.example:Mystery/,
        );
        return true;
      });
      const noOpset = custom();
      noOpset.opsetImports.clear();
      saveModel(noOpset, file);
      await assert.rejects(checkRuntimeAccepts(file), (e: unknown) => {
        assert.ok(e instanceof ModelRefusedError && exitCodeOf(e) === 2, String(e));
        assert.match(
          (e as Error).message,
          /^ONNX Runtime refuses .*custom\.onnx: Missing opset in the model/,
        );
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // ORT's reason without its C++ source location, signature or wrappers
    assert.equal(
      ortReason(
        new Error(
          'Load model from a.onnx failed:/onnxruntime_src/onnxruntime/core/graph/model.cc:202 onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&) Unsupported model IR version: 99, max supported IR version: 13\n',
        ),
      ),
      'Unsupported model IR version: 99, max supported IR version: 13',
    );
    assert.ok(runtimeRefusal('a.onnx', new Error('Protobuf parsing failed.')) instanceof ModelRefusedError);
  });

  test('int4 outputs are refused instead of crashing the process', async () => {
    const g = new Graph('q4');
    const x = g.addInput('x', tensorType('float32', [4]));
    const scale = g.addInitializer('scale', Tensor.scalar('float32', 0.5));
    const zp = g.addInitializer('zp', new Tensor('int4', [], new Uint8Array([0])));
    const q = g.addNode({ opType: 'QuantizeLinear', inputs: [x, scale, zp], outputs: ['q'] });
    q.output().type = tensorType('int4', [4]);
    g.outputs.push(q.output());
    const m = new Model(g);
    m.opsetImports.set('', 21);
    m.irVersion = 10;
    const s = await Session.create(m, { threads: 1 });
    try {
      await assert.rejects(
        s.run({ x: { dtype: 'float32', dims: [4], data: Float32Array.from([1, 2, 3, -1]) } }),
        UnsupportedError,
      );
    } finally {
      await s.release();
    }
  });
});
