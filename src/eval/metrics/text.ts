// Surface statistics of generated text: length, compression, distinct-n (Li et al., 2016) and the
// repetition rate seq-rep-n (Welleck et al., 2020). They need no reference, so they work on open generation.

/** Lower-cased words and single punctuation marks; Unicode letters and digits count as word characters. */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+(?:'[\p{L}]+)?|[^\s\p{L}\p{N}]/gu) ?? [];
}

/** Word count without punctuation: the unit of summary length. */
export function wordCount(text: string): number {
  return (text.match(/[\p{L}\p{N}]+/gu) ?? []).length;
}

export function ngrams(tokens: string[], n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + n <= tokens.length; i++) out.push(tokens.slice(i, i + n).join('\u0001'));
  return out;
}

/** distinct-n of one text: unique n-grams / n-grams (1 when the text is shorter than n: nothing repeats). */
export function distinctN(text: string, n: number): number {
  const g = ngrams(words(text), n);
  return g.length === 0 ? 1 : new Set(g).size / g.length;
}

/** Corpus-level distinct-n (as Li et al. report it): unique n-grams over all texts / all n-grams. */
export function corpusDistinctN(texts: string[], n: number): number {
  const all = texts.flatMap((t) => ngrams(words(t), n));
  return all.length === 0 ? 1 : new Set(all).size / all.length;
}

/**
 * seq-rep-n: the share of n-grams that repeat an n-gram seen earlier in the same text,
 * 1 - |unique n-grams| / |n-grams|. Welleck et al. use n = 4 to measure degenerate looping.
 */
export function repetitionRate(text: string, n = 4): number {
  return 1 - distinctN(text, n);
}

/** Summary length over source length, in words (lower = more compressed). */
export function compressionRatio(summary: string, source: string): number {
  const s = wordCount(source);
  return s === 0 ? 0 : wordCount(summary) / s;
}
