// PPO for RLHF on the real decoder (Ouyang et al. 2022; Huang et al. 2024 "The N+ Implementation Details of RLHF
// with PPO"; Xu et al. 2024; TRL's PPOTrainer). One PPO iteration:
//
//   1. rollout (online.ts): sample `batchSize` completions with the policy; log π_old and log π_ref by a forward
//      pass; V_old with the value model; the reward function's score per completion;
//   2. host processing (ppo.ts `ppoAdvantages`): per-token −β·KL (k1 or k3), score on the last token minus the
//      missing-EOS penalty, optional reward whitening, GAE(γ, λ), advantage whitening; the KL controller is
//      fed the measured KL (adaptive: Ziegler et al. 2019);
//   3. `ppoEpochs` passes over the rollout in `numMiniBatches` shuffled minibatches, each one jitted update of
//      {policy, value} together (loop.ts): clipped policy loss + vf_coef × clipped value loss, one AdamW and
//      one global-norm clip over both, as TRL's PolicyAndValueWrapper.
//
// Models held: policy (trained), value model (trained), reference (frozen, or EMA-updated every N rollouts as
// in Xu et al. 2024), reward (a RewardFn: a learned RewardModel or a gold function).
// The value model does NOT share the policy's trunk (TRL's PPOTrainer): it is its own decoder trunk + scalar
// head, initialised from the reward model's weights when one is given (TRL and Huang et al.), else from the
// policy's trunk with a fresh head. `valueModel: 'shared'` puts the head on the policy's trunk instead (one
// forward for both; the value loss then also moves the policy's features).
// Dropout is off by construction: our decoder has no dropout layers (Huang et al. and TRL turn it off so that
// log-probs at rollout and at update time agree).
//
// The rollout and its minibatches are a DataSource of the shared loop, so PPO gets the loop's jitted update,
// clipping, LR schedule, checkpoints and exact resume (buffer, KL coefficient and EMA reference included),
// NaN guard and metrics (TRL names, one row per update; the rollout's `objective/*` repeat on each of its rows).

import { compile, keep, np, type Arr } from '../../engine/index.js';
import type { ModelConfig } from '../../formats/config.js';
import { hidden, lmHead, type Params } from '../../model/decoder.js';
import { initHead, scalarValues, type HeadParams, type ScalarModel } from '../../model/heads.js';
import { tokenLogprobsAndEntropy } from '../../model/logprobs.js';
import type { RewardFn } from '../../rewards/types.js';
import type { RewardModel } from '../../rewards/model.js';
import { PPO_DEFAULTS, ppoLoss } from '../losses/ppo.js';
import { ppoAdvantages } from '../losses/gae.js';
import { klControllerFromState, makeKlController, type KlControllerState, type KlEstimator } from '../losses/kl.js';
import {
  newCost, newTally, OnlineSource, policyLogprobs, promptIds, Reference, resolvePolicy, RolloutEngine, runOnline, sequenceColumns, ONLINE_DEFAULTS,
  type OnlineBatch, type OnlineOptions, type OnlineSummary, type PolicyInput, type RolloutBuffer,
} from './online.js';

export const PPO_TRAINER_DEFAULTS = {
  ...PPO_DEFAULTS,
  /** Completions per rollout (TRL's local batch: per_device_train_batch_size × grad accum × num_mini_batches). */
  batchSize: 16,
  /** TRL `num_mini_batches` (1). */
  numMiniBatches: 1,
  /** TRL `num_ppo_epochs` (4). */
  ppoEpochs: 4,
  gradientAccumulationSteps: 1,
  /** TRL `response_length` (53). */
  maxNewTokens: 53,
  /** TRL `temperature` (0.7). */
  temperature: 0.7,
  topK: 0,
  topP: 1,
  /** Adaptive KL target (sum over a completion, nats); null = fixed β (TRL's default). */
  klTarget: null as number | null,
  /** Adaptive KL horizon in completions (Ziegler et al. 2019; TRL ≤ 0.11: 10000). */
  klHorizon: 10000,
  whitenRewards: false,
  whitenAdvantages: true,
  /** TRL `missing_eos_penalty` (None). */
  missingEosPenalty: null as number | null,
  /** EMA reference (Xu et al. 2024): ref ← α·ref + (1−α)·policy every `refEmaEvery` rollouts; 1 = frozen. */
  refEmaAlpha: 1,
  refEmaEvery: 1,
  valueModel: 'separate' as 'separate' | 'shared',
};

