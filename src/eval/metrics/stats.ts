// Small statistics kit for evaluation: a seeded RNG, means, spreads, percentiles and the percentile bootstrap.

import { Rng as SeededRng } from '../../engine/rng.js';

/** The project's seeded generator (mulberry32), from a module that does not load the tensor engine. */
export { SeededRng };

/** A 32-bit FNV-1a hash, to derive per-item seeds that do not depend on iteration order. */
export function hashSeed(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const ch of parts.join('\u0000')) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function mean(xs: number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Population standard deviation (divides by n): the spread of the values we have, not an estimate. */
export function std(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
}

/** Linear-interpolated percentile (numpy's default), q in [0, 1]. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export interface Estimate {
  value: number;
  lo: number;
  hi: number;
}

/**
 * Percentile bootstrap: draw `n` with replacement `iters` times, recompute `stat` on each draw,
 * report the point estimate and the (alpha/2, 1 - alpha/2) percentiles. Seeded, so reports reproduce.
 */
export function bootstrap<T>(items: T[], stat: (sample: T[]) => number, opts: { iters?: number; seed?: number; alpha?: number } = {}): Estimate {
  const { iters = 1000, seed = 1234, alpha = 0.05 } = opts;
  const value = stat(items);
  if (items.length === 0) return { value, lo: NaN, hi: NaN };
  const rng = new SeededRng(seed);
  const stats: number[] = [];
  const draw = new Array<T>(items.length);
  for (let b = 0; b < iters; b++) {
    for (let i = 0; i < items.length; i++) draw[i] = items[rng.int(items.length)]!;
    const v = stat(draw);
    if (Number.isFinite(v)) stats.push(v);
  }
  return { value, lo: quantile(stats, alpha / 2), hi: quantile(stats, 1 - alpha / 2) };
}

/** Bootstrap CI of a mean: the common case, over per-sample scores. */
export function bootstrapMean(xs: number[], opts: { iters?: number; seed?: number; alpha?: number } = {}): Estimate {
  return bootstrap(xs, mean, opts);
}

export function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}
