// The two-level bootstrap of reward at matched KL (seeds × held-out prompts), on synthetic studies whose
// per-prompt rewards have a known structure (see promptStudy): the true DPO − PPO difference is the shift.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeStudy, compareAtKl, mean, promptCount, resampledText, rewardAtMatchedKl, std } from '../../src/study/analysis.js';
import { recommend } from '../../src/study/recommend.js';
import { dpoVsPpo, promptStudy, withoutPromptRewards } from './synthetic.js';

const close = (a: number, b: number, tol: number, msg = '') => assert.ok(Math.abs(a - b) <= tol, `${msg} ${a} vs ${b} (tol ${tol})`);
const width = (i: { lo: number; hi: number }) => i.hi - i.lo;
/** Population sd: what the bootstrap distribution of a mean of P resampled values has, times √P. */
const sdPop = (xs: number[]) => std(xs) * Math.sqrt((xs.length - 1) / xs.length);

test('one seed: the interval is the prompt bootstrap of the paired per-prompt differences (normal-theory width), blind to shared prompt difficulty', () => {
  // One checkpoint per run, far above the base: at its KL the matched reward is exactly that checkpoint's mean.
  const s = promptStudy({ seeds: [1], kls: [2], shift: { dpo: 0.3, ppo: 0.1 }, promptSd: 0.4, noiseSd: 0.2, rngSeed: 3 });
  const c = compareAtKl(s.runs, 'dpo', 'ppo', 2, { base: s.base, bootstrap: { iters: 4000 } });
  const a = s.runs.find((r) => r.method === 'dpo')!.checkpoints[0]!.promptRewards!;
  const b = s.runs.find((r) => r.method === 'ppo')!.checkpoints[0]!.promptRewards!;
  const d = a.map((x, i) => x - b[i]!);
  close(c.diff.mean, mean(d), 1e-12, 'point estimate');
  const half = (1.96 * sdPop(d)) / Math.sqrt(d.length);
  close(c.diff.lo, mean(d) - half, 0.12 * half, 'lo');
  close(c.diff.hi, mean(d) + half, 0.12 * half, 'hi');
  // Each method alone carries the prompt difficulty (sd 0.4) too; the paired difference does not.
  const halfA = (1.96 * sdPop(a)) / Math.sqrt(a.length);
  close(width(c.aReward) / 2, halfA, 0.12 * halfA, 'DPO alone');
  assert.ok(width(c.diff) < 0.75 * (width(c.aReward) + width(c.bReward)) / 2, `paired diff ${width(c.diff)} vs per-method ${width(c.aReward)}`);
  assert.deepEqual([c.diff.n, c.diff.prompts, c.diff.tested, c.diff.significant, c.winner], [1, 64, true, true, 'dpo']);
  console.log(`1 seed × 64 prompts: diff ${c.diff.mean.toFixed(3)} [${c.diff.lo.toFixed(3)}, ${c.diff.hi.toFixed(3)}], normal theory ±${half.toFixed(3)}`);
});

test('a large shift is found with its CI covering it; no shift gives a CI through 0 (3 seeds × 64 prompts)', () => {
  for (const rngSeed of [1, 2, 3]) {
    const big = promptStudy({ shift: { dpo: 0.25, ppo: 0 }, seedSd: 0.02, rngSeed });
    const c = compareAtKl(big.runs, 'dpo', 'ppo', 2.5, { base: big.base });
    assert.ok(c.diff.lo <= 0.25 && 0.25 <= c.diff.hi, `shift 0.25 in ${JSON.stringify(c.diff)}`);
    assert.ok(c.diff.lo > 0 && c.winner === 'dpo', JSON.stringify(c.diff));
    assert.deepEqual([c.diff.nA, c.diff.nB, c.diff.prompts], [3, 3, 64]);
    const flipped = promptStudy({ shift: { dpo: 0, ppo: 0.25 }, seedSd: 0.02, rngSeed });
    assert.equal(compareAtKl(flipped.runs, 'dpo', 'ppo', 2.5, { base: flipped.base }).winner, 'ppo');
    const none = promptStudy({ shift: { dpo: 0, ppo: 0 }, seedSd: 0.02, rngSeed });
    const z = compareAtKl(none.runs, 'dpo', 'ppo', 2.5, { base: none.base });
    assert.ok(z.diff.lo < 0 && z.diff.hi > 0 && z.winner === null && z.diff.tested, JSON.stringify(z.diff));
  }
});

