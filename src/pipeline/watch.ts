// `edgefit pipeline watch <config>`: rerun the pipeline whenever the upstream model changes — the source model
// file, the registry version a `registry:` source resolves to, or the config itself. Polls (files on network
// mounts and registries raise no events), and each check is a `--if-changed` run, so nothing reruns without a change.
import { existsSync } from 'node:fs';
import { loadConfig, resolvePath } from './config.js';
import { Registry, parseRef } from './registry.js';
import { runPipeline, statKey, type PipelineResult, type PipelineRunOptions } from './run.js';

export interface WatchOptions extends PipelineRunOptions {
  /** Seconds between checks (default 5). */
  intervalSeconds?: number;
  /** Stop after this many runs that did work (default: never). */
  maxRuns?: number;
  /** Stop when aborted (Ctrl-C in the CLI). */
  signal?: AbortSignal;
  /** Called after every run that did work. */
  onRun?: (r: PipelineResult) => void;
}

/** What the upstream model is now: file size and mtime, or the registry version and digest it resolves to. */
function upstreamKey(configFile: string): string {
  const { config, dir } = loadConfig(configFile);
  const spec = config.source.model;
  if (spec.startsWith('registry:') && config.registry) {
    const regDir = resolvePath(dir, config.registry.path);
    if (!existsSync(regDir)) return 'no-registry';
    const reg = Registry.open(regDir);
    try {
      const v = reg.get(parseRef(spec.slice('registry:'.length), config.device?.name ?? 'default'));
      return `${v.version}:${v.digest}`;
    } catch {
      return 'unresolved';
    } finally {
      reg.close();
    }
  }
  return statKey(resolvePath(dir, spec));
}

/** Run now (if anything changed since the last run), then again after every upstream change. */
export async function watchPipeline(configFile: string, o: WatchOptions = {}): Promise<PipelineResult[]> {
  const log = o.log ?? (() => {});
  const interval = (o.intervalSeconds ?? 5) * 1000;
  const done: PipelineResult[] = [];
  let last = '';
  while (!o.signal?.aborted) {
    const now = `${upstreamKey(configFile)}|${statKey(configFile)}`;
    if (now !== last) {
      last = now;
      const r = await runPipeline(configFile, { ...o, ifChanged: true });
      if (!r.skipped) {
        done.push(r);
        o.onRun?.(r);
        if (o.maxRuns !== undefined && done.length >= o.maxRuns) break;
      }
      log(`watching ${configFile} and its source model (every ${interval / 1000} s)`);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, interval);
      o.signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  }
  return done;
}
