import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '../ir/tensor.js';
import { buildStudent } from './students.js';
import { TeacherRunner, gatherRows, loadTeacher, teacherLogits } from './teacher.js';

const shape = { input: [1, 28, 28], classes: 10 };
const data = (n: number, k = 1) => ({
  n,
  inputShape: [1, 28, 28],
  x: Float32Array.from({ length: n * 784 }, (_, i) => ((i * 7919 * k) % 1000) / 1000),
  name: 'rows',
});

test('cached teacher logits equal fresh ones; a changed teacher, data or augmentation misses the cache', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-teacher-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const teacher = loadTeacher(buildStudent({ family: 'cnn', width: 8, depth: 2 }, shape, 1));
  const d = data(300);

  const fresh = await teacherLogits(teacher, d, { cacheDir: false, batchSize: 64 });
  assert.equal(fresh.cached, false);
  assert.equal(fresh.classes, 10);
  assert.equal(fresh.logits.length, 3000);
  const first = await teacherLogits(teacher, d, { cacheDir: dir });
  assert.equal(first.cached, false);
  const again = await teacherLogits(teacher, d, { cacheDir: dir });
  assert.equal(again.cached, true, 'the second run reads the cache');
  assert.equal(again.file, first.file);
  assert.deepEqual(again.logits, fresh.logits, 'cached logits are the fresh ones, bit for bit');
  // and the online runner gives the same rows
  const runner = await TeacherRunner.create(teacher);
  const rows = [5, 17, 299];
  const x = new Float32Array(rows.length * 784);
  rows.forEach((r, i) => x.set(d.x.subarray(r * 784, (r + 1) * 784), i * 784));
  const online = (await runner.run(x, rows.length, [1, 28, 28]))[teacher.outputName]!;
  await runner.release();
  const cachedRows = gatherRows(again.logits, 10, rows);
  const od = online.data as Float32Array;
  const cd = cachedRows.data as Float32Array;
  for (let i = 0; i < od.length; i++) assert.ok(Math.abs(od[i]! - cd[i]!) <= 1e-5, `row value ${i}`);

  // the teacher changes (one weight): a new key, recomputed, different logits
  const changed = teacher.model.clone();
  const w = changed.graph.initializers.get('head.weight')!;
  const v = Float32Array.from(w.const!.toNumbers());
  v[0]! += 0.5;
  changed.graph.setInitializer(w, Tensor.from('float32', w.const!.dims, v, w.name));
  const t2 = loadTeacher(changed);
  assert.notEqual(t2.hash, teacher.hash);
  const r2 = await teacherLogits(t2, d, { cacheDir: dir });
  assert.equal(r2.cached, false, 'a changed teacher is not served the old logits');
  assert.notEqual(r2.file, first.file);
  assert.notDeepEqual(r2.logits, fresh.logits);
  // other data, another augmentation: other keys
  assert.equal((await teacherLogits(teacher, data(300, 3), { cacheDir: dir })).cached, false);
  assert.equal((await teacherLogits(teacher, d, { cacheDir: dir, augmentation: 'flip' })).cached, false);
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.logits')).length, 4);

  // a damaged cache file is recomputed and rewritten, never read
  writeFileSync(first.file!, 'EFTLOGIT garbage');
  const healed = await teacherLogits(teacher, d, { cacheDir: dir });
  assert.equal(healed.cached, false);
  assert.deepEqual(healed.logits, fresh.logits);
  assert.equal((await teacherLogits(teacher, d, { cacheDir: dir })).cached, true);
});
