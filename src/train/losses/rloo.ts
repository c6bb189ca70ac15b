// RLOO: REINFORCE with a leave-one-out baseline (Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics"; TRL's
// RLOOTrainer). No value model: each of the k completions of a prompt is baselined by the mean of the other k−1.
//
//   R_i = score_i − β · Σ_t (logp_t − ref_t)                        sequence-level reward with the k1 KL inside
//   A_i = R_i − 1/(k−1) · Σ_{j≠i} R_j                               leave-one-out baseline (unbiased: R_j ⊥ y_i)
//   L   = mean_i max(−A_i ρ_i, −A_i clip(ρ_i, 1−ε, 1+ε)),  ρ_i = exp(log π_θ(y_i) − log π_old(y_i))
// On the first update after sampling ρ = 1 and ∇L = −mean_i A_i ∇log π_θ(y_i): plain REINFORCE; the clip (as TRL)
// only matters for later epochs over the same samples.
//
// Group layout: the k completions of one prompt are consecutive (index = prompt·k + i), as in grpo.ts. (TRL's RLOO
// uses the transposed layout, `reshape(rloo_k, -1)`; one convention for both group methods avoids mix-ups.)
// Advantages on the host; the loss on the device, jit-safe, consuming its array arguments.

import { np, lax, type Arr } from '../../engine/index.js';
import type { Rollout, RolloutMetrics } from './gae.js';
import type { PolicyLossMetrics } from './ppo.js';
import { whitenHost } from './whiten.js';

export const RLOO_DEFAULTS = {
  /** β of the KL penalty in the reward (TRL RLOOConfig `kl_coef` 0.05). */
  klCoef: 0.05,
  /** ε of the ratio clip (TRL `cliprange` 0.2). */
  clipRange: 0.2,
  /** TRL `normalize_advantage` (default false). */
  normalizeAdvantage: false,
};

/** A_i = R_i − mean_{j≠i} R_j within consecutive groups of k; `normalize` whitens the result over the batch. */
export function leaveOneOutAdvantages(rewards: ArrayLike<number>, k: number, { normalize = false }: { normalize?: boolean } = {}): Float32Array {
  const N = rewards.length;
  if (!(Number.isInteger(k) && k >= 2)) throw new Error(`leaveOneOutAdvantages: group size must be an integer ≥ 2, got ${k}`);
  if (N % k !== 0) throw new Error(`leaveOneOutAdvantages: ${N} rewards do not split into groups of ${k}`);
  const adv = new Float32Array(N);
  for (let g = 0; g < N; g += k) {
    let sum = 0;
    for (let i = g; i < g + k; i++) sum += rewards[i]!;
    for (let i = g; i < g + k; i++) adv[i] = rewards[i]! - (sum - rewards[i]!) / (k - 1);
  }
  return normalize ? whitenHost(adv) : adv;
}

/**
 * From a rollout (no values needed): sequence KL, R_i = score_i − β·KL_i, leave-one-out advantages and
 * TRL's rollout metrics (`objective/*`).
 */
export function rlooAdvantages(
  r: Pick<Rollout, 'B' | 'T' | 'logprobs' | 'refLogprobs' | 'mask' | 'scores'>,
  k: number,
  { klCoef = RLOO_DEFAULTS.klCoef, normalize = RLOO_DEFAULTS.normalizeAdvantage }: { klCoef?: number; normalize?: boolean } = {},
): { advantages: Float32Array; rlhfReward: Float32Array; kl: Float32Array; metrics: Omit<RolloutMetrics, 'val/num_eos_tokens'> } {
  const { B, T } = r;
  const kl = new Float32Array(B), negLogp = new Float32Array(B), rlhfReward = new Float32Array(B);
  let klSum = 0, entSum = 0, scoreSum = 0;
  for (let b = 0; b < B; b++) {
    let s = 0, e = 0;
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (!r.mask[i]) continue;
      s += r.logprobs[i]! - r.refLogprobs[i]!; // k1
      e -= r.logprobs[i]!;
    }
    kl[b] = s;
    negLogp[b] = e;
    rlhfReward[b] = r.scores[b]! - klCoef * s;
    klSum += s;
    entSum += e;
    scoreSum += r.scores[b]!;
  }
  return {
    advantages: leaveOneOutAdvantages(rlhfReward, k, { normalize }),
    rlhfReward,
    kl,
    metrics: {
      'objective/kl': klSum / B,
      'objective/entropy': entSum / B,
      'objective/non_score_reward': (-klCoef * klSum) / B,
      'objective/rlhf_reward': (scoreSum - klCoef * klSum) / B,
      'objective/scores': scoreSum / B,
    },
  };
}

export interface RlooLossInputs {
  /** [B] log π_θ(y_i|x), summed over completion tokens (differentiable; `sequenceLogprob`). */
  logprobs: Arr;
  /** [B] the same under the sampling policy; omit on the first update (then ρ = 1). */
  oldLogprobs?: Arr;
  /** [B] `rlooAdvantages(...).advantages`. */
  advantages: Arr;
}

/** Sequence-level clipped REINFORCE loss (TRL RLOO), with PPO's metric names. */
export function rlooLoss(inp: RlooLossInputs, { clipRange = RLOO_DEFAULTS.clipRange }: { clipRange?: number } = {}): { loss: Arr; metrics: PolicyLossMetrics } {
  const { logprobs } = inp;
  const old = lax.stopGradient(inp.oldLogprobs ?? logprobs.ref);
  const logratio = logprobs.sub(old);
  const ratio = np.exp(logratio.ref);
  const adv = lax.stopGradient(inp.advantages);
  const pg1 = adv.ref.mul(ratio.ref).neg();
  const pg2 = adv.mul(np.clip(ratio.ref, 1 - clipRange, 1 + clipRange)).neg();
  const clipped = pg2.ref.greater(pg1.ref).astype(np.float32);
  const loss = np.maximum(pg1, pg2).mean();
  return {
    loss: loss.ref,
    metrics: {
      'loss/policy_avg': lax.stopGradient(loss),
      'policy/clipfrac_avg': clipped.mean(),
      'policy/approxkl_avg': np.square(lax.stopGradient(logratio)).mean().mul(0.5),
      'val/ratio': lax.stopGradient(ratio).mean(),
    },
  };
}
