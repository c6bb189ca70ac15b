// Continuous batching for one model: requests join the running batch between decode steps and leave as soon as
// they end, so concurrent clients share every step instead of waiting for each other's whole generation.
//
// The KV cache has B row slots (B bucketed to 1, 2, 4 … maxRows) of Tmax cache slots (a power of two that
// covers every row's prompt and max tokens). Each row has its own cache slot and position id (decodeStep with a
// [B,1] slot, ENGINE.md §5), so one compiled step program serves every step whatever the rows' ages. A newcomer
// is prefilled alone (B=1, left-padded to a multiple of 8: exactly what it would get if it ran alone), and its
// cache is written into a free row with `where`. Rows that end free their slot; the batch shrinks (a gather of
// the busy rows) when at most half its rows are busy, so a lone request decodes at B=1.
//
// A row's numbers do not depend on its batch-mates: its prefill is its own, its cache slots and positions are
// those it would have alone, masked cache slots add exact zeros, and each row samples with its own RNG.
// test/model/scheduler.test.ts checks that outputs are identical alone and mid-batch.

import { compile, i32, keep, np, Rng, takeF32, type Arr } from '../engine/index.js';
import type { ModelConfig } from '../formats/config.js';
import { decodeStep, freeKV, prefill, type KV, type Params } from './decoder.js';
import { appendText, decodeContinuation, sampleRow, type TokenGeneration } from './generate.js';
import { InvalidRequestError, type DecodeRequest, type Generation, type StepBatch } from './serving.js';

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;
const pow2AtLeast = (n: number, min: number) => {
  let p = min;
  while (p < n) p *= 2;
  return p;
};

type Fn<A extends unknown[], R> = ((...a: A) => R) & { dispose(): void };

/** Compiled programs for continuous batching of one config; params are arguments. Shapes are bucketed. */
export class StepPrograms {
  readonly step: Fn<[Params, KV, Arr, Arr, Arr, Arr], [Arr, KV]>;
  /** cache rows gathered by index [Bnew]: grows (extra rows are don't-care copies) or compacts the batch. */
  readonly take: Fn<[KV, Arr], KV>;
  /** row's cache [1,K,Tmax,D] written into batch row `at` (int32 scalar). */
  readonly put: Fn<[KV, KV, Arr], KV>;
  readonly #prefills = new Map<number, Fn<[Params, Arr, Arr, Arr], [Arr, KV]>>();
  readonly #grows = new Map<number, Fn<[KV], KV>>();

  constructor(readonly cfg: ModelConfig) {
    this.step = compile((p: Params, cache: KV, tok: Arr, pos: Arr, slot: Arr, kvValid: Arr) => decodeStep(p, cfg, cache, tok, pos, slot, kvValid));
    this.take = compile((cache: KV, idx: Arr): KV => ({
      k: cache.k.map((x) => np.take(x.ref, idx.ref, 0)),
      v: cache.v.map((x) => np.take(x.ref, idx.ref, 0)),
    }));
    this.put = compile((cache: KV, row: KV, at: Arr): KV => {
      const B = cache.k[0]!.shape[0]!;
      const isRow = np.arange(B, undefined, undefined, { dtype: np.int32 }).equal(at.ref).reshape([B, 1, 1, 1]);
      const out = {
        k: cache.k.map((x, l) => np.where(isRow.ref, row.k[l]!.ref, x.ref)),
        v: cache.v.map((x, l) => np.where(isRow.ref, row.v[l]!.ref, x.ref)),
      };
      isRow.dispose();
      return out;
    });
  }

  /** Prefill [1, P] → next-token logits [1, V] and the row's cache padded to `tmax` slots. */
  prefill(tmax: number) {
    let f = this.#prefills.get(tmax);
    if (!f) {
      f = compile((p: Params, ids: Arr, pos: Arr, valid: Arr) => prefill(p, this.cfg, ids, pos, valid, tmax));
      this.#prefills.set(tmax, f);
    }
    return f;
  }

  /** The batch's cache padded to `tmax` slots (a newcomer needs more room than the rows so far). */
  grow(tmax: number) {
    let f = this.#grows.get(tmax);
    if (!f) {
      const pad = (x: Arr) => np.pad(x.ref, [[0, 0], [0, 0], [0, tmax - x.shape[2]!], [0, 0]]);
      f = compile((cache: KV): KV => ({ k: cache.k.map(pad), v: cache.v.map(pad) }));
      this.#grows.set(tmax, f);
    }
    return f;
  }