/**
 * The parameter trees a PPO run holds (see the header): policy, reference, a value model unless it is a head on
 * the policy's trunk ('shared'), and a reward model when the reward is learned (a function holds none).
 */
export function ppoResidentModels(o: { valueModel: 'separate' | 'shared'; rewardModel: boolean }): string[] {
  return ['policy', 'reference', ...(o.valueModel === 'separate' ? ['value model'] : []), ...(o.rewardModel ? ['reward model'] : [])];
}

export interface PpoOptions extends OnlineOptions {
  /** The policy to train (its params are borrowed: the trained params are returned, the input is untouched). */
  policy: PolicyInput;
  /** Reference params (borrowed). Default: the policy's initial params. */
  ref?: Params;
  /** The reward of a completion. Default: `rewardModel.rewardFn()`. */
  reward?: RewardFn;
  /** A learned reward model: the value model starts from its trunk and head (borrowed, not trained). */
  rewardModel?: RewardModel;
  /** Prompts (text needs the policy's tokenizer). Each rollout takes the next `batchSize` of a shuffled pass. */
  prompts: readonly (string | number[])[];
  batchSize?: number;
  numMiniBatches?: number;
  ppoEpochs?: number;
  gradientAccumulationSteps?: number;
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Initial β (TRL `kl_coef` 0.05). */
  klCoef?: number;
  klEstimator?: KlEstimator;
  klTarget?: number | null;
  klHorizon?: number;
  gamma?: number;
  lam?: number;
  clipRange?: number;
  clipRangeValue?: number;
  vfCoef?: number;
  whitenRewards?: boolean;
  whitenAdvantages?: boolean;
  missingEosPenalty?: number | null;
  refEmaAlpha?: number;
  refEmaEvery?: number;
  valueModel?: 'separate' | 'shared';
}

/** What PPO trains: the policy and the value model (its own trunk, or a head on the policy's). */
export type PpoParams =
  | { policy: Params; value: { trunk: Params; head: HeadParams } }
  | { policy: Params; valueHead: HeadParams };

export interface PpoResult {
  /** Trained policy params (owned by the caller). */
  policy: Params;
  /** Trained value model (owned by the caller; for 'shared' its trunk is an extra reference to `policy`). */
  value: ScalarModel & { cfg: ModelConfig };
  summary: OnlineSummary;
}

