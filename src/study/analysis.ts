// Turns run results into the study's numbers: reward-vs-KL frontiers, reward at matched KL with bootstrap
// confidence intervals over seeds and held-out prompts, method comparisons, stability, cost and complexity.
// Pure functions over plain data (no engine import): fast, deterministic (seeded bootstrap), unit-testable.

import { Rng } from '../engine/rng.js';
import type { Checkpoint, Complexity, Method, Prerequisite, Run, StudyResults } from './types.js';
import { METHOD_LABELS, settingLabel } from './types.js';

// ---- small statistics ---------------------------------------------------------------------

/** A seeded uniform generator in [0, 1): the project's mulberry32 (engine/rng.ts, which loads no tensors). */
export function makeRng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation (n − 1); 0 for a single value, NaN for none. */
export function std(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  if (xs.length === 1) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

/** Quantile of sorted values with linear interpolation between order statistics (R type 7, numpy default). */
export function quantileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h), hi = Math.ceil(h);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/** A point estimate with a confidence interval; n is the number of independent units (seeds). */
export interface Interval {
  mean: number;
  lo: number;
  hi: number;
  n: number;
}

export interface BootstrapOptions {
  /** Resamples (default 2000). */
  iters?: number;
  /** Confidence level (default 0.95). */
  level?: number;
  /** PRNG seed (default 1): the same inputs always give the same interval. */
  seed?: number;
}

const finite = (xs: readonly number[]) => xs.filter((x) => Number.isFinite(x));

function resampledMeans(xs: readonly number[], iters: number, rng: () => number): number[] {
  const out = new Array<number>(iters);
  const n = xs.length;
  for (let i = 0; i < iters; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += xs[Math.floor(rng() * n)]!;
    out[i] = s / n;
  }
  return out;
}

/**
 * Percentile bootstrap CI of the mean. With very few units (3 seeds) the percentile bootstrap is
 * optimistic (too narrow): the report prints n beside every interval so the reader can judge.
 */
export function bootstrapMean(values: readonly number[], opts: BootstrapOptions = {}): Interval {
  const xs = finite(values);
  const { iters = 2000, level = 0.95, seed = 1 } = opts;
  if (xs.length === 0) return { mean: NaN, lo: NaN, hi: NaN, n: 0 };
  const m = mean(xs);
  if (xs.length === 1) return { mean: m, lo: m, hi: m, n: 1 };
  const bs = resampledMeans(xs, iters, makeRng(seed)).sort((a, b) => a - b);
  const a = (1 - level) / 2;
  return { mean: m, lo: quantileSorted(bs, a), hi: quantileSorted(bs, 1 - a), n: xs.length };
}

export interface DiffInterval extends Interval {
  /** The interval resampled something (≥ 2 seeds of each method, or held-out prompts) and excludes 0. */
  significant: boolean;
  /**
   * False when the interval is a point by construction (one seed of a method and no per-prompt rewards):
   * there was nothing to resample, so no test was made and `significant` is false whatever the numbers.
   */
  tested: boolean;
  nA: number;
  nB: number;
  /** Held-out prompts resampled (paired across the two methods); 0 for a seeds-only interval. */
  prompts: number;
}

/** Bootstrap CI of mean(a) − mean(b), resampling the two groups independently (different seeds are independent runs). */
export function bootstrapDiff(a: readonly number[], b: readonly number[], opts: BootstrapOptions = {}): DiffInterval {
  const xa = finite(a), xb = finite(b);
  const { iters = 2000, level = 0.95, seed = 1 } = opts;
  if (xa.length === 0 || xb.length === 0) return { mean: NaN, lo: NaN, hi: NaN, n: 0, nA: xa.length, nB: xb.length, prompts: 0, tested: false, significant: false };
  const rng = makeRng(seed);
  const ma = resampledMeans(xa, iters, rng), mb = resampledMeans(xb, iters, rng);
  const d = ma.map((x, i) => x - mb[i]!).sort((p, q) => p - q);
  const al = (1 - level) / 2;
  const lo = quantileSorted(d, al), hi = quantileSorted(d, 1 - al);
  // With one value in a group its spread is unknown: the interval would only show the other group's.
  const tested = Math.min(xa.length, xb.length) >= 2;
  return { mean: mean(xa) - mean(xb), lo, hi, n: Math.min(xa.length, xb.length), nA: xa.length, nB: xb.length, prompts: 0, tested, significant: tested && (lo > 0 || hi < 0) };
}

/** log Γ(x) for x > 0: shift up to x ≥ 15 by Γ(x+1) = xΓ(x), then Stirling's series (error < 1e-13). */
export function logGamma(x: number): number {
  let shift = 0;
  while (x < 15) {
    shift += Math.log(x);
    x += 1;
  }
  const x2 = x * x;
  const series = (1 / 12 - (1 / 360 - (1 / 1260 - 1 / (1680 * x2)) / x2) / x2) / x;
  return (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) + series - shift;
}

