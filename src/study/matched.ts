// Reward at matched KL, cross-fitted, with a bootstrap over seeds and held-out prompts.
//
// Semantics (the same for the point estimate and every bootstrap replicate): a seed's reward at KL budget k is
// that of its best candidate (the base, or any checkpoint of any setting) with KL ≤ k. Taking the best of many
// noisy checkpoints and then reporting its measured reward overstates it (the winner's curse), and more so
// for a method with more checkpoints. So the choice and the estimate use different prompts (cross-fitting):
// the held-out prompts are split into halves A (even index) and B (odd index); the checkpoint chosen on A is
// scored on B and the one chosen on B is scored on A, and the seed's value is the mean of the two scores.
// Each score is then an unbiased estimate of a checkpoint chosen without looking at it.
//
// The bootstrap repeats exactly that computation on resampled data. Each iteration
//   1. draws prompt indices with replacement (the SAME draw for every method, seed, checkpoint and the base:
//      all were evaluated on the same prompts, so comparisons are paired); a drawn prompt stays in its half;
//   2. recomputes every checkpoint's KL (from its per-prompt KLs: KL error is in the interval) and its reward
//      on each half;
//   3. redoes the cross-fitted choice at each budget, per seed;
//   4. draws each method's seeds with replacement and averages them.
// Prompts and seeds are crossed (every seed sees every prompt). Resampling both at once (the "pigeonhole"
// bootstrap, Owen 2007) counts the seed × prompt noise twice, and a bootstrap over 2–5 seeds understates the
// seed-to-seed part. So the replicates are used to estimate variance components (seed, prompt, seed × prompt:
// see `components`), and the interval is point ± t·√V with Welch–Satterthwaite degrees of freedom (`corrected`).
// test/study/hierarchical.test.ts measures its coverage on synthetic studies with known answers.
// Without per-prompt rewards (older results) there are no halves: the choice is the plain best checkpoint
// (selection bias not corrected, and said so) and only seeds are resampled.

import { finite, holmAdjust, makeRng, mean, studentTCdf, studentTQuantile, type BootstrapOptions, type DiffInterval, type Interval } from '../stats/index.js';
import { seedCandidates, type FrontierPoint } from './frontier.js';
import type { Checkpoint, Method, Run } from './types.js';
import { METHOD_LABELS } from './types.js';

/** Metrics carried by checkpoints and reported at matched KL (of the checkpoints chosen there). */
export const CURVE_METRICS = ['reward', 'entropy', 'distinct1', 'distinct2', 'length', 'perplexity', 'winRate', 'eosRate', 'fluency'] as const;
export type CurveMetric = (typeof CURVE_METRICS)[number];
export type Metrics = Record<CurveMetric, number>;

const metricOf = (c: Checkpoint, m: CurveMetric): number => {
  const v = c[m];
  return typeof v === 'number' ? v : NaN;
};

export interface MatchedPoint {
  kl: number;
  /** Mean over seeds of the cross-fitted reward at this budget, with its CI; n = seeds. */
  reward: Interval;
  /** Held-out prompts the CI resamples; 0 when it resamples seeds only (no per-prompt rewards). */
  prompts: number;
  /** True when choice and estimate used different halves of the prompts. */
  crossFit: boolean;
  /** Per seed: its value and the checkpoints chosen (on half A, on half B; one id without cross-fitting). */
  perSeed: { seed: number; reward: number; chosen: string[] }[];
  /** Means over seeds of each metric of the chosen checkpoints (the two halves' choices averaged). */
  metrics: Metrics;
  /** This point minus the base policy's reward, with its paired CI: did the method improve on the base here? */
  gain: DiffInterval;
}

export interface MatchedOptions {
  base?: Checkpoint;
  bootstrap?: BootstrapOptions;
}

interface RewardPoint {
  promptRewards?: readonly number[];
  promptKls?: readonly number[];
}

