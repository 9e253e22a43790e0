// Deterministic pseudo-random numbers (mulberry32): the same seed gives the same stream on every machine.
// Used for test inputs, random directions in gradient checks and anything else that needs repeatable noise.

/** mulberry32 (Tommy Ettinger's): a stream of uint32 values, state += 0x6D2B79F5 per draw; seed taken mod 2^32. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A stream of floats in [0, 1). */
export function prng(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}
