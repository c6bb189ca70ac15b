import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  coherenceScore,
  compressionRatio,
  corpusDistinctN,
  distinctN,
  exactMatch,
  lcsLength,
  maxOverGold,
  multipleChoice,
  normalizeAnswer,
  perplexity,
  perplexityScore,
  repetitionRate,
  rougeL,
  rougeMax,
  rougeN,
  rougeTokenize,
  scoreGeneration,
  tokenF1,
  wordCount,
} from '../../src/eval/metrics/index.js';
import { bootstrapMean } from '../../src/stats/index.js';
import { Rng as SeededRng } from '../../src/engine/rng.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test('SQuAD normalization: lower case, punctuation, articles, whitespace (official order)', () => {
  assert.equal(normalizeAnswer('The  Denver Broncos!'), 'denver broncos');
  assert.equal(normalizeAnswer("An apple's core, a theory"), 'apples core theory');
  // Articles only as whole words; punctuation removed, not replaced ("e.g." → "eg").
  assert.equal(normalizeAnswer('Theatre e.g. Anathema'), 'theatre eg anathema');
});

test('SQuAD exact match and F1 on hand-computed examples', () => {
  assert.equal(exactMatch('the Denver Broncos', 'Denver Broncos'), 1);
  assert.equal(exactMatch('Denver', 'Denver Broncos'), 0);
  close(tokenF1('Broncos won', 'Denver Broncos'), 0.5); // 1 common; P = R = 1/2
  // "denver broncos won super bowl" vs "denver broncos": P = 2/5, R = 1 → F1 = 4/7; vs "broncos": 1/3.
  close(maxOverGold(tokenF1, 'Denver Broncos won the Super Bowl', ['Denver Broncos', 'Broncos']), 4 / 7);
  // Repeated tokens are clipped by the gold count (Counter intersection): P = 1/2, R = 1.
  close(tokenF1('the cat the cat', 'cat'), 2 / 3);
  assert.equal(tokenF1('', 'cat'), 0);
  assert.equal(tokenF1('the', 'a'), 0); // both normalize to empty: v1.1 gives 0 (squad.test.ts has the v2.0 rule)
  assert.equal(maxOverGold(exactMatch, '1976', ['1975', '1976']), 1);
  assert.throws(() => maxOverGold(tokenF1, 'x', []), /no gold answers/);
});

test('ROUGE tokenization follows rouge-score: lowercase, non [a-z0-9] runs are separators', () => {
  assert.deepEqual(rougeTokenize('Hello, WORLD!! It’s 2024.'), ['hello', 'world', 'it', 's', '2024']);
  assert.deepEqual(rougeTokenize('café'), ['caf']); // non-ASCII letters are dropped, as in rouge-score
});

test('ROUGE reproduces Lin (2004), section 3.1: S2 and S3 tie on ROUGE-2, ROUGE-L separates them', () => {
  const s1 = 'police killed the gunman';
  const s2 = 'police kill the gunman';
  const s3 = 'the gunman kill police';
  close(rougeN(s1, s2, 2).fmeasure, 1 / 3);
  close(rougeN(s1, s3, 2).fmeasure, 1 / 3);
  close(rougeL(s1, s2).fmeasure, 3 / 4); // LCS "police the gunman"
  close(rougeL(s1, s3).fmeasure, 2 / 4); // LCS "the gunman"
  close(rougeN(s1, s3, 1).fmeasure, 3 / 4);
});

test('ROUGE matches the rouge-score unit tests (rouge_scorer_test.py)', () => {
  const r1 = rougeN('testing one two', 'testing', 1);
  close(r1.precision, 1);
  close(r1.recall, 1 / 3);
  close(r1.fmeasure, 0.5);
  close(rougeN('testing one two', 'testing one', 2).fmeasure, 2 / 3);
  const l = rougeL('testing one two', 'testing two');
  close(l.precision, 1);
  close(l.recall, 2 / 3);
  close(l.fmeasure, 0.8);
  close(rougeL('testing one two', 'testing five two').fmeasure, 2 / 3);
  assert.equal(rougeN('testing one two', '', 1).fmeasure, 0);
  assert.equal(lcsLength(['a', 'b', 'c', 'b', 'd', 'a', 'b'], ['b', 'd', 'c', 'a', 'b', 'a']), 4); // CLRS example: "bcba"
  close(rougeMax('rougeL', 'police kill the gunman', ['the gunman kill police', 'police killed the gunman']), 0.75);
});

