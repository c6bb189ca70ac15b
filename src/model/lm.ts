// LM: a loaded language model (config + device params + tokenizer) with the operations the rest of
// alignlab asks of a model: generate text, score continuations, full logits, save. It owns its arrays;
// callers never handle jax-js references.

import { basename, resolve } from 'node:path';
import { Template } from '@huggingface/jinja';
import { compile, free, i32, initEngine, keep, takeF32, type Arr } from '../engine/index.js';
import type { ModelConfig } from '../formats/config.js';
import { forward, type Params } from './decoder.js';
import { Sampler, type SampleOptions } from './generate.js';
import { ContinuousBatch, StepPrograms, type BatchHost, type PrepareRequest } from './scheduler.js';
import { toDevice, toHost } from './weights.js';
import { loadHFDir, saveHFDir } from '../formats/hf.js';
import type { Tokenizer } from '../formats/tokenizer.js';
import { InvalidRequestError, type PromptScore, type ServableModel, type ServableModelExtras, type SteppableModel } from './serving.js';

export interface GenerateResult {
  text: string;
  tokenIds: number[];
  logprobs: number[];
  finishReason: 'stop' | 'length' | 'eos';
  promptTokens: number;
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

export class LM implements ServableModel, ServableModelExtras, SteppableModel, BatchHost {
  private sampler: Sampler;
  #programs: StepPrograms | null = null;
  private fwd: ((p: Params, ids: Arr, pos: Arr, valid: Arr) => Arr) & { dispose(): void };

  constructor(
    readonly cfg: ModelConfig,
    public params: Params,
    readonly tokenizer: Tokenizer,
    readonly name = 'model',
    readonly generationConfig: Record<string, unknown> = {},
  ) {
    this.sampler = new Sampler(cfg);
    this.fwd = compile((p: Params, ids: Arr, pos: Arr, valid: Arr) => forward(p, cfg, ids, pos, valid));
  }

  /** Load an HF model directory (config.json, safetensors, tokenizer.json) onto the engine's device. */
  static async load(dir: string, opts: { device?: string } = {}): Promise<LM> {
    await initEngine(opts.device);
    const m = await loadHFDir(dir);
    if (!m.tokenizer) throw new Error(`${resolve(dir)}: no tokenizer.json; alignlab needs one to turn text into tokens`);
    if (m.tokenizer.vocabSize > m.config.vocabSize)
      throw new Error(`${resolve(dir)}: tokenizer has ${m.tokenizer.vocabSize} tokens but config.json vocab_size is ${m.config.vocabSize}`);
    return new LM(m.config, toDevice(m.params), m.tokenizer, basename(resolve(dir)), (m.generationConfig ?? {}) as Record<string, unknown>);
  }

  async save(dir: string): Promise<void> {
    await saveHFDir(dir, {
      config: this.cfg,
      params: await toHost(this.params),
      tokenizerJson: this.tokenizer.json,
      tokenizerConfig: this.tokenizer.config,
      generationConfig: this.generationConfig,
    });
  }

  /** Replace the weights (e.g. after training); the old arrays are released. */
  setParams(p: Params): void {
    free(this.params);
    this.params = p;
  }

  /** Token ids for a prompt; never empty (a model needs one token to condition on). */
  encode(text: string): number[] {
    const ids = this.tokenizer.encode(text);
    if (ids.length > 0) return ids;
    const start = this.tokenizer.bosId ?? this.tokenizer.eosId ?? this.cfg.bosTokenId ?? 0;
    return [start];
  }

  get eosId(): number | null {
    return this.tokenizer.eosId ?? this.cfg.eosTokenId;
  }

  async generate(prompts: string[], opts: Omit<SampleOptions, 'eosId'>, onToken?: (row: number, text: string) => void): Promise<GenerateResult[]> {
    const ids = prompts.map((p) => this.encode(p));
    return this.generateIds(ids, opts, onToken);
  }

  async generateIds(ids: number[][], opts: Omit<SampleOptions, 'eosId'>, onToken?: (row: number, text: string) => void): Promise<GenerateResult[]> {
    const decode = (t: number[]) => this.decodeText(t);
    const gens = await this.sampler.generate(this.params, ids, { decodeAfterPrompt: true, ...opts, eosId: this.eosId }, decode, onToken);
    return gens.map((g, i) => ({ ...g, finishReason: g.finishReason === 'eos' ? 'eos' : g.finishReason, promptTokens: ids[i]!.length }));
  }

