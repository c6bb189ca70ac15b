// The OpenAI-compatible server on 127.0.0.1, serving the deterministic model (test/server/deterministic-model.ts),
// driven by our openai-compat provider, by raw fetch + the SSE reader, and by lm-evaluation-harness-style payloads.
// Expected texts come from the model's written rules (greedy next token = last word reversed), by hand.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOpenAIServer, type RequestRecord } from '../../src/server/openai-server.js';
import { createOpenAIProvider } from '../../src/eval/providers/openai.js';
import { HttpError, readSse } from '../../src/eval/providers/http.js';
import { StopSafeStream, truncateAtStop } from '../../src/server/stop-text.js';
import { DeterministicModel, LOG_HALF, tokenize } from './deterministic-model.js';
import { main as serveMain } from '../../src/cli/serve.js';
import { UsageError } from '../../src/cli/args.js';

const MODEL = 'deterministic-reverse';
const rev = (w: string) => [...w].reverse().join('');

async function post(base: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- test reads arbitrary response shapes
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

/** What lm-evaluation-harness's local-completions does with an echo response (parse_logprobs). */
function lmEvalParse(choice: { logprobs: { token_logprobs: (number | null)[]; top_logprobs: Record<string, number>[] } }, ctxlen: number) {
  const lps = choice.logprobs.token_logprobs.slice(ctxlen, -1) as number[];
  const tops = choice.logprobs.top_logprobs.slice(ctxlen, -1);
  return { logprob: lps.reduce((a, b) => a + b, 0), isGreedy: lps.every((lp, i) => lp === Math.max(...Object.values(tops[i]!))) };
}

describe('StopSafeStream', () => {
  test('never sends text past a stop string split across pieces, and matches the final text', () => {
    const s = new StopSafeStream(['cb b']);
    assert.equal(s.push(' cb'), ' ', 'holds "cb": it may start "cb b"');
    assert.equal(s.push(' bc'), '', 'stop found: nothing more');
    assert.equal(s.finish(truncateAtStop(' cb bc', ['cb b']).text), '');
    assert.equal(s.sent, ' ');
    const t = new StopSafeStream(['\n\n']);
    const out = ['a', '\n', 'b', '\n', '\n', 'c'].map((p) => t.push(p)).join('');
    assert.equal(out, 'a\nb');
    assert.equal(new StopSafeStream([]).push('abc'), 'abc');
  });
});

describe('alignlab serve (deterministic model)', async () => {
  const model = new DeterministicModel({ stepMs: 2, scorePrompt: true });
  const records: RequestRecord[] = [];
  const logs: string[] = [];
  const srv = await startOpenAIServer(model, { maxBatch: 8, onRequestDone: (r) => records.push(r), log: (l) => logs.push(l) });
  const provider = createOpenAIProvider(`openai-compat:${srv.baseUrl}#${MODEL}`, { concurrency: 8, retry: { maxRetries: 0 } });
  after(() => srv.close());

  test('binds to 127.0.0.1 and lists its model', async () => {
    assert.equal(srv.host, '127.0.0.1');
    assert.match(srv.baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    assert.deepEqual(await provider.listModels(), [MODEL]);
    const one = await fetch(`${srv.baseUrl}/models/${MODEL}`).then((r) => r.json());
    assert.equal(one.id, MODEL);
    const missing = await fetch(`${srv.baseUrl}/models/gpt-4`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, 'model_not_found');
    assert.deepEqual(await fetch(`${srv.url}/health`).then((r) => r.json()), { status: 'ok', model: MODEL });
  });

  test('completions: greedy text, length and end-of-sequence', async () => {
    const r = await provider.complete({ prompt: 'the cat sat', maxTokens: 3, temperature: 0 });
    assert.equal(r.text, ' tas sat tas');
    assert.equal(r.finishReason, 'length');
    assert.equal(r.promptTokens, 3);
    assert.equal(r.completionTokens, 3);
    const eos = await provider.complete({ prompt: 'hello wow', maxTokens: 5, temperature: 0 });
    assert.equal(eos.text, '');
    assert.equal(eos.finishReason, 'stop', 'end of sequence is reported as OpenAI\'s "stop"');
  });

  test('chat: messages go through the chat template', async () => {
    // Template: "user: hi\nassistant: ok" -> greedy " ko", " ok", ...
    const r = await provider.complete({ messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }], maxTokens: 4, temperature: 0 });
    assert.equal(r.text, ' ko ok ko ok');
    const raw = await post(srv.baseUrl, '/chat/completions', { model: MODEL, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], max_completion_tokens: 2, temperature: 0, logprobs: true, top_logprobs: 1 });
    assert.equal(raw.status, 200);
    assert.equal(raw.json.object, 'chat.completion');
    assert.equal(raw.json.choices[0].message.content, ' ko ok');
    assert.deepEqual(
      raw.json.choices[0].logprobs.content.map((t: { token: string; logprob: number }) => [t.token, t.logprob]),
      [
        [' ko', LOG_HALF],
        [' ok', LOG_HALF],
      ],
    );
    assert.equal(raw.json.usage.completion_tokens, 2);
  });

  test('stop strings end generation, also when split across tokens', async () => {
    const r = await provider.complete({ prompt: 'a bc', maxTokens: 6, temperature: 0, stop: [' bc'] });
    assert.equal(r.text, ' cb');
    assert.equal(r.finishReason, 'stop');
    const split = await provider.complete({ prompt: 'a bc', maxTokens: 6, temperature: 0, stop: ['cb b'] });
    assert.equal(split.text, ' ');
    const deltas: string[] = [];
    const streamed = await provider.stream({ prompt: 'a bc', maxTokens: 6, temperature: 0, stop: ['cb b'] }, (d) => deltas.push(d));
    assert.equal(streamed.text, ' ');
    assert.ok(!deltas.join('').includes('cb'), 'the held-back stop prefix was never sent');
  });

  test('streaming: SSE chunks arrive one token at a time and end with [DONE]', async () => {
    const t0 = performance.now();
    const times: number[] = [];
    const deltas: string[] = [];
    const r = await provider.stream({ prompt: 'one two three', maxTokens: 6, temperature: 0 }, (d) => {
      deltas.push(d);
      times.push(performance.now() - t0);
    });
    assert.equal(r.text, ' eerht three eerht three eerht three');
    assert.deepEqual(deltas, [' eerht', ' three', ' eerht', ' three', ' eerht', ' three']);
    assert.ok(times[5]! - times[0]! >= 8, `tokens spread over time (${times.map((t) => t.toFixed(0)).join(',')} ms)`);
    assert.equal(r.completionTokens, 6, 'usage chunk (stream_options.include_usage) read');
    assert.equal(r.finishReason, 'length');

    // The same through raw fetch and the SSE reader: event shapes, usage chunk, [DONE].
    const res = await fetch(`${srv.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, temperature: 0, stream: true, stream_options: { include_usage: true } }),
    });
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const events: string[] = [];
    for await (const e of readSse(res.body!)) events.push(e.data);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((d) => JSON.parse(d));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    const content = chunks.flatMap((c) => c.choices.map((ch: { delta: { content?: string } }) => ch.delta.content ?? '')).join('');
    assert.equal(content, ' ko ok ko');
    const finish = chunks.flatMap((c) => c.choices.map((ch: { finish_reason: string | null }) => ch.finish_reason)).filter(Boolean);
    assert.deepEqual(finish, ['length']);
    assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 });
  });

  test('concurrent requests are served in batches, with the same answers as one at a time', async () => {
    const prompts = Array.from({ length: 12 }, (_, i) => `word${i} alpha${i}`);
    const alone = [];
    for (const p of prompts.slice(0, 2)) alone.push((await provider.complete({ prompt: p, maxTokens: 4, temperature: 0 })).text);
    const before = model.batchSizes.length;
    const together = await Promise.all(prompts.map((p) => provider.complete({ prompt: p, maxTokens: 4, temperature: 0 })));
    const sizes = model.batchSizes.slice(before);
    assert.deepEqual(
      together.map((r) => r.text),
      prompts.map((_, i) => ` ${rev(`alpha${i}`)} alpha${i} ${rev(`alpha${i}`)} alpha${i}`),
    );
    assert.deepEqual(alone, together.slice(0, 2).map((r) => r.text));
    assert.equal(sizes.reduce((a, b) => a + b, 0), 12, 'every row generated once');
    assert.ok(Math.max(...sizes) >= 2 && sizes.length < 12, `batch sizes ${sizes}`);
    assert.ok(Math.max(...sizes) <= 8, 'maxBatch respected');
  });

  test('n, prompt arrays and token-id prompts', async () => {
    const r = await post(srv.baseUrl, '/completions', { model: MODEL, prompt: ['x yz', 'the cat'], n: 2, max_tokens: 1, temperature: 0 });
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.json.choices.map((c: { index: number; text: string }) => [c.index, c.text]),
      [
        [0, ' zy'],
        [1, ' zy'],
        [2, ' tac'],
        [3, ' tac'],
      ],
    );
    assert.equal(r.json.usage.completion_tokens, 4);
    // Token ids (lm-evaluation-harness sends these by default) decode through the model's decode().
    const ids = model.encode('the cat');
    const t = await post(srv.baseUrl, '/completions', { model: MODEL, prompt: ids, max_tokens: 1, temperature: 0 });
    assert.equal(t.json.choices[0].text, ' tac');
  });

  test('seeded sampling is reproducible whatever else shares the batch', async () => {
    const req = { prompt: 'alpha beta gamma delta', maxTokens: 8, temperature: 1, seed: 11 };
    const a = await provider.complete(req);
    const [b] = await Promise.all([provider.complete(req), provider.complete({ ...req, seed: 12 }), provider.complete({ ...req, prompt: 'other words here' })]);
    assert.equal(a.text, b!.text);
    assert.notEqual(a.text, ' atled delta'.repeat(4), 'sampling departs from greedy');
    assert.equal(a.completionTokens, 8);
  });

  test('echo + logprobs: lm-evaluation-harness loglikelihood and our provider agree with the model', async () => {
    const cases = [
      { context: 'the cat sat', continuation: ' tas sat', logprob: 2 * LOG_HALF, isGreedy: true }, // both greedy by the rule
      { context: 'the cat sat', continuation: ' dog', logprob: NaN, isGreedy: false },
    ];
    for (const c of cases) {
      const want = await model.scoreContinuation(c.context, c.continuation);
      if (!Number.isNaN(c.logprob)) assert.ok(Math.abs(want.logprob - c.logprob) < 1e-12);
      assert.equal(want.isGreedy, c.isGreedy);
      // lm-evaluation-harness local-completions payload, verbatim.
      const r = await post(srv.baseUrl, '/completions', { model: MODEL, prompt: c.context + c.continuation, temperature: 0, max_tokens: 1, logprobs: 1, seed: 1234, echo: true });
      assert.equal(r.status, 200);
      const choice = r.json.choices[0];
      assert.ok(choice.text.startsWith(c.context + c.continuation));
      assert.equal(choice.logprobs.tokens.length, tokenize(c.context + c.continuation).length + 1, 'prompt tokens + 1 generated');
      assert.equal(choice.logprobs.token_logprobs[0], null, 'nothing predicts the first token');
      const got = lmEvalParse(choice, tokenize(c.context).length);
      assert.ok(Math.abs(got.logprob - want.logprob) < 1e-12, `${got.logprob} vs ${want.logprob}`);
      assert.equal(got.isGreedy, want.isGreedy);
    }
    const viaProvider = await provider.loglikelihood!(cases);
    for (const [i, c] of cases.entries()) {
      const want = await model.scoreContinuation(c.context, c.continuation);
      assert.ok(Math.abs(viaProvider[i]!.logprob - want.logprob) < 1e-12);
      assert.equal(viaProvider[i]!.isGreedy, want.isGreedy);
      assert.equal(viaProvider[i]!.tokens, want.tokens);
    }
  });

  test('bad requests get 400s in OpenAI error shape, naming the parameter', async () => {
    const cases: [unknown, number, string | null, RegExp][] = [
      [{ model: MODEL }, 400, 'prompt', /'prompt' is required/],
      [{ prompt: 'x', temperature: 3 }, 400, 'temperature', /'temperature' must be <= 2/],
      [{ prompt: 'x', max_tokens: -1 }, 400, 'max_tokens', />= 0/],
      [{ prompt: 'x', max_tokens: 1.5 }, 400, 'max_tokens', /integer/],
      [{ prompt: 'x', top_p: 0 }, 400, 'top_p', /> 0/],
      [{ prompt: 'x', n: 0 }, 400, 'n', />= 1/],
      [{ prompt: 'x', stop: [''] }, 400, 'stop', /non-empty/],
      [{ prompt: 'x', presence_penalty: 0.5 }, 400, 'presence_penalty', /not supported/],
      [{ prompt: 'x', logit_bias: { 1: 5 } }, 400, 'logit_bias', /not supported/],
      [{ prompt: 'x', stream: true, logprobs: 1 }, 400, 'logprobs', /stream/],
      [{ prompt: 'x', stream_options: { include_usage: true } }, 400, 'stream_options', /only allowed with stream/],
      [{ prompt: [1, 'a'] }, 400, 'prompt', /must be a string/],
      [{ prompt: 'x', model: 'gpt-4' }, 404, 'model', /does not exist; this server serves 'deterministic-reverse'/],
      ['{"prompt": ', 400, null, /could not parse the JSON body/],
      ['', 400, null, /body is empty/],
      ['[1,2]', 400, null, /JSON object/],
    ];
    for (const [body, status, param, msg] of cases) {
      const r = await post(srv.baseUrl, '/completions', body);
      assert.equal(r.status, status, JSON.stringify(body));
      assert.equal(r.json.error.param, param, JSON.stringify(body));
      assert.match(r.json.error.message, msg);
      assert.equal(r.json.error.type, 'invalid_request_error');
    }
    const chatCases: [unknown, string, RegExp][] = [
      [{ messages: [] }, 'messages', /non-empty array/],
      [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role', /must be one of/],
      [{ messages: [{ role: 'user' }] }, 'messages[0].content', /is required/],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, 'messages[0].content', /only text parts/],
      [{ messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }, 'top_logprobs', /needs logprobs: true/],
      [{ messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function' }] }, 'tools', /not supported/],
    ];
    for (const [body, param, msg] of chatCases) {
      const r = await post(srv.baseUrl, '/chat/completions', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.error.param, param);
      assert.match(r.json.error.message, msg);
    }
    const notFound = await post(srv.baseUrl, '/embeddings', { input: 'x' });
    assert.equal(notFound.status, 404);
    assert.match(notFound.json.error.message, /unknown endpoint POST \/v1\/embeddings/);
    const wrongMethod = await fetch(`${srv.baseUrl}/completions`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get('allow'), 'POST');
    // The provider surfaces the server's message, and does not retry a 400.
    const err = await provider.complete({ prompt: 'x', maxTokens: 1, temperature: 5 }).catch((e) => e);
    assert.ok(err instanceof HttpError);
    assert.equal(err.status, 400);
    assert.match(err.message, /'temperature' must be <= 2/);
  });

  test('a client that disconnects mid-stream does not disturb the server', async () => {
    const ctrl = new AbortController();
    const res = await fetch(`${srv.baseUrl}/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: 'long story here', max_tokens: 200, temperature: 0, stream: true }),
      signal: ctrl.signal,
    });
    const it = readSse(res.body!)[Symbol.asyncIterator]();
    await it.next();
    ctrl.abort();
    await it.next().catch(() => undefined);
    const r = await provider.complete({ prompt: 'still here', maxTokens: 2, temperature: 0 });
    assert.equal(r.text, ' ereh here');
    await new Promise((res) => setTimeout(res, 20));
    assert.ok(records.some((x) => x.aborted && x.stream), 'the aborted stream was recorded as such');
  });

  test('server-side time is recorded per request and is below the client latency', async () => {
    records.length = 0;
    const t0 = performance.now();
    await provider.complete({ prompt: 'time me', maxTokens: 5, temperature: 0 });
    const client = performance.now() - t0;
    const rec = records.find((r) => r.path === '/v1/completions')!;
    assert.ok(rec.serverMs > 0 && rec.serverMs <= client, `server ${rec.serverMs} client ${client}`);
    assert.equal(rec.completionTokens, 5);
    assert.ok(logs.some((l) => /^POST \/v1\/completions 200 [\d.]+ms/.test(l)));
    assert.ok(!logs.some((l) => l.includes('time me')), 'prompts are never logged');
  });
});

