// `gguf:<file>`: a GGUF model run by llama.cpp (node-llama-cpp) in a child process (llamacpp.ts): a file that
// makes llama.cpp abort kills the child, not the evaluation. Any GGUF llama.cpp reads works, including the
// ones `alignlab export gguf` writes, which makes this provider an independent cross-check of our engine.
//
// Prompts are tokenized by llama.cpp (special-token text parsed, no BOS added unless the text has it), as
// `local:` tokenizes with tokenizer.json, so the same text gives the same tokens for an exported model.
import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { resolveModelRef } from '../../formats/hub.js';
import { Template } from '@huggingface/jinja';
import { ggufGet, readGGUF, type GGUFFile } from '../../formats/gguf.js';
import { LlamaCppChild } from './llamacpp.js';
import { fileFingerprint, fitPrompt, readOptions } from './local.js';
import type { ChatMessage, CompletionRequest, CompletionResponse, LoglikelihoodRequest, LoglikelihoodResponse, Provider } from './types.js';

export interface GgufProviderOptions {
  /** llama.cpp threads (default 1: node-llama-cpp's default oversubscribes a small shared machine and runs
   * orders of magnitude slower). */
  threads?: number;
  /** Context size in tokens (default: the model's context_length, at most 4096; the KV cache is f32). Longer
   * prompts are cut from the left, as local: cuts them. */
  contextSize?: number;
  /** Time allowed to start the child and load the model (default 120 s). */
  startTimeoutMs?: number;
  /** Time allowed per request (default 120 s); a request that runs over stops the child. */
  timeoutMs?: number;
  /** Chat prompts: `auto` (default) renders the GGUF's tokenizer.chat_template when it has one, else the plain
   * "role: content" lines `local:` uses; `plain` always uses the plain lines. */
  chatTemplate?: 'auto' | 'plain';
  /** Where one-time warnings go (default: stderr). */
  warn?: (line: string) => void;
}

/** Default context: the model's own, capped so that a 128k-context model does not allocate a 128k KV cache. */
export const DEFAULT_MAX_CONTEXT = 4096;

/** Chat messages → prompt text: the GGUF's Jinja chat template, or the fallback LM.applyChatTemplate uses
 * (kept identical, so `local:` and `gguf:` of one exported model see the same prompt). */
export function chatPrompt(header: GGUFFile, messages: ChatMessage[], mode: 'auto' | 'plain' = 'auto'): string {
  const tpl = ggufGet(header, 'tokenizer.chat_template');
  if (mode === 'plain' || typeof tpl !== 'string' || tpl === '') return messages.map((m) => `${m.role}: ${m.content}`).join('\n') + '\nassistant:';
  const tokens = ggufGet(header, 'tokenizer.ggml.tokens');
  const special = (key: string) => {
    const id = ggufGet(header, key);
    return Array.isArray(tokens) && typeof id === 'number' ? String(tokens[id] ?? '') : '';
  };
  return new Template(tpl).render({
    messages,
    add_generation_prompt: true,
    bos_token: special('tokenizer.ggml.bos_token_id'),
    eos_token: special('tokenizer.ggml.eos_token_id'),
  });
}

export class GgufProvider implements Provider {
  readonly id: string;
  readonly model: string;
  #warned = false;

  constructor(
    id: string,
    model: string,
    readonly child: LlamaCppChild,
    readonly header: GGUFFile,
    private readonly opts: GgufProviderOptions = {},
  ) {
    this.id = id;
    this.model = model;
  }

  get contextSize(): number {
    return this.child.info.contextSize;
  }

