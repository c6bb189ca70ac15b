// What `alignlab train` does between a resolved config and a trainer call: load the model (a
// directory, or a fresh random one), its tokenizer and chat template; load a dataset in TRL's format
// and turn its rows into token ids the way TRL does; load and save reward models as HF directories.
//
// Tokenization follows TRL:
//   - a prompt is encoded with the tokenizer's special tokens (BOS) unless it was rendered by a chat
//     template (the template writes its own special tokens; HF's apply_chat_template does not add more);
//   - a completion (SFT completion, chosen, rejected) is encoded without special tokens and gets EOS
//     appended when it does not already end with it, so the model learns to stop;
//   - prompt and completion are encoded separately and concatenated, so the completion starts at a
//     token boundary and completion-only masks are exact;
//   - rows that carry token ids (TRL's `prompt_input_ids`, `chosen_input_ids`, `rejected_input_ids`) are not
//     tokenized again: their ids are used as they are (still cut to the configured lengths).

import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ModelConfig } from '../formats/config.js';
import { configFromHF } from '../formats/config.js';
import { initHostParams } from '../model/params.js';
import type { HostParams } from '../engine/tree.js';
import { loadHFDir, saveHFDir } from '../formats/hf.js';
import { Tokenizer, type TokenizerConfig } from '../formats/tokenizer.js';
import { toHost } from '../model/weights.js';
import type { Params } from '../model/decoder.js';
import type { Pooling, ScalarModel } from '../model/heads.js';
import { RewardModel, saveRewardModel } from '../rewards/model.js';
import { DataError } from '../formats/errors.js';
import {
  checkIds, loadDataset, preferenceText, promptText, sftText, trainEvalSplit,
  type ChatTemplate, type Dataset, type PreferenceExample, type PromptExample, type SftExample,
} from '../data/trl.js';
import type { PairExample, TokenizedExample } from '../data/batching.js';
import type { TrainConfig } from './config.js';

// ---- model and tokenizer ----------------------------------------------------------------------

export interface TrainModel {
  cfg: ModelConfig;
  params: HostParams;
  tokenizer: Tokenizer;
  generationConfig?: Record<string, unknown>;
  /** Where it came from, for messages: a directory, or "model.init in FILE". */
  source: string;
}

/** A tokenizer from a tokenizer.json file (tokenizer_config.json beside it is read when present) or a directory. */
export async function loadTokenizer(path: string): Promise<Tokenizer> {
  if (!existsSync(path)) throw new Error(`${path}: tokenizer does not exist`);
  if (statSync(path).isDirectory()) return Tokenizer.fromDir(path);
  const read = (f: string) => {
    try {
      return JSON.parse(readFileSync(f, 'utf-8'));
    } catch (e) {
      throw new Error(`${f}: is not valid JSON (${(e as Error).message})`);
    }
  };
  const cfgFile = join(dirname(path), 'tokenizer_config.json');
  return Tokenizer.fromJSON(read(path), existsSync(cfgFile) ? (read(cfgFile) as TokenizerConfig) : {}, path);
}

/** The model a config names: `model.dir` (an HF directory) or `model.init` (random weights seeded by `seed`). */
export async function loadTrainModel(c: TrainConfig): Promise<TrainModel> {
  if ('dir' in c.model) {
    const m = await loadHFDir(c.model.dir);
    const tok = m.tokenizer!;
    if (tok.vocabSize > m.config.vocabSize)
      throw new Error(`${c.model.dir}: tokenizer has ${tok.vocabSize} tokens but config.json vocab_size is ${m.config.vocabSize}`);
    return { cfg: m.config, params: m.params, tokenizer: tok, generationConfig: m.generationConfig, source: c.model.dir };
  }
  const cfg = configFromHF(c.model.init, `${c.source}: model.init`);
  const tok = await loadTokenizer(c.model.tokenizer);
  if (tok.vocabSize > cfg.vocabSize)
    throw new Error(`${c.source}: field "model.init.vocab_size" is ${cfg.vocabSize}, smaller than the tokenizer's ${tok.vocabSize} tokens (${c.model.tokenizer})`);
  return { cfg, params: initHostParams(cfg, c.seed), tokenizer: tok, source: `model.init in ${c.source}` };
}

/** The chat template for conversational rows: data.chat_template (a Jinja file) wins over the tokenizer's; null = the default. */
export function chatTemplateFor(c: TrainConfig, tok: Tokenizer): ChatTemplate | null {
  const special = (k: 'bos_token' | 'eos_token') => {
    const v = tok.config[k];
    return typeof v === 'string' ? v : v && typeof v === 'object' ? v.content : undefined;
  };
  let template = tok.chatTemplate;
  if (c.data.chat_template) {
    if (!existsSync(c.data.chat_template)) throw new Error(`${c.source}: field "data.chat_template": ${c.data.chat_template} does not exist`);
    template = readFileSync(c.data.chat_template, 'utf-8');
  }
  return template ? { template, bosToken: special('bos_token'), eosToken: special('eos_token') } : null;
}

