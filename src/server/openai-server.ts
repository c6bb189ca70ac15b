// An OpenAI-compatible HTTP server for a ServableModel, so tools written for OpenAI's API (promptfoo,
// lm-evaluation-harness's local-completions, the openai SDKs, curl) can evaluate models trained here.
//   GET  /v1/models, /v1/models/{id}, /health
//   POST /v1/completions        prompt (text, texts, or token ids), echo + logprobs for scoring, n, stop, seed
//   POST /v1/chat/completions   messages through the model's chat template
// stream: true answers as server-sent events (`data: {...}\n\n` ... `data: [DONE]\n\n`).
// Every model call goes through one BatchQueue: with a model that decodes step by step (src/model/lm.ts) requests
// join the running batch between decode steps (continuous batching); concurrent requests share steps, never race.
// Client mistakes are 400s in OpenAI's error shape (a prompt or max_tokens past the context, a token id outside
// the vocabulary); a full queue is 429 with Retry-After; a stream that fails mid-way ends with an error event
// and [DONE].
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { BatchQueue, QueueClosedError, QueueFullError } from '../model/batch-queue.js';
import { hasDecode, hasScorePrompt, InvalidRequestError, type Generation, type GenerateOptions, type PromptScore, type ServableModel, type ServableModelExtras } from '../model/serving.js';
import { ApiError, DEFAULT_LIMITS, parseChatRequest, parseCompletionRequest, type ChatParams, type CompletionParams, type Limits, type SamplingParams } from './validate.js';
import { StopSafeStream, truncateAtStop } from './stop-text.js';

export interface OpenAIServerOptions {
  /** Interface to bind (default 127.0.0.1: the model is reachable from this machine only). */
  host?: string;
  /** Port (default 0: any free port; read it back from `port`). */
  port?: number;
  /** Model id shown at /v1/models and accepted in `model` (default: the model's name). */
  modelName?: string;
  /** Rows per generate call (default 8). */
  maxBatch?: number;
  /** Waiting rows before the server answers 429 with Retry-After (default 1024). */
  maxQueue?: number;
  /** Largest request body accepted (default 4 MiB). */
  maxBodyBytes?: number;
  limits?: Partial<Limits>;
  /** When set, clients must send `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** One line per request (method, path, status, ms); never bodies, prompts or keys. */
  log?: (line: string) => void;
  /** Called when a request is done, with its server-side time (bench: harness overhead = client - server). */
  onRequestDone?: (r: RequestRecord) => void;
}

export interface RequestRecord {
  method: string;
  path: string;
  status: number;
  /** From the request's arrival to its last byte written (queue wait and model time included). */
  serverMs: number;
  stream: boolean;
  promptTokens: number;
  completionTokens: number;
  /** The client went away before the response was complete. */
  aborted: boolean;
}

export interface OpenAIServer {
  /** http://host:port */
  url: string;
  /** http://host:port/v1 — what clients take as their base URL. */
  baseUrl: string;
  host: string;
  port: number;
  modelName: string;
  queue: BatchQueue;
  /**
   * Stop: no new connections or requests (503); requests in flight finish (or, with `cancel`, end now: a
   * stream gets an error event and [DONE]); then the socket closes.
   */
  close(opts?: { cancel?: boolean }): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith('127.');
}

