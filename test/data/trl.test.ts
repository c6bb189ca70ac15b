// TRL dataset formats, chat templates, the train/eval split, and batching (padding, masks, packing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  detectFormat,
  loadSftDataset,
  loadPreferenceDataset,
  loadPromptDataset,
  loadChatTemplate,
  renderChat,
  sftText,
  preferenceText,
  promptText,
  trainEvalSplit,
  DEFAULT_CHAT_TEMPLATE,
  type SftExample,
  type PreferenceExample,
} from '../../src/data/trl.js';
import { lmBatch, padLeft, pack, pairBatch, ShuffledBatches } from '../../src/data/batching.js';

const dir = mkdtempSync(join(tmpdir(), 'alignlab-trl-'));
const jsonl = (name: string, rows: unknown[]) => {
  const f = join(dir, name);
  writeFileSync(f, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return f;
};
const u = (content: string) => ({ role: 'user', content });
const a = (content: string) => ({ role: 'assistant', content });

// ChatML, as in Qwen2's tokenizer_config.json.
const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

test('detectFormat follows TRL key conventions', () => {
  assert.equal(detectFormat({ text: 'x' }), 'text');
  assert.equal(detectFormat({ prompt: 'p', completion: 'c' }), 'prompt_completion');
  assert.equal(detectFormat({ messages: [] }), 'messages');
  assert.equal(detectFormat({ prompt: 'p', chosen: 'a', rejected: 'b' }), 'preference');
  assert.equal(detectFormat({ prompt: 'p' }), 'prompt');
  assert.equal(detectFormat({ body: 'x' }, 'body'), 'text');
  assert.equal(detectFormat({ foo: 1 }), null);
});

test('SFT, preference and prompt files load in both variants', async () => {
  const sft = await loadSftDataset(jsonl('sft.jsonl', [{ prompt: 'Q1', completion: 'A1' }, { prompt: '', completion: 'A2' }]));
  assert.equal(sft.format, 'prompt_completion');
  assert.equal(sft.conversational, false);
  assert.deepEqual(sft.rows.map((r) => r.line), [1, 2]);
  const conv = await loadSftDataset(jsonl('msgs.jsonl', [{ messages: [u('hi'), a('hello')] }]));
  assert.equal(conv.format, 'messages');
  assert.equal(conv.conversational, true);
  const prefs = await loadPreferenceDataset(jsonl('p.jsonl', [{ prompt: [u('q')], chosen: [a('good')], rejected: [a('bad')], margin: 2 }]));
  assert.equal(prefs.conversational, true);
  assert.equal(prefs.rows[0]!.margin, 2);
  // Prompt-only trainers read prompts out of richer rows and keep other columns.
  const prompts = await loadPromptDataset(jsonl('pr.jsonl', [{ prompt: 'a', chosen: 'x', rejected: 'y' }, { prompt: 'b', completion: 'z', label: 3 }]));
  assert.deepEqual(prompts.rows.map((r) => r.prompt), ['a', 'b']);
  assert.deepEqual(prompts.rows[1]!.extra, { completion: 'z', label: 3 });
});

test('malformed rows: each error names file, line and field', async () => {
  const cases: [unknown[], 'sft' | 'pref', RegExp][] = [
    [[{ prompt: 'p', chosen: 'a', rejected: 'b' }, { prompt: 'p', chosen: 7, rejected: 'b' }], 'pref', /bad0\.jsonl:2: field "chosen" must be a string, got number 7/],
    [[{ prompt: 'p', chosen: 'a', rejected: '' }], 'pref', /bad1\.jsonl:1: field "rejected" must not be empty/],
    [[{ prompt: [u('q')], chosen: 'a', rejected: [a('b')] }], 'pref', /bad2\.jsonl:1: field "chosen" must be a list of messages like "prompt"/],
    [[{ messages: [u('q'), { role: 'assistant' }] }], 'sft', /bad3\.jsonl:1: field "messages\[1\]\.content" must be a string, got nothing/],
    [[{ text: 'a' }, { prompt: 'p', completion: 'c' }], 'sft', /bad4\.jsonl:2: is in the "prompt_completion" format but the file's rows before it are "text"/],
    [[{ text: 'a' }, '{"text": "b"'], 'sft', /bad5\.jsonl:2: is not valid JSON/],
    [[{ chosen: 'a', rejected: 'b' }], 'pref', /bad6\.jsonl:1: field "prompt" is missing \(rows with an implicit prompt/],
    [[{ prompt: 'p', completion: 'c' }], 'pref', /bad7\.jsonl:1: is in the "prompt_completion" format, but this trainer needs preference rows/],
    [[{ foo: 1 }], 'sft', /bad8\.jsonl:1: matches no TRL dataset format \(keys: foo/],
    [[{ prompt: 'p', completion: 'c' }, { prompt: [u('p')], completion: [a('c')] }], 'sft', /bad9\.jsonl:2: is conversational \(lists of messages\) but earlier rows are not/],
    [[{ prompt: 'p', chosen: 'a', rejected: 'b', margin: 'big' }], 'pref', /bad10\.jsonl:1: field "margin" must be a number/],
    [[[1, 2]], 'sft', /bad11\.jsonl:1: must be a JSON object, got a list/],
  ];
  for (const [i, [rows, kind, re]] of cases.entries()) {
    const f = jsonl(`bad${i}.jsonl`, rows);
    await assert.rejects(kind === 'sft' ? loadSftDataset(f) : loadPreferenceDataset(f), re, `case ${i}`);
  }
  await assert.rejects(loadSftDataset(jsonl('empty.jsonl', [])), /empty\.jsonl: has no rows/);
});

test('chat templates: tokenizer_config.json (string, named list, AddedToken) rendered with jinja; conversations split into prompt/completion', () => {
  const m = join(dir, 'model');
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: CHATML, eos_token: { content: '<|im_end|>' } }));
  const tpl = loadChatTemplate(join(dir, 'tokenizer_config.json'))!;
  assert.equal(tpl.eosToken, '<|im_end|>');
  assert.equal(loadChatTemplate(m), null);
  const rendered = renderChat(tpl.template, [u('hi'), a('yo')]);
  assert.equal(rendered, '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n');
  assert.equal(renderChat(tpl.template, [u('hi')], { addGenerationPrompt: true }), '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  // Named templates, and bos_token reaching the template.
  writeFileSync(join(dir, 'tc2.json'), JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: '{{ bos_token }}{{ messages[0].content }}' }], bos_token: '<s>' }));
  const t2 = loadChatTemplate(join(dir, 'tc2.json'))!;
  assert.equal(renderChat(t2.template, [u('x')], { bosToken: t2.bosToken }), '<s>x');

  const ex: SftExample = { kind: 'messages', line: 1, messages: [u('hi'), a('yo')] };
  assert.deepEqual(sftText(ex, tpl), { prompt: '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n', completion: 'yo<|im_end|>\n' });
  // Without a template: the plain default.
  assert.deepEqual(sftText(ex, null), { prompt: 'user: hi\nassistant: ', completion: 'yo\n' });
  assert.equal(renderChat(DEFAULT_CHAT_TEMPLATE, [u('a'), a('b')]), 'user: a\nassistant: b\n');
  const pref: PreferenceExample = { line: 3, prompt: [u('q')], chosen: [a('good')], rejected: [a('bad')] };
  assert.deepEqual(preferenceText(pref, tpl), {
    prompt: '<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n',
    chosen: 'good<|im_end|>\n',
    rejected: 'bad<|im_end|>\n',
  });
  assert.equal(promptText([u('q')], null), 'user: q\nassistant: ');
  assert.equal(promptText('plain', tpl), 'plain');
  // A template whose generation prompt is not a prefix of the conversation cannot split rows.
  assert.throws(() => sftText(ex, { template: "{{ 'X' if add_generation_prompt else 'Y' }}" }, 'f.jsonl'), /f\.jsonl:1: the chat template does not render the prompt as a prefix/);
});

