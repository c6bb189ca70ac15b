// From tokenized examples to fixed-shape batches. Shapes are static ([B, T] every step) because the
// jitted step recompiles for every new shape (shared/ENGINE.md §11 #12): we pad, never trim to the
// longest example of a batch.
//
// Causal-LM convention used by every loss here: `input[b, j]` is token j, `target[b, j]` is token j+1
// and `weight[b, j]` is 1 where that prediction counts (a real next token, and for completion-only
// loss, a completion token). `valid[b, j]` is the attention mask (1 = real token).

import { Rng, np, type Arr } from '../engine/index.js';
import type { Batch, DataSource } from './source.js';

export interface TokenizedExample {
  ids: number[];
  /** Index of the first completion token: with completion-only loss, only predictions of tokens at ≥ this count. */
  completionStart?: number;
}

export interface LmBatch {
  B: number;
  T: number;
  input: Int32Array; // [B, T]
  target: Int32Array; // [B, T]
  weight: Float32Array; // [B, T]
  valid: Float32Array; // [B, T]
  /** Position ids [B, T]: 0…T−1 on every row (right padding). */
  pos: Int32Array;
  /** Real tokens per row (after truncation). */
  lengths: number[];
}

export interface LmBatchOptions {
  padId: number;
  /** Loss only on completion tokens (TRL's completion_only_loss). Rows without completionStart count everything. */
  completionOnly?: boolean;
  /** Longer examples are cut at T ('truncate', TRL's default) or rejected ('error'). */
  overflow?: 'truncate' | 'error';
  /** Rows to pad the batch to (fixed B); padding rows have weight 0 everywhere. */
  rows?: number;
}

/** Right-padded causal-LM batch (training). */
export function lmBatch(examples: TokenizedExample[], T: number, o: LmBatchOptions): LmBatch {
  const B = o.rows ?? examples.length;
  if (examples.length > B) throw new Error(`lmBatch: ${examples.length} examples do not fit ${B} rows`);
  const input = new Int32Array(B * T).fill(o.padId);
  const target = new Int32Array(B * T).fill(o.padId);
  const weight = new Float32Array(B * T);
  const valid = new Float32Array(B * T);
  const lengths: number[] = [];
  examples.forEach((ex, b) => {
    if (ex.ids.length > T && o.overflow === 'error') throw new Error(`lmBatch: example ${b} has ${ex.ids.length} tokens, more than T=${T}`);
    const ids = ex.ids.length > T ? ex.ids.slice(0, T) : ex.ids;
    const L = ids.length;
    lengths.push(L);
    const start = o.completionOnly && ex.completionStart !== undefined ? ex.completionStart : 1;
    for (let j = 0; j < L; j++) {
      input[b * T + j] = ids[j]!;
      valid[b * T + j] = 1;
      if (j + 1 < L) {
        target[b * T + j] = ids[j + 1]!;
        if (j + 1 >= start) weight[b * T + j] = 1;
      }
    }
  });
  for (let b = examples.length; b < B; b++) lengths.push(0);
  const pos = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) pos[i] = i % T;
  return { B, T, input, target, weight, valid, pos, lengths };
}

/** The device arrays of an LmBatch: { input, target, pos (int32), weight, valid (float32) }, each [B, T]. */
export function lmBatchToDevice(b: LmBatch): { input: Arr; target: Arr; pos: Arr; weight: Arr; valid: Arr } {
  const shape = [b.B, b.T];
  return {
    input: np.array(b.input, { dtype: np.int32, shape }),
    pos: np.array(b.pos, { dtype: np.int32, shape }),
    target: np.array(b.target, { dtype: np.int32, shape }),
    weight: np.array(b.weight, { shape }),
    valid: np.array(b.valid, { shape }),
  };
}

export interface LeftPadded {
  B: number;
  T: number;
  ids: Int32Array; // [B, T], prompts flush right
  valid: Float32Array; // [B, T]
  /** Position id of each slot: index among the row's real tokens (0 on padding). */
  positions: Int32Array;
  lengths: number[];
}

/** Left-padded prompts for batched generation: the next token of every row is at column T. */
export function padLeft(seqs: number[][], T: number, padId: number): LeftPadded {
  const B = seqs.length;
  const ids = new Int32Array(B * T).fill(padId);
  const valid = new Float32Array(B * T);
  const positions = new Int32Array(B * T);
  const lengths: number[] = [];
  seqs.forEach((s, b) => {
    // Too long: keep the end, which is what the model continues from.
    const keep = s.length > T ? s.slice(s.length - T) : s;
    const off = T - keep.length;
    lengths.push(keep.length);
    keep.forEach((t, j) => {
      ids[b * T + off + j] = t;
      valid[b * T + off + j] = 1;
      positions[b * T + off + j] = j;
    });
  });
  return { B, T, ids, valid, positions, lengths };
}

