// Request validation for the OpenAI-compatible server. Each check names the offending parameter, and
// errors leave in OpenAI's shape ({ error: { message, type, param, code } }) so clients show them as-is.
// Parameters we cannot honour (penalties, logit_bias, tools) are refused, never silently ignored.

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
  toJSON() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

type Body = Record<string, unknown>;

export interface Limits {
  /** max_tokens when a chat request gives none (OpenAI's default is "up to the context"; the server clamps this
   * default to the room the prompt leaves in the model's context). */
  defaultMaxTokens: number;
  maxTokensLimit: number;
  maxN: number;
}

export const DEFAULT_LIMITS: Limits = { defaultMaxTokens: 256, maxTokensLimit: 4096, maxN: 16 };

export interface SamplingParams {
  model?: string;
  maxTokens: number;
  /** The client set max_tokens (else it is a default, which the server may clamp to the context). */
  maxTokensGiven: boolean;
  temperature: number;
  topP?: number;
  topK?: number;
  stop?: string[];
  seed?: number;
  n: number;
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionParams extends SamplingParams {
  /** Text prompts, or token-id prompts (lm-evaluation-harness's default) to be decoded by the model. */
  prompts: (string | number[])[];
  echo: boolean;
  /** Number of top alternatives per token, or null for no log-probs. */
  logprobs: number | null;
}

export interface ChatParams extends SamplingParams {
  messages: { role: string; content: string }[];
  logprobs: boolean;
  topLogprobs: number;
}

function bad(param: string, message: string): ApiError {
  return new ApiError(400, message, param, 'invalid_value');
}

function has(body: Body, k: string): boolean {
  return body[k] !== undefined && body[k] !== null;
}

function num(body: Body, k: string, o: { min?: number; max?: number; int?: boolean; exclusiveMin?: boolean }): number | undefined {
  if (!has(body, k)) return undefined;
  const v = body[k];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(k, `'${k}' must be a number, got ${JSON.stringify(v)}`);
  if (o.int && !Number.isInteger(v)) throw bad(k, `'${k}' must be an integer, got ${v}`);
  if (o.min !== undefined && (o.exclusiveMin ? v <= o.min : v < o.min)) throw bad(k, `'${k}' must be ${o.exclusiveMin ? '>' : '>='} ${o.min}, got ${v}`);
  if (o.max !== undefined && v > o.max) throw bad(k, `'${k}' must be <= ${o.max}, got ${v}`);
  return v;
}

function bool(body: Body, k: string): boolean | undefined {
  if (!has(body, k)) return undefined;
  if (typeof body[k] !== 'boolean') throw bad(k, `'${k}' must be true or false, got ${JSON.stringify(body[k])}`);
  return body[k] as boolean;
}

function unsupported(body: Body): void {
  for (const k of ['presence_penalty', 'frequency_penalty']) {
    const v = body[k];
    if (v !== undefined && v !== null && v !== 0) throw new ApiError(400, `'${k}' is not supported by this server (only 0)`, k, 'unsupported_parameter');
  }
  const lb = body.logit_bias;
  if (lb && typeof lb === 'object' && Object.keys(lb).length > 0) throw new ApiError(400, `'logit_bias' is not supported by this server`, 'logit_bias', 'unsupported_parameter');
  if (Array.isArray(body.tools) && body.tools.length > 0) throw new ApiError(400, `'tools' are not supported by this server`, 'tools', 'unsupported_parameter');
  const rf = body.response_format as { type?: string } | undefined;
  if (rf && rf.type && rf.type !== 'text') throw new ApiError(400, `'response_format' ${rf.type} is not supported by this server`, 'response_format', 'unsupported_parameter');
  if (typeof body.suffix === 'string' && body.suffix !== '') throw new ApiError(400, `'suffix' is not supported by this server`, 'suffix', 'unsupported_parameter');
}

function sampling(body: Body, limits: Limits, maxTokensKeys: string[], defaultMaxTokens: number): SamplingParams {
  if (has(body, 'model') && typeof body.model !== 'string') throw bad('model', `'model' must be a string`);
  unsupported(body);
  let maxTokens = defaultMaxTokens;
  let maxTokensGiven = false;
  for (const k of maxTokensKeys) {
    const v = num(body, k, { min: 0, int: true, max: limits.maxTokensLimit });
    if (v !== undefined) [maxTokens, maxTokensGiven] = [v, true];
  }
  const temperature = num(body, 'temperature', { min: 0, max: 2 }) ?? 1;
  const topP = num(body, 'top_p', { min: 0, max: 1, exclusiveMin: true });
  const topK = num(body, 'top_k', { min: -1, int: true });
  const seed = num(body, 'seed', { int: true });
  const n = num(body, 'n', { min: 1, max: limits.maxN, int: true }) ?? 1;
  const bestOf = num(body, 'best_of', { min: 1, int: true });
  if (bestOf !== undefined && bestOf !== n) throw new ApiError(400, `'best_of' other than n is not supported by this server`, 'best_of', 'unsupported_parameter');
  let stop: string[] | undefined;
  if (has(body, 'stop')) {
    const s = body.stop;
    const list = typeof s === 'string' ? [s] : s;
    if (!Array.isArray(list) || list.some((x) => typeof x !== 'string' || x === '')) throw bad('stop', `'stop' must be a non-empty string or an array of non-empty strings`);
    if (list.length > 16) throw bad('stop', `'stop' takes at most 16 sequences, got ${list.length}`);
    if (list.length > 0) stop = list as string[];
  }
  const stream = bool(body, 'stream') ?? false;
  let includeUsage = false;
  if (has(body, 'stream_options')) {
    const so = body.stream_options;
    if (typeof so !== 'object' || so === null || Array.isArray(so)) throw bad('stream_options', `'stream_options' must be an object`);
    if (!stream) throw bad('stream_options', `'stream_options' is only allowed with stream: true`);
    includeUsage = bool(so as Body, 'include_usage') ?? false;
  }
  return {
    model: body.model as string | undefined,
    maxTokens,
    maxTokensGiven,
    temperature,
    topP: topP === 1 ? undefined : topP,
    topK: topK === undefined || topK <= 0 ? undefined : topK, // -1 and 0 mean "off" (vLLM, llama.cpp)
    stop,
    seed,
    n,
    stream,
    includeUsage,
  };
}

function isTokenIds(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && (x as number) >= 0);
}

