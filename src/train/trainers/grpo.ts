// GRPO and RLOO on the real decoder: group baselines instead of a value model (no value model is held or trained).
// Each iteration samples `numGenerations` completions for each of `promptsPerIteration` prompts (a group = the
// completions of one prompt, consecutive rows), scores them, and turns the group's rewards into advantages:
//
//   GRPO (Shao et al. 2024; TRL GRPOTrainer): Â_i = (r_i − mean_group) / (std_group + eps), one per completion,
//        broadcast over its tokens; the KL to the reference is a loss term β·k3 per token (grpo.ts).
//   RLOO (Ahmadian et al. 2024; TRL RLOOTrainer): R_i = r_i − β·Σ_t k1_t (the KL is inside the reward),
//        A_i = R_i − mean of the other k−1 in the group; a sequence-level clipped REINFORCE loss (rloo.ts).
//
// Then `numIterations` passes (TRL GRPO `num_iterations` μ, RLOO's PPO-style epochs) over the rollout in
// `numMiniBatches` shuffled minibatches, each one jitted update of the policy (loop.ts). With a single update
// per rollout π_old is π_θ itself (ratio exactly 1, as TRL), so the old-policy forward pass is skipped unless
// `logKl` asks for the rollout's KL to the reference (`objective/kl`, comparable with PPO's).

import type { Arr } from '../../engine/index.js';
import { keep } from '../../engine/index.js';
import type { Params } from '../../model/decoder.js';
import type { RewardFn } from '../../rewards/types.js';
import { GRPO_DEFAULTS, GRPO_LOSS_TYPES, groupAdvantages, grpoLoss, type GrpoLossType } from '../losses/grpo.js';
import { RLOO_DEFAULTS, rlooAdvantages, rlooLoss } from '../losses/rloo.js';
import { applyMissingEosPenalty } from '../losses/gae.js';
import { sequenceLogprob } from '../../model/logprobs.js';
import { maskedMean } from '../losses/whiten.js';
import {
  completionStats, newCost, newTally, OnlineSource, policyLogprobs, promptIds, Reference, resolvePolicy, RolloutEngine, rowSums, runOnline, sequenceColumns,
  ONLINE_DEFAULTS, type Column, type OnlineBatch, type OnlineOptions, type OnlineSummary, type PolicyInput, type Rollout,
} from './online.js';
import { stripUndefined } from './ppo.js';

export const GROUP_DEFAULTS = {
  /** Distinct prompts per rollout; the rollout has promptsPerIteration × numGenerations completions. */
  promptsPerIteration: 4,
  /** TRL GRPOConfig.num_iterations / RLOO epochs (1): passes over each rollout. */
  numIterations: 1,
  numMiniBatches: 1,
  gradientAccumulationSteps: 1,
  /** TRL `max_completion_length` (256). */
  maxNewTokens: 256,
  /** TRL GRPO/RLOO `temperature` (1.0). */
  temperature: 1.0,
  topK: 0,
  topP: 1,
  missingEosPenalty: null as number | null,
  /** EMA reference (Xu et al. 2024); 1 = frozen. */
  refEmaAlpha: 1,
  refEmaEvery: 1,
  /** Score the rollout under the policy and the reference to log `objective/kl` (costs two forwards when not needed otherwise). */
  logKl: true,
};

/**
 * The parameter trees a GRPO/RLOO run holds: the policy and the reference (`trainGroup` keeps one even at β = 0,
 * to log `objective/kl`), no value model, and a reward model when the reward is learned.
 */
export function groupResidentModels(o: { rewardModel: boolean }): string[] {
  return ['policy', 'reference', ...(o.rewardModel ? ['reward model'] : [])];
}

export const GRPO_TRAINER_DEFAULTS = { ...GROUP_DEFAULTS, ...GRPO_DEFAULTS, /** TRL `num_generations` (8). */ numGenerations: 8 };
export const RLOO_TRAINER_DEFAULTS = { ...GROUP_DEFAULTS, ...RLOO_DEFAULTS, /** TRL RLOO `num_generations` (2). */ numGenerations: 2 };

interface GroupOptions extends OnlineOptions {
  /** The policy to train (borrowed; the trained params are returned). */
  policy: PolicyInput;
  /** Reference params (borrowed). Default: the policy's initial params. */
  ref?: Params;
  reward: RewardFn;
  prompts: readonly (string | number[])[];
  promptsPerIteration?: number;
  numGenerations?: number;
  numIterations?: number;
  numMiniBatches?: number;
  gradientAccumulationSteps?: number;
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  missingEosPenalty?: number | null;
  refEmaAlpha?: number;
  refEmaEvery?: number;
  logKl?: boolean;
}

export interface GrpoTrainOptions extends GroupOptions {
  /** β of the k3 KL loss term (DeepSeekMath 0.04; 0 = no reference needed). */
  beta?: number;
  epsilon?: number;
  epsilonHigh?: number;
  lossType?: GrpoLossType;
  scaleRewards?: boolean;
  eps?: number;
}

