// Offline trainers on the real decoder: pretraining/SFT, reward modelling, and the DPO family.
// Each one is data → fixed-shape batches → a loss over the model (from its one-screen module) → the
// shared loop (src/train/loop.ts: jitted update, clipping, checkpoints, resume, NaN guard, metrics).

import { free, np, type Arr } from '../../engine/index.js';
import type { ModelConfig } from '../../formats/config.js';
import { forward, type Params } from '../../model/decoder.js';
import { scalarValues, type ScalarModel } from '../../model/heads.js';
import { Scorer } from '../../model/score.js';
import { lmBatch, lmBatchToDevice, pairBatch, ShuffledBatches, type LmBatch, type PairExample, type TokenizedExample } from '../../data/batching.js';
import { lmLoss } from '../losses/sft.js';
import { rewardLoss, lastTokenValues } from '../losses/reward.js';
import { dpoLoss, type DpoLossType } from '../losses/dpo.js';
import { simpoLoss } from '../losses/simpo.js';
import { tokenLogprobs } from '../../model/logprobs.js';
import { lossEvaluator, train, yieldToEventLoop, type Batch, type TrainOptions, type TrainSummary } from '../loop.js';

/** What every offline trainer takes besides its data: the loop's options minus the pieces it builds. */
export type LoopOptions<P> = Omit<TrainOptions<P, never>, 'params' | 'lossFn' | 'data' | 'evalFn'> & {
  batchSize: number;
  /** Rows per eval batch (TRL `per_device_eval_batch_size`); default `batchSize`. */
  evalBatchSize?: number;
  /** Sequence length every batch is padded to (static shapes: one compiled step). */
  T: number;
  padId: number;
  /** Called at eval points with the current params (borrowed), merged into the logged metrics. */
  extraEval?: (params: P, step: number) => Promise<Record<string, number>>;
};

type LmDevice = ReturnType<typeof lmBatchToDevice>;

const tokensOf = (b: LmBatch) => b.lengths.reduce((a, n) => a + n, 0);

/** Fixed eval batches of `evalBatchSize` rows (rebuilt per call: the loop's evaluator consumes them); null without items. */
function evalBatches<E, B>(o: { batchSize: number; evalBatchSize?: number }, items: E[] | undefined, collate: (xs: E[], rows: number) => Batch<B>): (() => Iterable<Batch<B>>) | null {
  if (!items?.length) return null;
  const n = o.evalBatchSize ?? o.batchSize;
  return function* () {
    for (let i = 0; i + n <= items.length; i += n) yield collate(items.slice(i, i + n), n);
  };
}

async function withEval<P, B>(
  o: LoopOptions<P>, params: P, lossFn: TrainOptions<P, B>['lossFn'], data: TrainOptions<P, B>['data'],
  evalItems: (() => Iterable<Batch<B>>) | null,
): Promise<{ params: P; summary: TrainSummary }> {
  const ev = evalItems ? lossEvaluator(lossFn, evalItems) : null;
  const evalFn = ev || o.extraEval
    ? async (p: P, step: number) => ({ ...(ev ? await ev.evalFn(p) : {}), ...(o.extraEval ? await o.extraEval(p, step) : {}) })
    : undefined;
  try {
    return await train<P, B>({ ...o, params, lossFn, data, evalFn });
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
  const collate = (xs: TokenizedExample[], rows = o.batchSize): Batch<LmDevice> => {
    const b = lmBatch(xs, o.T, { padId: o.padId, completionOnly: o.completionOnly, rows });
    return { batch: lmBatchToDevice(b), tokens: tokensOf(b) };
  };
  const lossFn = (p: Params, b: LmDevice) => {
    const { loss, metrics } = lmLoss(forward(p, cfg, b.input, b.pos, b.valid), b.target.ref, b.weight.ref);
    free([b.input, b.pos, b.valid]);
    b.target.dispose();
    b.weight.dispose();
    return [loss, metrics] as const;
  };
  const data = new ShuffledBatches({ items: o.train, batchSize: o.batchSize, seed: o.seed ?? 0, collate: (xs: TokenizedExample[]) => collate(xs) });
  return withEval(o, o.params, lossFn, data, evalBatches(o, o.eval, collate));
}

// ---- reward model -----------------------------------------------------------------------------

interface PairDevice {
  both: LmDevice; // [2B, T]: chosen rows, then rejected rows
}

/** A preference pair with an optional per-pair margin (a reward-model dataset's `margin` column). */
export type MarginPair = PairExample & { margin?: number };

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
  train: MarginPair[];
  eval?: MarginPair[];
  /** TRL `center_rewards_coefficient`. */
  centerRewardsCoefficient?: number;
  /**
   * Subtract each pair's `margin` inside the Bradley–Terry loss (Llama 2 eq. 2; TRL does when the dataset has the
   * column). Default: on when any pair has one (pairs without one get 0).
   */
  useMargins?: boolean;
}

/** Bradley–Terry reward model: scalar head on the trunk, reward read at the last real token. */
export async function trainRewardModel(o: RewardModelOptions): Promise<{ params: ScalarModel; summary: TrainSummary }> {
  const { cfg } = o;
  const useMargins = o.useMargins ?? [...o.train, ...(o.eval ?? [])].some((p) => p.margin !== undefined);
  type RmDevice = PairDevice & { margin?: Arr };
  const collate = (xs: MarginPair[], rows = o.batchSize): Batch<RmDevice> => {
    const { batch, tokens } = pairDevice(xs, o.T, o.padId, rows);
    if (!useMargins) return { batch, tokens };
    return { batch: { ...batch, margin: np.array(Float32Array.from({ length: rows }, (_, i) => xs[i]?.margin ?? 0)) }, tokens };
  };
  const lossFn = (m: ScalarModel, { both, margin }: RmDevice) => {
    const B = both.input.shape[0]! / 2;
    const values = scalarValues(m.trunk, m.head, cfg, both.input, both.pos, both.valid);
    const r = lastTokenValues(values, both.valid.ref);
    const [rc, rr] = np.split(r, [B], 0) as [Arr, Arr];
    free([both.input, both.pos, both.valid, both.target, both.weight]);
    const { loss, metrics } = rewardLoss(rc, rr, { centerRewardsCoefficient: o.centerRewardsCoefficient, margin });
    return [loss, metrics] as const;
  };
  const data = new ShuffledBatches({ items: o.train, batchSize: o.batchSize, seed: o.seed ?? 0, collate: (xs: MarginPair[]) => collate(xs) });
  return withEval(o, o.model, lossFn, data, evalBatches(o, o.eval, collate));
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
      await yieldToEventLoop(); // a long precompute must not hold off Ctrl-C's handler (the loop stops after its first step)
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
  const collate = (xs: Item[], rows = o.batchSize): Batch<DpoDevice> => {
    const { batch, tokens } = pairDevice(xs, o.T, o.padId, rows);
    const pad = (a: number[]) => Float32Array.from({ length: rows }, (_, i) => a[i] ?? 0);
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
  const data = new ShuffledBatches({ items: trainItems, batchSize: o.batchSize, seed: o.seed ?? 0, collate: (xs: Item[]) => collate(xs) });
  return withEval(o, o.params, lossFn, data, evalBatches(o, evalItems, collate));
}

