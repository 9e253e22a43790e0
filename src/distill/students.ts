// Student families for distillation, built with the IR model builder: each family has a width and a depth knob,
// takes images [N, C, H, W] and returns logits [N, classes]. They are sized for edge devices — the device profile
// (./profile.ts) scans width × depth for the largest one that fits a budget.
//
//   dsconv       MobileNet-style: 3×3 stem, then `depth` blocks of depthwise 3×3 + BN + ReLU → pointwise 1×1 + BN +
//                ReLU (the first two blocks stride 2 and double the channels), global average pool, Linear.
//   cnn          plain small CNN: `depth` blocks of 3×3 conv + BN + ReLU (the first two followed by a 2×2 max pool,
//                channels doubling), global average pool, Linear.
//   mlp          Flatten, `depth` hidden Linear + ReLU layers of `width` units, Linear.
//   mixer        attention-free token mixer (MLP-Mixer): patches → Linear to `width`, `depth` blocks of token mixing
//                (LayerNorm, transpose, MLP across tokens) and channel mixing (LayerNorm, MLP), mean over tokens.
//   transformer  tiny ViT: patches → Linear to `width` + learned positions, `depth` pre-LN blocks of multi-head
//                attention (heads of 16) and MLP (2×width), LayerNorm, mean over tokens, Linear.
//
// Spec strings: `family:width=16,depth=3` (both knobs optional: the family's default).
import { InputError } from '../errors.js';
import { ModelBuilder, countParameters } from '../ir/builder.js';
import type { Model, Value } from '../ir/graph.js';

export const FAMILIES = ['dsconv', 'cnn', 'mlp', 'mixer', 'transformer'] as const;
export type Family = (typeof FAMILIES)[number];

export interface StudentSpec {
  family: Family;
  width: number;
  depth: number;
}

/** What each family is, for help texts and the device profile's reasons. */
export const FAMILY_INFO: Readonly<
  Record<Family, { what: string; attention: boolean; depthwise: boolean; defaults: [number, number] }>
> = {
  dsconv: {
    what: 'depthwise-separable CNN (MobileNet-style)',
    attention: false,
    depthwise: true,
    defaults: [16, 3],
  },
  cnn: { what: 'plain small CNN', attention: false, depthwise: false, defaults: [16, 3] },
  mlp: { what: 'MLP', attention: false, depthwise: false, defaults: [64, 2] },
  mixer: {
    what: 'attention-free token mixer (MLP-Mixer)',
    attention: false,
    depthwise: false,
    defaults: [32, 2],
  },
  transformer: { what: 'tiny transformer (ViT)', attention: true, depthwise: false, defaults: [32, 2] },
};

/** Width and depth each family accepts. */
export const KNOB_LIMITS = { width: [1, 4096], depth: [1, 32] } as const;

export function isFamily(s: string): s is Family {
  return (FAMILIES as readonly string[]).includes(s);
}

export function formatStudent(s: StudentSpec): string {
  return `${s.family}:width=${s.width},depth=${s.depth}`;
}

/** Parse `family[:width=W,depth=D]`. */
export function parseStudent(text: string): StudentSpec {
  const bad = (why: string) =>
    new InputError('student-spec', `--student "${text}": ${why} (e.g. dsconv:width=16,depth=3)`, {
      value: 'student',
    });
  const [fam, rest, ...more] = text.trim().split(':');
  if (more.length) throw bad('one ":" between the family and its knobs');
  if (!fam || !isFamily(fam)) throw bad(`the family must be one of ${FAMILIES.join(', ')}`);
  const [width, depth] = FAMILY_INFO[fam].defaults;
  const spec: StudentSpec = { family: fam, width, depth };
  if (rest !== undefined && rest.trim() !== '')
    for (const kv of rest.split(',')) {
      const [k, v, ...x] = kv.split('=').map((s) => s.trim());
      if (x.length || (k !== 'width' && k !== 'depth') || v === undefined)
        throw bad(`"${kv}" is not width=N or depth=N`);
      const n = Number(v);
      const [lo, hi] = KNOB_LIMITS[k];
      if (!Number.isInteger(n) || n < lo || n > hi) throw bad(`${k} must be an integer in ${lo}..${hi}`);
      spec[k] = n;
    }
  return spec;
}

