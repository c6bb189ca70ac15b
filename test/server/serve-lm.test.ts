// The server over the real in-process model (src/model/lm.ts): a tiny random llama written by `alignlab init`,
// served on 127.0.0.1 and checked against the same LM called directly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main as initMain } from '../../src/cli/init.js';
import { LM } from '../../src/model/lm.js';
import { startOpenAIServer, type OpenAIServer } from '../../src/server/openai-server.js';
import { createOpenAIProvider, type OpenAIProvider } from '../../src/eval/providers/openai.js';

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
