// Evaluating a policy checkpoint on the held-out prompts: sample one continuation per prompt, score it
// with the gold reward, and measure how far the policy moved from the reference.
//
// Every evaluation samples with the same seed (common random numbers): differences between checkpoints
// then come from the policy, not from the draw. KL(π‖π_ref) is estimated from the policy's own samples as
// mean_y [log π(y|x) − log π_ref(y|x)] — unbiased for the sequence-level KL the DPO paper plots.

import type { ModelConfig } from '../formats/config.js';
import type { Params } from '../model/decoder.js';
import { Sampler } from '../model/generate.js';
import { Scorer } from '../model/score.js';
import { vaderCompoundBatch } from '../rewards/vader.js';
import { mean, std } from '../stats/index.js';
import type { Checkpoint, Sample } from './types.js';

export interface EvalPrompt {
  ids: number[];
  text: string;
}

export interface Evaluated {
  checkpoint: Checkpoint;
  samples: Sample[];
  /** Gold reward per prompt (same order as the prompts). */
  rewards: number[];
}

/** A completion scored: tokens (EOS dropped), log π(y|x) by token, and log π_ref(y|x) by token. */
export interface Scored {
  tokens: number[];
  policyLogps: number[];
  refLogps: number[];
  text: string;
  reward: number;
  /** The continuation ended with EOS (rather than at the token limit). */
  eos: boolean;
}

/**
 * Scores continuations for fluency under a model no method trains against (the study's n-gram): the mean
 * negative log-likelihood per token of each (prompt + continuation tokens), nats. Given to the Evaluator.
 */
export type FluencyScorer = (prompts: readonly number[][], continuations: readonly number[][]) => number[];

/** Sequence-level KL estimate of one sample: Σ_t log π(y_t|…) − log π_ref(y_t|…). */
export function sampleKl(policyLogps: readonly number[], refLogps: readonly number[]): number {
  return sum(policyLogps) - sum(refLogps);
}

/** Monte-Carlo per-token entropy of π on its own samples: mean over all generated tokens of −log π(y_t | …). */
export function tokenEntropy(policyLogps: readonly (readonly number[])[]): number {
  return -mean(policyLogps.flat());
}

/** Perplexity of continuations under a scorer from its per-token log-probs: exp(mean over all tokens of −log p). */
export function perplexityOf(logps: readonly (readonly number[])[]): number {
  return Math.exp(-mean(logps.flat()));
}

export function distinctN(seqs: number[][], n: number): number {
  const seen = new Set<string>();
  let total = 0;
  for (const s of seqs)
    for (let i = 0; i + n <= s.length; i++) {
      seen.add(s.slice(i, i + n).join(','));
      total++;
    }
  return total === 0 ? 0 : seen.size / total;
}

/** Win rate of `a` over `b`, paired by prompt: P(a > b) + ½ P(a = b). */
export function pairedWinRate(a: number[], b: number[]): number {
  let w = 0;
  for (let i = 0; i < a.length; i++) w += a[i]! > b[i]! ? 1 : a[i] === b[i] ? 0.5 : 0;
  return a.length ? w / a.length : NaN;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

export class Evaluator {
  readonly sampler: Sampler;
  readonly scorer: Scorer;
  /** The base policy's gold rewards per prompt (for win rates); set by `evaluateBase`. */
  baseRewards: number[] = [];

  constructor(
    readonly cfg: ModelConfig,
    /** The reference (= base/SFT) policy, borrowed for the evaluator's lifetime. */
    readonly ref: Params,
    readonly prompts: EvalPrompt[],
    readonly detok: (ids: number[]) => string,
    readonly opts: { maxNewTokens: number; eosId: number; seed: number; fluency?: FluencyScorer },
  ) {
    this.sampler = new Sampler(cfg);
    this.scorer = new Scorer(cfg);
  }

  /**
   * Sample `n` continuations per prompt from `params` (prompt-major) and score them with the gold reward;
   * `withRef: false` skips the reference forward pass (its log-probs come back empty).
   */
  async sample(params: Params, n = 1, seed = this.opts.seed, withRef = true): Promise<Scored[]> {
    const ids = this.prompts.flatMap((p) => Array<number[]>(n).fill(p.ids));
    const out: Scored[] = [];
    const chunk = 64; // rows per generate call: one compiled shape for every evaluation
    for (let i = 0; i < ids.length; i += chunk) {
      const rows = ids.slice(i, i + chunk);
      const gens = await this.sampler.generate(params, rows, { maxNewTokens: this.opts.maxNewTokens, temperature: 1, seed: seed + i, eosId: this.opts.eosId });
      const seqs = rows.map((p, j) => [...p, ...gens[j]!.tokenIds]);
      const refs = withRef ? await this.scorer.score(this.ref, seqs) : null;
      gens.forEach((g, j) => {
        const start = rows[j]!.length - 1; // logprobs[k] scores token k+1
        const tokens = g.tokenIds.filter((t) => t !== this.opts.eosId);
        const refLogps = refs ? Array.from(refs[j]!.logprobs.subarray(start)) : [];
        out.push({ tokens, policyLogps: g.logprobs, refLogps, text: this.detok(tokens), reward: 0, eos: g.tokenIds.includes(this.opts.eosId) });
      });
    }
    const rewards = vaderCompoundBatch(out.map((s) => s.text));
    out.forEach((s, i) => (s.reward = rewards[i]!));
    return out;
  }

  /** Checkpoint metrics from one scored sample per prompt. `klOverride` replaces the sample estimate (best-of-N). */
  summarize(step: number, scored: Scored[], klOverride?: number): Evaluated {
    const rewards = scored.map((s) => s.reward);
    const promptKls = scored.map((s) => klOverride ?? sampleKl(s.policyLogps, s.refLogps));
    const fluency = this.opts.fluency ? this.opts.fluency(this.prompts.map((p) => p.ids), scored.map((s) => s.tokens)) : null;
    const checkpoint: Checkpoint = {
      step,
      reward: mean(rewards),
      rewardStd: std(rewards),
      n: rewards.length,
      kl: mean(promptKls),
      entropy: tokenEntropy(scored.map((s) => s.policyLogps)),
      distinct1: distinctN(scored.map((s) => s.tokens), 1),
      distinct2: distinctN(scored.map((s) => s.tokens), 2),
      length: mean(scored.map((s) => s.tokens.length)),
      perplexity: perplexityOf(scored.map((s) => s.refLogps)), // under the base model (= the reference)
      winRate: this.baseRewards.length ? pairedWinRate(rewards, this.baseRewards) : 0.5,
      // Per prompt, in prompt order: lets the analysis bootstrap over prompts (reward and KL) as well as seeds.
      promptRewards: rewards,
      promptKls,
      eosRate: mean(scored.map((s) => (s.eos ? 1 : 0))),
      fluency: fluency ? mean(fluency) : NaN,
    };
    const samples = scored.slice(0, 12).map((s, i) => ({ prompt: this.prompts[i]!.text, completion: s.text, reward: s.reward }));
    return { checkpoint, samples, rewards };
  }

  async evaluate(params: Params, step: number): Promise<Evaluated> {
    return this.summarize(step, await this.sample(params));
  }

  /** The base policy itself: KL 0 by definition, win rate ½ against itself. */
  async evaluateBase(): Promise<Evaluated> {
    const r = this.summarize(0, await this.sample(this.ref), 0);
    this.baseRewards = r.rewards;
    r.checkpoint.winRate = 0.5;
    return r;
  }

  dispose(): void {
    this.sampler.dispose();
    this.scorer.dispose();
  }
}