export async function startOpenAIServer(model: ServableModel, opts: OpenAIServerOptions = {}): Promise<OpenAIServer> {
  const host = opts.host ?? '127.0.0.1';
  const modelName = opts.modelName ?? model.name;
  const queue = new BatchQueue(model, { maxBatch: opts.maxBatch, maxQueue: opts.maxQueue });
  const ctx: Ctx = {
    model,
    modelName,
    queue,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    maxBodyBytes: opts.maxBodyBytes ?? 4 << 20,
    apiKey: opts.apiKey,
    created: Math.floor(Date.now() / 1000),
    warned: new Set(),
    log: opts.log,
  };
  const server: Server = createServer((req, res) => {
    const rec: RequestRecord = { method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, status: 0, serverMs: 0, stream: false, promptTokens: 0, completionTokens: 0, aborted: false };
    const t0 = performance.now();
    res.on('close', () => {
      rec.serverMs = performance.now() - t0;
      rec.status = res.statusCode;
      rec.aborted = !res.writableFinished;
      opts.log?.(`${rec.method} ${rec.path} ${rec.status} ${rec.serverMs.toFixed(1)}ms${rec.stream ? ' stream' : ''}${rec.aborted ? ' aborted' : ''}`);
      opts.onRequestDone?.(rec);
    });
    handle(ctx, req, res, rec).catch((err: unknown) => sendError(res, err));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  const url = `http://${hostInUrl}:${port}`;
  return {
    url,
    baseUrl: `${url}/v1`,
    host,
    port,
    modelName,
    queue,
    close: (o: { cancel?: boolean } = {}) => {
      // A second call (a second Ctrl-C) may ask to cancel what the first one lets finish.
      if (closing) return o.cancel ? queue.close(o).then(() => closing!) : closing;
      closing = (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await queue.close(o);
        // Responses of finished requests are flushed before the sockets go.
        await new Promise((r) => setImmediate(r));
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

interface Ctx {
  model: ServableModel;
  modelName: string;
  queue: BatchQueue;
  limits: Limits;
  maxBodyBytes: number;
  apiKey?: string;
  created: number;
  /** Warnings already logged once. */
  warned: Set<string>;
  log?: (line: string) => void;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof QueueFullError) return new ApiError(429, `${err.message}; retry later`, null, 'rate_limit_exceeded', 'rate_limit_error', { 'retry-after': '1' });
  if (err instanceof QueueClosedError) return new ApiError(503, err.message, null, 'shutting_down', 'server_error', { connection: 'close' });
  if (err instanceof InvalidRequestError) return new ApiError(400, err.message, err.param, 'invalid_value');
  const msg = err instanceof Error ? err.message : String(err);
  return new ApiError(500, `model error: ${msg}`, null, 'model_error');
}

function sendError(res: ServerResponse, err: unknown): void {
  const e = toApiError(err);
  if (res.headersSent) {
    // Mid-stream: the status is already 200; tell the client in-band, then end the stream as every stream ends.
    if (!res.writableEnded && !res.destroyed) {
      res.write(`data: ${JSON.stringify(e.toJSON())}\n\n`);
      res.end('data: [DONE]\n\n');
    }
    return;
  }
  sendJson(res, e.status, e.toJSON(), e.headers);
}

async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooBig = false;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) tooBig = true; // keep draining so the client gets our answer instead of a reset
    else chunks.push(c);
  }
  if (tooBig) throw new ApiError(413, `request body is ${size} bytes; the limit is ${limit}`, null, 'body_too_large');
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new ApiError(400, 'request body is empty; expected a JSON object');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `could not parse the JSON body of your request: ${(e as Error).message}`, null, 'invalid_json');
  }
}

function authorized(ctx: Ctx, req: IncomingMessage): boolean {
  if (!ctx.apiKey) return true;
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]!.trim());
  const b = Buffer.from(ctx.apiKey);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function handle(ctx: Ctx, req: IncomingMessage, res: ServerResponse, rec: RequestRecord): Promise<void> {
  const path = rec.path.replace(/\/+$/, '') || '/';
  const method = req.method ?? 'GET';
  if (path === '/health' || path === '/v1/health') return method === 'GET' ? sendJson(res, 200, { status: 'ok', model: ctx.modelName }) : notAllowed(method, path, 'GET');
  if (!authorized(ctx, req)) throw new ApiError(401, 'missing or wrong API key (send Authorization: Bearer <key>)', null, 'invalid_api_key');
  if (path === '/v1/models') return method === 'GET' ? sendJson(res, 200, { object: 'list', data: [modelCard(ctx)] }) : notAllowed(method, path, 'GET');
  if (path.startsWith('/v1/models/')) {
    if (method !== 'GET') return notAllowed(method, path, 'GET');
    const id = decodeURIComponent(path.slice('/v1/models/'.length));
    if (id !== ctx.modelName) throw new ApiError(404, `The model '${id}' does not exist; this server serves '${ctx.modelName}'`, 'model', 'model_not_found');
    return sendJson(res, 200, modelCard(ctx));
  }
  if (path === '/v1/completions' || path === '/v1/chat/completions') {
    if (method !== 'POST') return notAllowed(method, path, 'POST');
    const body = await readBody(req, ctx.maxBodyBytes);
    const closed = watchClose(res);
    if (path === '/v1/completions') return completions(ctx, parseCompletionRequest(body, ctx.limits), res, rec, closed);
    return chat(ctx, parseChatRequest(body, ctx.limits), res, rec, closed);
  }
  throw new ApiError(404, `unknown endpoint ${method} ${path} (this server has /v1/models, /v1/completions, /v1/chat/completions)`, null, 'not_found');
}

