// Reward model: Bradley–Terry loss on the scalar rewards of a chosen and a rejected completion.
//
//   P(y_c ≻ y_r | x) = σ(r(x,y_c) − r(x,y_r))                         (Bradley & Terry 1952; Ouyang et al. 2022 eq. 1)
//   L = − E[ log σ(r_c − r_r − m) ]  +  c · E[(r_c + r_r)²]
//
// m is an optional per-pair margin (Llama 2, Touvron et al. 2023 eq. 2: a larger margin for pairs rated far apart);
// the second term is TRL's `center_rewards_coefficient` (Eisenstein et al. 2023): it pins the mean reward near 0,
// which the pairwise loss alone leaves free. Accuracy = fraction of pairs with r_c > r_r (ties count as wrong).
//
// Where r is read (model/heads.ts `poolValues`, the trainer's and RewardModel's `pooling`):
//   'last' (default):  r(x,y) = v_L, the head's scalar at the last non-pad token L (`lastTokenValues`), as HF's
//                      *ForSequenceClassification heads do;
//   'mean':            r(x,y) = (1/|y|) Σ_{t ∈ y} v_t, the mean over the completion's tokens (`maskedMeanValues`),
//                      prompt and padding excluded: a contextual bag of words.
// Ownership: consumes its array arguments (pass `x.ref` to keep yours); jit-safe.

import { np, lax, type Arr } from '../../engine/index.js';
import { logSigmoid } from '../../model/logprobs.js';

export interface RewardLossOptions {
  /** Per-pair margin m [B] (array) or one number for all pairs. Default 0 (no margin). */
  margin?: Arr | number;
  /** TRL `center_rewards_coefficient` c; default 0 (off). Eisenstein et al. suggest 0.01. */
  centerRewardsCoefficient?: number;
}

export type RewardMetrics = {
  accuracy: Arr;
  'rewards/chosen': Arr;
  'rewards/rejected': Arr;
  'rewards/margins': Arr;
};

/** rChosen, rRejected: [B] scalar rewards → mean Bradley–Terry loss and metrics (scalars). */
export function rewardLoss(rChosen: Arr, rRejected: Arr, opts: RewardLossOptions = {}): { loss: Arr; metrics: RewardMetrics } {
  const { margin = 0, centerRewardsCoefficient = 0 } = opts;
  const diff = rChosen.ref.sub(rRejected.ref);
  let loss = logSigmoid(diff.ref.sub(margin)).mean().neg();
  if (centerRewardsCoefficient !== 0) loss = loss.add(np.square(rChosen.ref.add(rRejected.ref)).mean().mul(centerRewardsCoefficient));
  const d = lax.stopGradient(diff);
  const metrics: RewardMetrics = {
    accuracy: d.ref.greater(0).astype(np.float32).mean(),
    'rewards/chosen': lax.stopGradient(rChosen).mean(),
    'rewards/rejected': lax.stopGradient(rRejected).mean(),
    'rewards/margins': d.mean(),
  };
  return { loss, metrics };
}

// Reading the reward (last real token, or completion mean) is the reward head's job (model/heads.ts); re-exported for the loss's users.
export { lastTokenValues, maskedMeanValues, poolValues } from '../../model/heads.js';