/**
 * The number of held-out prompts every point carries per-prompt rewards for, or 0 when any point lacks them or
 * their counts disagree: prompt resampling and cross-fitting need the same prompts everywhere.
 */
export function promptCount(curves: Iterable<readonly RewardPoint[]>, key: 'promptRewards' | 'promptKls' = 'promptRewards'): number {
  let p = -1;
  for (const c of curves) {
    for (const pt of c) {
      const n = pt[key]?.length ?? 0;
      if (n < 2 || (p >= 0 && n !== p)) return 0;
      p = n;
    }
  }
  return Math.max(p, 0);
}

/** A decorrelated PRNG stream per use: prompts, and each method's seed draws (so adding a method changes nobody else's draws). */
function stream(seed: number, k: number): () => number {
  return makeRng((seed ^ Math.imul(k + 1, 0x9e3779b9)) >>> 0);
}

const METHODS_ORDER = Object.keys(METHOD_LABELS) as Method[];

/** Per candidate under one prompt weighting: KL, and reward on half A, half B and all prompts. */
interface Scored {
  kl: Float64Array;
  rA: Float64Array;
  rB: Float64Array;
}

/** Score candidates under prompt counts (all ones = as measured). P = 0: rewards and KLs as recorded. */
function scoreCandidates(cands: readonly FrontierPoint[], counts: Int32Array, P: number, withKl: boolean): Scored {
  const n = cands.length;
  const out: Scored = { kl: new Float64Array(n), rA: new Float64Array(n), rB: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const c = cands[i]!;
    if (P === 0) {
      out.kl[i] = c.kl;
      out.rA[i] = out.rB[i] = c.reward;
      continue;
    }
    const r = c.promptRewards!, k = c.promptKls;
    let sA = 0, cA = 0, sB = 0, cB = 0, sK = 0, cK = 0;
    for (let p = 0; p < P; p++) {
      const w = counts[p]!;
      if (w === 0) continue;
      const x = r[p]!;
      if (Number.isFinite(x)) {
        if (p % 2 === 0) {
          sA += w * x;
          cA += w;
        } else {
          sB += w * x;
          cB += w;
        }
      }
      if (withKl) {
        const y = k![p]!;
        if (Number.isFinite(y)) {
          sK += w * y;
          cK += w;
        }
      }
    }
    out.rA[i] = cA > 0 ? sA / cA : NaN;
    out.rB[i] = cB > 0 ? sB / cB : NaN;
    out.kl[i] = withKl ? (cK > 0 ? sK / cK : NaN) : c.kl;
  }
  return out;
}

/** The cross-fitted value at budget k and the indices chosen on A and on B (the same index twice without halves). */
function choose(s: Scored, k: number): { value: number; a: number; b: number } {
  let a = -1, b = -1;
  for (let i = 0; i < s.kl.length; i++) {
    if (!(s.kl[i]! <= k)) continue;
    // Strict ">" keeps the earlier candidate at a tie, and the base comes first: ties go to not training.
    if (Number.isFinite(s.rA[i]!) && (a < 0 || s.rA[i]! > s.rA[a]!)) a = i;
    if (Number.isFinite(s.rB[i]!) && (b < 0 || s.rB[i]! > s.rB[b]!)) b = i;
  }
  if (a < 0 || b < 0) return { value: NaN, a, b };
  return { value: 0.5 * (s.rB[a]! + s.rA[b]!), a, b };
}

interface MethodData {
  method: Method;
  seeds: number[];
  cands: FrontierPoint[][];
}

/** Point estimates and, per method and KL, `iters` bootstrap replicates of the mean over seeds; and the base's replicates. */
export interface MatchedBootstrap {
  prompts: number;
  crossFit: boolean;
  points: MatchedPoint[][];
  reps: Replicates[][];
  base: { value: number; reps: Float64Array };
}

