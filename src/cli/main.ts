// `edgefit <verb> …`: dispatch, help, and the one place errors become messages and exit codes.
//   0 ok · 1 internal error (a bug: please report) · 2 bad input · 3 unsupported · 4 quality gate failed
import { readFileSync } from 'node:fs';
import { EdgefitError, exitCodeOf } from '../errors.js';
import { type Command, type Io, helpText, parseCommand } from './command.js';
import { build } from './commands/build.js';
import { convert } from './commands/convert.js';
import { evalCommand } from './commands/eval.js';
import { inspect } from './commands/inspect.js';
import { trainCommand } from './commands/train.js';
import { optimize } from './commands/optimize.js';
import { quantizeCommand } from './commands/quantize.js';
import { compareCommand } from './commands/compare.js';
import { distillCommand } from './commands/distill.js';
import { pruneCommand } from './commands/prune.js';
import { serveCommand } from './commands/serve.js';
import { splitCommand } from './commands/split.js';
import { registryCommand } from './commands/registry.js';
import { pipelineCommand } from './commands/pipeline.js';

export const COMMANDS: Command[] = [
  inspect,
  convert,
  evalCommand,
  build,
  optimize,
  trainCommand,
  quantizeCommand,
  compareCommand,
  pruneCommand,
  serveCommand,
  splitCommand,
  pipelineCommand,
  registryCommand,
  distillCommand,
];

function usage(): string {
  return [
    'edgefit: make trained ONNX models fit and run well on edge devices',
    '',
    'Usage: edgefit <command> [arguments] [--json] [--quiet] [--debug]     edgefit --version',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(10)}${c.summary}`),
    '',
    'Run `edgefit <command> --help` for its arguments and options.',
    'Exit codes: 0 ok, 1 internal error, 2 bad input, 3 unsupported, 4 quality gate failed.',
  ].join('\n');
}

/** `edgefit 0.1.0 (onnxruntime-node 1.30.0, node v20.x)`: package versions read from their package.json files. */
export function versionText(): string {
  const read = (url: URL): string | undefined => {
    try {
      return (JSON.parse(readFileSync(url, 'utf8')) as { version?: string }).version;
    } catch {
      return undefined;
    }
  };
  // src/cli/main.ts or dist/src/cli/main.js: the package root is the first folder up with edgefit's package.json
  let own: string | undefined;
  let root = new URL('.', import.meta.url);
  for (let i = 0; i < 5 && !own; i++) {
    root = new URL('..', root);
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'edgefit') own = pkg.version;
    } catch {
      /* not here */
    }
  }
  const ort = read(new URL('node_modules/onnxruntime-node/package.json', root));
  return `edgefit ${own ?? 'unknown'} (onnxruntime-node ${ort ?? 'unknown'}, node ${process.version})`;
}

export interface MainIo {
  stdout?: (s: string) => void;
  stderr?: (s: string) => void;
}

export async function main(argv: string[], mio: MainIo = {}): Promise<number> {
  const out = mio.stdout ?? ((s: string) => process.stdout.write(s));
  const err = mio.stderr ?? ((s: string) => process.stderr.write(s));
  const [verb, ...rest] = argv;
  if (verb === '--version' || verb === '-v' || verb === 'version') {
    out(`${versionText()}\n`);
    return 0;
  }
  if (!verb || verb === '--help' || verb === '-h' || verb === 'help') {
    out(`${usage()}\n`);
    return verb ? 0 : 2;
  }
  const cmd = COMMANDS.find((c) => c.name === verb);
  if (!cmd) {
    err(`edgefit: unknown command "${verb}"; commands are ${COMMANDS.map((c) => c.name).join(', ')}\n`);
    return 2;
  }
  const debug = rest.includes('--debug');
  try {
    const parsed = parseCommand(cmd, rest);
    if (parsed.values.help) {
      out(`${helpText(cmd)}\n`);
      return 0;
    }
    const io: Io = { out, err, quiet: !!parsed.values.quiet, json: !!parsed.values.json };
    const res = await cmd.run(parsed, io);
    out(io.json ? `${JSON.stringify(res.json)}\n` : `${res.text}\n`);
    return res.exitCode ?? 0;
  } catch (e) {
    const code = exitCodeOf(e);
    if (e instanceof EdgefitError && code !== 1) err(`edgefit ${verb}: ${e.message}\n`);
    else
      err(
        `edgefit ${verb}: internal error: ${(e as Error)?.message ?? String(e)}\n` +
          'This is a bug in edgefit; please report it with the command you ran (add --debug for the stack).\n',
      );
    if (debug && e instanceof Error && e.stack) err(`${e.stack}\n`);
    return code;
  }
}

// run directly: `tsx src/cli/main.ts …` (bin/edgefit.mjs imports main instead)
if (process.argv[1] && /src[\\/]cli[\\/]main\.ts$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then((c) => (process.exitCode = c));
}
