// Metrics built on log-likelihoods: multiple choice as lm-evaluation-harness scores it, and perplexity.

/** Index of the largest value (first one on ties, like numpy.argmax). */
export function argmax(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/**
 * lm-eval-harness multiple choice: `acc` picks the choice with the highest summed log-likelihood;
 * `acc_norm` divides each by the choice's length in characters first, so long choices are not
 * penalised for having more tokens (harness: `lls / completion_len`, completion_len = len(choice)).
 */
export function multipleChoice(logprobs: number[], choices: string[], gold: number): { acc: number; acc_norm: number; pred: number; pred_norm: number } {
  if (logprobs.length !== choices.length) throw new Error(`got ${logprobs.length} log-likelihoods for ${choices.length} choices`);
  const pred = argmax(logprobs);
  const pred_norm = argmax(logprobs.map((lp, i) => lp / Math.max(1, choices[i]!.length)));
  return { acc: pred === gold ? 1 : 0, acc_norm: pred_norm === gold ? 1 : 0, pred, pred_norm };
}

/** Perplexity exp(-Σ log p / N tokens); pass several (logprob, tokens) pairs to pool them token-weighted. */
export function perplexity(parts: { logprob: number; tokens: number }[]): number {
  let lp = 0, n = 0;
  for (const p of parts) {
    lp += p.logprob;
    n += p.tokens;
  }
  if (n === 0) return NaN;
  return Math.exp(-lp / n);
}
