// `edgefit pipeline run|watch <edgefit.yaml>`: the compression pipeline (src/pipeline).
import { InputError } from '../../errors.js';
import type { PipelineResult } from '../../pipeline/run.js';
import { type Command, fmtBytes, pct, stringOption, table } from '../command.js';

function render(r: PipelineResult): string {
  const m = r.summary;
  const rows: (string | number)[][] = [
    ['baseline', fmtBytes(m.baseline.bytes), pct(m.baseline.accuracy), '', ''],
    ...m.stages.map((s) => [
      `${s.index + 1}. ${s.name}`,
      fmtBytes(s.after.bytes),
      pct(s.after.accuracy),
      `${s.seconds.toFixed(1)} s`,
      s.cached ? 'cached' : '',
    ]),
  ];
  if (m.deployed)
    rows.push([
      `deployed v${m.deployed.version}`,
      fmtBytes(m.deployed.bytes),
      pct(m.deployed.accuracy),
      '',
      '',
    ]);
  const gates = m.gates.map((g) => `  ${g.passed ? 'pass' : 'FAIL'}  ${g.name}: ${g.message}`);
  return [
    table(['model', 'size', 'accuracy', 'time', ''], rows),
    '',
    `candidate: ${fmtBytes(r.bytes)} (${m.compressionRatio.toFixed(1)}× smaller), accuracy ${pct(r.accuracy)} (${((m.baseline.accuracy - r.accuracy) * 100).toFixed(2)} points below the baseline)`,
    gates.length ? `gates:\n${gates.join('\n')}` : 'gates: none configured',
    r.promoted
      ? `promoted: ${m.name}@${r.version} is deployed on ${m.device}`
      : r.version !== null
        ? `not promoted: ${m.name}@${r.version} registered as a candidate`
        : 'not promoted (no registry configured)',
    `manifest: ${r.manifest}`,
    `report: ${r.report}`,
  ].join('\n');
}

function json(r: PipelineResult): object {
  return {
    skipped: r.skipped,
    promoted: r.promoted,
    gates: r.gates.map((g) => ({
      name: g.name,
      passed: g.passed,
      value: g.value,
      limit: g.limit,
      message: g.message,
    })),
    manifest: r.manifest,
    report: r.report,
    model: r.model,
    bytes: r.bytes,
    accuracy: r.accuracy,
    baselineBytes: r.summary.baseline.bytes,
    baselineAccuracy: r.summary.baseline.accuracy,
    compressionRatio: r.summary.compressionRatio,
    version: r.version,
    stages: r.summary.stages.map((s) => ({
      name: s.name,
      cached: s.cached,
      seconds: s.seconds,
      bytes: s.after.bytes,
      accuracy: s.after.accuracy,
    })),
  };
}

export const pipelineCommand: Command = {
  name: 'pipeline',
  summary:
    'Run the compression pipeline of an edgefit.yaml: cached stages, gates, manifest, report, registry.',
  usage: 'run|watch <edgefit.yaml> [--if-changed] [--no-promote] [--work-dir <dir>]',
  positionals: [
    { name: 'action', description: 'run | watch' },
    { name: 'edgefit.yaml', description: 'the pipeline config (see schema/edgefit.schema.json)' },
  ],
  options: {
    'if-changed': {
      type: 'boolean',
      description:
        'run: do nothing when the config, source model, data and edgefit are what the last run used',
    },
    'no-promote': { type: 'boolean', description: 'register the candidate but never promote it' },
    'work-dir': {
      type: 'string',
      valueName: 'dir',
      description: 'stage cache and run outputs (default <config folder>/.edgefit)',
    },
    interval: { type: 'string', valueName: 's', description: 'watch: seconds between checks', default: '5' },
    'max-runs': { type: 'string', valueName: 'N', description: 'watch: stop after N runs' },
  },
  examples: [
    'edgefit pipeline run examples/fashion-mnist/edgefit.yaml',
    'edgefit pipeline run edgefit.yaml --if-changed --json   # in CI',
    'edgefit pipeline watch edgefit.yaml --interval 10',
  ],
  async run(p, io) {
    const [action, file] = p.positionals as [string, string];
    const common = {
      workDir: stringOption(p, 'work-dir'),
      promote: p.values['no-promote'] ? false : undefined,
      log: io.quiet ? undefined : (l: string) => io.err(`${l}\n`),
    };
    if (action === 'run') {
      const { runPipeline } = await import('../../pipeline/run.js');
      const r = await runPipeline(file, { ...common, ifChanged: !!p.values['if-changed'] });
      const failed = r.gates.some((g) => !g.passed);
      return {
        json: json(r),
        text: r.skipped ? `nothing changed since the last run\n${render(r)}` : render(r),
        exitCode: failed ? 4 : 0,
      };
    }
    if (action === 'watch') {
      const interval = Number(stringOption(p, 'interval') ?? '5');
      const maxRuns = stringOption(p, 'max-runs');
      if (!(interval > 0))
        throw new InputError(
          'option',
          `--interval must be a positive number of seconds: current value is ${interval}`,
          {
            value: 'interval',
          },
        );
      const { watchPipeline } = await import('../../pipeline/watch.js');
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        const runs = await watchPipeline(file, {
          ...common,
          intervalSeconds: interval,
          maxRuns: maxRuns === undefined ? undefined : Number(maxRuns),
          signal: ac.signal,
          onRun: (r) => io.err(`${render(r)}\n\n`),
        });
        return {
          json: { runs: runs.map(json) },
          text: `${runs.length} run(s); last: ${runs.length ? runs[runs.length - 1]!.manifest : '–'}`,
          exitCode: runs.some((r) => r.gates.some((g) => !g.passed)) ? 4 : 0,
        };
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    }
    throw new InputError('usage', `unknown action "${action}"; actions are run, watch`, { value: action });
  },
};
