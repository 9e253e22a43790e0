// The shape of a CLI command and the parsing every command shares: `edgefit <verb> [args] [--json] [--quiet]
// [--debug]`. stdout carries the result (a table, or exactly one JSON object with --json); stderr carries progress.
import { basename } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InputError } from '../errors.js';
import { checkAlignment } from '../util/align.js';
import type { SaveResult } from '../onnx/index.js';
import type { OutputOptions } from '../api/common.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & {
  description: string;
  valueName?: string;
};

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Whether stderr is a terminal (progress bars redraw) — tests pass false. */
  quiet: boolean;
  json: boolean;
}

export interface Parsed {
  positionals: string[];
  values: Record<string, string | boolean | string[] | undefined>;
}

export interface Command {
  name: string;
  summary: string;
  /** e.g. "<model.onnx> --data <dataset>" */
  usage: string;
  /** Positional argument names, for help and the count check. */
  positionals: { name: string; description: string; optional?: boolean }[];
  /** The last positional may repeat. */
  variadic?: boolean;
  options: Record<string, OptionSpec>;
  /** Extra lines for --help (examples). */
  examples?: string[];
  /**
   * Returns the result object (printed as JSON with --json) and a human rendering; `exitCode` (e.g. 4 when a
   * quality gate failed) is the exit code after printing them (default 0).
   */
  run(args: Parsed, io: Io): Promise<{ json: object; text: string; exitCode?: number }>;
}

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  json: { type: 'boolean', description: 'print exactly one JSON object on stdout' },
  quiet: { type: 'boolean', description: 'no progress output on stderr' },
  debug: { type: 'boolean', description: 'show stack traces of errors' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export function parseCommand(cmd: Command, argv: string[]): Parsed {
  const options = { ...GLOBAL_OPTIONS, ...cmd.options };
  // `--limit -1`: a negative number after an option that takes a value is that value (node's parser calls it
  // ambiguous), so the option's own range message can name it
  const args = argv.map((a, i) =>
    i > 0 && /^-\d/.test(a) && options[argv[i - 1]!.replace(/^--/, '')]?.type === 'string' ? `\0${a}` : a,
  );
  const joined: string[] = [];
  for (const a of args)
    if (a.startsWith('\0')) joined[joined.length - 1] = `${joined[joined.length - 1]}=${a.slice(1)}`;
    else joined.push(a);
  const config: ParseArgsConfig = {
    args: joined,
    allowPositionals: true,
    strict: true,
    options: Object.fromEntries(
      Object.entries(options).map(([k, { description: _d, valueName: _v, ...o }]) => [k, o]),
    ),
  };
  let parsed;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    throw new InputError(
      'usage',
      `${(e as Error).message.replace(/\. To specify.*$/s, '')} (see \`edgefit ${cmd.name} --help\`)`,
      {
        value: cmd.name,
      },
    );
  }
  const values = parsed.values as Parsed['values'];
  if (!values.help) {
    const required = cmd.positionals.filter((p) => !p.optional).length;
    if (parsed.positionals.length < required)
      throw new InputError(
        'usage',
        `needs ${cmd.positionals
          .filter((p) => !p.optional)
          .map((p) => `<${p.name}>`)
          .join(' ')} (see \`edgefit ${cmd.name} --help\`)`,
        { value: cmd.name },
      );
    if (!cmd.variadic && parsed.positionals.length > cmd.positionals.length)
      throw new InputError(
        'usage',
        `unexpected argument "${parsed.positionals[cmd.positionals.length]}" (edgefit ${cmd.name} takes ${cmd.positionals.length ? cmd.positionals.map((p) => `<${p.name}>`).join(' ') : 'no arguments'}; see \`edgefit ${cmd.name} --help\`)`,
        { value: cmd.name },
      );
  }
  return { positionals: parsed.positionals, values };
}

