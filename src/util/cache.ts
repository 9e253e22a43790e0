// edgefit's per-user cache: $EDGEFIT_CACHE, else ~/.cache/edgefit. Each user of it (teacher logits, registry
// artifacts) keeps its own sub-folder.
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `<cache root>/<sub>`: the root is $EDGEFIT_CACHE when set, else ~/.cache/edgefit. */
export function userCacheDir(sub: string): string {
  return join(process.env.EDGEFIT_CACHE || join(homedir(), '.cache', 'edgefit'), sub);
}
