// Online RL plumbing shared by PPO, GRPO and RLOO: sample completions from the policy, lay them out as padded
// sequences, score them (old-policy and reference log-probs by a forward pass, the reward function), and feed
// the result to the shared training loop (loop.ts) as a resumable DataSource of minibatches.
//
//   rollout = sample (KV cache, host RNG) → layout [B,T] → forward: log π_old, log π_ref (+ values, PPO)
//             → reward → algorithm's host processing (GAE / group baselines) → buffer of rows
//   update  = `epochs` passes over the buffer in shuffled minibatches, each one jitted step of loop.ts
//
// Layout. Every rollout is prompt ++ completion, right-padded to one fixed length T (longest prompt of the run +
// max new tokens, rounded up to 8): one compiled forward and one compiled train step serve the whole run.
// Per-token arrays are [B, T−1] in next-token layout: column j scores token j+1 given tokens ≤ j, and the
// response mask is 1 where token j+1 is a completion token (EOS included). Position ids are 0…len−1 per row.
//
// Why log-probs from a forward pass and not the sampler's: the sampler computes them on the KV-cache decode path
// (one token at a time, other shapes, other rounding), while the loss recomputes them with the full-sequence
// forward. PPO's ratio π_θ/π_old must be exactly 1 before the first update, which holds only when π_old comes
// from the same computation as π_θ. TRL does the same: it recomputes `logprobs` with a forward pass over
// query+response after generation, and never uses the generation scores (Huang et al. 2024, detail on
// "re-computed log-probs"). Both use the sampling temperature (logits / τ), as TRL.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compile, i32, keep, np, Rng, takeF32, tree, type Arr } from '../../engine/index.js';
import type { ModelConfig } from '../../formats/config.js';
import { forward, type Params } from '../../model/decoder.js';
import { Sampler } from '../../model/generate.js';
import type { LM } from '../../model/lm.js';
import type { Tokenizer } from '../../formats/tokenizer.js';
import { readSafetensors, writeSafetensors } from '../../formats/safetensors.js';
import { scoreBatch, type RewardFn } from '../../rewards/types.js';
import { tokenLogprobsAndEntropy } from '../../model/logprobs.js';
import { hostToTree, listCheckpoints, treeToHost } from '../checkpoint.js';
import { train, type Batch, type DataSource, type StepContext, type TrainSummary } from '../loop.js';
import type { AdamWOptions } from '../optim.js';
import type { ScheduleKind } from '../schedule.js';
import type { DB } from '../../store/db.js';

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;
const now = () => performance.now() / 1000;

// ---- the policy ---------------------------------------------------------------------------------

/** A policy without the LM wrapper: config, device params (borrowed), and optionally a tokenizer for texts. */
export interface PolicySpec {
  cfg: ModelConfig;
  params: Params;
  tokenizer?: Tokenizer;
  /** End-of-sequence id (default: the tokenizer's, else the config's; null = completions never end early). */
  eosId?: number | null;
}

export type PolicyInput = LM | PolicySpec;

export interface ResolvedPolicy {
  cfg: ModelConfig;
  params: Params; // borrowed from the caller
  eosId: number | null;
  decode: (ids: number[]) => string;
  encode: ((text: string) => number[]) | null;
}

export function resolvePolicy(p: PolicyInput): ResolvedPolicy {
  const tok = p.tokenizer;
  if (isLM(p)) return { cfg: p.cfg, params: p.params, eosId: p.eosId, decode: (ids) => tok!.decode(ids, { skipSpecial: true }), encode: (t) => p.encode(t) };
  return {
    cfg: p.cfg,
    params: p.params,
    eosId: p.eosId !== undefined ? p.eosId : (tok?.eosId ?? p.cfg.eosTokenId),
    decode: tok ? (ids) => tok.decode(ids, { skipSpecial: true }) : () => '',
    encode: tok ? (t) => tok.encode(t) : null,
  };
}

const isLM = (p: PolicyInput): p is LM => typeof (p as LM).generateIds === 'function';