/**
 * Reward at each KL for a group of methods, bootstrapped together: the prompt draws are shared by the group
 * and the base (paired), the seed draws are each method's own.
 */
export function matchedBootstrap(runs: readonly Run[], methods: readonly Method[], kls: readonly number[], opts: MatchedOptions): MatchedBootstrap {
  const { iters = 2000, seed = 1, level = 0.95 } = opts.bootstrap ?? {};
  const ms: MethodData[] = methods.map((m) => {
    const c = seedCandidates(runs, m, opts.base);
    return { method: m, seeds: [...c.keys()], cands: [...c.values()] };
  });
  const all = ms.flatMap((m) => m.cands);
  const P0 = promptCount(all);
  // Cross-fitting needs both halves to hold prompts; with fewer than 4 prompts fall back to seeds only.
  const P = P0 >= 4 ? P0 : 0;
  const withKl = P > 0 && promptCount(all, 'promptKls') === P;
  const ones = new Int32Array(P).fill(1);
  const baseCand: FrontierPoint[] = opts.base && Number.isFinite(opts.base.reward) ? [{ ...opts.base, kl: 0, promptKls: opts.base.promptRewards?.map(() => 0), runId: 'base', seed: -1, setting: 'base' }] : [];
  const baseValue = (counts: Int32Array) => (baseCand.length ? choose(scoreCandidates(baseCand, counts, P, false), 0).value : NaN);

  // Point estimates: the same computation with every prompt counted once.
  const measured = ms.map((m) => m.cands.map((c) => scoreCandidates(c, ones, P, withKl)));
  const base0 = baseValue(ones);
  const points = ms.map((m, mi) =>
    kls.map((kl): MatchedPoint => {
      const perSeed: MatchedPoint['perSeed'] = [];
      const chosenMetrics: Metrics[] = [];
      m.cands.forEach((cands, si) => {
        const ch = choose(measured[mi]![si]!, kl);
        if (!Number.isFinite(ch.value)) return;
        const pa = cands[ch.a]!, pb = cands[ch.b]!;
        const id = (p: FrontierPoint) => (p.runId === 'base' ? 'base' : `${p.runId}@${p.step}`);
        perSeed.push({ seed: m.seeds[si]!, reward: ch.value, chosen: P > 0 ? [id(pa), id(pb)] : [id(pa)] });
        const mt = {} as Metrics;
        for (const k of CURVE_METRICS) mt[k] = k === 'reward' ? ch.value : 0.5 * (metricOf(pa, k) + metricOf(pb, k));
        chosenMetrics.push(mt);
      });
      const metrics = {} as Metrics;
      for (const k of CURVE_METRICS) metrics[k] = mean(finite(chosenMetrics.map((v) => v[k])));
      const n = perSeed.length;
      const r = mean(perSeed.map((p) => p.reward));
      const none: DiffInterval = { value: mean(perSeed.map((p) => p.reward - base0)), lo: NaN, hi: NaN, n, nA: n, nB: 1, p: NaN, prompts: P, tested: false, significant: false };
      return { kl, reward: { value: r, lo: NaN, hi: NaN, n }, prompts: P, crossFit: P > 0, perSeed, metrics, gain: none };
    }),
  );

  // Replicates: per method and KL, the statistic with seeds and prompts resampled ("both"), and the parts the
  // variance correction needs (see Components).
  const promptRng = stream(seed, 0);
  const seedRngs = ms.map((m) => stream(seed, 1 + METHODS_ORDER.indexOf(m.method)));
  const counts = new Int32Array(P);
  const reps = ms.map((m) => kls.map(() => newReplicates(iters, m.seeds.length)));
  // Gains over the base are averaged per seed (value − base), so a method that always keeps the base gains exactly 0.
  const gainReps = ms.map((m) => kls.map(() => newReplicates(iters, m.seeds.length)));
  const baseReps = new Float64Array(iters);
  const u: number[][] = ms.map((m) => new Array<number>(m.seeds.length));
  const fixedValues = measured.map((sc) => kls.map((kl) => sc.map((x) => choose(x, kl).value)));
  for (let it = 0; it < iters; it++) {
    if (P > 0) {
      counts.fill(0);
      for (let j = 0; j < P; j++) counts[Math.floor(promptRng() * P)]!++;
    }
    baseReps[it] = baseValue(P > 0 ? counts : ones);
    ms.forEach((m, mi) => {
      // One uniform per seed slot, used for every KL: a KL's seed draw does not depend on which KLs were asked for.
      const um = u[mi]!;
      for (let j = 0; j < um.length; j++) um[j] = Math.floor(seedRngs[mi]!() * um.length);
      const scored = P > 0 ? m.cands.map((c) => scoreCandidates(c, counts, P, withKl)) : measured[mi]!;
      kls.forEach((kl, ki) => {
        const values = scored.map((x) => choose(x, kl).value);
        record(reps[mi]![ki]!, it, values, fixedValues[mi]![ki]!, um, 0, 0);
        record(gainReps[mi]![ki]!, it, values, fixedValues[mi]![ki]!, um, baseReps[it]!, base0);
      });
    });
  }

  points.forEach((ps, mi) =>
    ps.forEach((p, ki) => {
      if (p.reward.n === 0) return;
      const r = corrected([reps[mi]![ki]!], [], p.reward.value, level);
      p.reward.lo = r.lo;
      p.reward.hi = r.hi;
      const tested = p.reward.n >= 2 || (p.reward.n >= 1 && P > 0);
      const g = corrected([gainReps[mi]![ki]!], [], p.gain.value, level);
      p.gain = { ...p.gain, lo: g.lo, hi: g.hi, tested, p: tested ? g.p : NaN, significant: tested && (g.lo > 0 || g.hi < 0) };
    }),
  );
  return { prompts: P, crossFit: P > 0, points, reps, base: { value: base0, reps: baseReps } };
}

