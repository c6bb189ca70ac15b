import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  analyzeStudy, bootstrapDiff, bootstrapMean, commonKlRange, compareAtKl, complexitySummary, costSummary, detectCollapse,
  fCdf, incompleteBeta, interpolateAt, klGrid, logGamma, varianceRatioPValue, learningCurves, makeRng, mean, methodFrontier, paretoFrontier, quantileSorted, rewardAtMatchedKl,
  seedFrontiers, stabilitySummary, std,
} from '../../src/study/analysis.js';
import type { Checkpoint, Run } from '../../src/study/types.js';
import { addCheckpoint, finishRun, newRun } from '../../src/study/types.js';
import { BASE, DPO_CX, dpoVsPpo, syntheticStudy } from './synthetic.js';

const close = (a: number, b: number, tol = 1e-9, msg = '') => assert.ok(Math.abs(a - b) <= tol, `${msg} ${a} vs ${b} (tol ${tol})`);

function run(method: Run['method'], setting: Run['setting'], seed: number, pts: [number, number][], extra: Partial<Checkpoint> = {}): Run {
  const r = newRun(method, setting, seed, DPO_CX);
  pts.forEach(([kl, reward], i) => addCheckpoint(r, { ...BASE, ...extra, step: i, kl, reward }));
  return finishRun(r);
}

