// Masked statistics and whitening, on the device (jax-js, jit-safe) and on the host (rollout buffers).
//
// Ownership: the device functions consume their array arguments, like jax-js ops and jitted functions
// (pass `x.ref` to keep yours). The host functions never modify their inputs.
//
// Whitening follows TRL's `masked_whiten` (trl/core.py, used by PPO for advantages and, optionally, rewards):
//   μ = Σ m·x / Σ m,   σ² = (Σ m·(x − μ)² / Σ m) · n/(n − 1)   (n = Σ m: the unbiased, Bessel-corrected variance)
//   whiten(x) = (x − μ) / √(σ² + 1e-8)   [+ μ when shift_mean is off]
// Unlike TRL, masked-out entries come back as 0 (TRL's PPO fills them with 0 right after whitening anyway).

import { np, type Arr } from '../../engine/index.js';

/** Added to the variance before the square root, as TRL. */
export const WHITEN_EPS = 1e-8;

// ---- device -----------------------------------------------------------------------------

/**
 * Σ m·x / max(Σ m, 1) over `axis` (all axes when omitted). x and mask have the same shape; mask is 0/1 (float).
 * The max(·, 1) keeps an all-masked row at 0 instead of NaN.
 */
export function maskedMean(x: Arr, mask: Arr, axis?: number | number[]): Arr {
  return x.mul(mask.ref).sum(axis).div(np.maximum(mask.sum(axis), 1));
}

/** Σ m·x over `axis` (all axes when omitted). */
export function maskedSum(x: Arr, mask: Arr, axis?: number | number[]): Arr {
  return x.mul(mask).sum(axis);
}

/** Masked variance over all entries; unbiased (×n/(n−1)) by default, as TRL's `masked_var`. */
export function maskedVar(x: Arr, mask: Arr, unbiased = true): Arr {
  const mean = maskedMean(x.ref, mask.ref);
  const n = mask.ref.sum();
  const v = maskedMean(np.square(x.sub(mean)), mask);
  if (!unbiased) {
    n.dispose();
    return v;
  }
  // n/(n−1), guarded so n ≤ 1 gives the biased value instead of a division by zero.
  return v.mul(n.ref.div(np.maximum(n.sub(1), 1)));
}

export interface WhitenOptions {
  /** Subtract the mean (true, advantages) or keep it (false, rewards: TRL's `shift_mean=False`). Default true. */
  shiftMean?: boolean;
}

/** Whiten the masked entries of x (any shape) with one mean and variance over all of them; masked-out entries → 0. */
export function maskedWhiten(x: Arr, mask: Arr, { shiftMean = true }: WhitenOptions = {}): Arr {
  const mean = maskedMean(x.ref, mask.ref);
  const variance = maskedVar(x.ref, mask.ref);
  let w = x.sub(mean.ref).div(np.sqrt(variance.add(WHITEN_EPS)));
  if (shiftMean) mean.dispose();
  else w = w.add(mean);
  return w.mul(mask);
}

// ---- host -------------------------------------------------------------------------------

/** Mean and unbiased variance of the entries with mask ≠ 0, in float64. */
export function maskedStatsHost(x: ArrayLike<number>, mask?: ArrayLike<number>): { mean: number; variance: number; count: number } {
  let n = 0, s = 0;
  for (let i = 0; i < x.length; i++) {
    if (mask && !mask[i]) continue;
    n++;
    s += x[i]!;
  }
  const mean = n > 0 ? s / n : 0;
  let ss = 0;
  for (let i = 0; i < x.length; i++) if (!mask || mask[i]) ss += (x[i]! - mean) ** 2;
  return { mean, variance: n > 1 ? ss / (n - 1) : 0, count: n };
}

/** Host twin of `maskedWhiten`: same formula, float64 arithmetic, float32 result; masked-out entries → 0. */
export function whitenHost(x: ArrayLike<number>, mask?: ArrayLike<number>, { shiftMean = true }: WhitenOptions = {}): Float32Array {
  const { mean, variance } = maskedStatsHost(x, mask);
  const inv = 1 / Math.sqrt(variance + WHITEN_EPS);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    if (mask && !mask[i]) continue;
    out[i] = (x[i]! - mean) * inv + (shiftMean ? 0 : mean);
  }
  return out;
}
