// Writes schema/edgefit.schema.json, the JSON Schema of the pipeline config (src/pipeline/config.ts), for editors.
import { join } from 'node:path';
import { configJsonSchema } from '../src/pipeline/config.js';
import { REPO_ROOT } from '../src/testing/fixtures.js';
import { writeAtomic } from '../src/util/fs.js';

writeAtomic(
  join(REPO_ROOT, 'schema', 'edgefit.schema.json'),
  JSON.stringify(configJsonSchema(), null, 2) + '\n',
);
