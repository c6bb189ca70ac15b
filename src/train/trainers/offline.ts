// Offline trainers on the real decoder: pretraining/SFT, reward modelling, and the DPO family.
// Each one is data → fixed-shape batches → a loss over the model (from its one-screen module) → the
// shared loop (src/train/loop.ts: jitted update, clipping, checkpoints, resume, NaN guard, metrics).

import { free, np, type Arr } from '../../engine/index.js';
import type { ModelConfig } from '../../formats/config.js';
import { forward, type Params } from '../../model/decoder.js';
import { poolValues, scalarValues, type Pooling, type ScalarModel } from '../../model/heads.js';
import { Scorer } from '../../model/score.js';
import { lmBatch, lmBatchToDevice, pairBatch, ShuffledBatches, type LmBatch, type PairExample, type TokenizedExample } from '../../data/batching.js';
import { lmLoss } from '../losses/sft.js';
import { rewardLoss } from '../losses/reward.js';
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
  /** Where the reward is read: 'last' real token (default; HF *ForSequenceClassification) or 'mean' over the completion. */
  pooling?: Pooling;
}

/**
 * 1 at each pair's completion tokens, 0 on prompt and padding: [2·rows, T], chosen rows then rejected rows, the
 * layout of `pairDevice` (right padding, prompt + completion cut at T, as `pairBatch` without maxPromptLength).
 */
export function pairCompletionMask(pairs: PairExample[], T: number, rows: number): Float32Array {
  const mask = new Float32Array(2 * rows * T);
  pairs.forEach((p, i) => {
    for (const [row, completion] of [[i, p.chosen], [rows + i, p.rejected]] as const) {
      const end = Math.min(T, p.prompt.length + completion.length);
      for (let j = p.prompt.length; j < end; j++) mask[row * T + j] = 1;
    }
  });
  return mask;
}

/** Bradley–Terry reward model: scalar head on the trunk, reward read at the last real token or averaged over the completion. */
export async function trainRewardModel(o: RewardModelOptions): Promise<{ params: ScalarModel; summary: TrainSummary }> {
  const { cfg } = o;
  const useMargins = o.useMargins ?? [...o.train, ...(o.eval ?? [])].some((p) => p.margin !== undefined);
  const pooling = o.pooling ?? 'last';
  type RmDevice = PairDevice & { margin?: Arr; completion?: Arr };
  const collate = (xs: MarginPair[], rows = o.batchSize): Batch<RmDevice> => {
    const { batch, tokens } = pairDevice(xs, o.T, o.padId, rows);
    const out: RmDevice = { ...batch };
    if (useMargins) out.margin = np.array(Float32Array.from({ length: rows }, (_, i) => xs[i]?.margin ?? 0));
    if (pooling === 'mean') out.completion = np.array(pairCompletionMask(xs, o.T, rows), { shape: [2 * rows, o.T] });
    return { batch: out, tokens };
  };
  const lossFn = (m: ScalarModel, { both, margin, completion }: RmDevice) => {
    const B = both.input.shape[0]! / 2;
    const values = scalarValues(m.trunk, m.head, cfg, both.input, both.pos, both.valid);
    const r = poolValues(values, pooling, { valid: both.valid, completion });
    const [rc, rr] = np.split(r, [B], 0) as [Arr, Arr];
    free([both.input, both.pos, both.valid, both.target, both.weight]);
    completion?.dispose();
    const { loss, metrics } = rewardLoss(rc, rr, { centerRewardsCoefficient: o.centerRewardsCoefficient, margin });
    return [loss, metrics] as const;
  };
  const data = new ShuffledBatches({ items: o.train, batchSize: o.batchSize, seed: o.seed ?? 0, collate: (xs: MarginPair[]) => collate(xs) });
  return withEval(o, o.model, lossFn, data, evalBatches(o, o.eval, collate));
}

// ---- DPO, IPO, SimPO ----------------------------------------------------------------------------

/**
 * The items a run of `batches` draws from ShuffledBatches, whose order depends only on the item count, the seed and
 * the batch size. TRL precomputes reference log-probs for the whole dataset; a run that sees a fraction of a large
 * pair set (the study's) only needs them for the pairs it draws.
 */
export function drawnIndices(n: number, batchSize: number, seed: number, batches: number): Set<number> {
  const src = new ShuffledBatches({ items: Array.from({ length: n }, (_, i) => i), batchSize, seed, collate: (xs: number[]) => ({ batch: xs, tokens: 0 }) });
  const used = new Set<number>();
  for (let b = 0; b < batches && used.size < n; b++) for (const i of src.next().batch) used.add(i);
  return used;
}

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
  // Reference log-probs for the pairs this run draws; the others are never collated (NaN marks them).
  const drawn = [...drawnIndices(o.train.length, o.batchSize, o.seed ?? 0, o.steps * (o.gradAccum ?? 1))].sort((a, b) => a - b);
  const trainItems: Item[] = o.train.map((p) => ({ ...p, refC: NaN, refR: NaN }));
  (await withRef(drawn.map((i) => o.train[i]!))).forEach((x, k) => (trainItems[drawn[k]!] = x));
  const evalItems = o.eval?.length ? await withRef(o.eval) : [];
  const data = new ShuffledBatches({ items: trainItems, batchSize: o.batchSize, seed: o.seed ?? 0, collate: (xs: Item[]) => collate(xs) });
  return withEval(o, o.params, lossFn, data, evalBatches(o, evalItems, collate));
}

