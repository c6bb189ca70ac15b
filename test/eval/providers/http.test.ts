// The HTTP layer against a real misbehaving server on 127.0.0.1: retries, Retry-After, timeouts, dropped
// connections, malformed bodies, the concurrency limit, and the API key staying out of every error and log.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import {
  HttpClient,
  HttpError,
  Semaphore,
  backoffDelay,
  parseRetryAfter,
  readSse,
  redactSecrets,
  resolveApiKey,
  networkErrorCode,
  blockedPortProblem,
  DEFAULT_TIMEOUTS,
  FETCH_BLOCKED_PORTS,
  type RetryEvent,
} from '../../../src/eval/providers/http.js';
import { createOpenAIProvider } from '../../../src/eval/providers/openai.js';
import { startFaultServer, type Fault } from '../../helpers/fault-server.js';

const FAST = { baseDelayMs: 5, maxDelayMs: 20 };
const headers = (h: Record<string, string>) => ({ get: (k: string) => h[k.toLowerCase()] ?? null });

describe('parseRetryAfter', () => {
  test('seconds, fractional seconds, retry-after-ms, HTTP date, garbage', () => {
    assert.equal(parseRetryAfter(headers({ 'retry-after': '2' })), 2000);
    assert.equal(parseRetryAfter(headers({ 'retry-after': '1.5' })), 1500);
    assert.equal(parseRetryAfter(headers({ 'retry-after': '2', 'retry-after-ms': '250' })), 250);
    const now = Date.parse('2026-11-27T10:00:00Z');
    assert.equal(parseRetryAfter(headers({ 'retry-after': 'Fri, 27 Nov 2026 10:00:07 GMT' }), now), 7000);
    assert.equal(parseRetryAfter(headers({ 'retry-after': 'Fri, 27 Nov 2026 09:59:00 GMT' }), now), 0, 'a date in the past means now');
    assert.equal(parseRetryAfter(headers({ 'retry-after': 'soon' })), undefined);
    assert.equal(parseRetryAfter(headers({})), undefined);
  });
});

describe('backoffDelay (full jitter)', () => {
  test('uniform below min(max, base * 2^k)', () => {
    const p = { baseDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(backoffDelay(0, p, () => 0), 0);
    assert.equal(backoffDelay(0, p, () => 0.999), 99);
    assert.equal(backoffDelay(3, p, () => 0.5), 400);
    assert.equal(backoffDelay(10, p, () => 0.999), 999, 'capped at maxDelayMs');
    // With a real RNG: every draw within [0, 800), mean near 400.
    const draws = Array.from({ length: 4000 }, () => backoffDelay(3, p));
    assert.ok(draws.every((d) => d >= 0 && d < 800));
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    assert.ok(Math.abs(mean - 400) < 30, `mean ${mean}`);
  });
});

test('Semaphore holds concurrency at its limit and serves waiters in order', async () => {
  const sem = new Semaphore(3);
  let active = 0;
  let peak = 0;
  const started: number[] = [];
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      sem.run(async () => {
        started.push(i);
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 2 + (i % 3)));
        active--;
      }),
    ),
  );
  assert.equal(peak, 3);
  assert.deepEqual(started, [...Array(20).keys()]);
  assert.equal(sem.active, 0);
  assert.throws(() => new Semaphore(0), /concurrency/);
});

test('redactSecrets and resolveApiKey', () => {
  const key = 'sk-proj-abcdefghijklmnop';
  assert.equal(redactSecrets(`got Bearer ${key} and ${key}`, [key]), 'got Bearer [REDACTED] and [REDACTED]');
  assert.equal(redactSecrets('Authorization: Bearer xyz123'), 'Authorization: Bearer [REDACTED]');
  assert.equal(redactSecrets('key sk-abcdefghijkl leaked'), 'key [REDACTED] leaked');
  assert.equal(resolveApiKey('K', { K: '  v  ' }), 'v');
  assert.equal(resolveApiKey('K', { K: '' }), undefined);
  assert.equal(resolveApiKey('K', {}), undefined);
});