function notAllowed(method: string, path: string, allow: string): never {
  throw new ApiError(405, `${method} is not allowed on ${path}; use ${allow}`, null, 'method_not_allowed', 'invalid_request_error', { allow });
}

function modelCard(ctx: Ctx) {
  return { id: ctx.modelName, object: 'model', created: ctx.created, owned_by: 'alignlab' };
}

/** A function telling whether the client has gone away (so queued work for it can be dropped). */
function watchClose(res: ServerResponse): () => boolean {
  let gone = false;
  res.on('close', () => {
    if (!res.writableFinished) gone = true;
  });
  return () => gone;
}

function checkModel(ctx: Ctx, requested: string | undefined): void {
  if (requested !== undefined && requested !== ctx.modelName)
    throw new ApiError(404, `The model '${requested}' does not exist; this server serves '${ctx.modelName}'`, 'model', 'model_not_found');
}

/** Sampling options of choice `choice` (of n): each choice draws its own stream, reproducibly from the seed. */
function genOptions(p: CompletionParams | ChatParams, maxTokens: number, choice: number): GenerateOptions {
  const o: GenerateOptions = { maxNewTokens: maxTokens, temperature: p.temperature };
  if (p.topK !== undefined) o.topK = p.topK;
  if (p.topP !== undefined) o.topP = p.topP;
  if (p.stop) o.stop = p.stop;
  if (p.seed !== undefined) o.seed = choice === 0 ? p.seed : (p.seed ^ Math.imul(choice, 0x9e3779b1)) >>> 0;
  return o;
}

/**
 * max_tokens for prompts of `promptTokens` tokens, checked against the model's context (when the model tells
 * it). A prompt that leaves no room, or a max_tokens the client gave that runs past the context, is a 400
 * (OpenAI's context_length_exceeded). A default max_tokens is clamped to the room left, with a warning.
 */
function fitMaxTokens(ctx: Ctx, p: SamplingParams, promptTokens: number[], promptParam: 'prompt' | 'messages'): { maxTokens: number; warning?: string } {
  const m = ctx.model as ServableModel & ServableModelExtras;
  const window = m.contextLength;
  if (window === undefined) return { maxTokens: p.maxTokens };
  const longest = Math.max(0, ...promptTokens);
  const tooLong = (what: string, param: string) =>
    new ApiError(400, `This model's maximum context length is ${window} tokens, but ${what}`, param, 'context_length_exceeded');
  if (longest > window || (longest === window && p.maxTokens > 0))
    throw tooLong(`the prompt has ${longest} tokens${longest === window ? ', which leaves no room to generate' : ''}; send a shorter prompt`, promptParam);
  if (longest + p.maxTokens <= window) return { maxTokens: p.maxTokens };
  if (p.maxTokensGiven)
    throw tooLong(`you requested ${longest + p.maxTokens} tokens (${longest} in the prompt, ${p.maxTokens} for the completion); lower max_tokens to at most ${window - longest}`, 'max_tokens');
  const maxTokens = window - longest;
  return { maxTokens, warning: `max_tokens defaulted to ${maxTokens}, the rest of the model's ${window}-token context after the ${longest}-token prompt` };
}

function countTokens(ctx: Ctx, text: string): number | undefined {
  const m = ctx.model as ServableModelExtras;
  return typeof m.countTokens === 'function' ? m.countTokens(text) : undefined;
}

