// Entry of a server worker process (cluster.ts). Plain JavaScript: a forked worker does not inherit tsx's loader
// when the CLI registered it programmatically, so this file loads the TypeScript module through tsx.
import { tsImport } from 'tsx/esm/api';

const { runWorker } = await tsImport('./cluster.ts', import.meta.url);
await runWorker();
