// `edgefit registry list|show|promote|rollback|diff|serve`: the model registry (src/pipeline/registry.ts).
import { InputError } from '../../errors.js';
import type { RegistryVersion } from '../../pipeline/registry.js';
import { type Command, fmtBytes, pct, stringOption, table } from '../command.js';

const ACTIONS = ['list', 'show', 'promote', 'rollback', 'diff', 'serve'] as const;
type Action = (typeof ACTIONS)[number];

function row(v: RegistryVersion): (string | number)[] {
  return [
    `${v.name}@${v.version}`,
    v.device,
    v.state,
    fmtBytes(v.bytes),
    v.accuracy === null ? '–' : pct(v.accuracy),
    v.digest.slice(0, 12),
    v.createdAt,
  ];
}

const HEADER = ['version', 'device', 'state', 'bytes', 'accuracy', 'digest', 'created'];

function needRefs(action: Action, refs: string[], n: number): void {
  if (refs.length !== n)
    throw new InputError(
      'usage',
      `${action} needs ${n === 1 ? 'one reference' : `${n} references`} (<name>[@<version>]): got ${refs.length}`,
      { value: action },
    );
}

export const registryCommand: Command = {
  name: 'registry',
  summary:
    'The model registry: list, show, promote, roll back, diff versions; serve deployed models over HTTP.',
  usage: 'list|show|promote|rollback|diff|serve [<name>[@<version>] …] --registry <dir> [--device D]',
  positionals: [
    { name: 'action', description: ACTIONS.join(' | ') },
    { name: 'ref', description: 'a version: <name>, <name>@<version>, <name>@deployed', optional: true },
    { name: 'ref2', description: 'diff: the second version', optional: true },
  ],
  options: {
    registry: { type: 'string', valueName: 'dir', description: 'registry folder', default: 'registry' },
    device: {
      type: 'string',
      valueName: 'name',
      description: 'device profile name (default "default"; list: every device)',
    },
    token: { type: 'string', valueName: 'T', description: 'serve: bearer token (or EDGEFIT_REGISTRY_TOKEN)' },
    port: { type: 'string', valueName: 'P', description: 'serve: port', default: '8470' },
    host: {
      type: 'string',
      valueName: 'addr',
      description: 'serve: address to listen on',
      default: '127.0.0.1',
    },
  },
  examples: [
    'edgefit registry list --registry ./registry',
    'edgefit registry promote fashion-cnn@3 --device retail-box',
    'edgefit registry rollback fashion-cnn --device retail-box',
    'edgefit registry diff fashion-cnn@2 fashion-cnn@3 --device retail-box',
    'EDGEFIT_REGISTRY_TOKEN=… edgefit registry serve --port 8470',
  ],
  async run(p, io) {
    const action = p.positionals[0] as Action;
    if (!ACTIONS.includes(action))
      throw new InputError('usage', `unknown action "${action}"; actions are ${ACTIONS.join(', ')}`, {
        value: action,
      });
    const dir = stringOption(p, 'registry') ?? 'registry';
    const device = stringOption(p, 'device') ?? 'default';
    const refs = p.positionals.slice(1);
    if (action === 'serve') {
      const token = stringOption(p, 'token') ?? process.env.EDGEFIT_REGISTRY_TOKEN ?? '';
      const port = Number(stringOption(p, 'port') ?? '8470');
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new InputError(
          'option',
          `--port must be an integer from 0 to 65535: current value is ${port}`,
          {
            value: 'port',
          },
        );
      const { serveRegistry } = await import('../../pipeline/registry-server.js');
      const s = await serveRegistry({ dir, token, port, host: stringOption(p, 'host') });
      io.err(`registry ${dir} served read-only at ${s.url} (Ctrl-C stops)\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void s.close().then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      return { json: { served: s.url, stopped: true }, text: `registry server at ${s.url} stopped` };
    }
    const { Registry, parseRef } = await import('../../pipeline/registry.js');
    const reg = Registry.open(dir);
    try {
      switch (action) {
        case 'list': {
          const name = refs[0];
          const vs = reg.list({ name, device: stringOption(p, 'device') });
          return {
            json: { registry: dir, versions: vs },
            text: vs.length
              ? table(HEADER, vs.map(row))
              : `registry ${dir} has no versions${name ? ` of ${name}` : ''}`,
          };
        }
        case 'show': {
          needRefs(action, refs, 1);
          const v = reg.get(parseRef(refs[0]!, device));
          const manifest = reg.manifest(v);
          return {
            json: { version: v, model: reg.modelPath(v), manifest },
            text: `${table(HEADER, [row(v)])}\nmodel: ${reg.modelPath(v)}\nmanifest: ${reg.manifestPath(v)}`,
          };
        }
        case 'promote': {
          needRefs(action, refs, 1);
          const r = reg.promote(parseRef(refs[0]!, device));
          return {
            json: { deployed: r.deployed, previous: r.previous ?? null },
            text: `${r.deployed.name}@${r.deployed.version} is deployed on ${device}${r.previous ? ` (was ${r.previous.name}@${r.previous.version})` : ''}`,
          };
        }
        case 'rollback': {
          needRefs(action, refs, 1);
          const name = parseRef(refs[0]!, device).name;
          const r = reg.rollback(name, device);
          return {
            json: { deployed: r.deployed, rolledBack: r.rolledBack },
            text: `${name}@${r.rolledBack.version} rolled back; ${name}@${r.deployed.version} is deployed on ${device} again`,
          };
        }
        case 'diff': {
          needRefs(action, refs, 2);
          const d = reg.diff(parseRef(refs[0]!, device), parseRef(refs[1]!, device));
          const lines = [
            table(HEADER, [row(d.a), row(d.b)]),
            '',
            `size: ${fmtBytes(d.bytes.a)} → ${fmtBytes(d.bytes.b)}${d.bytes.ratio !== null ? ` (${d.bytes.ratio.toFixed(3)}×)` : ''}${d.sameArtifact ? ' — the same artifact' : ''}`,
            `accuracy drop: ${d.accuracy.dropPoints === null ? '–' : `${d.accuracy.dropPoints.toFixed(2)} points`}`,
            `stages: ${d.stages.a.join(' → ') || '–'}  |  ${d.stages.b.join(' → ') || '–'}`,
          ];
          const classes = Object.keys(d.perClassRecall);
          if (classes.length)
            lines.push(
              '',
              table(
                ['class', 'recall a', 'recall b'],
                classes.map((c) => [
                  c,
                  d.perClassRecall[c]!.a === null ? '–' : pct(d.perClassRecall[c]!.a!),
                  d.perClassRecall[c]!.b === null ? '–' : pct(d.perClassRecall[c]!.b!),
                ]),
              ),
            );
          return { json: d, text: lines.join('\n') };
        }
      }
    } finally {
      reg.close();
    }
    throw new InputError('usage', `unknown action "${action}"`, { value: action });
  },
};
