// The two-level bootstrap of reward at matched KL (seeds × held-out prompts), on synthetic studies whose
// per-prompt rewards have a known structure (see promptStudy): the true DPO − PPO difference is the shift.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mean, std, studentTQuantile } from '../../src/stats/index.js';
import { analyzeStudy } from '../../src/study/analysis.js';
import { compareAtKl, promptCount, rewardAtMatchedKl } from '../../src/study/matched.js';
import { resampledText } from '../../src/report/tables.js';
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
  close(c.diff.value, mean(d), 1e-12, 'point estimate');
  const half = (1.96 * sdPop(d)) / Math.sqrt(d.length);
  close(c.diff.lo, mean(d) - half, 0.12 * half, 'lo');
  close(c.diff.hi, mean(d) + half, 0.12 * half, 'hi');
  // Each method alone carries the prompt difficulty (sd 0.4) too; the paired difference does not.
  const halfA = (1.96 * sdPop(a)) / Math.sqrt(a.length);
  close(width(c.aReward) / 2, halfA, 0.12 * halfA, 'DPO alone');
  assert.ok(width(c.diff) < 0.75 * (width(c.aReward) + width(c.bReward)) / 2, `paired diff ${width(c.diff)} vs per-method ${width(c.aReward)}`);
  assert.deepEqual([c.diff.n, c.diff.prompts, c.diff.tested, c.diff.significant, c.winner], [1, 64, true, true, 'dpo']);
  console.log(`1 seed × 64 prompts: diff ${c.diff.value.toFixed(3)} [${c.diff.lo.toFixed(3)}, ${c.diff.hi.toFixed(3)}], normal theory ±${half.toFixed(3)}`);
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

interface Calibration {
  coverage: number;
  /** Mean interval half-width over 1.96 × the estimator's actual sd across simulated studies. */
  widthRatio: number;
  n: number;
}

/** Simulate `trials` studies with known DPO − PPO = 0.05 and see how often the 95% interval at KL 2 covers it. */
function calibrate(o: { seeds: number[]; seedSd: number; noiseSd: number; promptSd: number; trials: number; first?: number }): Calibration {
  let hit = 0;
  const est: number[] = [], half: number[] = [];
  for (let t = 0; t < o.trials; t++) {
    const s = promptStudy({ seeds: o.seeds, seedSd: o.seedSd, noiseSd: o.noiseSd, promptSd: o.promptSd, shift: { dpo: 0.05, ppo: 0 }, prompts: 48, rngSeed: (o.first ?? 100) + t });
    const c = compareAtKl(s.runs, 'dpo', 'ppo', 2, { base: s.base, bootstrap: { iters: 300, seed: t + 1 } });
    if (c.diff.lo <= 0.05 && 0.05 <= c.diff.hi) hit++;
    est.push(c.diff.value);
    half.push(width(c.diff) / 2);
  }
  return { coverage: hit / o.trials, widthRatio: mean(half) / (1.96 * std(est)), n: o.trials };
}

test('calibration over 200 simulated studies each: coverage within [0.90, 0.99] at nominal 95% with 1 seed and with 5 seeds whose spread dominates', () => {
  // One seed: the interval covers prompt sampling only, which is then all the noise there is.
  const one = calibrate({ seeds: [1], seedSd: 0.01, noiseSd: 0.3, promptSd: 0.1, trials: 200 });
  // Five seeds whose spread dominates the prompt noise: the seed part carries the interval (t with ~4 df).
  const five = calibrate({ seeds: [1, 2, 3, 4, 5], seedSd: 0.12, noiseSd: 0.1, promptSd: 0.1, trials: 200, first: 500 });
  console.log(`1 seed: coverage ${one.coverage.toFixed(3)}, width ratio ${one.widthRatio.toFixed(2)}; 5 seeds (seed spread dominant): coverage ${five.coverage.toFixed(3)}, width ratio ${five.widthRatio.toFixed(2)}`);
  for (const [name, c] of [['1 seed', one], ['5 seeds', five]] as const) assert.ok(c.coverage >= 0.9 && c.coverage <= 0.99, `${name}: coverage ${c.coverage}`);
  // With one seed the width is the normal-theory one (no seed part, infinite degrees of freedom).
  assert.ok(one.widthRatio >= 0.85 && one.widthRatio <= 1.15, `1 seed: width ratio ${one.widthRatio}`);
});

test('seed spread dominating prompt noise, 3 seeds: the interval resamples seeds (coverage ≥ 0.95, width ratio ≥ 1)', () => {
  // A prompts-only interval would be blind to the seed offsets (sd 0.12 against per-prompt noise 0.1 over 48
  // prompts) and cover far less often; the t-based seed part with 2 degrees of freedom makes this one wide.
  const c = calibrate({ seeds: [1, 2, 3], seedSd: 0.12, noiseSd: 0.1, promptSd: 0.1, trials: 200, first: 300 });
  console.log(`3 seeds, seed spread dominant: coverage ${c.coverage.toFixed(3)}, width ratio ${c.widthRatio.toFixed(2)}`);
  assert.ok(c.coverage >= 0.95, `coverage ${c.coverage}`);
  assert.ok(c.widthRatio >= 1, `width ratio ${c.widthRatio}`);
});

test('3 seeds with negligible seed spread: conservative by a bounded margin (σ of seeds is estimated from 2 degrees of freedom)', () => {
  // The interval cannot know that the seed part is ~0 from 3 seeds; the Welch–Satterthwaite t makes it wider than
  // the oracle, by a bounded factor (it was 1.9× with the old pigeonhole bootstrap).
  const c = calibrate({ seeds: [1, 2, 3], seedSd: 0.01, noiseSd: 0.3, promptSd: 0.1, trials: 200, first: 700 });
  console.log(`3 seeds, negligible seed spread: coverage ${c.coverage.toFixed(3)}, width ratio ${c.widthRatio.toFixed(2)}`);
  assert.ok(c.coverage >= 0.95, `coverage ${c.coverage}`);
  assert.ok(c.widthRatio >= 1 && c.widthRatio <= 1.45, `width ratio ${c.widthRatio}`);
});

test('without per-prompt rewards the interval is Welch\'s t interval over seeds; with one seed only prompts give it any width; it says what it resampled', () => {
  const s = promptStudy({ shift: { dpo: 0.1, ppo: 0 }, seedSd: 0.03, seeds: [1, 2, 3, 4], rngSeed: 9 });
  const both = compareAtKl(s.runs, 'dpo', 'ppo', 2.5, { base: s.base });
  const stripped = withoutPromptRewards(s);
  const seedsOnly = compareAtKl(stripped.runs, 'dpo', 'ppo', 2.5, { base: stripped.base, bootstrap: { iters: 20000 } });
  assert.deepEqual([both.diff.prompts, seedsOnly.diff.prompts], [64, 0]);
  // By hand: each seed's value is its best checkpoint within KL 2.5 (the one at KL 2), then Welch's t interval.
  const at2 = (m: string) => s.runs.filter((r) => r.method === m).map((r) => r.checkpoints.find((c) => c.kl === 2)!.reward);
  const a = at2('dpo'), b = at2('ppo');
  const va = std(a) ** 2 / a.length, vb = std(b) ** 2 / b.length;
  const df = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  const half = studentTQuantile(0.975, df) * Math.sqrt(va + vb);
  close(seedsOnly.diff.value, mean(a) - mean(b), 1e-12, 'point');
  close(width(seedsOnly.diff) / 2, half, 0.05 * half, 'Welch half-width');
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
  assert.ok(c.diff.value < -0.1, `a large difference: ${c.diff.value}`);
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
