// Intervals and tests with closed forms: the normal quantile, Wilson's score interval for a proportion,
// Holm's step-down correction for many tests, and the F test of two variances (via the incomplete beta).

import type { Interval } from './bootstrap.js';

/**
 * Standard normal quantile Φ⁻¹(p) (Acklam's rational approximation, relative error < 1.2e-9).
 * ±Infinity at 0 and 1, NaN outside [0, 1].
 */
export function normalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) return NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lowTail = 0.02425;
  if (p < lowTail) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - lowTail) return -normalQuantile(1 - p);
  const q = p - 0.5, r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/**
 * Wilson score interval for a proportion (successes of n trials) at `level` (default 0.95). Unlike the
 * normal ("Wald") interval it stays inside [0, 1] and keeps near-nominal coverage for small n and p near 0
 * or 1 (Brown, Cai & DasGupta 2001). value = successes / n; NaN bounds for n = 0.
 */
export function wilsonInterval(successes: number, n: number, level = 0.95): Interval {
  if (!(n > 0)) return { value: NaN, lo: NaN, hi: NaN, n: 0 };
  const p = successes / n;
  const z = normalQuantile(1 - (1 - level) / 2);
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { value: p, lo: Math.max(0, centre - half), hi: Math.min(1, centre + half), n };
}

/**
 * Holm's step-down adjusted p-values (Holm 1979): controls the family-wise error rate of all the tests at
 * once, without assuming they are independent. Sort p ascending, multiply the i-th smallest by (m − i),
 * carry the running maximum, cap at 1; a test is significant at level α when its adjusted p < α.
 * NaN p-values (tests not made) stay NaN and do not count towards m.
 */
export function holmAdjust(pValues: readonly number[]): number[] {
  const idx = pValues.map((p, i) => [p, i] as const).filter(([p]) => Number.isFinite(p)).sort((x, y) => x[0] - y[0]);
  const m = idx.length;
  const out = pValues.map(() => NaN);
  let running = 0;
  idx.forEach(([p, i], k) => {
    running = Math.max(running, Math.min(1, (m - k) * p));
    out[i] = running;
  });
  return out;
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
  if (front === 0) return 0; // underflow far in the tail (the fraction may then overflow: 0 × ∞ would be NaN)
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

/** Standard normal CDF Φ(x) (erfc by Numerical Recipes' Chebyshev fit, relative error < 1.2e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const erfc = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - 0.5 * erfc : 0.5 * erfc;
}

/**
 * Beyond this many degrees of freedom t is the normal to < 3e-7 (t_0.975 − z_0.975 ≈ 2.4e-7 at 1e7), and the
 * incomplete beta below loses all precision (df/(df + t²) rounds to 1): at df 4e23, which a Welch–Satterthwaite
 * estimate with a vanishing seed part produced, t_0.975 came out as 5,792 and a study's interval as ±162.
 */
const NORMAL_DF = 1e7;

/** P(T ≤ t) for Student's t with df degrees of freedom (the normal CDF for df = Infinity or above NORMAL_DF). */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0) || Number.isNaN(t)) return NaN;
  if (!(df <= NORMAL_DF)) return normalCdf(t);
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** Student's t quantile (bisection on studentTCdf, |error| < 1e-10); the normal quantile for df = Infinity or above NORMAL_DF. */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) return NaN;
  if (!(df <= NORMAL_DF)) return normalQuantile(p);
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0, hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12; i++) {
    const mid = 0.5 * (lo + hi);
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}
