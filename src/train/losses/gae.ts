// PPO's rollout processing, on the host (Ziegler et al. 2019; Schulman et al. 2016; Huang et al. 2024, "The N+
// Implementation Details of RLHF with PPO"; TRL's PPOTrainer): reward shaping, GAE, whitening, rollout metrics.
//
//   r_t = −β·KL_t + [t = last response token]·(score − [no EOS]·penalty)              (Ziegler et al. 2019)
//   δ_t = r_t + γ V_{t+1} − V_t,   A_t = Σ_l (γλ)^l δ_{t+l},   R_t = A_t + V_t          (GAE, Schulman et al. 2016)
//
// Why the host: the rollout is tiny ([B,T] floats, read back once anyway for the reward function), GAE is a
// sequential backward recursion (a jax-js version would unroll T steps into the graph and recompile per T),
// and float64 on the host makes the reference test exact. Advantages go back to the device once per rollout;
// the loss that reads them is ppo.ts.
//
// Layout of host arrays: row-major [B,T] Float32Array over the *response* tokens (prompt excluded); mask 1 on
// response tokens up to and including EOS, 0 on padding. Position t holds the log-prob of response token t.

import { klEstimateHost, checkEstimator, type KlEstimator } from './kl.js';
import { whitenHost } from './whiten.js';
import { PPO_DEFAULTS } from './ppo.js';

export interface Rollout {
  B: number;
  T: number;
  /** [B,T] log π_old(y_t) of the sampled tokens (the policy that sampled them). */
  logprobs: Float32Array;
  /** [B,T] log π_ref(y_t). */
  refLogprobs: Float32Array;
  /** [B,T] V_old(s_t) from the value head. */
  values: Float32Array;
  /** [B,T] 1 on response tokens (through EOS), 0 on padding. */
  mask: Float32Array;
  /** [B] reward-model or reward-function score of each response. */
  scores: Float32Array;
  /** [B] whether the response ended with EOS (for the missing-EOS penalty). */
  hasEos?: ArrayLike<boolean | number>;
}

export interface PpoRolloutOptions {
  /** β of the per-token −β·KL penalty: the current value of a KL controller (kl.ts). */
  klCoef: number;
  /** TRL `kl_estimator`: 'k1' (default) or 'k3'. */
  klEstimator?: KlEstimator;
  /** TRL `missing_eos_penalty`: subtracted from the score of a response without EOS. Default null (off). */
  missingEosPenalty?: number | null;
  /** Discount γ (TRL default 1: the episode is one response, rewards are not discounted). */
  gamma?: number;
  /** GAE λ (TRL default 0.95). */
  lam?: number;
  /** TRL `whiten_rewards`: whiten the shaped rewards (keeping their mean) before GAE. Default false. */
  whitenRewards?: boolean;
  /** Whiten advantages over the batch (TRL always does). Default true. */
  whitenAdvantages?: boolean;
}

export type RolloutMetrics = {
  /** Mean over responses of Σ_t KL_t. */
  'objective/kl': number;
  /** Mean over responses of −Σ_t log π_old(y_t): a one-sample estimate of the response entropy. */
  'objective/entropy': number;
  /** Mean over responses of Σ_t −β·KL_t. */
  'objective/non_score_reward': number;
  /** objective/scores + objective/non_score_reward. */
  'objective/rlhf_reward': number;
  /** Mean score after the missing-EOS penalty. */
  'objective/scores': number;
  /** Number of responses that contain EOS. */
  'val/num_eos_tokens': number;
};

export interface PpoRolloutResult {
  advantages: Float32Array; // [B,T], 0 on padding
  returns: Float32Array; //    [B,T], 0 on padding
  rewards: Float32Array; //    [B,T] shaped (and maybe whitened) per-token rewards
  kl: Float32Array; //         [B,T] per-token KL estimate, 0 on padding
  scores: Float32Array; //     [B] after the missing-EOS penalty
  metrics: RolloutMetrics;
}

/** Penalized scores: score − penalty for each response without EOS (TRL `missing_eos_penalty`). */
export function applyMissingEosPenalty(scores: ArrayLike<number>, hasEos: ArrayLike<boolean | number>, penalty: number): Float32Array {
  return Float32Array.from(scores, (s, b) => (hasEos[b] ? s : s - penalty));
}

/** Index of the last response token (mask ≠ 0) of each row, −1 for an empty row. */
export function lastTokenIndex(mask: ArrayLike<number>, B: number, T: number): Int32Array {
  const out = new Int32Array(B).fill(-1);
  for (let b = 0; b < B; b++) {
    let t = T - 1;
    while (t >= 0 && !mask[b * T + t]) t--;
    out[b] = t;
  }
  return out;
}

