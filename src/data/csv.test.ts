import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, InputError } from '../errors.js';
import { parseCsvText, readCsv } from './csv.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-csv-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

test('parseCsvText: quotes, escaped quotes, CRLF, blank lines, BOM', () => {
  const t = parseCsvText('\ufeffa,"b,c","say ""hi"""\r\n\r\n1,2,3\n"multi\nline",5,6\n', 'f.csv');
  assert.deepEqual(t.rows, [
    ['a', 'b,c', 'say "hi"'],
    ['1', '2', '3'],
    ['multi\nline', '5', '6'],
  ]);
  assert.deepEqual(t.lines, [1, 3, 4]);
  assert.throws(() => parseCsvText('a,"b\n', 'f.csv'), DataError);
});

test('header detection, label column by default / name / index / none, string labels', () => {
  const p = file(
    'iris.csv',
    'sl,sw,species\n5.1,3.5,setosa\n7.0,3.2,versicolor\n6.3,3.3,virginica\n4.9,3.0,setosa\n',
  );
  const d = readCsv(p);
  assert.deepEqual(d.header, ['sl', 'sw', 'species']);
  assert.deepEqual([d.n, d.features], [4, 2]);
  assert.deepEqual(Array.from(d.x), [5.1, 3.5, 7.0, 3.2, 6.3, 3.3, 4.9, 3.0].map(Math.fround));
  assert.deepEqual(d.classNames, ['setosa', 'versicolor', 'virginica']);
  assert.deepEqual(Array.from(d.y!, Number), [0, 1, 2, 0]);
  const q = file('num.csv', 'label,a,b\n1,0.5,2\n0,1,0\n');
  const byName = readCsv(q, { labelColumn: 'label' });
  assert.deepEqual(
    [Array.from(byName.y!, Number), Array.from(byName.x)],
    [
      [1, 0],
      [0.5, 2, 1, 0],
    ],
  );
  assert.deepEqual(Array.from(readCsv(q, { labelColumn: '0' }).y!, Number), [1, 0]);
  assert.deepEqual(Array.from(readCsv(q, { labelColumn: '-1' }).y!, Number), [2, 0]);
  const none = readCsv(q, { labelColumn: 'none' });
  assert.equal(none.y, undefined);
  assert.equal(none.features, 3);
  // no header: numbers only; the model row size decides whether there is a label column
  const r = file('raw.csv', '1,2,3\n4,5,6\n');
  assert.equal(readCsv(r).header, undefined);
  assert.equal(readCsv(r).features, 2);
  assert.equal(readCsv(r, { rowSize: 3 }).y, undefined);
  // a non-numeric label above numeric labels is a header
  assert.deepEqual(readCsv(file('h.csv', '1.5,y\n2,1\n3,0\n')).n, 2);
});

test('bad CSV: errors name the file and line', () => {
  const cases: [string, string, RegExp][] = [
    ['ragged.csv', 'a,b\n1,2\n3\n', /ragged\.csv:3: 1 columns/],
    ['nan.csv', 'a,b,y\n1,2,0\n1,,1\n', /nan\.csv:3: column 2 \(b\) is empty/],
    ['text.csv', 'a,b,y\n1,2,0\n1,x2,1\n', /text\.csv:3: column 2 \(b\) is "x2"/],
    ['frac.csv', 'a,y\n1,0\n2,1.5\n', /frac\.csv:3: label "1\.5"/],
    ['neg.csv', 'a,y\n1,0\n2,-1\n', /neg\.csv:3: label "-1"/],
    ['empty.csv', '\n\n', /no rows/],
  ];
  for (const [name, text, re] of cases) {
    const p = file(name, text);
    assert.throws(
      () => readCsv(p),
      (e: unknown) =>
        e instanceof InputError && (e as InputError).subject.file === p && re.test((e as Error).message),
      name,
    );
  }
  const p = file('cols.csv', 'a,b\n1,2\n');
  assert.throws(
    () => readCsv(p, { labelColumn: 'nope' }),
    (e: unknown) => e instanceof InputError && /no such column \(columns: a, b\)/.test((e as Error).message),
  );
  assert.throws(() => readCsv(p, { labelColumn: '5' }), InputError);
});
