// JSON Lines (https://jsonlines.org): one JSON value per line, UTF-8. Read as a stream so a large
// dataset never has to fit in memory as one string; every error names the file and the 1-based line,
// and the field when a caller validates one.

import { createReadStream, appendFileSync, writeFileSync, renameSync, readFileSync, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { DataError } from './errors.js';

// The project's one DataError (errors.ts), re-exported for callers that import it from here.
export { DataError };

export interface JsonlRow<T = unknown> {
  /** 1-based line number in the file. */
  line: number;
  value: T;
}

/** Stream the rows of a JSONL file. Blank lines are skipped; a line that is not JSON throws a DataError. */
export async function* readJsonl(path: string): AsyncGenerator<JsonlRow> {
  if (!existsSync(path)) throw new DataError(path, null, null, 'does not exist');
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf-8' }), crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const raw of rl) {
      line++;
      const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw; // a BOM is not part of the JSON
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        throw new DataError(path, line, null, `is not valid JSON (${(e as Error).message})`);
      }
      yield { line, value };
    }
  } finally {
    rl.close();
  }
}

/** Read every row (for datasets that fit in memory, which is all of ours). */
export async function readJsonlAll(path: string): Promise<JsonlRow[]> {
  const out: JsonlRow[] = [];
  for await (const r of readJsonl(path)) out.push(r);
  return out;
}

/** Read JSONL synchronously (small files: metrics logs). */
export function readJsonlSync(path: string): JsonlRow[] {
  const lines = readFileSync(path, 'utf-8').replace(/^\uFEFF/, '').split('\n');
  const out: JsonlRow[] = [];
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    try {
      out.push({ line: i + 1, value: JSON.parse(text) });
    } catch (e) {
      throw new DataError(path, i + 1, null, `is not valid JSON (${(e as Error).message})`);
    }
  });
  return out;
}

/** JSON.stringify that writes non-finite numbers as null (JSON has no NaN) and never breaks a line. */
export function toJsonLine(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x));
}

export function appendJsonl(path: string, rows: unknown[]): void {
  if (rows.length === 0) return;
  appendFileSync(path, rows.map(toJsonLine).join('\n') + '\n');
}

/** Replace a JSONL file atomically (temp file + rename). */
export function writeJsonl(path: string, rows: unknown[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, rows.length ? rows.map(toJsonLine).join('\n') + '\n' : '');
  renameSync(tmp, path);
}
