// Prometheus metrics of a server (prom-client): request latency, batch sizes, queue depth, errors, loaded model
// bytes, and this process's memory: PSS (proportional set size: shared pages divided among the processes mapping
// them) from /proc/self/smaps_rollup, which is what counts when several workers map the same weights.
import { readFileSync } from 'node:fs';
import cluster from 'node:cluster';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MemoryFigures {
  rss: number;
  pss: number;
  pssAnon: number;
  pssFile: number;
}

/** RSS and PSS of a process in bytes (Linux; zeros elsewhere). */
export function processMemory(pid: number | 'self' = 'self'): MemoryFigures {
  const m: MemoryFigures = { rss: 0, pss: 0, pssAnon: 0, pssFile: 0 };
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return m;
  }
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  m.rss = kb('Rss');
  m.pss = kb('Pss');
  m.pssAnon = kb('Pss_Anon');
  m.pssFile = kb('Pss_File');
  return m;
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly latency: Histogram<'model' | 'status'>;
  readonly batchRows: Histogram<'model'>;
  readonly batchRequests: Histogram<'model'>;
  readonly queueDepth: Gauge<'model'>;
  readonly errors: Counter<'model' | 'code'>;
  readonly modelBytes: Gauge<'model' | 'version'>;
  readonly reloads: Counter<'model'>;
  /** Inference requests answered by this process (with --workers: how the port spreads them). */
  readonly workerRequests: Counter<'worker' | 'pid'>;
  private readonly self: { worker: string; pid: string };

  constructor() {
    const registers = [this.registry];
    const worker = cluster.isWorker ? String(cluster.worker?.id ?? 0) : '0';
    this.self = { worker, pid: String(process.pid) };
    collectDefaultMetrics({ register: this.registry, labels: { worker } });
    this.latency = new Histogram({
      name: 'edgefit_request_duration_seconds',
      help: 'Inference request latency (receipt of the body to the answer), by model and HTTP status',
      labelNames: ['model', 'status'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.batchRows = new Histogram({
      name: 'edgefit_batch_size',
      help: "Rows per model run (the sum of the batched requests' dim 0)",
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.batchRequests = new Histogram({
      name: 'edgefit_batch_requests',
      help: 'Requests per model run',
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'edgefit_queue_depth',
      help: "Requests waiting in the model's batching queue",
      labelNames: ['model'],
      registers,
    });
    this.errors = new Counter({
      name: 'edgefit_errors_total',
      help: 'Requests answered with an error, by model and error code',
      labelNames: ['model', 'code'],
      registers,
    });
    this.modelBytes = new Gauge({
      name: 'edgefit_model_bytes',
      help: 'Bytes of the loaded model files (model and external data), by deployment and version',
      aggregator: 'max',
      labelNames: ['model', 'version'],
      registers,
    });
    this.reloads = new Counter({
      name: 'edgefit_reloads_total',
      help: 'Deployments switched to a new version',
      labelNames: ['model'],
      registers,
    });
    this.workerRequests = new Counter({
      name: 'edgefit_worker_requests_total',
      help: 'Inference requests answered by each server process',
      labelNames: ['worker', 'pid'],
      registers,
    });
    const self = this.self;
    const mem = (name: string, help: string, key: keyof MemoryFigures) =>
      new Gauge({
        name,
        help,
        labelNames: ['worker', 'pid'],
        registers,
        collect() {
          this.reset();
          this.set(self, processMemory()[key]);
        },
      });
    mem(
      'edgefit_process_pss_bytes',
      'Proportional set size of this server process (shared pages divided among the processes mapping them)',
      'pss',
    );
    mem('edgefit_process_pss_file_bytes', 'The file-backed part of PSS (mapped weights, code)', 'pssFile');
    mem(
      'edgefit_process_pss_anon_bytes',
      'The anonymous part of PSS (heap, arenas, copied weights)',
      'pssAnon',
    );
  }

  /** Count a request answered by this process. */
  served(): void {
    this.workerRequests.inc(this.self);
  }
}