test('statistics primitives match hand-computed values', () => {
  close(mean([1, 2, 3, 4]), 2.5);
  close(std([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7));
  assert.equal(std([3]), 0);
  assert.ok(Number.isNaN(mean([])));
  // numpy.quantile([1,2,3,4], [0.25, 0.5, 0.9]) = [1.75, 2.5, 3.7]
  close(quantileSorted([1, 2, 3, 4], 0.25), 1.75);
  close(quantileSorted([1, 2, 3, 4], 0.5), 2.5);
  close(quantileSorted([1, 2, 3, 4], 0.9), 3.7);
  const r1 = makeRng(42), r2 = makeRng(42);
  const xs = Array.from({ length: 20000 }, () => r1());
  assert.deepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => r2()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  close(mean(xs), 0.5, 0.01, 'uniform mean');
});

test('log-gamma, incomplete beta and the F distribution match closed forms', () => {
  close(logGamma(5), Math.log(24), 1e-12);
  close(logGamma(0.5), Math.log(Math.sqrt(Math.PI)), 1e-12);
  close(logGamma(10.3), 13.48203678613836, 1e-12); // Python's math.lgamma(10.3)
  for (const x of [0.01, 0.2, 0.5, 0.77, 0.99]) {
    close(incompleteBeta(x, 1, 3.5), 1 - (1 - x) ** 3.5, 1e-12, `I(${x};1,3.5)`);
    close(incompleteBeta(x, 2.5, 1), x ** 2.5, 1e-12, `I(${x};2.5,1)`);
  }
  for (const f of [0.1, 1, 3, 39]) close(fCdf(f, 2, 2), f / (1 + f), 1e-12, `F(2,2) at ${f}`);
  // F(1,1) is the square of a Cauchy variable: P(F ≤ t²) = (2/π)·atan(t).
  for (const t of [0.3, 1, 4]) close(fCdf(t * t, 1, 1), (2 / Math.PI) * Math.atan(t), 1e-10, `F(1,1) at ${t * t}`);
  close(varianceRatioPValue(39, 2, 1, 2), 0.05, 1e-12);
  close(varianceRatioPValue(1, 2, 39, 2), 0.05, 1e-12);
  close(varianceRatioPValue(1, 4, 1, 4), 1, 1e-12);
  assert.ok(Number.isNaN(varianceRatioPValue(1, 0, 1, 4)));
});

test('bootstrap CI: degenerate cases have exact answers', () => {
  assert.deepEqual(bootstrapMean([0.3, 0.3, 0.3]), { mean: 0.3, lo: 0.3, hi: 0.3, n: 3 });
  assert.deepEqual(bootstrapMean([0.7]), { mean: 0.7, lo: 0.7, hi: 0.7, n: 1 });
  assert.equal(bootstrapMean([]).n, 0);
  // Two values {0, 1}: resampled means are 0, ½, 1 with probabilities ¼, ½, ¼, so the 2.5% and 97.5% points are 0 and 1.
  const two = bootstrapMean([0, 1], { iters: 4000 });
  assert.deepEqual([two.mean, two.lo, two.hi], [0.5, 0, 1]);
  // Non-finite values (a diverged seed) are dropped, not propagated.
  assert.equal(bootstrapMean([1, NaN, 3]).n, 2);
  // Same seed → same interval; different seed → (almost surely) different.
  const xs = [0.1, 0.5, 0.2, 0.9, 0.4];
  assert.deepEqual(bootstrapMean(xs, { seed: 3 }), bootstrapMean(xs, { seed: 3 }));
  assert.notDeepEqual(bootstrapMean(xs, { seed: 3 }), bootstrapMean(xs, { seed: 4 }));
});

test('bootstrap CI covers the true mean about 95% of the time (n = 30, normal and skewed data)', () => {
  const rng = makeRng(11);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  for (const [name, draw, mu] of [
    ['normal(2, 1)', () => 2 + normal(), 2],
    ['exponential(1)', () => -Math.log(1 - rng()), 1],
  ] as const) {
    let hit = 0, width = 0;
    const trials = 300;
    for (let t = 0; t < trials; t++) {
      const xs = Array.from({ length: 30 }, draw);
      const c = bootstrapMean(xs, { iters: 800, seed: t + 1 });
      if (c.lo <= mu && mu <= c.hi) hit++;
      width += (c.hi - c.lo) / trials;
    }
    const coverage = hit / trials;
    console.log(`bootstrap coverage ${name}: ${coverage.toFixed(3)}, mean width ${width.toFixed(3)} (normal theory ${(2 * 1.96 / Math.sqrt(30)).toFixed(3)})`);
    assert.ok(coverage >= 0.89 && coverage <= 0.985, `${name} coverage ${coverage}`);
    close(width, (2 * 1.96) / Math.sqrt(30), 0.12, `${name} width`);
  }
});

test('bootstrapDiff: a clear shift is significant in the right direction; equal groups are not', () => {
  const b = [0.10, 0.12, 0.09, 0.11, 0.13];
  const a = b.map((x) => x + 0.5);
  const d = bootstrapDiff(a, b);
  close(d.mean, 0.5, 1e-12);
  assert.ok(d.significant && d.lo > 0.45 && d.hi < 0.55, JSON.stringify(d));
  const r = bootstrapDiff(b, a);
  assert.ok(r.significant && r.hi < 0);
  const same = bootstrapDiff([1, 2, 3], [1, 2, 3]);
  assert.equal(same.mean, 0);
  assert.ok(!same.significant && same.lo < 0 && same.hi > 0);
  assert.equal(bootstrapDiff([], [1]).significant, false);
});

test('paretoFrontier: a hand-made set and a brute-force check on random points', () => {
  const pts = [
    { kl: 0, reward: 0 }, { kl: 1, reward: 0.5 }, { kl: 1, reward: 0.4 }, { kl: 2, reward: 0.3 }, { kl: 3, reward: 0.9 },
    { kl: 2.5, reward: 0.9 }, { kl: 4, reward: 0.95 }, { kl: NaN, reward: 1 }, { kl: 5, reward: -1 },
  ];
  assert.deepEqual(paretoFrontier(pts).map((p) => [p.kl, p.reward]), [[0, 0], [1, 0.5], [2.5, 0.9], [4, 0.95]]);
  assert.deepEqual(paretoFrontier([]), []);
  const rng = makeRng(5);
  for (let t = 0; t < 20; t++) {
    const ps = Array.from({ length: 60 }, () => ({ kl: 10 * rng(), reward: rng() }));
    const brute = ps.filter((p) => !ps.some((q) => q !== p && q.kl <= p.kl && q.reward >= p.reward)).sort((x, y) => x.kl - y.kl);
    assert.deepEqual(paretoFrontier(ps), brute);
  }
});

test('interpolateAt: linear between frontier points, null outside, all metrics share the weight', () => {
  const f = [
    { kl: 0, reward: 0, entropy: 4 },
    { kl: 2, reward: 1, entropy: 3 },
    { kl: 4, reward: 1.5, entropy: 1 },
  ];
  close(interpolateAt(f, 1)!.reward, 0.5);
  close(interpolateAt(f, 1)!.entropy, 3.5);
  close(interpolateAt(f, 3)!.reward, 1.25);
  close(interpolateAt(f, 3)!.entropy, 2);
  close(interpolateAt(f, 2)!.reward, 1);
  close(interpolateAt(f, 4)!.reward, 1.5);
  close(interpolateAt(f, 0)!.reward, 0);
  assert.equal(interpolateAt(f, 4.01), null);
  assert.equal(interpolateAt(f, -0.1), null);
  assert.ok(Number.isNaN(interpolateAt(f, 1)!.perplexity));
});

test('commonKlRange and klGrid', () => {
  assert.deepEqual(commonKlRange([[{ kl: 0, reward: 0 }, { kl: 3, reward: 1 }], [{ kl: 0.5, reward: 0 }, { kl: 5, reward: 1 }]]), { lo: 0.5, hi: 3 });
  assert.equal(commonKlRange([[{ kl: 0, reward: 0 }], [{ kl: 0, reward: 0 }, { kl: 5, reward: 1 }]]), null);
  assert.deepEqual(klGrid(0, 4, 4), [1, 2, 3, 4]);
});

test('seed frontiers span settings; reward at matched KL interpolates each seed, then bootstraps across seeds', () => {
  const offsets = [0, 0.02, -0.01];
  const runs = offsets.flatMap((o, i) => [
    run('dpo', { beta: 0.5 }, i + 1, [[0, 0.05], [1, 0.5 + o]]),
    run('dpo', { beta: 0.1 }, i + 1, [[0, 0.05], [2, 0.4 + o], [3, 0.9 + o]]),
  ]);
  const fr = seedFrontiers(runs, 'dpo', BASE);
  assert.deepEqual([...fr.keys()], [1, 2, 3]);
  // Seed frontier: base (0, 0.05), (1, 0.5+o), (3, 0.9+o); (2, 0.4+o) is dominated.
  assert.deepEqual(fr.get(2)!.map((p) => [p.kl, +p.reward.toFixed(6)]), [[0, 0.05], [1, 0.52], [3, 0.92]]);
  const [at2, at05, at4] = rewardAtMatchedKl(runs, 'dpo', [2, 0.5, 4], { base: BASE });
  // At KL 2: halfway between (1, 0.5+o) and (3, 0.9+o) → 0.7 + o.
  assert.deepEqual(at2!.perSeed.map((p) => +p.reward.toFixed(9)), offsets.map((o) => +(0.7 + o).toFixed(9)));
  close(at2!.reward.mean, 0.7 + mean(offsets), 1e-12);
  assert.ok(at2!.reward.lo <= at2!.reward.mean && at2!.reward.mean <= at2!.reward.hi && at2!.reward.n === 3);
  close(at05!.reward.mean, (0.05 + 0.5 + mean(offsets)) / 2, 1e-12); // halfway between the base anchor and KL 1
  assert.equal(at4!.reward.n, 0); // no seed reached KL 4: no value, no extrapolation
  // The method frontier pools all seeds: the best seed's points win.
  assert.deepEqual(methodFrontier(runs, 'dpo', BASE).map((p) => [p.kl, +p.reward.toFixed(6), p.seed]), [[0, 0.05, -1], [1, 0.52, 2], [3, 0.92, 2]]);
});

test('compareAtKl: winner flips with the data, and is null when the methods are the same', () => {
  const mk = (method: Run['method'], shift: number) =>
    [0, 0.01, -0.01, 0.005].map((o, i) => run(method, { k: 1 }, i + 1, [[0, 0.05], [2, 0.4 + shift + o]]));
  const up = compareAtKl([...mk('dpo', 0.2), ...mk('ppo', 0)], 'dpo', 'ppo', 2, { base: BASE });
  assert.equal(up.winner, 'dpo');
  close(up.diff.mean, 0.2, 1e-9);
  assert.ok(up.diff.lo > 0);
  const down = compareAtKl([...mk('dpo', 0), ...mk('ppo', 0.2)], 'dpo', 'ppo', 2, { base: BASE });
  assert.equal(down.winner, 'ppo');
  assert.ok(down.diff.hi < 0);
  const tie = compareAtKl([...mk('dpo', 0), ...mk('ppo', 0)], 'dpo', 'ppo', 2, { base: BASE });
  assert.equal(tie.winner, null);
  assert.equal(tie.diff.significant, false);
});

test('detectCollapse: entropy, distinct-n, KL explosion, non-finite values', () => {
  const cps = (over: Partial<Checkpoint>[]) => over.map((o, i) => ({ ...BASE, step: i * 10, ...o }));
  assert.deepEqual(detectCollapse(cps([{}, { kl: 2 }, { kl: 4 }]), BASE), { status: 'ok' });
  const e = detectCollapse(cps([{}, { entropy: 2 }, { entropy: 1.1 }]), BASE);
  assert.equal(e.status, 'collapsed');
  assert.equal(e.step, 20);
  assert.match(e.reason!, /entropy/);
  assert.equal(detectCollapse(cps([{}, { distinct2: 0.3 }]), BASE).status, 'collapsed');
  assert.equal(detectCollapse(cps([{}, { kl: 80 }]), BASE).status, 'diverged');
  assert.equal(detectCollapse(cps([{}, { kl: 80 }]), BASE, { klMax: 100 }).status, 'ok');
  assert.equal(detectCollapse(cps([{}, { reward: NaN }]), BASE).status, 'diverged');
});

test('stabilitySummary: pooled seed std and failure counts', () => {
  const runs = [
    ...[1, 2, 3].map((f, i) => run('ppo', { c: 'a' }, i + 1, [[0, 0.05], [1, f]])),
    ...[2, 4].map((f, i) => run('ppo', { c: 'b' }, i + 1, [[0, 0.05], [1, f]])),
    run('ppo', { c: 'b' }, 9, [[0, 0.05], [1, 0.2]], { entropy: 0.1 }), // collapsed (entropy 2.5% of base)
  ];
  runs[0]!.status = 'diverged';
  const s = stabilitySummary(runs, 'ppo', BASE);
  // Setting a: finals 1,2,3 (var 1). Setting b: 2,4,0.2 (var computed below). Pooled over both.
  const vb = std([2, 4, 0.2]) ** 2;
  close(s.seedStd, Math.sqrt((2 * 1 + 2 * vb) / 4), 1e-12);
  assert.equal(s.runs, 6);
  assert.equal(s.diverged, 1);
  assert.equal(s.collapsed, 1);
  close(s.failureRate, 2 / 6);
  assert.deepEqual(s.perSetting.map((p) => p.n), [3, 3]);
});

test('costSummary and complexitySummary', () => {
  const study = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5, dpoWall: 30, ppoWall: 80 });
  const c = costSummary(study.runs, 'ppo', study.prerequisites);
  close(c.wallSeconds.mean, 80);
  close(c.generationShare, 0.6);
  close(c.tokensPerSecond, 10000 / 80);
  assert.equal(c.prerequisiteSeconds, 20);
  close(c.oneModelSeconds, 100);
  assert.equal(costSummary(study.runs, 'dpo', study.prerequisites).prerequisiteSeconds, 0);
  const x = complexitySummary(study.runs, 'ppo');
  assert.deepEqual([x.modelsInMemory, x.hyperparameters, x.lossLines, x.consistent], [4, 7, 30, true]);
});

