// The one statistics module: every function against hand-computed values, closed forms or published
// numbers, and the bootstrap's coverage bounded on both sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bootstrap, bootstrapDiff, bootstrapMean, bootstrapPValue, ci, fCdf, holmAdjust, incompleteBeta, logGamma, makeRng, mean, normalQuantile,
  percentileInterval, populationStd, quantile, quantileSorted, signed, std, normalCdf, studentTCdf, studentTQuantile, varianceRatioPValue, wilsonInterval,
} from '../../src/stats/index.js';

const close = (a: number, b: number, tol = 1e-9, msg = '') => assert.ok(Math.abs(a - b) <= tol, `${msg} ${a} vs ${b} (tol ${tol})`);

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
  assert.deepEqual(bootstrapMean([0.3, 0.3, 0.3]), { value: 0.3, lo: 0.3, hi: 0.3, n: 3 });
  assert.deepEqual(bootstrapMean([0.7]), { value: 0.7, lo: 0.7, hi: 0.7, n: 1 });
  assert.equal(bootstrapMean([]).n, 0);
  // Two values {0, 1}: resampled means are 0, ½, 1 with probabilities ¼, ½, ¼, so the 2.5% and 97.5% points are 0 and 1.
  const two = bootstrapMean([0, 1], { iters: 4000 });
  assert.deepEqual([two.value, two.lo, two.hi], [0.5, 0, 1]);
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
  close(d.value, 0.5, 1e-12);
  assert.ok(d.significant && d.lo > 0.45 && d.hi < 0.55, JSON.stringify(d));
  const r = bootstrapDiff(b, a);
  assert.ok(r.significant && r.hi < 0);
  const same = bootstrapDiff([1, 2, 3], [1, 2, 3]);
  assert.equal(same.value, 0);
  assert.ok(!same.significant && same.lo < 0 && same.hi > 0);
  assert.equal(bootstrapDiff([], [1]).significant, false);
});


test('std is the sample std (n − 1); populationStd divides by n; quantile sorts a copy', () => {
  // numpy.std([2,4,4,4,5,5,7,9], ddof=1) = 2.138089935299395; ddof=0 gives exactly 2.
  close(std([2, 4, 4, 4, 5, 5, 7, 9]), 2.138089935299395, 1e-12);
  close(populationStd([2, 4, 4, 4, 5, 5, 7, 9]), 2, 1e-12);
  close(populationStd([0.8, 0.4]), 0.2, 1e-12);
  assert.ok(Number.isNaN(populationStd([])));
  const xs = [4, 1, 3, 2];
  close(quantile(xs, 0.9), 3.7);
  assert.deepEqual(xs, [4, 1, 3, 2]);
});

test('normal quantile matches published values', () => {
  // scipy.stats.norm.ppf
  close(normalQuantile(0.975), 1.959963984540054, 1e-8);
  close(normalQuantile(0.5), 0, 1e-12);
  close(normalQuantile(0.01), -2.3263478740408408, 1e-8);
  close(normalQuantile(0.995), 2.5758293035489004, 1e-8);
  close(normalQuantile(1e-6), -4.753424308822899, 1e-7);
  assert.equal(normalQuantile(0), -Infinity);
  assert.ok(Number.isNaN(normalQuantile(1.5)));
});

test('Wilson interval matches published values and stays in [0, 1]', () => {
  // Wilson (1927) by hand in Python with z = 1.959963984540054: 40/64 → (0.502503786840045, 0.7333401982117536).
  const w = wilsonInterval(40, 64);
  close(w.value, 0.625, 1e-12);
  close(w.lo, 0.502503786840045, 1e-8);
  close(w.hi, 0.7333401982117536, 1e-8);
  assert.equal(w.n, 64);
  // 0 of n has the closed form (0, z²/(n + z²)) = (0, 0.2775327998628892) for n = 10.
  const z = wilsonInterval(0, 10);
  assert.equal(z.lo, 0);
  close(z.hi, 0.2775327998628892, 1e-7);
  const f = wilsonInterval(10, 10);
  assert.equal(f.hi, 1);
  close(f.lo, 1 - 0.2775327998628892, 1e-7);
  assert.ok(Number.isNaN(wilsonInterval(0, 0).lo));
});

