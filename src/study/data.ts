// The study's data: the SOTU corpus as word-level token ids, its tokenizer.json, and the prompts.
// The tokenizer comes from the project's one WordLevel builder (`wordLevelTokenizerJson`: Lowercase +
// BertPreTokenizer), and the corpus pipeline splits words with that same tokenizer (src/data/sotu.ts
// tokenizeWords), so ids from `tokenizer.json` and from the corpus agree and every study model exports to GGUF.

import { BOS, EOS, PAD, SPECIAL_TOKENS, UNK, detokenize, hashUnit, loadSotu, sentenceTokens, vocabIndex, type SotuCorpus, type SotuSplit } from '../data/sotu.js';
import { wordLevelTokenizerJson, type TokenizerConfig, type TokenizerJson } from '../formats/tokenizer.js';
import type { StudyConfig } from './config.js';

export interface StudyData {
  corpus: SotuCorpus;
  vocab: string[];
  tokenizerJson: TokenizerJson;
  tokenizerConfig: TokenizerConfig;
  /** Training sentences as [BOS, …words, EOS] (validation speeches excluded). */
  trainSentences: number[][];
  /** Sentences of the validation speeches: a share of the training split (by a hash of the speech id) that no
   *  model trains on; it tunes the n-gram's discounts and watches pretraining. */
  validSentences: number[][];
  /** Sentences of the held-out speeches (those the evaluation prompts come from). */
  heldOutSentences: number[][];
  /** Prompts as [BOS, …prefix] and their text. */
  trainPrompts: { ids: number[]; text: string }[];
  heldOutPrompts: { ids: number[]; text: string }[];
  /** Token ids → text for the gold reward (punctuation attached as in ordinary prose). */
  detok: (ids: number[]) => string;
}

/** Share of training speeches kept aside as the validation split (≈ 6% of training sentences). */
export const VALID_FRACTION = 0.06;

export function prepareStudyData(cfg: StudyConfig, cacheDir: string): StudyData {
  const corpus = loadSotu(cacheDir, {
    vocabSize: cfg.corpus.vocabSize,
    maxTrainPrompts: cfg.corpus.trainPrompts,
    maxHeldOutPrompts: cfg.corpus.heldOutPrompts,
    maxPrefix: 5,
  });
  const vocab = corpus.vocab;
  const index = vocabIndex(vocab);
  const enc = (toks: readonly string[]) => toks.map((t) => index.get(t) ?? UNK);
  const bySpeech = (split: SotuSplit, keep: (speechId: string) => boolean) => {
    const toks = sentenceTokens(split);
    return split.speechIds.flatMap((id, i) => (keep(id) ? toks.slice(split.sentenceStart[i], split.sentenceStart[i + 1] ?? toks.length) : []))
      .filter((s) => s.length > 0).map((s) => [BOS, ...enc(s), EOS]);
  };
  const isValid = (id: string) => hashUnit(`valid:${id}`) < VALID_FRACTION;
  const prompt = (p: { prefix: string[]; text: string }) => ({ ids: [BOS, ...enc(p.prefix)], text: p.text });
  const special = new Set<number>([PAD, BOS, EOS]);
  return {
    corpus,
    vocab,
    tokenizerJson: wordLevelTokenizerJson(vocab.slice(SPECIAL_TOKENS.length), [...SPECIAL_TOKENS]),
    tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>', model_max_length: cfg.model.context },
    trainSentences: bySpeech(corpus.train, (id) => !isValid(id)),
    validSentences: bySpeech(corpus.train, isValid),
    heldOutSentences: bySpeech(corpus.heldOut, () => true),
    trainPrompts: corpus.prompts.train.map(prompt),
    heldOutPrompts: corpus.prompts.heldOut.map(prompt),
    detok: (ids) => detokenize(ids.filter((i) => !special.has(i)).map((i) => vocab[i] ?? '<unk>')),
  };
}