test('learningCurves: mean ± sd over seeds at each step', () => {
  const runs = [0.1, 0.3, 0.5].map((f, i) => run('dpo', { beta: 0.1 }, i + 1, [[0, 0.05], [1, f]]));
  const c = learningCurves(runs, 'dpo');
  assert.equal(c.length, 2);
  close(c[1]!.mean, 0.3);
  close(c[1]!.sd, 0.2);
  close(c[1]!.lo, 0.1);
  close(c[1]!.hi, 0.5);
  assert.equal(c[1]!.n, 3);
});

test('analyzeStudy on a noiseless synthetic study reproduces the generating curve', () => {
  const gainD = 0.6, gainP = 0.4;
  const study = dpoVsPpo({ dpoGain: gainD, ppoGain: gainP, noise: 0 });
  const an = analyzeStudy(study);
  // DPO's fastest setting reaches 0.6 × 10 = 6 nats, PPO's 0.8 × 10 = 8: the common range tops out at 6.
  assert.deepEqual(an.klRange, { lo: 0, hi: 6 });
  assert.equal(an.headlineKl, 6);
  assert.equal(an.grid.length, 8);
  const truth = (g: number, kl: number) => BASE.reward + g * (1 - Math.exp(-kl / 2));
  // The frontier points lie on the true curve; between them the linear interpolation is slightly below the concave curve.
  close(an.byMethod.dpo!.headline!.reward.mean, truth(gainD, 6), 1e-9);
  for (const p of an.byMethod.ppo!.matched) assert.ok(p.reward.mean <= truth(gainP, p.kl) + 1e-12 && p.reward.mean > truth(gainP, p.kl) - 0.02);
  const cmp = an.comparisons[0]!;
  assert.equal(cmp.winner, 'dpo');
  // PPO's nearest checkpoints around KL 6 are at 5.6 and 6.4 (0.8 nats a step): 6 is halfway between them.
  close(cmp.diff.mean, truth(gainD, 6) - (truth(gainP, 5.6) + truth(gainP, 6.4)) / 2, 1e-9);
  assert.equal(an.gridComparisons.length, 8);
  assert.equal(an.byMethod.dpo!.stability.runs, 6);
  close(an.byMethod.ppo!.maxKl.mean, 8);
});

