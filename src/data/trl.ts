// Datasets in TRL's formats (https://huggingface.co/docs/trl/dataset_formats), read from JSONL.
//
//   language modeling   {"text": "..."}
//   prompt/completion   {"prompt": "...", "completion": "..."}                 (SFT)
//   conversational      {"messages": [{"role": "user", "content": "..."}, ...]} (SFT)
//   preference          {"prompt": "...", "chosen": "...", "rejected": "..."}  (reward model, DPO)
//   prompt-only         {"prompt": "..."}                                       (PPO, GRPO, RLOO)
//
// Rows may also carry token ids under TRL's names for tokenized datasets (`prompt_input_ids`, and for
// preference rows `chosen_input_ids`, `rejected_input_ids`): the trainers then use those ids as they are
// and the text columns are only for people (they may be empty). This is how a run is reproduced exactly when
// re-tokenizing the text would not give back the ids it was sampled as (the study's word-level model).
//
// Each of prompt/completion/chosen/rejected may instead be a list of messages (the "conversational"
// variant); a row is either all-strings or all-messages. Conversations become text through the
// model's chat template (tokenizer_config.json, rendered with @huggingface/jinja) or, when the
// model has none, DEFAULT_CHAT_TEMPLATE. Every bad row is reported with file, line and field.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Rng } from '../engine/index.js';
import { DataError } from '../formats/errors.js';
import { readJsonl } from '../formats/jsonl.js';

export interface Message {
  role: string;
  content: string;
}

/** A field that is either plain text (standard) or a list of messages (conversational). */
export type Turns = string | Message[];

export type DatasetFormat = 'text' | 'prompt_completion' | 'messages' | 'preference' | 'prompt';
export const DATASET_FORMATS: readonly DatasetFormat[] = ['text', 'prompt_completion', 'messages', 'preference', 'prompt'];

export type SftExample =
  | { kind: 'text'; line: number; text: string }
  | { kind: 'prompt_completion'; line: number; prompt: Turns; completion: Turns }
  | { kind: 'messages'; line: number; messages: Message[] };

export interface PreferenceExample {
  line: number;
  prompt: Turns;
  chosen: Turns;
  rejected: Turns;
  /** Optional per-pair margin column (reward modelling; Llama 2 eq. 2). */
  margin?: number;
  /** Token ids given by the row (`prompt_input_ids`, `chosen_input_ids`, `rejected_input_ids`): used as they are. */
  ids?: { prompt: number[]; chosen: number[]; rejected: number[] };
}

/** TRL's column names for a tokenized preference row. */
export const PREFERENCE_ID_FIELDS = ['prompt_input_ids', 'chosen_input_ids', 'rejected_input_ids'] as const;

/** A column of token ids: a list of non-negative integers (non-empty unless `allowEmpty`). */
export function checkIds(v: unknown, file: string, line: number, field: string, allowEmpty = false): number[] {
  if (!Array.isArray(v)) throw new DataError(file, line, field, `must be a list of token ids, got ${typeName(v)}`);
  if (v.length === 0 && !allowEmpty) throw new DataError(file, line, field, 'must not be an empty list');
  v.forEach((x, i) => {
    if (!Number.isInteger(x) || (x as number) < 0) throw new DataError(file, line, `${field}[${i}]`, `must be a non-negative integer token id, got ${typeName(x)}`);
  });
  return v as number[];
}

export interface PromptExample {
  line: number;
  prompt: Turns;
  /** The row's other columns (reward functions may read them, as TRL passes them as kwargs). */
  extra: Record<string, unknown>;
}

export interface Dataset<E> {
  file: string;
  format: DatasetFormat;
  conversational: boolean;
  rows: E[];
}

// ---- detection and validation ---------------------------------------------------------------

/** The format of one row from its keys (TRL's rules), or null if it matches none. */
export function detectFormat(row: Record<string, unknown>, textField = 'text'): DatasetFormat | null {
  if ('chosen' in row && 'rejected' in row) return 'preference';
  if ('messages' in row) return 'messages';
  if ('prompt' in row && 'completion' in row) return 'prompt_completion';
  if (textField in row) return 'text';
  if ('prompt' in row) return 'prompt';
  return null;
}

const FAMILY: Record<'sft' | 'preference' | 'prompt', DatasetFormat[]> = {
  sft: ['text', 'prompt_completion', 'messages'],
  preference: ['preference'],
  prompt: ['prompt', 'prompt_completion', 'preference'], // online RL only needs the prompts
};

