import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeStudy } from '../../src/study/analysis.js';
import { recommend } from '../../src/study/recommend.js';
import { DPO_CX, dpoVsPpo, promptStudy, syntheticStudy, type SynthMethod } from './synthetic.js';

const M: SynthMethod = { method: 'dpo', settings: [{ setting: { k: 1 }, klPerStep: 0.5 }], gain: 0.5, seedNoise: 0.01, wallSeconds: 10, generationShare: 0.1, complexity: DPO_CX };

test('DPO ahead on reward: DPO wins, and the words say so with the numbers', () => {
  const an = analyzeStudy(dpoVsPpo({ dpoGain: 0.6, ppoGain: 0.3 }));
  const r = recommend(an);
  assert.equal(r.verdicts.reward.winner, 'dpo');
  assert.equal(r.overall, 'dpo');
  assert.match(r.paragraph, /DPO wins on final reward/);
  assert.match(r.paragraph, /Recommendation: use DPO/);
  assert.doesNotMatch(r.paragraph, /use PPO/);
  // The numbers in the text are the analysis numbers.
  const h = an.byMethod.dpo!.headline!.reward;
  assert.ok(r.paragraph.includes(h.value.toFixed(3)) && r.paragraph.includes(h.lo.toFixed(3)));
  // DPO is also cheaper (30 s vs 80 s + 20 s reward model) and simpler in the synthetic data.
  assert.equal(r.verdicts.cost.winner, 'dpo');
  assert.equal(r.verdicts.complexity.winner, 'dpo');
  assert.match(r.paragraph, /also cheaper and simpler/);
  assert.match(r.paragraph, /With 3 seeds per method the seed-to-seed part of these intervals rests on 2 degrees of freedom/);
  // The grid sentence counts budgets per method, leading with the one ahead, and says what the CIs resampled.
  assert.match(r.paragraph, /DPO is significantly ahead at 8 of the 8 KL budgets up to that point \(Holm-corrected\), PPO at none\./);
  assert.match(r.paragraph, /95% t intervals over 3 seeds per method; the checkpoints carry no per-prompt rewards/);
  assert.match(r.paragraph, /At a KL budget of 6\.000 nats \(fixed in advance as the smaller of the two methods' reaches/);
  assert.doesNotMatch(r.paragraph, /did not improve on the base/);
  console.log(r.paragraph);
});

test('the numbers flip → the words flip: PPO ahead on reward, and cheaper', () => {
  const an = analyzeStudy(dpoVsPpo({ dpoGain: 0.3, ppoGain: 0.6, dpoWall: 200, ppoWall: 60 }));
  const r = recommend(an);
  assert.equal(r.verdicts.reward.winner, 'ppo');
  assert.equal(r.verdicts.cost.winner, 'ppo');
  assert.equal(r.verdicts.complexity.winner, 'dpo');
  assert.equal(r.overall, 'ppo');
  assert.match(r.paragraph, /PPO wins on final reward/);
  assert.match(r.paragraph, /Recommendation: use PPO: .* also cheaper, but it is more complex\./);
  assert.match(r.paragraph, /difference DPO − PPO is −0\.\d+/);
  assert.match(r.paragraph, /PPO is significantly ahead at 8 of the 8 KL budgets up to that point \(Holm-corrected\), DPO at none\./);
});

test('no reward difference: says so plainly, and the overall call goes to the side winning more of the rest', () => {
  const an = analyzeStudy(dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5, noise: 0.05, seeds: [1, 2, 3, 4, 5] }));
  const r = recommend(an);
  assert.equal(r.verdicts.reward.winner, null);
  assert.match(r.paragraph, /includes 0: no significant difference in final reward/);
  const ahead = an.gridComparisons.filter((c) => c.winner !== null).length;
  const ahead2 = an.gridComparisons.filter((c) => c.holmWinner !== null).length;
  assert.ok(ahead2 <= ahead, 'Holm never finds more than the unadjusted tests');
  if (ahead2 === 0) assert.match(r.paragraph, /Neither method is significantly ahead at any of the 8 KL budgets up to that point \(Holm-corrected\)\./);
  else assert.match(r.paragraph, /is significantly ahead at \d of the 8 KL budgets up to that point \(Holm-corrected\), (DPO|PPO) at (none|\d)\./);
  assert.equal(r.overall, 'dpo'); // cheaper and simpler
  assert.match(r.paragraph, /With no significant difference in final reward, prefer DPO: it is cheaper and simpler/);
  assert.doesNotMatch(r.paragraph, /optimistic/); // 5 seeds
  assert.match(r.verdicts.stability.text, /Neither is clearly more stable \(equal failure rates; spread differs with F test p = /);
  // Same study, costs and complexity evened out → no basis to prefer either.
  const even = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5, noise: 0.05, seeds: [1, 2, 3, 4, 5], dpoWall: 100, ppoWall: 80 });
  for (const run of even.runs) run.complexity = { modelsInMemory: 2, hyperparameters: 2, lossLines: 10 };
  const r2 = recommend(analyzeStudy(even));
  assert.equal(r2.verdicts.cost.winner, null);
  assert.equal(r2.verdicts.complexity.winner, null);
  assert.equal(r2.overall, null);
  assert.match(r2.paragraph, /give no reason to prefer DPO or PPO/);
});