/**
 * Replicates of a mean over seeds, kept in the parts the variance correction needs:
 *   both       — seeds and prompts resampled (the pigeonhole bootstrap);
 *   seedOnly   — seeds resampled, prompts as measured;
 *   promptOnly — prompts resampled, every seed once;
 *   per-seed sums of squares over iterations of each seed's own prompt-resampled value (for W below).
 */
export interface Replicates {
  S: number;
  both: Float64Array;
  seedOnly: Float64Array;
  promptOnly: Float64Array;
  seedSum: Float64Array;
  seedSq: Float64Array;
  iters: number;
}

function newReplicates(iters: number, S: number): Replicates {
  return { S, both: new Float64Array(iters), seedOnly: new Float64Array(iters), promptOnly: new Float64Array(iters), seedSum: new Float64Array(S), seedSq: new Float64Array(S), iters };
}

/** Record one iteration: values are the seeds' values under this prompt draw, fixed their measured values, draw the seed indices. */
function record(r: Replicates, it: number, values: readonly number[], fixed: readonly number[], draw: readonly number[], minus: number, minus0: number): void {
  let b = 0, cb = 0, s = 0, cs = 0, q = 0, cq = 0;
  for (const j of draw) {
    const v = values[j]! - minus, f = fixed[j]! - minus0;
    if (Number.isFinite(v)) {
      b += v;
      cb++;
    }
    if (Number.isFinite(f)) {
      s += f;
      cs++;
    }
  }
  for (let j = 0; j < values.length; j++) {
    const v = values[j]! - minus;
    if (!Number.isFinite(v)) continue;
    q += v;
    cq++;
    r.seedSum[j] += v;
    r.seedSq[j] += v * v;
  }
  r.both[it] = cb > 0 ? b / cb : NaN;
  r.seedOnly[it] = cs > 0 ? s / cs : NaN;
  r.promptOnly[it] = cq > 0 ? q / cq : NaN;
}

