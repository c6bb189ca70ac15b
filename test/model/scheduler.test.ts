// Continuous batching (src/model/scheduler.ts, src/model/batch-queue.ts) on tiny random models: rows that join a
// running batch mid-flight, with prompts of different lengths and their own sampling parameters, give what they give
// alone; greedy rows give the tokens of a full forward pass without any cache (an independent reference).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { currentDevice, initEngine } from '../../src/engine/index.js';
import { LM } from '../../src/model/lm.js';
import { ContinuousBatch } from '../../src/model/scheduler.js';
import { BatchQueue, QueueFullError } from '../../src/model/batch-queue.js';
import { InvalidRequestError, type GenerateOptions, type Generation } from '../../src/model/serving.js';
import { byteLevelTokenizerJson, Tokenizer, wordLevelTokenizerJson } from '../../src/formats/tokenizer.js';
import type { Arch } from '../../src/formats/config.js';
import { tinyModel } from '../helpers/model.js';
import { trackLiveBuffers } from '../helpers/live-buffers.js';

await initEngine('wasm');
const byteTok = () => Tokenizer.fromJSON(byteLevelTokenizerJson(), { eos_token: '<|endoftext|>' });

function tinyLM(arch: Arch, seed = 5): LM {
  const { cfg, params } = tinyModel(arch, seed, { vocabSize: 257, eosTokenId: 256, maxPositions: 64 });
  return new LM(cfg, params, byteTok(), 'm');
}

/** Greedy continuation from full forward passes over the whole sequence (no KV cache, no batching). */
async function referenceGreedy(lm: LM, prompt: string, n: number): Promise<{ ids: number[]; logprobs: number[] }> {
  const seq = lm.encode(prompt), ids: number[] = [], logprobs: number[] = [];
  const V = lm.cfg.vocabSize;
  for (let t = 0; t < n; t++) {
    const lg = await lm.logits(seq);
    const row = lg.subarray((seq.length - 1) * V, seq.length * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(row[v]! - row[best]!);
    ids.push(best);
    logprobs.push(-Math.log(sum));
    seq.push(best);
  }
  return { ids, logprobs };
}

/** Runs `plan` through one ContinuousBatch: each entry joins before step `at`. Returns results and batch sizes. */
async function schedule(batch: ContinuousBatch, plan: { at: number; prompt: string; opts: GenerateOptions }[]) {
  const out: Generation[] = [], streamed: string[] = plan.map(() => ''), sizes: number[] = [];
  for (let step = 0; plan.some((_, i) => !out[i]); step++) {
    for (const [i, p] of plan.entries()) {
      if (p.at === step) await batch.add({ prompt: p.prompt, opts: p.opts, onToken: (d) => (streamed[i] += d) }, (g) => (out[i] = g));
    }
    sizes.push(batch.size);
    await batch.step();
    assert.ok(step < 500, 'schedule does not end');
  }
  return { out, streamed, sizes };
}

const close = (a: number[], b: number[], tol: number) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]!) <= tol);

for (const arch of ['llama', 'mistral', 'gpt2'] as Arch[]) {
  test(`${arch}: greedy rows joining mid-batch, prompts of different lengths, give a full forward's tokens`, async () => {
    const lm = tinyLM(arch);
    // Lengths 2, 11, 25 (left-padded to 8, 16, 32 slots); mistral's window is 4, so the window matters here.
    const plan = [
      { at: 0, prompt: 'ab', opts: { maxNewTokens: 14, temperature: 0 } },
      { at: 2, prompt: 'Hello there', opts: { maxNewTokens: 6, temperature: 0 } },
      { at: 3, prompt: 'The quick brown fox jumps', opts: { maxNewTokens: 9, temperature: 0 } },
      { at: 9, prompt: 'xyz', opts: { maxNewTokens: 12, temperature: 0 } }, // joins after a row has left
    ];
    const { out, streamed, sizes } = await schedule(lm.openBatch(4), plan);
    assert.ok(Math.max(...sizes) >= 3, `rows decoded together: ${sizes}`);
    for (const [i, p] of plan.entries()) {
      const want = await referenceGreedy(lm, p.prompt, p.opts.maxNewTokens);
      assert.deepEqual(out[i]!.tokenIds, want.ids, `row ${i}`);
      assert.ok(close(out[i]!.logprobs, want.logprobs, 1e-4), `row ${i} log-probs ${out[i]!.logprobs} vs ${want.logprobs}`);
      assert.equal(out[i]!.finishReason, 'length');
      assert.equal(out[i]!.promptTokens, lm.encode(p.prompt).length);
      assert.equal(streamed[i], out[i]!.text, 'streamed pieces add up to the text');
    }
    lm.dispose();
  });
}

