// GRPO: group-relative policy optimization (Shao et al. 2024, DeepSeekMath §4.1; TRL's GRPOTrainer). No value model:
// sample G completions per prompt, and use the group's own statistics as the baseline.
//
//   Â_i = (r_i − mean(r_group)) / (std(r_group) + eps)            (outcome supervision; Dr. GRPO, Liu et al. 2025,
//                                                                   drops the division: `scaleRewards: false`)
//   per token: ℓ_t = −min(ρ_t Â, clip(ρ_t, 1−ε_low, 1+ε_high) Â) + β·KL_t,   ρ_t = exp(logp_t − logp_old,t)
//              KL_t = exp(ref_t − logp_t) − (ref_t − logp_t) − 1   (k3, DeepSeekMath eq. 4)
//   lossType 'grpo':    L = mean_i ( Σ_t m ℓ / Σ_t m )             per-sequence mean, then mean over sequences
//            'bnpo':    L = Σ m ℓ / Σ m                            token mean over the batch
//            'dr_grpo': L = Σ m ℓ / (B · T)                        constant normalizer (Dr. GRPO; T = max completion length)
//
// Group layout: completions of one prompt are consecutive (index = prompt·G + i), as TRL's `view(-1, G)`.
// Advantages are computed on the host (rewards come from host reward functions); the loss runs on the device,
// jit-safe, consuming its array arguments.

import { np, lax, type Arr } from '../../engine/index.js';
import { klEstimate } from './kl.js';
import { maskedMean } from './whiten.js';

export type GrpoLossType = 'grpo' | 'bnpo' | 'dr_grpo';
export const GRPO_LOSS_TYPES: readonly GrpoLossType[] = ['grpo', 'bnpo', 'dr_grpo'];

export const GRPO_DEFAULTS = {
  /** β of the k3 KL term: 0.04 in DeepSeekMath and older TRL (TRL ≥ 0.19 defaults to 0, no reference model). */
  beta: 0.04,
  /** ε of the ratio clip (TRL `epsilon` 0.2); `epsilonHigh` defaults to it (DAPO raises it to 0.28). */
  epsilon: 0.2,
  lossType: 'grpo' as GrpoLossType,
  /** Divide by the group std (TRL `scale_rewards`, default true). */
  scaleRewards: true,
  /** Added to the std (TRL uses 1e-4). */
  eps: 1e-4,
};

export interface GroupStats {
  /** Mean reward (TRL `reward`). */
  reward: number;
  /** Mean over groups of the within-group std (TRL `reward_std`). */
  reward_std: number;
  /** Fraction of groups whose rewards are all equal: they carry no learning signal (TRL `frac_reward_zero_std`). */
  frac_reward_zero_std: number;
}

/**
 * Group-relative advantages, host side: rewards [N] with N = prompts·G → advantages [N] (float32) and stats.
 * std is the unbiased (n−1) standard deviation, as `torch.std`.
 */
export function groupAdvantages(rewards: ArrayLike<number>, groupSize: number, opts: { scaleRewards?: boolean; eps?: number } = {}): { advantages: Float32Array; stats: GroupStats } {
  const { scaleRewards = GRPO_DEFAULTS.scaleRewards, eps = GRPO_DEFAULTS.eps } = opts;
  const N = rewards.length;
  if (!(Number.isInteger(groupSize) && groupSize >= 2)) throw new Error(`groupAdvantages: group size must be an integer ≥ 2, got ${groupSize}`);
  if (N % groupSize !== 0) throw new Error(`groupAdvantages: ${N} rewards do not split into groups of ${groupSize}`);
  const advantages = new Float32Array(N);
  let total = 0, stdSum = 0, flat = 0;
  for (let g = 0; g < N; g += groupSize) {
    let mean = 0;
    for (let i = g; i < g + groupSize; i++) mean += rewards[i]!;
    mean /= groupSize;
    let ss = 0;
    for (let i = g; i < g + groupSize; i++) ss += (rewards[i]! - mean) ** 2;
    const std = Math.sqrt(ss / (groupSize - 1));
    for (let i = g; i < g + groupSize; i++) advantages[i] = scaleRewards ? (rewards[i]! - mean) / (std + eps) : rewards[i]! - mean;
    total += mean * groupSize;
    stdSum += std;
    if (ss === 0) flat++;
  }
  const groups = N / groupSize;
  return { advantages, stats: { reward: total / N, reward_std: stdSum / groups, frac_reward_zero_std: flat / groups } };
}