test('readSse parses the same events however the bytes are split', async () => {
  const text = ': comment\r\ndata: {"a":1}\r\n\r\nevent: x\ndata: line1\ndata: line2\n\ndata:no-space\r\rdata: é ü\n\ndata: [DONE]\n\n';
  const bytes = new TextEncoder().encode(text);
  async function* chunks(sizes: () => number) {
    for (let i = 0; i < bytes.length; ) {
      const n = Math.max(1, sizes());
      yield bytes.slice(i, i + n);
      i += n;
    }
  }
  const collect = async (it: AsyncIterable<Uint8Array>) => {
    const out = [];
    for await (const e of readSse(it)) out.push(e);
    return out;
  };
  const whole = await collect(chunks(() => bytes.length));
  assert.deepEqual(
    whole.map((e) => [e.event, e.data]),
    [
      [undefined, '{"a":1}'],
      ['x', 'line1\nline2'],
      [undefined, 'no-space'],
      [undefined, 'é ü'],
      [undefined, '[DONE]'],
    ],
  );
  assert.deepEqual(await collect(chunks(() => 1)), whole, 'one byte at a time (splits CRLF and UTF-8)');
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), 1 + (seed % 9));
  for (let k = 0; k < 20; k++) assert.deepEqual(await collect(chunks(rnd)), whole);
});

