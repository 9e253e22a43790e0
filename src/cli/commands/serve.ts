import { InputError } from '../../errors.js';
import type { ServeHandle } from '../../serve/index.js';
import { type Command, intOption } from '../command.js';

export const serveCommand: Command = {
  name: 'serve',
  summary:
    'Serve ONNX models over HTTP with dynamic batching, shared memory-mapped weights, metrics and hot reload (until Ctrl-C).',
  usage:
    '[--model NAME=PATH ...] [--registry PATH|URL] [--port P] [--max-batch N] [--max-delay-ms D] [--no-batching] [--workers N] [--token T]',
  positionals: [],
  options: {
    model: {
      type: 'string',
      multiple: true,
      valueName: 'NAME=PATH',
      description: 'serve PATH (an .onnx file, or the split.json of `edgefit split`) as NAME; repeatable',
    },
    registry: {
      type: 'string',
      valueName: 'PATH|URL',
      description:
        "serve the deployed versions of a registry folder (the pipeline's registry.db, or <name>/deployed.json) or of an `edgefit registry serve` URL (downloaded into --cache-dir), reloading when they change",
    },
    'registry-token': {
      type: 'string',
      valueName: 'T',
      description: 'bearer token of a --registry URL (default: $EDGEFIT_REGISTRY_TOKEN)',
    },
    'cache-dir': {
      type: 'string',
      valueName: 'DIR',
      description:
        'where artifacts from a --registry URL are kept (default $EDGEFIT_CACHE/registry or ~/.cache/edgefit/registry)',
    },
    device: {
      type: 'string',
      valueName: 'NAME',
      description: "serve only this device's deployments of the registry (default: every device)",
    },
    host: { type: 'string', valueName: 'HOST', description: 'address to listen on', default: '127.0.0.1' },
    port: { type: 'string', valueName: 'P', description: 'port (0: any free port)', default: '8080' },
    'max-batch': {
      type: 'string',
      valueName: 'N',
      description: 'most rows in one batched run',
      default: '32',
    },
    'max-delay-ms': {
      type: 'string',
      valueName: 'D',
      description: 'longest a request waits for others to batch with',
      default: '10',
    },
    'max-queue': {
      type: 'string',
      valueName: 'N',
      description: 'most waiting requests (more: 429)',
      default: '256',
    },
    'no-batching': { type: 'boolean', description: 'run every request alone' },
    'timeout-ms': {
      type: 'string',
      valueName: 'MS',
      description: 'deadline of a request in the queue (504 after it; X-Deadline-Ms may ask for less)',
      default: '5000',
    },
    workers: {
      type: 'string',
      valueName: 'N',
      description: 'server processes sharing the port and the weight pages',
      default: '1',
    },
    threads: {
      type: 'string',
      valueName: 'N',
      description: 'ORT intra-op threads per session (default: all cores)',
    },
    token: {
      type: 'string',
      valueName: 'T',
      description: 'bearer token for /admin endpoints (default: $EDGEFIT_TOKEN; without one they are off)',
    },
    'max-body-mb': { type: 'string', valueName: 'MB', description: 'largest request body', default: '64' },
    'max-elements': {
      type: 'string',
      valueName: 'N',
      description: 'most tensor elements in one request',
      default: String(16 << 20),
    },
    'poll-ms': {
      type: 'string',
      valueName: 'MS',
      description: 'how often to check the registry (0: never)',
      default: '2000',
    },
    'no-mmap': {
      type: 'boolean',
      description: 'let ORT pre-pack private weight copies instead of using mapped pages',
    },
  },
  examples: [
    'edgefit serve --model cnn=cnn-s.int8.onnx --port 8080',
    'edgefit serve --registry ./registry --workers 4 --token "$TOKEN"',
    'EDGEFIT_REGISTRY_TOKEN=… edgefit serve --registry http://registry.lan:8470 --device retail-box',
    'curl -s localhost:8080/v1/models/cnn/infer -H "content-type: application/json" -d @request.json',
  ],
  async run(p, io) {
    const models = ((p.values.model as string[] | undefined) ?? []).map((m) => {
      const i = m.indexOf('=');
      if (i <= 0 || i === m.length - 1)
        throw new InputError('option', `--model takes NAME=PATH: "${m}" is not`, { value: 'model' });
      const name = m.slice(0, i);
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
        throw new InputError('option', `Model name "${name}" must be letters, digits, ".", "_" or "-"`, {
          value: 'model',
        });
      return { name, path: m.slice(i + 1) };
    });
    const { serve } = await import('../../serve/cluster.js');
    const handle: ServeHandle = await serve({
      models,
      registry: p.values.registry as string | undefined,
      registryToken: (p.values['registry-token'] as string | undefined) ?? process.env.EDGEFIT_REGISTRY_TOKEN,
      cacheDir: p.values['cache-dir'] as string | undefined,
      device: p.values.device as string | undefined,
      host: p.values.host as string,
      port: intOption(p, 'port', { min: 0, max: 65535 }),
      workers: intOption(p, 'workers', { max: 64 }),
      threads: intOption(p, 'threads', { max: 256 }),
      token: (p.values.token as string | undefined) ?? process.env.EDGEFIT_TOKEN,
      timeoutMs: intOption(p, 'timeout-ms'),
      pollMs: intOption(p, 'poll-ms', { min: 0 }),
      mapWeights: !p.values['no-mmap'],
      batch: {
        batching: !p.values['no-batching'],
        maxBatch: intOption(p, 'max-batch'),
        maxDelayMs: intOption(p, 'max-delay-ms', { min: 0, max: 60_000 }),
        maxQueue: intOption(p, 'max-queue'),
      },
      limits: {
        maxBodyBytes: (intOption(p, 'max-body-mb', { max: 4096 }) ?? 64) * 2 ** 20,
        maxElements: intOption(p, 'max-elements'),
      },
      log: io.quiet ? undefined : (s) => io.err(`${s}\n`),
    });
    io.err(
      `edgefit serve: listening on ${handle.url} (${handle.workers} worker${handle.workers > 1 ? 's' : ''}); Ctrl-C stops\n`,
    );
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    io.err(`edgefit serve: ${signal}: answering queued requests, then stopping\n`);
    await handle.close();
    return {
      json: { url: handle.url, workers: handle.workers, stoppedBy: signal },
      text: `stopped (${signal})`,
    };
  },
};