/** Prompts as token ids: strings are encoded with the policy's tokenizer. */
export function promptIds(prompts: readonly (string | number[])[], policy: ResolvedPolicy): number[][] {
  if (prompts.length === 0) throw new Error('online RL: no prompts');
  return prompts.map((p, i) => {
    if (typeof p === 'string') {
      if (!policy.encode) throw new Error(`prompt ${i} is text but the policy has no tokenizer: pass token ids or a tokenizer`);
      p = policy.encode(p);
    }
    if (p.length === 0) throw new Error(`prompt ${i} is empty (a model needs one token to condition on: add a BOS token)`);
    for (const t of p) if (!Number.isInteger(t) || t < 0 || t >= policy.cfg.vocabSize) throw new Error(`prompt ${i}: token id ${t} is outside the vocabulary (0…${policy.cfg.vocabSize - 1})`);
    return p;
  });
}

// ---- rollouts -----------------------------------------------------------------------------------

export interface GenerationOptions {
  /** Tokens sampled per completion (TRL `response_length` / `max_completion_length`). */
  maxNewTokens: number;
  /** Sampling temperature, also applied to the logits of every log-prob (TRL). */
  temperature: number;
  topK?: number;
  topP?: number;
}

export interface Rollout {
  B: number;
  /** Padded sequence length; per-token arrays are [B, T−1]. */
  T: number;
  prompts: number[][];
  completions: number[][];
  texts: string[];
  ids: Int32Array; // [B,T]
  pos: Int32Array; // [B,T]
  valid: Int32Array; // [B,T]
  /** [B,T−1]: 1 where token j+1 is a completion token. */
  mask: Float32Array;
  /** [B] 1 when the completion ended with EOS. */
  hasEos: Uint8Array;
  /** [B,T−1] log π_old (forward pass), or null when not asked for. */
  logprobs: Float32Array | null;
  /** [B,T−1] entropy of π_old's next-token distribution. */
  entropy: Float32Array | null;
  /** [B,T−1] log π_ref, or null without a reference. */
  refLogprobs: Float32Array | null;
  /** [B] reward of each completion. */
  scores: Float32Array;
}

/** Seconds spent per phase of online training (the study's cost table). */
export interface OnlineCost {
  generation: number;
  /** Forward passes outside the update: old-policy, reference and value scoring (and a learned RM's forward). */
  forward: number;
  /** The reward function (for a learned RM this is its forward pass). */
  reward: number;
  /** Jitted updates (incl. checkpoint writes and metric logging). */
  update: number;
  eval: number;
}

export const newCost = (): OnlineCost => ({ generation: 0, forward: 0, reward: 0, update: 0, eval: 0 });

type RowFn = ((p: Params, ids: Arr, pos: Arr, valid: Arr) => Arr | Arr[]) & { dispose(): void };

export interface RolloutEngineOptions extends GenerationOptions {
  /** Longest prompt the run will see (sets T). */
  maxPromptTokens: number;
  eosId: number | null;
  decode: (ids: number[]) => string;
  /** Rows per scoring forward (TRL `local_rollout_forward_batch_size`). Default 16. */
  forwardBatchSize?: number;
}

/** Sampling and scoring for one policy config with fixed shapes. */
export class RolloutEngine {
  readonly T: number;
  readonly fb: number;
  private sampler: Sampler;
  private scorer: RowFn;

  constructor(
    readonly cfg: ModelConfig,
    readonly o: RolloutEngineOptions,
  ) {
    const need = o.maxPromptTokens + o.maxNewTokens;
    if (need > cfg.maxPositions)
      throw new Error(`online RL: longest prompt (${o.maxPromptTokens} tokens) + max new tokens (${o.maxNewTokens}) exceeds the model's ${cfg.maxPositions} positions`);
    if (!(o.temperature > 0)) throw new Error(`online RL: temperature must be > 0 (sampling is what the policy gradient needs), got ${o.temperature}`);
    this.T = Math.min(roundUp(Math.max(need, 2), 8), cfg.maxPositions);
    this.fb = o.forwardBatchSize ?? 16;
    this.sampler = new Sampler(cfg);
    this.scorer = compile((p: Params, ids: Arr, pos: Arr, valid: Arr) => policyLogprobs(p, cfg, ids, pos, valid, o.temperature, true) as Arr[]);
  }

