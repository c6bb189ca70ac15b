// The HTTP layer under every network provider: one fetch per attempt with its own timeout, retries with
// exponential backoff and full jitter, Retry-After honoured (and shared, so one 429 slows the whole
// provider instead of each request discovering it alone), a concurrency limit, and errors that say which
// URL failed, how, and what the server said, without ever carrying the API key.

/** When to retry and how long to wait. Defaults follow the OpenAI SDKs' behaviour, with more patience. */
export interface RetryPolicy {
  /** Retries after the first attempt: at most maxRetries + 1 attempts per request. */
  maxRetries: number;
  /** Backoff before retry k (0-based) is uniform in [0, min(maxDelayMs, baseDelayMs * 2^k)] ("full jitter"). */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest Retry-After we obey; a server asking for longer gets this (an hour-long wait is a misconfigured proxy). */
  maxRetryAfterMs: number;
  /** Malformed bodies (bad JSON, missing fields) are retried at most this often, so a server that always
   * answers garbage fails fast instead of using the whole retry budget. */
  maxMalformedRetries: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxRetries: 6,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 60_000,
  maxMalformedRetries: 2,
};

/** Statuses worth retrying: timeout, conflict, rate limit, and any server error (what the OpenAI SDKs retry). */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/** Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff And Jitter"):
 * spreads retries of many clients that failed together, instead of having them return in lockstep. */
export function backoffDelay(retry: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  return Math.floor(random() * ceiling);
}

/** Milliseconds a server asks us to wait: `retry-after-ms` (OpenAI), else `Retry-After` as seconds or an
 * HTTP date. Undefined when absent or unreadable (then the caller falls back to backoff). */
export function parseRetryAfter(headers: { get(name: string): string | null }, now: number = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Number(ms);
  const v = headers.get('retry-after');
  if (v === null) return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** A counting semaphore: at most `limit` holders at once, FIFO for the rest. */
export class Semaphore {
  #active = 0;
  readonly #waiters: (() => void)[] = [];
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency must be an integer >= 1, got ${limit}`);
  }
  get active(): number {
    return this.#active;
  }
  get waiting(): number {
    return this.#waiters.length;
  }
  async acquire(): Promise<() => void> {
    if (this.#active < this.limit) this.#active++;
    else await new Promise<void>((resolve) => this.#waiters.push(resolve)); // the releaser hands its slot over
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) next();
      else this.#active--;
    };
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/** An API key read from the environment. Undefined when the variable is unset or empty. */
export function resolveApiKey(envVar: string, env: Record<string, string | undefined> = process.env): string | undefined {
  const v = env[envVar];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

const REDACTED = '[REDACTED]';

/** Remove secrets from text that may reach a log or an error: the given keys verbatim, anything after
 * "Bearer ", and OpenAI-style `sk-...` keys (a proxy may echo a header we never meant to show). */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join(REDACTED);
  return out.replace(/(Bearer\s+)[^\s"',;]+/gi, `$1${REDACTED}`).replace(/\bsk-[A-Za-z0-9_-]{8,}/g, REDACTED);
}

function excerpt(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max)}… (${flat.length} chars)`;
}

export type FailureKind = 'status' | 'timeout' | 'network' | 'malformed' | 'aborted';

/** A request that failed for good. The message names method, URL, attempts, status and a body excerpt. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    message: string,
    readonly url: string,
    readonly kind: FailureKind,
    readonly attempts: number,
    readonly status?: number,
    readonly bodyExcerpt?: string,
  ) {
    super(message);
  }
}

export interface RetryEvent {
  url: string;
  /** The attempt that failed (1-based). */
  attempt: number;
  /** What went wrong, e.g. "HTTP 429", "timeout after 200 ms", "ECONNRESET", "malformed JSON". */
  reason: string;
  /** How long we wait before the next attempt. */
  delayMs: number;
  /** The server's Retry-After, when it sent one (before capping). */
  retryAfterMs?: number;
}

/** Default per-attempt limits. A hung request costs `firstByteTimeoutMs`, not the whole-answer limit: most
 * servers send headers only when a non-streamed answer is complete, so this is also the slowest healthy answer
 * we wait for before retrying. */
