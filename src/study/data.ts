// The study's data: the SOTU corpus as word-level token ids, its tokenizer.json, and the prompts.
// The tokenizer is a standard HF WordLevel tokenizer whose pre-tokenizer is the corpus tokenizer's own
// regex (src/data/sotu.ts WORD_PATTERN), so tokens from `tokenizer.json` and from the corpus pipeline agree.

import { BOS, EOS, PAD, SPECIAL_TOKENS, WORD_PATTERN, detokenize, loadSotu, sentenceTokens, vocabIndex, type SotuCorpus } from '../data/sotu.js';
import type { TokenizerConfig, TokenizerJson } from '../formats/tokenizer.js';
import type { StudyConfig } from './config.js';

export interface StudyData {
  corpus: SotuCorpus;
  vocab: string[];
  tokenizerJson: TokenizerJson;
  tokenizerConfig: TokenizerConfig;
  /** Training sentences as [BOS, …words, EOS]. */
  trainSentences: number[][];
  /** Prompts as [BOS, …prefix] and their text. */
  trainPrompts: { ids: number[]; text: string }[];
  heldOutPrompts: { ids: number[]; text: string }[];
  /** Token ids → text for the gold reward (punctuation attached as in ordinary prose). */
  detok: (ids: number[]) => string;
}

export function wordTokenizerJson(vocab: string[]): TokenizerJson {
  const ids: Record<string, number> = {};
  vocab.forEach((w, i) => (ids[w] = i));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((s, i) => ({ id: i, content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { String: '’' }, content: "'" }, { type: 'Lowercase' }] },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Split', pattern: { Regex: WORD_PATTERN }, behavior: 'Isolated', invert: false }],
    },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab: ids, unk_token: SPECIAL_TOKENS[1] },
  };
}

export function prepareStudyData(cfg: StudyConfig, cacheDir: string): StudyData {
  const corpus = loadSotu(cacheDir, {
    vocabSize: cfg.corpus.vocabSize,
    maxTrainPrompts: cfg.corpus.trainPrompts,
    maxHeldOutPrompts: cfg.corpus.heldOutPrompts,
    maxPrefix: 5,
  });
  const vocab = corpus.vocab;
  const index = vocabIndex(vocab);
  const enc = (toks: readonly string[]) => toks.map((t) => index.get(t) ?? 1);
  const trainSentences = sentenceTokens(corpus.train).filter((s) => s.length > 0).map((s) => [BOS, ...enc(s), EOS]);
  const prompt = (p: { prefix: string[]; text: string }) => ({ ids: [BOS, ...enc(p.prefix)], text: p.text });
  const special = new Set<number>([PAD, BOS, EOS]);
  return {
    corpus,
    vocab,
    tokenizerJson: wordTokenizerJson(vocab),
    tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>', model_max_length: cfg.model.context },
    trainSentences,
    trainPrompts: corpus.prompts.train.map(prompt),
    heldOutPrompts: corpus.prompts.heldOut.map(prompt),
    detok: (ids) => detokenize(ids.filter((i) => !special.has(i)).map((i) => vocab[i] ?? '<unk>')),
  };
}