describe('serve: limits, failures, auth, fallback scoring', () => {
  test('queue full → 429 with Retry-After; body too large → 413; model failure → 500, mid-stream an error event and [DONE]', async () => {
    const model = new DeterministicModel({ stepMs: 20, failOn: 'EXPLODE' });
    const srv = await startOpenAIServer(model, { maxQueue: 1, maxBatch: 1, maxBodyBytes: 1000 });
    try {
      const body = (p: string) => ({ prompt: p, max_tokens: 10, temperature: 0 }); // 10 steps x 20 ms per request
      const until = async (cond: () => boolean) => {
        while (!cond()) await new Promise((r) => setTimeout(r, 2));
      };
      const first = post(srv.baseUrl, '/completions', body('ab cd'));
      await until(() => srv.queue.busy); // first is running, queue empty
      const second = post(srv.baseUrl, '/completions', body('ef gh'));
      await until(() => srv.queue.depth === 1); // second waits: queue full
      const third = await post(srv.baseUrl, '/completions', body('ij kl'));
      assert.equal(third.status, 429);
      assert.equal(third.headers.get('retry-after'), '1');
      assert.equal(third.json.error.type, 'rate_limit_error');
      assert.equal((await first).status, 200);
      assert.equal((await second).status, 200);
      const big = await post(srv.baseUrl, '/completions', { prompt: 'x'.repeat(2000) });
      assert.equal(big.status, 413);
      const boom = await post(srv.baseUrl, '/completions', body('EXPLODE now'));
      assert.equal(boom.status, 500);
      assert.match(boom.json.error.message, /model error: refusing prompt with EXPLODE/);
      // A stream is already 200 when the model fails: the error comes as an event, and the stream still ends with [DONE].
      const res = await fetch(`${srv.baseUrl}/completions`, { method: 'POST', body: JSON.stringify({ ...body('EXPLODE now'), stream: true }) });
      assert.equal(res.status, 200);
      const raw = await res.text();
      const events = raw.split('\n\n').filter(Boolean);
      assert.match(events.at(-2)!, /^data: \{"error":\{"message":"model error: refusing prompt with EXPLODE/);
      assert.equal(events.at(-1), 'data: [DONE]');
      const ok = await post(srv.baseUrl, '/completions', { prompt: 'x yz', max_tokens: 3, temperature: 0 });
      assert.equal(ok.json.choices[0].text, ' zy yz zy', 'the server keeps serving after a model failure');
    } finally {
      await srv.close();
    }
  });

  test('with an API key, requests without it get 401; the provider sends it from the env', async () => {
    const srv = await startOpenAIServer(new DeterministicModel(), { apiKey: 'local-secret' });
    try {
      const r = await post(srv.baseUrl, '/completions', { prompt: 'x y', max_tokens: 1 });
      assert.equal(r.status, 401);
      assert.equal(r.json.error.code, 'invalid_api_key');
      const p = createOpenAIProvider(`openai-compat:${srv.baseUrl}#${MODEL}`, { apiKeyEnv: 'ALIGNLAB_KEY', env: { ALIGNLAB_KEY: 'local-secret' } });
      assert.equal((await p.complete({ prompt: 'x yz', maxTokens: 1, temperature: 0 })).text, ' zy');
    } finally {
      await srv.close();
    }
  });

  test('without scorePrompt, echo scoring falls back to scoreContinuation and says so', async () => {
    const model = new DeterministicModel();
    const srv = await startOpenAIServer(model);
    try {
      const p = createOpenAIProvider(`openai-compat:${srv.baseUrl}#${MODEL}`);
      const reqs = [
        { context: 'the cat sat', continuation: ' tas sat' },
        { context: 'the cat sat', continuation: ' on the mat' },
      ];
      const got = await p.loglikelihood!(reqs);
      for (const [i, r] of reqs.entries()) {
        const want = await model.scoreContinuation(r.context, r.continuation);
        assert.ok(Math.abs(got[i]!.logprob - want.logprob) < 1e-12);
      }
      const r = await post(srv.baseUrl, '/completions', { prompt: 'the cat sat on the mat', max_tokens: 0, logprobs: 1, echo: true });
      assert.equal(r.status, 200);
      assert.equal(r.json.choices[0].text, 'the cat sat on the mat');
      assert.equal(r.json.choices[0].finish_reason, 'length');
      assert.match(r.headers.get('x-alignlab-warning') ?? '', /only the chosen token/);
    } finally {
      await srv.close();
    }
  });
});

describe('alignlab serve CLI', () => {
  test('starts on the given host/port with an injected model, and stops on abort', async () => {
    const ctrl = new AbortController();
    const lines: string[] = [];
    let base = '';
    const done = serveMain(['--model', '/nonexistent/dir', '--port', '0', '--name', 'cli-model', '--quiet'], {
      loadModel: async (dir) => {
        assert.equal(dir, '/nonexistent/dir');
        return new DeterministicModel();
      },
      signal: ctrl.signal,
      log: (l) => lines.push(l),
      onListening: (s) => (base = s.baseUrl),
    });
    while (!base) await new Promise((r) => setTimeout(r, 5));
    const p = createOpenAIProvider(`openai-compat:${base}#cli-model`);
    assert.deepEqual(await p.listModels(), ['cli-model']);
    assert.equal((await p.complete({ prompt: 'x yz', maxTokens: 1, temperature: 0 })).text, ' zy');
    ctrl.abort();
    await done;
    assert.match(lines[0]!, /^serving cli-model at http:\/\/127\.0\.0\.1:\d+\/v1/);
    assert.equal(lines.at(-1), 'server stopped');
    await assert.rejects(fetch(`${base}/models`));
  });

  test('flag errors are usage errors', async () => {
    await assert.rejects(serveMain([]), (e) => e instanceof UsageError && /--model/.test(e.message));
    await assert.rejects(serveMain(['--model', 'd', '--port', '70000']), UsageError);
    await assert.rejects(serveMain(['--model', 'd', '--api-key-env', 'NOPE_NOT_SET'], { env: {} }), /NOPE_NOT_SET/);
    await assert.rejects(serveMain(['--model', 'd', '--prot', '1']), /unknown flag --prot/);
  });
});
