// Task data from local files: JSONL, JSON, CSV and Parquet. Every row remembers where it came from
// (`file:line N`, or `file: row N` for Parquet), so a bad value is reported at its place.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';

export interface Row {
  values: Record<string, unknown>;
  /** "data/qa.jsonl:12" — used in every error about this row. */
  where: string;
}

export class DataError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'DataError';
  }
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
      throw new DataError(`${where}: invalid JSON (${(e as Error).message})`);
    }
    if (!isRecord(v)) throw new DataError(`${where}: expected a JSON object per line, got ${Array.isArray(v) ? 'an array' : typeof v}`);
    rows.push({ values: v, where });
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
    throw new DataError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  // Accept a bare array, or {"data": [...]} / {"rows": [...]} as some exports write.
  const arr = Array.isArray(v) ? v : isRecord(v) && Array.isArray(v.data) ? v.data : isRecord(v) && Array.isArray(v.rows) ? v.rows : undefined;
  if (!arr) throw new DataError(`${file}: expected a JSON array of objects (or {"data": [...]})`);
  const lines = Array.isArray(v) ? arrayElementLines(text) : [];
  return arr.map((x, i) => {
    const where = lines[i] !== undefined ? `${file}:${lines[i]}` : `${file}: row ${i + 1}`;
    if (!isRecord(x)) throw new DataError(`${where}: expected an object, got ${Array.isArray(x) ? 'an array' : typeof x}`);
    return { values: x, where };
  });
}

export function loadCsv(file: string, text = readFileSync(file, 'utf8')): Row[] {
  let records: { record: Record<string, string>; info: { lines: number }; raw: string }[];
  try {
    records = parseCsv(text, { columns: true, info: true, raw: true, bom: true, skip_empty_lines: true }) as typeof records;
  } catch (e) {
    const err = e as Error & { lines?: number };
    throw new DataError(`${file}:${err.lines ?? '?'}: invalid CSV (${err.message})`);
  }
  // info.lines is where a record ends; a quoted cell may span lines, so count back over the record's own newlines.
  return records.map((r) => {
    const body = r.raw.replace(/^(\r?\n)+/, '').replace(/\r?\n$/, '');
    return { values: r.record, where: `${file}:${r.info.lines - (body.match(/\n/g)?.length ?? 0)}` };
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
    throw new DataError(`${file}: cannot read Parquet (${(e as Error).message})`);
  }
  return objs.map((o, i) => ({ values: plain(o) as Record<string, unknown>, where: `${file}: row ${i + 1}` }));
}

/** Loads rows by file extension: .jsonl/.ndjson, .json, .csv, .parquet. */
export async function loadRows(file: string): Promise<Row[]> {
  const ext = extname(file).toLowerCase();
  if (!['.jsonl', '.ndjson', '.json', '.csv', '.parquet'].includes(ext)) throw new DataError(`${file}: unknown data format "${ext}" (use .jsonl, .json, .csv or .parquet)`);
  let text: string | undefined;
  if (ext !== '.parquet') {
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new DataError(`${file}: cannot read data file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  switch (ext) {
    case '.jsonl': case '.ndjson': return loadJsonl(file, text);
    case '.json': return loadJson(file, text);
    case '.csv': return loadCsv(file, text);
    default: return loadParquet(file);
  }
}