  /** Sample one completion per prompt (policy params borrowed), seeded. */
  async sample(policy: Params, prompts: number[][], seed: number) {
    const o = this.o;
    return this.sampler.generate(policy, prompts, { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed, eosId: o.eosId }, o.decode);
  }

  /** Padded sequences, completion mask and EOS flags. */
  layout(prompts: number[][], completions: number[][], eos: boolean[]): Pick<Rollout, 'B' | 'T' | 'ids' | 'pos' | 'valid' | 'mask' | 'hasEos'> {
    const B = prompts.length, T = this.T;
    const ids = new Int32Array(B * T), pos = new Int32Array(B * T), valid = new Int32Array(B * T), mask = new Float32Array(B * (T - 1));
    const hasEos = Uint8Array.from(eos, (e) => (e ? 1 : 0));
    for (let b = 0; b < B; b++) {
      const seq = [...prompts[b]!, ...completions[b]!];
      if (seq.length > T) throw new Error(`online RL: sequence ${b} has ${seq.length} tokens, more than T=${T}`);
      seq.forEach((t, j) => {
        ids[b * T + j] = t;
        pos[b * T + j] = j;
        valid[b * T + j] = 1;
      });
      const P = prompts[b]!.length;
      for (let j = P - 1; j < seq.length - 1; j++) mask[b * (T - 1) + j] = 1;
    }
    return { B, T, ids, pos, valid, mask, hasEos };
  }

  /**
   * Run a compiled per-row function over the rollout in chunks of `forwardBatchSize` rows (the last chunk padded
   * with copies of row 0, results dropped). `fn` returns k arrays [fb, W]; we return k host arrays [B, W].
   */
  async rows(fn: RowFn, params: unknown, r: Pick<Rollout, 'B' | 'T' | 'ids' | 'pos' | 'valid'>): Promise<Float32Array[]> {
    const { B, T } = r, fb = this.fb;
    const outs: Float32Array[] = [];
    for (let s = 0; s < B; s += fb) {
      const n = Math.min(fb, B - s);
      const pick = (a: Int32Array) => {
        const c = new Int32Array(fb * T);
        c.set(a.subarray(s * T, (s + n) * T));
        for (let k = n; k < fb; k++) c.set(a.subarray(0, T), k * T);
        return i32(c, [fb, T]);
      };
      const res = fn(keep(params) as Params, pick(r.ids), pick(r.pos), pick(r.valid));
      const list = Array.isArray(res) ? res : [res];
      const host = await Promise.all(list.map((x) => takeF32(x)));
      host.forEach((h, k) => {
        const W = h.length / fb;
        outs[k] ??= new Float32Array(B * W);
        outs[k]!.set(h.subarray(0, n * W), s * W);
      });
    }
    return outs;
  }

  /**
   * One rollout: sample, lay out, score with the policy (`scorePolicy`) and the reference (when given), reward.
   * Params are borrowed. `cost` accumulates seconds per phase.
   */
  async collect(o: { policy: Params; ref: Params | null; prompts: number[][]; reward: RewardFn; seed: number; scorePolicy: boolean; cost: OnlineCost }): Promise<Rollout> {
    let t = now();
    const gens = await this.sample(o.policy, o.prompts, o.seed);
    o.cost.generation += now() - t;
    const completions = gens.map((g) => g.tokenIds), texts = gens.map((g) => g.text);
    const lay = this.layout(o.prompts, completions, gens.map((g) => g.finishReason === 'eos'));
    t = now();
    let logprobs: Float32Array | null = null, entropy: Float32Array | null = null, refLogprobs: Float32Array | null = null;
    if (o.scorePolicy) [logprobs, entropy] = (await this.rows(this.scorer, o.policy, lay)) as [Float32Array, Float32Array];
    if (o.ref) [refLogprobs] = await this.rows(this.scorer, o.ref, lay);
    o.cost.forward += now() - t;
    t = now();
    const scores = await scoreBatch(o.reward, { prompts: o.prompts, completions, texts });
    o.cost.reward += now() - t;
    return { ...lay, prompts: o.prompts, completions, texts, logprobs, entropy, refLogprobs, scores };
  }

  dispose(): void {
    this.sampler.dispose();
    this.scorer.dispose();
  }
}