  /** Token ids of a text; never empty (as LM.encode: a model needs one token to condition on). */
  async #encode(text: string): Promise<number[]> {
    const ids = await this.child.tokenize(text, { special: true });
    if (ids.length > 0) return ids;
    return [this.child.info.bos ?? this.child.info.eos ?? 0];
  }

  async complete(req: CompletionRequest): Promise<CompletionResponse> {
    if ((req.prompt === undefined) === (req.messages === undefined)) throw new Error(`${this.id}: a completion request needs exactly one of prompt or messages`);
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 0) throw new Error(`${this.id}: maxTokens must be an integer >= 0, got ${req.maxTokens}`);
    const t0 = performance.now();
    const prompt = req.prompt ?? chatPrompt(this.header, req.messages!, this.opts.chatTemplate);
    if (req.maxTokens === 0) return { text: '', finishReason: 'length', completionTokens: 0, latencyMs: 0 };
    const max = Math.min(req.maxTokens, this.contextSize - 1);
    // Cut from the left when the prompt and the answer do not fit, as local: does.
    const ids = fitPrompt(await this.#encode(prompt), this.contextSize - max, (from, to) => {
      if (this.#warned) return;
      this.#warned = true;
      (this.opts.warn ?? ((l: string) => process.stderr.write(l + '\n')))(
        `${this.id}: a prompt of ${from} tokens was cut to its last ${to} (context size ${this.contextSize}; option context_size); later cuts are not reported`,
      );
    });
    const g = await this.child.generate(
      ids,
      {
        maxTokens: max,
        temperature: req.temperature ?? 1, // OpenAI's default, as local: and alignlab serve; 0 = greedy
        ...(req.topK !== undefined ? { topK: req.topK } : {}),
        ...(req.topP !== undefined ? { topP: req.topP } : {}),
        ...(req.seed !== undefined ? { seed: req.seed } : {}),
        ...(req.stop?.length ? { stop: req.stop } : {}),
      },
      { timeoutMs: this.opts.timeoutMs },
    );
    return { text: g.text, finishReason: g.finishReason, promptTokens: g.promptTokens, completionTokens: g.tokens.length, latencyMs: performance.now() - t0 };
  }

  /**
   * log p(continuation | context) as LM.scoreContinuation computes it: context and continuation tokenized
   * separately, then one next-token distribution per continuation token. The child keeps the evaluated prefix,
   * so each step evaluates one new token, and choices sharing a context reuse it.
   */
  async loglikelihood(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResponse[]> {
    const out: LoglikelihoodResponse[] = [];
    for (const r of reqs) out.push(await this.#score(r));
    return out;
  }

  async #score({ context, continuation }: LoglikelihoodRequest): Promise<LoglikelihoodResponse> {
    const cont = await this.child.tokenize(continuation, { special: true });
    if (cont.length === 0) return { logprob: 0, isGreedy: true, tokens: 0 };
    if (cont.length >= this.contextSize) throw new Error(`${this.id}: continuation of ${cont.length} tokens does not fit the context size ${this.contextSize}`);
    const all = [...(await this.#encode(context)), ...cont].slice(-this.contextSize);
    const start = all.length - cont.length;
    let logprob = 0;
    let isGreedy = true;
    for (let j = 0; j < cont.length; j++) {
      const lp = await this.child.nextLogprobs(all.slice(0, start + j), { timeoutMs: this.opts.timeoutMs });
      logprob += lp[cont[j]!]!;
      let arg = 0;
      for (let v = 1; v < lp.length; v++) if (lp[v]! > lp[arg]!) arg = v;
      if (arg !== cont[j]) isGreedy = false;
    }
    return { logprob, isGreedy, tokens: cont.length };
  }

  /** Stops the child process (idempotent). */
  async close(): Promise<void> {
    await this.child.close();
  }
}

const GGUF_OPTIONS = { threads: 'number', contextSize: 'number', startTimeoutMs: 'number', timeoutMs: 'number', chatTemplate: 'string', warn: 'function' } as const;

/**
 * Build a `gguf:<file>` provider: checks the file here (a corrupt header fails naming the file and the field),
 * then loads it in a child process. `file` is resolved against the working directory. Options (YAML `config:`):
 * threads, context_size, start_timeout_ms, timeout_ms, chat_template. The response cache keys on
 * `<file name>@<fingerprint>`.
 */
export async function createGgufProvider(target: string, id = `gguf:${target}`, raw: Record<string, unknown> = {}): Promise<GgufProvider> {
  const opts = readOptions<GgufProviderOptions>(id, raw, GGUF_OPTIONS);
  for (const k of ['threads', 'contextSize', 'startTimeoutMs', 'timeoutMs'] as const) {
    const v = opts[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new Error(`${id}: option ${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)} must be an integer >= 1, got ${v}`);
  }
  if (opts.chatTemplate !== undefined && opts.chatTemplate !== 'auto' && opts.chatTemplate !== 'plain') throw new Error(`${id}: option chat_template must be "auto" or "plain", got "${opts.chatTemplate}"`);
  if (!target) throw new Error(`provider id "${id}": expected gguf:<file.gguf>`);
  const file = resolve(resolveModelRef(target)); // also org/name/file.gguf, pulled earlier with `alignlab pull`
  if (!existsSync(file)) throw new Error(`${id}: GGUF file ${file} does not exist`);
  if (!statSync(file).isFile()) throw new Error(`${id}: ${file} is not a file (gguf: takes a .gguf file; use local:<dir> for a model directory)`);
  const header = readGGUF(file, { data: false }); // throws naming the file and the field
  const trained = Number(ggufGet(header, `${String(ggufGet(header, 'general.architecture'))}.context_length`)) || 512;
  const child = await LlamaCppChild.start(file, {
    threads: opts.threads ?? 1,
    contextSize: opts.contextSize ?? Math.min(trained, DEFAULT_MAX_CONTEXT),
    startTimeoutMs: opts.startTimeoutMs,
    requestTimeoutMs: opts.timeoutMs,
    validate: false, // just read above
  });
  // The context size changes answers (prompts are cut to fit), so it is part of the cache key; so is the chat mode.
  const settings = `ctx=${child.info.contextSize};chat=${opts.chatTemplate ?? 'auto'}`;
  return new GgufProvider(id, `${basename(file)}@${fileFingerprint([file], settings)}`, child, header, opts);
}