export const DEFAULT_TIMEOUTS = { timeoutMs: 120_000, firstByteTimeoutMs: 30_000 };

/** Ports Node's fetch (undici) refuses to connect to: the Fetch standard's "bad port" list
 * (https://fetch.spec.whatwg.org/#port-blocking), as in Node 20's undici. A request to one fails with a bare
 * "fetch failed", so we say why before sending anything. test/eval/providers/http.test.ts checks each against fetch. */
export const FETCH_BLOCKED_PORTS: ReadonlySet<number> = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117,
  119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636,
  989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** Why fetch will refuse this http(s) URL's port, or undefined when it will not. */
export function blockedPortProblem(url: string | URL): string | undefined {
  const u = typeof url === 'string' ? new URL(url) : url;
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  if (!FETCH_BLOCKED_PORTS.has(port)) return undefined;
  return `port ${port} is on Node's list of blocked ports (the Fetch standard's "bad ports"), so fetch refuses to connect to it; serve on another port (e.g. 8000)`;
}

export interface HttpClientOptions {
  /** Per-attempt limit covering connect, headers and the whole body (default 120 s; for streams, the idle gap between chunks). */
  timeoutMs?: number;
  /** Per-attempt limit until the response headers arrive (for streams: the first event); default 30 s. A server
   * that accepted the request but never answers is retried after this long instead of `timeoutMs`. */
  firstByteTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Requests in flight at once, shared by everything that uses this client (default 4). */
  concurrency?: number;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** Sent as `Authorization: Bearer <key>`; kept in a private field and scrubbed from every error. */
  apiKey?: string;
  /** Jitter source, injectable for tests. */
  random?: () => number;
  onRetry?: (e: RetryEvent) => void;
}

export interface RequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  firstByteTimeoutMs?: number;
  /** Checks a parsed body; a returned string marks it malformed (retried like bad JSON). */
  validate?: (data: unknown) => string | undefined;
  /** Called when an attempt gets its concurrency slot (latency clocks start here, not in the client's queue). */
  onStart?: () => void;
}

export interface HttpResult<T> {
  data: T;
  status: number;
  headers: Headers;
  attempts: number;
  /** From the first attempt's start (a concurrency slot granted) to the end: retries and backoff included,
   * waiting for a free slot before the first attempt not (that is the caller's queue, not the server). */
  latencyMs: number;
  /** Time spent waiting for a concurrency slot before the first attempt. */
  queueMs: number;
}

interface Failure {
  kind: FailureKind;
  retryable: boolean;
  reason: string;
  status?: number;
  body?: string;
  retryAfterMs?: number;
}

type Attempt<T> = { ok: true; value: T } | { ok: false; failure: Failure };

/** Error codes (undici's and the OS's) that mean the connection broke, so another attempt may work. */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** The message of the cause of a fetch failure that no retry can fix (a blocked port, a bad URL). */
function fatalFetchCause(err: unknown): string | undefined {
  const cause = (err as { cause?: { message?: unknown } }).cause;
  return typeof cause?.message === 'string' && /bad port|invalid url|not supported|unknown scheme/i.test(cause.message) ? cause.message : undefined;
}

/** The network error code behind a fetch failure, or undefined when the error is not a network failure. */
export function networkErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    const msg = (e as { message?: unknown }).message;
    if (typeof msg === 'string' && /socket hang up|other side closed|^terminated$/i.test(msg)) return 'ECONNRESET';
  }
  // undici wraps connection failures as TypeError('fetch failed'); requests that can never work (a port
  // fetch refuses, a bad scheme) are wrapped the same way, so those are told apart by their cause.
  const fatal = fatalFetchCause(err) !== undefined;
  if (err instanceof TypeError && err.message === 'fetch failed' && !fatal) return 'FETCH_FAILED';
  return undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(t);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * One attempt's abort wiring: the caller's signal plus two timers. The first-byte timer runs until
 * `firstByte()` (response headers; for streams, the first event); the other covers the whole attempt and
 * `arm()` restarts it (streams: the idle gap between events). `timedOut()` says which fired, as a reason.
 */