/**
 * Per-token log π(ids[j+1] | ids[≤j]) at temperature τ (and entropies) over [B,T] → [B,T−1]. Borrows everything;
 * used by the rollout scorer and by the trainers' losses, so both compute exactly the same thing.
 */
export function policyLogprobs(p: Params, cfg: ModelConfig, ids: Arr, pos: Arr, valid: Arr, temperature: number, withEntropy: boolean): Arr | [Arr, Arr] {
  const T = ids.shape[1]!;
  let logits = forward(p, cfg, ids, pos, valid).slice([], [0, T - 1]);
  if (temperature !== 1) logits = logits.div(temperature);
  const [lp, ent] = tokenLogprobsAndEntropy(logits, ids.ref.slice([], [1, T]));
  if (withEntropy) return [lp, ent];
  ent.dispose();
  return lp;
}

/** Per-sequence sums over the mask: [B, W] values and mask → [B]. */
export function rowSums(x: ArrayLike<number>, mask: ArrayLike<number>, B: number): Float64Array {
  const W = x.length / B, out = new Float64Array(B);
  for (let b = 0; b < B; b++) for (let j = 0; j < W; j++) if (mask[b * W + j]) out[b] += x[b * W + j]!;
  return out;
}

/** Completion-length statistics (TRL GRPO names). */
export function completionStats(r: Rollout): Record<string, number> {
  const lens = r.completions.map((c) => c.length);
  const eos = r.hasEos.reduce((a, b) => a + b, 0);
  return {
    'completions/mean_length': lens.reduce((a, b) => a + b, 0) / r.B,
    'completions/min_length': Math.min(...lens),
    'completions/max_length': Math.max(...lens),
    'completions/clipped_ratio': 1 - eos / r.B,
  };
}

// ---- the reference model (frozen, or EMA-updated as in Xu et al. 2024) ---------------------------

/**
 * ref ← α·ref + (1−α)·policy, leaf by leaf. Xu et al. 2024 ("Is DPO Superior to PPO for LLM Alignment?") list an
 * EMA-updated reference among the factors that made PPO work (with advantage normalization and large batches).
 * α = 1 is a frozen reference; call it once per PPO iteration.
 * Consumes `ref` (it is replaced by the result); leaves `policy` untouched (its references are kept).
 */
export function emaUpdate<T>(ref: T, policy: T, alpha: number): T {
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`emaUpdate: alpha must be in [0, 1], got ${alpha}`);
  return tree.map((r: Arr, p: Arr) => r.mul(alpha).add(p.ref.mul(1 - alpha)), ref as never, policy as never) as T;
}

/**
 * The reference policy. Frozen (α = 1) it costs nothing: jax-js arrays are immutable, so a snapshot is a set of
 * extra references. With α < 1 it follows the policy by EMA every `every` rollouts (Xu et al. 2024), and
 * then it is part of the training state: each update is written to <runDir>/reference/ref-<rollout>.safetensors so
 * a resumed run restores the exact reference its checkpoint saw (files no checkpoint names are pruned).
 */
export class Reference {
  private file: string | null = null;

  /** Takes ownership of `params`. */
  constructor(
    public params: Params,
    readonly alpha: number,
    readonly every: number,
    readonly runDir: string,
  ) {
    if (!(alpha >= 0 && alpha <= 1)) throw new Error(`reference EMA alpha must be in [0, 1], got ${alpha}`);
    if (!(Number.isInteger(every) && every >= 1)) throw new Error(`reference EMA interval must be a positive integer, got ${every}`);
  }

  get ema(): boolean {
    return this.alpha < 1;
  }

  /** After rollout number `rollouts` (1-based) has been used: ref ← α·ref + (1−α)·policy when due. */
  async afterRollout(policy: Params, rollouts: number): Promise<boolean> {
    if (!this.ema || rollouts % this.every !== 0) return false;
    this.params = emaUpdate(this.params, policy, this.alpha);
    const dir = join(this.runDir, 'reference');
    mkdirSync(dir, { recursive: true });
    const name = `ref-${String(rollouts).padStart(8, '0')}.safetensors`;
    writeSafetensors(join(dir, name), await treeToHost(this.params), { format: 'alignlab-ema-reference' });
    this.file = name;
    this.prune(dir);
    return true;
  }

