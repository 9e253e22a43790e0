// CSV (or TSV, by extension) as data: numeric feature columns and one label column, held in memory as float32.
//   - The first row is a header when it has a non-numeric feature cell (or a non-numeric label above numeric ones).
//   - The label column: --label-column NAME (needs a header) or INDEX (0-based; negative counts from the end);
//     default the last column; `none` = no labels. Without --label-column, a file with exactly as many columns
//     as the model's row size is unlabeled.
//   - Labels: integers 0..C-1, or names (then classes are the sorted distinct names).
//   - Quoted fields ("a,b", "say ""hi""") are read as RFC 4180 says; empty lines are skipped.
import { DataError, InputError } from '../errors.js';
import { readDataFile } from './read.js';

export interface CsvTable {
  file: string;
  header?: string[];
  /** Rows of cells; `lines[i]` is the 1-based line number of rows[i]. */
  rows: string[][];
  lines: number[];
}

/** Split CSV text into rows of cells. */
export function parseCsvText(text: string, file: string, delimiter = ','): CsvTable {
  const rows: string[][] = [];
  const lines: number[] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  let cellStarted = false;
  const endRow = () => {
    row.push(cell);
    if (!(row.length === 1 && row[0] === '' && !cellStarted)) {
      rows.push(row);
      lines.push(rowLine);
    }
    row = [];
    cell = '';
    cellStarted = false;
  };
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // BOM
  for (; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else quoted = false;
      } else {
        if (ch === '\n') line++;
        cell += ch;
      }
      continue;
    }
    if (ch === '"' && cell === '') {
      quoted = true;
      cellStarted = true;
    } else if (ch === delimiter) {
      row.push(cell);
      cell = '';
      cellStarted = true;
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endRow();
      line++;
      rowLine = line;
    } else cell += ch;
  }
  if (quoted)
    throw new DataError('csv-quote', `${file}:${rowLine}: unterminated quoted field`, {
      file,
      line: rowLine,
    });
  if (cell !== '' || row.length || cellStarted) endRow();
  return { file, rows, lines };
}

function isNumeric(s: string): boolean {
  const t = s.trim();
  return t !== '' && Number.isFinite(Number(t));
}

export interface CsvData {
  file: string;
  n: number;
  /** Feature columns per row. */
  features: number;
  /** n × features float32, row-major. */
  x: Float32Array;
  /** Labels (when there is a label column). */
  y?: BigInt64Array;
  /** Class names when the labels are names. */
  classNames?: string[];
  header?: string[];
  labelColumn?: number;
}

export interface CsvOptions {
  /** NAME, INDEX, or "none". */
  labelColumn?: string;
  /** The model's row size, when known (decides whether a file without --label-column is unlabeled). */
  rowSize?: number;
}

/** Read a CSV file of numeric features and an optional label column. */
export function readCsv(path: string, opts: CsvOptions = {}): CsvData {
  const text = readDataFile(path).toString('utf8');
  const t = parseCsvText(text, path, /\.tsv$/i.test(path) ? '\t' : ',');
  if (!t.rows.length) throw new InputError('empty-data', `${path}: the file has no rows`, { file: path });
  const width = t.rows[0]!.length;
  for (let r = 0; r < t.rows.length; r++)
    if (t.rows[r]!.length !== width)
      throw new DataError(
        'csv-columns',
        `${path}:${t.lines[r]}: ${t.rows[r]!.length} columns, the first row has ${width}`,
        { file: path, line: t.lines[r]! },
      );
  const lc = opts.labelColumn?.trim();
  // the label column, before knowing about the header when given as an index
  let label: number | undefined;
  const named = lc !== undefined && lc !== 'none' && !/^-?\d+$/.test(lc);
  if (lc === 'none') label = undefined;
  else if (lc !== undefined && !named) {
    const k = Number(lc);
    label = k < 0 ? width + k : k;
    if (label < 0 || label >= width)
      throw new InputError('option', `--label-column ${lc}: ${path} has ${width} columns (0..${width - 1})`, {
        file: path,
        value: 'label-column',
      });
  } else if (lc === undefined)
    label = opts.rowSize !== undefined && opts.rowSize === width ? undefined : width - 1;
  const r0 = t.rows[0]!;
  const r1 = t.rows[1];
  let header: string[] | undefined;
  const featureNonNumeric = r0.some((c, j) => j !== (named ? -1 : label) && !isNumeric(c));
  if (
    named ||
    featureNonNumeric ||
    (label !== undefined && !isNumeric(r0[label]!) && r1 !== undefined && isNumeric(r1[label]!))
  )
    header = r0.map((c) => c.trim());
  if (named) {
    label = header!.indexOf(lc!);
    if (label < 0)
      throw new InputError(
        'option',
        `--label-column "${lc}": ${path} has no such column (columns: ${header!.join(', ')})`,
        { file: path, value: 'label-column' },
      );
  }
  const body = header ? t.rows.slice(1) : t.rows;
  const lines = header ? t.lines.slice(1) : t.lines;
  const n = body.length;
  if (!n)
    throw new InputError('empty-data', `${path}: the file has a header but no data rows`, { file: path });
  const features = label === undefined ? width : width - 1;
  if (features < 1) throw new InputError('empty-data', `${path}: no feature columns`, { file: path });
  const x = new Float32Array(n * features);
  const names = header ?? [];
  for (let r = 0; r < n; r++) {
    const row = body[r]!;
    let k = 0;
    for (let j = 0; j < width; j++) {
      if (j === label) continue;
      const s = row[j]!.trim();
      const v = Number(s);
      if (s === '' || !Number.isFinite(v))
        throw new DataError(
          'csv-value',
          `${path}:${lines[r]}: column ${j + 1}${names[j] ? ` (${names[j]})` : ''} is ${s === '' ? 'empty' : `"${s}"`}, not a number`,
          { file: path, line: lines[r]!, column: j + 1 },
        );
      x[r * features + k++] = v;
    }
  }
  const out: CsvData = { file: path, n, features, x };
  if (header) out.header = header;
  if (label === undefined) return out;
  out.labelColumn = label;
  const raw = body.map((row) => row[label!]!.trim());
  const y = new BigInt64Array(n);
  if (raw.every(isNumeric)) {
    for (let r = 0; r < n; r++) {
      const v = Number(raw[r]);
      if (!Number.isInteger(v) || v < 0)
        throw new DataError(
          'csv-label',
          `${path}:${lines[r]}: label "${raw[r]}" is not a class index (a non-negative integer)`,
          { file: path, line: lines[r]! },
        );
      y[r] = BigInt(v);
    }
  } else {
    const empty = raw.findIndex((s) => s === '');
    if (empty >= 0)
      throw new DataError('csv-label', `${path}:${lines[empty]}: empty label`, {
        file: path,
        line: lines[empty]!,
      });
    const classNames = [...new Set(raw)].sort();
    const index = new Map(classNames.map((c, i) => [c, i]));
    for (let r = 0; r < n; r++) y[r] = BigInt(index.get(raw[r]!)!);
    out.classNames = classNames;
  }
  out.y = y;
  return out;
}
