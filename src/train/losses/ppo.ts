// PPO's clipped objective (Schulman et al. 2017; TRL's PPOTrainer), on the device, jit-safe, consuming its arguments:
//
//   L_π = masked_mean( max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)) ),   ρ = exp(logp − logp_old)    (Schulman et al. 2017 eq. 7)
//   L_V = ½ masked_mean( max((V − R)², (V_old + clip(V − V_old, −ε_v, ε_v) − R)²) )
//   L = L_π + c_v·L_V
//
// The advantages A and returns R come from the rollout by reward shaping and GAE (gae.ts). Layout: [B,T] over the
// *response* tokens (prompt excluded); mask 1 on response tokens up to and including EOS, 0 on padding.

import { np, lax, type Arr } from '../../engine/index.js';
import type { KlEstimator } from './kl.js';
import { maskedMean } from './whiten.js';

export const PPO_DEFAULTS = {
  klCoef: 0.05,
  klEstimator: 'k1' as KlEstimator,
  gamma: 1,
  lam: 0.95,
  clipRange: 0.2,
  clipRangeValue: 0.2,
  vfCoef: 0.1,
};

export type PolicyLossMetrics = {
  'loss/policy_avg': Arr;
  /** Fraction of tokens where the clipped term is the active one. */
  'policy/clipfrac_avg': Arr;
  /** ½·mean((logp − logp_old)²) over the mask (TRL takes the mean over all positions). */
  'policy/approxkl_avg': Arr;
  /** Mean ratio ρ over the mask (TRL `val/ratio`). */
  'val/ratio': Arr;
};

/** Clipped surrogate. logprobs (differentiable), oldLogprobs, advantages, mask: [B,T] → scalar loss + metrics. */
export function ppoPolicyLoss(logprobs: Arr, oldLogprobs: Arr, advantages: Arr, mask: Arr, clipRange = PPO_DEFAULTS.clipRange): { loss: Arr; metrics: PolicyLossMetrics } {
  const logratio = logprobs.sub(lax.stopGradient(oldLogprobs));
  const ratio = np.exp(logratio.ref);
  const adv = lax.stopGradient(advantages);
  const pg1 = adv.ref.mul(ratio.ref).neg(); //                                  −A·ρ
  const pg2 = adv.mul(np.clip(ratio.ref, 1 - clipRange, 1 + clipRange)).neg(); // −A·clip(ρ, 1−ε, 1+ε)
  const clipped = pg2.ref.greater(pg1.ref).astype(np.float32);
  const loss = maskedMean(np.maximum(pg1, pg2), mask.ref);
  const lr = lax.stopGradient(logratio);
  return {
    loss: loss.ref,
    metrics: {
      'loss/policy_avg': lax.stopGradient(loss),
      'policy/clipfrac_avg': maskedMean(clipped, mask.ref),
      'policy/approxkl_avg': maskedMean(np.square(lr), mask.ref).mul(0.5),
      'val/ratio': maskedMean(lax.stopGradient(ratio), mask),
    },
  };
}

export type ValueLossMetrics = {
  'loss/value_avg': Arr;
  'val/clipfrac_avg': Arr;
};

/** Clipped value loss (×½). values (differentiable), oldValues, returns, mask: [B,T]. */
export function ppoValueLoss(values: Arr, oldValues: Arr, returns: Arr, mask: Arr, clipRangeValue = PPO_DEFAULTS.clipRangeValue): { loss: Arr; metrics: ValueLossMetrics } {
  const old = lax.stopGradient(oldValues), ret = lax.stopGradient(returns);
  const vClipped = old.ref.add(np.clip(values.ref.sub(old), -clipRangeValue, clipRangeValue));
  const l1 = np.square(values.sub(ret.ref)), l2 = np.square(vClipped.sub(ret));
  const clipped = l2.ref.greater(l1.ref).astype(np.float32);
  const loss = maskedMean(np.maximum(l1, l2), mask.ref).mul(0.5);
  return { loss: loss.ref, metrics: { 'loss/value_avg': lax.stopGradient(loss), 'val/clipfrac_avg': maskedMean(clipped, mask) } };
}

export interface PpoLossInputs {
  /** [B,T] log π_θ(y_t) from the current forward (differentiable). */
  logprobs: Arr;
  oldLogprobs: Arr;
  advantages: Arr;
  /** [B,T] V_θ(s_t) from the current forward (differentiable), the rollout's V_old and returns. */
  values: Arr;
  oldValues: Arr;
  returns: Arr;
  mask: Arr;
  /** Optional [B,T] per-token entropy of the current policy (`entropyFromLogits`) for `policy/entropy_avg`. */
  entropy?: Arr;
}

export interface PpoLossOptions {
  /** ε of the ratio clip (TRL `cliprange` 0.2). */
  clipRange?: number;
  /** ε_v of the value clip (TRL `cliprange_value` 0.2). */
  clipRangeValue?: number;
  /** c_v, weight of the value loss (TRL `vf_coef` 0.1). */
  vfCoef?: number;
}

export type PpoLossMetrics = PolicyLossMetrics & ValueLossMetrics & { 'policy/entropy_avg'?: Arr };

/** L = L_π + c_v·L_V for a policy and value head trained together (shared trunk or not: the loss is the same). */
export function ppoLoss(inp: PpoLossInputs, opts: PpoLossOptions = {}): { loss: Arr; metrics: PpoLossMetrics } {
  const { clipRange = PPO_DEFAULTS.clipRange, clipRangeValue = PPO_DEFAULTS.clipRangeValue, vfCoef = PPO_DEFAULTS.vfCoef } = opts;
  const pg = ppoPolicyLoss(inp.logprobs, inp.oldLogprobs, inp.advantages, inp.mask.ref, clipRange);
  const vf = ppoValueLoss(inp.values, inp.oldValues, inp.returns, inp.mask.ref, clipRangeValue);
  const metrics: PpoLossMetrics = { ...pg.metrics, ...vf.metrics };
  if (inp.entropy) metrics['policy/entropy_avg'] = maskedMean(lax.stopGradient(inp.entropy), inp.mask);
  else inp.mask.dispose();
  return { loss: pg.loss.add(vf.loss.mul(vfCoef)), metrics };
}