function variance(xs: ArrayLike<number>): number {
  let s = 0, q = 0, n = 0;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    if (!Number.isFinite(x)) continue;
    s += x;
    q += x * x;
    n++;
  }
  return n > 1 ? Math.max(0, (q - (s * s) / n) / (n - 1)) : 0;
}

/**
 * Variance components of one group's mean over S seeds × P prompts, from its replicates (a crossed design:
 * y_sp = μ + a_s + b_p + e_sp). The pigeonhole bootstrap ("both") counts e twice and treats a with its
 * plug-in variance, which with 2–5 seeds is far too small; so the interval's width is set from the parts:
 *   Vs = var(seedOnly) ≈ (σa² + σe²/P)(S−1)/S²,  U = var(promptOnly) ≈ (σb² + σe²/S)/P,  W = mean over seeds of
 *   var(one seed's prompt-resampled value) ≈ (σb² + σe²)/P,
 *   so  e = σe²/(SP) = (W − U)/(S − 1),  a = σa²/S = Vs·S/(S−1) − e,  b = σb²/P = U − e.
 * With one seed only U is known (a and e cannot be told apart; the interval covers prompts only).
 */
interface Components {
  a: number;
  b: number;
  e: number;
  S: number;
  /** var of promptOnly (for combining groups' prompt parts, which are paired). */
  promptOnly: Float64Array;
}

function components(r: Replicates): Components {
  const { S } = r;
  const U = variance(r.promptOnly);
  if (S < 2) return { a: 0, b: U, e: 0, S, promptOnly: r.promptOnly };
  let W = 0, k = 0;
  for (let j = 0; j < S; j++) {
    const n = r.iters;
    const v = n > 1 ? Math.max(0, (r.seedSq[j]! - r.seedSum[j]! ** 2 / n) / (n - 1)) : 0;
    W += v;
    k++;
  }
  W /= k;
  const e = Math.max(0, (W - U) / (S - 1));
  const Vs = variance(r.seedOnly);
  // a may come out negative (σa ≈ 0 estimated from few seeds): it is kept signed so the sum over groups stays
  // unbiased, and only the total seed part is floored at 0 (corrected()).
  return { a: (Vs * S) / (S - 1) - e, b: Math.max(0, U - e), e, S, promptOnly: r.promptOnly };
}

/**
 * The interval of (Σ plus groups) − (Σ minus groups) at `point`: point ± t_ν·√V, where V is the corrected
 * variance (the groups' seed parts a, their interaction parts e, and the prompt part of the combination, which is
 * paired across groups: var of its prompt-only replicates minus the e it contains) and ν its Welch–Satterthwaite
 * degrees of freedom: each a is estimated from S − 1 seeds, the prompt parts from hundreds of prompts (taken as
 * ∞). With seed spread negligible this is a normal interval; with seed spread dominant it is a t interval over
 * seeds — wide with 2 or 3 seeds, as it should be. The p-value is the same t test.
 */
function corrected(plus: readonly Replicates[], minus: readonly Replicates[], point: number, level: number): { lo: number; hi: number; p: number; df: number } {
  const groups = [...plus, ...minus];
  const its = groups[0]!.iters;
  const prompt = new Float64Array(its);
  for (let i = 0; i < its; i++) {
    let q = 0;
    for (const g of plus) q += g.promptOnly[i]!;
    for (const g of minus) q -= g.promptOnly[i]!;
    prompt[i] = q;
  }
  const cs = groups.map(components);
  const e = cs.reduce((s, c) => s + c.e, 0);
  const a = Math.max(0, cs.reduce((s, c) => s + c.a, 0));
  const V = a + Math.max(0, variance(prompt) - e) + e;
  const den = cs.reduce((s, c) => s + (c.S >= 2 && c.a > 0 ? c.a ** 2 / (c.S - 1) : 0), 0);
  // Welch–Satterthwaite ν is at least the smallest S − 1 among the seed parts (it also guards underflow at V ≈ 0).
  const minDf = Math.min(...cs.filter((c) => c.S >= 2 && c.a > 0).map((c) => c.S - 1));
  const df = den > 0 ? Math.max(minDf, (V / Math.sqrt(den)) ** 2) : Infinity;
  if (!(V > 0) || !Number.isFinite(point)) return { lo: point, hi: point, p: Number.isFinite(point) && point !== 0 ? 0 : 1, df };
  const half = studentTQuantile(1 - (1 - level) / 2, df) * Math.sqrt(V);
  const t = Math.abs(point) / Math.sqrt(V);
  return { lo: point - half, hi: point + half, p: Math.min(1, 2 * (1 - studentTCdf(t, df))), df };
}