/** Regularized incomplete beta I_x(a, b) by its continued fraction (modified Lentz, as in Numerical Recipes). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  // The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry I_x(a,b) = 1 − I_{1−x}(b,a) otherwise.
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const front = Math.exp(a * Math.log(x) + b * Math.log(1 - x) - (logGamma(a) + logGamma(b) - logGamma(a + b))) / a;
  const tiny = 1e-300;
  let f = 1, c = 1, d = 0;
  for (let i = 0; i <= 400; i++) {
    const m = Math.floor(i / 2);
    const num = i === 0 ? 1 : i % 2 === 0 ? (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)) : -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    d = 1 / d;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    const cd = c * d;
    f *= cd;
    if (Math.abs(1 - cd) < 1e-14) break;
  }
  return front * (f - 1);
}

/** P(F ≤ f) for an F distribution with (d1, d2) degrees of freedom. */
export function fCdf(f: number, d1: number, d2: number): number {
  return f <= 0 ? 0 : incompleteBeta((d1 * f) / (d1 * f + d2), d1 / 2, d2 / 2);
}

/**
 * Two-sided F test that two variances are equal (var1 with df1 degrees of freedom, var2 with df2).
 * Used for seed-to-seed spread: with a handful of seeds, a 2× ratio of standard deviations is often chance.
 */
export function varianceRatioPValue(var1: number, df1: number, var2: number, df2: number): number {
  if (!(df1 > 0 && df2 > 0) || !(var1 >= 0 && var2 >= 0)) return NaN;
  if (var1 === 0 && var2 === 0) return 1;
  if (var2 === 0 || var1 === 0) return 0;
  const p = fCdf(var1 / var2, df1, df2);
  return Math.min(1, 2 * Math.min(p, 1 - p));
}

// ---- frontier and interpolation ------------------------------------------------------------

export interface KlPoint {
  kl: number;
  reward: number;
}

/**
 * The upper-left Pareto frontier of reward vs KL: the points no other point beats on both axes
 * (higher-or-equal reward at lower-or-equal KL). Returned sorted by KL; reward strictly increases along it.
 * Points with a non-finite KL or reward are ignored.
 */
export function paretoFrontier<P extends KlPoint>(points: readonly P[]): P[] {
  const ps = points.filter((p) => Number.isFinite(p.kl) && Number.isFinite(p.reward));
  // Sort by KL, and at equal KL the best reward first, so one sweep keeps each new reward record.
  ps.sort((a, b) => a.kl - b.kl || b.reward - a.reward);
  const out: P[] = [];
  let best = -Infinity;
  for (const p of ps) {
    if (p.reward > best) {
      out.push(p);
      best = p.reward;
    }
  }
  return out;
}

/** Metrics carried along a frontier and interpolated at matched KL. */
export const CURVE_METRICS = ['reward', 'entropy', 'distinct1', 'distinct2', 'length', 'perplexity', 'winRate'] as const;
export type CurveMetric = (typeof CURVE_METRICS)[number];
export type Metrics = Record<CurveMetric, number>;

/**
 * Linear interpolation along a frontier (sorted by KL) at `kl`. Every metric is interpolated with the same
 * weight as reward, so "entropy at matched KL" means the entropy of the same interpolated point.
 * Returns null outside the frontier's KL range: a seed that never reached this KL has no value (no extrapolation).
 */
export function interpolateAt(frontier: readonly (KlPoint & Partial<Metrics>)[], kl: number): Metrics | null {
  if (frontier.length === 0 || !(kl >= frontier[0]!.kl) || !(kl <= frontier.at(-1)!.kl)) return null;
  let i = 0;
  while (i < frontier.length - 1 && frontier[i + 1]!.kl < kl) i++;
  const p = frontier[i]!, q = frontier[Math.min(i + 1, frontier.length - 1)]!;
  const t = q.kl > p.kl ? (kl - p.kl) / (q.kl - p.kl) : 0;
  const out = {} as Metrics;
  for (const m of CURVE_METRICS) {
    const a = p[m] ?? NaN, b = q[m] ?? NaN;
    out[m] = t === 0 ? a : t === 1 ? b : a + t * (b - a);
  }
  return out;
}

/** The base policy as a frontier anchor: KL 0 by definition, whatever its sampled estimate says. */
function anchor(base: Checkpoint | undefined): Checkpoint[] {
  return base && Number.isFinite(base.reward) ? [{ ...base, kl: 0 }] : [];
}

export interface FrontierPoint extends Checkpoint {
  runId: string;
  seed: number;
  setting: string;
}

function pointsOf(runs: readonly Run[]): FrontierPoint[] {
  return runs.flatMap((r) => r.checkpoints.map((c) => ({ ...c, runId: r.id, seed: r.seed, setting: settingLabel(r.setting) })));
}

