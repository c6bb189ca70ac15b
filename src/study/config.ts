// The study's configuration: every default written once, here. `--quick` applies QUICK on top.
// A YAML/JSON file given with --config overrides any field; unknown keys are errors (typos never pass).

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const int = (d: number) => z.number().int().positive().default(d);
const num = (d: number) => z.number().default(d);

export const StudySchema = z
  .object({
    /** Seeds per (method, setting): the unit the bootstrap resamples. */
    seeds: int(3),
    /** First seed; runs use seed, seed+1, … */
    seed: z.number().int().nonnegative().default(0),
    /** Where the base policy comes from: 'shipped' = the pretrained base in the package (assets/base, made by
     *  `alignlab study pretrain`, outside the study's time); 'scratch' = pretrain it here with `pretrain.*` (cached). */
    base: z.enum(['shipped', 'scratch']).default('shipped'),
    /** Another `study pretrain` output to use as the shipped base (default: the package's assets/base). */
    baseDir: z.string().optional(),
    corpus: z
      .object({
        /** Words in the vocabulary besides specials and punctuation: 6,000 leave 4.0% of held-out tokens <unk>
         *  (5,000: 5.1%; 8,000: 2.8%), measured 2026-12-06 on the study's split and tokenizer. */
        vocabSize: int(6000),
        trainPrompts: int(1024),
        heldOutPrompts: int(128),
      })
      .strict()
      .prefault({}),
    /** The policy: a small Llama-architecture decoder over the word vocabulary. */
    model: z
      .object({
        layers: int(2),
        hidden: int(128),
        heads: int(4),
        kvHeads: int(2),
        intermediate: int(352),
        /** Longest sequence the base is pretrained on (packed blocks) and scored on (held-out sentences). */
        context: int(64),
      })
      .strict()
      .prefault({}),
    pretrain: z.object({ steps: int(400), batchSize: int(32), lr: num(3e-3), warmup: z.number().int().nonnegative().default(30) }).strict().prefault({}),
    task: z
      .object({
        /** Continuation length in tokens (the DPO paper's IMDb task sampled short continuations too). */
        maxNewTokens: int(12),
        /** Training sequence length: prompt (≤ 7 tokens with BOS) + continuation. */
        T: int(24),
      })
      .strict()
      .prefault({}),
    prefs: z
      .object({
        /** The shipped draw's recipe (assets/prefs): with source 'shipped' and perSeed, the other seeds draw with these
         *  same sizes, so every seed's pairs and reward model come from one distribution. */
        prompts: int(1024),
        samplesPerPrompt: int(8),
        /** Pairs whose gold rewards differ by less than this are dropped (no clear preference). */
        minGap: num(0.05),
        /** Shares of prompts (with all their pairs) kept for the reward model's reported accuracy / checkpoint selection. */
        heldOutFraction: num(0.15),
        validFraction: num(0.1),
        /** Each seed samples its own pairs from the base and trains its own reward model, so the seed-level
         *  intervals include preference-data and reward-model variability (issue 8). With source 'shipped' the first
         *  seed's draw is the shipped one and the others are drawn here at the same prefs.* / rm.* sizes (refused if
         *  those differ from the shipped recipe). false: one draw for all seeds (--quick). */
        perSeed: z.boolean().default(true),
        /** 'sample': draw pairs from the base and train the reward model here. 'shipped': use the package's
         *  (assets/prefs, made by `alignlab study prefs` from the shipped base, outside the study's time) for the
         *  first seed's draw; DPO and the reward model then see the same, larger pair set. */
        source: z.enum(['sample', 'shipped']).default('shipped'),
        /** Another `study prefs` output to use as the shipped one. */
        shippedDir: z.string().optional(),
      })
      .strict()
      .prefault({}),
    /** Reward model: `evals` validation-accuracy checks spread over `steps`; the best one is kept. `pooling`: the
     *  reward is the mean of per-token scores over the completion ('mean') or the last token's ('last', HF's
     *  sequence classifier). Measured 2026-12-07 on the base's pairs (bench/RESULTS.md): mean 0.706/0.762/0.846
     *  held-out accuracy from 1k/4k/16k pairs, last 0.647/0.742/0.813: the gold reward is a lexicon sum. 480 steps of
     *  32 is about one epoch of the ~16k training pairs of 1,024 prompts × 8 samples (0.844 held-out, assets/prefs). */
    rm: z.object({ steps: int(480), batchSize: int(32), lr: num(1e-3), evals: int(6), pooling: z.enum(['last', 'mean']).default('mean') }).strict().prefault({}),
    eval: z
      .object({
        /** Held-out prompts scored at every checkpoint. */
        prompts: int(128),
        /** Checkpoints per run, evenly spaced (plus step 0, which is the base policy). */
        checkpoints: int(4),
      })
      .strict()
      .prefault({}),
    /** DPO and PPO get the same number of settings (and checkpoints): the frontier takes the best of noisy checkpoints,
     *  so a method with more draws would win by selection. Two each: the 2026-12-07 default study with three (DPO β 1,
     *  PPO β_KL 0.2 added) found both extra settings dominated by the others' earlier checkpoints, and their time now
     *  goes to drawing pairs and a reward model per seed (prefs.perSeed) within the 20-minute budget. */
    dpo: z.object({ betas: z.array(z.number().positive()).default([0.25, 0.5]), steps: int(24), batchSize: int(32), lr: num(1e-3) }).strict().prefault({}),
    simpo: z
      .object({ enabled: z.boolean().default(true), beta: num(2), gamma: num(1), steps: int(24), batchSize: int(32), lr: num(1e-3) })
      .strict()
      .prefault({}),
    ppo: z
      .object({
        /** On reward-model scores normalised to mean 0, std 1 on base samples (the gold reward's std is 0.32 there). */
        klCoefs: z.array(z.number().nonnegative()).default([0.02, 0.05]),
        iterations: int(12),
        /** Completions per rollout (384 episodes over 12 iterations). */
        rolloutBatch: int(32),
        miniBatches: int(2),
        /** PPO(RM) sweep, 2 seeds, 8 rollouts of 32, β_KL 0.05 (bench/RESULTS.md, 2026-12-07): lr 1e-3 with 2 epochs
         *  reached gold 0.388/0.329 at KL 4.2; 4 epochs 0.334/0.325 at KL 6.9; lr 3e-4: 0.163/0.215 at KL 0.3–1.0
         *  (2 epochs), 0.216/0.202 at KL 1.0–1.7 (4 epochs). */
        epochs: int(2),
        /** Measured 2026-12-06 (bench/RESULTS.md, "PPO-GT below the base"): at 3e-3 the first update's approx-KL to the
         *  rollout policy is 1.7 nats with 86% of tokens clipped; KL to the base jumps to 10 nats and the gold reward
         *  falls below the base (0.118 → 0.052) while completions shrink to 3 tokens. At 3e-4: approx-KL 0.07, gold
         *  0.118 → 0.198 at KL 0.7. On the 2026-12-07 base and reward model, 1e-3 is the sweep's best (above).
         *  Linear decay to 0 over the run (TRL). */
        lr: num(1e-3),
        /** PPO with the gold reward (PPO-GT) at this KL coefficient: 0.016 on the raw gold reward (std 0.32 on base
         *  samples) is 0.05 on a normalised one — with whitened advantages only the reward-to-KL ratio matters. */
        gtKlCoef: num(0.016),
        gt: z.boolean().default(true),
        /** EMA reference (Xu et al. 2024): ref ← α·ref + (1−α)·policy per rollout; 1 = the frozen base (the KL the study reports is always to the base). */
        refEmaAlpha: z.number().min(0).max(1).default(1),
        /** TRL whiten_rewards: whiten the shaped per-token rewards of each rollout (advantages are always whitened). */
        whitenRewards: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    grpo: z
      .object({ enabled: z.boolean().default(false), beta: num(0.04), groupSize: int(4), iterations: int(30), promptsPerIteration: int(8), lr: num(1e-3) })
      .strict()
      .prefault({}),
    bestOfN: z.object({ enabled: z.boolean().default(true), ns: z.array(z.number().int().positive()).default([1, 2, 4, 8, 16]) }).strict().prefault({}),
  })
  .strict();

export type StudyConfig = z.infer<typeof StudySchema>;

/**
 * --quick: an answer in about 3 minutes on 2 cores. What frees the time: the shipped base and the shipped preference
 * pairs and reward model (assets/base, assets/prefs: made once by `study pretrain` / `study prefs`), and one process
 * per core. 2 seeds × 2 settings per method (DPO β 0.5/1, PPO β_KL 0.05/0.2), the final checkpoint of each, 128 held-out
 * prompts, best-of-N 1/4. The seeds share the shipped pairs and reward model (the default study draws its own for
 * each further seed). Runs are short to fit: DPO 10 steps of 32 pairs (320 pairs, beside PPO's 8 rollouts of 32 with 2 epochs). Measured
 * 2026-12-07: with DPO at 12 steps of 16 pairs (β 0.1/0.5) quick took 2.4 min in a fresh clone but DPO, given a
 * fraction of PPO's data, lost at KL 4.3 (−0.135 [−0.239, −0.030]) where the default study finds no difference;
 * with 12 steps of 32 pairs and 2 checkpoints per run it took 3.0 min (−0.053 [−0.501, +0.396]). β 0.1 ended beyond
 * PPO's reach, so β 0.5/1 span the KL range PPO covers.
 */
export const QUICK: Record<string, unknown> = {
  seeds: 2,
  prefs: { source: 'shipped', perSeed: false },
  eval: { prompts: 128, checkpoints: 1 },
  dpo: { betas: [0.5, 1], steps: 10 },
  simpo: { enabled: false },
  ppo: { klCoefs: [0.05, 0.2], iterations: 8, rolloutBatch: 32, epochs: 2, gt: false },
  bestOfN: { ns: [1, 4] },
};

function merge(a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b)) out[k] = merge(out[k], v);
    return out;
  }
  return b;
}

/** Resolve the study config: defaults, then --quick, then the user's file (its fields win). */
export function resolveStudyConfig(o: { file?: string; quick?: boolean; defaults?: Record<string, unknown> } = {}): StudyConfig {
  let user: unknown = {};
  if (o.file) {
    const text = readFileSync(o.file, 'utf-8');
    try {
      user = parseYaml(text) ?? {};
    } catch (e) {
      throw new Error(`${o.file}: not valid YAML/JSON (${(e as Error).message})`);
    }
  }
  const raw = merge(merge(o.defaults ?? {}, o.quick ? QUICK : {}), user);
  const r = StudySchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`${o.file ?? 'study config'}: field "${i.path.join('.')}": ${i.message}`);
  }
  return r.data;
}
