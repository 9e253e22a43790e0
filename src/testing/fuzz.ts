// Decoder fuzzing: seeded byte-level mutations of real ONNX files (torch exports), each decoded, and whatever
// decodes encoded again. The contract: a mutated file either decodes or fails with a typed EdgefitError that names
// the file — never a TypeError/RangeError from deep inside the decoder. Used by the test (3,000 mutations, every
// `npm test`) and by `npm run bench -- fuzz` (10,000 or more).
import { readFileSync } from 'node:fs';
import { EdgefitError } from '../errors.js';
import { decodeModel, encodeModel } from '../onnx/index.js';
import { prng, torchFixtures } from './fixtures.js';

export const FUZZ_SEED_MODELS = ['misc_op13', 'convt_op13', 'mobile_op13', 'encoder_op14', 'mobile_bn_op13'];

export interface FuzzResult {
  mutations: number;
  decoded: number;
  rejected: number;
  /** Mutations whose failure broke the contract (untyped error, or the file not named), with the reason. */
  violations: { index: number; kind: number; message: string }[];
  seconds: number;
}

/** One seeded mutation of `src`: byte flips, truncation, insertion, or a corrupted varint length (kind 0–3). */
export function mutate(src: Uint8Array, r: () => number): { bytes: Uint8Array; kind: number } {
  let b = new Uint8Array(src);
  const kind = Math.floor(r() * 4);
  if (kind === 0) {
    const flips = 1 + Math.floor(r() * 8);
    for (let k = 0; k < flips; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
  } else if (kind === 1) b = b.slice(0, Math.floor(r() * b.length));
  else if (kind === 2) {
    const at = Math.floor(r() * b.length);
    const ins = new Uint8Array(1 + Math.floor(r() * 16)).map(() => Math.floor(r() * 256));
    b = new Uint8Array([...b.subarray(0, at), ...ins, ...b.subarray(at)]);
  } else {
    const at = Math.floor(r() * b.length);
    b[at] = 0xff;
    if (at + 1 < b.length) b[at + 1] = 0xff;
  }
  return { bytes: b, kind };
}

export function fuzzDecoder(mutations: number, seed = 20261125, models = FUZZ_SEED_MODELS): FuzzResult {
  const t0 = performance.now();
  const all = torchFixtures();
  const seeds = models.map((n) => readFileSync(all.find((f) => f.name === n)!.path));
  const r = prng(seed);
  const out: FuzzResult = { mutations, decoded: 0, rejected: 0, violations: [], seconds: 0 };
  for (let i = 0; i < mutations; i++) {
    const { bytes, kind } = mutate(seeds[i % seeds.length]!, r);
    const file = `fuzz-${i}.onnx`;
    try {
      encodeModel(decodeModel(bytes, { file })); // whatever decodes must also encode
      out.decoded++;
    } catch (e) {
      out.rejected++;
      if (!(e instanceof EdgefitError))
        out.violations.push({ index: i, kind, message: `untyped ${(e as Error)?.stack ?? String(e)}` });
      else if (!e.message.includes(file) && e.subject.file !== file)
        out.violations.push({ index: i, kind, message: `does not name the file: ${e.message}` });
    }
  }
  out.seconds = (performance.now() - t0) / 1000;
  return out;
}
