// A tiny deterministic language model that implements ServableModel with simple, checkable rules, so the
// server can be tested (and benchmarked) before the real in-process model exists. It is a real model in
// the sense that matters here: autoregressive, token by token, batched, with log-probs that agree between
// generate, scoreContinuation and scorePrompt.
//
// Tokens: words with their leading whitespace (/\s*\S+/), plus trailing whitespace as its own token.
// Greedy next token after a prefix: " " + the prefix's last word reversed ("the cat" -> " tac");
// end of sequence ("<eos>") when the prefix has no word or its last word is a palindrome.
// log p(greedy token) = log 0.5; log p(any other token t) = log 0.5 - 1 - (sum of t's char codes mod 7).
// Sampling (temperature > 0): the greedy token with probability 1/2, else a word of the prompt, from a
// PRNG seeded by (seed, row).
import type { PromptScore, ServableModel } from '../../src/model/serving.js';

export const LOG_HALF = Math.log(0.5);

export function tokenize(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

function lastWord(prefix: string): string | undefined {
  const words = prefix.match(/\S+/g);
  return words?.[words.length - 1];
}

export function greedyNext(prefix: string): string | null {
  const w = lastWord(prefix);
  if (w === undefined) return null;
  const r = [...w].reverse().join('');
  return r === w ? null : ' ' + r;
}

export function tokenLogprob(prefix: string, token: string): number {
  if (token === greedyNext(prefix)) return LOG_HALF;
  let sum = 0;
  for (const ch of token) sum += ch.codePointAt(0)!;
  return LOG_HALF - 1 - (sum % 7);
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DeterministicModelOptions {
  /** Milliseconds per decoding step (all rows of a batch advance together), to make streaming observable. */
  stepMs?: number;
  /** Offer the optional scorePrompt() extra (exact top_logprobs for echo). */
  scorePrompt?: boolean;
  /** Fail generate() for prompts containing this marker (error-path tests). */
  failOn?: string;
}

export class DeterministicModel implements ServableModel {
  name = 'deterministic-reverse';
  /** Size of every generate() call, in order: the server's batching is visible here. */
  readonly batchSizes: number[] = [];
  readonly #vocab: string[] = [];
  readonly #ids = new Map<string, number>();
  readonly scorePrompt?: (text: string, topN: number) => Promise<PromptScore>;

  constructor(readonly opts: DeterministicModelOptions = {}) {
    if (opts.scorePrompt) this.scorePrompt = (text, topN) => this.#scorePrompt(text, topN);
  }

  id(token: string): number {
    let id = this.#ids.get(token);
    if (id === undefined) {
      id = this.#vocab.length;
      this.#vocab.push(token);
      this.#ids.set(token, id);
    }
    return id;
  }

  encode(text: string): number[] {
    return tokenize(text).map((t) => this.id(t));
  }

  decode(ids: number[]): string {
    return ids
      .map((i) => {
        const t = this.#vocab[i];
        if (t === undefined) throw new Error(`unknown token id ${i}`);
        return t;
      })
      .join('');
  }

  async generate(
    prompts: string[],
    opts: { maxNewTokens: number; temperature?: number; topK?: number; topP?: number; stop?: string[]; seed?: number },
    onToken?: (row: number, text: string) => void,
  ) {
    this.batchSizes.push(prompts.length);
    if (this.opts.failOn && prompts.some((p) => p.includes(this.opts.failOn!))) throw new Error(`refusing prompt with ${this.opts.failOn}`);
    const temp = opts.temperature ?? 0;
    const rows = prompts.map((prompt, r) => ({
      prompt,
      words: prompt.match(/\S+/g) ?? ['x'],
      rng: mulberry32((opts.seed ?? 0) * 1000003 + r),
      text: '',
      tokenIds: [] as number[],
      logprobs: [] as number[],
      finishReason: null as 'stop' | 'length' | 'eos' | null,
    }));
    for (let step = 0; rows.some((r) => r.finishReason === null); step++) {
      for (const [i, r] of rows.entries()) {
        if (r.finishReason !== null) continue;
        if (step >= opts.maxNewTokens) {
          r.finishReason = 'length';
          continue;
        }
        const prefix = r.prompt + r.text;
        const greedy = greedyNext(prefix);
        if (greedy === null) {
          r.finishReason = 'eos';
          continue;
        }
        const tok = temp > 0 && r.rng() >= 0.5 ? ' ' + r.words[Math.floor(r.rng() * r.words.length)] : greedy;
        r.tokenIds.push(this.id(tok));
        r.logprobs.push(tokenLogprob(prefix, tok));
        r.text += tok;
        onToken?.(i, tok);
        for (const s of opts.stop ?? []) {
          const k = r.text.indexOf(s);
          if (k >= 0) {
            r.text = r.text.slice(0, k);
            r.finishReason = 'stop';
          }
        }
      }
      // Real time passes between tokens, so streaming clients see pieces arrive one by one.
      await new Promise((res) => (this.opts.stepMs ? setTimeout(res, this.opts.stepMs) : setImmediate(res)));
    }
    return rows.map((r) => ({ text: r.text, tokenIds: r.tokenIds, logprobs: r.logprobs, finishReason: r.finishReason!, promptTokens: tokenize(r.prompt).length }));
  }

  async scoreContinuation(context: string, continuation: string) {
    const tokenStrings = tokenize(continuation);
    let prefix = context;
    let isGreedy = true;
    const tokenLogprobs = tokenStrings.map((t) => {
      const lp = tokenLogprob(prefix, t);
      if (t !== greedyNext(prefix)) isGreedy = false;
      prefix += t;
      return lp;
    });
    return { logprob: tokenLogprobs.reduce((a, b) => a + b, 0), isGreedy, tokens: tokenStrings.length, tokenLogprobs, tokenStrings };
  }

  async #scorePrompt(text: string, topN: number): Promise<PromptScore> {
    const tokenStrings = tokenize(text);
    let prefix = '';
    const tokenLogprobs: (number | null)[] = [];
    const topLogprobs: Record<string, number>[] = [];
    for (const [i, t] of tokenStrings.entries()) {
      const g = greedyNext(prefix);
      if (i === 0) {
        tokenLogprobs.push(null); // no BOS: nothing predicts the first token
        topLogprobs.push({});
      } else {
        tokenLogprobs.push(tokenLogprob(prefix, t));
        const top: Record<string, number> = {};
        top[g ?? '<eos>'] = LOG_HALF; // the most likely next token, end-of-sequence included
        if (t !== g && topN > 1) top[t] = tokenLogprob(prefix, t);
        topLogprobs.push(top);
      }
      prefix += t;
    }
    return { tokenStrings, tokenLogprobs, topLogprobs };
  }

  applyChatTemplate(messages: { role: string; content: string }[]): string {
    return messages.map((m) => `${m.role}: ${m.content}`).join('\n') + '\nassistant: ok';
  }
}