  /**
   * A continuous batch over this model (src/model/scheduler.ts): requests join between decode steps. `prepare`
   * may refit a request first (the local: provider cuts long prompts).
   */
  openBatch(maxRows: number, prepare?: PrepareRequest): ContinuousBatch {
    return new ContinuousBatch(this, maxRows, prepare);
  }

  /** Compiled continuous-batching programs, made on first use and shared by every batch of this model. */
  get programs(): StepPrograms {
    return (this.#programs ??= new StepPrograms(this.cfg));
  }

  /** Token ids → the text a user reads (special tokens skipped). */
  decodeText(ids: number[]): string {
    return this.tokenizer.decode(ids, { skipSpecial: true });
  }

  get contextLength(): number {
    return this.cfg.maxPositions;
  }

  get vocabSize(): number {
    return this.cfg.vocabSize;
  }

  countTokens(text: string): number {
    return this.encode(text).length;
  }

  /** Full logits [T, V] for one sequence of token ids. */
  async logits(ids: number[]): Promise<Float32Array> {
    const [out] = await this.logitsBatch([ids]);
    return out!;
  }

  /** Full logits for several sequences (right-padded into one batch); each result is [len, V]. */
  async logitsBatch(seqs: number[][]): Promise<Float32Array[]> {
    const V = this.cfg.vocabSize, B = seqs.length;
    const longest = Math.max(...seqs.map((s) => s.length));
    if (longest > this.cfg.maxPositions) throw new Error(`sequence of ${longest} tokens exceeds the model's ${this.cfg.maxPositions} positions`);
    const T = Math.min(roundUp(longest, 8), this.cfg.maxPositions);
    const ids = new Int32Array(B * T), pos = new Int32Array(B * T), valid = new Int32Array(B * T);
    seqs.forEach((s, b) =>
      s.forEach((t, j) => {
        ids[b * T + j] = t;
        pos[b * T + j] = j;
        valid[b * T + j] = 1;
      }),
    );
    const all = await takeF32(this.fwd(keep(this.params), i32(ids, [B, T]), i32(pos, [B, T]), i32(valid, [B, T])));
    return seqs.map((s, b) => all.slice(b * T * V, (b * T + s.length) * V));
  }

  /** log p(continuation | context), summed over the continuation's tokens (lm-evaluation-harness style). */
  async scoreContinuation(context: string, continuation: string) {
    const ctx = this.encode(context);
    const cont = this.tokenizer.encode(continuation, { addSpecial: false });
    if (cont.length === 0) return { logprob: 0, isGreedy: true, tokens: 0, tokenLogprobs: [], tokenStrings: [] };
    const all = [...ctx, ...cont].slice(-this.cfg.maxPositions);
    const start = all.length - cont.length;
    const lg = await this.logits(all);
    const V = this.cfg.vocabSize, tokenLogprobs: number[] = [];
    let isGreedy = true;
    for (let j = 0; j < cont.length; j++) {
      const row = lg.subarray((start + j - 1) * V, (start + j) * V);
      let max = -Infinity, arg = 0;
      for (let v = 0; v < V; v++) if (row[v]! > max) [max, arg] = [row[v]!, v];
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(row[v]! - max);
      tokenLogprobs.push(row[cont[j]!]! - max - Math.log(sum));
      if (arg !== cont[j]) isGreedy = false;
    }
    return {
      logprob: tokenLogprobs.reduce((a, b) => a + b, 0),
      isGreedy,
      tokens: cont.length,
      tokenLogprobs,
      tokenStrings: cont.map((t) => this.tokenizer.decode([t])),
    };
  }

  /** Token ids → text, special tokens kept, so that encode(decode(ids)) gives the ids back (the server's token-id prompts). */
  decode(ids: number[]): string {
    const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= this.cfg.vocabSize);
    if (bad !== undefined) throw new InvalidRequestError(`token id ${bad} is outside the vocabulary (0..${this.cfg.vocabSize - 1})`, 'prompt');
    return this.tokenizer.decode(ids);
  }

