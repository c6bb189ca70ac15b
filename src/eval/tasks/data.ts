// Task data from local files: JSONL, JSON, CSV and Parquet. Every row remembers where it came from
// (`file:line N`, or `file: row N` for Parquet), so a bad value is reported at its place.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { DataError } from '../../formats/errors.js';

export { DataError };

export interface Row {
  values: Record<string, unknown>;
  file: string;
  /** 1-based line where the row starts; null for Parquet (rows, not lines). */
  line: number | null;
  /** 1-based row number in the file. */
  index: number;
  /** "data/qa.jsonl:12" or "data/qa.parquet: row 12" — shown in messages about this row. */
  where: string;
}

/** A DataError about one row (and optionally one of its fields), at the row's line. */
export function rowError(row: Pick<Row, 'file' | 'line' | 'index'>, field: string | null, why: string): DataError {
  return new DataError(row.file, row.line, field, row.line === null ? `${why} (row ${row.index})` : why);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function loadJsonl(file: string, text = readFileSync(file, 'utf8')): Row[] {
  const rows: Row[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${file}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new DataError(file, i + 1, null, `invalid JSON (${(e as Error).message})`);
    }
    if (!isRecord(v)) throw new DataError(file, i + 1, null, `expected a JSON object per line, got ${Array.isArray(v) ? 'an array' : typeof v}`);
    rows.push({ values: v, file, line: i + 1, index: rows.length + 1, where });
  });
  return rows;
}

/** Line (1-based) where each element of the top-level array starts: a scan that skips strings. */
function arrayElementLines(text: string): number[] {
  const lines: number[] = [];
  let depth = 0, line = 1, inStr = false, esc = false, expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') line++;
    if (inStr) {
      if (esc) esc = false;
      else if (c === '\\') esc = true;
      else if (c === '"') inStr = false;
      continue;
    }
    if (expectElement && !/\s/.test(c) && c !== ']') {
      lines.push(line);
      expectElement = false;
    }
    if (c === '"') inStr = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1 && c === '[') expectElement = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectElement = true;
  }
  return lines;
}

export function loadJson(file: string, text = readFileSync(file, 'utf8')): Row[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new DataError(file, null, null, `invalid JSON (${(e as Error).message})`);
  }
  // Accept a bare array, or {"data": [...]} / {"rows": [...]} as some exports write.
  const arr = Array.isArray(v) ? v : isRecord(v) && Array.isArray(v.data) ? v.data : isRecord(v) && Array.isArray(v.rows) ? v.rows : undefined;
  if (!arr) throw new DataError(file, null, null, 'expected a JSON array of objects (or {"data": [...]})');
  const lines = Array.isArray(v) ? arrayElementLines(text) : [];
  return arr.map((x, i) => {
    const line = lines[i] ?? null;
    const row = { file, line, index: i + 1, where: line !== null ? `${file}:${line}` : `${file}: row ${i + 1}` };
    if (!isRecord(x)) throw rowError(row, null, `expected an object, got ${Array.isArray(x) ? 'an array' : typeof x}`);
    return { values: x, ...row };
  });
}

export function loadCsv(file: string, text = readFileSync(file, 'utf8')): Row[] {
  let records: { record: Record<string, string>; info: { lines: number }; raw: string }[];
  try {
    records = parseCsv(text, { columns: true, info: true, raw: true, bom: true, skip_empty_lines: true }) as typeof records;
  } catch (e) {
    const err = e as Error & { lines?: number };
    throw new DataError(file, err.lines ?? null, null, `invalid CSV (${err.message})`);
  }
  // info.lines is where a record ends; a quoted cell may span lines, so count back over the record's own newlines.
  return records.map((r, i) => {
    const body = r.raw.replace(/^(\r?\n)+/, '').replace(/\r?\n$/, '');
    const line = r.info.lines - (body.match(/\n/g)?.length ?? 0);
    return { values: r.record, file, line, index: i + 1, where: `${file}:${line}` };
  });
}

function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Date) return v.toISOString();
  if (isRecord(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

export async function loadParquet(file: string): Promise<Row[]> {
  const { asyncBufferFromFile, parquetReadObjects } = await import('hyparquet');
  let objs: Record<string, unknown>[];
  try {
    objs = await parquetReadObjects({ file: await asyncBufferFromFile(file) });
  } catch (e) {
    throw new DataError(file, null, null, `cannot read Parquet (${(e as Error).message})`);
  }
  return objs.map((o, i) => ({ values: plain(o) as Record<string, unknown>, file, line: null, index: i + 1, where: `${file}: row ${i + 1}` }));
}

/** Loads rows by file extension: .jsonl/.ndjson, .json, .csv, .parquet. */
export async function loadRows(file: string): Promise<Row[]> {
  const ext = extname(file).toLowerCase();
  if (!['.jsonl', '.ndjson', '.json', '.csv', '.parquet'].includes(ext)) throw new DataError(file, null, null, `unknown data format "${ext}" (use .jsonl, .json, .csv or .parquet)`);
  let text: string | undefined;
  if (ext !== '.parquet') {
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new DataError(file, null, null, `cannot read data file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  switch (ext) {
    case '.jsonl': case '.ndjson': return loadJsonl(file, text);
    case '.json': return loadJson(file, text);
    case '.csv': return loadCsv(file, text);
    default: return loadParquet(file);
  }
}