/**
 * Per-token KL and shaped rewards r_t = −β·KL_t, plus the score on the last response token.
 * (TRL puts the score one slot after the last token when that slot exists; we put it on the EOS token itself,
 * which is the action the score judges, and keep every reward inside the mask.)
 */
export function shapeRewards(r: Rollout, scores: ArrayLike<number>, klCoef: number, estimator: KlEstimator = 'k1'): { rewards: Float32Array; kl: Float32Array } {
  checkEstimator('shapeRewards', estimator);
  const { B, T } = r;
  const kl = new Float32Array(B * T), rewards = new Float32Array(B * T);
  for (let i = 0; i < B * T; i++) {
    if (!r.mask[i]) continue;
    kl[i] = klEstimateHost(r.logprobs[i]!, r.refLogprobs[i]!, estimator);
    rewards[i] = -klCoef * kl[i]!;
  }
  const last = lastTokenIndex(r.mask, B, T);
  for (let b = 0; b < B; b++) if (last[b]! >= 0) rewards[b * T + last[b]!] += scores[b]!;
  return { rewards, kl };
}

/**
 * Generalized advantage estimation over the masked positions of each row, backwards:
 *   δ_t = r_t + γ V_{t'} − V_t (t' = next masked position; V = 0 after the last one: the episode ends),
 *   A_t = δ_t + γλ A_{t'},   R_t = A_t + V_t.   Unmasked positions get A = R = 0.
 */
export function gae(rewards: ArrayLike<number>, values: ArrayLike<number>, mask: ArrayLike<number>, B: number, T: number, gamma: number, lam: number): { advantages: Float32Array; returns: Float32Array } {
  const advantages = new Float32Array(B * T), returns = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    let nextValue = 0, nextAdv = 0;
    for (let t = T - 1; t >= 0; t--) {
      const i = b * T + t;
      if (!mask[i]) continue;
      const delta = rewards[i]! + gamma * nextValue - values[i]!;
      nextAdv = delta + gamma * lam * nextAdv;
      advantages[i] = nextAdv;
      returns[i] = nextAdv + values[i]!;
      nextValue = values[i]!;
    }
  }
  return { advantages, returns };
}

/** The whole rollout → (advantages, returns) step of a PPO iteration, in TRL's order, with its metrics. */
export function ppoAdvantages(r: Rollout, opts: PpoRolloutOptions): PpoRolloutResult {
  const { B, T } = r;
  const { klCoef, klEstimator = PPO_DEFAULTS.klEstimator, missingEosPenalty = null, gamma = PPO_DEFAULTS.gamma, lam = PPO_DEFAULTS.lam } = opts;
  for (const [k, a, n] of [['logprobs', r.logprobs, B * T], ['refLogprobs', r.refLogprobs, B * T], ['values', r.values, B * T], ['mask', r.mask, B * T], ['scores', r.scores, B]] as const) {
    if (a.length !== n) throw new Error(`ppoAdvantages: rollout.${k} has ${a.length} entries, expected ${n} (B=${B}, T=${T})`);
  }
  if (missingEosPenalty != null && !r.hasEos) throw new Error('ppoAdvantages: missingEosPenalty needs rollout.hasEos');
  const scores = missingEosPenalty != null ? applyMissingEosPenalty(r.scores, r.hasEos!, missingEosPenalty) : Float32Array.from(r.scores);
  const shaped = shapeRewards(r, scores, klCoef, klEstimator);
  const kl = shaped.kl;
  let rewards = shaped.rewards;
  const metrics = rolloutMetrics(r, kl, scores, klCoef);
  if (opts.whitenRewards) rewards = whitenHost(rewards, r.mask, { shiftMean: false });
  const g = gae(rewards, r.values, r.mask, B, T, gamma, lam);
  const returns = g.returns;
  const advantages = (opts.whitenAdvantages ?? true) ? whitenHost(g.advantages, r.mask) : g.advantages;
  return { advantages, returns, rewards, kl, scores, metrics };
}

function rolloutMetrics(r: Rollout, kl: Float32Array, scores: Float32Array, klCoef: number): RolloutMetrics {
  const { B, T } = r;
  let klSum = 0, negLogp = 0, scoreSum = 0, eos = 0;
  for (let i = 0; i < B * T; i++) {
    if (!r.mask[i]) continue;
    klSum += kl[i]!;
    negLogp -= r.logprobs[i]!;
  }
  for (let b = 0; b < B; b++) {
    scoreSum += scores[b]!;
    if (r.hasEos?.[b]) eos++;
  }
  const nonScore = (-klCoef * klSum) / B;
  return {
    'objective/kl': klSum / B,
    'objective/entropy': negLogp / B,
    'objective/non_score_reward': nonScore,
    'objective/rlhf_reward': scoreSum / B + nonScore,
    'objective/scores': scoreSum / B,
    'val/num_eos_tokens': eos,
  };
}
