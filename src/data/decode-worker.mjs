// Entry of a decoder worker thread (images.ts DecodePool). Plain JavaScript: a worker does not inherit tsx's
// loader when the CLI registered it programmatically, so this file loads the TypeScript module through tsx.
import { tsImport } from 'tsx/esm/api';

await tsImport('./decode-worker.ts', import.meta.url);
