import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { vaderCompound, vaderCompoundBatch, vaderScores } from '../../src/rewards/vader.js';

// The lexicon shipped with the package: word → mean valence.
const lexiconPath = createRequire(import.meta.url).resolve('vader-sentiment/vader_lexicon.txt');
const lexicon = new Map(readFileSync(lexiconPath, 'utf8').split('\n').filter(Boolean).map((l) => {
  const [w, v] = l.split('\t');
  return [w!, Number(v)] as const;
}));

test('signs are obvious on obvious sentences', () => {
  assert.ok(vaderCompound('This is a great and wonderful day for our nation.') > 0.5);
  assert.ok(vaderCompound('A terrible, cruel war brought misery and death.') < -0.5);
  assert.equal(vaderCompound('the committee met on tuesday'), 0);
  assert.equal(vaderCompound(''), 0);
});

test('a single sentiment word scores valence / sqrt(valence² + 15), rounded to 4 places (VADER normalisation)', () => {
  for (const word of ['peace', 'war', 'good', 'terrible', 'freedom', 'prosperous']) {
    const v = lexicon.get(word)!;
    assert.ok(Number.isFinite(v), word);
    const expected = Math.round((v / Math.sqrt(v * v + 15)) * 1e4) / 1e4;
    assert.equal(vaderCompound(`the ${word}`), expected, word);
  }
});

test('matches the reference implementation on its published demo sentences', () => {
  // From the original (Python) vaderSentiment README demo output.
  assert.equal(vaderCompound('VADER is smart, handsome, and funny.'), 0.8316);
  assert.equal(vaderCompound('VADER is not smart, handsome, nor funny.'), -0.7424);
  assert.equal(vaderCompound('VADER is smart, handsome, and funny!'), 0.8439);
  assert.deepEqual(vaderScores('VADER is smart, handsome, and funny.'), { neg: 0, neu: 0.254, pos: 0.746, compound: 0.8316 });
});

test('batch keeps order and equals one-by-one scores', () => {
  const texts = ['great', 'awful', 'the', 'we shall not fail'];
  assert.deepEqual(vaderCompoundBatch(texts), texts.map(vaderCompound));
  assert.throws(() => vaderCompound(undefined as unknown as string), /expected a string/);
});
