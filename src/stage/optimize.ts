// The optimize stage: clean-up and fusion passes to a fixed point, then (unless turned off) the optimized model's
// outputs checked against the input model's on seeded random inputs in ORT — a gate on the largest difference.
import { GateError, InputError, InternalError } from '../errors.js';
import { checkGates, gatesPassed } from '../eval/gates.js';
import { assertValid, type Model } from '../ir/index.js';
import {
  compareModels,
  opCounts,
  randomInputs,
  runPasses,
  standardPipeline,
  type CompareResult,
  type Pass,
  type PassRecord,
} from '../passes/index.js';
import type { RandomInputOptions } from '../passes/check.js';
import { RuntimeError, runModel } from '../runtime/index.js';
import type { StageContext } from './context.js';
import { passNotes } from './notes.js';
import type { Stage } from './types.js';

export interface OptimizeOptions {
  /** Passes in order (default: the standard clean-up and fusion pipeline). */
  passes?: readonly Pass<any>[];
  /** Rounds over the pass list before giving up on a fixed point (default 10). */
  maxIterations?: number;
  /** Verify the graph after every pass that changed it. */
  verify?: boolean;
  /** Compare outputs before/after on random inputs (default true); the options shape those inputs. */
  check?: boolean | RandomInputOptions;
  /** Largest allowed |output before − output after| (default 1e-4). */
  tolerance?: number;
}

export interface OptimizeDetail {
  nodesBefore: number;
  nodesAfter: number;
  opCountsBefore: Record<string, number>;
  opCountsAfter: Record<string, number>;
  iterations: number;
  converged: boolean;
  passes: PassRecord[];
  /** The output comparison, when it ran. */
  check: CompareResult | null;
  tolerance: number;
}

export function optimizeStage(o: OptimizeOptions = {}): Stage<OptimizeDetail> {
  return {
    name: 'optimize',
    needs: [],
    async run(m: Model, ctx: StageContext) {
      const t0 = performance.now();
      const tolerance = o.tolerance ?? 1e-4;
      const input = ctx.modelName;
      const opCountsBefore = opCounts(m);
      const r = await runPasses(m, o.passes ?? standardPipeline(), {
        maxIterations: o.maxIterations ?? 10,
        verify: !!o.verify,
        log: ctx.log,
      });
      assertValid(r.model.graph, { opsetImports: r.model.opsetImports }, `the optimized ${input}`);
      let cmp: CompareResult | null = null;
      const gates = [];
      if (o.check !== false) {
        const feeds = randomInputs(m, typeof o.check === 'object' ? o.check : {});
        try {
          await runModel(m, feeds, { threads: 1, label: input });
        } catch (e) {
          if (!(e instanceof RuntimeError)) throw e;
          throw new InputError(
            'check-input',
            `Cannot check the optimized model: ${e.message}. Set input shapes with --shapes, fixed input values with --values, or symbolic dims with --dims (or --batch), or pass --skip-check to write it unchecked`,
            { file: input },
          );
        }
        try {
          cmp = await compareModels(m, r.model, feeds);
        } catch (e) {
          if (!(e instanceof RuntimeError)) throw e;
          throw new InternalError(
            'optimized-run',
            `ONNX Runtime runs ${input} but not the optimized model: ${e.message}`,
            { file: input },
          );
        }
        const worst = cmp.outputs.reduce((a, b) => (b.maxAbsDiff > a.maxAbsDiff ? b : a), cmp.outputs[0]!);
        gates.push(
          ...checkGates(
            { maxAbsDiff: tolerance },
            { maxAbsDiff: cmp.maxAbsDiff, ...(worst ? { worstOutput: worst.name } : {}) },
          ),
        );
        if (!gatesPassed(gates))
          throw new GateError(
            'optimize-diff',
            `The optimized model's output "${worst?.name}" differs from the input model's by ${worst?.maxAbsDiff ?? cmp.maxAbsDiff} on random inputs: above the tolerance ${tolerance}. Nothing was written; run with --passes to find the pass`,
            { file: input, value: worst?.name ?? '' },
          );
      }
      return {
        model: r.model,
        report: {
          stage: 'optimize',
          seconds: (performance.now() - t0) / 1000,
          figures: {
            nodesBefore: r.nodesBefore,
            nodesAfter: r.nodesAfter,
            iterations: r.iterations,
            maxAbsDiff: cmp ? cmp.maxAbsDiff : null,
          },
          notes: r.passes.flatMap(passNotes),
          gates,
          detail: {
            nodesBefore: r.nodesBefore,
            nodesAfter: r.nodesAfter,
            opCountsBefore,
            opCountsAfter: opCounts(r.model),
            iterations: r.iterations,
            converged: r.converged,
            passes: r.passes,
            check: cmp,
            tolerance,
          },
        },
      };
    },
  };
}