export interface GrpoLossInputs {
  /** [B,T] log π_θ of the completion tokens (differentiable). */
  logprobs: Arr;
  /** [B,T] log π_old (the sampling policy). Omit for one update per generation: then π_old = sg(π_θ), ρ = 1. */
  oldLogprobs?: Arr;
  /** [B,T] log π_ref; required when β ≠ 0. */
  refLogprobs?: Arr;
  /** [B] one advantage per completion (`groupAdvantages`). */
  advantages: Arr;
  /** [B,T] 1 on completion tokens. */
  mask: Arr;
}

export interface GrpoOptions {
  beta?: number;
  epsilon?: number;
  /** Upper clip ε_high (DAPO's clip-higher); defaults to `epsilon`. */
  epsilonHigh?: number;
  lossType?: GrpoLossType;
  /** The constant of 'dr_grpo' (L = Σ m ℓ / (B · maxCompletionLength)); default: the mask's T. */
  maxCompletionLength?: number;
}

export type GrpoMetrics = {
  /** Masked mean of the k3 KL (TRL `kl`); 0 when β = 0 and no reference is given. */
  kl: Arr;
  /** Fraction of completion tokens where the clip is active (TRL `clip_ratio/region_mean`). */
  'clip_ratio/region_mean': Arr;
};

export function grpoLoss(inp: GrpoLossInputs, opts: GrpoOptions = {}): { loss: Arr; metrics: GrpoMetrics } {
  const { beta = GRPO_DEFAULTS.beta, epsilon = GRPO_DEFAULTS.epsilon, lossType = GRPO_DEFAULTS.lossType } = opts;
  const epsilonHigh = opts.epsilonHigh ?? epsilon;
  if (!GRPO_LOSS_TYPES.includes(lossType)) throw new Error(`grpoLoss: unknown lossType "${lossType}" (use one of: ${GRPO_LOSS_TYPES.join(', ')})`);
  if (beta !== 0 && !inp.refLogprobs) throw new Error(`grpoLoss: beta = ${beta} needs refLogprobs (or set beta: 0)`);
  const { logprobs, mask } = inp;
  const [B, T] = mask.shape as [number, number];
  const old = lax.stopGradient(inp.oldLogprobs ?? logprobs.ref);
  const ratio = np.exp(logprobs.ref.sub(old));
  const adv = lax.stopGradient(inp.advantages).reshape([B, 1]);
  const clippedRatio = np.clip(ratio.ref, 1 - epsilon, 1 + epsilonHigh);
  // The clip is active where the clipped term wins the min: ρ < 1−ε with Â < 0, or ρ > 1+ε_high with Â > 0.
  const low = np.logicalAnd(ratio.ref.less(1 - epsilon), adv.ref.less(0));
  const high = np.logicalAnd(ratio.ref.greater(1 + epsilonHigh), adv.ref.greater(0));
  const clipActive = np.logicalOr(low, high).astype(np.float32);
  let perToken = np.minimum(ratio.mul(adv.ref), clippedRatio.mul(adv)).neg();
  let kl: Arr;
  if (inp.refLogprobs) {
    const k3 = klEstimate(logprobs, lax.stopGradient(inp.refLogprobs), 'k3');
    if (beta !== 0) perToken = perToken.add(k3.ref.mul(beta));
    kl = maskedMean(lax.stopGradient(k3), mask.ref);
  } else {
    logprobs.dispose();
    kl = np.zeros([]);
  }
  const masked = perToken.mul(mask.ref);
  let loss: Arr;
  if (lossType === 'grpo') loss = masked.sum(-1).div(np.maximum(mask.ref.sum(-1), 1)).mean();
  else if (lossType === 'bnpo') loss = masked.sum().div(np.maximum(mask.ref.sum(), 1));
  else loss = masked.sum().div(B * (opts.maxCompletionLength ?? T));
  return { loss, metrics: { kl, 'clip_ratio/region_mean': maskedMean(clipActive, mask) } };
}