test('calibration over 120 simulated studies: exact with 1 seed, conservative (never optimistic) with 3 seeds', () => {
  // Seeds and prompts are crossed, and the seed × prompt noise shows up both in the seed-to-seed spread and in
  // the prompt-to-prompt spread: resampling both counts it more than once (Owen 2007, "pigeonhole bootstrap").
  // With one seed there is a single level and the interval should be calibrated.
  for (const [seeds, lo, hi] of [[[1], 0.88, 0.99], [[1, 2, 3], 0.9, 1]] as const) {
    let hit = 0, sig = 0;
    const est: number[] = [], halfSd: number[] = [];
    const trials = 120;
    for (let t = 0; t < trials; t++) {
      const s = promptStudy({ seeds: [...seeds], seedSd: 0.01, shift: { dpo: 0.05, ppo: 0 }, prompts: 48, rngSeed: 100 + t });
      // KL 2 is a checkpoint of every run: a seed misses it only when noise puts that checkpoint below the one at KL 1.
      const c = compareAtKl(s.runs, 'dpo', 'ppo', 2, { base: s.base, bootstrap: { iters: 400, seed: t + 1 } });
      if (c.diff.n === 0) continue;
      if (c.diff.lo <= 0.05 && 0.05 <= c.diff.hi) hit++;
      if (c.diff.significant) sig++;
      est.push(c.diff.mean);
      halfSd.push(width(c.diff) / 2 / 1.96);
    }
    // The estimator's actual sampling sd (across simulated studies) against the sd the intervals imply.
    const ratio = mean(halfSd) / std(est);
    assert.ok(est.length >= 110, `${est.length} of ${trials} simulated studies reach KL 2`);
    const coverage = hit / est.length;
    console.log(`${seeds.length} seed(s): coverage ${coverage.toFixed(3)}, significant in ${sig}/${est.length}, interval sd / true sd ${ratio.toFixed(2)}`);
    assert.ok(coverage >= lo && coverage <= hi, `coverage ${coverage}`);
    if (seeds.length === 1) close(ratio, 1, 0.15, 'calibrated with one seed');
    else assert.ok(ratio >= 0.95 && ratio <= 1.9, `conservative, within √3: ${ratio}`);
  }
});

test('the two-level interval is wider than seeds alone; with one seed only prompts give it any width; it says what it resampled', () => {
  const s = promptStudy({ shift: { dpo: 0.1, ppo: 0 }, seedSd: 0.03, seeds: [1, 2, 3, 4], rngSeed: 9 });
  const both = compareAtKl(s.runs, 'dpo', 'ppo', 2.5, { base: s.base });
  const stripped = withoutPromptRewards(s);
  const seedsOnly = compareAtKl(stripped.runs, 'dpo', 'ppo', 2.5, { base: stripped.base });
  assert.equal(both.diff.mean, seedsOnly.diff.mean); // same point estimate, only the interval changes
  assert.deepEqual([both.diff.prompts, seedsOnly.diff.prompts], [64, 0]);
  assert.ok(width(both.diff) > width(seedsOnly.diff), `${width(both.diff)} vs ${width(seedsOnly.diff)}`);
  const one = { ...s, runs: s.runs.filter((r) => r.seed === 1) };
  const promptsOnly = compareAtKl(one.runs, 'dpo', 'ppo', 2.5, { base: one.base });
  const nothing = compareAtKl(withoutPromptRewards(one).runs, 'dpo', 'ppo', 2.5, { base: one.base });
  assert.ok(width(promptsOnly.diff) > 0.05 && promptsOnly.diff.tested && promptsOnly.diff.prompts === 64, JSON.stringify(promptsOnly.diff));
  assert.deepEqual([width(nothing.diff), nothing.diff.tested, nothing.diff.significant], [0, false, false]);
  assert.equal(resampledText(4, 64), '4 seeds × 64 prompts');
  assert.equal(resampledText([1, 1], 64), '64 prompts (1 seed: prompts only)');
  assert.equal(resampledText([3, 2], 0), '3 and 2 seeds');
  assert.equal(resampledText(1, 0), 'nothing (1 seed, no per-prompt rewards)');
});

