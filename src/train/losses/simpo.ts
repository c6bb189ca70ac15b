// SimPO (Meng et al. 2024), as TRL's `CPOTrainer` with loss_type="simpo": reference-free and length-normalized.
//
//   L = −(1−ε) log σ(z) − ε log σ(−z),   z = β/|y_c| log π_θ(y_c|x) − β/|y_r| log π_θ(y_r|x) − γ
//
// with label smoothing ε as cDPO. No reference model: only the policy is resident while training.
// Ownership: consumes its array arguments (pass `x.ref` to keep yours); jit-safe. Losses are batch means.

import { np, type Arr } from '../../engine/index.js';
import { logSigmoid } from '../../model/logprobs.js';
import { checkOptions, preferenceMetrics, type PreferenceMetrics } from './dpo.js';

export interface SimpoInputs {
  /** [B] summed log-probs of the chosen / rejected completions under the policy. */
  chosenLogps: Arr;
  rejectedLogps: Arr;
  /** [B] completion token counts |y_c|, |y_r|. */
  chosenLengths: Arr;
  rejectedLengths: Arr;
}

export interface SimpoOptions {
  /** β: reward scale (SimPO paper: 2.0–2.5; TRL CPOConfig default 0.1). Default 2.0. */
  beta?: number;
  /** γ: target reward margin (SimPO paper: γ/β ≈ 0.5; TRL `simpo_gamma` default 0.5). Default 1.0. */
  gamma?: number;
  /** ε as in cDPO. Default 0. */
  labelSmoothing?: number;
}

export const SIMPO_DEFAULTS = { beta: 2.0, gamma: 1.0, labelSmoothing: 0 };

/** SimPO; metrics use TRL CPOTrainer's conventions: rewards = β·(average log-prob), logps = average log-probs. */
export function simpoLoss(inp: SimpoInputs, opts: SimpoOptions = {}): { loss: Arr; metrics: PreferenceMetrics } {
  const { beta = SIMPO_DEFAULTS.beta, gamma = SIMPO_DEFAULTS.gamma, labelSmoothing: eps = SIMPO_DEFAULTS.labelSmoothing } = opts;
  checkOptions('simpoLoss', beta, eps);
  const avgC = inp.chosenLogps.div(np.maximum(inp.chosenLengths, 1)); //     log π(y_c)/|y_c|
  const avgR = inp.rejectedLogps.div(np.maximum(inp.rejectedLengths, 1)); // log π(y_r)/|y_r|
  const z = avgC.ref.sub(avgR.ref).mul(beta).sub(gamma); // β/|y_c| log π(y_c) − β/|y_r| log π(y_r) − γ
  const losses = logSigmoid(z.ref).mul(-(1 - eps)).sub(logSigmoid(z.neg()).mul(eps));
  const metrics = preferenceMetrics(avgC.ref.mul(beta), avgR.ref.mul(beta), avgC, avgR);
  return { loss: losses.mean(), metrics };
}
