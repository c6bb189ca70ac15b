// Pretraining / SFT: the causal language-modeling loss with completion-only masking.
//
//   L = − Σ_{b,t} m_{b,t} · log p_θ(y_{b,t} | y_{b,<t}) / Σ_{b,t} m_{b,t}
//
// i.e. the mean over *counted* tokens (TRL's default: every completion token weighs the same, so long answers
// weigh more than short ones). The mask m carries both padding and completion-only masking: m = 0 on prompt and
// pad tokens, 1 on the completion (TRL `completion_only_loss=True`); all ones on real tokens for pretraining.
//
// Ownership: consumes its array arguments (pass `x.ref` to keep yours); jit-safe.

import { np, lax, type Arr } from '../../engine/index.js';
import { tokenLogprobs } from '../../model/logprobs.js';

export type SftMetrics = {
  /** Fraction of counted targets that are the logits' argmax (TRL `mean_token_accuracy`). */
  mean_token_accuracy: Arr;
  /** Number of counted target tokens in the batch (TRL `num_tokens` counts per step). */
  num_tokens: Arr;
};

/**
 * Aligned form: logits [B,T,V] score targets [B,T] int32 at the same position; mask [B,T] float 0/1.
 * Use this when the data pipeline already shifted inputs/targets (packing does).
 */
export function lmLoss(logits: Arr, targets: Arr, mask: Arr): { loss: Arr; metrics: SftMetrics } {
  const n = mask.ref.sum();
  const correct = np.argmax(lax.stopGradient(logits.ref), -1).equal(targets.ref).astype(np.float32);
  const logp = tokenLogprobs(logits, targets);
  const denom = np.maximum(n.ref, 1);
  const loss = logp.mul(mask.ref).sum().neg().div(denom.ref);
  const acc = correct.mul(mask).sum().div(denom);
  return { loss, metrics: { mean_token_accuracy: acc, num_tokens: n } };
}

/**
 * Shifted form: logits [B,T,V] from ids [B,T]; lossMask [B,T] marks the tokens of `ids` to be predicted
 * (completion tokens), like HF labels with −100 on the rest. Position t predicts ids[t+1].
 */
export function sftLoss(logits: Arr, ids: Arr, lossMask: Arr): { loss: Arr; metrics: SftMetrics } {
  const T = ids.shape[1]!;
  return lmLoss(logits.slice([], [0, T - 1]), ids.slice([], [1, T]), lossMask.slice([], [1, T]));
}

/**
 * Host helper: the completion-only loss mask over token positions of right-padded rows [B,T]:
 * 1 where promptLengths[b] ≤ t < lengths[b] (the completion, including its EOS), else 0.
 * Pass it as `lossMask` to `sftLoss`. With promptLengths all 0 it is the plain padding mask (pretraining).
 */
export function completionMask(promptLengths: ArrayLike<number>, lengths: ArrayLike<number>, T: number): Float32Array {
  const B = lengths.length;
  if (promptLengths.length !== B) throw new Error(`completionMask: ${promptLengths.length} prompt lengths for ${B} rows`);
  const m = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const p = promptLengths[b]!, n = lengths[b]!;
    if (!(0 <= p && p <= n && n <= T)) throw new Error(`completionMask: row ${b} has prompt length ${p}, length ${n}, T ${T}`);
    m.fill(1, b * T + p, b * T + n);
  }
  return m;
}