  state(): { file: string | null } {
    return { file: this.file };
  }

  restore(s: { file: string | null } | undefined): void {
    const file = s?.file ?? null;
    if (file === this.file) return;
    if (file === null) throw new Error('resume: the checkpoint has the initial reference but the EMA reference was already updated (restore on a fresh trainer)');
    const path = join(this.runDir, 'reference', file);
    if (!existsSync(path)) throw new Error(`resume: ${path} (the EMA reference of this checkpoint) is missing`);
    const next = hostToTree(this.params, readSafetensors(path), path) as Params;
    tree.dispose(this.params as never);
    this.params = next;
    this.file = file;
  }

  /** Keep the current file and every file a checkpoint's state.json names. */
  private prune(dir: string): void {
    const keepNames = new Set([this.file]);
    for (const c of listCheckpoints(this.runDir)) {
      const txt = readFileSync(join(c.dir, 'state.json'), 'utf-8');
      for (const m of txt.matchAll(/ref-\d+\.safetensors/g)) keepNames.add(m[0]);
    }
    for (const f of readdirSync(dir)) if (/^ref-\d+\.safetensors$/.test(f) && !keepNames.has(f)) rmSync(join(dir, f), { force: true });
  }

  dispose(): void {
    tree.dispose(this.params as never);
  }
}

// ---- the rollout buffer as a DataSource for loop.ts --------------------------------------------

/** Per-row data of a processed rollout: [rows, width] (width 0 = one value per row, shape [b]). */
export interface Column {
  dtype: 'f32' | 'i32';
  width: number;
  data: Float32Array | Int32Array;
}

export interface RolloutBuffer {
  rows: number;
  columns: Record<string, Column>;
  /** Rollout metrics: logged with every update made from this rollout. */
  stats: Record<string, number>;
}

/**
 * A micro-batch: the selected rows of every column, plus the rollout's metrics as scalar arrays. The metrics ride
 * through the jitted step (the loss returns them untouched as aux metrics) so they land in the same
 * metrics.jsonl/SQLite row as the update's losses, without a second logging path.
 */
export interface OnlineBatch {
  cols: Record<string, Arr>;
  stats: Record<string, Arr>;
}

export interface OnlineSourceOptions<P> {
  prompts: number[][];
  promptsPerRollout: number;
  /** Seed of the prompt order (reshuffled every pass over the prompts). */
  seed: number;
  /** Passes over each rollout (TRL `num_ppo_epochs`, GRPO `num_iterations`). */
  epochs: number;
  miniBatches: number;
  gradAccum: number;
  /** Collect and process one rollout for these prompts with `ctx.params` (borrowed), seeded. */
  rollout: (ctx: StepContext<P>, prompts: number[][], seed: number) => Promise<RolloutBuffer>;
  /** Trainer state outside the buffer (KL controller, reference file), checkpointed with it. */
  extra?: { state(): unknown; restore(s: unknown): void };
}

export class OnlineSource<P> implements DataSource<OnlineBatch, P> {
  rollouts = 0;
  /** Wall time when `next` last returned (to time the update that follows). */
  returnedAt = 0;
  private buffer: RolloutBuffer | null = null;
  private queue: number[][] = [];
  private promptEpoch = 0;
  private promptPos = 0;
  private order: number[] = [];

  constructor(readonly o: OnlineSourceOptions<P>) {
    const per = o.promptsPerRollout;
    if (!(Number.isInteger(per) && per >= 1)) throw new Error(`prompts per rollout must be a positive integer, got ${per}`);
    for (const [k, v] of [['epochs', o.epochs], ['mini-batches', o.miniBatches], ['gradient accumulation steps', o.gradAccum]] as const)
      if (!(Number.isInteger(v) && v >= 1)) throw new Error(`${k} must be a positive integer, got ${v}`);
    this.order = this.shuffled(0);
  }

  /** Optimizer updates made from one rollout. */
  get updatesPerRollout(): number {
    return this.o.epochs * this.o.miniBatches;
  }