test('trainEvalSplit is seeded, deterministic, disjoint, and keeps file order', () => {
  const rows = Array.from({ length: 100 }, (_, i) => i);
  const s1 = trainEvalSplit(rows, { seed: 3, evalFraction: 0.1 });
  const s2 = trainEvalSplit(rows, { seed: 3, evalFraction: 0.1 });
  const s3 = trainEvalSplit(rows, { seed: 4, evalFraction: 0.1 });
  assert.deepEqual(s1, s2);
  assert.notDeepEqual(s1.eval, s3.eval);
  assert.equal(s1.eval.length, 10);
  assert.equal(s1.train.length, 90);
  assert.deepEqual([...s1.train, ...s1.eval].sort((x, y) => x - y), rows);
  assert.deepEqual(s1.eval, [...s1.eval].sort((x, y) => x - y));
  assert.equal(trainEvalSplit([1, 2, 3], { seed: 1, evalFraction: 0.01 }).eval.length, 1);
  assert.throws(() => trainEvalSplit([1], { seed: 1, evalSize: 1 }), /training set would be empty/);
});

test('lmBatch: right padding, shifted targets, completion-only weights, truncation', () => {
  const b = lmBatch(
    [
      { ids: [5, 6, 7, 8], completionStart: 2 },
      { ids: [9, 10], completionStart: 1 },
    ],
    5,
    { padId: 0, completionOnly: true, rows: 3 },
  );
  assert.deepEqual(Array.from(b.input), [5, 6, 7, 8, 0, 9, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(b.target), [6, 7, 8, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  // Row 0: predictions of tokens 2 and 3 (7, 8) count; row 1: the prediction of token 1 (10).
  assert.deepEqual(Array.from(b.weight), [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(b.valid), [1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(b.lengths, [4, 2, 0]);
  assert.deepEqual(Array.from(b.pos.slice(5, 10)), [0, 1, 2, 3, 4]);
  const full = lmBatch([{ ids: [1, 2, 3, 4, 5, 6], completionStart: 3 }], 4, { padId: 0 });
  assert.deepEqual(Array.from(full.weight), [1, 1, 1, 0]); // completionOnly off: every next token counts
  assert.throws(() => lmBatch([{ ids: [1, 2, 3] }], 2, { padId: 0, overflow: 'error' }), /example 0 has 3 tokens, more than T=2/);
});

test('padLeft puts prompts flush right with per-row positions; pack cuts EOS-joined streams into full blocks', () => {
  const p = padLeft([[1, 2, 3], [4], [5, 6, 7, 8, 9]], 4, 0);
  assert.deepEqual(Array.from(p.ids), [0, 1, 2, 3, 0, 0, 0, 4, 6, 7, 8, 9]);
  assert.deepEqual(Array.from(p.valid), [0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1]);
  assert.deepEqual(Array.from(p.positions), [0, 0, 1, 2, 0, 0, 0, 0, 0, 1, 2, 3]);
  assert.deepEqual(pack([[1, 2], [3, 4, 5], [6, 99]], 3, 99), [
    [1, 2, 99],
    [3, 4, 5],
    [99, 6, 99],
  ]);
  assert.deepEqual(pack([[1, 2, 3]], 3, 99), [[1, 2, 3]]); // the tail [99] is dropped
  const pb = pairBatch([{ prompt: [1, 2, 3, 4], chosen: [7], rejected: [8, 9] }], 6, { padId: 0, maxPromptLength: 2 });
  assert.deepEqual(Array.from(pb.chosen.input), [3, 4, 7, 0, 0, 0]);
  assert.deepEqual(Array.from(pb.chosen.weight), [0, 1, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(pb.rejected.weight), [0, 1, 1, 0, 0, 0]);
});

test('ShuffledBatches: every item once per epoch, new order each epoch, exact replay after restore', () => {
  const items = Array.from({ length: 10 }, (_, i) => i);
  const mk = () => new ShuffledBatches({ items, batchSize: 3, seed: 5, collate: (it: number[]) => ({ batch: it as never, tokens: it.length }) });
  const s = mk();
  const take = (src: ShuffledBatches<number, never>, n: number) => Array.from({ length: n }, () => src.next().batch as unknown as number[]);
  const e0 = take(s, 3), e1 = take(s, 3);
  assert.equal(new Set(e0.flat()).size, 9); // 3 batches of 3, the 10th item dropped
  assert.notDeepEqual(e0, e1);
  const saved = s.state();
  const after = take(s, 5);
  const r = mk();
  r.restore(JSON.parse(JSON.stringify(saved)));
  assert.deepEqual(take(r, 5), after);
  assert.deepEqual(take(mk(), 6), [...e0, ...e1]);
  assert.throws(() => r.restore({ epoch: 'x' }), /bad saved position/);
});
