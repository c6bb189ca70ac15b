// Per-token log-probabilities, sequence log-probabilities and entropy from logits: the step from a model's output
// to every loss in src/train (SFT, DPO, PPO, GRPO, RLOO) and to scoring (src/model/score.ts).
//
// Ownership: every function consumes its array arguments, like jax-js ops and jitted functions
// (pass `x.ref` to keep yours). All of them are jit-safe: the target pick is `where(equal(arange))`, not
// `takeAlongAxis`, whose gradient fails under jit in jax-js 0.1.25 (shared/ENGINE.md §3).
//
// Alignment: `tokenLogprobs(logits, targets)` scores targets[b,t] with logits[b,t] (already aligned).
// `nextTokenLogprobs(logits, ids)` does the causal shift itself: logits at t score ids[t+1].

import { np, nn, type Arr } from '../engine/index.js';

/** log softmax(logits)[target] per position. logits [..., V] float, targets [...] int32 → [...]. */
export function tokenLogprobs(logits: Arr, targets: Arr): Arr {
  const V = logits.shape[logits.ndim - 1]!;
  const logp = nn.logSoftmax(logits, -1);
  const hit = targets.reshape([...targets.shape, 1]).equal(np.arange(V));
  return np.where(hit, logp, 0).sum(-1);
}

/**
 * tokenLogprobs for inference only (no gradient): the target's logit picked with `takeAlongAxis` minus logsumexp,
 * two passes over [..., V] where the one-hot pick takes five. Scoring (reference log-probs, KL, held-out loss) is
 * the study's most frequent [B, T, V] computation.
 */
export function tokenLogprobsNoGrad(logits: Arr, targets: Arr): Arr {
  const picked = np.takeAlongAxis(logits.ref, targets.reshape([...targets.shape, 1]), -1).reshape(targets.shape);
  return picked.sub(nn.logsumexp(logits, -1));
}

/**
 * Both per-token log-probs and per-token entropies from one log-softmax (PPO wants both from the same logits).
 * H = −Σ_v p_v log p_v. logits [B,T,V], targets [B,T] → [logps [B,T], entropy [B,T]].
 */
export function tokenLogprobsAndEntropy(logits: Arr, targets: Arr): [Arr, Arr] {
  const V = logits.shape[logits.ndim - 1]!;
  const logp = nn.logSoftmax(logits, -1);
  const entropy = np.exp(logp.ref).mul(logp.ref).sum(-1).neg();
  const hit = targets.reshape([...targets.shape, 1]).equal(np.arange(V));
  return [np.where(hit, logp, 0).sum(-1), entropy];
}

/** Causal shift: logits [B,T,V] and token ids [B,T] → log p(ids[t+1] | ids[..t]) as [B,T−1]. */
export function nextTokenLogprobs(logits: Arr, ids: Arr): Arr {
  const T = ids.shape[1]!;
  return tokenLogprobs(logits.slice([], [0, T - 1]), ids.slice([], [1, T]));
}

/** The mask of the targets of `nextTokenLogprobs`: mask [B,T] → mask[:, 1:] as [B,T−1]. */
export function shiftMask(mask: Arr): Arr {
  return mask.slice([], [1, mask.shape[1]!]);
}

/**
 * Sum of masked token log-probs per sequence: log π(y|x) = Σ_t m_t log π(y_t | x, y_<t). [B,T], [B,T] → [B].
 * `average: true` divides by the number of counted tokens (length-normalized, as SimPO and TRL's IPO use).
 */
export function sequenceLogprob(tokenLogps: Arr, mask: Arr, { average = false }: { average?: boolean } = {}): Arr {
  const s = tokenLogps.mul(mask.ref).sum(-1);
  if (!average) {
    mask.dispose();
    return s;
  }
  return s.div(np.maximum(mask.sum(-1), 1));
}

/**
 * Per-token entropy H_t = logsumexp(z_t) − Σ_v softmax(z_t)_v z_t,v (TRL's formula, same value as −Σ p log p),
 * zero where mask is 0. logits [B,T,V], mask [B,T] → [B,T]. Reduce with `maskedMean` (whiten.ts) for a metric.
 */
export function entropyFromLogits(logits: Arr, mask: Arr): Arr {
  const logp = nn.logSoftmax(logits, -1);
  return np.exp(logp.ref).mul(logp).sum(-1).neg().mul(mask);
}

/**
 * Numerically stable log σ(x). jax-js 0.1.25's `nn.logSigmoid` is −log(1 + exp(−x)), which is −∞ at x = −100 in
 * float32. Each branch gets a clamped input so the branch not taken never produces inf/NaN in the gradient,
 * and the gradient at 0 is exactly σ(0) = 0.5 (DPO starts at logits = 0).
 */
export function logSigmoid(x: Arr): Arr {
  const pos = x.ref.greaterEqual(0);
  const xp = np.where(pos.ref, x.ref, 0); // x ≥ 0:  log σ(x) = −log(1 + e^−x)
  const xn = np.where(pos.ref, 0, x); //     x < 0:  log σ(x) = x − log(1 + e^x)
  return np.where(pos, np.log1p(np.exp(xp.neg())).neg(), xn.ref.sub(np.log1p(np.exp(xn))));
}
