// eliminate-identity: Identity nodes, and Dropout nodes in inference mode, pass their input through; their readers
// read the input directly. Graph output names never change: when the removed node's output is a graph output, the
// input takes over its name, which needs the input to be computed by a node of the same graph and not be a graph
// output itself; otherwise the node stays (e.g. an If branch whose output is an outer value passed through).
import type { Node, Value } from '../../ir/index.js';
import { definePass } from '../manager.js';
import { applyRules, rule } from '../rule.js';
import { bypass, canBypass, constTensor, f64 } from '../util.js';

interface Through {
  node: Node;
  out: Value;
  input: Value;
}

function keptReason(t: Through): string {
  return `Kept ${t.node.opType} "${t.node.label}": its output "${t.out.name}" is a graph output and its input "${t.input.name}" cannot take that name (${
    t.input.isGraphOutput
      ? 'it is a graph output too'
      : t.input.graph !== t.out.graph
        ? 'it is defined in an enclosing graph'
        : t.input.const
          ? 'it is an initializer'
          : 'it is a graph input'
  })`;
}

export const identityRule = rule<Through>({
  name: 'identity',
  anchors: ['Identity'],
  match(node) {
    const input = node.inputs[0];
    const out = node.outputs[0];
    return input && out ? { node, out, input } : undefined;
  },
  check(t) {
    // an Identity that only renames an outer value or an input into a graph output has to stay; say so only in
    // the main graph (If branches do this all the time; there the rewrite just declines)
    if (!canBypass(t.out, t.input)) return t.out.graph.parent ? undefined : keptReason(t);
    return undefined;
  },
  rewrite(t) {
    return bypass(t.out, t.input) ? undefined : false;
  },
});

export const dropoutRule = rule<Through>({
  name: 'dropout',
  anchors: ['Dropout'],
  match(node) {
    const input = node.inputs[0];
    const out = node.outputs[0];
    return input && out ? { node, out, input } : undefined;
  },
  check({ node, out, input }) {
    const mask = node.outputs[1];
    if (mask && !mask.isUnused) return `Kept Dropout "${node.label}": its mask output "${mask.name}" is read`;
    const isTest = node.attrInt('is_test');
    if (isTest !== undefined && isTest === 0)
      return `Kept Dropout "${node.label}": it is in training mode (is_test = 0)`;
    const tm = node.inputs[2];
    if (tm) {
      const t = constTensor(tm);
      if (!t) return `Kept Dropout "${node.label}": its training_mode input "${tm.name}" is not a constant`;
      if (f64(t).some((x) => x !== 0)) return `Kept Dropout "${node.label}": its training_mode input is true`;
    }
    if (!canBypass(out, input)) return keptReason({ node, out, input });
    return undefined;
  },
  rewrite(t) {
    return bypass(t.out, t.input) ? undefined : false;
  },
});

export const eliminateIdentity = definePass(
  'eliminate-identity',
  'Remove Identity nodes and inference-mode Dropout nodes (graph output names are kept).',
  (m) => applyRules(m, [identityRule, dropoutRule]),
  {},
);
