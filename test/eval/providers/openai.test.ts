// openai: and openai-compat: providers against a real fault-injecting server on 127.0.0.1.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { continuationTokenRange, createOpenAIProvider, normalizeOpenAIOptions, parseProviderId } from '../../../src/eval/providers/openai.js';
import type { RetryEvent } from '../../../src/eval/providers/http.js';
import type { CompletionRequest } from '../../../src/eval/providers/types.js';
import { faultLogprob, startFaultServer, type Fault } from '../../helpers/fault-server.js';

const FAST = { baseDelayMs: 5, maxDelayMs: 20 };

describe('parseProviderId', () => {
  test('openai:<model> with default and overridden base URL, and promptfoo mode prefixes', () => {
    assert.deepEqual(parseProviderId('openai:gpt-4o-mini', {}), { kind: 'openai', baseUrl: 'https://api.openai.com/v1', model: 'gpt-4o-mini', mode: undefined });
    assert.deepEqual(parseProviderId('openai:gpt-4o-mini', { OPENAI_BASE_URL: 'http://10.0.0.2:9000/v1/' }).baseUrl, 'http://10.0.0.2:9000/v1');
    assert.equal(parseProviderId('openai:chat:gpt-4o', {}).mode, 'chat');
    const c = parseProviderId('openai:completion:davinci-002', {});
    assert.equal(c.mode, 'completions');
    assert.equal(c.model, 'davinci-002');
  });
  test('openai-compat:<base url>#<model>, model names with slashes and colons', () => {
    assert.deepEqual(parseProviderId('openai-compat:http://127.0.0.1:8000/v1#qwen2', {}), {
      kind: 'openai-compat',
      baseUrl: 'http://127.0.0.1:8000/v1',
      model: 'qwen2',
    });
    const s = parseProviderId('openai-compat:https://host.example/v1/#meta-llama/Llama-3.1-8B:instruct', {});
    assert.equal(s.baseUrl, 'https://host.example/v1');
    assert.equal(s.model, 'meta-llama/Llama-3.1-8B:instruct');
  });
  test('bad ids say what is expected', () => {
    assert.throws(() => parseProviderId('openai:', {}), /missing model name/);
    assert.throws(() => parseProviderId('openai-compat:http://x:1/v1', {}), /expected openai-compat:<base url>#<model>/);
    assert.throws(() => parseProviderId('openai-compat:http://x:1/v1#', {}), /expected openai-compat/);
    assert.throws(() => parseProviderId('openai-compat:not a url#m', {}), /is not a URL/);
    assert.throws(() => parseProviderId('openai-compat:ftp://x/v1#m', {}), /must be http/);
    assert.throws(() => parseProviderId('gguf:x.gguf', {}), /not an OpenAI provider/);
    assert.throws(() => parseProviderId('openai:m', { OPENAI_BASE_URL: 'nope' }), /OPENAI_BASE_URL/);
  });
});

test('continuationTokenRange finds the continuation tokens by character offset', () => {
  // "The cat" + " sat" + generated " down"
  const tokens = ['The', ' cat', ' sat', ' down'];
  assert.deepEqual(continuationTokenRange(tokens, [0, 3, 7, 11], 7, 11), [2, 3]);
  assert.deepEqual(continuationTokenRange(tokens, undefined, 7, 11), [2, 3], 'offsets rebuilt from token texts');
  // A token straddling the boundary ("ca" | "t sat") belongs to the continuation.
  assert.deepEqual(continuationTokenRange(['The', ' cat', ' sat'], undefined, 6, 11), [1, 3]);
  // Empty continuation: nothing to score.
  assert.deepEqual(continuationTokenRange(tokens, undefined, 11, 11), [0, 0]);
  // Offsets count code points, as Python servers do: "é" is one.
  assert.deepEqual(continuationTokenRange(['é', ' 😀', ' x'], [0, 1, 3], 3, 5), [2, 3]);
});

test('options from an eval config: snake_case accepted, typos and wrong types rejected by name', () => {
  const id = 'openai-compat:http://127.0.0.1:59999/v1#m';
  assert.deepEqual(normalizeOpenAIOptions(id, { api_key_env: 'K', timeout_ms: 500, max_retries: 2, retry: { base_delay_ms: 10 }, mode: 'chat', concurrency: 3 }), {
    apiKeyEnv: 'K',
    timeoutMs: 500,
    retry: { maxRetries: 2, baseDelayMs: 10 },
    mode: 'chat',
    concurrency: 3,
  });
  assert.throws(() => normalizeOpenAIOptions(id, { timout_ms: 5 }), /unknown provider option "timout_ms" \(known: .*timeout_ms/);
  assert.throws(() => normalizeOpenAIOptions(id, { retry: { max_retry: 1 } }), /unknown retry option "max_retry"/);
  assert.throws(() => normalizeOpenAIOptions(id, { concurrency: '4' }), /concurrency must be a number, got "4"/);
  assert.throws(() => normalizeOpenAIOptions(id, { mode: 'legacy' }), /mode must be chat, completions or auto/);
  assert.throws(() => normalizeOpenAIOptions(id, { max_retries: -1 }), /max_retries must be a number >= 0/);
  // Through the factory the eval registry uses.
  assert.equal(createOpenAIProvider(id, { concurrency: 2 }).http.limiter.limit, 2);
});

describe('provider construction and request bodies', () => {
  test('openai: needs its key; the message names the variable, not a value', () => {
    assert.throws(() => createOpenAIProvider('openai:gpt-4o-mini', { env: {} }), /environment variable OPENAI_API_KEY is not set/);
    assert.throws(() => createOpenAIProvider('openai:gpt-4o-mini', { env: {}, apiKeyEnv: 'MY_KEY' }), /MY_KEY is not set/);
  });

  test('chat vs completions bodies', () => {
    const oa = createOpenAIProvider('openai:gpt-4o-mini', { env: { OPENAI_API_KEY: 'sk-x' } });
    const chat = oa.buildRequest({ prompt: 'hi', maxTokens: 5, temperature: 0, stop: ['\n'], seed: 3 });
    assert.equal(chat.url, 'https://api.openai.com/v1/chat/completions');
    assert.deepEqual(chat.body, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 5, temperature: 0, stop: ['\n'], seed: 3 });
    assert.throws(() => oa.buildRequest({ prompt: 'hi', maxTokens: 5, topK: 40 }), /no top_k/);
    assert.equal(oa.loglikelihood, undefined, 'OpenAI chat models give no prompt log-probs');

    const compat = createOpenAIProvider('openai-compat:http://127.0.0.1:59999/v1#m', { logprobs: true, extraBody: { repetition_penalty: 1.1 } });
    const comp = compat.buildRequest({ prompt: 'hi', maxTokens: 5, topK: 40, topP: 0.9 });
    assert.equal(comp.url, 'http://127.0.0.1:59999/v1/completions');
    assert.deepEqual(comp.body, { model: 'm', prompt: 'hi', max_tokens: 5, logprobs: 1, top_p: 0.9, top_k: 40, repetition_penalty: 1.1 });
    const ch = compat.buildRequest({ messages: [{ role: 'user', content: 'hi' }], maxTokens: 2 }, true);
    assert.equal(ch.mode, 'chat');
    assert.deepEqual(ch.body.stream_options, { include_usage: true });
    assert.equal(typeof compat.loglikelihood, 'function');
    assert.throws(() => compat.buildRequest({ maxTokens: 1 } as CompletionRequest), /exactly one of prompt or messages/);
    const forcedChat = createOpenAIProvider('openai-compat:http://127.0.0.1:59999/v1#m', { mode: 'completions' });
    assert.throws(() => forcedChat.buildRequest({ messages: [{ role: 'user', content: 'x' }], maxTokens: 1 }), /completions mode needs a prompt/);
  });
});

describe('providers against the fault server', async () => {
  const srv = await startFaultServer();
  after(() => srv.close());
  const reset = (schedule: Fault[] | ((a: { n: number; attempt: number; prompt: string }) => Fault)) => {
    srv.arrivals.length = 0;
    srv.answered.length = 0;
    srv.setSchedule(schedule);
  };

  test('an evaluation loop under faults answers every sample exactly once', async () => {
    // Every 3rd prompt fails on its first attempt, cycling through each kind of fault; some fail twice.
    const faults: Fault[] = [
      { kind: 'status', status: 429, retryAfter: '0.1' },
      { kind: 'status', status: 500 },
      { kind: 'status', status: 503 },
      { kind: 'hang' },
      { kind: 'drop' },
      { kind: 'reset' },
      { kind: 'malformed' },
      { kind: 'no-choices' },
    ];
    const N = 64;
    const prompts = Array.from({ length: N }, (_, i) => `question ${i}: what is ${i} + ${i}?`);
    const idx = new Map(prompts.map((p, i) => [p, i]));
    let injected = 0;
    reset((a) => {
      const i = idx.get(a.prompt) ?? 0;
      const f = i % 3 === 0 && a.attempt < (i % 9 === 0 ? 2 : 1) ? faults[(i / 3 + a.attempt) % faults.length]! : { kind: 'ok' as const };
      if (f.kind !== 'ok') injected++;
      return f;
    });
    const retries: RetryEvent[] = [];
    // The timeout must only ever catch the scheduled hangs: a healthy answer that is merely slow (a loaded
    // machine) and times out gets retried, and the server would rightly log it answered twice.
    const p = createOpenAIProvider(`openai-compat:${srv.baseUrl}#fault-model`, { concurrency: 6, timeoutMs: 1500, retry: FAST, onRetry: (e) => retries.push(e) });
    // Half through completions, half through chat: both endpoints retry the same way.
    const results = await Promise.all(
      prompts.map(async (prompt, i) => {
        const r = await p.complete(i % 2 ? { prompt, maxTokens: 8, temperature: 0 } : { messages: [{ role: 'user', content: prompt }], maxTokens: 8, temperature: 0 });
        return [prompt, r.text] as const;
      }),
    );
    assert.equal(results.length, N);
    for (const [prompt, text] of results) assert.equal(text, `answer to ${prompt}`);
    // The server's own log: every prompt answered in full exactly once, no more.
    const counts = new Map<string, number>();
    for (const a of srv.answered) counts.set(a.prompt, (counts.get(a.prompt) ?? 0) + 1);
    assert.equal(counts.size, N);
    assert.ok([...counts.values()].every((c) => c === 1), 'a prompt was answered twice');
    assert.ok(injected >= 25, `injected ${injected} faults`);
    assert.equal(retries.length, injected, 'one retry per injected fault');
    assert.equal(srv.arrivals.length, N + injected);
    for (const kind of ['HTTP 429', 'HTTP 500', 'HTTP 503', 'timeout', 'network error', 'malformed JSON', 'unexpected response'])
      assert.ok(retries.some((r) => r.reason.includes(kind)), `no retry for ${kind}`);
  });

  test('openai: sends $OPENAI_API_KEY to $OPENAI_BASE_URL; openai-compat sends no key unless asked', async () => {
    reset([]);
    const env = { OPENAI_API_KEY: 'sk-test-key-for-fault-server', OPENAI_BASE_URL: srv.baseUrl, VLLM_KEY: 'vllm-secret' };
    const oa = createOpenAIProvider('openai:fault-model', { env });
    const r = await oa.complete({ prompt: 'hello', maxTokens: 4 });
    assert.equal(r.text, 'answer to hello');
    assert.equal(r.promptTokens, 1);
    assert.equal(srv.arrivals[0]!.path, '/v1/chat/completions');
    assert.equal(srv.arrivals[0]!.hadAuth, true);
    await createOpenAIProvider(`openai-compat:${srv.baseUrl}#fault-model`, { env }).complete({ prompt: 'p', maxTokens: 1 });
    assert.equal(srv.arrivals[1]!.hadAuth, false, 'OPENAI_API_KEY must not go to an arbitrary compatible server');
    await createOpenAIProvider(`openai-compat:${srv.baseUrl}#fault-model`, { env, apiKeyEnv: 'VLLM_KEY' }).complete({ prompt: 'p', maxTokens: 1 });
    assert.equal(srv.arrivals[2]!.hadAuth, true);
    assert.deepEqual(await oa.listModels(), ['fault-model']);
  });

  test('streaming retries until the first event, then assembles the deltas', async () => {
    reset([{ kind: 'status', status: 503 }, { kind: 'reset' }, { kind: 'malformed' }]);
    const p = createOpenAIProvider(`openai-compat:${srv.baseUrl}#fault-model`, { retry: FAST, stream: true });
    const deltas: string[] = [];
    const r = await p.stream({ prompt: 'stream me please', maxTokens: 8 }, (d) => deltas.push(d));
    assert.equal(r.text, 'answer to stream me please');
    assert.deepEqual(deltas, ['answer', ' to', ' stream', ' me', ' please']);
    assert.equal(r.finishReason, 'stop');
    assert.equal(srv.arrivals.length, 4);
    const viaComplete = await p.complete({ messages: [{ role: 'user', content: 'chat stream' }], maxTokens: 8 });
    assert.equal(viaComplete.text, 'answer to chat stream');
  });

  test('loglikelihood sums the continuation tokens of an echoed prompt, exactly once under faults', async () => {
    const reqs = [
      { context: 'The capital of France is', continuation: ' Paris' },
      { context: 'Two plus two', continuation: ' is four' },
      { context: 'A', continuation: ' b c d e' },
    ];
    let first = true;
    reset((a) => (a.attempt === 0 && (first = !first) ? { kind: 'status', status: 500 } : { kind: 'ok' }));
    const p = createOpenAIProvider(`openai-compat:${srv.baseUrl}#fault-model`, { retry: FAST });
    const out = await p.loglikelihood!(reqs);
    // The fault server's log-prob of a token is -(its length)/10.
    const expect = (s: string) => (s.match(/\s*\S+/g) ?? []).reduce((sum, t) => sum + faultLogprob(t), 0);
    out.forEach((o, i) => {
      assert.ok(Math.abs(o.logprob - expect(reqs[i]!.continuation)) < 1e-12, `${o.logprob}`);
      assert.equal(o.isGreedy, true);
    });
    assert.deepEqual(
      out.map((o) => o.tokens),
      [1, 2, 4],
    );
    assert.equal(srv.answered.length, 3);
    assert.ok(srv.arrivals.length > 3, 'some requests were retried');
    const body = srv.arrivals.every((a) => a.path === '/v1/completions');
    assert.ok(body);
  });
});