  private shuffled(epoch: number): number[] {
    return new Rng((this.o.seed * 1000003 + epoch * 7919 + 1) >>> 0).shuffle(this.o.prompts.map((_, i) => i));
  }

  /** The next prompts in a shuffled pass over the prompt set (wrapping into the next pass). */
  private takePrompts(): number[][] {
    const out: number[][] = [];
    while (out.length < this.o.promptsPerRollout) {
      if (this.promptPos >= this.order.length) {
        this.promptEpoch++;
        this.promptPos = 0;
        this.order = this.shuffled(this.promptEpoch);
      }
      out.push(this.o.prompts[this.order[this.promptPos++]!]!);
    }
    return out;
  }

  private async refill(ctx: StepContext<P>): Promise<void> {
    const prompts = this.takePrompts();
    const seed = ctx.rng.int(2 ** 31);
    const buf = await this.o.rollout(ctx, prompts, seed);
    const { miniBatches: M, gradAccum: A } = this.o;
    if (buf.rows % (M * A) !== 0)
      throw new Error(`a rollout of ${buf.rows} rows does not split into ${M} mini-batches × ${A} gradient-accumulation micro-batches`);
    const micro = buf.rows / (M * A);
    this.queue = [];
    for (let e = 0; e < this.o.epochs; e++) {
      const perm = ctx.rng.shuffle(Array.from({ length: buf.rows }, (_, i) => i));
      for (let k = 0; k < M * A; k++) this.queue.push(perm.slice(k * micro, (k + 1) * micro));
    }
    this.buffer = buf;
    this.rollouts++;
  }

  async next(ctx: StepContext<P>): Promise<Batch<OnlineBatch>> {
    if (this.queue.length === 0) await this.refill(ctx);
    const rows = this.queue.shift()!;
    const buf = this.buffer!;
    const cols: Record<string, Arr> = {};
    let tokens = 0;
    for (const [name, c] of Object.entries(buf.columns)) {
      const W = Math.max(c.width, 1);
      const out = c.dtype === 'i32' ? new Int32Array(rows.length * W) : new Float32Array(rows.length * W);
      rows.forEach((r, k) => out.set(c.data.subarray(r * W, (r + 1) * W), k * W));
      const shape = c.width === 0 ? [rows.length] : [rows.length, W];
      cols[name] = c.dtype === 'i32' ? i32(out as Int32Array, shape) : np.array(out as Float32Array, { shape });
      if (name === 'valid') tokens = (out as Int32Array).reduce((a, b) => a + b, 0);
    }
    const stats: Record<string, Arr> = {};
    for (const [k, v] of Object.entries(buf.stats)) stats[k] = np.array(v);
    this.returnedAt = now();
    return { batch: { cols, stats }, tokens };
  }

  state(): unknown {
    const b = this.buffer;
    return {
      rollouts: this.rollouts,
      promptEpoch: this.promptEpoch,
      promptPos: this.promptPos,
      queue: this.queue,
      // The buffer is needed only mid-rollout (a checkpoint between minibatches); typed arrays go as plain arrays.
      buffer:
        b && this.queue.length > 0
          ? { rows: b.rows, stats: b.stats, columns: Object.fromEntries(Object.entries(b.columns).map(([k, c]) => [k, { dtype: c.dtype, width: c.width, data: Array.from(c.data) }])) }
          : null,
      extra: this.o.extra?.state() ?? null,
    };
  }

  restore(state: unknown): void {
    const s = state as { rollouts: number; promptEpoch: number; promptPos: number; queue: number[][]; buffer: null | { rows: number; stats: Record<string, number>; columns: Record<string, { dtype: 'f32' | 'i32'; width: number; data: number[] }> }; extra: unknown };
    if (!s || typeof s.rollouts !== 'number') throw new Error('resume: the checkpoint has no online-RL data state (was it written by another trainer?)');
    this.rollouts = s.rollouts;
    this.promptEpoch = s.promptEpoch;
    this.promptPos = s.promptPos;
    this.order = this.shuffled(s.promptEpoch);
    this.queue = s.queue;
    this.buffer = s.buffer
      ? {
          rows: s.buffer.rows,
          stats: s.buffer.stats,
          columns: Object.fromEntries(
            Object.entries(s.buffer.columns).map(([k, c]) => [k, { dtype: c.dtype, width: c.width, data: c.dtype === 'i32' ? Int32Array.from(c.data) : Float32Array.from(c.data) }]),
          ),
        }
      : null;
    if (this.o.extra) this.o.extra.restore(s.extra);
  }
}

