// The one generic clean-up after graph edits: dead nodes and initializers dropped in every graph (to a fixed
// point), then every graph back in topological order. Passes, quantizers, the train-step builder and the gradient
// check call it instead of sorting and pruning the main graph by hand.
import { allGraphs, type Model } from './graph.js';

/** Drop dead nodes and initializers (all graphs), restore topological order (all graphs). Returns nodes removed. */
export function cleanup(model: Model): number {
  let removed = 0;
  for (let k; (k = model.graph.removeUnused()) > 0;) removed += k;
  for (const g of allGraphs(model.graph)) g.toposort();
  return removed;
}
