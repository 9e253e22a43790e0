// Parsing a JSON inference body without turning every tensor value into a JS number first. A body is almost all
// `"data": [<numbers>]` arrays; JSON.parse of an array of long decimals ("0.14509803921568626") costs far more than
// the rest of a request. So the body's bytes are scanned once: each `"data"` array of plain numbers is cut out and
// replaced in the JSON text by a placeholder, the small remainder goes through JSON.parse, and each array is kept as
// a `NumberSpan` over the body's bytes. A float32 input's span is then parsed straight into its Float32Array
// (`parseFloat32Span`), with the exact result of JSON.parse followed by Math.fround; any other dtype, and any span
// the fast parser does not take, goes through JSON.parse as before. A body that does not fit this shape (an array
// holding arrays or strings, a placeholder not at inputs.<name>.data, ...) is parsed whole by JSON.parse, so errors
// and their messages are JSON.parse's.

/** The bytes of one JSON array of numbers inside a request body, `[` to `]` inclusive. */
export class NumberSpan {
  constructor(
    readonly body: Buffer,
    readonly start: number,
    readonly end: number,
  ) {}

  /** The array as JSON.parse reads it. */
  parse(): unknown {
    return JSON.parse(this.body.toString('latin1', this.start, this.end));
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const BRACE = 0x7b;
const DATA = Buffer.from('"data"');
/** Placeholder key (JSON text of "\u0000edgefit-span"); a span's index is its value. */
const PLACEHOLDER_KEY = '\u0000edgefit-span';
const PLACEHOLDER_JSON = '{"\\u0000edgefit-span":';

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * The parsed body, each `inputs.<name>.data` array of plain numbers left as a NumberSpan. Throws JSON.parse's
 * SyntaxError for a body that is not JSON.
 */
export function parseJsonBody(body: Buffer): unknown {
  const spans: NumberSpan[] = [];
  const parts: string[] = [];
  let from = 0;
  let lastKeyIsData = false;
  let afterColon = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === QUOTE) {
      // a string: to its closing quote (UTF-8 continuation bytes are never a quote or a backslash)
      const s = i;
      i++;
      while (i < body.length && body[i] !== QUOTE) i += body[i] === BACKSLASH ? 2 : 1;
      lastKeyIsData = i - s + 1 === DATA.length && body.compare(DATA, 0, DATA.length, s, i + 1) === 0;
      afterColon = false;
      continue;
    }
    if (isSpace(c)) continue;
    if (c === COLON) {
      afterColon = lastKeyIsData;
      lastKeyIsData = false;
      continue;
    }
    if (c === OPEN && afterColon) {
      const end = body.indexOf(CLOSE, i);
      if (
        end > 0 &&
        body.subarray(i + 1, end).indexOf(OPEN) < 0 &&
        body.subarray(i + 1, end).indexOf(BRACE) < 0 &&
        body.subarray(i + 1, end).indexOf(QUOTE) < 0
      ) {
        parts.push(body.toString('utf8', from, i), `${PLACEHOLDER_JSON}${spans.length}}`);
        spans.push(new NumberSpan(body, i, end + 1));
        from = end + 1;
        i = end;
      }
    }
    afterColon = false;
    lastKeyIsData = false;
  }
  if (spans.length === 0) return JSON.parse(body.toString('utf8'));
  parts.push(body.toString('utf8', from));
  let parsed: unknown;
  try {
    parsed = JSON.parse(parts.join(''));
  } catch {
    return JSON.parse(body.toString('utf8')); // its own message, about the body as sent
  }
  // every placeholder must sit at inputs.<name>.data, once each
  const inputs = (parsed as { inputs?: unknown })?.inputs;
  let used = 0;
  if (typeof inputs === 'object' && inputs !== null && !Array.isArray(inputs))
    for (const t of Object.values(inputs as Record<string, unknown>)) {
      const d = (t as { data?: unknown } | null)?.data;
      if (typeof d !== 'object' || d === null || Array.isArray(d)) continue;
      const keys = Object.keys(d);
      const k = (d as Record<string, unknown>)[PLACEHOLDER_KEY];
      if (keys.length !== 1 || typeof k !== 'number' || !spans[k]) continue;
      (t as { data: unknown }).data = spans[k];
      spans[k] = undefined as never;
      used++;
    }
  if (used !== spans.length) return JSON.parse(body.toString('utf8'));
  return parsed;
}

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i); // exact doubles
const UP = 1 + 2 ** -40;
const DOWN = 1 - 2 ** -40;

