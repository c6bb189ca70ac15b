import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildVocab, detokenize, encode, loadSotu, loadSpeeches, makePrompts, sentenceTokens, sotuCacheKey, splitSentences, splitSpeeches,
  tokenizeWords, vocabIndex, UNK,
} from '../../src/data/sotu.js';
import { Tokenizer, wordLevelTokenizerJson } from '../../src/formats/tokenizer.js';

test('sentence splitting keeps abbreviations and initials inside sentences', () => {
  assert.deepEqual(splitSentences('Mr. Speaker, I thank you. John F. Kennedy spoke in St. Louis! Did the U.S. Navy agree? "Yes." It did.'), [
    'Mr. Speaker, I thank you.',
    'John F. Kennedy spoke in St. Louis!',
    'Did the U.S. Navy agree?',
    '"Yes."',
    'It did.',
  ]);
  assert.deepEqual(splitSentences('In 1790. the end'), ['In 1790. the end']); // no capital after: not a boundary
});

test('word tokenizer: the study tokenizer.json\'s own split (Lowercase + BertPreTokenizer): every punctuation mark is a token', () => {
  assert.deepEqual(tokenizeWords('The Nation’s strength—don\'t doubt it! (about 3%)'),
    ['the', 'nation', '’', 's', 'strength', '—', 'don', "'", 't', 'doubt', 'it', '!', '(', 'about', '3', '%', ')']);
  assert.deepEqual(tokenizeWords('Café\u0002 naïve'), ['café', 'naïve']);
  // Clitics split at the apostrophe are glued back for the gold reward (VADER reads "won't", not "won ' t").
  assert.equal(detokenize(tokenizeWords("We won't fail, and the nation's hope (ours) grows!")), "we won't fail, and the nation's hope (ours) grows!");
  assert.equal(detokenize(['the', "'", 'people', "'", 's', 'will']), "the ' people's will");
});

test('the corpus split and the study tokenizer.json give the same tokens', () => {
  const text = 'The Nation’s strength—don\'t doubt it! (about 3%) U.S. $5,000';
  const words = tokenizeWords(text);
  const tok = Tokenizer.fromJSON(wordLevelTokenizerJson(words), {});
  assert.deepEqual(tok.encode(text, { addSpecial: false }).map((i) => tok.tokenOf(i)), words);
});

test('vocabulary: specials first, all punctuation, then top-N words with alphabetical tie-break', () => {
  const v = buildVocab([['b', 'a', ',', 'b'], ['c', 'a', '.', 'd']], 2);
  assert.deepEqual(v, ['<unk>', '<bos>', '<eos>', '<pad>', ',', '.', 'a', 'b']);
  assert.deepEqual(encode(['a', 'zzz', '.'], vocabIndex(v)), [6, UNK, 5]);
});

test('speech split is deterministic, disjoint and complete; salt and year split change it', () => {
  const speeches = loadSpeeches();
  assert.equal(speeches.length, 233);
  assert.equal(new Set(speeches.map((s) => s.id)).size, 233);
  const a = splitSpeeches(speeches), b = splitSpeeches(speeches);
  assert.deepEqual(a.heldOut.map((s) => s.id), b.heldOut.map((s) => s.id));
  const tr = new Set(a.train.map((s) => s.id));
  assert.ok(a.heldOut.every((s) => !tr.has(s.id)));
  assert.equal(a.train.length + a.heldOut.length, 233);
  assert.ok(a.heldOut.length >= 10 && a.heldOut.length <= 40, `held out ${a.heldOut.length}`);
  assert.notDeepEqual(splitSpeeches(speeches, { splitSalt: 'x' }).heldOut.map((s) => s.id), a.heldOut.map((s) => s.id));
  const y = splitSpeeches(speeches, { splitBy: 'year', heldOutFromYear: 2001 });
  assert.ok(y.heldOut.length > 0 && y.heldOut.every((s) => s.year >= 2001) && y.train.every((s) => s.year < 2001));
});

