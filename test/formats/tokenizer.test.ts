import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { Tokenizer, byteLevelTokenizerJson, bytesToUnicode, saveTokenizerFiles, splitWords, wordLevelTokenizerJson } from '../../src/formats/tokenizer.js';
import { tmp } from './helpers.js';

const texts = ['Hello, world!', 'naïve café — 日本語 🦙🦙', '  leading and trailing  ', 'line\nbreak\ttab\r\n', "it's 3.14 $5 (ok)", ''];

test('GPT-2 byte-to-unicode map: 256 distinct printable symbols, printable ASCII maps to itself', () => {
  const m = bytesToUnicode();
  assert.equal(new Set(m).size, 256);
  assert.equal(m[0x41], 'A');
  assert.equal(m[0x20], 'Ġ'); // GPT-2's well-known spelling of a space
  assert.equal(m[0x0a], 'Ċ'); // and of a newline
});

test('byte-level tokenizer: ids are the UTF-8 bytes, text round-trips, specials are single tokens', () => {
  const json = byteLevelTokenizerJson();
  const tok = Tokenizer.fromJSON(json, { eos_token: '<|endoftext|>' });
  assert.equal(tok.vocabSize, 257);
  assert.equal(tok.eosId, 256);
  assert.equal(tok.modelType, 'BPE');
  for (const t of texts) {
    const ids = tok.encode(t);
    assert.deepEqual(ids, [...Buffer.from(t, 'utf-8')], JSON.stringify(t));
    assert.equal(tok.decode(ids), t);
  }
  const ids = tok.encode('a<|endoftext|>b');
  assert.deepEqual(ids, [97, 256, 98]);
  assert.equal(tok.decode(ids, { skipSpecial: true }), 'ab');
  assert.equal(tok.isSpecial(256), true);
  assert.equal(tok.idOf('Ġ'), 32);
  assert.equal(tok.tokenOf(256), '<|endoftext|>');
  assert.equal(tok.decode([]), '');
  // Ids past the vocabulary (a padded embedding's rows) decode to nothing, as HF tokenizers do; negative ids are errors.
  assert.equal(tok.decode([97, 300, 98]), 'ab');
  assert.equal(tok.decode([300]), '');
  assert.throws(() => tok.decode([-1]), /token id -1 is not a token id/);
});

test('byte-level tokenizer.json is a standard file that @huggingface/tokenizers loads directly', () => {
  const json = byteLevelTokenizerJson(['<|endoftext|>', '<|pad|>']);
  // The schema the Rust library writes: every top-level key present, BPE with an (empty) merge list.
  assert.deepEqual(Object.keys(json).sort(), ['added_tokens', 'decoder', 'model', 'normalizer', 'padding', 'post_processor', 'pre_tokenizer', 'truncation', 'version']);
  const model = json.model as Record<string, unknown>;
  assert.equal(model.type, 'BPE');
  assert.deepEqual(model.merges, []);
  assert.equal(Object.keys(model.vocab as object).length, 258);
  const hf = new HFTokenizer(JSON.parse(JSON.stringify(json)), {});
  for (const t of texts.filter((x) => x)) {
    const { ids } = hf.encode(t);
    assert.deepEqual(ids, [...Buffer.from(t, 'utf-8')]);
    assert.equal(hf.decode(ids), t);
  }
  assert.equal(hf.token_to_id('<|pad|>'), 257);
});

