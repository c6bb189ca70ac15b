// Batched sampling with a KV cache: temperature, top-k, top-p, max new tokens, EOS and stop strings,
// seeded. Returns token ids, text and the per-token log-probs PPO needs.
//
// Prompts are left-padded so every row's next token sits in the same cache slot; the cache is
// preallocated to a fixed length and written with `where` (ENGINE.md §5), so one compiled decode step
// serves every position. Sampling happens on the host: on wasm the logits transfer is ~free and
// top-k/top-p are 2–3x faster there than on device (ENGINE.md §6), and a host RNG makes every device
// draw the same tokens for the same seed.

import { compile, i32, keep, np, Rng, takeF32, type Arr } from '../engine/index.js';
import type { ModelConfig } from '../formats/config.js';
import { decodeStep, freeKV, prefill, type KV, type Params } from './decoder.js';

export interface SampleOptions {
  maxNewTokens: number;
  /** 0 = greedy. Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined = off). */
  topK?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches p (1 = off). */
  topP?: number;
  seed?: number;
  /** Stop after this token (defaults to the config's eos_token_id); null disables. */
  eosId?: number | null;
  /** Stop strings: generation stops when the decoded text contains one; the text is cut before it. */
  stop?: string[];
  /**
   * Decode each row's text after its prompt's last token and keep the difference (default false: decode the
   * generated tokens alone). Word-level tokenizers join words with spaces and SentencePiece drops the leading
   * space of a text's first word, so alone "of" would lose the space in "the people of".
   */
  decodeAfterPrompt?: boolean;
}

export interface TokenGeneration {
  tokenIds: number[]; // generated tokens (the EOS token included when it ended the row)
  /** log π(token | context) under the sampling temperature, before top-k/top-p truncation (as TRL). */
  logprobs: number[];
  finishReason: 'eos' | 'stop' | 'length';
  /** Text of the generated tokens, cut before a stop string (only when a decoder was given). */
  text: string;
}

type Decode = (ids: number[]) => string;

/**
 * Text of `ids` as it reads after the token `context` (a prompt's last token): decode both together and drop
 * the context's own text. Falls back to decoding `ids` alone when the context's text is not a prefix of the
 * joint text (a byte token that completes a character across the boundary).
 */
export function decodeContinuation(decode: Decode, context: number | undefined, ids: number[]): string {
  if (context === undefined || ids.length === 0) return decode(ids);
  const head = decode([context]);
  const full = decode([context, ...ids]);
  return full.startsWith(head) ? full.slice(head.length) : decode(ids);
}

/**
 * After a new token: re-decode the row's text, cut it at a stop string (finishReason 'stop'), and emit the part
 * not yet emitted. `decode` turns the row's generated ids into text; an EOS that ended the row is not text.
 */
