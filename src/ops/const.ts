// Constant data of values: initializers and Constant node outputs, and their elements as known values.
import type { Node, Value } from '../ir/index.js';
import { Tensor } from '../ir/index.js';
import type { SymValue } from './registry.js';
import { normDomain } from './table.js';
import { MAX_VALUE_ELEMENTS } from './util.js';

/** Constant data of a value: an initializer, or the output of a Constant node. */
export function constOf(v: Value | null | undefined): Tensor | undefined {
  if (!v) return undefined;
  if (v.const) return v.const;
  const p = v.producer;
  if (p && p.opType === 'Constant' && normDomain(p.domain) === '') return constantNodeTensor(p);
  return undefined;
}

/**
 * Integer elements of a constant (initializer or ai.onnx Constant output): axes, shapes, pads, flags; undefined when
 * absent or computed. With `fixedOnly`, an initializer that is also a graph input (a default the caller may feed,
 * so not a constant for graph rewrites) does not count.
 */
export function constInts(
  v: Value | null | undefined,
  opts: { fixedOnly?: boolean } = {},
): number[] | undefined {
  const t = opts.fixedOnly && v?.isGraphInput ? undefined : constOf(v);
  return t ? t.toNumbers().map(Number) : undefined;
}

/** Float elements of a constant (initializer or Constant output), or undefined when absent, empty or computed. */
export function constFloats(v: Value | null | undefined): number[] | undefined {
  const t = constOf(v);
  return t && t.numel > 0 ? Array.from(t.toFloat64()) : undefined;
}

/** The tensor a Constant node produces (any of its value_* attributes); undefined for sparse values. */
export function constantNodeTensor(n: Node): Tensor | undefined {
  const t = n.attrTensor('value');
  if (t) return t;
  const a = n.attrs;
  const f = a.get('value_float');
  if (f?.type === 'float') return Tensor.from('float32', [], [f.value]);
  const fs = a.get('value_floats');
  if (fs?.type === 'floats') return Tensor.from('float32', [fs.value.length], fs.value);
  const i = a.get('value_int');
  if (i?.type === 'int') return Tensor.from('int64', [], [i.value]);
  const is = a.get('value_ints');
  if (is?.type === 'ints') return Tensor.from('int64', [is.value.length], is.value);
  const s = a.get('value_string');
  if (s?.type === 'string')
    return new Tensor('string', [], new Uint8Array(0), { strings: [new TextEncoder().encode(s.value)] });
  const ss = a.get('value_strings');
  if (ss?.type === 'strings')
    return new Tensor('string', [ss.value.length], new Uint8Array(0), {
      strings: ss.value.map((x) => new TextEncoder().encode(x)),
    });
  return undefined;
}

/** Known elements of a constant tensor (small numeric tensors only). */
export function tensorToSym(t: Tensor): SymValue | undefined {
  if (t.numel > MAX_VALUE_ELEMENTS || t.dtype === 'string') return undefined;
  try {
    // copy into a fresh, aligned Uint8Array: a tensor decoded from a file may view a Node Buffer at an odd offset,
    // and Buffer#slice (used by Tensor#typed for unaligned data) does not copy
    const aligned =
      t.bytes.byteOffset % 8 === 0 && !Buffer.isBuffer(t.bytes)
        ? t
        : new Tensor(t.dtype, t.dims, new Uint8Array(t.bytes));
    return aligned.toNumbers();
  } catch {
    return undefined;
  }
}