test('makePrompts: prefix lengths, in-vocabulary prefixes, no duplicates, stable order', () => {
  const sents = [
    { speechId: 's', index: 0, tokens: 'we must work together to build a stronger nation .'.split(' ') },
    { speechId: 's', index: 1, tokens: 'we must work together to build a stronger nation .'.split(' ') },
    { speechId: 's', index: 2, tokens: 'too short .'.split(' ') },
    { speechId: 's', index: 3, tokens: ', starts with a comma and goes on for a while .'.split(' ') },
  ];
  const vocab = [...new Set(sents.flatMap((s) => s.tokens))];
  const p = makePrompts(sents, vocab);
  assert.equal(p.length, 1);
  assert.ok(p[0]!.prefix.length >= 4 && p[0]!.prefix.length <= 6);
  assert.deepEqual([...p[0]!.prefix, ...p[0]!.reference], sents[0]!.tokens);
  assert.equal(makePrompts(sents, vocab.filter((t) => t !== 'must')).length, 0); // prefix with an unknown word
});

test('the processed corpus: disjoint splits, prompts from the right split, coverage recomputed, cache reused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'alignlab-sotu-'));
  try {
    const t0 = Date.now();
    const c = loadSotu(dir, { vocabSize: 4000 });
    const t1 = Date.now();
    assert.equal(c.fromCache, false);
    assert.equal(c.train.speechIds.length + c.heldOut.speechIds.length, 233);
    const trainIds = new Set(c.train.speechIds), heldIds = new Set(c.heldOut.speechIds);
    assert.ok(c.heldOut.speechIds.every((id) => !trainIds.has(id)));
    assert.ok(c.prompts.heldOut.length === 512 && c.prompts.heldOut.every((p) => heldIds.has(p.speechId)));
    assert.ok(c.prompts.train.length === 4096 && c.prompts.train.every((p) => trainIds.has(p.speechId)));
    assert.equal(new Set(c.prompts.heldOut.map((p) => p.text)).size, c.prompts.heldOut.length);
    assert.ok(c.prompts.heldOut.every((p) => p.prefix.length >= 4 && p.prefix.length <= 6));

    // Vocabulary recomputed here from the cached training sentences with a plain count.
    const trainSents = sentenceTokens(c.train);
    const counts = new Map<string, number>();
    for (const s of trainSents) for (const t of s) counts.set(t, (counts.get(t) ?? 0) + 1);
    const words = [...counts].filter(([t]) => /[\p{L}\p{N}]/u.test(t)).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 4000).map(([t]) => t);
    assert.deepEqual(new Set(c.vocab.filter((t) => /[\p{L}\p{N}]/u.test(t) && !t.startsWith('<'))), new Set(words));
    assert.equal(c.vocab.length, 4 + 4000 + [...counts.keys()].filter((t) => !/[\p{L}\p{N}]/u.test(t)).length);

    // Coverage recomputed here: share of held-out running tokens that are in the vocabulary.
    const inVocab = new Set(c.vocab);
    let hit = 0, total = 0;
    for (const s of sentenceTokens(c.heldOut)) for (const t of s) {
      total++;
      if (inVocab.has(t)) hit++;
    }
    console.log(`SOTU: ${c.train.speechIds.length} train / ${c.heldOut.speechIds.length} held-out speeches, ${c.train.tokens} / ${c.heldOut.tokens} tokens, vocab ${c.vocab.length}; held-out coverage ${(100 * hit / total).toFixed(2)}% (train ${(100 * c.coverage.train).toFixed(2)}%); ${(t1 - t0)} ms to process`);
    assert.equal(total, c.heldOut.tokens);
    assert.equal(c.coverage.heldOut, hit / total);
    assert.ok(hit / total > 0.9 && hit / total < 0.97, `coverage ${hit / total}`);

    const t2 = Date.now();
    const again = loadSotu(dir, { vocabSize: 4000 });
    console.log(`SOTU cache load ${Date.now() - t2} ms`);
    assert.equal(again.fromCache, true);
    assert.deepEqual({ ...again, fromCache: false }, c);
    assert.notEqual(sotuCacheKey({ vocabSize: 2000 }), sotuCacheKey({ vocabSize: 4000 }));
    assert.equal(sotuCacheKey({}), sotuCacheKey({ vocabSize: 4000 })); // defaults resolve to the same key

    writeFileSync(c.cacheFile!, '{"key": "trunc');
    assert.throws(() => loadSotu(dir, { vocabSize: 4000 }), (e: Error) => e.message.startsWith(`${c.cacheFile}: corrupt SOTU cache`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