/** The sequence columns every trainer's loss reads. */
export function sequenceColumns(r: Pick<Rollout, 'T' | 'ids' | 'pos' | 'valid'>): Record<string, Column> {
  return {
    ids: { dtype: 'i32', width: r.T, data: r.ids },
    pos: { dtype: 'i32', width: r.T, data: r.pos },
    valid: { dtype: 'i32', width: r.T, data: r.valid },
  };
}

// ---- running a trainer on loop.ts --------------------------------------------------------------

/** Options every online trainer shares (loop, logging, evaluation, cost). */
export interface OnlineOptions {
  runDir: string;
  /** Rollouts (PPO/GRPO/RLOO iterations) of the whole run. */
  iterations: number;
  /** Peak learning rate (TRL's PPO docs use 3e-6 for real models). */
  learningRate?: number;
  /** AdamW options (TRL: AdamW, weight decay 0, eps 1e-8). */
  optimizer?: Omit<AdamWOptions, 'lr'>;
  /** Learning-rate schedule over updates (TRL: linear decay to 0). */
  schedule?: { kind?: ScheduleKind; warmupSteps?: number; minLrRatio?: number };
  /** Global gradient-norm clip over all trained params (TRL `max_grad_norm` 1.0); null = off. */
  maxGradNorm?: number | null;
  seed?: number;
  /** Call `evalFn` every N iterations (and after the last). */
  evalEvery?: number;
  /** Evaluate the policy (params borrowed: do not consume). Keys are logged with an `eval_` prefix. */
  evalFn?: (policy: Params, iteration: number, info: { update: number; episode: number }) => Promise<Record<string, number>> | Record<string, number>;
  /** Checkpoint every N iterations (and after the last). 0 = only at the end. */
  checkpointEvery?: number;
  keepCheckpoints?: number;
  resume?: boolean;
  /** SQLite store for metrics: a handle, a path, or false (default: the loop's, $ALIGNLAB_DB). */
  store?: DB | string | false;
  runId?: string;
  /** Resolved config recorded with the run. */
  config?: unknown;
  progress?: boolean | 'auto';
  signal?: AbortSignal;
  /** Informational lines (resuming, stopping); default: above the progress bar on stderr. */
  log?: (line: string) => void;
  /** Called after each iteration's last update with its logged metrics; return 'stop' to end the run (with a checkpoint). */
  onIteration?: (info: { iteration: number; update: number; metrics: Record<string, number>; policy: Params }) => void | 'stop' | Promise<void | 'stop'>;
  /** Rows per scoring forward pass (TRL `local_rollout_forward_batch_size`). Default 16. */
  forwardBatchSize?: number;
}

export const ONLINE_DEFAULTS = {
  learningRate: 3e-6,
  maxGradNorm: 1.0,
  seed: 0,
  scheduleKind: 'linear' as ScheduleKind,
  forwardBatchSize: 16,
};

/** What this session did (a resumed run counts from the resume). */
export interface OnlineTally {
  rollouts: number;
  completions: number;
  generatedTokens: number;
  /** Tokens run through scoring forwards (policy, reference, value) outside the update. */
  forwardTokens: number;
}

export const newTally = (): OnlineTally => ({ rollouts: 0, completions: 0, generatedTokens: 0, forwardTokens: 0 });

/** An update count as iterations: "iteration 12 (48 updates)", mid-iteration "iteration 3 + 1 of 4 updates (13 updates)". */
export function iterationLabel(updates: number, perIteration: number): string {
  const it = Math.floor(updates / perIteration), rest = updates % perIteration;
  if (perIteration === 1) return `iteration ${it}`;
  return `iteration ${it}${rest ? ` + ${rest} of ${perIteration} updates` : ''} (${updates} updates)`;
}