export function helpText(cmd: Command): string {
  const lines = [`edgefit ${cmd.name} ${cmd.usage}`, '', cmd.summary, ''];
  if (cmd.positionals.length) {
    lines.push('Arguments:');
    for (const p of cmd.positionals)
      lines.push(`  ${`<${p.name}>`.padEnd(27)} ${p.description}${p.optional ? ' (optional)' : ''}`);
    lines.push('');
  }
  lines.push('Options:');
  for (const [k, o] of Object.entries({ ...cmd.options, ...GLOBAL_OPTIONS })) {
    const flag = `--${k}${o.type === 'string' ? ` <${o.valueName ?? 'value'}>` : ''}`;
    const dflt = o.default !== undefined ? ` (default ${String(o.default)})` : '';
    lines.push(`  ${flag.length < 28 ? flag.padEnd(28) : `${flag}  `}${o.description}${dflt}`);
  }
  if (cmd.examples?.length) lines.push('', 'Examples:', ...cmd.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

/** A positive integer option (or undefined when absent). */
export function intOption(
  p: Parsed,
  name: string,
  { min = 1, max = Number.MAX_SAFE_INTEGER } = {},
): number | undefined {
  const v = p.values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !/^-?\d+$/.test(v) || n < min || n > max)
    throw new InputError(
      'option',
      `--${name} must be an integer from ${min} to ${max}: current value is "${String(v)}"`,
      { value: name },
    );
  return n;
}

/**
 * A finite number option (or undefined when absent): the one way every command parses numbers. `min`/`max` are
 * inclusive unless `minExclusive`.
 */
export function numberOption(
  p: Parsed,
  name: string,
  { min = -Infinity, max = Infinity, minExclusive = false } = {},
): number | undefined {
  const v = p.values[name];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < min || n > max || (minExclusive && n === min))
    throw new InputError(
      'option',
      `--${name} must be a number ${minExclusive ? '>' : '≥'} ${min}${max < Infinity ? ` and ≤ ${max}` : ''}: current value is "${String(v)}"`,
      { value: name },
    );
  return n;
}

/** A comma-separated list option (or undefined when absent). */
export function listOption(p: Parsed, name: string): string[] | undefined {
  const v = stringOption(p, name);
  if (v === undefined) return undefined;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** --align, checked at once (a power of two ≥ 64), so a long run does not fail at its end. */
function alignOption(p: Parsed): number {
  const align = intOption(p, 'align', { min: 1, max: 1 << 30 }) ?? 4096;
  if (p.values['external-data']) checkAlignment(align);
  return align;
}

/** What SAVE_OPTIONS ask for the output file `path`. */
export function outputOptions(p: Parsed, path: string): OutputOptions {
  return {
    path,
    externalData: !!p.values['external-data'],
    align: alignOption(p),
    threshold: intOption(p, 'threshold', { min: 0 }) ?? 1024,
  };
}

export function stringOption<T extends string>(
  p: Parsed,
  name: string,
  allowed?: readonly T[],
): T | undefined {
  const v = p.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new InputError('option', `--${name} takes a value`, { value: name });
  if (allowed && !allowed.includes(v as T))
    throw new InputError(
      'option',
      `--${name} must be one of ${allowed.join(', ')}: current value is "${v}"`,
      { value: name },
    );
  return v as T;
}

/** Render rows as an aligned text table. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const w = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [fmt(cells[0]!), w.map((x) => '-'.repeat(x)).join('  '), ...cells.slice(1).map(fmt)].join('\n');
}

export function fmtBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

export function pct(x: number, digits = 2): string {
  return `${(x * 100).toFixed(digits)} %`;
}

/** The output-file options of every command that writes a model (`--external-data`, `--align`, `--threshold`). */
export const SAVE_OPTIONS: Record<string, OptionSpec> = {
  'external-data': {
    type: 'boolean',
    description:
      'store tensors of --threshold bytes or more in <out.onnx>.data (aligned, so ORT can map them)',
  },
  align: {
    type: 'string',
    valueName: 'N',
    description: 'byte alignment of tensors in the external data file',
    default: '4096',
  },
  threshold: {
    type: 'string',
    valueName: 'BYTES',
    description: 'with --external-data, tensors below this size stay inline',
    default: '1024',
  },
};

/** "12.3 kB" or "12.3 kB model + 1.6 MB in cnn-s.onnx.1a2b3c4d.data" for a SaveResult. */
export function fmtSaved(r: SaveResult): string {
  return r.dataFile
    ? `${fmtBytes(r.modelBytes)} model + ${fmtBytes(r.dataBytes)} in ${basename(r.dataFile)}`
    : fmtBytes(r.modelBytes);
}
