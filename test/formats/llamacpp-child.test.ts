// The llama.cpp child process: bad files and dying children reject with clear errors while this (the main)
// process keeps running; bad requests fail alone; generation options behave.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readGGUF, writeGGUF, writeGGUFFile, type GGUFValue } from '../../src/formats/gguf.js';
import { byteLevelTokenizerJson } from '../../src/formats/tokenizer.js';
import { LlamaCppChild } from '../../src/eval/providers/llamacpp.js';
import { tinyConfig } from '../../src/formats/config.js';
import { randomParams, tmp } from './helpers.js';

const dir = tmp('llamacpp-child');
const cfg = tinyConfig('llama', { vocabSize: 257 });
const good = join(dir, 'good.gguf');
let child: LlamaCppChild;

before(async () => {
  writeGGUF(good, { config: cfg, params: randomParams(cfg, 1), tokenizerJson: byteLevelTokenizerJson(), tokenizerConfig: { eos_token: '<|endoftext|>' } });
  child = await LlamaCppChild.start(good);
});
after(() => child?.close());

test('a corrupt file is refused before any child starts, naming the file and the field', async () => {
  const bad = join(dir, 'bad-magic.gguf');
  const b = readFileSync(good);
  b.write('XXXX', 0);
  writeFileSync(bad, b);
  await assert.rejects(LlamaCppChild.start(bad), (e: Error) => e.message.startsWith(`${bad}: magic is "XXXX"`));
  await assert.rejects(LlamaCppChild.start(join(dir, 'missing.gguf')), /ENOENT/);
});

test('a file llama.cpp rejects (a required tensor is absent) fails in the child; the error names the file and the cause', async () => {
  // Rewrite the good file without blk.0.attn_q.weight: our reader accepts it, llama.cpp must not.
  const f = readGGUF(good);
  const path = join(dir, 'no-attn-q.gguf');
  const kv: [string, GGUFValue][] = [...f.metadata.entries()].filter(([k]) => k !== 'general.alignment');
  writeGGUFFile(path, kv, f.tensors.filter((t) => t.name !== 'blk.0.attn_q.weight').map((t) => ({ name: t.name, shape: t.shape, data: t.data! })));
  readGGUF(path); // structurally fine
  const t0 = Date.now();
  await assert.rejects(LlamaCppChild.start(path, { validate: false }), (e: Error) => {
    assert.ok(e.message.startsWith(`${path}: llama.cpp could not load the model`), e.message);
    assert.match(e.message, /missing tensor 'blk\.0\.attn_q\.weight'/);
    return true;
  });
  assert.ok(Date.now() - t0 < 60_000);
});

test('tokenize / detokenize / bad requests: a failed request does not take the child down', async () => {
  assert.deepEqual(await child.tokenize('hé'), [104, 195, 169]);
  assert.equal(await child.detokenize([104, 195, 169]), 'hé');
  assert.deepEqual(await child.tokenize('a<|endoftext|>', { special: true }), [97, 256]);
  await assert.rejects(child.nextLogprobs([1, 999]), (e: Error) => e.message.startsWith(`${good}: llama.cpp nextLogprobs failed: token id 999 is outside the vocabulary (0..256)`));
  await assert.rejects(child.nextLogprobs([]), /needs at least one token/);
  await assert.rejects(child.nextLogprobs(Array(65).fill(1)), /65 tokens exceed the context size 64/);
  const lp = await child.nextLogprobs([1, 2, 3]);
  assert.equal(lp.length, 257);
  const total = lp.reduce((a, x) => a + Math.exp(x), 0);
  assert.ok(Math.abs(total - 1) < 1e-5, `probabilities sum to ${total}`);
  // Prefix reuse must not change results: a longer then a shorter query over the same prefix.
  await child.nextLogprobs([1, 2, 3, 4, 5]);
  const again = await child.nextLogprobs([1, 2, 3]);
  assert.ok(again.every((x, i) => Math.abs(x - lp[i]) < 1e-5));
});

test('generate: max tokens, stop strings, seeded sampling', async () => {
  const g = await child.generate('ab', { maxTokens: 5 });
  assert.equal(g.tokens.length, 5);
  assert.equal(g.finishReason, 'length');
  assert.equal(g.text, await child.detokenize(g.tokens));
  // Stop strings, on a model whose LM head keeps only the a–z columns (so greedy text is letters, never U+FFFD):
  // stop on the first letter that did not occur before; the text is cut right before it.
  const lettersParams = randomParams(cfg, 1);
  const head = lettersParams.lmHead!, V = cfg.vocabSize;
  for (let v = 0; v < V; v++) if (v < 97 || v > 122) head.data.fill(0, v * cfg.hiddenSize, (v + 1) * cfg.hiddenSize); // [V, C]
  const lettersPath = join(dir, 'letters.gguf');
  writeGGUF(lettersPath, { config: cfg, params: lettersParams, tokenizerJson: byteLevelTokenizerJson(), tokenizerConfig: { eos_token: '<|endoftext|>' } });
  const letters = await LlamaCppChild.start(lettersPath);
  try {
    const full = await letters.generate('ab', { maxTokens: 8 });
    assert.match(full.text, /^[a-z]{8}$/);
    const at = [...full.text].findIndex((ch, i) => i > 0 && !full.text.slice(0, i).includes(ch));
    assert.ok(at > 0, `no usable stop string in ${JSON.stringify(full.text)}`);
    const s = await letters.generate('ab', { maxTokens: 8, stop: [full.text[at]!] });
    assert.equal(s.finishReason, 'stop');
    assert.equal(s.text, full.text.slice(0, at), `stop ${JSON.stringify(full.text[at])} in ${JSON.stringify(full.text)}`);
  } finally {
    await letters.close();
  }
  const a1 = await child.generate('ab', { maxTokens: 8, temperature: 1, seed: 7 });
  const a2 = await child.generate('ab', { maxTokens: 8, temperature: 1, seed: 7 });
  const b1 = await child.generate('ab', { maxTokens: 8, temperature: 1, seed: 8 });
  assert.deepEqual(a1.tokens, a2.tokens, 'same seed, same sample');
  assert.notDeepEqual(a1.tokens, b1.tokens, 'another seed, another sample');
  assert.equal((await child.generate('ab', { maxTokens: 0 })).tokens.length, 0);
});

test('a child that dies rejects pending and later requests; this process carries on', async () => {
  const c = await LlamaCppChild.start(good);
  const pending = c.generate('abc', { maxTokens: 60 });
  process.kill(c.pid!, 'SIGKILL');
  await assert.rejects(pending, (e: Error) => e.message.startsWith(`${good}: generate failed: the llama.cpp child process exited (signal SIGKILL)`));
  await assert.rejects(c.nextLogprobs([1]), /child process exited/);
  assert.equal(c.alive, false);
  await c.close(); // idempotent on a dead child
  assert.ok((await child.nextLogprobs([5])).length === 257, 'other children are unaffected');
});

test('a request that times out stops its child (last: it uses the shared child)', async () => {
  await assert.rejects(child.generate('abc', { maxTokens: 60 }, { timeoutMs: 1 }), /generate timed out after 1 ms \(the child was stopped\)/);
  await assert.rejects(child.tokenize('x'), /an earlier generate timed out/);
  assert.equal(child.alive, false);
});
