// Turns a task file into evaluation samples: load and check rows, pick seeded few-shot examples,
// render the prompt (and each paraphrase) as chat messages or a completion prompt.
import { dirname, resolve } from 'node:path';
import type { ChatMessage } from '../providers/types.js';
import { Rng as SeededRng } from '../../engine/rng.js';
import { hashSeed } from '../../stats/index.js';
import { ConfigError } from '../../formats/errors.js';
import { DataError, loadRows, rowError, type Row } from './data.js';
import { resolveTask, TaskFileSchema, type TaskFile, type TaskSpec } from './schema.js';
import { compileTemplate, type CompiledTemplate } from './template.js';
import { readYamlConfigWithLines } from './yaml.js';

export interface Sample {
  task: string;
  /** Unique within the task: `<row id>` for the main prompt, `<row id>~p<k>` for paraphrase k. */
  id: string;
  rowId: string;
  /** 0 = `prompt`, k = `paraphrases[k-1]`. */
  template: number;
  /** Completion mode (and multiple choice): the whole prompt, few-shot examples included. */
  prompt?: string;
  /** Chat mode: the messages. */
  messages?: ChatMessage[];
  /** The rendered question alone (no few-shot), shown to judges. */
  question: string;
  references: string[];
  /** multiple_choice: the choice texts and the gold index. */
  choices?: string[];
  gold?: number;
  /** summarization: the source text. */
  source?: string;
  /** Where the row came from, for messages. */
  where: string;
}

export interface Task {
  spec: TaskSpec;
  file: string;
  dataFile: string;
  /** Number of data rows evaluated (samples = rows × (1 + paraphrases)). */
  rows: number;
  samples: Sample[];
}

function fieldError(row: Row, field: string, msg: string): never {
  throw rowError(row, field, msg);
}

/** A string, a list of strings, or (from CSV) a JSON-encoded list of strings. */
export function stringList(row: Row, field: string): string[] {
  let v = row.values[field];
  if (v === undefined || v === null) fieldError(row, field, 'is missing');
  if (typeof v === 'string' && v.trim().startsWith('[')) {
    try {
      v = JSON.parse(v);
    } catch {
      /* a plain string that happens to start with "[" */
    }
  }
  if (typeof v === 'string') return [v];
  if (typeof v === 'number') return [String(v)];
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || typeof x === 'number')) return v.map(String);
  return fieldError(row, field, `must be a string or a non-empty list of strings, got ${JSON.stringify(v)?.slice(0, 60)}`);
}

function goldIndex(row: Row, field: string, choices: string[]): number {
  const v = row.values[field];
  if (v === undefined || v === null) fieldError(row, field, 'is missing');
  let idx: number | undefined;
  if (typeof v === 'number') idx = v;
  else if (typeof v === 'string') {
    const s = v.trim();
    if (/^\d+$/.test(s)) idx = Number(s);
    else if (choices.includes(v)) idx = choices.indexOf(v);
    else if (/^[A-Z]$/.test(s)) idx = s.charCodeAt(0) - 65;
  }
  if (idx === undefined || !Number.isInteger(idx) || idx < 0 || idx >= choices.length)
    fieldError(row, field, `must be a choice index 0..${choices.length - 1}, a letter, or one of the choices, got ${JSON.stringify(v)}`);
  return idx!;
}

function checkFields(row: Row, t: CompiledTemplate, what: string) {
  for (const v of t.variables) if (!(v in row.values)) fieldError(row, v, `is missing (the ${what} template uses it)`);
}

interface Prepared {
  row: Row;
  id: string;
  references: string[];
  choices?: string[];
  gold?: number;
}

const REFERENCE_METRICS = ['exact_match', 'f1', 'squad_v2_f1', 'rouge1', 'rouge2', 'rougeL'];

