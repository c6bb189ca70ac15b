// `openai:<model>` and `openai-compat:<base url>#<model>`: any server that speaks OpenAI's chat and
// completions API (OpenAI itself, vLLM, llama.cpp's server, Ollama, TGI, and our own `alignlab serve`).
// Multiple-choice scoring uses the legacy completions trick lm-evaluation-harness uses: send context +
// continuation with echo=true and logprobs, then sum the log-probs of the tokens that cover the continuation.
import type { ChatMessage, CompletionRequest, CompletionResponse, LoglikelihoodRequest, LoglikelihoodResponse, Provider } from './types.js';
import { blockedPortProblem, HttpClient, resolveApiKey, type HttpClientOptions, type RetryEvent, type RetryPolicy } from './http.js';

export const OPENAI_BASE_URL = 'https://api.openai.com/v1';

export type ApiMode = 'chat' | 'completions';

export interface ProviderSpec {
  kind: 'openai' | 'openai-compat';
  /** Base URL up to and including the version segment, without a trailing slash: https://api.openai.com/v1. */
  baseUrl: string;
  model: string;
  /** A mode fixed by the id (`openai:chat:<model>`, `openai:completion:<model>`); undefined = decide per request. */
  mode?: ApiMode;
}

/**
 * Parse a provider id.
 *   openai:<model>                      chat API at $OPENAI_BASE_URL or https://api.openai.com/v1
 *   openai:chat:<model>                 same, explicit (promptfoo's spelling)
 *   openai:completion:<model>           legacy completions API (davinci-002, gpt-3.5-turbo-instruct)
 *   openai-compat:<base url>#<model>    any OpenAI-compatible server, e.g. openai-compat:http://127.0.0.1:8000/v1#qwen2
 */
export function parseProviderId(id: string, env: Record<string, string | undefined> = process.env): ProviderSpec {
  const colon = id.indexOf(':');
  const kind = colon < 0 ? id : id.slice(0, colon);
  const rest = colon < 0 ? '' : id.slice(colon + 1);
  if (kind === 'openai') {
    let model = rest;
    let mode: ApiMode | undefined;
    const m = /^(chat|completion|completions):(.*)$/s.exec(rest);
    if (m) {
      mode = m[1] === 'chat' ? 'chat' : 'completions';
      model = m[2]!;
    }
    if (!model) throw new Error(`provider id "${id}": missing model name (expected openai:<model>, e.g. openai:gpt-4o-mini)`);
    const base = env.OPENAI_BASE_URL?.trim() || OPENAI_BASE_URL;
    return { kind, baseUrl: normalizeBaseUrl(base, `OPENAI_BASE_URL (for "${id}")`), model, mode };
  }
  if (kind === 'openai-compat') {
    const hash = rest.lastIndexOf('#');
    if (hash < 0 || hash === rest.length - 1)
      throw new Error(`provider id "${id}": expected openai-compat:<base url>#<model>, e.g. openai-compat:http://127.0.0.1:8000/v1#qwen2`);
    return { kind, baseUrl: normalizeBaseUrl(rest.slice(0, hash), `provider id "${id}"`), model: rest.slice(hash + 1) };
  }
  throw new Error(`provider id "${id}": not an OpenAI provider (expected openai:<model> or openai-compat:<base url>#<model>)`);
}

function normalizeBaseUrl(raw: string, where: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`${where}: "${raw}" is not a URL (expected e.g. http://127.0.0.1:8000/v1)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${where}: base URL must be http(s), got ${u.protocol}`);
  if (u.search || u.hash) throw new Error(`${where}: base URL must not carry a query or fragment: ${raw}`);
  const blocked = blockedPortProblem(u);
  if (blocked) throw new Error(`${where}: ${blocked}`);
  return u.toString().replace(/\/+$/, '');
}