export interface StudentShape {
  /** One item: [C, H, W]. */
  input: readonly number[];
  classes: number;
  /** Input and output names (default `input`, `logits`). */
  inputName?: string;
  outputName?: string;
}

/** Patch side for the token families: the smallest divisor of H and W giving at most 16 tokens (7 for 28×28). */
export function patchSize(h: number, w: number): number {
  for (let p = 1; p <= Math.min(h, w); p++)
    if (h % p === 0 && w % p === 0 && (h / p) * (w / p) <= 16) return p;
  // no common divisor gives ≤ 16 tokens: the largest common divisor
  let g = h;
  let b = w;
  while (b) [g, b] = [b, g % b];
  return g;
}

/** Build the student (seeded initialisation). */
export function buildStudent(spec: StudentSpec, shape: StudentShape, seed = 0): Model {
  const [c, h, w] = shape.input;
  if (shape.input.length !== 3 || !c || !h || !w)
    throw new InputError(
      'student-input',
      `Students take images [C, H, W]: the data's items have shape [${shape.input.join(', ')}]`,
      { value: 'input' },
    );
  if (!Number.isInteger(shape.classes) || shape.classes < 2)
    throw new InputError('student-classes', `Students need ≥ 2 classes: got ${shape.classes}`, {
      value: 'classes',
    });
  for (const k of ['width', 'depth'] as const) {
    const [lo, hi] = KNOB_LIMITS[k];
    if (!Number.isInteger(spec[k]) || spec[k] < lo || spec[k] > hi)
      throw new InputError(
        'student-spec',
        `Student ${k} must be an integer in ${lo}..${hi}: got ${spec[k]}`,
        {
          value: k,
        },
      );
  }
  const b = new ModelBuilder({
    name: spec.family,
    seed,
    docString: `edgefit student ${formatStudent(spec)}`,
  });
  const x = b.input(shape.inputName ?? 'input', 'float32', ['N', c, h, w]);
  const k = shape.classes;
  let logits: Value;
  switch (spec.family) {
    case 'dsconv':
      logits = dsconv(b, x, [c, h, w], spec, k);
      break;
    case 'cnn':
      logits = cnn(b, x, [c, h, w], spec, k);
      break;
    case 'mlp':
      logits = mlp(b, x, c * h * w, spec, k);
      break;
    case 'mixer':
      logits = mixer(b, x, [c, h, w], spec, k);
      break;
    case 'transformer':
      logits = transformer(b, x, [c, h, w], spec, k);
      break;
  }
  b.output(logits, shape.outputName ?? 'logits');
  return b.build();
}

/** Trainable parameters of a student (BN running statistics excluded). */
export function studentParams(m: Model): number {
  return countParameters(m, { trainableOnly: true });
}

function convBnRelu(
  b: ModelBuilder,
  x: Value,
  inC: number,
  outC: number,
  name: string,
  o: { kernel?: number; stride?: number; groups?: number } = {},
): Value {
  const kernel = o.kernel ?? 3;
  const y = b.conv2d(x, {
    inC,
    outC,
    kernel,
    pad: (kernel - 1) / 2,
    stride: o.stride ?? 1,
    groups: o.groups ?? 1,
    bias: false,
    name,
  });
  return b.relu(b.batchNorm(y, outC, { name: `${name}.bn` }), `${name}.relu`);
}

type Img = [number, number, number];

function head(b: ModelBuilder, x: Value, ch: number, k: number): Value {
  const g = b.flatten(b.globalAvgPool(x, 'gap'), 1, 'flatten');
  return b.linear(g, ch, k, { name: 'head' });
}

function dsconv(b: ModelBuilder, x: Value, [c, h, w]: Img, s: StudentSpec, k: number): Value {
  let ch = s.width;
  let y = convBnRelu(b, x, c, ch, 'stem');
  let side = Math.min(h, w);
  for (let i = 0; i < s.depth; i++) {
    const down = i < 2 && side >= 4;
    const out = down ? ch * 2 : ch;
    y = convBnRelu(b, y, ch, ch, `blocks.${i}.dw`, { stride: down ? 2 : 1, groups: ch });
    y = convBnRelu(b, y, ch, out, `blocks.${i}.pw`, { kernel: 1 });
    if (down) side = Math.ceil(side / 2);
    ch = out;
  }
  return head(b, y, ch, k);
}

