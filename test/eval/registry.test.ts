import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { openStore } from '../../src/store/db.js';
import { createProvider, registeredPrefixes, registerProvider, splitProviderId, unregisterProvider } from '../../src/eval/registry.js';
import { runEvalFile } from '../../src/eval/runner.js';
import { writeEvalConfig, writeTaskFixtures } from './helpers/fixtures.js';

test('provider ids: prefix before the first colon; unknown kinds are named; factories get target, id and options', async () => {
  assert.deepEqual(splitProviderId('openai-compat:http://127.0.0.1:8000/v1#qwen'), { prefix: 'openai-compat', target: 'http://127.0.0.1:8000/v1#qwen' });
  assert.throws(() => splitProviderId('nocolon'), /must look like "<kind>:<target>"/);
  assert.ok(registeredPrefixes().includes('openai') && registeredPrefixes().includes('openai-compat'));
  await assert.rejects(createProvider('warp:drive'), /unknown provider kind "warp" in "warp:drive" \(registered: .*openai-compat/);
  let got: unknown[] = [];
  registerProvider('echo', (target, id, o) => {
    got = [target, id, o];
    return { id, model: target, complete: async (r) => ({ text: r.prompt ?? '', finishReason: 'stop' }) };
  });
  const p = await createProvider('echo:a:b', { label: 'E', concurrency: 2, config: { x: 1 } });
  assert.deepEqual(got, ['a:b', 'echo:a:b', { label: 'E', concurrency: 2, config: { x: 1 } }]);
  assert.equal((await p.complete({ prompt: 'hi', maxTokens: 1 })).text, 'hi');
  unregisterProvider('echo');
  assert.throws(() => registerProvider('Bad Prefix', () => p), /lower-case/);
  // The built-in openai-compat factory passes config through (and validates it).
  const oc = await createProvider('openai-compat:http://127.0.0.1:59999/v1#m', { config: { timeout_ms: 1000 } });
  assert.equal(oc.model, 'm');
  await assert.rejects(createProvider('openai-compat:http://127.0.0.1:59999/v1#m', { config: { tiemout: 1 } }), /unknown provider option "tiemout"/);
});

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let s = '';
  for await (const c of req) s += c;
  return JSON.parse(s) as Record<string, unknown>;
}

test('the runner drives an OpenAI-compatible server on loopback through the registry (chat + echo log-probs), and re-runs from the cache', async () => {
  const seen: string[] = [];
  const server = createServer(async (req, res) => {
    const b = await body(req);
    seen.push(req.url!);
    let out: unknown;
    if (req.url === '/v1/chat/completions') {
      const msgs = b.messages as { role: string; content: string }[];
      const q = msgs[msgs.length - 1]!.content;
      // Answer with the last word of the context sentence that is not the question's: a fixed, checkable rule.
      const answer = q.match(/Context: ([^.]*)/)?.[1]?.split(' ').pop() ?? 'unknown';
      out = { id: 'x', object: 'chat.completion', model: b.model, choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1 } };
    } else if (req.url === '/v1/completions' && b.echo) {
      // Character tokens; each costs -1 nat, so a continuation's log-likelihood is minus its length.
      const prompt = b.prompt as string;
      const tokens = [...prompt];
      out = {
        id: 'y',
        object: 'text_completion',
        model: b.model,
        choices: [{ index: 0, text: prompt, finish_reason: 'length', logprobs: { tokens, text_offset: tokens.map((_, i) => i), token_logprobs: tokens.map((_, i) => (i === 0 ? null : -1)), top_logprobs: null } }],
      };
    } else {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const d = writeTaskFixtures();
    const cfg = writeEvalConfig(d, 'e.yaml', `providers:\n  - id: openai-compat:http://127.0.0.1:${port}/v1#m\n    label: server\n    concurrency: 4\ntasks: [qa.yaml, mc.yaml]\nbootstrap: 50\nout: out\n`);
    const db = openStore(join(d, 's.db'));
    const r = await runEvalFile(cfg, { db, log: () => {} });
    const mcChoices = 2 + 2 + 3 + 2 + 2;
    assert.equal(seen.filter((u) => u === '/v1/chat/completions').length, 12);
    assert.equal(seen.filter((u) => u === '/v1/completions').length, mcChoices);
    const qa = r.samples.filter((s) => s.task === 'qa' && s.template === 0);
    assert.deepEqual(qa.map((s) => s.output), ['1931', 'club', 'oil', 'Thursdays', 'fence', 'coins']);
    // Log-likelihood = −(characters in " " + choice): acc picks the shortest choice.
    const mc = r.samples.filter((s) => s.task === 'mc');
    for (const s of mc) assert.deepEqual(s.choice_logprobs, s.choices!.map((c) => -(c.length + 1)));
    const n = seen.length;
    const again = await runEvalFile(cfg, { db, log: () => {} });
    assert.equal(seen.length, n, 'a re-run sends nothing to the server');
    assert.equal(again.cache.hits, 12 + 5);
  } finally {
    server.close();
  }
});