test('seeded sampling: a request gives the same tokens alone and joined mid-flight to rows with other lengths and parameters', async () => {
  const lm = tinyLM('llama', 9);
  const mine = { prompt: 'Seeded prompt', opts: { maxNewTokens: 12, temperature: 0.9, topK: 40, topP: 0.95, seed: 21 } };
  const alone = (await schedule(lm.openBatch(4), [{ at: 0, ...mine }])).out[0]!;
  const joined = await schedule(lm.openBatch(4), [
    { at: 0, prompt: 'a much longer prompt that came first', opts: { maxNewTokens: 20, temperature: 1, seed: 1 } },
    { at: 1, prompt: 'x', opts: { maxNewTokens: 16, temperature: 0 } },
    { at: 3, ...mine },
  ]);
  assert.ok(Math.max(...joined.sizes) === 3);
  const got = joined.out[2]!;
  assert.deepEqual(got.tokenIds, alone.tokenIds);
  assert.ok(close(got.logprobs, alone.logprobs, 1e-5));
  // The same request through the static batch sampler (LM.generate, one row) draws the same tokens too.
  const [viaSampler] = await lm.generate([mine.prompt], mine.opts);
  assert.deepEqual(viaSampler!.tokenIds, alone.tokenIds);
  const other = (await schedule(lm.openBatch(4), [{ at: 0, ...mine, opts: { ...mine.opts, seed: 22 } }])).out[0]!;
  assert.notDeepEqual(other.tokenIds, alone.tokenIds, 'another seed draws differently');
  lm.dispose();
});

test('rows end on their own EOS, stop string and max tokens while the others carry on; a request past the context fails alone', async () => {
  const lm = tinyLM('llama', 3);
  const free = (await schedule(lm.openBatch(4), [{ at: 0, prompt: 'The river', opts: { maxNewTokens: 12, temperature: 0 } }])).out[0]!;
  const eosTok = free.tokenIds[4]!;
  assert.ok(!free.tokenIds.slice(0, 4).includes(eosTok), 'the EOS stand-in does not occur earlier');
  // The same model with that token as EOS (a BatchHost is all a batch needs).
  const host = { cfg: lm.cfg, params: lm.params, eosId: eosTok, programs: lm.programs, encode: (t: string) => lm.encode(t), decodeText: (ids: number[]) => lm.decodeText(ids) };
  const stop = free.text.slice(2, 4);
  assert.ok(stop.length === 2 && !free.text.slice(0, 2).includes(stop) && !stop.includes('\uFFFD'), `usable stop string in ${JSON.stringify(free.text)}`);
  const batch = new ContinuousBatch(host, 4);
  await assert.rejects(
    batch.add({ prompt: 'x'.repeat(60), opts: { maxNewTokens: 10, temperature: 0 } }, () => assert.fail('must not run')),
    (e) => e instanceof InvalidRequestError && /prompt \(60 tokens\) \+ max tokens \(10\) exceed the model's context of 64/.test(e.message),
  );
  const { out } = await schedule(batch, [
    { at: 0, prompt: 'The river', opts: { maxNewTokens: 12, temperature: 0 } },
    { at: 0, prompt: 'The river', opts: { maxNewTokens: 12, temperature: 0, stop: [stop] } },
    { at: 1, prompt: 'The river', opts: { maxNewTokens: 1, temperature: 0 } },
    { at: 1, prompt: 'other words', opts: { maxNewTokens: 3, temperature: 0 } },
  ]);
  assert.deepEqual([out[0]!.finishReason, out[0]!.tokenIds], ['eos', free.tokenIds.slice(0, 5)]);
  assert.equal(out[0]!.text, lm.decodeText(free.tokenIds.slice(0, 4)), 'the EOS token is not text');
  assert.deepEqual([out[1]!.finishReason, out[1]!.text], ['stop', free.text.slice(0, 2)]);
  assert.deepEqual([out[2]!.finishReason, out[2]!.tokenIds], ['length', free.tokenIds.slice(0, 1)]);
  assert.equal(out[3]!.tokenIds.length, 3);
  lm.dispose();
});