/** Reward and other metrics of a method at each KL budget (see the header for what the CI resamples). */
export function rewardAtMatchedKl(runs: readonly Run[], method: Method, kls: readonly number[], opts: MatchedOptions = {}): MatchedPoint[] {
  return matchedBootstrap(runs, [method], kls, opts).points[0]!;
}

export interface Comparison {
  a: Method;
  b: Method;
  kl: number;
  aReward: Interval;
  bReward: Interval;
  /** mean(a) − mean(b) with its bootstrap CI and p-value (this budget alone). */
  diff: DiffInterval;
  /** Holm-adjusted p-value over the budgets compared together (NaN when not tested). */
  pHolm: number;
  /** The higher method when this budget's CI excludes 0 (the test for a budget fixed in advance); else null. */
  winner: Method | null;
  /** The higher method when the Holm-adjusted p < 1 − level (the test when reading many budgets); else null. */
  holmWinner: Method | null;
}

/**
 * Compare two methods at each KL budget; the prompt draws are shared by the two methods (a paired comparison).
 * The p-values are Holm-adjusted across the budgets passed together.
 */
export function compareAtKls(runs: readonly Run[], a: Method, b: Method, kls: readonly number[], opts: MatchedOptions = {}): Comparison[] {
  const level = opts.bootstrap?.level ?? 0.95;
  const { prompts, points, reps } = matchedBootstrap(runs, [a, b], kls, opts);
  const raw = kls.map((kl, ki) => {
    const pa = points[0]![ki]!, pb = points[1]![ki]!;
    const nA = pa.reward.n, nB = pb.reward.n, n = Math.min(nA, nB);
    const tested = n >= 2 || (n >= 1 && prompts > 0);
    let lo = NaN, hi = NaN, p = NaN;
    if (n > 0) {
      const value = pa.reward.value - pb.reward.value;
      const c = corrected([reps[0]![ki]!], [reps[1]![ki]!], value, level);
      ({ lo, hi } = c);
      if (tested) p = c.p;
    }
    // A degenerate interval (one seed each, nothing else resampled) is a point: it says nothing about significance.
    const significant = tested && (lo > 0 || hi < 0);
    const diff: DiffInterval = { value: pa.reward.value - pb.reward.value, lo, hi, n, nA, nB, p, prompts: n > 0 ? prompts : 0, tested, significant };
    return { a, b, kl, aReward: pa.reward, bReward: pb.reward, diff };
  });
  const adj = holmAdjust(raw.map((c) => c.diff.p));
  return raw.map((c, i) => {
    const up = c.diff.value > 0 ? a : b;
    return { ...c, pHolm: adj[i]!, winner: c.diff.significant ? up : null, holmWinner: c.diff.tested && adj[i]! < 1 - level ? up : null };
  });
}

/** Compare two methods' reward at one KL budget. */
export function compareAtKl(runs: readonly Run[], a: Method, b: Method, kl: number, opts: MatchedOptions = {}): Comparison {
  return compareAtKls(runs, a, b, [kl], opts)[0]!;
}