/** A method's frontier over all checkpoints of all its runs (all settings, all seeds), optionally anchored at the base. */
export function methodFrontier(runs: readonly Run[], method: Method, base?: Checkpoint): FrontierPoint[] {
  const pts = pointsOf(runs.filter((r) => r.method === method));
  const a = anchor(base).map((c) => ({ ...c, runId: 'base', seed: -1, setting: 'base' }));
  return paretoFrontier([...a, ...pts]);
}

/**
 * One frontier per seed: each seed's reward-vs-KL curve is the frontier over its checkpoints across all
 * settings of the method (a sweep over β or the KL coefficient traces out the curve), anchored at the base.
 * Note: a frontier is an upper envelope of noisy estimates, so it is biased upward a little; the bias is
 * alike for methods evaluated with the same number of checkpoints and prompts.
 */
export function seedFrontiers(runs: readonly Run[], method: Method, base?: Checkpoint): Map<number, FrontierPoint[]> {
  const bySeed = new Map<number, Run[]>();
  for (const r of runs) if (r.method === method) bySeed.set(r.seed, [...(bySeed.get(r.seed) ?? []), r]);
  const out = new Map<number, FrontierPoint[]>();
  const a = anchor(base);
  for (const [seed, rs] of [...bySeed].sort((x, y) => x[0] - y[0])) {
    const pts = pointsOf(rs).filter((p) => Number.isFinite(p.kl) && Number.isFinite(p.reward));
    // A seed with no evaluated checkpoint yet (a run just started) has no curve; one whose checkpoints all
    // fall below the base keeps the base point alone: it never improved, and that counts.
    if (pts.length === 0) continue;
    out.set(seed, paretoFrontier([...a.map((c) => ({ ...c, runId: 'base', seed, setting: 'base' })), ...pts]));
  }
  return out;
}

/** The KL range every curve covers: [max of the minima, min of the maxima]; null when they do not overlap. */
export function commonKlRange(curves: readonly (readonly KlPoint[])[]): { lo: number; hi: number } | null {
  const cs = curves.filter((c) => c.length > 0);
  if (cs.length === 0) return null;
  const lo = Math.max(...cs.map((c) => Math.min(...c.map((p) => p.kl))));
  const hi = Math.min(...cs.map((c) => Math.max(...c.map((p) => p.kl))));
  return hi > lo ? { lo, hi } : null;
}

/** n evenly spaced KL values in (lo, hi]: the low end is the shared anchor, where every method equals the base. */
export function klGrid(lo: number, hi: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => lo + ((hi - lo) * (i + 1)) / n);
}

// ---- reward at matched KL: a two-level bootstrap over seeds and held-out prompts -------------
//
// Two sources of noise sit in a "reward at KL k" number: which seeds were run (training randomness) and
// which held-out prompts were sampled to evaluate them. At this scale (a handful of seeds, 64 prompts)
// the second often dominates, and a bootstrap over seeds alone misses it entirely: with one seed it has
// nothing to resample. So each bootstrap iteration
//   1. draws prompt indices with replacement (the SAME indices for every method, seed and checkpoint,
//      base included: all were evaluated on the same prompts, so the comparison is paired);
//   2. recomputes every checkpoint's mean reward over those prompts (its KL stays as measured);
//   3. re-extracts each seed's frontier and reads it at the matched KL;
//   4. draws each method's seeds with replacement and averages them;
// and the interval is the percentiles of those averages (or of their difference between two methods).
// Prompts and seeds are crossed here (every seed sees every prompt), so resampling both at once is the
// "pigeonhole" bootstrap (Owen 2007). It counts the seed × prompt noise more than once, so it errs wide,
// never narrow: in test/study/hierarchical.test.ts, with 3 seeds and almost no true seed effect its
// intervals are ~1.5× too wide (coverage ~1.0); they are near nominal once seeds really differ, and
// exactly calibrated with one seed (where they cover prompt sampling only).
// Without per-prompt rewards (older results) the same code resamples seeds only.

/** The reward of a point, readable with or without per-prompt rewards. */
interface RewardPoint {
  kl: number;
  reward: number;
  promptRewards?: readonly number[];
}

export interface MatchedPoint {
  kl: number;
  /** Mean over seeds, with its 95% CI; n is the number of seeds that reach this KL. */
  reward: Interval;
  /** Held-out prompts the CI resamples; 0 when it resamples seeds only (no per-prompt rewards). */
  prompts: number;
  perSeed: { seed: number; reward: number }[];
  /** Means across seeds of every interpolated metric. */
  metrics: Metrics;
}

export interface MatchedOptions {
  base?: Checkpoint;
  bootstrap?: BootstrapOptions;
}

/**
 * The number of held-out prompts every point of these curves carries rewards for, or 0 when any point lacks
 * them or their counts disagree: prompt resampling needs the same prompts everywhere, or it pairs nothing.
 */
