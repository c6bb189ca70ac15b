// Our GGUF export, run by llama.cpp (node-llama-cpp in a child process), against an independent float64
// forward pass that follows transformers' modeling code on the HF-layout weights. Agreement to ~1e-6 checks
// tensor names, transposes, the RoPE permutation, GQA head grouping, Qwen2 biases and Mixtral routing.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeGGUF } from '../../src/formats/gguf.js';
import { Tokenizer, byteLevelTokenizerJson, splitWords, wordLevelTokenizerJson, type TokenizerJson } from '../../src/formats/tokenizer.js';
import { LlamaCppChild } from '../../src/eval/providers/llamacpp.js';
import { tinyConfig, type ModelConfig } from '../../src/formats/config.js';
import type { HostParams } from '../../src/engine/tree.js';
import { maxAbsDiff, randomParams, referenceNextLogprobs, tmp } from './helpers.js';

const dir = tmp('llamacpp-parity');
const tokenizerJson = byteLevelTokenizerJson();
const tokenizerConfig = { eos_token: '<|endoftext|>' };
const tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
const prompts = ['a', 'Hello, wörld', 'The quick brown fox'];
const TOL = 1e-4; // measured ~1e-6 with llama.cpp's f32 KV cache

interface Case {
  label: string;
  config: ModelConfig;
  params: HostParams;
  tokenizerJson: TokenizerJson;
  tokenizer: Tokenizer;
  prompts: string[];
  child?: LlamaCppChild;
}

const vocabSize = 272; // 257 tokens + 15 unused, as a padded vocabulary would be
const cases: Case[] = [
  ['llama-gqa-tied', tinyConfig('llama', { vocabSize, numKvHeads: 2, tieEmbeddings: true })],
  ['qwen2-gqa', tinyConfig('qwen2', { vocabSize, numKvHeads: 2 })],
  ['mixtral', tinyConfig('mixtral', { vocabSize, numKvHeads: 2 })],
  ['gpt2', tinyConfig('gpt2', { vocabSize })],
].map(([label, config], i) => ({
  label: label as string,
  config: config as ModelConfig,
  params: randomParams(config as ModelConfig, 100 + i),
  tokenizerJson,
  tokenizer,
  prompts,
}));

// A word-level model (the study's kind): exported as a llama.cpp WordPiece vocabulary, it must tokenize exactly
// as our WordLevel tokenizer does, unknown words, case, punctuation and special tokens included.
const corpus = "The President said: we don't stop. America's future, (our) hope -- 1945 & $5! Über café?";
const wordJson = wordLevelTokenizerJson([...new Set(splitWords(corpus))].filter((w) => w !== 'hope'));
const wordTok = Tokenizer.fromJSON(wordJson, { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>' });
const wordCfg = tinyConfig('llama', { vocabSize: wordTok.vocabSize + 3, numKvHeads: 2 });
cases.push({
  label: 'llama-word-level',
  config: wordCfg,
  params: randomParams(wordCfg, 200),
  tokenizerJson: wordJson,
  tokenizer: wordTok,
  prompts: [corpus, 'the president said hope', "DON'T stop!!", '  spaces\tand\nnewlines  ', 'unknownword, the.', '<bos>the'],
});

before(async () => {
  // Start the children together: most of a start is node-llama-cpp checking its binary, not our model.
  await Promise.all(
    cases.map(async (c) => {
      const path = join(dir, `${c.label}.gguf`);
      writeGGUF(path, { config: c.config, params: c.params, tokenizerJson: c.tokenizerJson, tokenizerConfig: c.tokenizer.config });
      c.child = await LlamaCppChild.start(path, { threads: 1 });
    }),
  );
});

after(async () => {
  await Promise.all(cases.map((c) => c.child?.close()));
});

for (const c of cases) {
  test(`${c.label}: llama.cpp next-token log-probs match the reference forward pass within ${TOL}`, async () => {
    const child = c.child!;
    assert.equal(child.info.vocabSize, c.config.vocabSize);
    assert.equal(child.info.arch, c.config.arch === 'gpt2' ? 'gpt2' : c.config.arch === 'qwen2' ? 'qwen2' : 'llama');
    for (const text of c.prompts) {
      const ids = c.tokenizer.encode(text);
      assert.deepEqual(await child.tokenize(text, { special: true }), ids, `llama.cpp tokenizes ${JSON.stringify(text)} as we do`);
      const got = await child.nextLogprobs(ids);
      assert.equal(got.length, c.config.vocabSize);
      assert.ok(got.every(Number.isFinite), 'finite log-probs over the full vocabulary');
      // ggml's CPU GELU goes through an fp16 table; the reference reproduces that rounding for gpt2.
      const want = referenceNextLogprobs(c.config, c.params, ids, { ggmlGelu: c.config.arch === 'gpt2' });
      const diff = maxAbsDiff(got, want);
      assert.ok(diff < TOL, `${c.label} "${text}": max |Δ log p| = ${diff}`);
    }
  });
}

test('greedy generation follows the reference argmax chain (KV-cache decoding in llama.cpp)', async () => {
  const c = cases[0];
  const prompt = c.tokenizer.encode('Hi there');
  const seq = [...prompt];
  for (let i = 0; i < 6; i++) {
    const lp = referenceNextLogprobs(c.config, c.params, seq);
    seq.push(lp.indexOf(Math.max(...lp)));
  }
  const g = await c.child!.generate(prompt, { maxTokens: 6 });
  assert.deepEqual(g.tokens, seq.slice(prompt.length));
  assert.equal(g.finishReason, 'length');
  assert.equal(g.promptTokens, prompt.length);
  assert.ok(g.seconds > 0);
  // The same call again reuses the cached prompt and must give the same answer.
  assert.deepEqual((await c.child!.generate(prompt, { maxTokens: 6 })).tokens, g.tokens);
});

// Our own decoder (src/model/decoder.ts, float32 on the engine) against llama.cpp on the same exported file:
// the check the foundation issue asks for. GPT-2 is compared with the float64 reference instead, because
// llama.cpp's GELU goes through an fp16 table (≈5e-4); every llama-family case is compared with llama.cpp.
const { initEngine, takeF32, free } = await import('../../src/engine/index.js');
const { toDevice } = await import('../../src/model/weights.js');
const { forward } = await import('../../src/model/decoder.js');
const { padBatch } = await import('../helpers/model.js');

async function ourNextLogprobs(c: Case, ids: number[]): Promise<Float64Array> {
  const params = toDevice(c.params);
  const b = padBatch([ids], ids.length, 'right');
  const logits = await takeF32(forward(params, c.config, b.ids, b.pos, b.valid));
  free([params, b.ids, b.pos, b.valid]);
  const V = c.config.vocabSize, row = logits.subarray((ids.length - 1) * V, ids.length * V);
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
  return Float64Array.from(row, (x) => x - lse);
}

for (const c of cases) {
  const against = c.config.arch === 'gpt2' ? 'the float64 reference' : 'llama.cpp';
  test(`${c.label}: our decoder's next-token log-probs match ${against} within ${TOL}`, async () => {
    await initEngine('wasm');
    for (const text of c.prompts) {
      const ids = c.tokenizer.encode(text);
      if (ids.length === 0) continue;
      const ours = await ourNextLogprobs(c, ids);
      const theirs = c.config.arch === 'gpt2' ? referenceNextLogprobs(c.config, c.params, ids) : await c.child!.nextLogprobs(ids);
      const diff = maxAbsDiff(ours, theirs);
      assert.ok(diff < TOL, `${c.label} "${text}": max |Δ log p| ours vs ${against} = ${diff}`);
    }
  });
}
