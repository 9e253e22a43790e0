import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { InputError } from '../errors.js';
import { buildModel } from '../models/index.js';
import { loadModel } from '../onnx/index.js';
import { Registry, modelDigest, parseRef } from './registry.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-registry-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('registry', () => {
  test('register, promote, supersede, roll back: one deployed version per name and device, every change logged', () => {
    const reg = Registry.open(join(dir, 'r1'), { create: true });
    try {
      const a = buildModel('mlp', { seed: 1 });
      const b = buildModel('mlp', { seed: 2 });
      const v1 = reg.register(a, { stages: [] }, { name: 'fm', device: 'box', accuracy: 0.9 });
      const v2 = reg.register(b, { stages: [] }, { name: 'fm', device: 'box', accuracy: 0.91 });
      assert.equal(v1.version, 1);
      assert.equal(v2.version, 2);
      assert.equal(v1.state, 'candidate');
      assert.notEqual(v1.digest, v2.digest);
      // The artifact loads back as the same model.
      assert.equal(modelDigest(loadModel(reg.modelPath(v1))), v1.digest);
      assert.equal(reg.deployed('fm', 'box'), undefined);

      reg.promote({ name: 'fm', device: 'box', version: 1 });
      assert.equal(reg.deployed('fm', 'box')!.version, 1);
      const p = reg.promote({ name: 'fm', device: 'box', version: 2 });
      assert.equal(p.previous!.version, 1);
      assert.equal(reg.deployed('fm', 'box')!.version, 2);
      assert.equal(reg.get({ name: 'fm', device: 'box', version: 1 }).state, 'superseded');

      const r = reg.rollback('fm', 'box');
      assert.equal(r.deployed.version, 1);
      assert.equal(r.rolledBack.version, 2);
      assert.equal(reg.get({ name: 'fm', device: 'box', version: 2 }).state, 'rolled-back');
      assert.equal(reg.deployed('fm', 'box')!.version, 1);
      // v1 was deployed first: nothing earlier to roll back to.
      assert.throws(() => reg.rollback('fm', 'box'), /first version deployed/);

      // Another device is independent.
      reg.register(a, { stages: [] }, { name: 'fm', device: 'cam' });
      assert.equal(reg.deployed('fm', 'cam'), undefined);
      assert.equal(reg.list({ name: 'fm', device: 'cam' }).length, 1);

      assert.deepEqual(
        reg
          .events({ name: 'fm', device: 'box' })
          .map((e) => `${e.action} v${e.version} ${e.from ?? '-'}→${e.to}`),
        [
          'register v1 -→candidate',
          'register v2 -→candidate',
          'promote v1 candidate→deployed',
          'promote v1 deployed→superseded',
          'promote v2 candidate→deployed',
          'rollback v2 deployed→rolled-back',
          'rollback v1 superseded→deployed',
        ],
      );
    } finally {
      reg.close();
    }
  });

  test('the same model registered twice shares one artifact; the database enforces one deployed version', () => {
    const root = join(dir, 'r2');
    const reg = Registry.open(root, { create: true });
    const m = buildModel('mlp', { seed: 3 });
    const v1 = reg.register(m, { stages: [] }, { name: 'x', device: 'd' });
    const v2 = reg.register(m, { stages: [] }, { name: 'x', device: 'd' });
    assert.equal(v1.digest, v2.digest);
    assert.deepEqual(
      readdirSync(join(root, 'artifacts')).filter((f) => !f.startsWith('.')),
      [v1.digest],
    );
    assert.ok(v1.bytes > 200_000, String(v1.bytes));
    reg.promote({ name: 'x', device: 'd', version: 1 });
    reg.close();
    // A second deployed row for the same name/device is refused by the database itself.
    const db = new Database(join(root, 'registry.db'));
    assert.throws(
      () => db.prepare(`UPDATE versions SET state = 'deployed' WHERE name = 'x' AND version = 2`).run(),
      /UNIQUE/,
    );
    db.close();
  });

  test('unknown references and folders are InputErrors naming them', () => {
    assert.throws(
      () => Registry.open(join(dir, 'none')),
      (e: unknown) => e instanceof InputError && /No registry at/.test(e.message),
    );
    const reg = Registry.open(join(dir, 'r3'), { create: true });
    try {
      assert.throws(() => reg.get(parseRef('fm@7', 'box')), /no fm@7 \(device box\): it has no versions/);
      reg.register(buildModel('mlp', { seed: 1 }), {}, { name: 'fm', device: 'box' });
      assert.throws(() => reg.get(parseRef('fm@7', 'box')), /it has versions 1/);
      assert.throws(() => reg.get(parseRef('fm@deployed', 'box')), /Nothing of fm is deployed/);
      assert.throws(() => parseRef('fm@@1', 'box'), /not a registry reference/);
      assert.equal(reg.get(parseRef('fm', 'box')).version, 1);
    } finally {
      reg.close();
    }
    assert.ok(existsSync(join(dir, 'r3', 'registry.db')));
  });
});

