import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../errors.js';
import { parseCommand, type Command } from './command.js';
import { DATA_FLAGS, dataOptions } from './dataflags.js';

const cmd: Command = {
  name: 'x',
  summary: '',
  usage: '',
  positionals: [],
  options: { data: { type: 'string', description: '' }, ...DATA_FLAGS },
  run: async () => ({ json: {}, text: '' }),
};

test('data flags parse into openData options; bad values are InputErrors naming the flag', () => {
  const p = parseCommand(cmd, [
    '--resize',
    '256',
    '--crop',
    '224x200',
    '--mean',
    '0.485,0.456,0.406',
    '--std',
    '0.2',
    '--scale',
    '1',
    '--bgr',
    '--layout',
    'nhwc',
    '--labels',
    'y.npy',
    '--label-column',
    'species',
  ]);
  assert.deepEqual(dataOptions(p), {
    preprocess: {
      resize: 256,
      crop: [224, 200],
      mean: [0.485, 0.456, 0.406],
      std: [0.2],
      scale: 1,
      bgr: true,
      layout: 'nhwc',
    },
    labels: 'y.npy',
    labelColumn: 'species',
  });
  assert.deepEqual(dataOptions(parseCommand(cmd, [])), { preprocess: {} });
  for (const [flag, v] of [
    ['--resize', '0'],
    ['--resize', '12.5'],
    ['--crop', '224'.concat('y')],
    ['--mean', '1,,2'],
    ['--std', 'abc'],
    ['--scale', '0'],
    ['--layout', 'chw'],
  ] as const)
    assert.throws(
      () => dataOptions(parseCommand(cmd, [flag, v])),
      (e: unknown) => e instanceof InputError && e.message.includes(flag),
      `${flag} ${v}`,
    );
});
