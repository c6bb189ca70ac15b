// The interpolated Kneser–Ney n-gram (the study's independent fluency model and the base policy's baseline):
// a proper distribution at every history, the textbook numbers on a corpus small enough to count by hand,
// and tuning that only ever lowers the validation loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KneserNey, tuneKneserNey } from '../../../src/eval/metrics/ngram.js';

const BOS = 1, V = 6;
// ids: 0 unk, 1 bos, 2 eos, 3 "a", 4 "b", 5 "c"
const CORPUS = [[BOS, 3, 4, 2], [BOS, 3, 5, 2], [BOS, 4, 4, 2]];

test('P(· | history) sums to 1 over the vocabulary, for seen and unseen histories, orders 1–3', () => {
  for (const order of [1, 2, 3]) {
    const m = new KneserNey(CORPUS, { order, vocabSize: V, bosId: BOS, discounts: Array(order).fill(0.6) });
    for (const h of [[BOS], [BOS, 3], [3, 4], [5, 5], [0]]) {
      let s = 0;
      for (let w = 0; w < V; w++) s += m.prob(h, w);
      assert.ok(Math.abs(s - 1) < 1e-12, `order ${order}, history [${h}]: sum ${s}`);
    }
  }
});

test('bigram probabilities match the interpolated Kneser–Ney formula counted by hand', () => {
  const D = [0.5, 0.7]; // unigram level, bigram level
  const m = new KneserNey(CORPUS, { order: 2, vocabSize: V, bosId: BOS, discounts: D });
  // Predicted bigrams: (bos,a) (a,b) (b,eos) | (bos,a) (a,c) (c,eos) | (bos,b) (b,b) (b,eos).
  // Unigram level = continuation counts, the number of distinct tokens seen before w (<bos> included):
  // a: {bos} = 1, b: {a, bos, b} = 3, c: {a} = 1, eos: {b, c} = 2; total 7 over 4 types.
  const uni: Record<number, number> = { 3: 1, 4: 3, 5: 1, 2: 2 };
  const total = 7, types = 4;
  const pUni = (w: number) => Math.max((uni[w] ?? 0) - D[0]!, 0) / total + (D[0]! * types / total) / V;
  // Bigram level after "a": raw counts a→b 1, a→c 1: A = 2, T = 2.
  const pAfterA = (w: number) => Math.max((w === 4 || w === 5 ? 1 : 0) - D[1]!, 0) / 2 + (D[1]! * 2 / 2) * pUni(w);
  for (const w of [0, 2, 3, 4, 5]) assert.ok(Math.abs(m.prob([3], w) - pAfterA(w)) < 1e-12, `P(${w} | a) = ${m.prob([3], w)} ≠ ${pAfterA(w)}`);
  // A history never seen (c→?: c is only followed by eos, so "c" is seen; use unk) falls back to the unigram level.
  for (const w of [2, 4]) assert.ok(Math.abs(m.prob([0], w) - pUni(w)) < 1e-12);
  // score() = mean −log P over every token after the first of each sentence.
  const s = m.score([[BOS, 3, 4, 2]]);
  assert.equal(s.tokens, 3);
  assert.ok(Math.abs(s.nats - -(Math.log(m.prob([BOS], 3)) + Math.log(m.prob([3], 4)) + Math.log(m.prob([4], 2)))) < 1e-12);
});

test('tuning on a validation split lowers its loss below the default discounts, and a trigram beats a bigram on a second-order source', () => {
  // Source: the next token depends on the two before it (a deterministic pattern with 10% noise).
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const sentence = () => {
    const s = [BOS, 3 + Math.floor(rand() * 3), 3 + Math.floor(rand() * 3)];
    for (let i = 0; i < 12; i++) s.push(rand() < 0.9 ? 3 + ((s.at(-1)! + s.at(-2)!) % 3) : 3 + Math.floor(rand() * 3));
    return [...s, 2];
  };
  const train = Array.from({ length: 400 }, sentence), valid = Array.from({ length: 100 }, sentence);
  const t = tuneKneserNey(train, valid, { orders: [2, 3], vocabSize: V, bosId: BOS });
  const byOrder = Object.fromEntries(t.byOrder.map((b) => [b.order, b.validLoss]));
  assert.equal(t.order, 3);
  assert.ok(byOrder[3]! < byOrder[2]! - 0.2, `trigram ${byOrder[3]} vs bigram ${byOrder[2]}`);
  const plain = new KneserNey(train, { order: 3, vocabSize: V, bosId: BOS }).score(valid).perToken;
  assert.ok(t.validLoss <= plain, `tuned ${t.validLoss} vs default ${plain}`);
  assert.ok(Math.abs(t.model.score(valid).perToken - t.validLoss) < 1e-9, 'the returned model carries the tuned discounts');
});

test('bad input fails with a clear message', () => {
  assert.throws(() => new KneserNey([[BOS, 9]], { order: 2, vocabSize: V, bosId: BOS }), /sentence 0: id 9 at position 2 is outside \[0, 6\)/);
  assert.throws(() => new KneserNey(CORPUS, { order: 2, vocabSize: V, bosId: BOS, discounts: [0.5, 1.2] }), /need 2 discounts in \(0, 1\)/);
  assert.throws(() => tuneKneserNey(CORPUS, [], { orders: [2], vocabSize: V, bosId: BOS }), /validation split is empty/);
});