test('distinct-n, repetition rate (seq-rep-n), length and compression', () => {
  close(distinctN('the cat the cat', 1), 0.5);
  close(distinctN('the cat the cat', 2), 2 / 3);
  close(repetitionRate('the cat the cat', 2), 1 / 3);
  // 12 tokens, 9 four-grams, 4 distinct → 5/9 repeated.
  close(repetitionRate('a b c d a b c d a b c d', 4), 5 / 9);
  assert.equal(repetitionRate('short text', 4), 0); // no 4-grams, nothing repeats
  close(corpusDistinctN(['a b', 'a b'], 1), 0.5);
  assert.equal(wordCount('Hello, world — it is 9 am.'), 6);
  close(compressionRatio('one two', 'one two three four'), 0.5);
});

test('multiple choice acc and acc_norm as lm-evaluation-harness computes them', () => {
  // Summed log-likelihoods favour the short choice; per-character they favour the long one.
  const choices = [' a short', ' a much longer choice'];
  const r = multipleChoice([-10, -12], choices, 1);
  assert.equal(r.pred, 0);
  assert.equal(r.pred_norm, 1); // -10/8 = -1.25 < -12/21 = -0.571
  assert.equal(r.acc, 0);
  assert.equal(r.acc_norm, 1);
  assert.throws(() => multipleChoice([-1], choices, 0), /2 choices/);
});

test('perplexity pools tokens; its [0,1] score and the coherence composite', () => {
  close(perplexity([{ logprob: 3 * Math.log(1 / 4), tokens: 3 }]), 4);
  close(perplexity([{ logprob: 2 * Math.log(1 / 2), tokens: 2 }, { logprob: 2 * Math.log(1 / 8), tokens: 2 }]), 4); // geometric mean
  assert.ok(Number.isNaN(perplexity([])));
  close(perplexityScore(1), 1);
  close(perplexityScore(Math.sqrt(1000)), 0.5);
  close(perplexityScore(5000), 0);
  close(coherenceScore({ repetition: 0.2 }), 0.8);
  close(coherenceScore({ repetition: 0, judge: 10, ppl: 1000 }), (1 + 1 + 0) / 3);
  close(coherenceScore({ repetition: 0.5, judge: 4 }), (0.5 + 1 / 3) / 2);
  const m = scoreGeneration(['f1', 'exact_match', 'repetition_rate', 'coherence', 'perplexity', 'judge_score'], { output: 'Denver Broncos', references: ['Denver Broncos'] });
  assert.deepEqual(Object.keys(m).sort(), ['coherence', 'exact_match', 'f1', 'repetition_rate']); // ppl/judge absent → left out
  assert.equal(m.f1, 1);
});

test('bootstrap CI of a mean: seeded, contains the mean, width near the normal approximation', () => {
  const rng = new SeededRng(3);
  const xs = Array.from({ length: 400 }, () => (rng.next() < 0.3 ? 1 : 0));
  const a = bootstrapMean(xs, { iters: 2000, seed: 9 });
  const b = bootstrapMean(xs, { iters: 2000, seed: 9 });
  assert.deepEqual(a, b);
  assert.ok(a.lo < a.value && a.value < a.hi);
  const p = a.value;
  const normalWidth = 2 * 1.96 * Math.sqrt((p * (1 - p)) / xs.length);
  assert.ok(Math.abs(a.hi - a.lo - normalWidth) / normalWidth < 0.15, `width ${a.hi - a.lo} vs ${normalWidth}`);
});
