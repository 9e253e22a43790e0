// constant-to-initializer: each ai.onnx Constant node becomes an initializer of its graph with the same name, so
// later passes see one kind of constant. Sparse constants and Constants whose output is a graph output stay.
import type { Node, Tensor } from '../../ir/index.js';
import { constantNodeTensor } from '../../ops/index.js';
import { definePass } from '../manager.js';
import { applyRules, rule } from '../rule.js';
import { replaceWithInitializer } from '../util.js';

export const constantRule = rule<{ node: Node; t: Tensor }>({
  name: 'constant-to-initializer',
  anchors: ['Constant'],
  match(node) {
    const t = constantNodeTensor(node);
    const o = node.outputs[0];
    if (!t || !o || o.isGraphOutput) return undefined;
    return { node, t };
  },
  rewrite({ node, t }) {
    return replaceWithInitializer(node.output(0), t) ? undefined : false;
  },
});

export const constantToInitializer = definePass(
  'constant-to-initializer',
  'Turn Constant nodes into initializers (same names).',
  (m) => applyRules(m, [constantRule]),
  {},
);
