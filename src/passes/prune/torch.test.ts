// Pruning torch exports of each family the issue names (generated at test time, random init): residual (ResNet),
// inverted residual + depthwise (MobileNetV2), squeeze-excitation + HardSwish (MobileNetV3), concat (SqueezeNet),
// channel shuffle + chunk (ShuffleNetV2), grouped convolutions (RegNetX),
// and heads in torch's TransformerEncoderLayer / nn.MultiheadAttention exports. Every pruned model runs in ORT with
// the original output shape and equals the original with the removed channels' readers zeroed.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadModel } from '../../onnx/index.js';
import { checkHeads, checkPrune } from '../../testing/prune.js';
import { torchModels } from '../../testing/torchgen.js';

const gen = torchModels('test');
const skip = 'skip' in gen ? gen.skip : false;
const load = (name: string) => loadModel(join((gen as { dir: string }).dir, `${name}.onnx`));

describe('pruning torch exports', { skip }, () => {
  const producers = (r: Awaited<ReturnType<typeof checkPrune>>) => r.deps.groups.filter((g) => g.prunable);

  it('ResNet: residual Adds couple the stage channels', async () => {
    const r = await checkPrune(load('resnet'));
    const joined = producers(r).filter((g) => g.producers.some((p) => /downsample/.test(p)));
    assert.equal(joined.length, 3, 'stages 2–4: the downsample conv and the block conv share one group');
    assert.ok(joined.every((g) => g.producers.some((p) => /conv2/.test(p))));
    assert.ok(r.paramsAfter <= 0.6 * r.paramsBefore, `${r.paramsAfter} / ${r.paramsBefore}`);
  });

  it('MobileNetV2: inverted residuals, depthwise convolutions', async () => {
    const r = await checkPrune(load('mobilenet_v2'));
    assert.ok(r.pruned.graph.nodes.some((n) => n.opType === 'Conv' && n.attrInt('group', 1) > 1));
    assert.ok(r.paramsAfter <= 0.6 * r.paramsBefore);
  });

  it('MobileNetV3: squeeze-excitation Mul, HardSwish, HardSigmoid', async () => {
    const r = await checkPrune(load('mobilenet_v3_small'));
    assert.ok(
      producers(r).some((g) => g.producers.some((p) => /fc2/.test(p))),
      'SE expand coupled with its block',
    );
    assert.ok(r.paramsAfter <= 0.6 * r.paramsBefore);
  });

  it('SqueezeNet: Concat of expand1x1 | expand3x3 maps indices into the next squeeze', async () => {
    const r = await checkPrune(load('squeezenet1_1'));
    assert.ok(
      r.deps.slices.some((s) => s.layout.length === 2 && s.role === 'in'),
      'a consumer reads a concat of two groups',
    );
    assert.ok(r.paramsAfter <= 0.6 * r.paramsBefore);
  });

  it('ShuffleNetV2: channel shuffles, chunked halves, branches beside the shuffled channels', async () => {
    const r = await checkPrune(load('shufflenet'));
    const blocked = r.deps.groups.filter((g) => !g.prunable);
    assert.deepEqual(
      blocked.map((g) => g.reasons.join()),
      ['reaches the graph output "logits"'],
      'only the classifier stays whole',
    );
    assert.ok(
      producers(r).some(
        (g) =>
          g.producers.some((p) => /stage2\.1\/branch2/.test(p)) &&
          g.producers.some((p) => /stage2\.0\/branch1/.test(p)),
      ),
      "a stride-1 unit's branch is pruned with the stage's shuffled channels",
    );
    assert.ok(r.paramsAfter <= 0.6 * r.paramsBefore, `${r.paramsAfter} / ${r.paramsBefore}`);
  });

  it('RegNetX: grouped 3×3 convolutions keep the same channels in every conv group', async () => {
    const r = await checkPrune(load('regnet'));
    const periodic = producers(r).filter((g) => g.period < g.size);
    assert.ok(periodic.length >= 8, `${periodic.length} periodic groups`);
    assert.ok(periodic.every((g) => g.period === 8));
    assert.equal(r.deps.groups.filter((g) => !g.prunable).length, 1);
    assert.ok(r.paramsAfter <= 0.6 * r.paramsBefore, `${r.paramsAfter} / ${r.paramsBefore}`);
  });

  it('TransformerEncoderLayer: FFN neurons, and half the heads', async () => {
    const m = load('encoder');
    const r = await checkPrune(m, { expectGroups: 2 });
    assert.ok(
      r.deps.groups.filter((g) => g.prunable).every((g) => g.producers.some((p) => /linear1/.test(p))),
    );
    await checkHeads(m, 2, 4);
  });

  it('nn.MultiheadAttention (sequence-first): half the heads', async () => {
    await checkHeads(load('mha'), 1, 4);
  });
});
