import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { REPO_ROOT } from '../testing/fixtures.js';
import { configJsonSchema, parseConfig, stageOf } from './config.js';

const BASE = `version: 1
name: fashion-cnn
source:
  model: baseline.onnx
data:
  train: fashion-mnist
  evaluation: fashion-mnist
slices:
  shirt: {class: 6}
device:
  name: retail-box
  ramMB: 2048
stages:
  - optimize:
  - prune: {ratio: 0.5, importance: l1}
  - quantize:
      mode: static
      calibrator: minmax
gates:
  maxDropPoints: 1
  slices:
    shirt: {maxRecallDropPoints: 2}
`;

function errorOf(text: string): InputError {
  try {
    parseConfig(text, 'edgefit.yaml');
  } catch (e) {
    assert.ok(e instanceof InputError, String(e));
    return e;
  }
  assert.fail('expected the config to be refused');
}

describe('pipeline config', () => {
  test('a valid config parses with its stages in order and their options', () => {
    const c = parseConfig(BASE);
    assert.deepEqual(
      c.stages.map((s) => stageOf(s).name),
      ['optimize', 'prune', 'quantize'],
    );
    assert.deepEqual(stageOf(c.stages[0]!).options, {});
    assert.deepEqual(stageOf(c.stages[1]!).options, { ratio: 0.5, importance: 'l1' });
    assert.equal(c.slices!.shirt!.class, 6);
    assert.equal(c.gates!.slices!.shirt!.maxRecallDropPoints, 2);
    const kd = parseConfig(
      BASE.replace(
        '{ratio: 0.5, importance: l1}',
        '{heads: 0.5, finetuneSteps: 20, optimizer: adamw, warmup: 5, distill: {temperature: 4, alpha: 0.5}}',
      ),
    );
    assert.deepEqual(stageOf(kd.stages[1]!).options, {
      heads: 0.5,
      finetuneSteps: 20,
      optimizer: 'adamw',
      warmup: 5,
      distill: { temperature: 4, alpha: 0.5 },
    });
    assert.match(
      errorOf(BASE.replace('{ratio: 0.5, importance: l1}', '{distill: {alpha: 2}}')).message,
      /prune\.distill\.alpha/,
    );
  });

  test('errors name the YAML path, what was expected, what was found and the line', () => {
    const cases: [string, RegExp][] = [
      [
        BASE.replace('calibrator: minmax', 'calibrator: kl'),
        /^stages\[2\]\.quantize\.calibrator: expected one of minmax\|percentile\|entropy\|mse, got "kl" \(edgefit\.yaml:18\)$/,
      ],
      [
        BASE.replace('ratio: 0.5', 'ratio: 2'),
        /^stages\[1\]\.prune\.ratio: expected at most 0\.95, got 2 \(edgefit\.yaml:15\)$/,
      ],
      [
        BASE.replace('  - optimize:\n', '  - optimise: {}\n'),
        /^stages\[0\]: expected one stage \(optimize\|prune\|distill\|finetune\|quantize\) with its options, got keys optimise \(edgefit\.yaml:14\)$/,
      ],
      [BASE.replace('version: 1', 'version: 2'), /^version: expected 1, got 2 \(edgefit\.yaml:1\)$/],
      [
        BASE.replace('  maxDropPoints: 1', '  maxDropPoints: 1\n  maxDrop: 3'),
        /^gates\.maxDrop: unknown key "maxDrop" \(edgefit\.yaml:21\)$/,
      ],
      [BASE.replace('name: fashion-cnn\n', ''), /^name: missing \(expected string\)/],
      [
        BASE.replace('shirt: {class: 6}', 'shirt: {class: -1}'),
        /^slices\.shirt\.class: expected at least 0, got -1 \(edgefit\.yaml:9\)$/,
      ],
      [
        BASE.replace('ramMB: 2048', 'ramMB: lots'),
        /^device\.ramMB: expected number, got "lots" \(edgefit\.yaml:12\)$/,
      ],
      ['stages: [', /^edgefit\.yaml:\d+: not valid YAML/],
    ];
    for (const [text, re] of cases) {
      const e = errorOf(text);
      assert.match(e.message, re);
      assert.equal(e.exitCode, 2);
    }
  });

  test('several problems are all listed', () => {
    const e = errorOf(BASE.replace('calibrator: minmax', 'calibrator: kl').replace('ratio: 0.5', 'ratio: 2'));
    assert.equal(e.message.split('\n').length, 2, e.message);
  });

  test('schema/edgefit.schema.json is the JSON Schema of the config (regenerate with `npm run schema`)', () => {
    const committed = JSON.parse(readFileSync(join(REPO_ROOT, 'schema', 'edgefit.schema.json'), 'utf8'));
    assert.deepEqual(committed, configJsonSchema());
    // It describes the stages and the calibrators the parser accepts.
    const text = JSON.stringify(committed);
    for (const w of ['optimize', 'prune', 'distill', 'quantize', 'entropy', 'maxDropVsDeployedPoints'])
      assert.ok(text.includes(w), w);
  });
});
