// How numbers, intervals and durations are written in verdicts and reports (one way everywhere).

import type { Estimate } from './bootstrap.js';

/** Three decimals, or "n/a". */
export const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
/** Signed three decimals with a true minus sign, or "n/a". */
export const signed = (x: number) => (Number.isFinite(x) ? (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(3) : 'n/a');
/** "[lo, hi]" of an estimate, or "[n/a]". */
export const ci = (i: Estimate) => (Number.isFinite(i.lo) ? `[${f3(i.lo)}, ${f3(i.hi)}]` : '[n/a]');
/** "[+lo, +hi]" of an estimate, or "[n/a]". */
export const signedCi = (i: Estimate) => (Number.isFinite(i.lo) ? `[${signed(i.lo)}, ${signed(i.hi)}]` : '[n/a]');
/** A duration: seconds below 2 minutes, minutes below 2 hours, else hours. */
export function seconds(s: number): string {
  if (!Number.isFinite(s)) return 'n/a';
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
/** A p-value: two significant digits, "< 0.001" below that. */
export const pValue = (p: number) => (!Number.isFinite(p) ? 'n/a' : p < 0.001 ? '< 0.001' : p.toPrecision(2));