export async function trainPpo(opts: PpoOptions): Promise<PpoResult> {
  const o = { ...PPO_TRAINER_DEFAULTS, ...stripUndefined(opts) };
  const pol = resolvePolicy(opts.policy);
  const cfg = pol.cfg;
  const prompts = promptIds(opts.prompts, pol);
  const reward = opts.reward ?? opts.rewardModel?.rewardFn();
  if (!reward) throw new Error('trainPpo: give a reward function (reward) or a reward model (rewardModel)');
  if (o.valueModel !== 'separate' && o.valueModel !== 'shared') throw new Error(`trainPpo: valueModel must be "separate" or "shared", got "${o.valueModel}"`);
  const rm = opts.rewardModel;
  if (rm && rm.cfg.vocabSize !== cfg.vocabSize)
    throw new Error(`trainPpo: the reward model's vocabulary (${rm.cfg.vocabSize}) differs from the policy's (${cfg.vocabSize}); the value model reads the policy's tokens`);
  const B = o.batchSize;
  if (B % (o.numMiniBatches * o.gradientAccumulationSteps) !== 0)
    throw new Error(`trainPpo: batchSize ${B} must be divisible by numMiniBatches × gradientAccumulationSteps = ${o.numMiniBatches * o.gradientAccumulationSteps}`);

  const engine = new RolloutEngine(cfg, {
    maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP,
    maxPromptTokens: Math.max(...prompts.map((p) => p.length)), eosId: pol.eosId, decode: pol.decode,
    forwardBatchSize: Math.min(o.forwardBatchSize ?? ONLINE_DEFAULTS.forwardBatchSize, B),
  });

  // --- the models -------------------------------------------------------------------------------
  const shared = o.valueModel === 'shared';
  const seed = o.seed ?? ONLINE_DEFAULTS.seed;
  const hostHead = (h: ReturnType<typeof initHead>): HeadParams => ({ w: np.array(h.w.data, { shape: h.w.shape }), b: np.array(h.b.data, { shape: h.b.shape }) });
  let vcfg: ModelConfig = cfg;
  let params: PpoParams;
  if (shared) {
    params = { policy: keep(pol.params), valueHead: rm && rm.cfg.hiddenSize === cfg.hiddenSize ? keep(rm.model.head) : hostHead(initHead(cfg, seed + 1)) };
  } else if (rm) {
    vcfg = rm.cfg;
    params = { policy: keep(pol.params), value: { trunk: keep(rm.model.trunk), head: keep(rm.model.head) } };
  } else {
    const { lmHead: _unused, ...trunk } = pol.params; // the value trunk needs no LM head
    params = { policy: keep(pol.params), value: { trunk: keep(trunk as Params), head: hostHead(initHead(cfg, seed + 1)) } };
  }
  const reference = new Reference(keep(opts.ref ?? pol.params), o.refEmaAlpha, o.refEmaEvery, opts.runDir);
  const T = engine.T;
  const valueOf = (p: PpoParams) => ('value' in p ? p.value : { trunk: p.policy, head: p.valueHead });
  // V(s_j) for the action at j+1: the value at position j, columns 0…T−2 (TRL: values[:, context_length−1 : −1]).
  const valueFn = compile((v: { trunk: Params; head: HeadParams }, ids: Arr, pos: Arr, valid: Arr) =>
    scalarValues(v.trunk, v.head, vcfg, ids, pos, valid).slice([], [0, T - 1]),
  );

  // --- rollouts ---------------------------------------------------------------------------------
  let kl = makeKlController({ initKlCoef: o.klCoef, target: o.klTarget, horizon: o.klHorizon });
  const cost = newCost(), tally = newTally();
  const source: OnlineSource<PpoParams> = new OnlineSource<PpoParams>({
    prompts,
    promptsPerRollout: B,
    seed,
    epochs: o.ppoEpochs,
    miniBatches: o.numMiniBatches,
    gradAccum: o.gradientAccumulationSteps,
    extra: {
      state: () => ({ kl: kl.state(), ref: reference.state() }),
      restore: (s) => {
        const st = s as { kl: KlControllerState; ref: { file: string | null } };
        kl = klControllerFromState(st.kl);
        reference.restore(st.ref);
      },
    },
    rollout: async (ctx, batchPrompts, rolloutSeed): Promise<RolloutBuffer> => {
      const r = await engine.collect({ policy: ctx.params.policy, ref: reference.params, prompts: batchPrompts, reward, seed: rolloutSeed, scorePolicy: true, cost });
      let t = performance.now();
      const [values] = await engine.rows(valueFn as never, valueOf(ctx.params), r);
      cost.forward += (performance.now() - t) / 1000;
      const coef = kl.value;
      const adv = ppoAdvantages(
        { B, T: T - 1, logprobs: r.logprobs!, refLogprobs: r.refLogprobs!, values: values!, mask: r.mask, scores: r.scores, hasEos: r.hasEos },
        { klCoef: coef, klEstimator: o.klEstimator, missingEosPenalty: o.missingEosPenalty, gamma: o.gamma, lam: o.lam, whitenRewards: o.whitenRewards, whitenAdvantages: o.whitenAdvantages },
      );
      kl.update(adv.metrics['objective/kl'], B);
      t = performance.now();
      await reference.afterRollout(ctx.params.policy, source.rollouts + 1);
      cost.forward += (performance.now() - t) / 1000;
      const genTokens = r.completions.reduce((a, c) => a + c.length, 0);
      tally.rollouts++;
      tally.completions += B;
      tally.generatedTokens += genTokens;
      tally.forwardTokens += r.valid.reduce((a, v) => a + v, 0) * 3; // policy, reference, value
      return {
        rows: B,
        columns: {
          ...sequenceColumns(r),
          mask: { dtype: 'f32', width: T - 1, data: r.mask },
          oldLogprobs: { dtype: 'f32', width: T - 1, data: r.logprobs! },
          oldValues: { dtype: 'f32', width: T - 1, data: values! },
          advantages: { dtype: 'f32', width: T - 1, data: adv.advantages },
          returns: { dtype: 'f32', width: T - 1, data: adv.returns },
        },
        stats: {
          ...adv.metrics,
          'objective/kl_coef': coef,
          'val/mean_length': genTokens / B,
          episode: (source.rollouts + 1) * B,
        },
      };
    },
  });

  // --- the loss: one jitted update of {policy, value} -------------------------------------------
  const lossOpts = { clipRange: o.clipRange, clipRangeValue: o.clipRangeValue, vfCoef: o.vfCoef };
  const temp = o.temperature;
  const lossFn = (p: PpoParams, batch: OnlineBatch): [Arr, Record<string, Arr>] => {
    const c = batch.cols;
    let logp: Arr, ent: Arr, values: Arr;
    if ('valueHead' in p) {
      // Shared trunk: one forward, two heads.
      const h = hidden(p.policy, cfg, c.ids!, c.pos!, c.valid!).slice([], [0, T - 1]);
      let logits = lmHead(p.policy, cfg, h.ref);
      if (temp !== 1) logits = logits.div(temp);
      [logp, ent] = tokenLogprobsAndEntropy(logits, c.ids!.ref.slice([], [1, T]));
      const [b, n, C] = h.shape as [number, number, number];
      values = np.matmul(h.reshape([b * n, C]), p.valueHead.w.ref).add(p.valueHead.b.ref).reshape([b, n]);
    } else {
      [logp, ent] = policyLogprobs(p.policy, cfg, c.ids!, c.pos!, c.valid!, temp, true) as [Arr, Arr];
      values = scalarValues(p.value.trunk, p.value.head, vcfg, c.ids!, c.pos!, c.valid!).slice([], [0, T - 1]);
    }
    for (const k of ['ids', 'pos', 'valid'] as const) c[k]!.dispose();
    const { loss, metrics } = ppoLoss(
      { logprobs: logp, oldLogprobs: c.oldLogprobs!, advantages: c.advantages!, values, oldValues: c.oldValues!, returns: c.returns!, mask: c.mask!, entropy: ent },
      lossOpts,
    );
    return [loss, { ...(metrics as Record<string, Arr>), ...batch.stats }];
  };

  try {
    const r = await runOnline<PpoParams>({
      opts: { ...opts, seed },
      kind: 'ppo',
      params,
      lossFn,
      source,
      getPolicy: (p) => p.policy,
      rowsPerRollout: B,
      cost,
      tally,
    });
    const p = r.params;
    const value = 'value' in p ? { cfg: vcfg, ...p.value } : { cfg, trunk: keep(p.policy), head: p.valueHead };
    return { policy: p.policy, value, summary: r.summary };
  } finally {
    engine.dispose();
    valueFn.dispose();
    reference.dispose();
  }
}

/** Drop keys whose value is undefined so `{ ...defaults, ...opts }` keeps the defaults. */
export function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