test('Holm adjustment matches hand-computed step-down values', () => {
  // p sorted: 0.01, 0.02, 0.03, 0.5 with m = 4 → 0.04, max(0.04, 0.06), max(0.06, 0.06), max(0.06, 0.5)
  const adj = holmAdjust([0.03, 0.5, 0.01, 0.02]);
  assert.deepEqual(adj.map((x) => +x.toFixed(12)), [0.06, 0.5, 0.04, 0.06]);
  // Capped at 1; NaN (not tested) stays NaN and does not count towards m.
  const b = holmAdjust([0.4, NaN, 0.3]);
  close(b[0]!, 0.6, 1e-12);
  assert.ok(Number.isNaN(b[1]!));
  close(b[2]!, 0.6, 1e-12);
  // 0.8 × 2 caps at 1, and the running maximum carries 1 to the larger p.
  assert.deepEqual(holmAdjust([0.9, 0.8]), [1, 1]);
  assert.deepEqual(holmAdjust([0.9, 0.01]), [0.9, 0.02]);
});

test('bootstrap p-value agrees with the percentile interval and counts sides', () => {
  assert.equal(bootstrapPValue([1, 2, 3, 4]), 0);
  close(bootstrapPValue([-1, 1, 2, 3]), 0.5, 1e-12);
  close(bootstrapPValue([-1, 0, 1, 2]), 2 * 1.5 / 4, 1e-12);
  assert.ok(Number.isNaN(bootstrapPValue([NaN])));
  const rng = makeRng(4);
  const reps = Array.from({ length: 4000 }, () => 0.1 + 0.05 * normalQuantile(rng()));
  const { lo } = percentileInterval(reps);
  assert.ok(lo > 0 && bootstrapPValue(reps) < 0.05);
  // The generic bootstrap and bootstrapMean agree on a mean (one function, one return shape).
  const xs = [0.1, 0.5, 0.2, 0.9, 0.4];
  assert.deepEqual(bootstrap(xs, mean, { seed: 3 }), bootstrapMean(xs, { seed: 3 }));
  assert.equal(ci({ value: 1, lo: 0.5, hi: 1.5 }), '[0.500, 1.500]');
  assert.equal(signed(-0.25), '−0.250');
});

test('Student t quantiles match tables; large df approaches the normal', () => {
  // scipy.stats.t.ppf(0.975, df): 12.706204736174706 (1), 4.302652729749464 (2), 2.2621571628540993 (9)
  close(studentTQuantile(0.975, 1), 12.706204736174707, 1e-8);
  close(studentTQuantile(0.975, 2), 4.302652729749464, 1e-8);
  close(studentTQuantile(0.975, 9), 2.2621571628540993, 1e-8);
  close(studentTQuantile(0.025, 9), -2.2621571628540993, 1e-8);
  close(studentTQuantile(0.975, 1e6), normalQuantile(0.975), 1e-5);
  // Huge but finite df (a Welch–Satterthwaite estimate when one variance part vanishes) is the normal, not garbage:
  // the incomplete beta once gave t_0.975 = 5,792 at df 4e23 and 0.25 at 1e15.
  for (const df of [1e7, 1e9, 1e12, 1e15, 1e20, 4e23, Number.MAX_VALUE]) {
    close(studentTQuantile(0.975, df), normalQuantile(0.975), 1e-6, `quantile at df ${df}`);
    close(studentTCdf(1.959963984540054, df), 0.975, 1e-6, `cdf at df ${df}`);
  }
  // t with 1 df is Cauchy: P(T ≤ t) = ½ + atan(t)/π.
  close(studentTCdf(3, 1), 0.5 + Math.atan(3) / Math.PI, 1e-12);
});

test('far tails stay numbers: the t CDF at a huge statistic is 1, not NaN', () => {
  for (const df of [2, 30, 1e4, 1e9]) close(studentTCdf(1e8, df), 1, 1e-12, `df ${df}`);
  close(studentTCdf(-1e8, 50), 0, 1e-12);
  // df = ∞ is the normal: Φ(1.959963984540054) = 0.975, Φ(−1) = 0.15865525393145707 (scipy.stats.norm.cdf).
  close(studentTCdf(1.959963984540054, Infinity), 0.975, 1e-7);
  close(normalCdf(-1), 0.15865525393145707, 1e-7);
  close(studentTCdf(1e8, Infinity), 1, 1e-12);
});
