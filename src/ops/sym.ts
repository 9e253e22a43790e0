// Symbolic dimension arithmetic. A dim is a number, a symbol (an ONNX dim_param such as 'N' or 'batch_size'), or
// null when unknown. Shape inference also needs dims that are *expressions* of symbols: torch exports compute a
// Reshape target as `Mul(Gather(Shape(x), 0), 4)`, so the output dim is "4 * N". Expressions are kept as integer
// polynomials over the symbols, written as a canonical string whose tokens are separated by single spaces:
// "4 * N", "N + 1", "N * T - 2". A dim string without a space is always an atom (a plain symbol), so dim_params
// such as 'Squeeze/decoder/out_dim_0' or 'seq-len' are never parsed. Two dims are equal when their strings are.
// Only what shape rules need is supported: +, -, ×, exact division by a monomial; anything else gives null.
import type { Dim } from '../ir/index.js';

/** Monomial key ('' for the constant term: symbols joined by ' * ', sorted) → integer coefficient. */
type Poly = Map<string, number>;

function polyOf(d: number | string): Poly | undefined {
  if (typeof d === 'number') return new Map([['', d]]);
  if (!d.includes(' ')) return new Map([[d, 1]]);
  return parsePoly(d);
}

function parsePoly(s: string): Poly | undefined {
  const toks = s.split(' ');
  const p: Poly = new Map();
  let i = 0;
  let sign = 1;
  while (i < toks.length) {
    // a term: factor (' * ' factor)*
    let coef = sign;
    const syms: string[] = [];
    for (;;) {
      const t = toks[i++];
      if (t === undefined || t === '' || t === '+' || t === '*' || t === '-') return undefined;
      if (/^-?\d+$/.test(t)) coef *= Number(t);
      else syms.push(t);
      if (toks[i] === '*') {
        i++;
        continue;
      }
      break;
    }
    addTerm(p, syms, coef);
    if (i >= toks.length) break;
    const op = toks[i++];
    if (op === '+') sign = 1;
    else if (op === '-') sign = -1;
    else return undefined;
    if (i >= toks.length) return undefined;
  }
  return p;
}

function addTerm(p: Poly, syms: string[], coef: number): void {
  const key = [...syms].sort().join(' * ');
  const c = (p.get(key) ?? 0) + coef;
  if (c === 0) p.delete(key);
  else p.set(key, c);
}

function formatPoly(p: Poly): number | string {
  const keys = [...p.keys()].filter((k) => p.get(k) !== 0);
  if (keys.length === 0) return 0;
  if (keys.length === 1 && keys[0] === '') return p.get('')!;
  // symbols first (sorted), constant last
  keys.sort((a, b) => (a === '' ? 1 : b === '' ? -1 : a < b ? -1 : a > b ? 1 : 0));
  let out = '';
  keys.forEach((k, i) => {
    const c = p.get(k)!;
    const abs = Math.abs(c);
    let term: string;
    if (k === '') term = String(abs);
    else term = abs === 1 ? k : `${abs} * ${k}`;
    if (i === 0) out = c < 0 ? (k === '' ? `-${abs}` : `-1 * ${term}`) : term;
    else out += c < 0 ? ` - ${term}` : ` + ${term}`;
  });
  return out;
}

function combine(a: Dim, b: Dim, f: (x: Poly, y: Poly) => Poly | undefined): Dim {
  if (a === null || b === null) return null;
  const pa = polyOf(a);
  const pb = polyOf(b);
  if (!pa || !pb) return null;
  const r = f(pa, pb);
  return r ? formatPoly(r) : null;
}

export function dimAdd(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  return combine(a, b, (x, y) => {
    const p = new Map(x);
    for (const [k, c] of y) addTerm(p, k ? k.split(' * ') : [], c);
    return p;
  });
}

export function dimNeg(a: Dim): Dim {
  return dimMul(a, -1);
}

export function dimSub(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return dimAdd(a, dimNeg(b));
}

export function dimMul(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  if (a === 0 || b === 0) return 0;
  return combine(a, b, (x, y) => {
    const p: Poly = new Map();
    for (const [ka, ca] of x)
      for (const [kb, cb] of y)
        addTerm(p, [...(ka ? ka.split(' * ') : []), ...(kb ? kb.split(' * ') : [])], ca * cb);
    return p;
  });
}

