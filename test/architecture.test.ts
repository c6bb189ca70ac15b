// Keeps docs/architecture.md true: every import in src/ goes down the folder order written there (or stays in its
// folder). Imports are read with TypeScript's own pre-parser (static, `import type`, `export … from`, dynamic
// `import()`), so comments and strings do not count and multi-line imports do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const ROOT = resolve(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

/** The order, lowest first; folders on one level may not import each other. The same line is in docs/architecture.md. */
const LEVELS: readonly (readonly string[])[] = [['engine'], ['formats'], ['model'], ['data'], ['rewards'], ['store', 'stats'], ['train'], ['eval'], ['study'], ['report'], ['server'], ['cli']];
const ORDER_LINE = LEVELS.map((l) => l.join(', ')).join(' → ');
/** Bottom utilities: whatever their level, they import only the engine. */
const ONLY_ENGINE = new Set(['store', 'stats']);
/** Files that import nothing at all (no jax-js, no Node), so that every folder and a web page can read them. */
const DEPENDENCY_FREE = ['src/engine/tree.ts'];

const level = new Map(LEVELS.flatMap((l, i) => l.map((f) => [f, i] as const)));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : /\.(ts|mts|js|mjs)$/.test(f) ? [p] : [];
  });
}

/** Every module specifier a file imports or re-exports, with its line. */
function importsOf(file: string): { spec: string; line: number }[] {
  const text = readFileSync(file, 'utf-8');
  const info = ts.preProcessFile(text, true, true);
  return info.importedFiles.map((r) => ({ spec: r.fileName, line: text.slice(0, r.pos).split('\n').length }));
}

const folderOf = (abs: string): string | null => {
  const rel = relative(SRC, abs);
  return rel.startsWith('..') ? null : rel.split(sep)[0]!;
};

/** Why an import from folder `from` of folder `to` breaks the order, or null when it is allowed. */
function breach(from: string, to: string): string | null {
  if (from === to) return null;
  if (ONLY_ENGINE.has(from)) return to === 'engine' ? null : `${from}/ imports only engine/`;
  const a = level.get(from)!, b = level.get(to)!;
  if (b < a) return null;
  return b === a ? `${from}/ and ${to}/ are on one level` : `${to}/ is above ${from}/`;
}

/** Every breach of the order in src/, as `file:line imports 'spec' (why)`. */
function breaches(): string[] {
  const out: string[] = [];
  for (const file of sources(SRC)) {
    const from = folderOf(file)!;
    if (!level.has(from)) continue; // a file directly in src/ or an unknown folder: the next test names it
    for (const { spec, line } of importsOf(file)) {
      if (!spec.startsWith('.')) continue; // packages and node: builtins
      const to = folderOf(resolve(dirname(file), spec));
      if (to === null || !level.has(to)) continue;
      const why = breach(from, to);
      if (why) out.push(`${relative(ROOT, file)}:${line} imports '${spec}' (${why})`);
    }
  }
  return out;
}

test('every folder in src/ has a place in the order', () => {
  const folders = readdirSync(SRC).filter((f) => statSync(join(SRC, f)).isDirectory());
  assert.deepEqual(folders.filter((f) => !level.has(f)), [], `add new folders to LEVELS here and to docs/architecture.md`);
  assert.deepEqual(readdirSync(SRC).filter((f) => !statSync(join(SRC, f)).isDirectory()), [], 'files directly in src/ belong to a folder');
});

test('no folder in src/ imports one above it or beside it in the order of docs/architecture.md', () => {
  assert.deepEqual(breaches(), []);
});

test('the checker itself: upward, same-level and store/stats imports are breaches, downward ones are not', () => {
  assert.equal(breach('formats', 'model'), 'model/ is above formats/');
  assert.equal(breach('study', 'report'), 'report/ is above study/');
  assert.equal(breach('store', 'stats'), 'store/ imports only engine/');
  assert.equal(breach('stats', 'formats'), 'stats/ imports only engine/');
  assert.equal(breach('train', 'store'), null);
  assert.equal(breach('report', 'eval'), null);
  assert.equal(breach('cli', 'engine'), null);
  assert.equal(breach('stats', 'engine'), null);
});

test('engine/tree.ts imports nothing', () => {
  for (const f of DEPENDENCY_FREE) assert.deepEqual(importsOf(join(ROOT, f)).map((i) => i.spec), [], f);
});

test('docs/architecture.md states the same order as this test', () => {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf-8');
  assert.ok(doc.includes(ORDER_LINE), `docs/architecture.md should contain the line: ${ORDER_LINE}`);
  for (const f of level.keys()) assert.match(doc, new RegExp(`^\\| \`${f}/\``, 'm'), `docs/architecture.md: no table row for ${f}/`);
});

test('every shared interface in docs/architecture.md is exported by the file it names', () => {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf-8');
  const section = doc.split('## Shared interfaces')[1]!.split('\n## ')[0]!;
  const rows = section.split('\n').filter((l) => /^\| `/.test(l)).map((l) => l.split('|').map((c) => c.trim()));
  assert.ok(rows.length >= 5, 'the shared-interfaces table was not found');
  for (const [, names, file] of rows) {
    const path = /^`([^`]+\.ts)`$/.exec(file!)?.[1];
    assert.ok(path, `docs/architecture.md: "${file}" should be one file in backticks`);
    const text = readFileSync(join(SRC, path), 'utf-8');
    for (const [, name] of names!.matchAll(/`([A-Za-z]+)`/g))
      assert.match(text, new RegExp(`^export (declare )?(abstract )?(interface|class|type|function|const|async function) ${name}\\b`, 'm'), `src/${path} does not export ${name}`);
  }
});