test('analyzeStudy mid-study: a run with no checkpoint yet does not shrink the shared KL range', () => {
  const study = dpoVsPpo({ dpoGain: 0.6, ppoGain: 0.4, noise: 0 });
  const fresh = newRun('ppo', { klCoef: 0.05 }, 4, DPO_CX);
  study.runs.push(fresh);
  const an = analyzeStudy(study);
  assert.deepEqual(an.klRange, { lo: 0, hi: 6 });
  assert.equal(an.byMethod.ppo!.headline!.reward.n, 3);
  assert.equal(an.byMethod.ppo!.stability.runs, 6); // the running run is not counted
  assert.deepEqual(an.byMethod.ppo!.seeds, [1, 2, 3, 4]);
});

test('analyzeStudy with seed noise: the CI brackets the truth and widens with noise', () => {
  const truth = BASE.reward + 0.5 * (1 - Math.exp(-3));
  const widths = [0.01, 0.05].map((noise) => {
    const an = analyzeStudy(syntheticStudy([
      { method: 'dpo', settings: [{ setting: { beta: 0.1 }, klPerStep: 0.6 }], gain: 0.5, seedNoise: noise, wallSeconds: 1, generationShare: 0, complexity: DPO_CX },
    ], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 10, 3), { compare: [] });
    const m = an.byMethod.dpo!.matched.at(-1)!;
    assert.equal(m.kl, 6);
    assert.ok(m.reward.lo < truth + 4 * noise && m.reward.hi > truth - 4 * noise, JSON.stringify(m.reward));
    return m.reward.hi - m.reward.lo;
  });
  assert.ok(widths[1]! > 2 * widths[0]!, `widths ${widths}`);
});