test('one seed and no per-prompt rewards: a point, never a significant difference, however large', () => {
  const an = analyzeStudy(dpoVsPpo({ dpoGain: 0.3, ppoGain: 0.6, seeds: [1] }));
  const c = an.comparisons[0]!;
  assert.ok(c.diff.mean < -0.1, `a large difference: ${c.diff.mean}`);
  assert.equal(c.diff.lo, c.diff.hi);
  assert.deepEqual([c.diff.tested, c.diff.significant, c.winner, c.diff.prompts], [false, false, null, 0]);
  assert.ok(an.gridComparisons.every((g) => !g.diff.significant && g.winner === null));
  const r = recommend(an);
  assert.equal(r.verdicts.reward.winner, null);
  assert.match(r.verdicts.reward.text, /not tested/);
  assert.match(r.verdicts.reward.text, /1 seed per method and no per-prompt rewards/);
  assert.doesNotMatch(r.paragraph, /excludes 0|wins on final reward|significantly ahead/);
});

test('the same data with per-prompt rewards: one seed gives a prompts-only interval and the text says so', () => {
  const s = promptStudy({ seeds: [1], shift: { dpo: 0, ppo: 0.3 }, rngSeed: 4 });
  const an = analyzeStudy(s);
  const c = an.comparisons[0]!;
  assert.deepEqual([c.diff.tested, c.diff.prompts, c.winner], [true, 64, 'ppo']);
  const r = recommend(an);
  assert.match(r.verdicts.reward.text, /over the 64 held-out prompts only/);
  assert.match(r.verdicts.reward.text, /not seed-to-seed variation/);
  assert.match(r.verdicts.reward.text, /PPO wins on final reward/);
});

test('prompt draws are shared: a method alone and in a comparison gets the same interval; grid and headline agree', () => {
  const s = promptStudy({ shift: { dpo: 0.1, ppo: 0 }, seedSd: 0.02, rngSeed: 5 });
  const alone = rewardAtMatchedKl(s.runs, 'dpo', [1.5, 2.5], { base: s.base })[1]!;
  const pair = compareAtKl(s.runs, 'dpo', 'ppo', 2.5, { base: s.base });
  assert.deepEqual(pair.aReward, alone.reward);
  assert.equal(alone.prompts, 64);
  const an = analyzeStudy(s);
  assert.deepEqual(an.byMethod.dpo!.headline!.reward, an.byMethod.dpo!.matched.at(-1)!.reward);
  assert.deepEqual(an.comparisons[0]!.diff, an.gridComparisons.at(-1)!.diff);
});

test('per-prompt rewards missing anywhere, or of different lengths: seeds only; NaN prompts are skipped', () => {
  const s = promptStudy({ shift: { dpo: 0.1, ppo: 0 }, rngSeed: 6 });
  const frontierPts = (st: typeof s) => st.runs.map((r) => [{ ...st.base, kl: 0 }, ...r.checkpoints]);
  assert.equal(promptCount(frontierPts(s)), 64);
  const holey = structuredClone(s);
  delete holey.runs[2]!.checkpoints[1]!.promptRewards;
  assert.equal(promptCount(frontierPts(holey)), 0);
  assert.equal(compareAtKl(holey.runs, 'dpo', 'ppo', 2.5, { base: holey.base }).diff.prompts, 0);
  const short = structuredClone(s);
  short.base.promptRewards = short.base.promptRewards!.slice(1);
  assert.equal(compareAtKl(short.runs, 'dpo', 'ppo', 2.5, { base: short.base }).diff.prompts, 0);
  // A NaN per-prompt reward (not measured) drops out of the resampled means instead of poisoning them.
  const nan = structuredClone(s);
  for (const r of nan.runs) for (const c of r.checkpoints) c.promptRewards![7] = NaN;
  const c = compareAtKl(nan.runs, 'dpo', 'ppo', 2.5, { base: nan.base });
  assert.ok(Number.isFinite(c.diff.lo) && Number.isFinite(c.diff.hi) && c.diff.prompts === 64, JSON.stringify(c.diff));
});
