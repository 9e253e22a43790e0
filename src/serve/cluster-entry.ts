// Entry of a server worker process when edgefit runs compiled (dist/…/cluster-entry.js); from the sources,
// cluster-worker.mjs loads cluster.ts through tsx instead.
import { runWorker } from './cluster.js';

await runWorker();
