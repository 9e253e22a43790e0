// The ceiling of ORT's integer convolutions on the shapes where the mobile families lose (issue 17), each shape
// alone: a chain of 4 identical Convs (+ Relu) at 1 thread, batch 16, ORT's per-node kernel time per Conv
// (src/runtime/profile.ts) for FP32 and for every integer form ORT 1.30 offers through QDQ:
//   - u8s8-pc: uint8 activations, int8 symmetric per-channel weights (edgefit's default: MLAS's symmetric kernels
//     where the channel counts allow);
//   - u8s8-pt: the same with per-tensor weights;
//   - s8s8: int8 activations (x86 MLAS has no symmetric s8s8 conv kernel: the generic path);
//   - pad16 / pad64 (depthwise only): channels zero-padded to a multiple of 16 (what MLAS's symmetric depthwise
//     kernel needs) or 64 (the AVX-512 kernel's channel block); the time of the padded Conv.
// `npx tsx bench/conv_ceiling.ts [--runs 40] [--json]` (also `npm run bench -- quantize` prints it).
import { parseArgs } from 'node:util';
import { ModelBuilder } from '../src/ir/builder.js';
import type { Model } from '../src/ir/index.js';
import {
  prepareForQuantization,
  quantizeStatic,
  type StaticQuantOptions,
} from '../src/passes/quantize/index.js';
import { profileModel } from '../src/runtime/index.js';

export interface ConvShape {
  label: string;
  c: number;
  cout?: number;
  side: number;
  k: number;
  groups: number;
}

/** Shapes of the torchvision exports at 3×64×64 (bench/conv_kinds.ts lists where they lose). */
export const SHAPES: ConvShape[] = [
  { label: 'mnasnet/mbv3 dw 16ch 32²', c: 16, side: 32, k: 3, groups: 16 },
  { label: 'mbv2/effnet dw 32ch 32²', c: 32, side: 32, k: 3, groups: 32 },
  { label: 'mnasnet dw 48ch 16²', c: 48, side: 16, k: 3, groups: 48 },
  { label: 'mbv2 dw 96ch 16²', c: 96, side: 16, k: 3, groups: 96 },
  { label: 'mnasnet dw 72ch 8² k5', c: 72, side: 8, k: 5, groups: 72 },
  { label: 'shufflenet dw 24ch 8²', c: 24, side: 8, k: 3, groups: 24 },
  { label: 'mnasnet dw 240ch 4² k5', c: 240, side: 4, k: 5, groups: 240 },
  { label: 'regnet grouped 64ch/4 8²', c: 64, side: 8, k: 3, groups: 4 },
  { label: 'regnet grouped 400ch/25 2²', c: 400, side: 2, k: 3, groups: 25 },
  { label: 'pointwise 16→48 16²', c: 16, cout: 48, side: 16, k: 1, groups: 1 },
  { label: 'pointwise 96→576 2²', c: 96, cout: 576, side: 2, k: 1, groups: 1 },
];

const CHAIN = 4;

function chain(s: ConvShape, c: number, groups: number): Model {
  const b = new ModelBuilder({ opset: 13, seed: 1 });
  let y = b.input('input', 'float32', ['N', c, s.side, s.side]);
  const cout = s.cout ?? c;
  // pointwise shapes alternate c → cout → c: every Conv has the listed shape or its mirror
  let cur = c;
  for (let i = 0; i < CHAIN; i++) {
    const outC = cur === c ? cout : c;
    y = b.relu(b.conv2d(y, { inC: cur, outC, kernel: s.k, pad: s.k >> 1, groups, name: `conv${i}` }));
    cur = outC;
  }
  b.output(y, 'out');
  return b.build();
}

async function convMs(model: Model, c: number, side: number, runs: number): Promise<number> {
  const n = 16 * c * side * side;
  const x = {
    input: {
      dtype: 'float32' as const,
      dims: [16, c, side, side],
      data: Float32Array.from({ length: n }, (_, i) => Math.abs(Math.sin(i * 0.7))),
    },
  };
  const p = await profileModel(model, x, { threads: 1, runs, warmup: 5 });
  const convs = p.nodes.filter((nd) => /Conv/.test(nd.op));
  return convs.reduce((a, nd) => a + nd.ms, 0) / CHAIN;
}

export async function convCeiling(runs: number): Promise<Record<string, number | string>[]> {
  const rows: Record<string, number | string>[] = [];
  for (const s of SHAPES) {
    const forms: [string, number, number, StaticQuantOptions | null][] = [
      ['fp32', s.c, s.groups, null],
      ['u8s8-pc', s.c, s.groups, {}],
      ['u8s8-pt', s.c, s.groups, { perChannel: false }],
      ['s8s8', s.c, s.groups, { activationType: 'int8' }],
    ];
    if (s.groups === s.c && s.c % 16) {
      const c2 = Math.ceil(s.c / 16) * 16;
      forms.push(['pad16', c2, c2, {}]);
    }
    if (s.groups === s.c && s.c % 64) {
      const c2 = Math.ceil(s.c / 64) * 64;
      forms.push(['pad64', c2, c2, {}]);
    }
    const row: Record<string, number | string> = { bench: 'conv-ceiling', shape: s.label };
    for (const [name, c, groups, q] of forms) {
      const m = (await prepareForQuantization(chain({ ...s, c, groups }, c, groups))).model;
      let model = m;
      if (q) {
        const cal = [
          {
            input: {
              dtype: 'float32' as const,
              dims: [16, c, s.side, s.side],
              data: Float32Array.from({ length: 16 * c * s.side * s.side }, (_, i) => Math.abs(Math.sin(i))),
            },
          },
        ];
        model = (await quantizeStatic(m, { calibration: cal, floatStem: false, ...q })).model;
      }
      row[name] = +(await convMs(model, c, s.side, runs)).toFixed(4);
    }
    const best = Math.min(...forms.slice(1).map(([f]) => row[f] as number));
    row.best_int8_speedup = +((row.fp32 as number) / best).toFixed(2);
    rows.push(row);
  }
  return rows;
}

if (process.argv[1]?.endsWith('conv_ceiling.ts')) {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '40' }, json: { type: 'boolean', default: false } },
  });
  for (const r of await convCeiling(Number(values.runs))) {
    if (values.json) console.log(JSON.stringify(r));
    else
      console.log(
        Object.entries(r)
          .filter(([k]) => k !== 'bench')
          .map(([k, v]) => `${k} ${v}`)
          .join('  '),
      );
  }
}