function checkMessages(v: unknown, file: string, line: number, field: string): Message[] {
  if (!Array.isArray(v)) throw new DataError(file, line, field, `must be a list of {role, content} messages, got ${typeName(v)}`);
  if (v.length === 0) throw new DataError(file, line, field, 'must not be an empty list');
  return v.map((m, i) => {
    const f = `${field}[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new DataError(file, line, f, `must be a {role, content} object, got ${typeName(m)}`);
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string' || role === '') throw new DataError(file, line, `${f}.role`, `must be a non-empty string, got ${typeName(role)}`);
    if (typeof content !== 'string') throw new DataError(file, line, `${f}.content`, `must be a string, got ${typeName(content)}`);
    return { role, content };
  });
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : v === undefined ? 'nothing' : typeof v === 'string' ? `a string` : `${typeof v} ${JSON.stringify(v)}`;
}

/** Check that the fields of a row are all strings or all message lists; return which. */
function checkTurns(row: Record<string, unknown>, fields: string[], file: string, line: number, allowEmpty: Set<string>): boolean {
  const conv = Array.isArray(row[fields[0]!]);
  for (const f of fields) {
    const v = row[f];
    if (v === undefined) throw new DataError(file, line, f, 'is missing');
    if (conv) {
      if (!Array.isArray(v)) throw new DataError(file, line, f, `must be a list of messages like "${fields[0]}" (a row is all text or all conversational), got ${typeName(v)}`);
      checkMessages(v, file, line, f);
    } else {
      if (typeof v !== 'string') throw new DataError(file, line, f, `must be a string${Array.isArray(v) ? ` like "${fields[0]}" (a row is all text or all conversational)` : ''}, got ${typeName(v)}`);
      if (v === '' && !allowEmpty.has(f)) throw new DataError(file, line, f, 'must not be empty');
    }
  }
  return conv;
}

/** Validate one row of a known format; returns the typed example and whether it is conversational. */
export function parseRow(
  value: unknown,
  format: DatasetFormat,
  file: string,
  line: number,
  textField = 'text',
): { example: SftExample | PreferenceExample | PromptExample; conversational: boolean } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DataError(file, line, null, `must be a JSON object, got ${typeName(value)}`);
  const row = value as Record<string, unknown>;
  const noEmpty = new Set<string>();
  switch (format) {
    case 'text': {
      const t = row[textField];
      if (typeof t !== 'string') throw new DataError(file, line, textField, `must be a string, got ${typeName(t)}`);
      if (t === '') throw new DataError(file, line, textField, 'must not be empty');
      return { example: { kind: 'text', line, text: t }, conversational: false };
    }
    case 'messages': {
      const messages = checkMessages(row.messages, file, line, 'messages');
      return { example: { kind: 'messages', line, messages }, conversational: true };
    }
    case 'prompt_completion': {
      const conv = checkTurns(row, ['prompt', 'completion'], file, line, new Set(['prompt']));
      return { example: { kind: 'prompt_completion', line, prompt: row.prompt as Turns, completion: row.completion as Turns }, conversational: conv };
    }
    case 'preference': {
      if (row.prompt === undefined)
        throw new DataError(file, line, 'prompt', 'is missing (rows with an implicit prompt inside chosen/rejected are not supported: split it into "prompt")');
      const tokenized = PREFERENCE_ID_FIELDS.some((k) => row[k] !== undefined);
      const conv = checkTurns(row, ['prompt', 'chosen', 'rejected'], file, line, new Set(tokenized ? ['prompt', 'chosen', 'rejected'] : ['prompt']));
      const ex: PreferenceExample = { line, prompt: row.prompt as Turns, chosen: row.chosen as Turns, rejected: row.rejected as Turns };
      if (tokenized) {
        const [p, c, r] = PREFERENCE_ID_FIELDS.map((k) => checkIds(row[k], file, line, k));
        ex.ids = { prompt: p!, chosen: c!, rejected: r! };
      }
      if (row.margin !== undefined) {
        if (typeof row.margin !== 'number' || !Number.isFinite(row.margin)) throw new DataError(file, line, 'margin', `must be a number, got ${typeName(row.margin)}`);
        ex.margin = row.margin;
      }
      return { example: ex, conversational: conv };
    }
    case 'prompt': {
      const conv = checkTurns(row, ['prompt'], file, line, noEmpty);
      const extra = Object.fromEntries(Object.entries(row).filter(([k]) => k !== 'prompt'));
      return { example: { line, prompt: row.prompt as Turns, extra }, conversational: conv };
    }
  }
}

/**
 * Read and validate a JSONL dataset. `format` 'auto' takes the first row's format; every row must
 * then have the same format and the same variant (standard or conversational).
 */
export async function loadDataset(
  file: string,
  o: { format?: DatasetFormat | 'auto'; textField?: string; family?: 'sft' | 'preference' | 'prompt' } = {},
): Promise<Dataset<SftExample | PreferenceExample | PromptExample>> {
  const textField = o.textField ?? 'text';
  let format: DatasetFormat | null = o.format && o.format !== 'auto' ? o.format : null;
  let conversational: boolean | null = null;
  const rows: (SftExample | PreferenceExample | PromptExample)[] = [];
  for await (const { line, value } of readJsonl(file)) {
    if (format === null) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DataError(file, line, null, `must be a JSON object, got ${typeName(value)}`);
      format = detectFormat(value as Record<string, unknown>, textField);
      if (format === null)
        throw new DataError(file, line, null, `matches no TRL dataset format (keys: ${Object.keys(value).join(', ') || 'none'}; expected ${textField} | prompt+completion | messages | prompt+chosen+rejected | prompt)`);
      if (o.family && !FAMILY[o.family].includes(format))
        throw new DataError(file, line, null, `is in the "${format}" format, but this trainer needs ${FAMILY[o.family].join(' or ')} rows`);
    } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const f = detectFormat(value as Record<string, unknown>, textField);
      // A prompt-only trainer may read the prompts of richer rows; otherwise every row matches the first.
      if (f !== format && !(format === 'prompt' && f !== null && FAMILY.prompt.includes(f)))
        throw new DataError(file, line, null, `is in the "${f ?? 'unknown'}" format but the file's rows before it are "${format}"`);
    }
    const { example, conversational: conv } = parseRow(value, format, file, line, textField);
    if (conversational === null) conversational = conv;
    else if (conv !== conversational)
      throw new DataError(file, line, null, `is ${conv ? 'conversational (lists of messages)' : 'standard (plain strings)'} but earlier rows are not`);
    rows.push(example);
  }
  if (format === null || rows.length === 0) throw new DataError(file, null, null, 'has no rows');
  return { file, format, conversational: conversational ?? false, rows };
}