export function promptCount(curves: Iterable<readonly RewardPoint[]>): number {
  let p = -1;
  for (const c of curves) {
    for (const pt of c) {
      const n = pt.promptRewards?.length ?? 0;
      if (n < 2 || (p >= 0 && n !== p)) return 0;
      p = n;
    }
  }
  return Math.max(p, 0);
}

/** Reward of a frontier at a KL budget: linear between frontier points, flat beyond the last one (its best point is still available). */
function rewardAtBudget(frontier: readonly KlPoint[], kl: number): number {
  const n = frontier.length;
  if (n === 0 || !(kl >= frontier[0]!.kl)) return NaN;
  if (kl >= frontier[n - 1]!.kl) return frontier[n - 1]!.reward;
  let i = 0;
  while (frontier[i + 1]!.kl < kl) i++;
  const p = frontier[i]!, q = frontier[i + 1]!;
  return q.kl > p.kl ? p.reward + ((kl - p.kl) / (q.kl - p.kl)) * (q.reward - p.reward) : q.reward;
}

/** Mean of the finite per-prompt rewards weighted by how often each prompt was drawn. */
function weightedPromptMean(r: readonly number[], counts: Int32Array): number {
  let s = 0, c = 0;
  for (let p = 0; p < counts.length; p++) {
    const k = counts[p]!;
    if (k === 0) continue;
    const x = r[p]!;
    if (Number.isFinite(x)) {
      s += k * x;
      c += k;
    }
  }
  return c > 0 ? s / c : NaN;
}

/** A decorrelated PRNG stream per use: prompts, and each method's seed draws (so adding a method changes nobody else's draws). */
function stream(seed: number, k: number): () => number {
  return makeRng((seed ^ Math.imul(k + 1, 0x9e3779b9)) >>> 0);
}

interface MethodCurves {
  method: Method;
  seeds: number[];
  /** Per seed: every finite point (base anchor included) from which its frontier is extracted. */
  points: RewardPoint[][];
  /** Per seed: the frontier on the measured rewards. */
  frontiers: FrontierPoint[][];
}

function methodCurves(runs: readonly Run[], method: Method, base?: Checkpoint): MethodCurves {
  const fr = seedFrontiers(runs, method, base);
  const seeds = [...fr.keys()];
  const a = anchor(base);
  const points = seeds.map((seed) => [...a, ...runs.filter((r) => r.method === method && r.seed === seed).flatMap((r) => r.checkpoints)].filter((c) => Number.isFinite(c.kl) && Number.isFinite(c.reward)));
  return { method, seeds, points, frontiers: seeds.map((s) => fr.get(s)!) };
}

/** The point estimates and, per method and KL, `iters` bootstrap replicates of the mean over seeds. */
interface MatchedBootstrap {
  prompts: number;
  points: MatchedPoint[][];
  reps: Float64Array[][];
}

/**
 * Reward at each KL for a group of methods, bootstrapped together: the prompt draws are shared by the
 * group (paired), the seed draws are each method's own. Prompts are resampled only when every point of
 * every method in the group (and the base anchor) carries per-prompt rewards for the same prompts.
 */
