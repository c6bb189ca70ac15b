// Offline trainers on the real decoder: pretraining/SFT, reward modelling, and the DPO family.
// Each one is data → fixed-shape batches → a loss over the model (from its one-screen module) → the
// shared loop (src/train/loop.ts: jitted update, clipping, checkpoints, resume, NaN guard, metrics).

import { free, np, type Arr } from '../../engine/index.js';
import type { ModelConfig } from '../../model/config.js';
import { forward, type Params } from '../../model/decoder.js';
import { scalarValues, type ScalarModel } from '../../model/heads.js';
import { Scorer } from '../../model/score.js';
import { lmBatch, lmBatchToDevice, pairBatch, ShuffledBatches, type LmBatch, type PairExample, type TokenizedExample } from '../../data/batching.js';
import { lmLoss } from '../losses/sft.js';
import { rewardLoss, lastTokenValues } from '../losses/reward.js';
import { dpoLoss, type DpoLossType } from '../losses/dpo.js';
import { simpoLoss } from '../losses/simpo.js';
import { tokenLogprobs } from '../../model/logprobs.js';
import { lossEvaluator, train, type Batch, type TrainOptions, type TrainSummary } from '../loop.js';

/** What every offline trainer takes besides its data: the loop's options minus the pieces it builds. */
export type LoopOptions<P> = Omit<TrainOptions<P, never, never>, 'params' | 'lossFn' | 'data' | 'frozen' | 'evalFn'> & {
  batchSize: number;
  /** Sequence length every batch is padded to (static shapes: one compiled step). */
  T: number;
  padId: number;
  /** Called at eval points with the current params (borrowed), merged into the logged metrics. */
  extraEval?: (params: P, step: number) => Promise<Record<string, number>>;
};

type LmDevice = ReturnType<typeof lmBatchToDevice>;

const tokensOf = (b: LmBatch) => b.lengths.reduce((a, n) => a + n, 0);

/** Fixed eval batches (rebuilt per call: the loop's evaluator consumes them). */
function evalBatches<E, B>(items: E[], batchSize: number, collate: (xs: E[]) => Batch<B>): () => Iterable<Batch<B>> {
  return function* () {
    for (let i = 0; i + batchSize <= items.length; i += batchSize) yield collate(items.slice(i, i + batchSize));
  };
}

async function withEval<P, B, F>(
  o: LoopOptions<P>, params: P, lossFn: TrainOptions<P, B, F>['lossFn'], data: TrainOptions<P, B, F>['data'], frozen: F | undefined,
  evalItems: (() => Iterable<Batch<B>>) | null,
): Promise<{ params: P; summary: TrainSummary }> {
  const ev = evalItems ? lossEvaluator(lossFn, evalItems, frozen) : null;
  const evalFn = ev || o.extraEval
    ? async (p: P, step: number) => ({ ...(ev ? await ev.evalFn(p) : {}), ...(o.extraEval ? await o.extraEval(p, step) : {}) })
    : undefined;
  try {
    return await train<P, B, F>({ ...(o as unknown as TrainOptions<P, B, F>), params, lossFn, data, frozen, evalFn });
  } finally {
    ev?.dispose();
  }
}

// ---- pretraining / SFT ------------------------------------------------------------------------

export interface SftOptions extends LoopOptions<Params> {
  cfg: ModelConfig;
  params: Params; // consumed (the returned params replace it)
  train: TokenizedExample[];
  eval?: TokenizedExample[];
  /** Loss on completion tokens only (rows with completionStart). */
  completionOnly?: boolean;
}

export async function trainSft(o: SftOptions): Promise<{ params: Params; summary: TrainSummary }> {
  const { cfg } = o;
  const collate = (xs: TokenizedExample[]): Batch<LmDevice> => {
    const b = lmBatch(xs, o.T, { padId: o.padId, completionOnly: o.completionOnly, rows: o.batchSize });
    return { batch: lmBatchToDevice(b), tokens: tokensOf(b) };
  };
  const lossFn = (p: Params, b: LmDevice) => {
    const { loss, metrics } = lmLoss(forward(p, cfg, b.input, b.pos, b.valid), b.target.ref, b.weight.ref);
    free([b.input, b.pos, b.valid]);
    b.target.dispose();
    b.weight.dispose();
    return [loss, metrics] as const;
  };
  const data = new ShuffledBatches({ items: o.train, batchSize: o.batchSize, seed: o.seed ?? 0, collate });
  return withEval(o, o.params, lossFn, data, undefined, o.eval?.length ? evalBatches(o.eval, o.batchSize, collate) : null);
}

