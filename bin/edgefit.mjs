#!/usr/bin/env node
// The edgefit CLI. Runs the compiled JavaScript in dist/ (built by `npm ci` / `npm run build`: starts in a fraction
// of a second) when it is at least as new as every file under src/; otherwise — while developing, after an edit —
// runs the TypeScript sources through tsx, so an edit never needs a build step to be tried.
import { readdirSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const compiled = new URL('dist/src/cli/main.js', root);

/** Newest modification time of the files under `dir` (ms), stopping early once one is newer than `limit`. */
function newest(dir, limit) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = new URL(e.name + (e.isDirectory() ? '/' : ''), dir);
    t = Math.max(t, e.isDirectory() ? newest(p, limit) : statSync(p).mtimeMs);
    if (t > limit) break;
  }
  return t;
}

function compiledIsFresh() {
  let built;
  try {
    built = statSync(compiled).mtimeMs;
  } catch {
    return false;
  }
  return newest(new URL('src/', root), built) <= built;
}

let main;
if (process.env.EDGEFIT_FROM_SOURCE !== '1' && compiledIsFresh()) {
  ({ main } = await import(compiled.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(new URL('src/cli/main.ts', root).href));
}
process.exitCode = await main(process.argv.slice(2));