export interface OpenAIProviderOptions {
  /** chat: /chat/completions (a bare prompt becomes one user message); completions: /completions (prompt only);
   * auto (default for openai-compat): messages → chat, prompt → completions. openai: defaults to chat. */
  mode?: ApiMode | 'auto';
  /** Environment variable holding the API key. openai: defaults to OPENAI_API_KEY (required). openai-compat:
   * sends no key unless this is set, so your OpenAI key never goes to a third-party server by accident. */
  apiKeyEnv?: string;
  /** Where keys and OPENAI_BASE_URL are read from (default process.env). */
  env?: Record<string, string | undefined>;
  /** Per-attempt timeout for the whole answer (default 120 s). */
  timeoutMs?: number;
  /** Per-attempt timeout until the server starts answering (headers; for streams the first event). Default 30 s. */
  firstByteTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Requests in flight at once for this provider (default 4). */
  concurrency?: number;
  headers?: Record<string, string>;
  /** Ask for per-token log-probs of generated text (default false; not every server supports it). */
  logprobs?: boolean;
  /** Offer loglikelihood() through completions + echo + logprobs. Default: true for openai-compat (vLLM,
   * llama.cpp and `alignlab serve` support it), false for openai: (only babbage-002/davinci-002 do). */
  loglikelihood?: boolean;
  /** Use streaming (SSE) for complete(); the text is assembled before returning. */
  stream?: boolean;
  /** Extra JSON fields merged into every request body (e.g. { repetition_penalty: 1.1 } for vLLM). */
  extraBody?: Record<string, unknown>;
  onRetry?: (e: RetryEvent) => void;
  /** Jitter source (tests). */
  random?: () => number;
}

interface CompletionChoice {
  index?: number;
  text?: string;
  finish_reason?: string | null;
  logprobs?: {
    tokens?: string[];
    token_logprobs?: (number | null)[];
    top_logprobs?: (Record<string, number> | null)[] | null;
    text_offset?: number[];
  } | null;
}
interface ChatChoice {
  index?: number;
  message?: { role?: string; content?: string | null };
  delta?: { role?: string; content?: string | null };
  finish_reason?: string | null;
  logprobs?: { content?: { token: string; logprob: number }[] | null } | null;
}
interface ApiResponse<C> {
  choices: C[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
}

/** A 200 answer without choices is a broken proxy or server, retried like malformed JSON. */
function validateChoices(data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null) return 'body is not a JSON object';
  const choices = (data as { choices?: unknown }).choices;
  if (!Array.isArray(choices) || choices.length === 0) return 'no "choices" array';
  return undefined;
}

function mapFinish(r: string | null | undefined): CompletionResponse['finishReason'] {
  if (r === 'length') return 'length';
  if (r === 'eos') return 'eos';
  return 'stop'; // stop, content_filter, tool_calls, and servers that send null on the last chunk
}

/** Length in Unicode code points: servers written in Python count text_offset that way. */
function cpLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Which of an echoed prompt's tokens cover the continuation: those that end after the context does and
 * start before the prompt ends (later tokens were generated). A token straddling the boundary counts as
 * continuation, as it would under lm-evaluation-harness's token-level split. */
export function continuationTokenRange(tokens: string[], offsets: number[] | undefined, contextLen: number, promptLen: number): [number, number] {
  const starts = offsets ?? tokens.reduce<number[]>((acc, _t, i) => (acc.push(i === 0 ? 0 : acc[i - 1]! + cpLength(tokens[i - 1]!)), acc), []);
  let lo = -1;
  let hi = -1;
  for (let i = 0; i < tokens.length; i++) {
    const start = starts[i]!;
    const end = start + cpLength(tokens[i]!);
    if (start >= promptLen) break;
    if (end > contextLen || start >= contextLen) {
      if (lo < 0) lo = i;
      hi = i + 1;
    }
  }
  return lo < 0 ? [0, 0] : [lo, hi];
}

export class OpenAIProvider implements Provider {
  readonly id: string;
  readonly model: string;
  readonly spec: ProviderSpec;
  readonly http: HttpClient;
  readonly loglikelihood?: (reqs: LoglikelihoodRequest[]) => Promise<LoglikelihoodResponse[]>;
  readonly #opts: OpenAIProviderOptions;
  readonly #mode: ApiMode | 'auto';

