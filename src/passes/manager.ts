// The pass contract and the pass manager.
//
// A pass is `(model, options) → { model, changed, notes, counts }` and pure: `run` never modifies the model it is
// given (each pass clones it first; initializer data is shared, tensors are immutable). `changed` says whether
// the returned graph differs; `notes` are readable lines (what was rewritten, and why a match was skipped);
// `counts` are rewrites per rule.
//
// The PassManager runs a list of passes in order, again and again until one whole round changes nothing (a fixed
// point) or an iteration cap is reached. With `verify` on (tests turn it on) it runs `verify` plus the op
// registry's checks after every pass that changed the graph and throws, naming the pass, on any problem the input
// model did not already have.
import { InternalError } from '../errors.js';
import type { Model } from '../ir/index.js';
import { verifyModel } from '../ir/index.js';
import { makeCheckNode } from '../ops/index.js';
import type { Note } from '../util/note.js';
import { nodeCount } from './util.js';

export interface PassResult {
  model: Model;
  changed: boolean;
  notes: string[];
  /** Rewrites per rule name (e.g. { 'fold-bn-into-conv': 2 }). */
  counts: Record<string, number>;
  /** Structured notes (kind, node, rule, reason); passes that give none have only `notes`. */
  findings?: Note[];
}

export interface Pass<O extends object = object> {
  /** kebab-case, as given to `edgefit optimize --passes`. */
  readonly name: string;
  readonly summary: string;
  /** Pure: returns a new model; `model` is left as it was. */
  run(model: Model, options?: Partial<O>): Promise<PassResult>;
}

/** A pass, or a pass with options. */
export type PassSpec = Pass<any> | { pass: Pass<any>; options: object };

/**
 * Define a pure pass from a body that edits a private clone of the model in place. The body returns whether it
 * changed the clone, plus notes and counts.
 */
export function definePass<O extends object>(
  name: string,
  summary: string,
  body: (model: Model, options: O) => Promise<Omit<PassResult, 'model'>> | Omit<PassResult, 'model'>,
  defaults: O,
): Pass<O> {
  return defineModelPass(
    name,
    summary,
    async (model, options: O) => {
      const m = model.clone();
      return { ...(await body(m, options)), model: m };
    },
    defaults,
  );
}

/**
 * Define a pass from a pure function that builds and returns a new model (the quantizers: they add value types,
 * opset imports and domains, so they build their own model rather than edit a clone in place). The body must not
 * modify `model`; an unchanged result hands back the input.
 */
export function defineModelPass<O extends object>(
  name: string,
  summary: string,
  body: (model: Model, options: O) => Promise<PassResult> | PassResult,
  defaults: O,
): Pass<O> {
  return {
    name,
    summary,
    async run(model: Model, options?: Partial<O>): Promise<PassResult> {
      const r = await body(model, { ...defaults, ...(options ?? {}) } as O);
      return r.changed ? r : { ...r, model };
    },
  };
}

export interface PassManagerOptions {
  /** Rounds over the whole list before giving up on a fixed point (default 10). */
  maxIterations?: number;
  /** Verify the graph after every pass that changed it (default false; tests turn it on). */
  verify?: boolean;
  /** Progress lines (one per pass run that changed something). */
  log?: (line: string) => void;
}

export interface PassRecord {
  name: string;
  /** Times the pass ran. */
  runs: number;
  /** Runs that changed the graph. */
  changedRuns: number;
  changed: boolean;
  /** Rewrites per rule, summed over runs. */
  counts: Record<string, number>;
  /** Notes of every run, each line once. */
  notes: string[];
  /** Structured notes of every run (each text once); a line of `notes` without one is an `info` note. */
  findings: Note[];
  /** Nodes (all graphs) removed by this pass, summed over runs (negative when it added nodes). */
  nodesRemoved: number;
  /** Wall time, summed over runs. */
  ms: number;
}

export interface PipelineResult {
  model: Model;
  changed: boolean;
  /** Rounds run (the last one changed nothing unless `converged` is false). */
  iterations: number;
  converged: boolean;
  nodesBefore: number;
  nodesAfter: number;
  passes: PassRecord[];
  /** `verify` runs done (0 unless `verify` was on). */
  verified: number;
}