/**
 * Parse a span of plain JSON numbers into `out` exactly as `Math.fround(JSON.parse(...)[i])` would. Returns how
 * many values the span holds (it stops writing at out.length), or -1 when it is not a plain array of JSON numbers
 * (the caller then parses it with JSON.parse for the exact error).
 */
export function parseFloat32Span(span: NumberSpan, out: Float32Array): number {
  const b = span.body;
  const end = span.end - 1; // the ']'
  let i = span.start + 1;
  let n = 0;
  while (i < end && isSpace(b[i]!)) i++;
  if (i === end) return 0;
  for (;;) {
    // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    const s = i;
    let neg = false;
    if (b[i] === 0x2d) {
      neg = true;
      i++;
    }
    // the first 15 significant digits, exactly: 9 in `hi`, up to 6 more in `lo` (small integers, no float math)
    let hi = 0;
    let lo = 0;
    let digits = 0;
    let exp = 0; // decimal exponent of the digits kept
    let c = b[i]!;
    if (c === 0x30) {
      c = b[++i]!;
    } else if (c >= 0x31 && c <= 0x39) {
      do {
        if (digits < 9) hi = hi * 10 + (c - 0x30);
        else if (digits < 15) lo = lo * 10 + (c - 0x30);
        else exp++;
        digits++;
        c = b[++i]!;
      } while (c >= 0x30 && c <= 0x39);
    } else return -1;
    if (c === 0x2e) {
      c = b[++i]!;
      if (!(c >= 0x30 && c <= 0x39)) return -1;
      if (digits === 0)
        while (c === 0x30) {
          exp--;
          c = b[++i]!;
        }
      while (c >= 0x30 && c <= 0x39) {
        if (digits < 9) {
          hi = hi * 10 + (c - 0x30);
          exp--;
        } else if (digits < 15) {
          lo = lo * 10 + (c - 0x30);
          exp--;
        }
        digits++;
        c = b[++i]!;
      }
    }
    const m = digits <= 9 ? hi : hi * POW10[Math.min(digits, 15) - 9]! + lo;
    if (c === 0x65 || c === 0x45) {
      c = b[++i]!;
      let eneg = false;
      if (c === 0x2b || c === 0x2d) {
        eneg = c === 0x2d;
        c = b[++i]!;
      }
      if (!(c >= 0x30 && c <= 0x39)) return -1;
      let e = 0;
      do {
        if (e < 100000) e = e * 10 + (c - 0x30);
        c = b[++i]!;
      } while (c >= 0x30 && c <= 0x39);
      exp += eneg ? -e : e;
    }
    let f: number;
    if (m === 0) f = neg ? -0 : 0;
    else if (exp < -22 || exp > 22) f = Math.fround(Number(b.toString('latin1', s, i)));
    else {
      // v is within 1e-14 (relative) of JSON.parse's double: it rounds to the same float32 unless it sits within
      // 2^-40 of a float32 rounding boundary, where the exact (slow) path decides
      let v = exp >= 0 ? m * POW10[exp]! : m / POW10[-exp]!;
      if (neg) v = -v;
      f = Math.fround(v);
      if (Math.fround(v * UP) !== f || Math.fround(v * DOWN) !== f)
        f = Math.fround(Number(b.toString('latin1', s, i)));
    }
    if (n < out.length) out[n] = f;
    n++;
    while (isSpace(c)) c = b[++i]!;
    if (i === end) return n;
    if (c !== 0x2c) return -1;
    c = b[++i]!;
    while (isSpace(c)) c = b[++i]!;
    if (i >= end) return -1;
  }
}