/**
 * Packing for pretraining / SFT (HF's group_texts, TRL's "wrapped" packing): concatenate the
 * sequences with an EOS after each, cut into blocks of exactly T tokens, and drop the ragged tail.
 * Blocks cross document boundaries; that is the point (no padding wasted).
 */
export function pack(seqs: number[][], T: number, eosId: number | null): number[][] {
  if (!(T >= 2)) throw new Error(`pack: T must be at least 2, got ${T}`);
  const stream: number[] = [];
  for (const s of seqs) {
    for (const t of s) stream.push(t);
    if (eosId !== null && s[s.length - 1] !== eosId) stream.push(eosId);
  }
  const out: number[][] = [];
  for (let i = 0; i + T <= stream.length; i += T) out.push(stream.slice(i, i + T));
  return out;
}

export interface PairExample {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

export interface PairBatch {
  chosen: LmBatch;
  rejected: LmBatch;
}

/**
 * Preference pairs → two right-padded batches whose weights cover the completion tokens only (the
 * log-probability DPO and reward models compare). A prompt longer than `maxPromptLength` keeps its
 * end (TRL's keep_end); then prompt+completion is cut at T.
 */
export function pairBatch(pairs: PairExample[], T: number, o: { padId: number; maxPromptLength?: number; rows?: number }): PairBatch {
  const side = (which: 'chosen' | 'rejected') =>
    lmBatch(
      pairs.map((p) => {
        const prompt = o.maxPromptLength !== undefined && p.prompt.length > o.maxPromptLength ? p.prompt.slice(p.prompt.length - o.maxPromptLength) : p.prompt;
        return { ids: [...prompt, ...p[which]], completionStart: prompt.length };
      }),
      T,
      { padId: o.padId, completionOnly: true, rows: o.rows },
    );
  return { chosen: side('chosen'), rejected: side('rejected') };
}

// ---- a resumable, shuffled batch source ------------------------------------------------------

export interface ShuffledBatchesOptions<E, B> {
  items: E[];
  batchSize: number;
  seed: number;
  /** Build device arrays (consumed by the loop) from the items of one batch. */
  collate: (items: E[]) => Batch<B>;
  /** Reshuffle every epoch (default true); false keeps file order. */
  shuffle?: boolean;
}

export interface ShuffledBatchesState {
  epoch: number;
  index: number;
}

/**
 * Endless batches over a list, reshuffled every epoch. The order of epoch e depends only on
 * (seed, e), so the position is two integers and a restored source replays exactly. The last
 * incomplete batch of an epoch is dropped (static shapes).
 */
export class ShuffledBatches<E, B> implements DataSource<B, unknown> {
  private epoch = 0;
  private index = 0;
  private order: number[] = [];
  private orderEpoch = -1;
  constructor(private readonly o: ShuffledBatchesOptions<E, B>) {
    if (o.items.length < o.batchSize)
      throw new Error(`ShuffledBatches: ${o.items.length} items are fewer than one batch of ${o.batchSize}`);
  }
  get batchesPerEpoch(): number {
    return Math.floor(this.o.items.length / this.o.batchSize);
  }
  private orderFor(epoch: number): number[] {
    if (this.orderEpoch !== epoch) {
      const idx = this.o.items.map((_, i) => i);
      this.order = this.o.shuffle === false ? idx : new Rng((this.o.seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0).shuffle(idx);
      this.orderEpoch = epoch;
    }
    return this.order;
  }
  next(): Batch<B> {
    if (this.index >= this.batchesPerEpoch) {
      this.epoch++;
      this.index = 0;
    }
    const order = this.orderFor(this.epoch);
    const bs = this.o.batchSize;
    const items = order.slice(this.index * bs, (this.index + 1) * bs).map((i) => this.o.items[i]!);
    this.index++;
    return this.o.collate(items);
  }
  /** Fractional epochs done (TRL logs `epoch`). */
  get epochProgress(): number {
    return this.epoch + this.index / this.batchesPerEpoch;
  }
  state(): ShuffledBatchesState {
    return { epoch: this.epoch, index: this.index };
  }
  restore(s: unknown): void {
    const st = s as ShuffledBatchesState;
    if (!st || !Number.isInteger(st.epoch) || !Number.isInteger(st.index)) throw new Error(`ShuffledBatches: bad saved position ${JSON.stringify(s)}`);
    this.epoch = st.epoch;
    this.index = st.index;
  }
}