/** One generated row: the model's answer with the server's stop rule applied, and its token texts. */
interface Row {
  text: string;
  finishReason: 'stop' | 'length';
  tokens: string[];
  logprobs: number[];
  promptTokens: number;
  completionTokens: number;
}

function finishRow(g: Generation, pieces: string[], stop: string[] | undefined): Row {
  // The model should apply stop strings itself; the server enforces them anyway so clients get OpenAI's semantics.
  const cut = truncateAtStop(g.text, stop);
  const tokens = pieces.length === g.tokenIds.length ? pieces : g.tokenIds.map((id) => `token_id:${id}`);
  return {
    text: cut.text,
    finishReason: cut.stopped || g.finishReason !== 'length' ? 'stop' : 'length',
    tokens,
    logprobs: g.logprobs,
    promptTokens: g.promptTokens,
    completionTokens: g.tokenIds.length,
  };
}

function emptyRow(): Row {
  return { text: '', finishReason: 'length', tokens: [], logprobs: [], promptTokens: 0, completionTokens: 0 };
}

function cpLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Prompt log-probs for echo: exact alternatives when the model offers scorePrompt. Otherwise two
 * scoreContinuation calls: ('', text) to learn the prompt's tokens, then (first token, rest) so every later
 * token is conditioned exactly as scoreContinuation(context, continuation) conditions it (a served model then
 * scores like the same model in-process). Only the chosen tokens are known then, which is still the exact
 * top-1 whenever the scored tokens are all greedy. */
async function scorePrompt(ctx: Ctx, text: string, topN: number): Promise<PromptScore & { exactTop: boolean }> {
  if (hasScorePrompt(ctx.model)) return { ...(await ctx.model.scorePrompt(text, Math.max(1, topN))), exactTop: true };
  let s = await ctx.model.scoreContinuation('', text);
  let lps: (number | null)[] = s.tokenLogprobs;
  const first = s.tokenStrings[0];
  if (first !== undefined && first !== '' && text.startsWith(first)) {
    const rest = await ctx.model.scoreContinuation(first, text.slice(first.length));
    if (rest.tokens === s.tokens - 1) {
      s = { ...rest, tokens: s.tokens, tokenStrings: [first, ...rest.tokenStrings] };
      lps = [null, ...rest.tokenLogprobs]; // as OpenAI: nothing in the text predicts its first token
    }
  }
  if (!s.isGreedy && !ctx.warned.has('top')) {
    ctx.warned.add('top');
    ctx.log?.('warning: model has no scorePrompt(); echo top_logprobs list only the chosen token, so clients cannot tell greedy (see docs/providers.md)');
  }
  return {
    tokenStrings: s.tokenStrings,
    tokenLogprobs: lps,
    topLogprobs: s.tokenStrings.map((t, i) => (lps[i] === null ? {} : { [t]: lps[i]! })),
    exactTop: s.isGreedy,
  };
}

function promptText(ctx: Ctx, p: string | number[]): string {
  if (typeof p === 'string') return p;
  if (!hasDecode(ctx.model))
    throw new ApiError(400, `prompt given as token ids, but this model has no decode(); send text (lm-evaluation-harness: tokenized_requests=False)`, 'prompt', 'unsupported_parameter');
  const V = (ctx.model as ServableModelExtras).vocabSize;
  const bad = V === undefined ? undefined : p.find((t) => t >= V);
  if (bad !== undefined) throw new ApiError(400, `token id ${bad} in 'prompt' is outside the model's vocabulary (0..${V! - 1})`, 'prompt', 'invalid_value');
  return ctx.model.decode(p);
}