export function appendText(g: TokenGeneration, decode: Decode, endedByEos: boolean, stop: readonly string[] | undefined, emit: (d: string) => void): void {
  const ids = endedByEos ? g.tokenIds.slice(0, -1) : g.tokenIds;
  let text = decode(ids);
  if (stop?.length) {
    const cut = Math.min(...stop.map((s) => (s ? text.indexOf(s) : -1)).filter((i) => i >= 0));
    if (Number.isFinite(cut)) {
      text = text.slice(0, cut);
      g.finishReason = 'stop';
    }
  }
  // A multi-byte character may be incomplete mid-stream (U+FFFD): hold it back until it completes.
  const stable = text.endsWith('\uFFFD') && g.finishReason === 'length' ? text.slice(0, -1) : text;
  if (stable.length > g.text.length && stable.startsWith(g.text)) emit(stable.slice(g.text.length));
  g.text = stable;
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** Compiled prefill/decode programs for one config; reuse it across calls (params are arguments). */
export class Sampler {
  private prefills = new Map<number, ((p: Params, ids: Arr, pos: Arr, valid: Arr) => [Arr, KV]) & { dispose(): void }>();
  private step: ((p: Params, cache: KV, tok: Arr, pos: Arr, slot: Arr, kvValid: Arr) => [Arr, KV]) & { dispose(): void };

  constructor(readonly cfg: ModelConfig) {
    this.step = compile((p: Params, cache: KV, tok: Arr, pos: Arr, slot: Arr, kvValid: Arr) => decodeStep(p, cfg, cache, tok, pos, slot, kvValid));
  }

  private prefillFor(tmax: number) {
    let f = this.prefills.get(tmax);
    if (!f) {
      f = compile((p: Params, ids: Arr, pos: Arr, valid: Arr) => prefill(p, this.cfg, ids, pos, valid, tmax));
      this.prefills.set(tmax, f!);
    }
    return f!;
  }

  /**
   * Sample continuations of token-id prompts. `params` is borrowed. `decode` turns ids into text
   * (needed for stop strings and `text`); `onToken(row, delta)` streams text as it is produced.
   */
  async generate(params: Params, prompts: number[][], opts: SampleOptions, decode?: Decode, onToken?: (row: number, delta: string) => void): Promise<TokenGeneration[]> {
    const cfg = this.cfg, B = prompts.length, V = cfg.vocabSize;
    if (B === 0) return [];
    if (prompts.some((p) => p.length === 0)) throw new Error('generate: every prompt needs at least one token (add a BOS token)');
    const maxNew = opts.maxNewTokens;
    const longest = Math.max(...prompts.map((p) => p.length));
    if (longest + maxNew > cfg.maxPositions)
      throw new Error(`generate: prompt (${longest} tokens) + max new tokens (${maxNew}) exceeds the model's ${cfg.maxPositions} positions`);
    // Bucketed shapes bound how many programs get compiled.
    const P = roundUp(longest, 8), tmax = roundUp(P + maxNew, 16);
    const ids = new Int32Array(B * P), pos = new Int32Array(B * P), valid = new Int32Array(B * P), kvValid = new Int32Array(B * tmax).fill(1);
    prompts.forEach((row, b) => {
      const off = P - row.length;
      row.forEach((t, j) => {
        ids[b * P + off + j] = t;
        pos[b * P + off + j] = j;
        valid[b * P + off + j] = 1;
      });
      for (let j = 0; j < off; j++) kvValid[b * tmax + j] = 0;
    });

    const temp = opts.temperature ?? 1, eos = opts.eosId === undefined ? cfg.eosTokenId : opts.eosId;
    const rng = new Rng(opts.seed ?? 0);
    const out: TokenGeneration[] = prompts.map(() => ({ tokenIds: [], logprobs: [], finishReason: 'length', text: '' }));
    const done = new Array<boolean>(B).fill(false);

    let [logits, cache] = this.prefillFor(tmax)(keep(params), i32(ids, [B, P]), i32(pos, [B, P]), i32(valid, [B, P]));
    const kvMask = i32(kvValid, [B, tmax]);
    try {
      for (let t = 0; t < maxNew; t++) {
        const host = await takeF32(logits);
        const next = new Int32Array(B);
        for (let b = 0; b < B; b++) {
          if (done[b]) continue;
          const row = host.subarray(b * V, (b + 1) * V);
          const [tok, lp] = sampleRow(row, temp, opts.topK ?? 0, opts.topP ?? 1, rng);
          next[b] = tok;
          const g = out[b]!;
          g.tokenIds.push(tok);
          g.logprobs.push(lp);
          if (tok === eos) {
            done[b] = true;
            g.finishReason = 'eos';
          }
          if (decode) {
            const context = opts.decodeAfterPrompt ? prompts[b]!.at(-1) : undefined;
            appendText(g, (ids) => decodeContinuation(decode, context, ids), tok === eos, opts.stop, (d) => onToken?.(b, d));
          }
          if (g.finishReason === 'stop') done[b] = true;
        }
        if (done.every(Boolean) || t === maxNew - 1) break;
        const posNow = Int32Array.from(prompts, (p) => p.length + t);
        const [l2, c2] = this.step(keep(params), cache, i32(next, [B, 1]), i32(posNow, [B, 1]), np.array(P + t, { dtype: np.int32 }), kvMask.ref);
        logits = l2;
        cache = c2;
      }
    } finally {
      kvMask.dispose();
      freeKV(cache);
    }
    return out;
  }

  dispose(): void {
    for (const f of this.prefills.values()) f.dispose();
    this.step.dispose();
  }
}

/** Sample one token from a row of logits on the host. Returns [token, log-prob under temperature]. */
export function sampleRow(logits: Float32Array, temperature: number, topK: number, topP: number, rng: Rng): [number, number] {
  const V = logits.length;
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    return [best, logSoftmaxAt(logits, 1, best)];
  }
  const z = new Float64Array(V);
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, (z[i] = logits[i]! / temperature));
  let sum = 0;
  for (let i = 0; i < V; i++) sum += z[i] = Math.exp(z[i]! - max);
  const probs = z.map((x) => x / sum); // untruncated distribution: its log is the reported log-prob
  let keep = probs;
  if ((topK > 0 && topK < V) || topP < 1) {
    const sorted = Float64Array.from(probs).sort().reverse();
    let thresh = topK > 0 && topK < V ? sorted[topK - 1]! : 0;
    if (topP < 1) {
      let mass = 0, i = 0;
      for (; i < V && mass < topP; i++) mass += sorted[i]!; // keep while the mass before the token is < p
      thresh = Math.max(thresh, sorted[i - 1]!);
    }
    keep = probs.map((p) => (p >= thresh ? p : 0));
  }
  let total = 0;
  for (let i = 0; i < V; i++) total += keep[i]!;
  let u = rng.next() * total, tok = V - 1;
  for (let i = 0; i < V; i++) {
    u -= keep[i]!;
    if (u < 0) {
      tok = i;
      break;
    }
  }
  while (keep[tok] === 0 && tok > 0) tok--; // guard against float round-off landing on a dropped token
  return [tok, Math.log(probs[tok]!)];
}

function logSoftmaxAt(logits: Float32Array, temperature: number, i: number): number {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x / temperature);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x / temperature - max);
  return logits[i]! / temperature - max - Math.log(sum);
}