describe('registry serve', () => {
  test('serves the deployed version read-only with a bearer token; a device downloads it and gets the same model', async () => {
    const root = join(dir, 'served');
    const reg = Registry.open(root, { create: true });
    const m1 = buildModel('mlp', { seed: 5 });
    const m2 = buildModel('mlp', { seed: 6 });
    reg.register(m1, { schema: 'x', n: 1 }, { name: 'fm', device: 'box', accuracy: 0.8 });
    const v2 = reg.register(m2, { schema: 'x', n: 2 }, { name: 'fm', device: 'box', accuracy: 0.9 });
    reg.promote({ name: 'fm', device: 'box', version: 2 });
    reg.close();
    const { serveRegistry } = await import('./registry-server.js');
    const s = await serveRegistry({ dir: root, token: 'secret-token-1' });
    try {
      const auth = { authorization: 'Bearer secret-token-1' };
      assert.equal((await fetch(`${s.url}/v1/models`)).status, 401);
      assert.equal(
        (await fetch(`${s.url}/v1/models`, { headers: { authorization: 'Bearer wrong-token-1' } })).status,
        401,
      );
      assert.equal((await fetch(`${s.url}/v1/models`, { method: 'POST', headers: auth })).status, 405);
      const list = (await (await fetch(`${s.url}/v1/models`, { headers: auth })).json()) as any[];
      assert.deepEqual(
        list.map((v: any) => [v.name, v.device, v.version, v.digest]),
        [['fm', 'box', 2, v2.digest]],
      );
      const meta = (await (await fetch(`${s.url}/v1/models/fm/box`, { headers: auth })).json()) as any;
      assert.equal(meta.version, 2);
      assert.equal(meta.manifest.n, 2);
      assert.ok(meta.files.includes('model.onnx'), meta.files);
      const got = mkdtempSync(join(dir, 'device-'));
      for (const f of meta.files.filter((f: string) => f !== 'manifest.json')) {
        const r = await fetch(`${s.url}/v1/models/fm/box/files/${f}`, { headers: auth });
        assert.equal(r.status, 200);
        const etag = r.headers.get('etag')!;
        const { writeFileSync } = await import('node:fs');
        writeFileSync(join(got, f), Buffer.from(await r.arrayBuffer()));
        const again = await fetch(`${s.url}/v1/models/fm/box/files/${f}`, {
          headers: { ...auth, 'if-none-match': etag },
        });
        assert.equal(again.status, 304);
      }
      assert.equal(modelDigest(loadModel(join(got, 'model.onnx'))), v2.digest);
      assert.equal((await fetch(`${s.url}/v1/models/fm/cam`, { headers: auth })).status, 404);
      assert.equal(
        (await fetch(`${s.url}/v1/models/fm/box/files/..%2Fregistry.db`, { headers: auth })).status,
        404,
      );
      assert.equal(
        (await fetch(`${s.url}/v1/artifacts/${v2.digest}/model.onnx`, { headers: auth })).status,
        200,
      );
    } finally {
      await s.close();
    }
  });
});
