import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJsonl, readJsonlAll, readJsonlSync, appendJsonl, writeJsonl, DataError } from '../../src/formats/jsonl.js';

const dir = mkdtempSync(join(tmpdir(), 'alignlab-jsonl-'));

test('streams rows with 1-based line numbers, skipping blank lines, BOM and CRLF', async () => {
  const f = join(dir, 'ok.jsonl');
  writeFileSync(f, '\uFEFF{"a":1}\r\n\r\n  \n{"a":2}\n[3]');
  const rows = await readJsonlAll(f);
  assert.deepEqual(rows, [
    { line: 1, value: { a: 1 } },
    { line: 4, value: { a: 2 } },
    { line: 5, value: [3] },
  ]);
  assert.deepEqual(readJsonlSync(f), rows);
});

test('a broken line is reported with file and line, after the good rows were yielded', async () => {
  const f = join(dir, 'bad.jsonl');
  writeFileSync(f, '{"a":1}\n{"a":2}\n{"a":\n{"a":4}\n');
  const seen: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const r of readJsonl(f)) seen.push(r.line);
    })(),
    (e: unknown) => e instanceof DataError && e.line === 3 && e.file === f && e.message.startsWith(`${f}:3: is not valid JSON`),
  );
  assert.deepEqual(seen, [1, 2]);
  assert.throws(() => readJsonlSync(f), /bad\.jsonl:3: is not valid JSON/);
  await assert.rejects(readJsonlAll(join(dir, 'missing.jsonl')), /missing\.jsonl: does not exist/);
});

test('DataError names the field; writers emit one line per row and null for non-finite numbers', () => {
  assert.equal(new DataError('d.jsonl', 7, 'chosen', 'must be a string').message, 'd.jsonl:7: field "chosen" must be a string');
  const f = join(dir, 'w.jsonl');
  writeJsonl(f, [{ x: 1 }, { y: 'a\nb' }]);
  appendJsonl(f, [{ z: NaN, w: Infinity }]);
  const text = readFileSync(f, 'utf-8');
  assert.equal(text, '{"x":1}\n{"y":"a\\nb"}\n{"z":null,"w":null}\n');
  writeJsonl(f, []);
  assert.equal(readFileSync(f, 'utf-8'), '');
});