function matchedBootstrap(runs: readonly Run[], methods: readonly Method[], kls: readonly number[], opts: MatchedOptions): MatchedBootstrap {
  const { iters = 2000, seed = 1 } = opts.bootstrap ?? {};
  const level = opts.bootstrap?.level ?? 0.95;
  const ms = methods.map((m) => methodCurves(runs, m, opts.base));
  const P = promptCount(ms.flatMap((m) => m.points));

  // Point estimates, exactly as measured.
  const reach: number[][][] = []; // per method, per KL: indices of the seeds with a value there
  const points = ms.map((m, mi) => {
    reach[mi] = [];
    return kls.map((kl, ki) => {
      const perSeed: { seed: number; reward: number }[] = [];
      const vals: Metrics[] = [];
      const idx: number[] = [];
      m.frontiers.forEach((f, si) => {
        const v = interpolateAt(f, kl);
        if (v && Number.isFinite(v.reward)) {
          perSeed.push({ seed: m.seeds[si]!, reward: v.reward });
          vals.push(v);
          idx.push(si);
        }
      });
      reach[mi]![ki] = idx;
      const metrics = {} as Metrics;
      for (const k of CURVE_METRICS) metrics[k] = mean(finite(vals.map((v) => v[k])));
      const n = perSeed.length;
      const r = mean(perSeed.map((p) => p.reward));
      return { kl, reward: { mean: r, lo: n ? r : NaN, hi: n ? r : NaN, n }, prompts: P, perSeed, metrics };
    });
  });

  // Replicates. Without prompt resampling each seed's value at each KL is fixed: compute it once.
  const promptRng = stream(seed, 0);
  const seedRngs = ms.map((m) => stream(seed, 1 + METHODS_ORDER.indexOf(m.method)));
  const counts = new Int32Array(P);
  const fixed = ms.map((m) => m.frontiers.map((f) => kls.map((kl) => rewardAtBudget(f, kl))));
  const reps = ms.map(() => kls.map(() => new Float64Array(iters)));
  const u: number[][] = ms.map((m) => new Array<number>(m.seeds.length));
  for (let it = 0; it < iters; it++) {
    if (P > 0) {
      counts.fill(0);
      for (let j = 0; j < P; j++) counts[Math.floor(promptRng() * P)]!++;
    }
    ms.forEach((m, mi) => {
      // One uniform per seed slot, used for every KL: a KL's seed draw does not depend on which KLs were asked for.
      const um = u[mi]!;
      for (let j = 0; j < um.length; j++) um[j] = seedRngs[mi]!();
      const values = P > 0
        ? m.points.map((pts) => {
          const f = paretoFrontier(pts.map((c) => ({ kl: c.kl, reward: weightedPromptMean(c.promptRewards!, counts) })));
          return kls.map((kl) => rewardAtBudget(f, kl));
        })
        : fixed[mi]!;
      kls.forEach((_, ki) => {
        const idx = reach[mi]![ki]!;
        let s = 0, c = 0;
        for (let j = 0; j < idx.length; j++) {
          const v = values[idx[Math.floor(um[j]! * idx.length)]!]![ki]!;
          if (Number.isFinite(v)) {
            s += v;
            c++;
          }
        }
        reps[mi]![ki]![it] = c > 0 ? s / c : NaN;
      });
    });
  }

  const a = (1 - level) / 2;
  points.forEach((ps, mi) =>
    ps.forEach((p, ki) => {
      if (p.reward.n === 0) return;
      const sorted = finite([...reps[mi]![ki]!]).sort((x, y) => x - y);
      p.reward.lo = quantileSorted(sorted, a);
      p.reward.hi = quantileSorted(sorted, 1 - a);
    }),
  );
  return { prompts: P, points, reps };
}

const METHODS_ORDER = Object.keys(METHOD_LABELS) as Method[];

/**
 * Reward and other metrics of a method at each KL value. The reward's CI resamples seeds and, when every
 * checkpoint carries per-prompt rewards, the held-out prompts too (see above).
 */
export function rewardAtMatchedKl(runs: readonly Run[], method: Method, kls: readonly number[], opts: MatchedOptions = {}): MatchedPoint[] {
  return matchedBootstrap(runs, [method], kls, opts).points[0]!;
}

export interface Comparison {
  a: Method;
  b: Method;
  kl: number;
  aReward: Interval;
  bReward: Interval;
  /** mean(a) − mean(b) with its bootstrap CI. */
  diff: DiffInterval;
  /** The method with the higher reward when the CI excludes 0; null when there is no significant difference or no test. */
  winner: Method | null;
}

/** Compare two methods at each KL budget; the prompt draws are shared by the two methods (a paired comparison). */
export function compareAtKls(runs: readonly Run[], a: Method, b: Method, kls: readonly number[], opts: MatchedOptions = {}): Comparison[] {
  const level = opts.bootstrap?.level ?? 0.95;
  const { prompts, points, reps } = matchedBootstrap(runs, [a, b], kls, opts);
  return kls.map((kl, ki) => {
    const pa = points[0]![ki]!, pb = points[1]![ki]!;
    const nA = pa.reward.n, nB = pb.reward.n, n = Math.min(nA, nB);
    const tested = n >= 2 || (n >= 1 && prompts >= 2);
    let lo = NaN, hi = NaN;
    if (n > 0) {
      const ra = reps[0]![ki]!, rb = reps[1]![ki]!;
      const d = finite(Array.from(ra, (x, i) => x - rb[i]!)).sort((x, y) => x - y);
      const al = (1 - level) / 2;
      lo = quantileSorted(d, al);
      hi = quantileSorted(d, 1 - al);
    }
    // A degenerate interval (one seed each, nothing else resampled) is a point: it says nothing about significance.
    const significant = tested && (lo > 0 || hi < 0);
    const diff: DiffInterval = { mean: pa.reward.mean - pb.reward.mean, lo, hi, n, nA, nB, prompts: n > 0 ? prompts : 0, tested, significant };
    return { a, b, kl, aReward: pa.reward, bReward: pb.reward, diff, winner: significant ? (diff.mean > 0 ? a : b) : null };
  });
}

/** Compare two methods' reward at one KL budget. */
export function compareAtKl(runs: readonly Run[], a: Method, b: Method, kl: number, opts: MatchedOptions = {}): Comparison {
  return compareAtKls(runs, a, b, [kl], opts)[0]!;
}