/** Checks one row for what it will be used as: an evaluation sample, a few-shot example, or both. */
function prepare(spec: TaskSpec, row: Row, index: number, templates: CompiledTemplate[], target: CompiledTemplate | undefined, use: { sample: boolean; example: boolean }): Prepared {
  templates.forEach((t, k) => checkFields(row, t, k === 0 ? 'prompt' : `paraphrases[${k - 1}]`));
  if (target && use.example) checkFields(row, target, 'target');
  const idRaw = spec.id_field ? row.values[spec.id_field] : index;
  if (idRaw === undefined || idRaw === null || idRaw === '') fieldError(row, spec.id_field!, 'is missing (id_field)');
  const p: Prepared = { row, id: String(idRaw), references: [] };
  const refsNeeded =
    (use.sample && spec.metrics.some((m) => REFERENCE_METRICS.includes(m))) || (use.example && !target && spec.type !== 'multiple_choice');
  if (spec.references && (refsNeeded || spec.references in row.values)) p.references = stringList(row, spec.references);
  if (spec.type === 'multiple_choice') {
    const choices = stringList(row, spec.choices);
    if (choices.length < 2) fieldError(row, spec.choices, 'has fewer than 2 choices (a multiple-choice row needs at least 2)');
    p.choices = choices;
    p.gold = goldIndex(row, spec.gold, choices);
  }
  if (use.sample && spec.metrics.includes('compression_ratio') && typeof row.values[spec.source] !== 'string')
    fieldError(row, spec.source, 'is missing or not a string (compression_ratio needs the source text; set `source:` to its field)');
  return p;
}

function targetText(spec: TaskSpec, p: Prepared, target: CompiledTemplate | undefined): string {
  if (target) return target.render(p.row.values);
  if (spec.type === 'multiple_choice') return p.choices![p.gold!]!;
  if (p.references.length > 0) return p.references[0]!;
  throw rowError(p.row, null, 'few-shot needs an answer for each example: add `target:` or `references:` to the task');
}

/** Draws n examples for one row, seeded by (seed, row id), never the row itself. */
function pickFewshot(pool: Prepared[], n: number, seed: number, self: Prepared): Prepared[] {
  if (n === 0) return [];
  const candidates = pool.filter((p) => p.row !== self.row);
  if (candidates.length < n) throw rowError(self.row, null, `few-shot wants ${n} examples but only ${candidates.length} are available`);
  return new SeededRng(hashSeed(seed, self.id)).shuffle([...candidates]).slice(0, n);
}

function bySplit(rows: Row[], field: string, split: string | undefined): Row[] {
  return split === undefined ? rows : rows.filter((r) => String(r.values[field]) === split);
}

/**
 * The task's fields that name data columns must name columns the data has: checked on the first row, so a
 * misspelt `references: answer` is reported against the task file (at the field's line), not as a missing
 * value in row 1 of the data. A column missing from a later row only is a data error at that row.
 */
function checkColumns(spec: TaskSpec, written: TaskFile, file: string, lineOf: (path: string[]) => number | undefined, first: Row, needsRefs: boolean) {
  const cols: [keyof TaskSpec, string | undefined][] = [
    ['id_field', spec.id_field],
    ['references', needsRefs ? spec.references : undefined],
    ['choices', spec.type === 'multiple_choice' ? spec.choices : undefined],
    ['gold', spec.type === 'multiple_choice' ? spec.gold : undefined],
    ['source', spec.metrics.includes('compression_ratio') ? spec.source : undefined],
  ];
  for (const [key, col] of cols) {
    if (col === undefined || col in first.values) continue;
    // Written in the task file: report its line; else the type's default was used: say so.
    const given = written[key as keyof TaskFile] !== undefined ? lineOf([key]) : undefined;
    const known = Object.keys(first.values).join(', ');
    throw new ConfigError(file, given ?? null, key, `${given === undefined ? `(default "${col}") ` : ''}names "${col}", which is not a field of ${first.where} (its fields: ${known})`);
  }
}

