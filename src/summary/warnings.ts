// What `edgefit inspect` warns about: problems that make ORT (or edgefit) refuse the model later, found while the
// user is only looking at it — a node input defined nowhere, a missing opset import, an opset newer than ORT runs.
import type { Model } from '../ir/graph.js';
import { verifyModel } from '../ir/verify.js';
import { MAX_KNOWN_OPSET } from '../onnx/opsets.js';

/** The newest ai.onnx opset onnxruntime-node 1.30 loads (measured: 26 loads, 27 is refused at load). */
export const ORT_MAX_OPSET = 26;

export function modelWarnings(m: Model): string[] {
  const out: string[] = [];
  const opset = m.opset('');
  if (opset !== undefined && opset > ORT_MAX_OPSET)
    out.push(
      `opset ${opset} (ai.onnx) is newer than ONNX Runtime 1.30 supports (${ORT_MAX_OPSET}): ORT will refuse to load this model`,
    );
  else if (opset !== undefined && opset > MAX_KNOWN_OPSET)
    out.push(
      `opset ${opset} (ai.onnx) is newer than edgefit's op schemas (${MAX_KNOWN_OPSET}): shapes and rewrites of ops changed after ${MAX_KNOWN_OPSET} may be unknown`,
    );
  for (const p of verifyModel(m))
    if (
      p.kind === 'dangling-input' ||
      p.kind === 'missing-opset' ||
      p.kind === 'cycle' ||
      p.kind === 'undefined-output'
    )
      out.push(p.message);
  return out;
}