/** The id that fills padding (never attended to, never scored): pad, else EOS, else 0. */
export function padIdOf(cfg: ModelConfig, tok: Tokenizer): number {
  return tok.padId ?? cfg.padTokenId ?? tok.eosId ?? cfg.eosTokenId ?? 0;
}

/** Save a trained policy as an HF directory; `chatTemplate` is written into tokenizer_config.json when given. */
export async function savePolicy(dir: string, m: { cfg: ModelConfig; params: Params; tokenizer: Tokenizer; generationConfig?: Record<string, unknown>; chatTemplate?: string | null }): Promise<void> {
  const tokenizerConfig = m.chatTemplate ? { ...m.tokenizer.config, chat_template: m.chatTemplate } : m.tokenizer.config;
  await saveHFDir(dir, { config: m.cfg, params: await toHost(m.params), tokenizerJson: m.tokenizer.json, tokenizerConfig, generationConfig: m.generationConfig });
}

// ---- reward models on disk --------------------------------------------------------------------

/** HF's class name for a sequence classifier of this architecture (what transformers' AutoModel reads). */
export function sequenceClassifierName(cfg: ModelConfig): string {
  const base = { gpt2: 'GPT2', llama: 'Llama', mistral: 'Mistral', qwen2: 'Qwen2', mixtral: 'Mixtral' }[cfg.arch];
  return `${base}ForSequenceClassification`;
}

/**
 * Save a reward model as an HF directory: the trunk's tensors and the head (`score.weight` [1, C],
 * `score.bias` [1]) in model.safetensors (rewards/model.ts's layout, which RewardModel.load reads), and
 * config.json naming `<Arch>ForSequenceClassification` with `num_labels: 1`, as transformers writes
 * for a reward model.
 */
export async function saveRewardModelDir(dir: string, rm: { cfg: ModelConfig; model: ScalarModel; tokenizer?: Tokenizer; pooling?: Pooling }): Promise<void> {
  await saveRewardModel(dir, rm);
  const file = join(dir, 'config.json');
  const j = JSON.parse(readFileSync(file, 'utf-8')) as Record<string, unknown>;
  j.architectures = [sequenceClassifierName(rm.cfg)];
  j.num_labels = 1;
  j.id2label = { 0: 'LABEL_0' };
  j.label2id = { LABEL_0: 0 };
  writeFileSync(file, JSON.stringify(j, null, 2) + '\n');
}

/** A reward model directory (trained by `alignlab train rm`): config, trunk + head on the device, tokenizer. */
export async function loadRewardModel(dir: string, o: { device?: string; batchSize?: number } = {}): Promise<RewardModel> {
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`${dir}: not a reward model directory (no config.json)`);
  return RewardModel.load(dir, o);
}

// ---- datasets ---------------------------------------------------------------------------------

/** The train and eval sets of a config: data.eval, else `eval_fraction` of data.train split off with `seed`. */
export async function loadSplit<E>(c: TrainConfig, family: 'sft' | 'preference' | 'prompt'): Promise<{ train: Dataset<E>; eval: Dataset<E> | null }> {
  const textField = c.algorithm === 'sft' ? c.sft.dataset_text_field : 'text';
  const format = family === 'prompt' ? 'prompt' : c.data.format;
  const load = async (file: string) => {
    const ds = (await loadDataset(file, { format, textField, family })) as Dataset<E>;
    return ds;
  };
  const train = await load(c.data.train);
  if (c.data.eval) {
    const ev = await load(c.data.eval);
    if (ev.conversational !== train.conversational)
      throw new DataError(c.data.eval, null, null, `is ${ev.conversational ? 'conversational' : 'standard'} but ${c.data.train} is not`);
    return { train, eval: ev };
  }
  if (c.data.eval_fraction === 0 || train.rows.length < 2) return { train, eval: null };
  const s = trainEvalSplit(train.rows, { seed: c.seed, evalFraction: c.data.eval_fraction });
  return { train: { ...train, rows: s.train }, eval: { ...train, rows: s.eval } };
}

export interface Encoder {
  tokenizer: Tokenizer;
  template: ChatTemplate | null;
  eosId: number | null;
  /** Ids given by a row must be below this: the model's vocabulary (it may be padded past the tokenizer's). */
  vocabSize?: number;
}

const withEos = (ids: number[], eos: number | null) => (eos === null || ids[ids.length - 1] === eos ? ids : [...ids, eos]);

/** Prompt ids: BOS (post-processor) for plain text, none for template-rendered text. */
function encodePrompt(enc: Encoder, text: string, conversational: boolean): number[] {
  return text === '' ? [] : enc.tokenizer.encode(text, { addSpecial: !conversational });
}

/**
 * SFT rows as token ids, cut at `maxLength`. completionStart marks the first completion token: with
 * `completionOnly`, only those tokens are scored (TRL completion_only_loss / assistant_only_loss).
 */
export function tokenizeSft(ds: Dataset<SftExample>, enc: Encoder, o: { maxLength: number }): TokenizedExample[] {
  return ds.rows.map((ex) => {
    const { prompt, completion } = sftText(ex, enc.template, ds.file);
    const p = encodePrompt(enc, prompt, ds.conversational);
    const comp = withEos(enc.tokenizer.encode(completion, { addSpecial: prompt === '' && !ds.conversational }), enc.eosId);
    const ids = [...p, ...comp].slice(0, o.maxLength);
    if (ids.length < 2) throw new DataError(ds.file, ex.line, null, `has ${ids.length} token(s) after tokenization; a training row needs at least 2`);
    return { ids, completionStart: p.length };
  });
}