export async function loadTask(file: string): Promise<Task> {
  const cfg = readYamlConfigWithLines(file, TaskFileSchema);
  const spec = resolveTask(cfg.value, file, cfg.lineOf);
  const base = dirname(resolve(file));
  const dataFile = resolve(base, spec.data);
  const allRows = await loadRows(dataFile);
  const rows = bySplit(allRows, spec.split_field, spec.split);
  if (rows.length === 0) throw new DataError(dataFile, null, null, `no rows${spec.split ? ` with ${spec.split_field} = "${spec.split}"` : ''}`);
  checkColumns(spec, cfg.value, file, cfg.lineOf, rows[0]!, spec.metrics.some((m) => REFERENCE_METRICS.includes(m)));
  const templates = [spec.prompt, ...spec.paraphrases].map((s, k) => compileTemplate(s, `${file}: ${k === 0 ? 'prompt' : `paraphrases[${k - 1}]`}`));
  const target = spec.target ? compileTemplate(spec.target, `${file}: target`) : undefined;
  const system = spec.system ? compileTemplate(spec.system, `${file}: system`) : undefined;
  const fs = spec.fewshot;
  const separatePool = fs.file !== undefined || fs.split !== undefined;
  const nEval = Math.min(rows.length, spec.limit ?? Infinity);
  // Rows past `limit` are not asked, but may still serve as few-shot examples (as in lm-eval).
  const all = rows.map((r, i) => prepare(spec, r, i, templates, target, { sample: i < nEval, example: fs.n > 0 && !separatePool }));
  const prepared = all.slice(0, nEval);
  let pool: Prepared[] = all;
  if (fs.n > 0 && separatePool) {
    const fsRows = bySplit(fs.file ? await loadRows(resolve(base, fs.file)) : allRows, spec.split_field, fs.split);
    pool = fsRows.map((r, i) => prepare(spec, r, i, templates, target, { sample: false, example: true }));
  }
  const seen = new Set<string>();
  for (const p of prepared) {
    if (seen.has(p.id)) throw rowError(p.row, spec.id_field ?? null, `repeats the id "${p.id}"`);
    seen.add(p.id);
  }

  const samples: Sample[] = [];
  for (const p of prepared) {
    const shots = pickFewshot(pool, spec.fewshot.n, spec.fewshot.seed, p);
    const sys = system?.render(p.row.values);
    templates.forEach((tpl, k) => {
      const question = tpl.render(p.row.values);
      const s: Sample = {
        task: spec.name,
        id: k === 0 ? p.id : `${p.id}~p${k}`,
        rowId: p.id,
        template: k,
        question,
        references: p.references,
        where: p.row.where,
      };
      if (p.choices) {
        s.choices = p.choices;
        s.gold = p.gold;
      }
      if (spec.type === 'summarization' && typeof p.row.values[spec.source] === 'string') s.source = p.row.values[spec.source] as string;
      if (spec.mode === 'chat') {
        const messages: ChatMessage[] = sys ? [{ role: 'system', content: sys }] : [];
        for (const ex of shots) {
          messages.push({ role: 'user', content: tpl.render(ex.row.values) });
          messages.push({ role: 'assistant', content: targetText(spec, ex, target) });
        }
        messages.push({ role: 'user', content: question });
        s.messages = messages;
      } else {
        const parts = shots.map((ex) => tpl.render(ex.row.values) + spec.target_delimiter + targetText(spec, ex, target));
        parts.push(question);
        s.prompt = (sys ? sys + spec.fewshot.delimiter : '') + parts.join(spec.fewshot.delimiter);
      }
      samples.push(s);
    });
  }
  return { spec, file: resolve(file), dataFile, rows: prepared.length, samples };
}

/** The prompt as one string: the completion prompt, or chat messages joined (for perplexity and logs). */
export function promptText(s: Sample): string {
  return s.prompt ?? s.messages!.map((m) => m.content).join('\n\n');
}