export async function loadSftDataset(file: string, o: { format?: DatasetFormat | 'auto'; textField?: string } = {}): Promise<Dataset<SftExample>> {
  return (await loadDataset(file, { ...o, family: 'sft' })) as Dataset<SftExample>;
}

export async function loadPreferenceDataset(file: string): Promise<Dataset<PreferenceExample>> {
  return (await loadDataset(file, { format: 'auto', family: 'preference' })) as Dataset<PreferenceExample>;
}

/** Prompts for online RL; prompt/completion and preference files give their prompts. */
export async function loadPromptDataset(file: string): Promise<Dataset<PromptExample>> {
  return (await loadDataset(file, { format: 'prompt', family: 'prompt' })) as Dataset<PromptExample>;
}

// ---- chat templates ------------------------------------------------------------------------

/** Used when a model ships no chat template (our word-level models): plain "role: content" lines. */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

export interface ChatTemplate {
  template: string;
  bosToken?: string;
  eosToken?: string;
}

function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content; // AddedToken
  return undefined;
}

/**
 * The chat template of a model directory (or a tokenizer_config.json path), with its BOS/EOS strings;
 * null when it has none. A list of named templates picks "default".
 */
export function loadChatTemplate(dirOrFile: string): ChatTemplate | null {
  const file = existsSync(dirOrFile) && statSync(dirOrFile).isDirectory() ? join(dirOrFile, 'tokenizer_config.json') : dirOrFile;
  if (!existsSync(file)) return null;
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(file, 'utf-8'));
  } catch (e) {
    throw new DataError(file, null, null, `is not valid JSON (${(e as Error).message})`);
  }
  let t = cfg.chat_template;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    t = (named.find((x) => x.name === 'default') ?? named[0])?.template;
  }
  if (t === undefined || t === null) {
    // Newer transformers save the template next to the config.
    const jinja = join(file, '..', 'chat_template.jinja');
    if (existsSync(jinja)) t = readFileSync(jinja, 'utf-8');
    else return null;
  }
  if (typeof t !== 'string') throw new DataError(file, null, 'chat_template', `must be a string or a list of {name, template}, got ${typeName(t)}`);
  return { template: t, bosToken: tokenString(cfg.bos_token), eosToken: tokenString(cfg.eos_token) };
}

const compiled = new Map<string, Template>();