describe('HttpClient against a fault-injecting server', async () => {
  const srv = await startFaultServer();
  after(() => srv.close());
  const url = `${srv.baseUrl}/completions`;
  const reset = (schedule: Fault[]) => {
    srv.arrivals.length = 0;
    srv.answered.length = 0;
    srv.setSchedule(schedule);
  };

  test('retries 500 and 503, then succeeds; reports each retry', async () => {
    reset([{ kind: 'status', status: 500 }, { kind: 'status', status: 503 }]);
    const events: RetryEvent[] = [];
    const c = new HttpClient({ retry: FAST, onRetry: (e) => events.push(e) });
    const r = await c.requestJson<{ choices: { text: string }[] }>('POST', url, { prompt: 'p1' });
    assert.equal(r.data.choices[0]!.text, 'answer to p1');
    assert.equal(r.attempts, 3);
    assert.equal(srv.arrivals.length, 3);
    assert.deepEqual(
      events.map((e) => e.reason),
      ['HTTP 500 Internal Server Error', 'HTTP 503 Service Unavailable'],
    );
    assert.equal(srv.answered.length, 1);
  });

  test('honours Retry-After on 429 (seconds), measured between arrivals', async () => {
    reset([{ kind: 'status', status: 429, retryAfter: '1' }]);
    const c = new HttpClient({ retry: FAST });
    await c.requestJson('POST', url, { prompt: 'ra' });
    const gap = srv.arrivals[1]!.at - srv.arrivals[0]!.at;
    assert.ok(gap >= 950 && gap < 3000, `gap ${gap.toFixed(0)} ms should be about the 1000 ms asked for, not the ~5 ms backoff`);
  });

  test('honours Retry-After as an HTTP date, and caps absurd waits', async () => {
    const when = new Date(Date.now() + 2000).toUTCString(); // second resolution: 1-2 s from now
    reset([{ kind: 'status', status: 503, retryAfter: when }, { kind: 'status', status: 429, retryAfter: '3600' }]);
    const c = new HttpClient({ retry: { ...FAST, maxRetryAfterMs: 300 } });
    await c.requestJson('POST', url, { prompt: 'date' });
    const [a, b, d] = srv.arrivals;
    const gap1 = b!.at - a!.at;
    const gap2 = d!.at - b!.at;
    assert.ok(gap1 >= 250 && gap1 < 900, `date gap ${gap1.toFixed(0)} (capped at 300; uncapped would be >= 1000)`);
    assert.ok(gap2 >= 250 && gap2 < 1500, `3600 s capped to 300 ms, got ${gap2.toFixed(0)}`);
  });

  test('a 429 with Retry-After holds back other requests of the same client', async () => {
    reset([{ kind: 'status', status: 429, retryAfter: '1' }]);
    let first429At = 0;
    const c = new HttpClient({ retry: FAST, concurrency: 4, onRetry: () => (first429At ||= performance.now()) });
    const a = c.requestJson('POST', url, { prompt: 'A' });
    while (!first429At) await new Promise((r) => setTimeout(r, 5));
    await c.requestJson('POST', url, { prompt: 'B' });
    await a;
    const bArrival = srv.arrivals.find((x) => x.prompt === 'B')!;
    assert.ok(bArrival.at - first429At >= 900, `B waited ${(bArrival.at - first429At).toFixed(0)} ms for the shared Retry-After`);
  });

  test('timeouts fire on a hanging server; the error names URL, kind and attempts', async () => {
    reset([{ kind: 'hang' }, { kind: 'hang' }]);
    const c = new HttpClient({ retry: { ...FAST, maxRetries: 1 }, timeoutMs: 150 });
    const t0 = performance.now();
    const err = await c.requestJson('POST', url, { prompt: 'h' }).then(
      () => assert.fail('should time out'),
      (e: unknown) => e,
    );
    const took = performance.now() - t0;
    assert.ok(err instanceof HttpError);
    assert.equal(err.kind, 'timeout');
    assert.equal(err.attempts, 2);
    assert.match(err.message, new RegExp(`POST ${url.replace(/[.?]/g, '\\$&')} failed after 2 attempts: timeout after 150 ms`));
    assert.ok(took >= 290 && took < 2000, `two 150 ms timeouts took ${took.toFixed(0)} ms`);
    assert.equal(srv.answered.length, 0);
  });

  test('a hung request is retried after the first-byte timeout, not the whole-answer limit, and answered once', async () => {
    assert.ok(DEFAULT_TIMEOUTS.firstByteTimeoutMs < DEFAULT_TIMEOUTS.timeoutMs && new HttpClient().firstByteTimeoutMs === DEFAULT_TIMEOUTS.firstByteTimeoutMs);
    reset([{ kind: 'hang' }]);
    const events: RetryEvent[] = [];
    // The whole-answer limit is a minute: only the first-byte timer can end the hung attempt within the test.
    const c = new HttpClient({ retry: FAST, timeoutMs: 60_000, firstByteTimeoutMs: 200, onRetry: (e) => events.push(e) });
    const r = await c.requestJson<{ choices: { text: string }[] }>('POST', url, { prompt: 'hung once' });
    assert.equal(r.data.choices[0]!.text, 'answer to hung once');
    assert.equal(r.attempts, 2);
    assert.deepEqual(events.map((e) => e.reason), ['no response within 200 ms (first-byte timeout)']);
    assert.equal(srv.arrivals.length, 2);
    assert.equal(srv.answered.filter((a) => a.prompt === 'hung once').length, 1, 'answered exactly once');
  });

  test('a stream that never sends its first event is retried after the first-byte timeout', async () => {
    reset([{ kind: 'hang' }]);
    const events: RetryEvent[] = [];
    const c = new HttpClient({ retry: FAST, timeoutMs: 60_000, firstByteTimeoutMs: 200, onRetry: (e) => events.push(e) });
    const got: unknown[] = [];
    for await (const ev of c.streamJson(url, { prompt: 'hung stream', stream: true })) got.push(ev);
    assert.ok(got.length > 0);
    assert.deepEqual(events.map((e) => e.reason), ['no response within 200 ms (first-byte timeout)']);
    assert.equal(srv.arrivals.length, 2);
  });

  test('recovers from a hang, a dropped connection, a reset and malformed JSON', async () => {
    reset([{ kind: 'hang' }, { kind: 'drop' }, { kind: 'reset' }, { kind: 'malformed' }]);
    const events: RetryEvent[] = [];
    const c = new HttpClient({ retry: { ...FAST, maxMalformedRetries: 1 }, timeoutMs: 1000, onRetry: (e) => events.push(e) });
    const r = await c.requestJson<{ choices: { text: string }[] }>('POST', url, { prompt: 'x' });
    assert.equal(r.data.choices[0]!.text, 'answer to x');
    assert.equal(r.attempts, 5);
    assert.match(events[0]!.reason, /timeout/);
    assert.match(events[1]!.reason, /network error/);
    assert.match(events[2]!.reason, /network error/);
    assert.match(events[3]!.reason, /malformed JSON/);
    assert.equal(srv.answered.length, 1, 'only the good attempt counts as answered');
  });

  test('malformed bodies are retried a bounded number of times', async () => {
    reset(Array(10).fill({ kind: 'malformed' }));
    const c = new HttpClient({ retry: { ...FAST, maxMalformedRetries: 2 } });
    const err = (await c.requestJson('POST', url, { prompt: 'm' }).catch((e) => e)) as HttpError;
    assert.equal(err.kind, 'malformed');
    assert.equal(err.attempts, 3);
    assert.equal(srv.arrivals.length, 3);
    assert.match(err.message, /malformed JSON/);
    assert.match(err.bodyExcerpt!, /cmpl-broken/);
  });

  test('a validator turns a 200 without choices into a (retried) malformed answer', async () => {
    reset([{ kind: 'no-choices' }]);
    const c = new HttpClient({ retry: FAST });
    const validate = (d: unknown) => (Array.isArray((d as { choices?: unknown }).choices) ? undefined : 'no choices');
    const r = await c.requestJson('POST', url, { prompt: 'v' }, { validate });
    assert.equal(r.attempts, 2);
  });

  test('4xx is not retried; the error carries status and a body excerpt', async () => {
    reset([{ kind: 'status', status: 400, body: JSON.stringify({ error: { message: "'temperature' must be <= 2" } }) }]);
    const c = new HttpClient({ retry: FAST });
    const err = (await c.requestJson('POST', url, { prompt: 'b' }).catch((e) => e)) as HttpError;
    assert.equal(err.status, 400);
    assert.equal(err.attempts, 1);
    assert.equal(srv.arrivals.length, 1);
    assert.match(err.message, /HTTP 400 Bad Request — body: .*temperature' must be <= 2/);
    assert.ok(err.message.includes(url));
  });

  test('connection refused is retried, then reported with the URL', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise((r) => dead.close(r));
    const events: RetryEvent[] = [];
    const c = new HttpClient({ retry: { ...FAST, maxRetries: 2 }, onRetry: (e) => events.push(e) });
    const deadUrl = `http://127.0.0.1:${port}/v1/completions`;
    const err = (await c.requestJson('POST', deadUrl, {}).catch((e) => e)) as HttpError;
    assert.equal(err.kind, 'network');
    assert.equal(err.attempts, 3);
    assert.equal(events.length, 2);
    assert.ok(err.message.includes(deadUrl));
    assert.match(err.message, /ECONNREFUSED/);
    // The real undici error behind it is recognised as a network failure.
    const raw = await fetch(deadUrl).catch((e) => e);
    assert.equal(networkErrorCode(raw), 'ECONNREFUSED');
    assert.equal(networkErrorCode(new TypeError('Failed to parse URL')), undefined);
  });

  test('the concurrency limit holds against a slow server', async () => {
    reset([]);
    srv.setSchedule(() => ({ kind: 'delay', ms: 40 }));
    const c = new HttpClient({ concurrency: 3 });
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, c.limiter.active)), 2);
    await Promise.all(Array.from({ length: 12 }, (_, i) => c.requestJson('POST', url, { prompt: `c${i}` })));
    clearInterval(timer);
    assert.equal(peak, 3);
    // Server side: never more than 3 requests overlapping in time.
    const spans = srv.answered.map((a) => ({ end: a.at, start: srv.arrivals[a.n]!.at }));
    const maxOverlap = Math.max(...spans.map((s) => spans.filter((o) => o.start <= s.start && o.end > s.start).length));
    assert.ok(maxOverlap <= 3, `overlap ${maxOverlap}`);
  });

  test('the API key never appears in errors, retry events, logs or inspection', async () => {
    const key = 'sk-test-DoNotLeak-1234567890abcdef';
    const keyed = await startFaultServer({ apiKey: 'the-right-key', echoAuthInErrors: true });
    const seen: string[] = [];
    const orig = { log: console.log, error: console.error, warn: console.warn, info: console.info };
    for (const k of Object.keys(orig) as (keyof typeof orig)[]) console[k] = (...a: unknown[]) => void seen.push(a.map(String).join(' '));
    try {
      const events: RetryEvent[] = [];
      const c = new HttpClient({ apiKey: key, retry: FAST, onRetry: (e) => events.push(e) });
      // 401: the server echoes "Incorrect API key provided: Bearer <key>" in its body.
      const e1 = (await c.requestJson('POST', `${keyed.baseUrl}/completions`, { prompt: 'k' }).catch((e) => e)) as HttpError;
      assert.equal(e1.status, 401);
      assert.match(e1.message, /Incorrect API key provided: Bearer \[REDACTED\]/);
      // Retried 500s whose bodies echo the header, ending in failure.
      keyed.setSchedule(() => ({ kind: 'status', status: 500 }));
      const good = new HttpClient({ apiKey: 'the-right-key', retry: { ...FAST, maxRetries: 2 }, onRetry: (e) => events.push(e) });
      const e2 = (await good.requestJson('POST', `${keyed.baseUrl}/completions`, { prompt: 'k' }).catch((e) => e)) as HttpError;
      assert.equal(e2.attempts, 3);
      for (const [secret, e] of [
        [key, e1],
        ['the-right-key', e2],
      ] as const) {
        for (const text of [e.message, e.stack ?? '', String(e.bodyExcerpt), inspect(e, { depth: 10 }), JSON.stringify(e)])
          assert.ok(!text.includes(secret), `key leaked in: ${text.slice(0, 200)}`);
      }
      for (const text of [...events.map((e) => JSON.stringify(e)), inspect(c, { depth: 10, showHidden: true }), JSON.stringify(c), ...seen])
        assert.ok(!text.includes(key) && !text.includes('the-right-key'), `key leaked in: ${text.slice(0, 200)}`);
      assert.ok(keyed.arrivals.some((a) => a.authorized), 'the right key was sent to the server');
    } finally {
      Object.assign(console, orig);
      await keyed.close();
    }
  });
});