export class PassManager {
  private readonly specs: { pass: Pass<any>; options: object | undefined }[];
  private readonly opts: PassManagerOptions;

  constructor(passes: readonly PassSpec[], opts: PassManagerOptions = {}) {
    this.specs = passes.map((p) =>
      'pass' in p ? { pass: p.pass, options: p.options } : { pass: p, options: undefined },
    );
    this.opts = opts;
    const max = opts.maxIterations ?? 10;
    if (!Number.isInteger(max) || max < 1)
      throw new InternalError(
        'max-iterations',
        `maxIterations must be a positive integer: current value is ${max}`,
      );
  }

  get passNames(): string[] {
    return this.specs.map((s) => s.pass.name);
  }

  async run(model: Model): Promise<PipelineResult> {
    const maxIterations = this.opts.maxIterations ?? 10;
    const records: PassRecord[] = this.specs.map(({ pass }) => ({
      name: pass.name,
      runs: 0,
      changedRuns: 0,
      changed: false,
      counts: {},
      notes: [],
      findings: [],
      nodesRemoved: 0,
      ms: 0,
    }));
    const noteSets = records.map(() => new Set<string>());
    const findingSets = records.map(() => new Set<string>());
    const nodesBefore = nodeCount(model);
    const known = this.opts.verify ? new Set(problemsOf(model)) : new Set<string>();
    let verified = 0;
    let m = model;
    let iterations = 0;
    let converged = false;
    let anyChange = false;
    while (iterations < maxIterations) {
      iterations++;
      let changed = false;
      for (let i = 0; i < this.specs.length; i++) {
        const { pass, options } = this.specs[i]!;
        const rec = records[i]!;
        const before = nodeCount(m);
        const t0 = performance.now();
        const r = await pass.run(m, options);
        rec.ms += performance.now() - t0;
        rec.runs++;
        for (const n of r.notes)
          if (!noteSets[i]!.has(n)) {
            noteSets[i]!.add(n);
            rec.notes.push(n);
          }
        // structured notes; a plain line without one becomes an `info` note
        const structured = new Set((r.findings ?? []).map((f) => f.text));
        for (const f of [
          ...(r.findings ?? []),
          ...r.notes
            .filter((n) => !structured.has(n))
            .map((text) => ({ kind: 'info' as const, text, rule: pass.name })),
        ])
          if (!findingSets[i]!.has(f.text)) {
            findingSets[i]!.add(f.text);
            rec.findings.push(f);
          }
        if (!r.changed) continue;
        changed = true;
        rec.changed = true;
        rec.changedRuns++;
        for (const [k, v] of Object.entries(r.counts)) rec.counts[k] = (rec.counts[k] ?? 0) + v;
        const after = nodeCount(r.model);
        rec.nodesRemoved += before - after;
        this.opts.log?.(`${pass.name}: ${before} → ${after} nodes (${formatCounts(r.counts)})`);
        if (this.opts.verify) {
          verified++;
          const fresh = problemsOf(r.model).filter((p) => !known.has(p));
          if (fresh.length)
            throw new InternalError(
              'pass-broke-graph',
              `Pass "${pass.name}" (round ${iterations}) left an invalid graph (${fresh.length} problem${fresh.length > 1 ? 's' : ''}):\n${fresh
                .slice(0, 20)
                .map((p) => `  - ${p}`)
                .join('\n')}`,
              { value: pass.name },
            );
        }
        m = r.model;
      }
      if (!changed) {
        converged = true;
        break;
      }
      anyChange = true;
    }
    return {
      model: m,
      changed: anyChange,
      iterations,
      converged,
      nodesBefore,
      nodesAfter: nodeCount(m),
      passes: records,
      verified,
    };
  }
}

/** Run a list of passes to a fixed point (see PassManager). */
export function runPasses(
  model: Model,
  passes: readonly PassSpec[],
  opts: PassManagerOptions = {},
): Promise<PipelineResult> {
  return new PassManager(passes, opts).run(model);
}

function problemsOf(m: Model): string[] {
  return verifyModel(m, { checkNode: makeCheckNode(m) }).map((p) => p.message);
}

function formatCounts(c: Record<string, number>): string {
  const e = Object.entries(c);
  return e.length ? e.map(([k, v]) => `${k} ×${v}`).join(', ') : 'no rule counts';
}