function attemptSignal(t: { timeoutMs: number; firstByteTimeoutMs: number }, outer?: AbortSignal) {
  const ctrl = new AbortController();
  let timedOut: string | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const fire = (reason: string) => {
    timedOut ??= reason;
    ctrl.abort(new Error(reason));
  };
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => fire(`timeout after ${t.timeoutMs} ms`), t.timeoutMs);
  };
  // Only useful when shorter than the whole-attempt limit.
  let firstTimer: ReturnType<typeof setTimeout> | undefined =
    t.firstByteTimeoutMs < t.timeoutMs ? setTimeout(() => fire(`no response within ${t.firstByteTimeoutMs} ms (first-byte timeout)`), t.firstByteTimeoutMs) : undefined;
  const onOuter = () => ctrl.abort(outer!.reason);
  outer?.addEventListener('abort', onOuter, { once: true });
  arm();
  return {
    signal: ctrl.signal,
    arm,
    firstByte: () => {
      clearTimeout(firstTimer);
      firstTimer = undefined;
    },
    timedOut: () => timedOut,
    dispose: () => {
      clearTimeout(timer);
      clearTimeout(firstTimer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

export class HttpClient {
  readonly policy: RetryPolicy;
  readonly timeoutMs: number;
  readonly firstByteTimeoutMs: number;
  readonly limiter: Semaphore;
  // Private fields are invisible to util.inspect, JSON.stringify and console.log: the key cannot leak that way.
  readonly #apiKey: string | undefined;
  readonly #headers: Record<string, string>;
  readonly #random: () => number;
  readonly #onRetry?: (e: RetryEvent) => void;
  #pausedUntil = 0;

  constructor(opts: HttpClientOptions = {}) {
    this.policy = { ...DEFAULT_RETRY, ...opts.retry };
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUTS.timeoutMs;
    this.firstByteTimeoutMs = opts.firstByteTimeoutMs ?? DEFAULT_TIMEOUTS.firstByteTimeoutMs;
    this.limiter = new Semaphore(opts.concurrency ?? 4);
    this.#apiKey = opts.apiKey;
    this.#headers = { ...opts.headers };
    this.#random = opts.random ?? Math.random;
    this.#onRetry = opts.onRetry;
  }

  #requestHeaders(json: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json', ...this.#headers };
    if (json) h['content-type'] = 'application/json';
    if (this.#apiKey) h.authorization = `Bearer ${this.#apiKey}`;
    return h;
  }

  #redact(text: string): string {
    return redactSecrets(text, [this.#apiKey, ...Object.values(this.#headers)]);
  }

  #timeouts(opts: RequestOptions) {
    return { timeoutMs: opts.timeoutMs ?? this.timeoutMs, firstByteTimeoutMs: opts.firstByteTimeoutMs ?? this.firstByteTimeoutMs };
  }

  /** GET or POST a JSON API, retrying per the policy. Resolves with the parsed body of a 2xx answer. */
  async requestJson<T = unknown>(method: 'GET' | 'POST', url: string, body?: unknown, opts: RequestOptions = {}): Promise<HttpResult<T>> {
    const t0 = performance.now();
    let started: number | undefined;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return this.#withRetries(method, url, opts.signal, async (attempt) => {
      const r = await this.#attempt(method, url, payload, opts, () => {
        if (started !== undefined) return;
        started = performance.now();
        opts.onStart?.();
      });
      if (!r.ok) return r;
      const end = performance.now();
      return { ok: true, value: { ...r.value, attempts: attempt, latencyMs: end - started!, queueMs: started! - t0 } as HttpResult<T> };
    });
  }

  /** POST a streaming request and yield each server-sent event's parsed JSON `data` until `[DONE]`.
   * Retries only until the first event is yielded: after that a retry would repeat text the caller already has. */
  async *streamJson(url: string, body: unknown, opts: RequestOptions = {}): AsyncGenerator<unknown> {
    const payload = JSON.stringify(body);
    const timeouts = this.#timeouts(opts);
    let yielded = 0;
    let attempts = 0;
    // Open the stream (with retries) up to and including its first event.
    const opened = await this.#withRetries('POST', url, opts.signal, async (attempt) => {
      attempts = attempt;
      const release = await this.limiter.acquire();
      opts.onStart?.();
      const sig = attemptSignal(timeouts, opts.signal);
      let keep = false;
      try {
        const res = await fetch(url, { method: 'POST', headers: this.#requestHeaders(true), body: payload, signal: sig.signal });
        if (!res.ok || !res.body) {
          const text = await res.text();
          return { ok: false, failure: this.#statusFailure(res, text) };
        }
        const events = readSse(res.body)[Symbol.asyncIterator]();
        sig.arm();
        const first = await events.next();
        sig.firstByte();
        if (first.done) return { ok: false, failure: { kind: 'malformed', retryable: true, reason: 'stream ended before any event' } };
        const parsed = parseEventData(first.value.data, opts.validate);
        if ('error' in parsed) return { ok: false, failure: { kind: 'malformed', retryable: true, reason: parsed.error, body: first.value.data } };
        keep = true;
        return { ok: true, value: { events, first: parsed, sig, release } };
      } catch (err) {
        return { ok: false, failure: this.#thrownFailure(err, sig.timedOut(), opts.signal) };
      } finally {
        if (!keep) {
          sig.dispose();
          release();
        }
      }
    });
    const { events, sig, release } = opened;
    try {
      let item: { done?: boolean; value: unknown } = { value: opened.first.value };
      while (!(item.value === DONE)) {
        yielded++;
        yield item.value;
        sig.arm();
        const next = await events.next();
        if (next.done) throw new HttpError(this.#redact(`POST ${url}: stream ended without [DONE] after ${yielded} events`), url, 'network', attempts);
        const parsed = parseEventData(next.value.data, opts.validate);
        if ('error' in parsed)
          throw new HttpError(this.#redact(`POST ${url}: malformed stream event after ${yielded} events: ${parsed.error}: ${excerpt(next.value.data)}`), url, 'malformed', attempts, 200, excerpt(next.value.data));
        item = { value: parsed.value };
      }
    } catch (err) {
      if (err instanceof HttpError) throw err;
      const f = this.#thrownFailure(err, sig.timedOut(), opts.signal);
      throw new HttpError(this.#redact(`POST ${url}: stream interrupted after ${yielded} events: ${f.reason}`), url, f.kind, attempts);
    } finally {
      sig.dispose();
      release();
      await events.return?.(undefined);
    }
  }

  async #withRetries<T>(method: string, url: string, signal: AbortSignal | undefined, attemptFn: (attempt: number) => Promise<Attempt<T>>): Promise<T> {
    const p = this.policy;
    const blocked = blockedPortProblem(url);
    if (blocked) throw new HttpError(this.#redact(`${method} ${url}: ${blocked}`), url, 'network', 0);
    let malformed = 0;
    for (let attempt = 1; ; attempt++) {
      const wait = this.#pausedUntil - Date.now();
      if (wait > 0) await sleep(wait, signal).catch(() => undefined);
      if (signal?.aborted) throw new HttpError(this.#redact(`${method} ${url} aborted`), url, 'aborted', attempt - 1);
      const r = await attemptFn(attempt);
      if (r.ok) return r.value;
      const f = r.failure;
      if (f.kind === 'malformed') malformed++;
      const again = f.retryable && attempt <= p.maxRetries && !(f.kind === 'malformed' && malformed > p.maxMalformedRetries);
      if (!again) throw this.#finalError(method, url, f, attempt);
      const delayMs = f.retryAfterMs !== undefined ? Math.min(f.retryAfterMs, p.maxRetryAfterMs) : backoffDelay(attempt - 1, p, this.#random);
      // A Retry-After speaks for the whole server: hold every request of this client, not just this one.
      if (f.retryAfterMs !== undefined) this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + delayMs);
      this.#onRetry?.({ url, attempt, reason: this.#redact(f.reason), delayMs, retryAfterMs: f.retryAfterMs });
      try {
        await sleep(delayMs, signal);
      } catch {
        throw new HttpError(this.#redact(`${method} ${url} aborted while waiting to retry (${f.reason})`), url, 'aborted', attempt);
      }
    }
  }

  async #attempt(method: string, url: string, payload: string | undefined, opts: RequestOptions, onStart: () => void): Promise<Attempt<{ data: never; status: number; headers: Headers }>> {
    const release = await this.limiter.acquire();
    onStart();
    const sig = attemptSignal(this.#timeouts(opts), opts.signal);
    try {
      const res = await fetch(url, { method, headers: this.#requestHeaders(payload !== undefined), body: payload, signal: sig.signal });
      sig.firstByte();
      const text = await res.text(); // inside the timeout: a body that trickles forever is a timeout too
      if (!res.ok) return { ok: false, failure: this.#statusFailure(res, text) };
      let data: unknown;
      try {
        data = JSON.parse(text);
      } catch (e) {
        return { ok: false, failure: { kind: 'malformed', retryable: true, reason: `malformed JSON (${(e as Error).message})`, status: res.status, body: text } };
      }
      const problem = opts.validate?.(data);
      if (problem) return { ok: false, failure: { kind: 'malformed', retryable: true, reason: `unexpected response: ${problem}`, status: res.status, body: text } };
      return { ok: true, value: { data: data as never, status: res.status, headers: res.headers } };
    } catch (err) {
      return { ok: false, failure: this.#thrownFailure(err, sig.timedOut(), opts.signal) };
    } finally {
      sig.dispose();
      release();
    }
  }

  #statusFailure(res: Response, text: string): Failure {
    return {
      kind: 'status',
      retryable: isRetryableStatus(res.status),
      reason: `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`,
      status: res.status,
      body: text,
      retryAfterMs: parseRetryAfter(res.headers),
    };
  }

  #thrownFailure(err: unknown, timedOut: string | undefined, outer?: AbortSignal): Failure {
    if (timedOut) return { kind: 'timeout', retryable: true, reason: timedOut };
    if (outer?.aborted) return { kind: 'aborted', retryable: false, reason: 'aborted by caller' };
    const code = networkErrorCode(err);
    const fatal = fatalFetchCause(err);
    const msg = err instanceof Error ? `${err.message}${fatal ? ` (${fatal})` : ''}` : String(err);
    if (code) return { kind: 'network', retryable: true, reason: code === 'FETCH_FAILED' ? `network error (${msg})` : `network error ${code}` };
    return { kind: 'network', retryable: false, reason: `request failed: ${msg}` };
  }

  #finalError(method: string, url: string, f: Failure, attempts: number): HttpError {
    const body = f.body === undefined ? undefined : this.#redact(excerpt(f.body));
    const tries = attempts === 1 ? '1 attempt' : `${attempts} attempts`;
    const msg = `${method} ${url} failed after ${tries}: ${f.reason}${body !== undefined ? ` — body: ${body || '(empty)'}` : ''}`;
    return new HttpError(this.#redact(msg), url, f.kind, attempts, f.status, body);
  }
}

const DONE = Symbol('done');

function parseEventData(data: string, validate?: (d: unknown) => string | undefined): { value: unknown } | { error: string } {
  if (data.trim() === '[DONE]') return { value: DONE };
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch (e) {
    return { error: `malformed JSON in event (${(e as Error).message})` };
  }
  const problem = validate?.(v);
  return problem ? { error: `unexpected event: ${problem}` } : { value: v };
}

export interface SseEvent {
  event?: string;
  data: string;
  id?: string;
}

/** A server-sent-events reader per the WHATWG spec: lines end in CRLF, LF or CR; `data:` lines of one
 * event are joined by "\n"; a blank line dispatches; lines starting with ":" are comments. */
export async function* readSse(body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buf = '';
  let data: string[] = [];
  let event: string | undefined;
  let id: string | undefined;
  function* lines(final: boolean): Generator<string> {
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buf);
      if (!m) break;
      // A CR at the very end may be the first half of a CRLF split across chunks: wait for more.
      if (m[0] === '\r' && m.index === buf.length - 1 && !final) break;
      yield buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
    }
    if (final && buf !== '') {
      yield buf;
      buf = '';
    }
  }
  function* take(line: string): Generator<SseEvent> {
    if (line === '') {
      if (data.length > 0) yield { event, data: data.join('\n'), id };
      data = [];
      event = undefined;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id') id = value;
  }
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    for (const line of lines(false)) yield* take(line);
  }
  buf += decoder.decode();
  for (const line of lines(true)) yield* take(line);
  // The spec drops an event not followed by a blank line; we do the same.
}
