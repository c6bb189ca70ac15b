// The percentile bootstrap, seeded with the project's PRNG (engine/rng.ts, no tensor import): one function,
// one return shape. Everything that reports a "95% CI" from resampling one level of units goes through
// `bootstrap`; designs it cannot express keep their replicates and read them with `percentileInterval` and
// `bootstrapPValue` (so interval and test agree), or, like the study's crossed seeds × prompts design
// (study/matched.ts), use them to estimate variance components for a t interval.

import { Rng } from '../engine/rng.js';
import { finite, mean, quantileSorted } from './describe.js';

/** A point estimate with a confidence interval (NaN bounds: no interval). */
export interface Estimate {
  value: number;
  lo: number;
  hi: number;
}

/** An estimate with the number of independent units behind it (what `bootstrap` returns). */
export interface Interval extends Estimate {
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

export const BOOTSTRAP_DEFAULTS: Required<BootstrapOptions> = { iters: 2000, level: 0.95, seed: 1 };

/** A seeded uniform generator in [0, 1): the project's mulberry32. */
export function makeRng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** A 32-bit FNV-1a hash, to derive per-item seeds that do not depend on iteration order. */
export function hashSeed(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const ch of parts.join('\u0000')) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The (1 − level)/2 and (1 + level)/2 percentiles of replicates (non-finite ones dropped); NaN when none. */
export function percentileInterval(replicates: ArrayLike<number>, level = 0.95): { lo: number; hi: number } {
  const s = finite(Array.from(replicates)).sort((a, b) => a - b);
  const a = (1 - level) / 2;
  return { lo: quantileSorted(s, a), hi: quantileSorted(s, 1 - a) };
}

/**
 * Two-sided bootstrap p-value of "the statistic is `nullValue`": 2 × the smaller share of replicates on
 * either side (ties count half), capped at 1. It agrees with the percentile interval: p < 1 − level exactly
 * when the interval excludes nullValue (up to ties at the bound). NaN with no finite replicate.
 */
export function bootstrapPValue(replicates: ArrayLike<number>, nullValue = 0): number {
  let below = 0, above = 0, n = 0;
  for (let i = 0; i < replicates.length; i++) {
    const x = replicates[i]!;
    if (!Number.isFinite(x)) continue;
    n++;
    if (x < nullValue) below++;
    else if (x > nullValue) above++;
    else {
      below += 0.5;
      above += 0.5;
    }
  }
  return n === 0 ? NaN : Math.min(1, (2 * Math.min(below, above)) / n);
}

/**
 * Percentile bootstrap of any statistic: draw items with replacement `iters` times, recompute `stat`, and
 * report stat(items) with the percentile interval of the finite replicates. n = items.length.
 */
export function bootstrap<T>(items: readonly T[], stat: (sample: readonly T[]) => number, opts: BootstrapOptions = {}): Interval {
  const { iters, level, seed } = { ...BOOTSTRAP_DEFAULTS, ...opts };
  const value = stat(items);
  const n = items.length;
  if (n === 0) return { value, lo: NaN, hi: NaN, n };
  const rng = new Rng(seed);
  const reps = new Float64Array(iters);
  const draw = new Array<T>(n);
  for (let b = 0; b < iters; b++) {
    for (let i = 0; i < n; i++) draw[i] = items[rng.int(n)]!;
    reps[b] = stat(draw);
  }
  return { value, ...percentileInterval(reps, level), n };
}

/**
 * Bootstrap CI of a mean. Non-finite values (a diverged seed, an unscored sample) are dropped first, and n
 * counts the values kept. With very few units (3 seeds) the percentile bootstrap is optimistic (too narrow):
 * reports print n beside every interval so the reader can judge.
 */
export function bootstrapMean(values: readonly number[], opts: BootstrapOptions = {}): Interval {
  return bootstrap(finite(values), mean, opts);
}

/** A difference of two group means with its interval and a test of "no difference". */
export interface DiffInterval extends Interval {
  /** The interval resampled something (≥ 2 units in each group, or paired prompts) and excludes 0. */
  significant: boolean;
  /**
   * False when the interval is a point by construction (one unit in a group and nothing else resampled):
   * no test was made, and `significant` is false whatever the numbers.
   */
  tested: boolean;
  nA: number;
  nB: number;
  /** Two-sided bootstrap p-value of "no difference" (NaN when not tested). */
  p: number;
  /** Held-out prompts resampled (paired across the two groups); 0 for a units-only interval. */
  prompts: number;
}

/** Bootstrap CI of mean(a) − mean(b), resampling the two groups independently (e.g. different seeds' runs). */
export function bootstrapDiff(a: readonly number[], b: readonly number[], opts: BootstrapOptions = {}): DiffInterval {
  const xa = finite(a), xb = finite(b);
  const { iters, level, seed } = { ...BOOTSTRAP_DEFAULTS, ...opts };
  const n = Math.min(xa.length, xb.length);
  if (n === 0) return { value: NaN, lo: NaN, hi: NaN, n: 0, nA: xa.length, nB: xb.length, p: NaN, prompts: 0, tested: false, significant: false };
  const rng = new Rng(seed);
  const resampled = (xs: number[]) => {
    let s = 0;
    for (let j = 0; j < xs.length; j++) s += xs[rng.int(xs.length)]!;
    return s / xs.length;
  };
  const d = new Float64Array(iters);
  for (let i = 0; i < iters; i++) d[i] = resampled(xa);
  for (let i = 0; i < iters; i++) d[i] = d[i]! - resampled(xb);
  const { lo, hi } = percentileInterval(d, level);
  // With one value in a group its spread is unknown: the interval would only show the other group's.
  const tested = n >= 2;
  const p = tested ? bootstrapPValue(d) : NaN;
  return { value: mean(xa) - mean(xb), lo, hi, n, nA: xa.length, nB: xb.length, p, prompts: 0, tested, significant: tested && (lo > 0 || hi < 0) };
}
