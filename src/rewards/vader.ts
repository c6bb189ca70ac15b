// The study's gold reward: the VADER compound sentiment score (Hutto & Gilbert 2014) of a text, in [−1, 1],
// from the `vader-sentiment` package (a JavaScript port of the reference Python implementation).
// The DPO paper used a sentiment classifier as ground truth on IMDb; VADER plays that role here: it is
// deterministic, needs no weights, and its lexicon covers the everyday words a small model emits.

import { createRequire } from 'node:module';

interface PolarityScores {
  neg: number;
  neu: number;
  pos: number;
  compound: number;
}
interface VaderModule {
  SentimentIntensityAnalyzer: { polarity_scores(text: string): PolarityScores };
}

// The package is CommonJS without type declarations.
const vader = createRequire(import.meta.url)('vader-sentiment') as VaderModule;

/** All four VADER scores of a text. */
export function vaderScores(text: string): PolarityScores {
  if (typeof text !== 'string') throw new TypeError(`vader: expected a string, got ${typeof text}`);
  return vader.SentimentIntensityAnalyzer.polarity_scores(text);
}

/** The gold reward of one text: VADER's compound score (0 for text without sentiment words). */
export function vaderCompound(text: string): number {
  return vaderScores(text).compound;
}

/** Gold rewards of many texts, in order. */
export function vaderCompoundBatch(texts: readonly string[]): number[] {
  return texts.map(vaderCompound);
}