export function parseCompletionRequest(body: unknown, limits: Limits = DEFAULT_LIMITS): CompletionParams {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'request body must be a JSON object');
  const b = body as Body;
  if (!has(b, 'prompt')) throw bad('prompt', `'prompt' is required`);
  const p = b.prompt;
  let prompts: (string | number[])[];
  if (typeof p === 'string') prompts = [p];
  else if (isTokenIds(p)) prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) prompts = p as string[];
  else if (Array.isArray(p) && p.length > 0 && p.every(isTokenIds)) prompts = p as number[][];
  else throw bad('prompt', `'prompt' must be a string, an array of strings, an array of token ids, or an array of token-id arrays`);
  if (prompts.length > 256) throw bad('prompt', `at most 256 prompts per request, got ${prompts.length}`);
  // OpenAI's legacy default is 16 tokens; keep it so clients written against it behave the same.
  const s = sampling(b, limits, ['max_tokens'], 16);
  const logprobs = num(b, 'logprobs', { min: 0, max: 20, int: true }) ?? null;
  const echo = bool(b, 'echo') ?? false;
  if (s.stream && logprobs !== null) throw new ApiError(400, `'logprobs' with stream: true is not supported; send stream: false`, 'logprobs', 'unsupported_parameter');
  return { ...s, prompts, echo, logprobs };
}

function messageContent(m: Body, i: number): string {
  const c = m.content;
  if (typeof c === 'string') return c;
  if (c === null || c === undefined) {
    if (m.role === 'assistant') return '';
    throw bad(`messages[${i}].content`, `messages[${i}].content is required`);
  }
  if (Array.isArray(c)) {
    return c
      .map((part, j) => {
        const pt = part as Body;
        if (pt?.type !== 'text' || typeof pt.text !== 'string')
          throw new ApiError(400, `messages[${i}].content[${j}]: only text parts are supported (got type ${JSON.stringify(pt?.type)})`, `messages[${i}].content`, 'unsupported_parameter');
        return pt.text;
      })
      .join('');
  }
  throw bad(`messages[${i}].content`, `messages[${i}].content must be a string or an array of text parts`);
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant']);

export function parseChatRequest(body: unknown, limits: Limits = DEFAULT_LIMITS): ChatParams {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'request body must be a JSON object');
  const b = body as Body;
  if (!Array.isArray(b.messages) || b.messages.length === 0) throw bad('messages', `'messages' must be a non-empty array`);
  const messages = b.messages.map((raw, i) => {
    if (typeof raw !== 'object' || raw === null) throw bad(`messages[${i}]`, `messages[${i}] must be an object`);
    const m = raw as Body;
    if (typeof m.role !== 'string' || !ROLES.has(m.role))
      throw bad(`messages[${i}].role`, `messages[${i}].role must be one of system, developer, user, assistant; got ${JSON.stringify(m.role)}`);
    // "developer" is OpenAI's newer name for the system role.
    return { role: m.role === 'developer' ? 'system' : m.role, content: messageContent(m, i) };
  });
  const s = sampling(b, limits, ['max_tokens', 'max_completion_tokens'], limits.defaultMaxTokens);
  const logprobs = bool(b, 'logprobs') ?? false;
  const topLogprobs = num(b, 'top_logprobs', { min: 0, max: 20, int: true }) ?? 0;
  if (topLogprobs > 0 && !logprobs) throw bad('top_logprobs', `'top_logprobs' needs logprobs: true`);
  if (s.stream && logprobs) throw new ApiError(400, `'logprobs' with stream: true is not supported; send stream: false`, 'logprobs', 'unsupported_parameter');
  return { ...s, messages, logprobs, topLogprobs };
}