/** What an interval resampled, in words: "3 seeds × 64 prompts", "64 prompts (1 seed)", "3 seeds", "nothing (1 seed)". */
export function resampledText(seeds: number | [number, number], prompts: number): string {
  const [sa, sb] = typeof seeds === 'number' ? [seeds, seeds] : seeds;
  const s = sa === sb ? `${sa} seed${sa === 1 ? '' : 's'}` : `${sa} and ${sb} seeds`;
  const nMin = Math.min(sa, sb);
  if (prompts > 0) return nMin >= 2 ? `${s} × ${prompts} prompts` : `${prompts} prompts (${s}: prompts only)`;
  return nMin >= 2 ? s : `nothing (${s}, no per-prompt rewards)`;
}

// ---- stability ------------------------------------------------------------------------------

export interface CollapseThresholds {
  /** Collapsed when entropy falls below this fraction of the base policy's (default 0.3). */
  entropyFraction?: number;
  /** Collapsed when distinct-1 or distinct-2 falls below this fraction of the base policy's (default 0.5). */
  distinctFraction?: number;
  /** Diverged when the sequence KL exceeds this many nats (default 50): the policy has left the reference entirely. */
  klMax?: number;
}

export interface RunHealth {
  status: 'ok' | 'diverged' | 'collapsed';
  step?: number;
  reason?: string;
}

/**
 * Find the first checkpoint where a run diverged (non-finite metrics, KL explosion) or collapsed
 * (entropy or distinct-n far below the base policy's: the degenerate "great great great" policy).
 */
export function detectCollapse(checkpoints: readonly Checkpoint[], base: Checkpoint, th: CollapseThresholds = {}): RunHealth {
  const { entropyFraction = 0.3, distinctFraction = 0.5, klMax = 50 } = th;
  for (const c of checkpoints) {
    if (!Number.isFinite(c.reward) || !Number.isFinite(c.kl)) return { status: 'diverged', step: c.step, reason: `non-finite ${!Number.isFinite(c.reward) ? 'reward' : 'KL'} at step ${c.step}` };
    if (c.kl > klMax) return { status: 'diverged', step: c.step, reason: `KL ${fmt(c.kl)} > ${klMax} nats at step ${c.step}` };
    if (Number.isFinite(base.entropy) && c.entropy < entropyFraction * base.entropy)
      return { status: 'collapsed', step: c.step, reason: `entropy ${fmt(c.entropy)} < ${entropyFraction} × base ${fmt(base.entropy)} at step ${c.step}` };
    for (const k of ['distinct1', 'distinct2'] as const) {
      if (Number.isFinite(base[k]) && c[k] < distinctFraction * base[k])
        return { status: 'collapsed', step: c.step, reason: `${k} ${fmt(c[k])} < ${distinctFraction} × base ${fmt(base[k])} at step ${c.step}` };
    }
  }
  return { status: 'ok' };
}

const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));

/** A run's health: the runner's verdict when it already flagged a failure, else the detector's. */
export function runHealth(run: Run, base: Checkpoint, th: CollapseThresholds = {}): RunHealth {
  if (run.status === 'diverged' || run.status === 'collapsed') return { status: run.status, reason: run.reason ?? `marked ${run.status} by the runner` };
  return detectCollapse(run.checkpoints, base, th);
}

/** The last checkpoint's reward (NaN when the run has none or it is not finite). */
export function finalReward(run: Run): number {
  const r = run.checkpoints.at(-1)?.reward;
  return r !== undefined && Number.isFinite(r) ? r : NaN;
}

export interface StabilitySummary {
  method: Method;
  /** Finished runs considered (status other than 'running'). */
  runs: number;
  collapsed: number;
  diverged: number;
  /** (collapsed + diverged) / runs. */
  failureRate: number;
  /** Seed-to-seed standard deviation of the final reward, pooled over settings (NaN without ≥ 2 seeds of a setting). */
  seedStd: number;
  /** Degrees of freedom of seedStd: Σ over settings of (seeds − 1). */
  seedDf: number;
  perSetting: { setting: string; n: number; mean: number; std: number }[];
  failures: { runId: string; status: 'diverged' | 'collapsed'; reason: string }[];
}

export function stabilitySummary(runs: readonly Run[], method: Method, base: Checkpoint, th: CollapseThresholds = {}): StabilitySummary {
  const rs = runs.filter((r) => r.method === method && r.status !== 'running');
  const failures: StabilitySummary['failures'] = [];
  for (const r of rs) {
    const h = runHealth(r, base, th);
    if (h.status !== 'ok') failures.push({ runId: r.id, status: h.status, reason: h.reason ?? '' });
  }
  const bySetting = new Map<string, number[]>();
  for (const r of rs) {
    const f = finalReward(r);
    if (Number.isFinite(f)) bySetting.set(settingLabel(r.setting), [...(bySetting.get(settingLabel(r.setting)) ?? []), f]);
  }
  const perSetting = [...bySetting].sort((a, b) => a[0].localeCompare(b[0])).map(([setting, xs]) => ({ setting, n: xs.length, mean: mean(xs), std: std(xs) }));
  // Pooled variance: Σ(n_i − 1)s_i² / Σ(n_i − 1), so settings with more seeds weigh more.
  let num = 0, den = 0;
  for (const s of perSetting) if (s.n >= 2) {
    num += (s.n - 1) * s.std ** 2;
    den += s.n - 1;
  }
  const collapsed = failures.filter((f) => f.status === 'collapsed').length;
  const diverged = failures.filter((f) => f.status === 'diverged').length;
  return {
    method,
    runs: rs.length,
    collapsed,
    diverged,
    failureRate: rs.length ? (collapsed + diverged) / rs.length : NaN,
    seedStd: den > 0 ? Math.sqrt(num / den) : NaN,
    seedDf: den,
    perSetting,
    failures,
  };
}