  constructor(id: string, opts: OpenAIProviderOptions = {}) {
    const env = opts.env ?? process.env;
    this.spec = parseProviderId(id, env);
    this.id = id;
    this.model = this.spec.model;
    this.#opts = opts;
    this.#mode = this.spec.mode ?? opts.mode ?? (this.spec.kind === 'openai' ? 'chat' : 'auto');
    const keyVar = opts.apiKeyEnv ?? (this.spec.kind === 'openai' ? 'OPENAI_API_KEY' : undefined);
    const apiKey = keyVar ? resolveApiKey(keyVar, env) : undefined;
    if (keyVar && !apiKey) throw new Error(`${id}: environment variable ${keyVar} is not set (it holds the API key for ${this.spec.baseUrl})`);
    const httpOpts: HttpClientOptions = {
      timeoutMs: opts.timeoutMs,
      firstByteTimeoutMs: opts.firstByteTimeoutMs,
      retry: opts.retry,
      concurrency: opts.concurrency,
      headers: opts.headers,
      apiKey,
      onRetry: opts.onRetry,
      random: opts.random,
    };
    this.http = new HttpClient(httpOpts);
    if (opts.loglikelihood ?? this.spec.kind === 'openai-compat') this.loglikelihood = (reqs) => this.#loglikelihood(reqs);
  }

  get baseUrl(): string {
    return this.spec.baseUrl;
  }

  #modeFor(req: CompletionRequest): ApiMode {
    if (this.#mode !== 'auto') return this.#mode;
    return req.messages ? 'chat' : 'completions';
  }

