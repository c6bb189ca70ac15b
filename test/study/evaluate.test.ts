// The study evaluator's estimators against values computed by hand, and a checkpoint summary built from
// hand-made scored samples (no model is run: summarize only reads the scored samples).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { distinctN, Evaluator, pairedWinRate, perplexityOf, sampleKl, tokenEntropy, type Scored } from '../../src/study/evaluate.js';

const close = (a: number, b: number, tol = 1e-12, msg = '') => assert.ok(Math.abs(a - b) <= tol, `${msg} ${a} vs ${b} (tol ${tol})`);

test('sequence KL estimate: Σ log π − Σ log π_ref of one sample', () => {
  // log π = ln 0.5 + ln 0.25; log π_ref = ln 0.25 + ln 0.25 → KL sample = ln 0.5 − ln 0.25 = ln 2.
  close(sampleKl([Math.log(0.5), Math.log(0.25)], [Math.log(0.25), Math.log(0.25)]), Math.LN2);
  close(sampleKl([], []), 0);
});

test('token entropy (Monte Carlo): mean of −log π over every generated token of every sample', () => {
  // Tokens with probabilities 0.5, 0.25 | 0.125 → (ln 2 + ln 4 + ln 8) / 3 = 2 ln 2.
  close(tokenEntropy([[Math.log(0.5), Math.log(0.25)], [Math.log(0.125)]]), 2 * Math.LN2);
});

test('perplexity: exp of the mean per-token negative log-likelihood, pooled over samples', () => {
  // Probabilities 0.5 and 0.125 → mean NLL (ln 2 + ln 8)/2 = 2 ln 2 → perplexity 4 (not the mean of per-sample perplexities, 5).
  close(perplexityOf([[Math.log(0.5)], [Math.log(0.125)]]), 4, 1e-12);
});

test('win rate: P(a > b) + ½ P(a = b), paired by prompt', () => {
  close(pairedWinRate([1, 0, 0.5, 0.2], [0, 0, 0.7, 0.1]), (1 + 0.5 + 0 + 1) / 4);
  assert.ok(Number.isNaN(pairedWinRate([], [])));
});

test('distinct-n: distinct n-grams over all n-grams, pooled across samples', () => {
  // Unigrams: 1 2 1 | 1 3 → 5 total, distinct {1, 2, 3} = 3. Bigrams: (1,2) (2,1) | (1,3) → 3 of 3.
  close(distinctN([[1, 2, 1], [1, 3]], 1), 3 / 5);
  close(distinctN([[1, 2, 1], [1, 3]], 2), 1);
  close(distinctN([[7, 7, 7, 7]], 2), 1 / 3);
  assert.equal(distinctN([[1]], 2), 0);
});

test('summarize: a checkpoint from scored samples, with per-prompt rewards and KLs, EOS rate and n-gram fluency', () => {
  const lp = Math.log;
  const scored: Scored[] = [
    { tokens: [5, 6], policyLogps: [lp(0.5), lp(0.5), lp(0.8)], refLogps: [lp(0.25), lp(0.5), lp(0.4)], text: 'a b', reward: 0.6, eos: true },
    { tokens: [5, 5], policyLogps: [lp(0.25), lp(0.5)], refLogps: [lp(0.25), lp(0.25)], text: 'a a', reward: -0.2, eos: false },
  ];
  const fake = {
    prompts: [{ ids: [1, 2], text: 'p1' }, { ids: [1, 3], text: 'p2' }],
    baseRewards: [0.1, -0.2],
    opts: { maxNewTokens: 2, eosId: 2, seed: 1, fluency: (_p: readonly number[][], c: readonly number[][]) => c.map((t) => t.length * 1.5) },
  };
  const { checkpoint: c } = Evaluator.prototype.summarize.call(fake as unknown as Evaluator, 7, scored);
  const kl1 = lp(0.5) + lp(0.5) + lp(0.8) - (lp(0.25) + lp(0.5) + lp(0.4)), kl2 = lp(0.25) + lp(0.5) - 2 * lp(0.25);
  assert.deepEqual(c.promptKls!.map((x) => +x.toFixed(12)), [kl1, kl2].map((x) => +x.toFixed(12)));
  close(c.kl, (kl1 + kl2) / 2);
  close(c.reward, 0.2);
  close(c.rewardStd, Math.sqrt(((0.4) ** 2 + (0.4) ** 2) / 1)); // sample std (n − 1)
  close(c.entropy, -(lp(0.5) + lp(0.5) + lp(0.8) + lp(0.25) + lp(0.5)) / 5);
  close(c.perplexity, Math.exp(-(lp(0.25) + lp(0.5) + lp(0.4) + 2 * lp(0.25)) / 5));
  close(c.winRate, (1 + 0.5) / 2);
  close(c.eosRate!, 0.5);
  close(c.fluency!, 3); // the scorer's per-sample values 3 and 3
  close(c.distinct1, 2 / 4);
  close(c.length, 2);
  assert.deepEqual(c.promptRewards, [0.6, -0.2]);
  // Best-of-N passes its analytic KL: every prompt carries it.
  const bon = Evaluator.prototype.summarize.call(fake as unknown as Evaluator, 4, scored, 1.25).checkpoint;
  assert.deepEqual([bon.kl, bon.promptKls], [1.25, [1.25, 1.25]]);
});