// ---- cost and complexity -----------------------------------------------------------------

export interface CostSummary {
  method: Method;
  runs: number;
  /** Wall time per run, with a bootstrap CI across runs. */
  wallSeconds: Interval;
  tokensProcessed: number;
  tokensPerSecond: number;
  /** Shares of wall time spent generating, in forward passes, in backward passes (means over runs). */
  generationShare: number;
  forwardShare: number;
  backwardShare: number;
  peakRssBytes: number;
  /** Seconds of prerequisites this method needs (reward model, preference sampling…), paid once per study. */
  prerequisiteSeconds: number;
  prerequisites: string[];
  /** Cost of one model of this method from scratch: mean run wall time + prerequisites. */
  oneModelSeconds: number;
}

export function costSummary(runs: readonly Run[], method: Method, prerequisites: readonly Prerequisite[] = [], opts: { bootstrap?: BootstrapOptions } = {}): CostSummary {
  const rs = runs.filter((r) => r.method === method && r.status !== 'running');
  const share = (f: (r: Run) => number) => mean(finite(rs.map((r) => (r.cost.wallSeconds > 0 ? f(r) / r.cost.wallSeconds : NaN))));
  const pre = prerequisites.filter((p) => p.usedBy.includes(method));
  const prerequisiteSeconds = pre.reduce((s, p) => s + p.cost.wallSeconds, 0);
  const wall = bootstrapMean(rs.map((r) => r.cost.wallSeconds), opts.bootstrap);
  const tokens = mean(rs.map((r) => r.cost.tokensProcessed));
  return {
    method,
    runs: rs.length,
    wallSeconds: wall,
    tokensProcessed: tokens,
    tokensPerSecond: mean(finite(rs.map((r) => (r.cost.wallSeconds > 0 ? r.cost.tokensProcessed / r.cost.wallSeconds : NaN)))),
    generationShare: share((r) => r.cost.generationSeconds),
    forwardShare: share((r) => r.cost.forwardSeconds),
    backwardShare: share((r) => r.cost.backwardSeconds),
    peakRssBytes: rs.length ? Math.max(...rs.map((r) => r.cost.peakRssBytes)) : NaN,
    prerequisiteSeconds,
    prerequisites: pre.map((p) => p.name),
    oneModelSeconds: wall.mean + prerequisiteSeconds,
  };
}

export interface ComplexitySummary extends Complexity {
  method: Method;
  /** False when runs of the method reported different numbers (the maximum is shown). */
  consistent: boolean;
}

export function complexitySummary(runs: readonly Run[], method: Method): ComplexitySummary {
  const cs = runs.filter((r) => r.method === method).map((r) => r.complexity);
  const max = (k: keyof Complexity) => (cs.length ? Math.max(...cs.map((c) => c[k])) : NaN);
  const consistent = cs.every((c) => c.modelsInMemory === cs[0]!.modelsInMemory && c.hyperparameters === cs[0]!.hyperparameters && c.lossLines === cs[0]!.lossLines);
  return { method, modelsInMemory: max('modelsInMemory'), hyperparameters: max('hyperparameters'), lossLines: max('lossLines'), consistent };
}

// ---- learning curves -----------------------------------------------------------------------

export interface CurvePoint {
  method: Method;
  setting: string;
  step: number;
  /** Mean reward over seeds at this step, its sample std, and mean ± std as the band. */
  mean: number;
  sd: number;
  lo: number;
  hi: number;
  n: number;
}

/** Reward vs step for each setting of a method: mean ± 1 sd over seeds at each evaluated step. */
export function learningCurves(runs: readonly Run[], method: Method): CurvePoint[] {
  const groups = new Map<string, Map<number, number[]>>();
  for (const r of runs) {
    if (r.method !== method) continue;
    const s = settingLabel(r.setting);
    const g = groups.get(s) ?? new Map<number, number[]>();
    groups.set(s, g);
    for (const c of r.checkpoints) if (Number.isFinite(c.reward)) g.set(c.step, [...(g.get(c.step) ?? []), c.reward]);
  }
  const out: CurvePoint[] = [];
  for (const [setting, g] of [...groups].sort((a, b) => a[0].localeCompare(b[0]))) {
    for (const [step, xs] of [...g].sort((a, b) => a[0] - b[0])) {
      const m = mean(xs), sd = std(xs);
      out.push({ method, setting, step, mean: m, sd, lo: m - sd, hi: m + sd, n: xs.length });
    }
  }
  return out;
}

