// Scoring token sequences under a model: per-token log-probs log π(x_t | x_<t),
// computed on the device in one jitted forward. Used by evaluation (KL to the reference, perplexity
// under the base model) and by the online trainers (reference and old-policy log-probs).

import { compile, i32, keep, type Arr } from '../engine/index.js';
import type { ModelConfig } from '../formats/config.js';
import { forward, type Params } from './decoder.js';
import { tokenLogprobsNoGrad } from './logprobs.js';

export interface ScoredSequence {
  /** logprobs[j] = log p(seq[j+1] | seq[..j]), j = 0 … len−2. */
  logprobs: Float32Array;
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** Right-pad rows of token ids to [B, T] with position ids and validity (host arrays). */
export function rightPad(seqs: number[][], T: number, padId = 0) {
  const B = seqs.length, ids = new Int32Array(B * T).fill(padId), pos = new Int32Array(B * T), valid = new Int32Array(B * T);
  seqs.forEach((s, b) => {
    if (s.length > T) throw new Error(`sequence of ${s.length} tokens does not fit T=${T}`);
    s.forEach((t, j) => {
      ids[b * T + j] = t;
      pos[b * T + j] = j;
      valid[b * T + j] = 1;
    });
  });
  return { ids, pos, valid };
}

export class Scorer {
  private fn: ((p: Params, ids: Arr, pos: Arr, valid: Arr) => Arr) & { dispose(): void };

  constructor(readonly cfg: ModelConfig) {
    // Log-probs only: no caller (reference log-probs, KL, perplexity, held-out loss) reads an entropy, and each pass
    // over [B, T, V] counts at the study's 6,040-token vocabulary (with the takeAlongAxis pick: 64×24 rows scored in
    // 0.55 s instead of 0.66 s, measured 2026-12-07 under load).
    this.fn = compile((p: Params, ids: Arr, pos: Arr, valid: Arr) => {
      const T = ids.shape[1]!;
      const logits = forward(p, cfg, ids, pos, valid).slice([], [0, T - 1]);
      return tokenLogprobsNoGrad(logits, ids.ref.slice([], [1, T]));
    });
  }

  /** Per-token log-probs and entropies of each sequence under `params` (borrowed). */
  async score(params: Params, seqs: number[][]): Promise<ScoredSequence[]> {
    const B = seqs.length;
    if (B === 0) return [];
    const longest = Math.max(...seqs.map((s) => s.length));
    const T = Math.min(roundUp(Math.max(longest, 2), 8), Math.max(this.cfg.maxPositions, longest));
    const { ids, pos, valid } = rightPad(seqs, T);
    const l = (await this.fn(keep(params), i32(ids, [B, T]), i32(pos, [B, T]), i32(valid, [B, T])).data()) as Float32Array;
    return seqs.map((s, b) => ({ logprobs: Float32Array.from(l.subarray(b * (T - 1), b * (T - 1) + s.length - 1)) }));
  }

  dispose(): void {
    this.fn.dispose();
  }
}
