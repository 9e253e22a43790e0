// `edgefit --help` starts fast because the command modules load no engine: each command's run() imports its
// library function when it runs. Checked on the static import graph of the sources (what Node loads at start-up),
// and the names --help lists (kept in import-free modules) against the modules that define them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../testing/fixtures.js';

/** Files and packages reached from `entry` by static (value) imports; `import type` is erased and not followed. */
function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const walk = (f: string) => {
    if (files.has(f)) return;
    files.add(f);
    const src = readFileSync(f, 'utf8');
    const re = /^\s*(import|export)\s+(type\s+)?([^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
    for (const m of src.matchAll(re)) {
      if (m[2]) continue;
      // import { type A, type B } from …: erased too
      const named = m[3]?.trim().match(/^\{([^}]*)\}\s*from$/);
      if (
        named &&
        named[1]!
          .split(',')
          .filter((x) => x.trim())
          .every((x) => x.trim().startsWith('type '))
      )
        continue;
      const spec = m[4]!;
      if (spec.startsWith('.')) walk(resolve(dirname(f), spec.replace(/\.js$/, '.ts')));
      else if (!spec.startsWith('node:')) packages.add(spec);
    }
  };
  walk(entry);
  return { files, packages };
}

test('the CLI loads no engine, runtime or protobuf at start-up', () => {
  const g = staticGraph(join(REPO_ROOT, 'src', 'cli', 'main.ts'));
  const rel = [...g.files].map((f) => relative(REPO_ROOT, f));
  assert.deepEqual([...g.packages], [], `packages loaded at start-up: ${[...g.packages].join(', ')}`);
  for (const f of rel)
    assert.ok(
      !/^src\/(runtime|onnx\/(?!schemas\.gen)|passes\/(?!names)|train|qat|ops|api|stage|ir)\b/.test(f),
      `${f} is loaded at start-up (files: ${rel.join(', ')})`,
    );
  assert.ok(rel.length < 40, `${rel.length} files at start-up`);
});

test('names listed by --help agree with the modules that define them', async () => {
  const { PASSES } = await import('../passes/index.js');
  const names = await import('../passes/names.js');
  assert.deepEqual(
    PASSES.map((p) => p.name),
    [...names.PASS_NAMES],
  );
  const onnx = await import('../onnx/index.js');
  const convert = await import('./commands/convert.js');
  assert.equal(convert.MIN_CONVERT_OPSET, onnx.MIN_CONVERT_OPSET);
  const { MODEL_NAMES } = await import('../models/index.js');
  assert.deepEqual([...MODEL_NAMES], ['mlp', 'cnn-s', 'vit-t']);
});