export interface OnlineSummary extends TrainSummary {
  /** Iterations (rollouts and their updates) done in total; `step` counts updates. */
  iteration: number;
  updatesPerIteration: number;
  /** Rollouts collected in this session. */
  iterations: number;
  /** Completions sampled in this session (TRL's `episode` metric counts them over the whole run). */
  episodes: number;
  generatedTokens: number;
  /**
   * Seconds per phase (wall = summary.wallSeconds; what is left is logging, progress and setup);
   * tokensProcessed = tokens through the updates (summary.tokens) + tokens through scoring forwards.
   */
  cost: OnlineCost & { wall: number; tokensProcessed: number; generatedTokens: number; peakRssMB: number };
}

/**
 * Run `train` with an OnlineSource: iterations × updatesPerRollout updates, evaluation and checkpoints at
 * iteration boundaries, phase timings. `getPolicy` picks the policy out of the trained params P.
 */
export async function runOnline<P>(o: {
  opts: OnlineOptions;
  kind: string;
  params: P;
  lossFn: Parameters<typeof train<P, OnlineBatch>>[0]['lossFn'];
  source: OnlineSource<P>;
  getPolicy: (p: P) => Params;
  rowsPerRollout: number;
  cost: OnlineCost;
  tally: OnlineTally;
}): Promise<{ params: P; summary: OnlineSummary }> {
  const { opts, source, cost } = o;
  const U = source.updatesPerRollout;
  const iterations = opts.iterations;
  if (!(Number.isInteger(iterations) && iterations >= 1)) throw new Error(`iterations must be a positive integer, got ${iterations}`);
  const lr = opts.learningRate ?? ONLINE_DEFAULTS.learningRate;
  let evalSecondsThisStep = 0;
  const r = await train<P, OnlineBatch>({
    runDir: resolve(opts.runDir),
    params: o.params,
    lossFn: o.lossFn,
    data: source,
    steps: iterations * U,
    gradAccum: source.o.gradAccum,
    optimizer: { ...opts.optimizer, weightDecay: opts.optimizer?.weightDecay ?? 0, lr },
    schedule: { kind: opts.schedule?.kind ?? ONLINE_DEFAULTS.scheduleKind, warmupSteps: opts.schedule?.warmupSteps ?? 0, minLrRatio: opts.schedule?.minLrRatio ?? 0 },
    maxGradNorm: opts.maxGradNorm === undefined ? ONLINE_DEFAULTS.maxGradNorm : opts.maxGradNorm,
    evalEvery: opts.evalFn && opts.evalEvery ? opts.evalEvery * U : 0,
    evalFn: opts.evalFn
      ? async (p, step) => {
          const t = now();
          const it = Math.ceil(step / U);
          const res = await opts.evalFn!(o.getPolicy(p), it, { update: step, episode: it * o.rowsPerRollout });
          evalSecondsThisStep = now() - t;
          cost.eval += evalSecondsThisStep;
          return res;
        }
      : undefined,
    checkpointEvery: (opts.checkpointEvery ?? 0) * U,
    keepCheckpoints: opts.keepCheckpoints,
    seed: opts.seed ?? ONLINE_DEFAULTS.seed,
    resume: opts.resume,
    store: opts.store,
    runId: opts.runId,
    kind: o.kind,
    config: opts.config,
    progress: opts.progress,
    signal: opts.signal,
    log: opts.log,
    stepLabel: (n) => iterationLabel(n, U),
    onStep: async (info) => {
      cost.update += Math.max(0, now() - source.returnedAt - evalSecondsThisStep);
      evalSecondsThisStep = 0;
      if (info.step % U !== 0 || !opts.onIteration) return;
      return opts.onIteration({ iteration: info.step / U, update: info.step, metrics: info.metrics, policy: o.getPolicy(info.params) });
    },
  });
  const s = r.summary;
  const { tally } = o;
  return {
    params: r.params,
    summary: {
      ...s,
      iteration: Math.floor(s.step / U),
      updatesPerIteration: U,
      iterations: tally.rollouts,
      episodes: tally.completions,
      generatedTokens: tally.generatedTokens,
      cost: { ...cost, wall: s.wallSeconds, tokensProcessed: s.tokens + tally.forwardTokens, generatedTokens: tally.generatedTokens, peakRssMB: s.peakRssMB },
    },
  };
}