test('stability verdict follows collapses', () => {
  const an = analyzeStudy(dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5, ppoCollapseSeeds: [2] }));
  const r = recommend(an);
  assert.equal(an.byMethod.ppo!.stability.collapsed, 2); // both PPO settings of seed 2
  assert.equal(r.verdicts.stability.winner, 'dpo');
  assert.match(r.verdicts.stability.text, /PPO: 2 of 6 runs failed \(2 collapsed, 0 diverged\)/);
  // No failures, but one method's seeds scatter much more (10 seeds each): the F test decides.
  const spread = syntheticStudy([
    { ...M, method: 'dpo', seedNoise: 0.01 },
    { ...M, method: 'ppo', seedNoise: 0.1 },
  ], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const v = recommend(analyzeStudy(spread)).verdicts.stability;
  assert.equal(v.winner, 'dpo');
  assert.match(v.text, /DPO is more stable \(as many failures, less seed-to-seed spread: F test p = /);
  const flipped = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5 });
  for (const run of flipped.runs) if (run.method === 'dpo' && run.seed === 1) run.status = 'diverged';
  assert.equal(recommend(analyzeStudy(flipped)).verdicts.stability.winner, 'ppo');
});

test('missing method or no shared KL budget: no recommendation rather than a guess', () => {
  const only = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5 });
  only.runs = only.runs.filter((r) => r.method === 'dpo');
  const r = recommend(analyzeStudy(only));
  assert.equal(r.overall, null);
  assert.match(r.paragraph, /no runs of PPO/);
  // PPO runs exist but none has an evaluated checkpoint yet: no KL budget is shared, and cost does not decide.
  const early = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5 });
  for (const run of early.runs) if (run.method === 'ppo') run.checkpoints = [];
  const an = analyzeStudy(early);
  assert.equal(an.headlineKl, null);
  const r2 = recommend(an);
  assert.equal(r2.verdicts.reward.winner, null);
  assert.equal(r2.verdicts.cost.winner, 'dpo'); // cheaper, and still not recommended on that
  assert.equal(r2.overall, null);
  assert.match(r2.paragraph, /cannot be compared at matched KL/);
  assert.match(r2.paragraph, /Recommendation: none: final reward cannot be compared at matched KL, and stability, cost and complexity do not stand in for reward\./);
  assert.doesNotMatch(r2.paragraph, /prefer|use DPO|use PPO/);
});

test('a method that never beats the base: the verdict says so first, and cost or complexity never replaces it', () => {
  const flat = dpoVsPpo({ dpoGain: 0.5, ppoGain: -0.3 });
  const an = analyzeStudy(flat);
  const r = recommend(an);
  assert.ok(r.paragraph.startsWith(`PPO did not improve on the base at any KL ≤ ${an.byMethod.ppo!.reach.toFixed(2)} nats`), r.paragraph.slice(0, 120));
  // PPO's checkpoints are all below the base, so at every budget each seed keeps the base: measured, not untested.
  assert.match(r.paragraph, /^PPO did not improve[^.]*\.[^.]*: at each of 8 budgets up to there, every seed's best checkpoint was the base itself\./);
  assert.equal(r.verdicts.reward.winner, 'dpo');
  assert.equal(r.overall, 'dpo');
  // Both flat: no recommendation at all, even though DPO is cheaper and simpler.
  const both = dpoVsPpo({ dpoGain: -0.2, ppoGain: -0.3 });
  const rb = recommend(analyzeStudy(both));
  assert.match(rb.paragraph, /^DPO did not improve on the base at any KL ≤ [\d.]+ nats .* PPO did not improve on the base/);
  assert.equal(rb.overall, null);
  assert.match(rb.paragraph, /Recommendation: none: neither DPO nor PPO improved on the base policy\./);
});

test('with per-prompt rewards the paragraph names both levels and the caveat is about seeds only; one seed without them is not tested', () => {
  const an = analyzeStudy(promptStudy({ shift: { dpo: 0.25, ppo: 0 }, seedSd: 0.02, rngSeed: 3 }));
  const r = recommend(an);
  assert.match(r.verdicts.reward.text, /95% CIs from a two-level bootstrap over 3 seeds per method and the 64 held-out prompts, the prompts paired across methods, with a t quantile for the seed-to-seed part; each checkpoint chosen on one half of the prompts and scored on the other/);
  assert.equal(r.verdicts.reward.winner, 'dpo');
  assert.match(r.paragraph, /With 3 seeds per method the seed-to-seed part of these intervals rests on 2 degrees of freedom/);
  const flipped = recommend(analyzeStudy(promptStudy({ shift: { dpo: 0, ppo: 0.25 }, seedSd: 0.02, rngSeed: 3 })));
  assert.equal(flipped.verdicts.reward.winner, 'ppo');
  assert.match(flipped.paragraph, /PPO wins on final reward/);
});

test('PPO\'s gain twice DPO\'s with one seed and no per-prompt rewards: untested, so no recommendation (never "prefer DPO" on cost)', () => {
  const one = recommend(analyzeStudy(dpoVsPpo({ dpoGain: 0.3, ppoGain: 0.6, seeds: [1] })));
  assert.equal(one.verdicts.reward.winner, null);
  assert.equal(one.overall, null);
  assert.match(one.paragraph, /not tested for significance: no verdict on final reward\. None of the 8 KL budgets up to that point could be tested either\./);
  assert.match(one.paragraph, /Recommendation: none: the difference in final reward could not be tested/);
  assert.doesNotMatch(one.paragraph, /prefer DPO|use DPO/);
  assert.match(one.paragraph, /With 1 seed and no per-prompt rewards there is no interval at all/);
});