/** Whether SFT scores only completion tokens: TRL's completion_only_loss (prompt/completion rows) or assistant_only_loss (messages). */
export function completionOnlyFor(c: TrainConfig<'sft'>, ds: Dataset<SftExample>): boolean {
  if (ds.format === 'messages') return c.sft.assistant_only_loss;
  if (ds.format === 'prompt_completion') return c.sft.completion_only_loss ?? true;
  return false; // text rows have no prompt
}

/**
 * Preference rows as prompt/chosen/rejected ids. The prompt keeps its last `maxPromptLength` tokens
 * (TRL keep_end); then both completions are cut so prompt + completion ≤ maxLength. Cutting here, not
 * in the batcher, keeps the precomputed reference log-probs and the trained ones over the same tokens.
 */
export function tokenizePairs(ds: Dataset<PreferenceExample>, enc: Encoder, o: { maxLength: number; maxPromptLength: number }): PairExample[] {
  return ds.rows.map((ex) => {
    if (ex.ids) return cutPair(ex.ids, enc.vocabSize ?? enc.tokenizer.vocabSize, ds.file, ex.line, o);
    const t = preferenceText(ex, enc.template, ds.file);
    let prompt = encodePrompt(enc, t.prompt, ds.conversational);
    if (prompt.length > o.maxPromptLength) prompt = prompt.slice(prompt.length - o.maxPromptLength);
    if (prompt.length === 0) {
      const start = enc.tokenizer.bosId ?? enc.eosId;
      if (start === null) throw new DataError(ds.file, ex.line, 'prompt', 'is empty and the tokenizer has no BOS/EOS token to stand for it');
      prompt = [start]; // the first completion token needs something to be predicted from
    }
    const room = o.maxLength - prompt.length;
    if (room < 1) throw new DataError(ds.file, ex.line, 'prompt', `leaves no room for a completion within max_length ${o.maxLength} (prompt has ${prompt.length} tokens; lower max_prompt_length)`);
    const side = (text: string, field: 'chosen' | 'rejected') => {
      const ids = withEos(enc.tokenizer.encode(text, { addSpecial: false }), enc.eosId).slice(0, room);
      if (ids.length === 0) throw new DataError(ds.file, ex.line, field, 'is empty after tokenization');
      return ids;
    };
    return { prompt, chosen: side(t.chosen, 'chosen'), rejected: side(t.rejected, 'rejected') };
  });
}

/** A tokenized pair cut as `tokenizePairs` cuts one it tokenized (prompt keeps its end, completions their start). */
function cutPair(ids: { prompt: number[]; chosen: number[]; rejected: number[] }, vocab: number, file: string, line: number, o: { maxLength: number; maxPromptLength: number }): PairExample {
  for (const k of ['prompt', 'chosen', 'rejected'] as const) {
    const bad = ids[k].findIndex((t) => t >= vocab);
    if (bad >= 0) throw new DataError(file, line, `${k}_input_ids[${bad}]`, `is ${ids[k][bad]}, outside the model's vocabulary (0…${vocab - 1})`);
  }
  const prompt = ids.prompt.length > o.maxPromptLength ? ids.prompt.slice(ids.prompt.length - o.maxPromptLength) : ids.prompt;
  const room = o.maxLength - prompt.length;
  if (room < 1) throw new DataError(file, line, 'prompt_input_ids', `leaves no room for a completion within max_length ${o.maxLength} (prompt has ${prompt.length} tokens; lower max_prompt_length)`);
  return { prompt, chosen: ids.chosen.slice(0, room), rejected: ids.rejected.slice(0, room) };
}

/** Prompts of a prompt-only (or richer) dataset as token ids, keeping the last `maxPromptLength` tokens. */
export function tokenizePrompts(ds: Dataset<PromptExample>, enc: Encoder, o: { maxPromptLength: number }): number[][] {
  return ds.rows.map((ex) => {
    const given = ex.extra.prompt_input_ids;
    let ids = given !== undefined ? checkIds(given, ds.file, ex.line, 'prompt_input_ids') : encodePrompt(enc, promptText(ex.prompt, enc.template), ds.conversational);
    if (ids.length > o.maxPromptLength) ids = ids.slice(ids.length - o.maxPromptLength);
    if (ids.length === 0) {
      const start = enc.tokenizer.bosId ?? enc.eosId;
      if (start === null) throw new DataError(ds.file, ex.line, 'prompt', 'is empty after tokenization and the tokenizer has no BOS/EOS token');
      ids = [start];
    }
    return ids;
  });
}

/** A static sequence length: the longest row rounded up to a multiple of 8, at most `cap`. */
export function staticLength(lengths: number[], cap: number): number {
  const longest = Math.max(2, ...lengths);
  return Math.min(cap, Math.ceil(longest / 8) * 8);
}
