// Descriptive statistics with one meaning each, used by eval, study and report.
//
// `std` is the SAMPLE standard deviation (divides by n − 1): an estimate of the spread of the population the
// values were drawn from (seeds, prompts). `populationStd` (divides by n) is the spread of exactly these
// values, for descriptive scores such as "how uneven are these task means" — named so nobody mixes them up.

/** The finite values of xs (NaN marks "not measured" throughout the project). */
export function finite(xs: readonly number[]): number[] {
  return xs.filter((x) => Number.isFinite(x));
}

/** Arithmetic mean; NaN for no values. */
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

/** Population standard deviation (n): the spread of these values themselves, not an estimate; NaN for none. */
export function populationStd(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) ** 2;
  return Math.sqrt(s / xs.length);
}

/** Quantile of SORTED values, linear between order statistics (R type 7, numpy's default); NaN for none. */
export function quantileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h), hi = Math.ceil(h);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/** Percentile of unsorted values (q in [0, 1]), as quantileSorted after sorting a copy. */
export function quantile(xs: readonly number[], q: number): number {
  return quantileSorted([...xs].sort((a, b) => a - b), q);
}

/** Clamp to [0, 1] (scores and probabilities). */
export function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}
