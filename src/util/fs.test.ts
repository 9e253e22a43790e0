import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InputError } from '../errors.js';
import { REPO_ROOT } from '../testing/fixtures.js';
import { checkWritable, removeStaleTemps, writeAtomic } from './fs.js';

const isRoot = process.getuid?.() === 0;

function expectWriteError(f: () => void, path: string, why: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof InputError, `an InputError, not ${String(e)}`);
    assert.equal(e.exitCode, 2);
    assert.ok(e.message.includes(path), `${e.message} names ${path}`);
    assert.match(e.message, why);
    return true;
  });
}

describe('writeAtomic', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'edgefit-fs-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an output path that is a folder: InputError naming it, no temp file left', () => {
    const d = join(dir, 'd.onnx');
    mkdirSync(d);
    expectWriteError(() => writeAtomic(d, new Uint8Array(1 << 20)), d, /it is a folder/);
    expectWriteError(() => checkWritable(d), d, /it is a folder/);
    assert.deepEqual(readdirSync(dir), ['d.onnx']);
    assert.deepEqual(readdirSync(d), []);
  });

  test('a parent that is a regular file: InputError naming the path and the file', () => {
    const f = join(dir, 'plain');
    writeFileSync(f, 'x');
    const p = join(f, 'sub', 'm.onnx');
    expectWriteError(() => writeAtomic(p, 'abc'), p, /plain is a file, not a folder/);
    expectWriteError(() => checkWritable(p), p, /is a file, not a folder/);
    assert.equal(readFileSync(f, 'utf8'), 'x');
    rmSync(f);
  });

  test(
    'a read-only folder: InputError, nothing written',
    { skip: isRoot && 'root ignores permissions' },
    () => {
      const ro = join(dir, 'ro');
      mkdirSync(ro);
      chmodSync(ro, 0o555);
      try {
        const p = join(ro, 'm.onnx');
        expectWriteError(() => writeAtomic(p, 'abc'), p, /no permission/);
        expectWriteError(() => checkWritable(p), p, /no permission/);
        assert.deepEqual(readdirSync(ro), []);
      } finally {
        chmodSync(ro, 0o755);
      }
    },
  );

  test('a folder that cannot be created (a dangling link), an empty path: InputError, not a bug', () => {
    const link = join(dir, 'dangling');
    symlinkSync(join(dir, 'no', 'such', 'folder'), link);
    const p = join(link, 'm.onnx');
    expectWriteError(() => writeAtomic(p, 'abc'), p, /does not exist and cannot be created/);
    expectWriteError(() => checkWritable(p), p, /does not exist and cannot be created/);
    rmSync(link);
    assert.throws(() => writeAtomic('', 'abc'), /output path is empty/);
  });

  test('a writer that fails part-way keeps its own error and leaves the old file', () => {
    const p = join(dir, 'keep.bin');
    writeAtomic(p, 'old');
    function* chunks() {
      yield 'new';
      throw new RangeError('bad tensor');
    }
    assert.throws(() => writeAtomic(p, chunks()), RangeError);
    assert.equal(readFileSync(p, 'utf8'), 'old');
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.endsWith('.tmp')),
      [],
    );
  });

  test('temp files of dead processes are removed; those of live ones are left', () => {
    const p = join(dir, 'm.onnx');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    const deadPid = Number(dead.stdout);
    const stale = join(dir, `.m.onnx.${deadPid}-0123456789ab.tmp`);
    const live = join(dir, `.m.onnx.${process.pid}-0123456789ab.tmp`);
    const other = join(dir, `.n.onnx.${deadPid}-0123456789ab.tmp`);
    for (const f of [stale, live, other]) writeFileSync(f, 'partial');
    writeAtomic(p, 'model');
    assert.ok(!existsSync(stale), 'a dead run’s temp file is removed');
    assert.ok(existsSync(live), 'a live writer’s temp file is left alone');
    assert.ok(existsSync(other), 'another target’s temp file is left alone');
    assert.deepEqual(removeStaleTemps(join(dir, 'n.onnx')), [other]);
    rmSync(live);
  });

  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    test(`${sig} during a write: the process dies of the signal, no temp file is left`, async () => {
      // A child writes 64 chunks with a pause in each (a slow disk); the signal arrives mid-write.
      const sub = mkdtempSync(join(dir, 'sig-'));
      const target = join(sub, 'big.ckpt');
      const started = join(sub, 'started');
      const fsUrl = pathToFileURL(join(REPO_ROOT, 'src', 'util', 'fs.ts')).href;
      const code = `
        import { writeFileSync } from 'node:fs';
        const { writeAtomic } = await import(${JSON.stringify(fsUrl)});
        function* chunks() {
          for (let i = 0; i < 64; i++) {
            if (i === 1) writeFileSync(${JSON.stringify(started)}, '');
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 15);
            yield new Uint8Array(65536).fill(i);
          }
        }
        writeAtomic(${JSON.stringify(target)}, chunks());
        await new Promise((r) => setTimeout(r, 5000));
        process.exit(7);
      `;
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        cwd: REPO_ROOT,
        stdio: 'ignore',
      });
      const exited = new Promise<[number | null, string | null]>((r) =>
        child.on('exit', (c, s) => r([c, s])),
      );
      let done = false;
      void exited.then(() => (done = true));
      while (!existsSync(started) && !done) await new Promise((r) => setTimeout(r, 10));
      assert.ok(!done, 'the child started writing');
      child.kill(sig);
      const [c, s] = await exited;
      assert.equal(s, sig, `died of ${sig} (exit ${c})`);
      const left = readdirSync(sub).filter((n) => n !== 'started');
      assert.deepEqual(
        left.filter((n) => n.endsWith('.tmp')),
        [],
        'no temp file',
      );
      // the write was atomic: the target is absent or complete
      if (left.includes('big.ckpt')) assert.equal(readFileSync(target).byteLength, 64 * 65536);
    });
});