test('word-level tokenizer: the continuation keeps the space after the prompt (generate, the batch and its stream)', async () => {
  const words = 'we the people of united states in order to form a more perfect union'.split(' ');
  const tok = Tokenizer.fromJSON(wordLevelTokenizerJson(words), { eos_token: '<eos>', unk_token: '<unk>' });
  const { cfg, params } = tinyModel('llama', 4, { vocabSize: tok.vocabSize, maxPositions: 32 });
  const lm = new LM(cfg, params, tok, 'words');
  const prompt = 'we the people';
  const [g] = await lm.generate([prompt], { maxNewTokens: 4, temperature: 0 });
  const joint = tok.decode([...lm.encode(prompt), ...g!.tokenIds], { skipSpecial: true });
  assert.ok(g!.text.startsWith(' '), JSON.stringify(g!.text));
  assert.equal(prompt + g!.text, joint);
  const { out, streamed } = await schedule(lm.openBatch(2), [{ at: 0, prompt, opts: { maxNewTokens: 4, temperature: 0 } }]);
  assert.equal(out[0]!.text, g!.text);
  assert.ok(streamed[0]!.startsWith(' '));
  lm.dispose();
});

test('BatchQueue: a request admitted while another decodes finishes first; the loop yields between steps; a full queue refuses', async () => {
  const lm = tinyLM('llama', 7);
  const q = new BatchQueue(lm, { maxBatch: 4, maxQueue: 1 });
  const order: string[] = [];
  let ticks = 0, firstPiece!: () => void;
  const started = new Promise<void>((r) => (firstPiece = r));
  const long = q.generate('long one', { maxNewTokens: 40, temperature: 0 }, 'a', () => firstPiece()).then((g) => (order.push('long'), g));
  await started; // the long request is decoding
  const timer = setInterval(() => ticks++, 0);
  const short = await q.generate('short', { maxNewTokens: 3, temperature: 0 }, 'b');
  order.push('short');
  assert.equal(short.tokenIds.length, 3);
  assert.ok(ticks > 0, 'timers ran while the model decoded');
  await long;
  clearInterval(timer);
  assert.deepEqual(order, ['short', 'long'], 'the short request joined the running batch instead of waiting for it');
  assert.ok(q.stats.maxBatchSeen >= 2 && q.stats.steps < 40 + 3, `steps ${q.stats.steps}, most rows ${q.stats.maxBatchSeen}`);

  // maxBatch 1: one decodes, one waits (the queue's one place), the next is refused.
  const q1 = new BatchQueue(lm, { maxBatch: 1, maxQueue: 1 });
  const a = q1.generate('a', { maxNewTokens: 20, temperature: 0 }, 'a');
  while (q1.active === 0) await new Promise((r) => setImmediate(r));
  const b = q1.generate('b', { maxNewTokens: 2, temperature: 0 }, 'b');
  await assert.rejects(q1.generate('c', { maxNewTokens: 2, temperature: 0 }, 'c'), QueueFullError);
  assert.equal((await a).tokenIds.length, 20);
  assert.equal((await b).tokenIds.length, 2);
  lm.dispose();
});

test('a batch frees what it allocates: rows joining, growing the cache, leaving and shrinking leave no live buffer behind', async () => {
  const buffers = await trackLiveBuffers(currentDevice()); // as test/train/losses/leaks.test.ts does
  try {
    const lm = tinyLM('llama', 2);
    const plan = [
      { at: 0, prompt: 'ab', opts: { maxNewTokens: 6, temperature: 0 } },
      { at: 1, prompt: 'a longer prompt here', opts: { maxNewTokens: 30, temperature: 0.7, seed: 1 } }, // grows Tmax
      { at: 2, prompt: 'c', opts: { maxNewTokens: 1, temperature: 0 } }, // ends at its prefill
      { at: 3, prompt: 'de', opts: { maxNewTokens: 3, temperature: 0 } }, // grows the batch to 4 rows, then it shrinks
    ];
    const once = async () => {
      const batch = lm.openBatch(4);
      await schedule(batch, plan);
      assert.equal(batch.size, 0);
      const afterSchedule = buffers.count();
      // Cancelling rows mid-way frees their places too.
      const req = { prompt: 'xy', opts: { maxNewTokens: 20, temperature: 0 } };
      await batch.add({ prompt: 'ab', opts: { maxNewTokens: 20, temperature: 0 } }, () => assert.fail('cancelled'));
      await batch.add(req, () => assert.fail('cancelled'));
      await batch.step();
      batch.cancel(req);
      await batch.step();
      batch.dispose();
      return [afterSchedule, buffers.count()];
    };
    await once(); // compiles every program (a compiled program keeps its constants)
    const before = buffers.count();
    const [afterSchedule, afterCancel] = await once();
    assert.equal(afterSchedule, before, `live buffers after the schedule: ${before} → ${afterSchedule}`);
    assert.equal(afterCancel, before, `after cancel and dispose: ${before} → ${afterCancel}`);
    lm.dispose();
  } finally {
    buffers.restore();
  }
});