test('word-level tokenizer: lower-cases, splits punctuation, maps unknown words to <unk>, decodes readable text', () => {
  const words = ['the', 'cat', 'sat', 'don', 't', "'", '.', ',', '!', '?', 'The' /* duplicate after lower-casing */];
  const json = wordLevelTokenizerJson(words);
  const vocab = (json.model as { vocab: Record<string, number> }).vocab;
  assert.deepEqual(Object.entries(vocab).slice(0, 5), [['<unk>', 0], ['<bos>', 1], ['<eos>', 2], ['<pad>', 3], ['the', 4]]);
  assert.equal(Object.keys(vocab).length, 4 + 10);
  const tok = Tokenizer.fromJSON(json, { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>' });
  assert.equal(tok.vocabSize, 14);
  assert.deepEqual([tok.unkId, tok.bosId, tok.eosId, tok.padId], [0, 1, 2, 3]);
  const ids = tok.encode("The cat sat, don't! The dog?");
  const expected = ['the', 'cat', 'sat', ',', 'don', "'", 't', '!', 'the', '<unk>', '?'].map((w) => vocab[w]);
  assert.deepEqual(ids, expected);
  // HF joins word-level tokens with spaces; clean-up removes them before . , ! ? and inside contractions.
  const tokClean = Tokenizer.fromJSON(json, { clean_up_tokenization_spaces: true });
  assert.equal(tokClean.decode(ids), "the cat sat, don't! the <unk>?");
  assert.equal(tokClean.decode([1, ...tok.encode('The cat.'), 2], { skipSpecial: true }), 'the cat.');
  assert.equal(tok.encode('<bos>the').join(','), '1,4', 'special tokens are matched before lower-casing');
  assert.throws(() => wordLevelTokenizerJson(['two words']), /contains whitespace/);
  assert.throws(() => wordLevelTokenizerJson(['x'], []), /at least one special token/);
});

test('splitWords is exactly what the word-level tokenizer sees', () => {
  const text = 'Hello, World! Don\'t stop... $5 (e-mail) "quoted"';
  const words = splitWords(text);
  assert.deepEqual(words, ['hello', ',', 'world', '!', 'don', "'", 't', 'stop', '.', '.', '.', '$', '5', '(', 'e', '-', 'mail', ')', '"', 'quoted', '"']);
  // A vocabulary built from these words encodes the text with no <unk>.
  const tok = Tokenizer.fromJSON(wordLevelTokenizerJson(words));
  const ids = tok.encode(text);
  assert.equal(ids.length, words.length);
  assert.ok(!ids.includes(0));
  assert.deepEqual(ids.map((i) => tok.tokenOf(i)), words);
});

test('saveTokenizerFiles + fromDir: config keys, special ids, chat template; files load in @huggingface/tokenizers', async () => {
  const dir = tmp('tok');
  const template = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
  await saveTokenizerFiles(dir, wordLevelTokenizerJson(['hi', 'there']), { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', model_max_length: 128, chat_template: template });
  const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf-8'));
  assert.equal(cfg.model_max_length, 128);
  assert.equal(cfg.chat_template, template);
  assert.equal(cfg.tokenizer_class, 'PreTrainedTokenizerFast');
  assert.equal(cfg.unk_token, '<unk>');
  assert.equal(cfg.clean_up_tokenization_spaces, true);
  const tok = await Tokenizer.fromDir(dir);
  assert.deepEqual([tok.bosId, tok.eosId, tok.padId, tok.unkId], [1, 2, 3, 0]);
  assert.equal(tok.chatTemplate, template);
  assert.equal(tok.decode(tok.encode('Hi there, you')), 'hi there <unk> <unk>');
  const hf = new HFTokenizer(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf-8')), cfg);
  assert.deepEqual(hf.encode('hi there').ids, [4, 5]);

  const bdir = tmp('tokb');
  await saveTokenizerFiles(bdir, byteLevelTokenizerJson(), { eos_token: '<|endoftext|>' });
  const b = await Tokenizer.fromDir(bdir);
  assert.equal(JSON.parse(readFileSync(join(bdir, 'tokenizer_config.json'), 'utf-8')).clean_up_tokenization_spaces, false);
  assert.equal(b.decode(b.encode('a . b ,c')), 'a . b ,c', 'byte-level text is never "cleaned up"');
  assert.equal(b.chatTemplate, undefined);
});

test('fromDir errors name the directory or file', async () => {
  const dir = tmp('tokerr');
  await assert.rejects(Tokenizer.fromDir(dir), (e: Error) => e.message === `${join(dir, 'tokenizer.json')}: missing (the model directory ${dir} has no tokenizer.json)`);
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
  await assert.rejects(Tokenizer.fromDir(dir), (e: Error) => e.message.startsWith(`${join(dir, 'tokenizer.json')}: is not valid JSON`));
  writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
  await assert.rejects(Tokenizer.fromDir(dir), (e: Error) => e.message.startsWith(`${join(dir, 'tokenizer.json')}: field "model" is missing`));
  const d2 = join(dir, 'sub');
  mkdirSync(d2);
  writeFileSync(join(d2, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson()));
  writeFileSync(join(d2, 'tokenizer_config.json'), JSON.stringify({ eos_token: '</s>' }));
  await assert.rejects(Tokenizer.fromDir(d2), /tokenizer_config field "eos_token" names "<\/s>", which is not in the vocabulary/);
});