  dispose(): void {
    for (const f of [this.step, this.take, this.put, ...this.#prefills.values(), ...this.#grows.values()]) f.dispose();
  }
}

/** What a ContinuousBatch needs from its model (src/model/lm.ts provides it). */
export interface BatchHost {
  readonly cfg: ModelConfig;
  readonly params: Params;
  readonly eosId: number | null;
  readonly programs: StepPrograms;
  encode(text: string): number[];
  /** Token ids → text, special tokens skipped (what a user reads). */
  decodeText(ids: number[]): string;
}

/**
 * Fits a request to the model before it runs (the local: provider cuts long prompts from the left). Returns the
 * prompt ids and max new tokens to use.
 */
export type PrepareRequest = (ids: number[], maxNewTokens: number) => { ids: number[]; maxNewTokens: number };

interface Row {
  req: DecodeRequest;
  done: (g: Generation) => void;
  prompt: number[];
  /** Prompt slots: the prompt is left-padded to P, so generated token i is fed at cache slot P + i. */
  P: number;
  maxNew: number;
  temperature: number;
  topK: number;
  topP: number;
  rng: Rng;
  gen: TokenGeneration;
}

/** A seed for requests that give none: a fresh draw, as OpenAI's API does. */
const freshSeed = () => Math.floor(Math.random() * 0x1_0000_0000);

export class ContinuousBatch implements StepBatch {
  #rows: (Row | null)[] = [];
  #cache: KV | null = null;
  #tmax = 0;
  /** [rows, tmax]: 1 where a row's cache slot holds a real token (its left padding is 0). */
  #kvValid = new Int32Array(0);

  constructor(
    readonly host: BatchHost,
    readonly maxRows: number,
    readonly prepare?: PrepareRequest,
  ) {
    if (!Number.isInteger(maxRows) || maxRows < 1) throw new RangeError(`maxRows must be an integer >= 1, got ${maxRows}`);
  }

  get size(): number {
    let n = 0;
    for (const r of this.#rows) if (r) n++;
    return n;
  }

  /** Row slots in the cache now (a power of two up to maxRows). */
  get capacity(): number {
    return this.#rows.length;
  }

  async add(req: DecodeRequest, done: (g: Generation) => void): Promise<void> {
    const cfg = this.host.cfg, o = req.opts;
    if (this.size >= this.maxRows) throw new Error(`batch is full (${this.maxRows} rows)`);
    let ids = this.host.encode(req.prompt), maxNew = o.maxNewTokens;
    if (this.prepare) ({ ids, maxNewTokens: maxNew } = this.prepare(ids, maxNew));
    if (ids.length === 0) throw new InvalidRequestError('the prompt has no tokens (add a BOS token)', 'prompt');
    if (!Number.isInteger(maxNew) || maxNew < 0) throw new InvalidRequestError(`max tokens must be an integer >= 0, got ${maxNew}`, 'max_tokens');
    if (ids.length + maxNew > cfg.maxPositions)
      throw new InvalidRequestError(
        `the prompt (${ids.length} tokens) + max tokens (${maxNew}) exceed the model's context of ${cfg.maxPositions} positions`,
        ids.length >= cfg.maxPositions ? 'prompt' : 'max_tokens',
      );
    const row: Row = {
      req,
      done,
      prompt: ids,
      P: roundUp(ids.length, 8),
      maxNew,
      temperature: o.temperature ?? 1,
      topK: o.topK ?? 0,
      topP: o.topP ?? 1,
      rng: new Rng(o.seed ?? freshSeed()),
      gen: { tokenIds: [], logprobs: [], finishReason: 'length', text: '' },
    };
    if (maxNew === 0) return this.#finish(row);
    // Cache slots this row needs: its padded prompt, then every generated token but the last (never fed back).
    const need = row.P + maxNew - 1;
    // Powers of two bound the programs compiled, but never past the most any row can use (the context + padding).
    const most = roundUp(cfg.maxPositions + 7, 8);
    if (this.size === 0) this.#reset(Math.min(pow2AtLeast(need, 32), most));
    else if (need > this.#tmax) this.#growTo(Math.min(pow2AtLeast(need, this.#tmax), most));

    const P = row.P, L = ids.length, off = P - L;
    const pid = new Int32Array(P), pos = new Int32Array(P), valid = new Int32Array(P);
    ids.forEach((t, j) => {
      pid[off + j] = t;
      pos[off + j] = j;
      valid[off + j] = 1;
    });
    const [logits, rowKV] = this.host.programs.prefill(this.#tmax)(keep(this.host.params), i32(pid, [1, P]), i32(pos, [1, P]), i32(valid, [1, P]));
    let placed = false;
    try {
      const host = await takeF32(logits);
      if (this.#sample(row, host)) return this.#finish(row);
      this.#place(row, rowKV);
      placed = true;
    } finally {
      if (!placed) freeKV(rowKV);
    }
  }

  async step(): Promise<void> {
    if (this.size === 0) return;
    const B = this.capacity, T = this.#tmax;
    const tok = new Int32Array(B), pos = new Int32Array(B), slot = new Int32Array(B);
    this.#rows.forEach((r, b) => {
      if (!r) return; // a free row decodes token 0 at slot 0 of its own stale cache; nothing reads it
      const n = r.gen.tokenIds.length;
      tok[b] = r.gen.tokenIds[n - 1]!;
      pos[b] = r.prompt.length + n - 1;
      slot[b] = r.P + n - 1;
    });
    const [logits, cache] = this.host.programs.step(keep(this.host.params), this.#cache!, i32(tok, [B, 1]), i32(pos, [B, 1]), i32(slot, [B, 1]), i32(this.#kvValid, [B, T]));
    this.#cache = cache;
    const host = await takeF32(logits);
    const V = this.host.cfg.vocabSize;
    this.#rows.forEach((r, b) => {
      if (r && this.#sample(r, host.subarray(b * V, (b + 1) * V))) {
        this.#rows[b] = null;
        this.#finish(r);
      }
    });
    this.#shrink();
  }

  cancel(req: DecodeRequest): void {
    const b = this.#rows.findIndex((r) => r?.req === req);
    if (b < 0) return;
    this.#rows[b] = null;
    this.#shrink();
  }

  dispose(): void {
    this.#rows = [];
    if (this.#cache) freeKV(this.#cache);
    this.#cache = null;
  }

  /** Sample the row's next token from its logits; true when the row has ended. */
  #sample(r: Row, logits: Float32Array): boolean {
    const eos = this.host.eosId;
    const [tok, lp] = sampleRow(logits, r.temperature, r.topK, r.topP, r.rng);
    const g = r.gen;
    g.tokenIds.push(tok);
    g.logprobs.push(lp);
    if (tok === eos) g.finishReason = 'eos';
    const decode = (ids: number[]) => decodeContinuation((x) => this.host.decodeText(x), r.prompt.at(-1), ids);
    appendText(g, decode, tok === eos, r.req.opts.stop, (d) => r.req.onToken?.(d));
    return g.finishReason !== 'length' || g.tokenIds.length >= r.maxNew;
  }

  #finish(r: Row): void {
    r.done({ ...r.gen, promptTokens: r.prompt.length });
  }

  /** An empty batch starts over with `tmax` cache slots. */
  #reset(tmax: number): void {
    this.dispose();
    this.#tmax = tmax;
    this.#kvValid = new Int32Array(0);
  }

  #growTo(tmax: number): void {
    const B = this.capacity, old = this.#tmax;
    this.#cache = this.host.programs.grow(tmax)(this.#cache!);
    const kv = new Int32Array(B * tmax);
    for (let b = 0; b < B; b++) kv.set(this.#kvValid.subarray(b * old, (b + 1) * old), b * tmax);
    this.#kvValid = kv;
    this.#tmax = tmax;
  }

  /** Write a prefilled row into a free batch row, growing the batch when none is free. */
  #place(row: Row, rowKV: KV): void {
    const T = this.#tmax;
    let b = this.#rows.indexOf(null);
    if (!this.#cache) {
      this.#cache = rowKV;
      this.#rows = [row];
      this.#kvValid = new Int32Array(T);
      b = 0;
    } else {
      if (b < 0) {
        const B = this.capacity;
        this.#regather(Math.min(this.maxRows, pow2AtLeast(B + 1, 1)), Array.from({ length: B }, (_, i) => i));
        b = B;
      }
      this.#cache = this.host.programs.put(this.#cache, rowKV, np.array(b, { dtype: np.int32 }));
      this.#rows[b] = row;
    }
    const off = row.P - row.prompt.length;
    this.#kvValid.fill(0, b * T, b * T + off);
    this.#kvValid.fill(1, b * T + off, (b + 1) * T);
  }

  /** Keep the batch at the smallest power of two that holds its busy rows. */
  #shrink(): void {
    const busy = this.#rows.flatMap((r, b) => (r ? [b] : []));
    if (busy.length === 0) return this.dispose();
    const cap = pow2AtLeast(busy.length, 1);
    if (cap < this.capacity) this.#regather(cap, busy);
  }

  /** New batch of `cap` rows whose first rows are old rows `from` (the rest are free). */
  #regather(cap: number, from: number[]): void {
    const T = this.#tmax;
    const idx = Int32Array.from({ length: cap }, (_, i) => from[i] ?? from[0]!);
    this.#cache = this.host.programs.take(this.#cache!, i32(idx, [cap]));
    const kv = new Int32Array(cap * T), rows: (Row | null)[] = [];
    for (let i = 0; i < cap; i++) {
      if (i < from.length) kv.set(this.#kvValid.subarray(from[i]! * T, (from[i]! + 1) * T), i * T);
      rows.push(i < from.length ? (this.#rows[from[i]!] ?? null) : null);
    }
    this.#rows = rows;
    this.#kvValid = kv;
  }
}