// ---- reward model -----------------------------------------------------------------------------

interface PairDevice {
  both: LmDevice; // [2B, T]: chosen rows, then rejected rows
}

function pairDevice(pairs: PairExample[], T: number, padId: number, rows: number): { batch: PairDevice; tokens: number } {
  const { chosen, rejected } = pairBatch(pairs, T, { padId, rows });
  const cat = <A extends Int32Array | Float32Array>(a: A, b: A): A => {
    const out = new (a.constructor as { new (n: number): A })(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  };
  const both: LmBatch = {
    B: 2 * chosen.B,
    T,
    input: cat(chosen.input, rejected.input),
    target: cat(chosen.target, rejected.target),
    weight: cat(chosen.weight, rejected.weight),
    valid: cat(chosen.valid, rejected.valid),
    pos: cat(chosen.pos, rejected.pos),
    lengths: [...chosen.lengths, ...rejected.lengths],
  };
  return { batch: { both: lmBatchToDevice(both) }, tokens: tokensOf(both) };
}

export interface RewardModelOptions extends LoopOptions<ScalarModel> {
  cfg: ModelConfig;
  model: ScalarModel; // consumed
  train: PairExample[];
  eval?: PairExample[];
  /** TRL `center_rewards_coefficient`. */
  centerRewardsCoefficient?: number;
}

/** Bradley–Terry reward model: scalar head on the trunk, reward read at the last real token. */
export async function trainRewardModel(o: RewardModelOptions): Promise<{ params: ScalarModel; summary: TrainSummary }> {
  const { cfg } = o;
  const collate = (xs: PairExample[]) => pairDevice(xs, o.T, o.padId, o.batchSize);
  const lossFn = (m: ScalarModel, { both }: PairDevice) => {
    const B = both.input.shape[0]! / 2;
    const values = scalarValues(m.trunk, m.head, cfg, both.input, both.pos, both.valid);
    const r = lastTokenValues(values, both.valid.ref);
    const [rc, rr] = np.split(r, [B], 0) as [Arr, Arr];
    free([both.input, both.pos, both.valid, both.target, both.weight]);
    const { loss, metrics } = rewardLoss(rc, rr, { centerRewardsCoefficient: o.centerRewardsCoefficient });
    return [loss, metrics] as const;
  };
  const data = new ShuffledBatches({ items: o.train, batchSize: o.batchSize, seed: o.seed ?? 0, collate });
  return withEval(o, o.model, lossFn, data, undefined, o.eval?.length ? evalBatches(o.eval, o.batchSize, collate) : null);
}

// ---- DPO, IPO, SimPO ----------------------------------------------------------------------------

export type PreferenceLoss = DpoLossType | 'simpo';

/**
 * The parameter trees a DPO-family run holds: the policy, and the frozen reference unless the loss is
 * reference-free (SimPO). The reference's log-probs are precomputed, but `trainDpo` borrows it for the whole run
 * (run.ts frees it at the end), so it counts as resident.
 */
export function dpoResidentModels(lossType: PreferenceLoss): string[] {
  return lossType === 'simpo' ? ['policy'] : ['policy', 'reference'];
}

export interface DpoTrainOptions extends LoopOptions<Params> {
  cfg: ModelConfig;
  params: Params; // consumed
  /** The frozen reference (borrowed); not needed for SimPO. */
  ref?: Params;
  train: PairExample[];
  eval?: PairExample[];
  lossType?: PreferenceLoss;
  beta?: number;
  labelSmoothing?: number;
  /** SimPO target margin γ. */
  gamma?: number;
}

interface DpoDevice extends PairDevice {
  refChosen: Arr;
  refRejected: Arr;
  lenChosen: Arr;
  lenRejected: Arr;
}

/** Summed completion log-probs of each pair's chosen and rejected under `params`: computed once (TRL precompute_ref_log_probs). */
export async function pairLogps(cfg: ModelConfig, params: Params, pairs: PairExample[]): Promise<{ chosen: number[]; rejected: number[] }> {
  const scorer = new Scorer(cfg);
  const sum = async (which: 'chosen' | 'rejected') => {
    const out: number[] = [];
    for (let i = 0; i < pairs.length; i += 64) {
      const chunk = pairs.slice(i, i + 64);
      const scored = await scorer.score(params, chunk.map((p) => [...p.prompt, ...p[which]]));
      scored.forEach((s, j) => {
        const start = chunk[j]!.prompt.length - 1; // logprobs[k] scores token k+1
        let acc = 0;
        for (let k = start; k < s.logprobs.length; k++) acc += s.logprobs[k]!;
        out.push(acc);
      });
    }
    return out;
  };
  try {
    return { chosen: await sum('chosen'), rejected: await sum('rejected') };
  } finally {
    scorer.dispose();
  }
}

export async function trainDpo(o: DpoTrainOptions): Promise<{ params: Params; summary: TrainSummary }> {
  const { cfg } = o;
  const lossType = o.lossType ?? 'sigmoid';
  if (lossType !== 'simpo' && !o.ref) throw new Error(`trainDpo: loss "${lossType}" needs a reference model`);
  const withRef = async (pairs: PairExample[]) => {
    if (lossType === 'simpo') return pairs.map((p) => ({ ...p, refC: 0, refR: 0 }));
    const lp = await pairLogps(cfg, o.ref!, pairs);
    return pairs.map((p, i) => ({ ...p, refC: lp.chosen[i]!, refR: lp.rejected[i]! }));
  };
  type Item = PairExample & { refC: number; refR: number };
  const collate = (xs: Item[]): Batch<DpoDevice> => {
    const { batch, tokens } = pairDevice(xs, o.T, o.padId, o.batchSize);
    const pad = (a: number[]) => Float32Array.from({ length: o.batchSize }, (_, i) => a[i] ?? 0);
    return {
      batch: {
        ...batch,
        refChosen: np.array(pad(xs.map((x) => x.refC))),
        refRejected: np.array(pad(xs.map((x) => x.refR))),
        lenChosen: np.array(pad(xs.map((x) => Math.min(x.chosen.length, o.T - x.prompt.length)))),
        lenRejected: np.array(pad(xs.map((x) => Math.min(x.rejected.length, o.T - x.prompt.length)))),
      },
      tokens,
    };
  };
  const lossFn = (p: Params, b: DpoDevice) => {
    const { both } = b, B = both.input.shape[0]! / 2;
    const logits = forward(p, cfg, both.input, both.pos, both.valid);
    const seq = tokenLogprobs(logits, both.target.ref).mul(both.weight.ref).sum(-1); // [2B] completion log-probs
    const [pc, pr] = np.split(seq, [B], 0) as [Arr, Arr];
    free([both.input, both.pos, both.valid, both.target, both.weight]);
    const { loss, metrics } =
      lossType === 'simpo'
        ? (free([b.refChosen, b.refRejected]),
          simpoLoss({ chosenLogps: pc, rejectedLogps: pr, chosenLengths: b.lenChosen, rejectedLengths: b.lenRejected }, { beta: o.beta, gamma: o.gamma, labelSmoothing: o.labelSmoothing }))
        : dpoLoss(
            { policyChosen: pc, policyRejected: pr, refChosen: b.refChosen, refRejected: b.refRejected, chosenLengths: b.lenChosen, rejectedLengths: b.lenRejected },
            { beta: o.beta, lossType, labelSmoothing: o.labelSmoothing },
          );
    return [loss, metrics] as const;
  };
  const trainItems = await withRef(o.train);
  const evalItems = o.eval?.length ? await withRef(o.eval) : [];
  const data = new ShuffledBatches({ items: trainItems, batchSize: o.batchSize, seed: o.seed ?? 0, collate });
  return withEval(o, o.params, lossFn, data, undefined, evalItems.length ? evalBatches(evalItems, o.batchSize, collate) : null);
}