export interface RlooTrainOptions extends GroupOptions {
  /** β of the KL penalty inside the reward (TRL 0.05). */
  klCoef?: number;
  clipRange?: number;
  normalizeAdvantages?: boolean;
}

export interface GroupResult {
  /** Trained policy params (owned by the caller). */
  policy: Params;
  summary: OnlineSummary;
}

type P = { policy: Params };

/** What differs between GRPO and RLOO: which forwards a rollout needs, its advantages, and the loss. */
interface GroupAlgo {
  kind: 'grpo' | 'rloo';
  needRef: boolean;
  needOld: boolean;
  process(r: Rollout, scores: Float32Array, G: number): { columns: Record<string, Column>; stats: Record<string, number> };
  loss(p: P, b: OnlineBatch): [Arr, Record<string, Arr>];
}

async function trainGroup(opts: GroupOptions, defaults: typeof GROUP_DEFAULTS & { numGenerations: number }, algo: (o: typeof defaults, cfg: ReturnType<typeof resolvePolicy>['cfg'], T: number, U: number) => GroupAlgo): Promise<GroupResult> {
  const o = { ...defaults, ...stripUndefined(opts) };
  const pol = resolvePolicy(opts.policy);
  const prompts = promptIds(opts.prompts, pol);
  if (typeof opts.reward !== 'function') throw new Error('online RL: `reward` must be a RewardFn');
  const G = o.numGenerations, rows = o.promptsPerIteration * G;
  if (!(Number.isInteger(G) && G >= 2)) throw new Error(`numGenerations must be an integer ≥ 2 (a group needs a baseline), got ${G}`);
  if (rows % (o.numMiniBatches * o.gradientAccumulationSteps) !== 0)
    throw new Error(`promptsPerIteration × numGenerations = ${rows} must be divisible by numMiniBatches × gradientAccumulationSteps = ${o.numMiniBatches * o.gradientAccumulationSteps}`);
  const seed = o.seed ?? ONLINE_DEFAULTS.seed;
  const engine = new RolloutEngine(pol.cfg, {
    maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP,
    maxPromptTokens: Math.max(...prompts.map((p) => p.length)), eosId: pol.eosId, decode: pol.decode,
    forwardBatchSize: Math.min(o.forwardBatchSize ?? ONLINE_DEFAULTS.forwardBatchSize, rows),
  });
  const U = o.numIterations * o.numMiniBatches;
  const a = algo(o, pol.cfg, engine.T, U);
  const reference = new Reference(keep(opts.ref ?? pol.params), o.refEmaAlpha, o.refEmaEvery, opts.runDir);
  const cost = newCost(), tally = newTally();
  const source: OnlineSource<P> = new OnlineSource<P>({
    prompts,
    promptsPerRollout: o.promptsPerIteration,
    seed,
    epochs: o.numIterations,
    miniBatches: o.numMiniBatches,
    gradAccum: o.gradientAccumulationSteps,
    extra: { state: () => ({ ref: reference.state() }), restore: (s) => reference.restore((s as { ref: { file: string | null } }).ref) },
    rollout: async (ctx, batchPrompts, rolloutSeed) => {
      const grouped = batchPrompts.flatMap((p) => Array.from({ length: G }, () => p)); // group = consecutive rows
      const r = await engine.collect({
        policy: ctx.params.policy, ref: a.needRef ? reference.params : null, prompts: grouped, reward: opts.reward, seed: rolloutSeed, scorePolicy: a.needOld, cost,
      });
      const scores = o.missingEosPenalty != null ? applyMissingEosPenalty(r.scores, r.hasEos, o.missingEosPenalty) : r.scores;
      const { columns, stats } = a.process(r, scores, G);
      const t = performance.now();
      await reference.afterRollout(ctx.params.policy, source.rollouts + 1);
      cost.forward += (performance.now() - t) / 1000;
      tally.rollouts++;
      tally.completions += rows;
      tally.generatedTokens += r.completions.reduce((s, c) => s + c.length, 0);
      tally.forwardTokens += r.valid.reduce((s, v) => s + v, 0) * (Number(a.needOld) + Number(a.needRef));
      return {
        rows,
        columns: { ...sequenceColumns(r), mask: { dtype: 'f32', width: r.T - 1, data: r.mask }, ...columns },
        stats: { ...stats, ...completionStats(r), 'val/num_eos_tokens': r.hasEos.reduce((s, e) => s + e, 0), episode: (source.rollouts + 1) * rows },
      };
    },
  });
  try {
    const res = await runOnline<P>({
      opts: { ...opts, seed }, kind: a.kind, params: { policy: keep(pol.params) }, lossFn: a.loss, source, getPolicy: (p) => p.policy, rowsPerRollout: rows, cost, tally,
    });
    return { policy: res.params.policy, summary: res.summary };
  } finally {
    engine.dispose();
    reference.dispose();
  }
}