function completionLogprobs(score: PromptScore | undefined, promptLen: number, row: Row, topN: number, greedy: boolean) {
  const tokens: string[] = [];
  const tokenLogprobs: (number | null)[] = [];
  const top: (Record<string, number> | null)[] = [];
  const offsets: number[] = [];
  let at = 0;
  if (score) {
    score.tokenStrings.forEach((t, i) => {
      tokens.push(t);
      tokenLogprobs.push(score.tokenLogprobs[i] ?? null);
      top.push(Object.fromEntries(Object.entries(score.topLogprobs[i] ?? {}).slice(0, Math.max(1, topN))));
      offsets.push(at);
      at += cpLength(t);
    });
    at = promptLen; // generated text starts right after the prompt, whatever the prompt's token texts add up to
  }
  row.tokens.forEach((t, i) => {
    tokens.push(t);
    tokenLogprobs.push(row.logprobs[i] ?? null);
    // At temperature 0 each chosen token is the argmax, so {token: logprob} is the exact top-1; sampled tokens' alternatives are unknown.
    top.push(greedy ? { [t]: row.logprobs[i]! } : null);
    offsets.push(at);
    at += cpLength(t);
  });
  return { tokens, token_logprobs: tokenLogprobs, top_logprobs: top, text_offset: offsets };
}