test("ports on Node's blocked list are named before anything is sent; the list is the one fetch enforces", async () => {
  const refusal = async (port: number) => {
    try {
      await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000) });
      return 'answered';
    } catch (e) {
      return String((e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message);
    }
  };
  for (const p of FETCH_BLOCKED_PORTS) assert.equal(await refusal(p), 'bad port', `fetch should refuse port ${p}`);
  // Every neighbour of a listed port that is not itself listed is allowed (refused connections, not "bad port").
  const neighbours = [...FETCH_BLOCKED_PORTS].flatMap((p) => [p - 1, p + 1]).filter((p) => p > 0 && !FETCH_BLOCKED_PORTS.has(p));
  for (const p of new Set(neighbours)) assert.notEqual(await refusal(p), 'bad port', `port ${p} is not blocked by fetch`);

  assert.match(blockedPortProblem('http://127.0.0.1:6000/v1')!, /port 6000 is on Node's list of blocked ports/);
  assert.equal(blockedPortProblem('http://127.0.0.1:8000/v1'), undefined);
  assert.equal(blockedPortProblem('http://example.com/v1'), undefined, 'the default port 80 is allowed');
  const err = (await new HttpClient().requestJson('POST', 'http://127.0.0.1:6000/v1/completions', {}).catch((e) => e)) as HttpError;
  assert.ok(err instanceof HttpError);
  assert.equal(err.attempts, 0, 'nothing was sent');
  assert.match(err.message, /^POST http:\/\/127\.0\.0\.1:6000\/v1\/completions: port 6000 is on Node's list of blocked ports/);
  assert.throws(() => createOpenAIProvider('openai-compat:http://127.0.0.1:6000/v1#m'), /provider id "openai-compat:http:\/\/127\.0\.0\.1:6000\/v1#m": port 6000 is on Node's list of blocked ports/);
});