/** Render messages with a Jinja chat template (HF's apply_chat_template, tokenize=False). */
export function renderChat(
  template: string,
  messages: Message[],
  o: { addGenerationPrompt?: boolean; bosToken?: string; eosToken?: string; extra?: Record<string, unknown> } = {},
): string {
  let t = compiled.get(template);
  if (!t) {
    try {
      t = new Template(template);
    } catch (e) {
      throw new Error(`chat template does not parse: ${(e as Error).message}`);
    }
    compiled.set(template, t);
  }
  return t.render({
    messages,
    add_generation_prompt: o.addGenerationPrompt ?? false,
    bos_token: o.bosToken ?? '',
    eos_token: o.eosToken ?? '',
    ...o.extra,
  });
}

function chat(tpl: ChatTemplate | null | undefined, messages: Message[], addGenerationPrompt: boolean): string {
  const t = tpl ?? { template: DEFAULT_CHAT_TEMPLATE };
  return renderChat(t.template, messages, { addGenerationPrompt, bosToken: t.bosToken, eosToken: t.eosToken });
}

/**
 * prompt + continuation as text, with the continuation = render(prompt ⧺ continuation) minus the
 * rendered prompt (how TRL splits conversational rows). Fails if the template does not render the
 * prompt as a prefix of the whole conversation.
 */
function splitConversation(tpl: ChatTemplate | null | undefined, prompt: Message[], continuation: Message[], where: string): { prompt: string; completion: string } {
  const p = chat(tpl, prompt, true);
  const full = chat(tpl, [...prompt, ...continuation], false);
  if (!full.startsWith(p)) throw new Error(`${where}: the chat template does not render the prompt as a prefix of the conversation`);
  return { prompt: p, completion: full.slice(p.length) };
}

/** An SFT example as (prompt, completion) text; `text` rows have an empty prompt. */
export function sftText(ex: SftExample, tpl?: ChatTemplate | null, file = 'dataset'): { prompt: string; completion: string } {
  const where = `${file}:${ex.line}`;
  switch (ex.kind) {
    case 'text':
      return { prompt: '', completion: ex.text };
    case 'prompt_completion':
      if (typeof ex.prompt === 'string') return { prompt: ex.prompt, completion: ex.completion as string };
      return splitConversation(tpl, ex.prompt, ex.completion as Message[], where);
    case 'messages': {
      const last = ex.messages.length - 1;
      // Train on the final assistant turn; earlier turns are context.
      if (ex.messages[last]!.role !== 'assistant' || last === 0) return { prompt: '', completion: chat(tpl, ex.messages, false) };
      return splitConversation(tpl, ex.messages.slice(0, last), ex.messages.slice(last), where);
    }
  }
}

/** A preference example as text: the prompt and the two continuations. */
export function preferenceText(ex: PreferenceExample, tpl?: ChatTemplate | null, file = 'dataset'): { prompt: string; chosen: string; rejected: string } {
  if (typeof ex.prompt === 'string') return { prompt: ex.prompt, chosen: ex.chosen as string, rejected: ex.rejected as string };
  const where = `${file}:${ex.line}`;
  const c = splitConversation(tpl, ex.prompt, ex.chosen as Message[], where);
  const r = splitConversation(tpl, ex.prompt, ex.rejected as Message[], where);
  return { prompt: c.prompt, chosen: c.completion, rejected: r.completion };
}

/** A prompt as the text generation continues from (conversational prompts get the generation prompt). */
export function promptText(prompt: Turns, tpl?: ChatTemplate | null): string {
  return typeof prompt === 'string' ? prompt : chat(tpl, prompt, true);
}

// ---- train/eval split ----------------------------------------------------------------------

/**
 * A seeded, deterministic split: the same rows, fraction and seed always give the same sets. Both
 * sets keep file order. `evalSize` wins over `evalFraction`; a positive fraction holds out at least one row.
 */
export function trainEvalSplit<T>(rows: T[], o: { seed: number; evalFraction?: number; evalSize?: number }): { train: T[]; eval: T[] } {
  const n = rows.length;
  let k = o.evalSize ?? Math.round((o.evalFraction ?? 0) * n);
  if (o.evalSize === undefined && (o.evalFraction ?? 0) > 0) k = Math.max(1, k);
  if (!Number.isInteger(k) || k < 0 || k >= n) throw new Error(`trainEvalSplit: cannot hold out ${k} of ${n} rows (the training set would be empty)`);
  const perm = new Rng(o.seed).shuffle(rows.map((_, i) => i));
  const held = new Set(perm.slice(0, k));
  return { train: rows.filter((_, i) => !held.has(i)), eval: rows.filter((_, i) => held.has(i)) };
}