/** Sequence-level KL (k1, summed over the completion) and entropy estimate of a scored rollout, for `objective/*`. */
function klStats(r: Rollout): Record<string, number> {
  if (!r.logprobs || !r.refLogprobs) return {};
  const kl = rowSums(r.logprobs.map((l, i) => l - r.refLogprobs![i]!), r.mask, r.B);
  const ent = rowSums(r.logprobs, r.mask, r.B);
  return { 'objective/kl': kl.reduce((s, x) => s + x, 0) / r.B, 'objective/entropy': -ent.reduce((s, x) => s + x, 0) / r.B };
}

/** GRPO: group-normalized advantages and the clipped per-token loss with β·k3 (grpo.ts). */
export async function trainGrpo(opts: GrpoTrainOptions): Promise<GroupResult> {
  return trainGroup(opts, GRPO_TRAINER_DEFAULTS, (o0, cfg, T, U) => {
    const o = o0 as typeof GRPO_TRAINER_DEFAULTS & GrpoTrainOptions;
    if (!GRPO_LOSS_TYPES.includes(o.lossType)) throw new Error(`trainGrpo: unknown lossType "${o.lossType}" (use one of: ${GRPO_LOSS_TYPES.join(', ')})`);
    const needOld = U > 1 || o.logKl;
    const useOld = U > 1; // with one update per rollout π_old = sg(π_θ): ratio exactly 1
    const useRef = o.beta !== 0;
    const lossOpts = { beta: o.beta, epsilon: o.epsilon, epsilonHigh: o.epsilonHigh, lossType: o.lossType, maxCompletionLength: o.maxNewTokens };
    return {
      kind: 'grpo',
      needRef: useRef || o.logKl,
      needOld,
      process(r, scores, G) {
        const { advantages, stats } = groupAdvantages(scores, G, { scaleRewards: o.scaleRewards, eps: o.eps });
        const columns: Record<string, Column> = { advantages: { dtype: 'f32', width: 0, data: advantages } };
        if (useOld) columns.oldLogprobs = { dtype: 'f32', width: T - 1, data: r.logprobs! };
        if (useRef) columns.refLogprobs = { dtype: 'f32', width: T - 1, data: r.refLogprobs! };
        return { columns, stats: { ...stats, 'objective/scores': stats.reward, ...klStats(r) } };
      },
      loss(p, b) {
        const c = b.cols;
        const [logp, ent] = policyLogprobs(p.policy, cfg, c.ids!, c.pos!, c.valid!, o.temperature, true) as [Arr, Arr];
        for (const k of ['ids', 'pos', 'valid'] as const) c[k]!.dispose();
        const entropy = maskedMean(ent, c.mask!.ref);
        const { loss, metrics } = grpoLoss({ logprobs: logp, oldLogprobs: c.oldLogprobs, refLogprobs: c.refLogprobs, advantages: c.advantages!, mask: c.mask! }, lossOpts);
        return [loss, { ...(metrics as Record<string, Arr>), entropy, ...b.stats }];
      },
    };
  });
}

/** RLOO: leave-one-out baselines on R = score − β·KL, sequence-level clipped REINFORCE (rloo.ts). */
export async function trainRloo(opts: RlooTrainOptions): Promise<GroupResult> {
  return trainGroup(opts, RLOO_TRAINER_DEFAULTS, (o0, cfg, T, U) => {
    const o = o0 as typeof RLOO_TRAINER_DEFAULTS & RlooTrainOptions;
    const useOld = U > 1;
    const needRef = o.klCoef !== 0 || o.logKl;
    return {
      kind: 'rloo',
      needRef,
      needOld: needRef || useOld,
      process(r, scores, G) {
        const zeros = new Float32Array(r.B * (r.T - 1));
        const lp = r.logprobs ?? zeros;
        const res = rlooAdvantages({ B: r.B, T: r.T - 1, logprobs: lp, refLogprobs: r.refLogprobs ?? lp, mask: r.mask, scores }, G, { klCoef: o.klCoef, normalize: o.normalizeAdvantages });
        const columns: Record<string, Column> = { advantages: { dtype: 'f32', width: 0, data: res.advantages } };
        if (useOld) columns.oldSeqLogprobs = { dtype: 'f32', width: 0, data: Float32Array.from(rowSums(lp, r.mask, r.B)) };
        const stats: Record<string, number> = { ...res.metrics };
        if (!r.refLogprobs) for (const k of ['objective/kl', 'objective/non_score_reward'] as const) delete stats[k];
        return { columns, stats };
      },
      loss(p, b) {
        const c = b.cols;
        const [logp, ent] = policyLogprobs(p.policy, cfg, c.ids!, c.pos!, c.valid!, o.temperature, true) as [Arr, Arr];
        for (const k of ['ids', 'pos', 'valid'] as const) c[k]!.dispose();
        const entropy = maskedMean(ent, c.mask!.ref);
        const seq = sequenceLogprob(logp, c.mask!);
        const { loss, metrics } = rlooLoss({ logprobs: seq, oldLogprobs: c.oldSeqLogprobs, advantages: c.advantages! }, { clipRange: o.clipRange });
        return [loss, { ...(metrics as Record<string, Arr>), 'policy/entropy_avg': entropy, ...b.stats }];
      },
    };
  });
}
