// The server over the real in-process model (src/model/lm.ts): a tiny random llama written by `alignlab init`,
// served on 127.0.0.1 and checked against the same LM called directly: continuous batching (requests that join
// mid-flight answer as alone), client mistakes as 400s, and stopping (close, SIGTERM/SIGINT on `alignlab serve`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main as initMain } from '../../src/cli/init.js';
import { LM } from '../../src/model/lm.js';
import { startOpenAIServer, type OpenAIServer } from '../../src/server/openai-server.js';
import { createOpenAIProvider, type OpenAIProvider } from '../../src/eval/providers/openai.js';
import { readSse } from '../../src/eval/providers/http.js';

const ENTRY = resolve(import.meta.dirname, '../../src/cli/entry.ts');

async function post(base: string, path: string, body: unknown) {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

/** A streamed completion: resolves `first` at its first text chunk; `done` with every event's data. */
function streamEvents(base: string, body: Record<string, unknown>) {
  let onFirst!: () => void;
  const first = new Promise<void>((r) => (onFirst = r));
  const done = (async () => {
    const res = await fetch(`${base}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
    const events: string[] = [];
    for await (const e of readSse(res.body!)) {
      events.push(e.data);
      if (e.data !== '[DONE]' && JSON.parse(e.data).choices?.[0]?.text) onFirst();
    }
    return events;
  })();
  return { first, done };
}
const textOf = (events: string[]) => events.filter((e) => e !== '[DONE]').map((e) => JSON.parse(e).choices?.[0]?.text ?? '').join('');

let dir: string;
let lm: LM;
let srv: OpenAIServer;
let provider: OpenAIProvider;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'alignlab-serve-'));
  const log = console.log;
  console.log = () => {};
  try {
    await initMain(['--arch', 'llama', '--out', dir, '--layers', '2', '--hidden', '32', '--heads', '2', '--context', '128', '--seed', '3']);
  } finally {
    console.log = log;
  }
  lm = await LM.load(dir);
  srv = await startOpenAIServer(lm);
  provider = createOpenAIProvider(`openai-compat:${srv.baseUrl}#${srv.modelName}`);
});

after(async () => {
  await srv?.close();
  lm?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('greedy completions through the server equal LM.generate', async () => {
  const prompt = 'The state of the union is';
  const [direct] = await lm.generate([prompt], { maxNewTokens: 8, temperature: 0 });
  const served = await provider.complete({ prompt, maxTokens: 8, temperature: 0 });
  assert.equal(served.text, direct!.text);
  assert.equal(served.completionTokens, direct!.tokenIds.length);
  const deltas: string[] = [];
  const streamed = await provider.stream({ prompt, maxTokens: 8, temperature: 0 }, (d) => deltas.push(d));
  assert.equal(streamed.text, direct!.text);
  assert.equal(deltas.join(''), direct!.text);
});

test('loglikelihood through echo + logprobs equals LM.scoreContinuation', async () => {
  const reqs = [
    { context: 'The state of the', continuation: ' union' },
    { context: 'Hello', continuation: ' world, again' },
  ];
  const got = await provider.loglikelihood!(reqs);
  for (const [i, r] of reqs.entries()) {
    const want = await lm.scoreContinuation(r.context, r.continuation);
    assert.equal(got[i]!.tokens, want.tokens);
    assert.ok(Math.abs(got[i]!.logprob - want.logprob) < 1e-4, `${got[i]!.logprob} vs ${want.logprob}`);
  }
});

test('concurrent requests of different lengths, joining a running batch mid-flight, answer as they would alone', async () => {
  const prompts = ['A', 'The state of the union is', 'Hello', 'We the people of the United States, in order to form'];
  const seeded = { prompt: 'Seeded sampling', maxTokens: 10, temperature: 0.8, topP: 0.9, seed: 4 };
  const long = { prompt: 'long running', max_tokens: 90, temperature: 0 };
  const alone: string[] = [];
  for (const prompt of prompts) alone.push((await provider.complete({ prompt, maxTokens: 10, temperature: 0 })).text);
  const seededAlone = (await provider.complete(seeded)).text;
  const longAlone = (await provider.complete({ prompt: long.prompt, maxTokens: long.max_tokens, temperature: 0 })).text;

  const stream = streamEvents(srv.baseUrl, long);
  let longDone = false;
  void stream.done.then(() => (longDone = true));
  await stream.first; // the long request is decoding; the others join its batch
  const deltas: string[] = [];
  const [together, seededTogether, streamed] = await Promise.all([
    Promise.all(prompts.map((prompt) => provider.complete({ prompt, maxTokens: 10, temperature: 0 }))),
    provider.complete(seeded),
    provider.stream({ prompt: prompts[1]!, maxTokens: 10, temperature: 0 }, (d) => deltas.push(d)),
  ]);
  assert.equal(longDone, false, 'the short requests did not wait for the long one');
  assert.deepEqual(together.map((r) => r.text), alone);
  assert.equal(seededTogether.text, seededAlone, 'a seeded request draws the same text in a busy batch');
  assert.equal(streamed.text, alone[1]);
  assert.equal(deltas.join(''), alone[1]);
  assert.equal(textOf(await stream.done), longAlone, 'the long row is unchanged by rows joining and leaving');
  assert.ok(srv.queue.stats.maxBatchSeen >= 4, `rows decoded together: ${srv.queue.stats.maxBatchSeen}`);
});

test('client mistakes are 400s naming the parameter; a chat without max_tokens is clamped to the context and says so', async () => {
  const ctx = lm.cfg.maxPositions; // 128
  const long = await post(srv.baseUrl, '/completions', { prompt: 'x'.repeat(ctx + 20), max_tokens: 4 });
  assert.equal(long.status, 400);
  assert.deepEqual([long.json.error.param, long.json.error.code, long.json.error.type], ['prompt', 'context_length_exceeded', 'invalid_request_error']);
  assert.match(long.json.error.message, /maximum context length is 128 tokens, but the prompt has 148 tokens/);
  const echo = await post(srv.baseUrl, '/completions', { prompt: 'x'.repeat(ctx + 1), max_tokens: 0, echo: true, logprobs: 1 });
  assert.equal(echo.status, 400, 'scoring a prompt past the context too');
  const over = await post(srv.baseUrl, '/completions', { prompt: 'Hello', max_tokens: ctx - 4 });
  assert.equal(over.status, 400);
  assert.equal(over.json.error.param, 'max_tokens');
  assert.match(over.json.error.message, /you requested 129 tokens \(5 in the prompt, 124 for the completion\); lower max_tokens to at most 123/);
  const fits = await post(srv.baseUrl, '/completions', { prompt: 'Hello', max_tokens: ctx - 5, temperature: 0 });
  assert.equal(fits.status, 200, 'prompt + max_tokens = context is allowed');
  const ids = await post(srv.baseUrl, '/completions', { prompt: [72, 101, lm.cfg.vocabSize + 5], max_tokens: 2 });
  assert.equal(ids.status, 400);
  assert.equal(ids.json.error.param, 'prompt');
  assert.match(ids.json.error.message, new RegExp(`token id ${lm.cfg.vocabSize + 5} in 'prompt' is outside the model's vocabulary \\(0\\.\\.${lm.cfg.vocabSize - 1}\\)`));
  // No max_tokens: the default (256) would overflow the 128 positions; it is clamped to the room the prompt leaves.
  const chat = await post(srv.baseUrl, '/chat/completions', { messages: [{ role: 'user', content: 'Hi there' }], temperature: 0 });
  assert.equal(chat.status, 200, JSON.stringify(chat.json));
  const room = ctx - chat.json.usage.prompt_tokens;
  assert.equal(chat.headers.get('x-alignlab-warning'), `max_tokens defaulted to ${room}, the rest of the model's 128-token context after the ${chat.json.usage.prompt_tokens}-token prompt`);
  assert.ok(chat.json.usage.completion_tokens <= room && chat.json.usage.completion_tokens > 0);
  if (chat.json.choices[0].finish_reason === 'length') assert.equal(chat.json.usage.completion_tokens, room);
  const res = await fetch(`${srv.baseUrl}/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi there' }], stream: true }) });
  assert.equal(res.status, 200);
  const events = (await res.text()).split('\n\n').filter(Boolean);
  assert.equal(events.at(-1), 'data: [DONE]');
  assert.ok(!events.some((e) => e.includes('"error"')), 'the clamped stream runs to its end');
});

test('close() lets a stream in flight finish; close({ cancel: true }) ends one with an error event and [DONE]', async () => {
  const body = { prompt: 'stop me', max_tokens: 100, temperature: 0 };
  const want = (await provider.complete({ prompt: body.prompt, maxTokens: body.max_tokens, temperature: 0 })).text;
  const graceful = await startOpenAIServer(lm);
  const a = streamEvents(graceful.baseUrl, body);
  await a.first;
  const closing = graceful.close();
  const aEvents = await a.done;
  await closing;
  assert.equal(textOf(aEvents), want);
  assert.equal(aEvents.at(-1), '[DONE]');
  await assert.rejects(fetch(`${graceful.baseUrl}/models`), 'the port is closed');

  const cancelled = await startOpenAIServer(lm);
  const b = streamEvents(cancelled.baseUrl, body);
  await b.first;
  await cancelled.close({ cancel: true });
  const bEvents = await b.done;
  assert.equal(bEvents.at(-1), '[DONE]');
  const err = JSON.parse(bEvents.at(-2)!);
  assert.equal(err.error.code, 'shutting_down');
  assert.ok(textOf(bEvents).length < want.length && want.startsWith(textOf(bEvents)), 'cut short, never wrong');
});

/** `alignlab serve` in a child process on a free port. */
async function serveChild() {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'serve', '--model', dir, '--port', '0', '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const exit = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  const base = await new Promise<string>((ok, fail) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /serving \S+ at (http:\/\/\S+\/v1)/.exec(err);
      if (m) ok(m[1]!);
    });
    void exit.then((code) => fail(new Error(`serve exited ${code}: ${err}`)));
  });
  return { child, base, exit, stderr: () => err };
}

test('alignlab serve: SIGTERM stops taking requests, finishes the one in flight, exits 143; SIGINT exits 130', async () => {
  const s = await serveChild();
  const body = { prompt: 'in flight', max_tokens: 60, temperature: 0 };
  const run = streamEvents(s.base, body);
  await run.first;
  s.child.kill('SIGTERM');
  while (!/SIGTERM: not taking new requests/.test(s.stderr())) await new Promise((r) => setTimeout(r, 10));
  const late = await fetch(`${s.base}/models`).then((r) => r.status, (e: Error) => e.message);
  assert.ok(late === 503 || /fetch failed/.test(String(late)), `a request after SIGTERM is refused: ${late}`);
  const events = await run.done;
  assert.equal(events.at(-1), '[DONE]');
  assert.equal(JSON.parse(events.at(-2)!).choices[0].finish_reason, 'length', 'the request in flight ran to its end');
  assert.equal(textOf(events), (await provider.complete({ prompt: body.prompt, maxTokens: body.max_tokens, temperature: 0 })).text);
  assert.equal(await s.exit, 143, s.stderr());
  assert.match(s.stderr(), /server stopped/);

  const t = await serveChild();
  t.child.kill('SIGINT');
  assert.equal(await t.exit, 130, t.stderr());
});