  /** The request body for one completion, in the API the mode picks. Exported through `buildRequest` for tests. */
  buildRequest(req: CompletionRequest, stream = false): { url: string; mode: ApiMode; body: Record<string, unknown> } {
    if ((req.prompt === undefined) === (req.messages === undefined))
      throw new Error(`${this.id}: a completion request needs exactly one of prompt or messages`);
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 0) throw new Error(`${this.id}: maxTokens must be an integer >= 0, got ${req.maxTokens}`);
    const mode = this.#modeFor(req);
    const isOpenAI = this.spec.kind === 'openai';
    if (req.topK !== undefined && isOpenAI)
      throw new Error(`${this.id}: OpenAI's API has no top_k; remove topK from the generation parameters for this provider`);
    const body: Record<string, unknown> = { model: this.model };
    if (mode === 'chat') {
      const messages: ChatMessage[] = req.messages ?? [{ role: 'user', content: req.prompt! }];
      body.messages = messages;
      // OpenAI deprecated max_tokens for chat (reasoning models reject it); compatible servers know max_tokens.
      body[isOpenAI ? 'max_completion_tokens' : 'max_tokens'] = req.maxTokens;
      if (this.#opts.logprobs) body.logprobs = true;
    } else {
      if (req.messages) throw new Error(`${this.id}: completions mode needs a prompt, got chat messages (use mode "chat")`);
      body.prompt = req.prompt;
      body.max_tokens = req.maxTokens;
      if (this.#opts.logprobs) body.logprobs = 1;
    }
    if (req.temperature !== undefined) body.temperature = req.temperature;
    if (req.topP !== undefined) body.top_p = req.topP;
    if (req.topK !== undefined) body.top_k = req.topK; // vLLM, llama.cpp and TGI accept it as an extension
    if (req.stop?.length) body.stop = req.stop;
    if (req.seed !== undefined) body.seed = req.seed;
    if (stream) {
      body.stream = true;
      body.stream_options = { include_usage: true };
    }
    Object.assign(body, this.#opts.extraBody);
    const url = `${this.baseUrl}/${mode === 'chat' ? 'chat/completions' : 'completions'}`;
    return { url, mode, body };
  }

  async complete(req: CompletionRequest): Promise<CompletionResponse> {
    if (this.#opts.stream) return this.stream(req);
    const { url, mode, body } = this.buildRequest(req);
    const res = await this.http.requestJson<ApiResponse<ChatChoice & CompletionChoice>>('POST', url, body, { validate: validateChoices });
    const choice = res.data.choices[0]!;
    const text = mode === 'chat' ? (choice.message?.content ?? '') : (choice.text ?? '');
    let logprobs: number[] | undefined;
    if (mode === 'chat' && choice.logprobs?.content) logprobs = choice.logprobs.content.map((t) => t.logprob);
    if (mode === 'completions' && choice.logprobs?.token_logprobs) logprobs = choice.logprobs.token_logprobs.map((x) => x ?? Number.NaN);
    return {
      text,
      finishReason: mapFinish(choice.finish_reason),
      promptTokens: res.data.usage?.prompt_tokens,
      completionTokens: res.data.usage?.completion_tokens,
      logprobs,
      latencyMs: res.latencyMs,
    };
  }

  /** Stream one completion over SSE; `onDelta` sees each text piece as it arrives. */
  async stream(req: CompletionRequest, onDelta?: (text: string) => void): Promise<CompletionResponse> {
    const { url, mode, body } = this.buildRequest(req, true);
    let t0: number | undefined;
    let text = '';
    let finish: string | null | undefined;
    let usage: ApiResponse<unknown>['usage'];
    for await (const ev of this.http.streamJson(url, body, { onStart: () => (t0 ??= performance.now()) })) {
      const chunk = ev as ApiResponse<ChatChoice & CompletionChoice> & { error?: { message?: string } };
      if (chunk.error) throw new Error(`${this.id}: server error in stream from ${url}: ${chunk.error.message ?? JSON.stringify(chunk.error)}`);
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices ?? []) {
        if ((c.index ?? 0) !== 0) continue;
        const piece = mode === 'chat' ? (c.delta?.content ?? '') : (c.text ?? '');
        if (piece) {
          text += piece;
          onDelta?.(piece);
        }
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    return {
      text,
      finishReason: mapFinish(finish),
      promptTokens: usage?.prompt_tokens,
      completionTokens: usage?.completion_tokens,
      latencyMs: performance.now() - (t0 ?? performance.now()),
    };
  }

  /** Model ids the server lists at GET /models. */
  async listModels(): Promise<string[]> {
    const res = await this.http.requestJson<{ data?: { id: string }[] }>('GET', `${this.baseUrl}/models`);
    return (res.data.data ?? []).map((m) => m.id);
  }

  async #loglikelihood(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResponse[]> {
    // One request per pair; the shared limiter bounds how many are in flight, and a server that batches
    // (vLLM, alignlab serve) groups concurrent ones itself.
    return Promise.all(reqs.map((r) => this.#scoreOne(r)));
  }

  async #scoreOne({ context, continuation }: LoglikelihoodRequest): Promise<LoglikelihoodResponse> {
    const prompt = context + continuation;
    const url = `${this.baseUrl}/completions`;
    // max_tokens 1 as lm-evaluation-harness sends: some servers reject 0; the generated token is dropped below.
    const body = { model: this.model, prompt, max_tokens: 1, temperature: 0, logprobs: 1, echo: true, ...this.#opts.extraBody };
    const res = await this.http.requestJson<ApiResponse<CompletionChoice>>('POST', url, body, { validate: validateChoices });
    const lp = res.data.choices[0]!.logprobs;
    if (!lp?.tokens || !lp.token_logprobs)
      throw new Error(`${this.id}: ${url} returned no prompt log-probs for echo=true; this server cannot score continuations (set loglikelihood: false)`);
    const [lo, hi] = continuationTokenRange(lp.tokens, lp.text_offset, cpLength(context), cpLength(prompt));
    let logprob = 0;
    let isGreedy = true;
    for (let i = lo; i < hi; i++) {
      const x = lp.token_logprobs[i];
      if (x === null || x === undefined)
        throw new Error(`${this.id}: ${url} gave no log-prob for prompt token ${i} ("${lp.tokens[i]}"); an empty context cannot be scored by this server`);
      logprob += x;
      const top = lp.top_logprobs?.[i];
      // Greedy = the token is the most likely one at its position (lm-evaluation-harness's test).
      if (!top || Math.max(...Object.values(top)) > x + 1e-9) isGreedy = false;
    }
    return { logprob, isGreedy, tokens: hi - lo };
  }

  async close(): Promise<void> {
    // fetch keeps no per-provider resources; nothing to release.
  }
}

/** Option names as an eval YAML may spell them (snake_case) → our names. */
const SNAKE: Record<string, keyof OpenAIProviderOptions> = {
  api_key_env: 'apiKeyEnv',
  timeout_ms: 'timeoutMs',
  first_byte_timeout_ms: 'firstByteTimeoutMs',
  extra_body: 'extraBody',
  on_retry: 'onRetry',
};
const RETRY_KEYS: Record<string, keyof RetryPolicy> = {
  max_retries: 'maxRetries',
  base_delay_ms: 'baseDelayMs',
  max_delay_ms: 'maxDelayMs',
  max_retry_after_ms: 'maxRetryAfterMs',
  max_malformed_retries: 'maxMalformedRetries',
};
const OPTION_TYPES: Record<keyof OpenAIProviderOptions, string> = {
  mode: 'string',
  apiKeyEnv: 'string',
  env: 'object',
  timeoutMs: 'number',
  firstByteTimeoutMs: 'number',
  retry: 'object',
  concurrency: 'number',
  headers: 'object',
  logprobs: 'boolean',
  loglikelihood: 'boolean',
  stream: 'boolean',
  extraBody: 'object',
  onRetry: 'function',
  random: 'function',
};

/**
 * Options from code or from an eval config, checked: snake_case names are accepted (api_key_env, timeout_ms,
 * extra_body, and retry fields max_retries, base_delay_ms, max_delay_ms, max_retry_after_ms,
 * max_malformed_retries at top level or under retry:), and an unknown name or a wrong type is an error that
 * names it, so a typo in a YAML file never passes silently.
 */
export function normalizeOpenAIOptions(id: string, raw: Record<string, unknown>): OpenAIProviderOptions {
  const out: Record<string, unknown> = {};
  const retry: Record<string, unknown> = {};
  const takeRetry = (k: string, v: unknown) => {
    const name = RETRY_KEYS[k] ?? (Object.values(RETRY_KEYS).includes(k as keyof RetryPolicy) ? k : undefined);
    if (!name) return false;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${id}: option ${k} must be a number >= 0, got ${JSON.stringify(v)}`);
    retry[name] = v;
    return true;
  };
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    if (k === 'retry' && v && typeof v === 'object') {
      for (const [rk, rv] of Object.entries(v)) if (!takeRetry(rk, rv)) throw new Error(`${id}: unknown retry option "${rk}" (known: ${Object.keys(RETRY_KEYS).join(', ')})`);
      continue;
    }
    if (takeRetry(k, v)) continue;
    const name = (SNAKE[k] ?? k) as keyof OpenAIProviderOptions;
    const type = OPTION_TYPES[name];
    if (!type) throw new Error(`${id}: unknown provider option "${k}" (known: ${[...Object.keys(OPTION_TYPES), ...Object.keys(SNAKE), ...Object.keys(RETRY_KEYS)].join(', ')})`);
    if (typeof v !== type || v === null) throw new Error(`${id}: option ${k} must be a ${type}, got ${JSON.stringify(v)}`);
    if (name === 'mode' && !['chat', 'completions', 'auto'].includes(v as string)) throw new Error(`${id}: option mode must be chat, completions or auto, got "${v}"`);
    if (name === 'concurrency' && (!Number.isInteger(v) || (v as number) < 1)) throw new Error(`${id}: option concurrency must be an integer >= 1, got ${v}`);
    if ((name === 'timeoutMs' || name === 'firstByteTimeoutMs') && !((v as number) > 0)) throw new Error(`${id}: option ${k} must be > 0, got ${v}`);
    out[name] = v;
  }
  if (Object.keys(retry).length > 0) out.retry = retry;
  return out as OpenAIProviderOptions;
}

/** Build an openai: / openai-compat: provider; `opts` may come straight from an eval config (see normalizeOpenAIOptions). */
export function createOpenAIProvider(id: string, opts: OpenAIProviderOptions | Record<string, unknown> = {}): OpenAIProvider {
  return new OpenAIProvider(id, normalizeOpenAIOptions(id, opts as Record<string, unknown>));
}
