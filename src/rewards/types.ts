// The contract between online RL trainers (PPO, GRPO, RLOO) and whatever judges a completion: a learned reward
// model (rewards/model.ts), the VADER gold reward (rewards/vader.ts), a verifiable checker, a toy function in a test.
// A reward function sees a whole rollout batch at once (a reward model scores it in one forward pass) and returns
// one scalar per sample, in order.

export interface RewardBatch {
  /** Prompt token ids, one row per sample. */
  prompts: number[][];
  /** Completion token ids (the EOS token included when the completion ended with it). */
  completions: number[][];
  /** Decoded completion texts (without EOS), '' when the policy has no tokenizer. */
  texts: string[];
}

export type RewardFn = (batch: RewardBatch) => Promise<number[]>;

/** A RewardFn from a per-sample function of the completion text (e.g. `vaderCompound`). */
export function textReward(fn: (text: string, index: number) => number | Promise<number>): RewardFn {
  return async (batch) => {
    // A policy without a tokenizer hands over empty texts: scoring them would silently give a constant reward.
    if (batch.texts.every((t) => t === '') && batch.completions.some((c) => c.length > 0))
      throw new Error('text reward: the completions have no text (the policy has no tokenizer); give the policy a tokenizer or use tokenReward');
    return Promise.all(batch.texts.map((t, i) => fn(t, i)));
  };
}

/** A RewardFn from a per-sample function of the token ids (toy rewards in tests, verifiable rewards). */
export function tokenReward(fn: (completion: number[], prompt: number[], index: number) => number | Promise<number>): RewardFn {
  return async (batch) => Promise.all(batch.completions.map((c, i) => fn(c, batch.prompts[i]!, i)));
}

/**
 * Call a reward function and check its answer: one finite number per sample. A reward that silently returns
 * NaN or the wrong count would otherwise surface steps later as a NaN loss with no hint of the cause.
 */
export async function scoreBatch(fn: RewardFn, batch: RewardBatch, what = 'reward function'): Promise<Float32Array> {
  const n = batch.completions.length;
  const out = await fn(batch);
  if (!Array.isArray(out) && !ArrayBuffer.isView(out)) throw new Error(`${what}: must return an array of numbers, got ${typeof out}`);
  if (out.length !== n) throw new Error(`${what}: returned ${out.length} scores for ${n} completions`);
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = out[i];
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new Error(`${what}: score ${i} is ${String(v)} (completion text ${JSON.stringify(batch.texts[i]?.slice(0, 80) ?? '')})`);
    scores[i] = v;
  }
  return scores;
}