  /**
   * Log-probs of every token of `text`, each given the tokens before it, with the `topN` most likely tokens at
   * each position (the argmax first): what an OpenAI-style server returns for `echo: true, logprobs: N`.
   * Tokens are conditioned as scoreContinuation conditions them (after the specials the tokenizer prepends,
   * e.g. BOS, which are not listed), so summing a span of this equals scoreContinuation on the same split.
   * The first token has no prediction (null) unless such a special precedes it. Token texts add up to `text`
   * (a character split over several byte tokens is attributed to its last byte; the others get '').
   */
  async scorePrompt(text: string, topN: number): Promise<PromptScore> {
    const plain = this.tokenizer.encode(text, { addSpecial: false });
    const prefix = specialPrefix(this.tokenizer.encode(text), plain);
    const seq = [...prefix, ...plain];
    if (seq.length > this.cfg.maxPositions) throw new Error(`text of ${seq.length} tokens exceeds the model's ${this.cfg.maxPositions} positions`);
    const out: PromptScore = { tokenStrings: tokenPieces(plain, (ids) => this.tokenizer.decode(ids)), tokenLogprobs: [], topLogprobs: [] };
    if (plain.length === 0) return out;
    const lg = seq.length > 1 ? await this.logits(seq) : new Float32Array(0);
    const V = this.cfg.vocabSize, n = Math.max(1, Math.floor(topN));
    plain.forEach((tok, i) => {
      const p = prefix.length + i;
      if (p === 0) {
        out.tokenLogprobs.push(null);
        out.topLogprobs.push({});
        return;
      }
      const lp = logSoftmax(lg.subarray((p - 1) * V, p * V));
      out.tokenLogprobs.push(lp[tok]!);
      const top: Record<string, number> = {};
      for (const t of topIndices(lp, n)) {
        const s = this.tokenizer.decode([t]);
        // Two ids can spell the same text (byte tokens of partial characters all decode to U+FFFD): the likelier
        // one is listed. Inserted argmax first, though JavaScript enumerates integer-like keys ("7") first.
        if (!(s in top)) top[s] = lp[t]!;
      }
      out.topLogprobs.push(top);
    });
    return out;
  }

  /** Render chat messages with the tokenizer's chat template, or a plain "role: content" fallback. */
  applyChatTemplate(messages: { role: string; content: string }[]): string {
    const tpl = this.tokenizer.chatTemplate;
    if (!tpl) return messages.map((m) => `${m.role}: ${m.content}`).join('\n') + '\nassistant:';
    const special = (k: 'bos_token' | 'eos_token') => {
      const v = this.tokenizer.config[k];
      return typeof v === 'string' ? v : v && typeof v === 'object' ? v.content : '';
    };
    return new Template(tpl).render({ messages, add_generation_prompt: true, bos_token: special('bos_token'), eos_token: special('eos_token') });
  }

  dispose(): void {
    free(this.params);
    this.sampler.dispose();
    this.#programs?.dispose();
    this.fwd.dispose();
  }
}

/** The special tokens a tokenizer's post-processor puts before a text (e.g. BOS): `full` = encode with specials. */
function specialPrefix(full: number[], plain: number[]): number[] {
  for (let k = 0; k + plain.length <= full.length; k++) if (plain.every((t, i) => full[k + i] === t)) return full.slice(0, k);
  return [];
}

/**
 * Each token's share of the decoded text, from differences of decodes over a short window ending at the
 * token (the same window start for both, so decoders that strip a leading space cancel out). An unfinished
 * multi-byte character (U+FFFD at the end) is held back until the token that completes it.
 */
function tokenPieces(ids: number[], decode: (ids: number[]) => string, window = 8): string[] {
  const pieces: string[] = [];
  let pending = 0; // tokens whose text is still held back
  for (let i = 0; i < ids.length; i++) {
    const w = Math.max(0, i - pending - window);
    const before = decode(ids.slice(w, i - pending));
    let after = decode(ids.slice(w, i + 1));
    const last = i === ids.length - 1;
    if (!last && after.endsWith('\uFFFD')) {
      pieces.push('');
      pending++;
      continue;
    }
    if (!after.startsWith(before)) after = before + decode([ids[i]!]);
    pieces.push(after.slice(before.length));
    pending = 0;
  }
  return pieces;
}

function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) if (x > max) max = x;
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (x) => x - lse);
}

/** Indices of the n largest values, largest first (ties: lower index first, as argmax). */
function topIndices(xs: Float64Array, n: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    if (top.length === n && xs[i]! <= xs[top[n - 1]!]!) continue;
    let j = top.length < n ? top.length : n - 1;
    top[j] = i;
    while (j > 0 && xs[top[j - 1]!]! < xs[i]!) {
      top[j] = top[j - 1]!;
      top[--j] = i;
    }
  }
  return top;
}