// ---- the whole study -------------------------------------------------------------------------

export interface AnalysisOptions {
  /** Pairs to compare at matched KL (default: dpo vs ppo when both ran). */
  compare?: [Method, Method][];
  /** KL grid size (default 8). */
  gridPoints?: number;
  /** Force the headline KL budget (default: the top of the KL range all compared methods reach). */
  headlineKl?: number;
  bootstrap?: BootstrapOptions;
  thresholds?: CollapseThresholds;
}

export interface MethodAnalysis {
  method: Method;
  label: string;
  runs: number;
  seeds: number[];
  settings: string[];
  /** Frontier over all checkpoints of all runs, anchored at the base. */
  frontier: FrontierPoint[];
  /** Highest KL each seed's curve reaches, summarised across seeds. */
  maxKl: Interval;
  /** At each grid KL. */
  matched: MatchedPoint[];
  /** At the headline KL (null when there is none). */
  headline: MatchedPoint | null;
  stability: StabilitySummary;
  cost: CostSummary;
  complexity: ComplexitySummary;
  curves: CurvePoint[];
}

export interface StudyAnalysis {
  methods: Method[];
  byMethod: Partial<Record<Method, MethodAnalysis>>;
  base: Checkpoint;
  /** KL range all compared methods (every seed) reach; null when they do not overlap. */
  klRange: { lo: number; hi: number } | null;
  grid: number[];
  headlineKl: number | null;
  /** One per compared pair at the headline KL. */
  comparisons: Comparison[];
  /** One per compared pair at every grid KL. */
  gridComparisons: Comparison[];
  bootstrap: Required<BootstrapOptions>;
}

/** Everything the report and the recommendation need, from a study's results. */
export function analyzeStudy(study: StudyResults, opts: AnalysisOptions = {}): StudyAnalysis {
  const { runs, base } = study;
  const bootstrap: Required<BootstrapOptions> = { iters: 2000, level: 0.95, seed: 1, ...opts.bootstrap };
  const present = [...new Set(runs.map((r) => r.method))];
  const order = Object.keys(METHOD_LABELS) as Method[];
  const methods = order.filter((m) => present.includes(m));
  const pairs = opts.compare ?? (methods.includes('dpo') && methods.includes('ppo') ? ([['dpo', 'ppo']] as [Method, Method][]) : []);
  const compared = [...new Set(pairs.flat())].filter((m) => methods.includes(m));
  const rangeMethods = compared.length ? compared : methods.filter((m) => m !== 'base');
  const klRange = commonKlRange(rangeMethods.flatMap((m) => [...seedFrontiers(runs, m, base).values()]));
  const grid = klRange ? klGrid(klRange.lo, klRange.hi, opts.gridPoints ?? 8) : [];
  const headlineKl = opts.headlineKl ?? (klRange ? klRange.hi : null);
  const bopts = { base, bootstrap };
  const kls = headlineKl === null ? grid : [...grid, headlineKl];

  const byMethod: Partial<Record<Method, MethodAnalysis>> = {};
  for (const m of methods) {
    const rs = runs.filter((r) => r.method === m);
    const curves = seedFrontiers(runs, m, base);
    // Grid and headline in one bootstrap: the same draws, and the headline reads like the grid point at the same KL.
    const matched = rewardAtMatchedKl(runs, m, kls, bopts);
    byMethod[m] = {
      method: m,
      label: METHOD_LABELS[m],
      runs: rs.length,
      seeds: [...new Set(rs.map((r) => r.seed))].sort((a, b) => a - b),
      settings: [...new Set(rs.map((r) => settingLabel(r.setting)))].sort(),
      frontier: methodFrontier(runs, m, base),
      maxKl: bootstrapMean([...curves.values()].map((f) => Math.max(...f.map((p) => p.kl))), bootstrap),
      matched: matched.slice(0, grid.length),
      headline: headlineKl === null ? null : matched[grid.length]!,
      stability: stabilitySummary(runs, m, base, opts.thresholds),
      cost: costSummary(runs, m, study.prerequisites, { bootstrap }),
      complexity: complexitySummary(runs, m),
      curves: learningCurves(runs, m),
    };
  }
  const valid = pairs.filter(([a, b]) => methods.includes(a) && methods.includes(b));
  const cmps = valid.map(([a, b]) => compareAtKls(runs, a, b, kls, bopts));
  return {
    methods,
    byMethod,
    base,
    klRange,
    grid,
    headlineKl,
    comparisons: headlineKl === null ? [] : cmps.map((c) => c.at(-1)!),
    gridComparisons: cmps.flatMap((c) => c.slice(0, grid.length)),
    bootstrap,
  };
}