function startSse(res: ServerResponse, headers: Record<string, string> = {}): (obj: unknown) => void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', ...headers });
  res.flushHeaders();
  return (obj) => {
    if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`);
  };
}

function endSse(res: ServerResponse): void {
  if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
}

async function completions(ctx: Ctx, p: CompletionParams, res: ServerResponse, rec: RequestRecord, closed: () => boolean): Promise<void> {
  checkModel(ctx, p.model);
  const prompts = p.prompts.map((x) => promptText(ctx, x));
  const scoring = p.echo && p.logprobs !== null;
  const counts = prompts.map((t) => countTokens(ctx, t)).filter((n) => n !== undefined);
  const fit = fitMaxTokens(ctx, p, counts, 'prompt');
  const generating = fit.maxTokens > 0;
  const jobs = (generating ? prompts.length * p.n : 0) + (scoring ? prompts.length : 0);
  if (!ctx.queue.hasRoom(jobs)) throw new QueueFullError(`server queue is full (${ctx.queue.depth} waiting)`);
  const group = randomUUID();
  const id = `cmpl-${group.replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const greedy = p.temperature === 0;
  const headers: Record<string, string> = fit.warning ? { 'x-alignlab-warning': fit.warning } : {};
  rec.stream = p.stream;
  const send = p.stream ? startSse(res, headers) : undefined;
  const chunk = (index: number, text: string, finish: string | null) =>
    send?.({ id, object: 'text_completion', created, model: ctx.modelName, choices: [{ index, text, logprobs: null, finish_reason: finish }] });

  const scores = scoring ? prompts.map((t) => ctx.queue.run(() => scorePrompt(ctx, t, p.logprobs!), closed)) : [];
  const rows = prompts.flatMap((prompt, pi) =>
    Array.from({ length: p.n }, async (_, j): Promise<Row> => {
      const index = pi * p.n + j;
      if (p.stream && p.echo) chunk(index, prompt, null);
      if (!generating) {
        chunk(index, '', 'length');
        return emptyRow();
      }
      const pieces: string[] = [];
      const streamer = new StopSafeStream(p.stop);
      const g = await ctx.queue.generate(
        prompt,
        genOptions(p, fit.maxTokens, j),
        group,
        (t) => {
          pieces.push(t);
          const out = streamer.push(t);
          if (out) chunk(index, out, null);
        },
        closed,
      );
      const row = finishRow(g, pieces, p.stop);
      if (p.stream) {
        const rest = streamer.finish(row.text);
        chunk(index, rest, row.finishReason);
      }
      return row;
    }),
  );
  const [done, scored] = await Promise.all([Promise.all(rows), Promise.all(scores)]);
  const promptTokens = prompts.reduce((sum, _t, pi) => sum + (scored[pi]?.tokenStrings.length ?? done[pi * p.n]?.promptTokens ?? 0), 0);
  const completionTokens = done.reduce((s, r) => s + r.completionTokens, 0);
  rec.promptTokens = promptTokens;
  rec.completionTokens = completionTokens;
  const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  if (send) {
    if (p.includeUsage) send({ id, object: 'text_completion', created, model: ctx.modelName, choices: [], usage });
    return endSse(res);
  }
  if (scored.some((s) => !s.exactTop)) headers['x-alignlab-warning'] = [headers['x-alignlab-warning'], 'top_logprobs hold only the chosen token (model has no scorePrompt)'].filter(Boolean).join('; ');
  sendJson(
    res,
    200,
    {
      id,
      object: 'text_completion',
      created,
      model: ctx.modelName,
      choices: done.map((row, index) => {
        const pi = Math.floor(index / p.n);
        const score = scored[pi];
        return {
          index,
          text: p.echo ? prompts[pi] + row.text : row.text,
          logprobs: p.logprobs === null ? null : completionLogprobs(p.echo ? score : undefined, cpLength(prompts[pi]!), row, p.logprobs, greedy),
          finish_reason: row.finishReason,
        };
      }),
      usage,
    },
    headers,
  );
}

async function chat(ctx: Ctx, p: ChatParams, res: ServerResponse, rec: RequestRecord, closed: () => boolean): Promise<void> {
  checkModel(ctx, p.model);
  const prompt = ctx.model.applyChatTemplate(p.messages);
  const n = countTokens(ctx, prompt);
  const fit = fitMaxTokens(ctx, p, n === undefined ? [] : [n], 'messages');
  if (!ctx.queue.hasRoom(p.n)) throw new QueueFullError(`server queue is full (${ctx.queue.depth} waiting)`);
  const group = randomUUID();
  const id = `chatcmpl-${group.replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = fit.warning ? { 'x-alignlab-warning': fit.warning } : {};
  rec.stream = p.stream;
  const send = p.stream ? startSse(res, headers) : undefined;
  const chunk = (index: number, delta: Record<string, string>, finish: string | null) =>
    send?.({ id, object: 'chat.completion.chunk', created, model: ctx.modelName, choices: [{ index, delta, logprobs: null, finish_reason: finish }] });

  const rows = Array.from({ length: p.n }, async (_, index): Promise<Row> => {
    chunk(index, { role: 'assistant', content: '' }, null);
    if (fit.maxTokens === 0) {
      chunk(index, {}, 'length');
      return emptyRow();
    }
    const pieces: string[] = [];
    const streamer = new StopSafeStream(p.stop);
    const g = await ctx.queue.generate(
      prompt,
      genOptions(p, fit.maxTokens, index),
      group,
      (t) => {
        pieces.push(t);
        const out = streamer.push(t);
        if (out) chunk(index, { content: out }, null);
      },
      closed,
    );
    const row = finishRow(g, pieces, p.stop);
    if (p.stream) {
      const rest = streamer.finish(row.text);
      if (rest) chunk(index, { content: rest }, null);
      chunk(index, {}, row.finishReason);
    }
    return row;
  });
  const done = await Promise.all(rows);
  const promptTokens = done[0]?.promptTokens ?? 0;
  const completionTokens = done.reduce((s, r) => s + r.completionTokens, 0);
  rec.promptTokens = promptTokens;
  rec.completionTokens = completionTokens;
  const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  if (send) {
    if (p.includeUsage) send({ id, object: 'chat.completion.chunk', created, model: ctx.modelName, choices: [], usage });
    return endSse(res);
  }
  const greedy = p.temperature === 0;
  sendJson(
    res,
    200,
    {
      id,
      object: 'chat.completion',
      created,
      model: ctx.modelName,
      choices: done.map((row, index) => ({
        index,
        message: { role: 'assistant', content: row.text },
        logprobs: p.logprobs
          ? {
              content: row.tokens.map((t, i) => ({
                token: t,
                logprob: row.logprobs[i] ?? null,
                bytes: [...Buffer.from(t, 'utf8')],
                // Greedy tokens are their own top-1; alternatives of sampled tokens are unknown to this server.
                top_logprobs: p.topLogprobs > 0 && greedy ? [{ token: t, logprob: row.logprobs[i] ?? null, bytes: [...Buffer.from(t, 'utf8')] }] : [],
              })),
            }
          : null,
        finish_reason: row.finishReason,
      })),
      usage,
    },
    headers,
  );
}
