// Tokenizers: a thin wrapper over @huggingface/tokenizers reading a local tokenizer.json (no network),
// plus builders for the two tokenizers our tiny models use. Both builders produce STANDARD tokenizer.json
// objects (the schema the Rust `tokenizers` library serialises), so transformers and tokenizers.js load them.

import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';

export type TokenizerJson = Record<string, unknown>;

/** The keys of tokenizer_config.json we read and write; other keys pass through untouched. */
export interface TokenizerConfig {
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  unk_token?: string | { content: string } | null;
  model_max_length?: number;
  chat_template?: string | { name: string; template: string }[];
  clean_up_tokenization_spaces?: boolean;
  tokenizer_class?: string;
  [key: string]: unknown;
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
}

const tokenName = (t: TokenizerConfig[keyof TokenizerConfig]): string | undefined =>
  typeof t === 'string' ? t : t && typeof t === 'object' && 'content' in t && typeof t.content === 'string' ? t.content : undefined;

export class Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly unkId: number | null;
  readonly chatTemplate: string | undefined;
  /** The tokenizer.json model type: "BPE", "WordLevel", "Unigram", "WordPiece". */
  readonly modelType: string;
  private readonly hf: HFTokenizer;
  private readonly specialIds: Set<number>;

  private constructor(
    readonly json: TokenizerJson,
    readonly config: TokenizerConfig,
    readonly source: string,
  ) {
    const model = json.model as Record<string, unknown> | undefined;
    if (!model || typeof model !== 'object') throw new Error(`${source}: field "model" is missing`);
    this.modelType = typeof model.type === 'string' ? model.type : 'unknown';
    if (!Array.isArray(json.added_tokens)) json.added_tokens = [];
    // tokenizers.js reads the WordLevel unknown token from tokenizer_config, the Rust library from the model:
    // pass it along so both map out-of-vocabulary words to <unk>.
    const hfConfig: TokenizerConfig = { ...config };
    if (this.modelType === 'WordLevel' && hfConfig.unk_token === undefined && typeof model.unk_token === 'string') hfConfig.unk_token = model.unk_token;
    try {
      this.hf = new HFTokenizer(json, hfConfig);
    } catch (e) {
      throw new Error(`${source}: cannot be loaded as a tokenizer (${(e as Error).message})`);
    }
    const vocab = this.hf.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const added = json.added_tokens as AddedTokenJson[];
    this.specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    const idOfName = (k: keyof TokenizerConfig) => {
      const n = tokenName(hfConfig[k]);
      if (n === undefined) return null;
      const id = this.hf.token_to_id(n);
      if (id === undefined) throw new Error(`${source}: tokenizer_config field "${String(k)}" names "${n}", which is not in the vocabulary`);
      return id;
    };
    this.bosId = idOfName('bos_token');
    this.eosId = idOfName('eos_token');
    this.padId = idOfName('pad_token');
    this.unkId = idOfName('unk_token');
    const ct = config.chat_template;
    this.chatTemplate = typeof ct === 'string' ? ct : Array.isArray(ct) ? (ct.find((t) => t.name === 'default') ?? ct[0])?.template : undefined;
  }

  /** Build from in-memory tokenizer.json and tokenizer_config.json objects. */
  static fromJSON(json: TokenizerJson, config: TokenizerConfig = {}, source = 'tokenizer.json'): Tokenizer {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${source}: must be a JSON object`);
    return new Tokenizer(structuredClone(json), { ...config }, source);
  }

  /** Load tokenizer.json (required) and tokenizer_config.json (optional) from a model directory. */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const file = join(dir, 'tokenizer.json');
    if (!existsSync(file)) throw new Error(`${file}: missing (the model directory ${dir} has no tokenizer.json)`);
    const json = await readJson(file);
    const cfgFile = join(dir, 'tokenizer_config.json');
    const config = existsSync(cfgFile) ? ((await readJson(cfgFile)) as TokenizerConfig) : {};
    return new Tokenizer(json, config, file);
  }

  /** Token ids of a text. `addSpecial` runs the post-processor (e.g. a BOS template), as HF does by default. */
  encode(text: string, { addSpecial = true }: { addSpecial?: boolean } = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: addSpecial }).ids;
  }

  /**
   * Text of token ids. An id past the tokenizer's vocabulary decodes to nothing, as in HF tokenizers: a model's
   * embedding is often padded beyond the tokenizer (the study's to a multiple of 8; Qwen2's 151,936 rows for 151,665
   * tokens), and a sampler may pick such a row. Negative or fractional ids are errors.
   */
  decode(ids: number[], { skipSpecial = false }: { skipSpecial?: boolean } = {}): string {
    if (ids.length === 0) return '';
    for (const id of ids) if (!Number.isInteger(id) || id < 0) throw new Error(`${this.source}: token id ${id} is not a token id`);
    const known = ids.filter((id) => id < this.vocabSize);
    return known.length ? this.hf.decode(known, { skip_special_tokens: skipSpecial }) : '';
  }

  /** The id of a token string (as spelled in the vocabulary, e.g. "Ġthe" for byte-level BPE). */
  idOf(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  tokenOf(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The tokens spelled by id, 0..vocabSize-1 (undefined where an id is unused). */
  tokens(): (string | undefined)[] {
    return Array.from({ length: this.vocabSize }, (_, i) => this.hf.id_to_token(i));
  }
}

async function readJson(file: string): Promise<TokenizerJson> {
  const text = await readFile(file, 'utf-8');
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: is not valid JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error(`${file}: must be a JSON object`);
  return j as TokenizerJson;
}

// ---------------------------------------------------------------------------------------------
// Builders

/**
 * GPT-2's reversible byte -> printable-unicode map: printable Latin-1 bytes map to themselves, the other
 * 68 bytes to U+0100.. in order. Byte-level BPE vocabularies spell every token with these symbols.
 */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const out = new Array<string>(256);
  for (const b of bs) out[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (out[b] === undefined) out[b] = String.fromCharCode(256 + n++);
  return out;
}

const addedToken = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/**
 * A byte-level tokenizer: token id b (0..255) is byte b, spelled with GPT-2's byte-to-unicode symbols; the
 * specials follow at 256... A BPE model with no merges, so every byte of the UTF-8 text is one token. llama.cpp
 * loads it as a `gpt2` BPE vocabulary.
 */
export function byteLevelTokenizerJson(specials: string[] = ['<|endoftext|>']): TokenizerJson {
  const symbols = bytesToUnicode();
  const vocab: Record<string, number> = {};
  symbols.forEach((s, b) => (vocab[s] = b));
  specials.forEach((s, i) => {
    if (s in vocab) throw new Error(`byteLevelTokenizerJson: special token "${s}" collides with a byte symbol`);
    vocab[s] = 256 + i;
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s, i) => addedToken(256 + i, s)),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/**
 * A word-level tokenizer: the specials (the first is the unknown token) take ids 0.., then the words.
 * Text is lower-cased, split on whitespace, and every punctuation character becomes its own token (BERT's
 * pre-tokenizer), so "Don't stop." -> ["don", "'", "t", "stop", "."].
 *
 * There is no decoder: HF joins tokens with single spaces, then (clean_up_tokenization_spaces, which
 * saveTokenizerFiles turns on for WordLevel) removes the space before . , ! ? and around ' in contractions:
 * ["don", "'", "t", "stop", "."] decodes to "don't stop." Other punctuation keeps its spaces ("( a )", "a - b").
 * GGUF export writes it as a llama.cpp WordPiece vocabulary that tokenizes identically (formats/gguf.ts).
 */
export function wordLevelTokenizerJson(words: string[], specials: string[] = ['<unk>', '<bos>', '<eos>', '<pad>']): TokenizerJson {
  if (specials.length === 0) throw new Error('wordLevelTokenizerJson: needs at least one special token (the unknown token)');
  const vocab: Record<string, number> = {};
  specials.forEach((s, i) => (vocab[s] = i));
  let next = specials.length;
  for (const raw of words) {
    const w = raw.toLowerCase();
    if (w.length === 0 || /\s/.test(w)) throw new Error(`wordLevelTokenizerJson: word ${JSON.stringify(raw)} is empty or contains whitespace`);
    if (!(w in vocab)) vocab[w] = next++;
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s, i) => addedToken(i, s)),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: specials[0] },
  };
}

let splitter: Tokenizer | null = null;
/**
 * The words a word-level tokenizer sees in a text (lower-cased, punctuation split off), through the same
 * normalizer and pre-tokenizer as wordLevelTokenizerJson: use it to count words when building a vocabulary.
 */
export function splitWords(text: string): string[] {
  splitter ??= Tokenizer.fromJSON(wordLevelTokenizerJson([]), {}, 'splitWords');
  // tokenizers.js's WordLevel model returns the pre-tokenized words unchanged before mapping them to ids.
  return (splitter as unknown as { hf: HFTokenizer }).hf.tokenize(text);
}

/** Write tokenizer.json and tokenizer_config.json (the keys given, plus what transformers needs to pick the fast tokenizer). */
export async function saveTokenizerFiles(dir: string, tokenizerJson: TokenizerJson, tokenizerConfig: TokenizerConfig = {}): Promise<void> {
  // Validate before writing anything: a tokenizer we cannot load must not be saved.
  Tokenizer.fromJSON(tokenizerJson, tokenizerConfig, join(dir, 'tokenizer.json'));
  await mkdir(dir, { recursive: true });
  const model = tokenizerJson.model as { type?: string; unk_token?: string };
  const cfg: TokenizerConfig = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    // Word-level text reads better with HF's clean-up ("word ." -> "word."); byte-level text must not be altered.
    clean_up_tokenization_spaces: model.type === 'WordLevel',
    ...(model.type === 'WordLevel' && model.unk_token ? { unk_token: model.unk_token } : {}),
    ...tokenizerConfig,
  };
  for (const k of Object.keys(cfg)) if (cfg[k] === undefined) delete cfg[k];
  await writeJsonAtomic(join(dir, 'tokenizer.json'), tokenizerJson);
  await writeJsonAtomic(join(dir, 'tokenizer_config.json'), cfg);
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
  await rename(tmp, file);
}