/** Exact division: numbers when divisible, polynomials divided by a monomial; otherwise null. */
export function dimDivExact(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return b !== 0 && a % b === 0 ? a / b : null;
  if (a === null || b === null) return null;
  if (a === b) return 1;
  const pa = polyOf(a);
  const pb = polyOf(b);
  if (!pa || !pb || pb.size !== 1) return null;
  const [[kb, cb]] = [...pb];
  const bsyms = kb ? kb.split(' * ') : [];
  const p: Poly = new Map();
  for (const [ka, ca] of pa) {
    if (ca % cb !== 0) return null;
    const syms = ka ? ka.split(' * ') : [];
    for (const s of bsyms) {
      const j = syms.indexOf(s);
      if (j < 0) return null;
      syms.splice(j, 1);
    }
    addTerm(p, syms, ca / cb);
  }
  return formatPoly(p);
}

/** floor(a / b) for numbers; exact symbolic division when possible; else null. */
export function dimFloorDiv(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return b === 0 ? null : Math.floor(a / b);
  if (b === 1) return a;
  return dimDivExact(a, b);
}

/** ceil(a / b) for numbers; exact symbolic division when possible; else null. */
export function dimCeilDiv(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return b === 0 ? null : Math.ceil(a / b);
  if (b === 1) return a;
  return dimDivExact(a, b);
}

export function dimProduct(dims: readonly Dim[]): Dim {
  let p: Dim = 1;
  for (const d of dims) p = dimMul(p, d);
  return p;
}

/** true / false when decidable (numbers, or identical expressions), undefined otherwise. */
export function dimEquals(a: Dim, b: Dim): boolean | undefined {
  if (a === null || b === null) return undefined;
  if (typeof a === 'number' && typeof b === 'number') return a === b;
  if (a === b) return true;
  const d = dimSub(a, b);
  if (typeof d === 'number') return d === 0;
  // a symbol is a size, so a polynomial with non-negative coefficients is never negative
  const neg = typeof a === 'number' ? a : typeof b === 'number' ? b : 0;
  const sym = typeof a === 'number' ? b : a;
  if (neg < 0) {
    const p = polyOf(sym);
    if (p && [...p.values()].every((c) => c >= 0)) return false;
  }
  return undefined;
}

/** The merge of two descriptions of one dim: a number beats a symbol, a symbol beats null. */
export function mergeDim(a: Dim, b: Dim): Dim {
  if (a === null) return b;
  if (b === null) return a;
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return a;
}

/**
 * Evaluate a dim under `bindings` (symbol → number). Returns undefined when it mentions an unbound symbol or the
 * dim is null. Plain symbols are looked up as a whole first, so any dim_param works as a binding name.
 */
export function evalDim(
  d: Dim,
  bindings: ReadonlyMap<string, number> | Record<string, number>,
): number | undefined {
  const get = (s: string): number | undefined =>
    bindings instanceof Map ? bindings.get(s) : (bindings as Record<string, number>)[s];
  if (d === null) return undefined;
  if (typeof d === 'number') return d;
  const whole = get(d);
  if (whole !== undefined) return whole;
  const p = polyOf(d);
  if (!p) return undefined;
  let total = 0;
  for (const [k, c] of p) {
    let term = c;
    if (k)
      for (const s of k.split(' * ')) {
        const v = get(s);
        if (v === undefined) return undefined;
        term *= v;
      }
    total += term;
  }
  return total;
}

/** The symbols a dim mentions. */
export function dimSymbols(d: Dim): string[] {
  if (d === null || typeof d === 'number') return [];
  if (!d.includes(' ')) return [d];
  const p = polyOf(d);
  if (!p) return [d];
  const out = new Set<string>();
  for (const k of p.keys()) if (k) for (const s of k.split(' * ')) out.add(s);
  return [...out];
}

export function formatDims(dims: readonly Dim[] | null | undefined): string {
  if (dims === undefined) return '?';
  if (dims === null) return '[?]';
  return `[${dims.map((d) => (d === null ? '?' : typeof d === 'string' ? (d.includes(' ') ? `(${d})` : d) : String(d))).join(', ')}]`;
}