function cnn(b: ModelBuilder, x: Value, [c, h, w]: Img, s: StudentSpec, k: number): Value {
  let ch = c;
  let y = x;
  let side = Math.min(h, w);
  for (let i = 0; i < s.depth; i++) {
    const out = s.width * 2 ** Math.min(i, 2);
    y = convBnRelu(b, y, ch, out, `blocks.${i}.conv`);
    if (i < 2 && side >= 4) {
      y = b.maxPool(y, { kernel: 2, name: `blocks.${i}.pool` });
      side = Math.floor(side / 2);
    }
    ch = out;
  }
  return head(b, y, ch, k);
}

function mlp(b: ModelBuilder, x: Value, features: number, s: StudentSpec, k: number): Value {
  let y = b.flatten(x, 1, 'flatten');
  let f = features;
  for (let i = 0; i < s.depth; i++) {
    y = b.relu(b.linear(y, f, s.width, { name: `layers.${i}` }), `layers.${i}.relu`);
    f = s.width;
  }
  return b.linear(y, f, k, { name: 'head' });
}

/** Patches → Linear to `dim`: [N, T, dim] and T. */
function embedPatches(b: ModelBuilder, x: Value, c: number, h: number, w: number, dim: number) {
  const p = patchSize(h, w);
  const tokens = (h / p) * (w / p);
  const t = b.linear(b.patchify(x, p, 'patchify'), c * p * p, dim, { name: 'patch' });
  return { t, tokens };
}

/** Pre-LN residual MLP over the channels of each token: t + fc2(gelu(fc1(ln2 t))), hidden 2×dim. */
function channelMlp(b: ModelBuilder, t: Value, dim: number, p: string): Value {
  let m = b.linear(b.layerNorm(t, dim, { name: `${p}.ln2` }), dim, 2 * dim, { name: `${p}.fc1` });
  m = b.linear(b.gelu(m, `${p}.gelu`), 2 * dim, dim, { name: `${p}.fc2` });
  return b.add(t, m, `${p}/mlp_residual`);
}

function tokenHead(b: ModelBuilder, t: Value, dim: number, k: number): Value {
  return b.linear(b.mean(b.layerNorm(t, dim, { name: 'ln' }), [1], false, 'mean'), dim, k, { name: 'head' });
}

function mixer(b: ModelBuilder, x: Value, [c, h, w]: Img, s: StudentSpec, k: number): Value {
  const dim = s.width;
  let { t, tokens } = embedPatches(b, x, c, h, w, dim);
  const tokenHidden = Math.max(2 * tokens, 8);
  for (let i = 0; i < s.depth; i++) {
    const p = `blocks.${i}`;
    // token mixing: an MLP across the tokens of each channel
    let m = b.transpose(b.layerNorm(t, dim, { name: `${p}.ln1` }), [0, 2, 1], `${p}/T1`); // [N, dim, T]
    m = b.linear(m, tokens, tokenHidden, { name: `${p}.token1` });
    m = b.linear(b.gelu(m, `${p}.token_gelu`), tokenHidden, tokens, { name: `${p}.token2` });
    t = b.add(t, b.transpose(m, [0, 2, 1], `${p}/T2`), `${p}/token_residual`);
    t = channelMlp(b, t, dim, p); // channel mixing
  }
  return tokenHead(b, t, dim, k);
}

function transformer(b: ModelBuilder, x: Value, [c, h, w]: Img, s: StudentSpec, k: number): Value {
  const heads = Math.max(1, Math.floor(s.width / 16));
  const dim = Math.ceil(s.width / heads) * heads; // heads must divide the width
  let { t, tokens } = embedPatches(b, x, c, h, w, dim);
  t = b.add(t, b.parameter('pos', [1, tokens, dim], { normal: [0, 0.02] }), 'pos_add');
  for (let i = 0; i < s.depth; i++) {
    const p = `blocks.${i}`;
    const a = b.attention(b.layerNorm(t, dim, { name: `${p}.ln1` }), { dim, heads, name: `${p}.attn` });
    t = b.add(t, a, `${p}/attn_residual`);
    t = channelMlp(b, t, dim, p);
  }
  return tokenHead(b, t, dim, k);
}
