// dead-code: remove nodes nobody reads (transitively), initializers nobody reads, and the value_info of values that
// go with them (value types live on the values, so dropping a value drops its value_info). Graph inputs and
// outputs, and values read by subgraphs from enclosing graphs, are kept. Works on every graph of the model.
import { allGraphs } from '../../ir/index.js';
import { definePass } from '../manager.js';

export const deadCode = definePass(
  'dead-code',
  'Remove unused nodes, initializers and value_info (all graphs).',
  (m) => {
    const inits = () => [...allGraphs(m.graph)].reduce((s, g) => s + g.initializers.size, 0);
    const initsBefore = inits();
    // repeat: dropping a subgraph node can leave an outer value without readers
    let nodes = 0;
    for (let k; (k = m.graph.removeUnused()) > 0;) nodes += k;
    const initializers = initsBefore - inits();
    if (nodes) for (const g of allGraphs(m.graph)) g.toposort();
    const notes = [];
    if (nodes) notes.push(`removed ${nodes} unused node${nodes > 1 ? 's' : ''}`);
    if (initializers) notes.push(`removed ${initializers} unused initializer${initializers > 1 ? 's' : ''}`);
    const counts: Record<string, number> = {};
    if (nodes) counts['unused-node'] = nodes;
    if (initializers) counts['unused-initializer'] = initializers;
    return { changed: nodes + initializers > 0, notes, counts };
  },
  {},
);
