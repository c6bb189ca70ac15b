// Scalar heads on the decoder trunk: the reward model's score and PPO's value function.
// A head is a [C, 1] projection of the final hidden state (plus a bias); HF calls it `score`
// (AutoModelForSequenceClassification with num_labels = 1).

import { np, Rng, type Arr } from '../engine/index.js';
import type { ModelConfig } from '../formats/config.js';
import { hidden, type Params } from './decoder.js';
import type { HostTensor } from '../engine/tree.js';

export interface HeadParams<T = Arr> {
  w: T; // [C, 1]
  b: T; // [1]
}

/** A decoder trunk with a scalar head: the reward model, or PPO's value model. */
export interface ScalarModel {
  trunk: Params;
  head: HeadParams;
}

export function initHead(cfg: ModelConfig, seed: number): HeadParams<HostTensor> {
  const rng = new Rng(seed), C = cfg.hiddenSize;
  // Small init (std 1/sqrt(C+1), TRL's value head) so initial scores are near 0 and comparable.
  const w = Float32Array.from({ length: C }, () => rng.normal() / Math.sqrt(C + 1));
  return { w: { shape: [C, 1], data: w }, b: { shape: [1], data: new Float32Array(1) } };
}

/** Per-position scalars [B, T] from the trunk's final hidden states. Borrows everything. */
export function scalarValues(trunk: Params, head: HeadParams, cfg: ModelConfig, ids: Arr, pos: Arr, valid: Arr): Arr {
  const [B, T] = ids.shape as [number, number];
  const h = hidden(trunk, cfg, ids, pos, valid).reshape([B * T, cfg.hiddenSize]);
  return np.matmul(h, head.w.ref).add(head.b.ref).reshape([B, T]);
}

/**
 * The value at the last position where mask ≠ 0, per row: values [B,T] (a scalar head's output at every
 * position), mask [B,T] (1 = real token) → [B]. Works for right padding, left padding and anything between,
 * because it looks for the last real token, not at `length − 1`. A row with no real token gives 0.
 * Gradient flows to `values` at the picked position only.
 */
export function lastTokenValues(values: Arr, mask: Arr): Arr {
  const T = values.shape[1]!;
  const pos = np.arange(T);
  const last = np.where(mask.greater(0), pos.ref, -1).max(-1); // [B] int32, −1 when the row is empty
  const pick = last.reshape([-1, 1]).equal(pos); //                 [B,T] one-hot of that position
  return np.where(pick, values, 0).sum(-1);
}

/**
 * The mean of `values` over the positions where mask ≠ 0, per row: values [B,T], mask [B,T] (1 = a completion token)
 * → [B]. With the completion mask this makes the reward a sum of per-token scores divided by the completion's
 * length: a contextual bag of words, which learns a lexicon-like reward (VADER sentiment) from far fewer pairs than
 * one read at the last token. A row with no masked position gives 0. Consumes both arguments.
 */
export function maskedMeanValues(values: Arr, mask: Arr): Arr {
  const n = mask.ref.sum(-1);
  return values.mul(mask).sum(-1).div(np.maximum(n, 1));
}

/**
 * Where a scalar model's sequence score is read: 'last' = at the last real token (HF *ForSequenceClassification,
 * TRL; the default), 'mean' = the mean over the completion tokens (`maskedMeanValues`).
 */
export type Pooling = 'last' | 'mean';
export const POOLINGS = ['last', 'mean'] as const satisfies readonly Pooling[];

/**
 * Per-position values [B,T] → one score per row [B]: `valid` (1 = real token) for 'last', `completion`
 * (1 = a completion token; prompt and padding 0) for 'mean'. Consumes `values`; borrows the masks.
 */
export function poolValues(values: Arr, pooling: Pooling, masks: { valid: Arr; completion?: Arr }): Arr {
  if (pooling === 'last') return lastTokenValues(values, masks.valid.ref);
  if (!masks.completion) throw new Error("poolValues: pooling 'mean' needs the completion mask");
  return maskedMeanValues(values, masks.completion.ref);
}
