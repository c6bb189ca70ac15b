// The local: and gguf: providers on one tiny random llama (from `alignlab init`, given a chat template) and
// its GGUF export: the same requests through our engine and through llama.cpp, options, errors, LM's
// scorePrompt/decode (the server's exact echo scoring), and a corrupt GGUF through the CLI.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main as initMain } from '../../../src/cli/init.js';
import { loadHFDir } from '../../../src/formats/hf.js';
import { writeGGUF } from '../../../src/formats/gguf.js';
import { createProvider } from '../../../src/eval/registry.js';
import { chatPrompt, type GgufProvider } from '../../../src/eval/providers/gguf.js';
import { fitPrompt, type LocalProvider } from '../../../src/eval/providers/local.js';
import type { ChatMessage } from '../../../src/eval/providers/types.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const TEMPLATE =
  "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

let d: string, dir: string, file: string;
let local: LocalProvider;
let gguf: GgufProvider;
const warnings: string[] = [];

before(async () => {
  d = mkdtempSync(join(tmpdir(), 'alignlab-providers-'));
  dir = join(d, 'tiny');
  file = join(d, 'tiny.gguf');
  const log = console.log;
  console.log = () => {};
  try {
    await initMain(['--arch', 'llama', '--out', dir, '--layers', '2', '--hidden', '32', '--heads', '2', '--context', '128', '--seed', '11']);
  } finally {
    console.log = log;
  }
  const tcFile = join(dir, 'tokenizer_config.json');
  writeFileSync(tcFile, JSON.stringify({ ...JSON.parse(readFileSync(tcFile, 'utf8')), chat_template: TEMPLATE }));
  const m = await loadHFDir(dir);
  writeGGUF(file, { config: m.config, params: m.params, tokenizerJson: m.tokenizer!.json, tokenizerConfig: m.tokenizer!.config });
  local = (await createProvider(`local:${dir}`, { config: { max_batch: 4, warn: (l: string) => warnings.push(l) } })) as LocalProvider;
  gguf = (await createProvider(`gguf:${file}`, { config: { threads: 1, warn: (l: string) => warnings.push(l) } })) as GgufProvider;
});

after(async () => {
  await Promise.allSettled([local?.close(), gguf?.close()]);
  rmSync(d, { recursive: true, force: true });
});

const strip = (s: string) => s.replace(/\uFFFD/g, '');

test('greedy completions: llama.cpp on the export gives our engine\'s tokens, for prompts and for chat', async () => {
  const chat: ChatMessage[] = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Name a river.' },
  ];
  // The GGUF carries the tokenizer's chat template; both sides render the same prompt.
  assert.equal(chatPrompt(gguf.header, chat), local.lm.applyChatTemplate(chat));
  assert.equal(chatPrompt(gguf.header, chat), '<|system|>Be brief.<|endoftext|><|user|>Name a river.<|endoftext|><|assistant|>');
  const reqs = [{ prompt: 'The river' }, { prompt: 'Once upon a time' }, { messages: chat }];
  for (const r of reqs) {
    const a = await local.complete({ ...r, maxTokens: 12, temperature: 0 });
    const b = await gguf.complete({ ...r, maxTokens: 12, temperature: 0 });
    assert.equal(a.completionTokens, 12);
    assert.equal(b.completionTokens, 12);
    assert.equal(strip(b.text), strip(a.text), JSON.stringify(r));
    assert.equal(a.finishReason, 'length');
    assert.equal(a.logprobs!.length, 12);
  }
});

test('local: concurrent requests are batched and answer as they would alone; seeds reproduce; stop strings cut', async () => {
  // Prompts of different lengths (1 to 27 byte tokens), so rows sit behind different amounts of left padding.
  const prompts = ['I', 'Item 1:', 'A longer item, number two:', 'Q', 'The fourth one', 'and the very last item here:'];
  const alone = [];
  for (const p of prompts) alone.push((await local.complete({ prompt: p, maxTokens: 8, temperature: 0 })).text);
  assert.equal(local.queue.stats.maxBatchSeen, 1, 'one at a time so far');
  const r0 = local.queue.stats.rows;
  const together = await Promise.all(prompts.map((p) => local.complete({ prompt: p, maxTokens: 8, temperature: 0 })));
  assert.deepEqual(together.map((t) => t.text), alone);
  assert.equal(local.queue.stats.rows - r0, 6);
  assert.ok(local.queue.stats.maxBatchSeen >= 2 && local.queue.stats.maxBatchSeen <= 4, `rows decoded together (max_batch 4): ${local.queue.stats.maxBatchSeen}`);
  // And against llama.cpp on the same export: each prompt's greedy text, whatever it shared its steps with.
  for (const [i, p] of prompts.entries()) assert.equal(strip((await gguf.complete({ prompt: p, maxTokens: 8, temperature: 0 })).text), strip(together[i]!.text), p);

  const s = (seed: number) => local.complete({ prompt: 'Seeded', maxTokens: 10, temperature: 1, seed });
  const [a, busy, b] = await Promise.all([s(5), local.complete({ prompt: 'noise', maxTokens: 10, temperature: 1, seed: 9 }), s(5)]);
  assert.equal(a.text, b.text, 'same seed, same text, whatever else is in flight');
  assert.notEqual((await s(6)).text, a.text, 'another seed, another text');
  assert.notEqual(busy.text, a.text);

  // Stop at a character of the greedy answer that does not occur before it: both providers cut just before it.
  const t = (await local.complete({ prompt: 'The river', maxTokens: 12, temperature: 0 })).text;
  const k = [...t].findIndex((c, i) => i > 0 && c !== '\uFFFD' && !t.slice(0, i).includes(c));
  assert.ok(k > 0, `no usable stop character in ${JSON.stringify(t)}`);
  for (const p of [local, gguf]) {
    const cut = await p.complete({ prompt: 'The river', maxTokens: 12, temperature: 0, stop: [t[k]!] });
    assert.equal(cut.finishReason, 'stop', p.id);
    assert.equal(strip(cut.text), strip(t.slice(0, k)), p.id);
  }
  assert.deepEqual(await local.complete({ prompt: 'x', maxTokens: 0 }), { text: '', finishReason: 'length', completionTokens: 0, latencyMs: 0 });
});

test('prompts longer than the context are cut from the left (once reported) and still answered', async () => {
  assert.deepEqual(fitPrompt([1, 2, 3, 4, 5], 3), [3, 4, 5]);
  assert.deepEqual(fitPrompt([1, 2], 3), [1, 2]);
  assert.deepEqual(fitPrompt([1, 2], 0), [2]);
  const long = 'word '.repeat(60); // 300 byte tokens, context 128
  const a = await local.complete({ prompt: long, maxTokens: 8, temperature: 0 });
  const b = await gguf.complete({ prompt: long, maxTokens: 8, temperature: 0 });
  assert.equal(a.promptTokens, 120);
  assert.equal(b.promptTokens, 120);
  assert.equal(strip(b.text), strip(a.text));
  const big = await local.complete({ prompt: 'hi', maxTokens: 500, temperature: 0 });
  assert.ok(big.completionTokens! <= 127 && big.completionTokens! > 0);
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings[0]!, /^local:.*: a prompt of 300 tokens was cut to its last 120 \(the model has 128 positions\)/);
  assert.match(warnings[1]!, /^gguf:.*: a prompt of 300 tokens was cut to its last 120 \(context size 128; option context_size\)/);
});

test('loglikelihood: gguf (llama.cpp) matches local, which matches the server\'s exact echo scoring (LM.scorePrompt)', async () => {
  const reqs = [
    { context: 'The sky is', continuation: ' blue' },
    { context: 'The sky is', continuation: ' green' },
    { context: 'héllo', continuation: ' wörld ✓' },
    { context: '', continuation: 'start' },
  ];
  const a = await local.loglikelihood(reqs);
  const b = await gguf.loglikelihood(reqs);
  for (const [i, r] of reqs.entries()) {
    assert.equal(a[i]!.tokens, Buffer.byteLength(r.continuation), 'byte-level: one token per byte');
    assert.equal(b[i]!.tokens, a[i]!.tokens);
    assert.ok(Math.abs(a[i]!.logprob - b[i]!.logprob) < 1e-3, `${i}: ${a[i]!.logprob} vs ${b[i]!.logprob}`);
    assert.equal(b[i]!.isGreedy, a[i]!.isGreedy);
  }
  // A continuation made of the model's own greedy tokens is greedy on both sides (the ASCII ones: a random
  // byte-level model also emits partial UTF-8, which does not survive a round trip through text).
  let checked = 0;
  for (const context of ['The sky is', 'The river', 'Hello', 'The cat sat', 'x']) {
    const [g] = await local.lm.generate([context], { maxNewTokens: 4, temperature: 0 });
    const firstNonAscii = g!.tokenIds.findIndex((id) => id >= 128);
    const ascii = firstNonAscii < 0 ? g!.tokenIds : g!.tokenIds.slice(0, firstNonAscii);
    if (ascii.length === 0) continue;
    const continuation = String.fromCharCode(...ascii);
    const [x] = await local.loglikelihood([{ context, continuation }]);
    const [y] = await gguf.loglikelihood([{ context, continuation }]);
    assert.ok(x!.isGreedy && y!.isGreedy, `${context} + ${JSON.stringify(continuation)}`);
    const want = g!.logprobs.slice(0, ascii.length).reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(x!.logprob - want) < 1e-4, `scoring agrees with generation: ${x!.logprob} vs ${want}`);
    checked++;
  }
  assert.ok(checked >= 2, `greedy continuations checked: ${checked}`);

  // scorePrompt: the span of the continuation sums to scoreContinuation; token texts add up to the text.
  const lm = local.lm;
  const text = 'héllo wörld ✓';
  const sp = await lm.scorePrompt(text, 5);
  assert.equal(sp.tokenStrings.join(''), text);
  assert.equal(sp.tokenLogprobs[0], null, 'no BOS: nothing predicts the first token');
  const ctxLen = Buffer.byteLength('héllo');
  const span = sp.tokenLogprobs.slice(ctxLen).reduce((s: number, v) => s + v!, 0);
  const sc = await lm.scoreContinuation('héllo', ' wörld ✓');
  assert.ok(Math.abs(span - sc.logprob) < 1e-6, `${span} vs ${sc.logprob}`);
  for (const [i, top] of sp.topLogprobs.entries()) {
    if (i === 0) continue;
    const vals = Object.values(top);
    assert.ok(vals.length >= 1 && vals.length <= 5);
    assert.ok(Math.max(...vals) >= sp.tokenLogprobs[i]! - 1e-9, 'the chosen token never beats the top entry');
    const own = top[sp.tokenStrings[i]!];
    if (own !== undefined && sp.tokenStrings[i] !== '\uFFFD') assert.ok(Math.abs(own - sp.tokenLogprobs[i]!) < 1e-9);
  }
  const ids2 = lm.tokenizer.encode('a<|endoftext|>b');
  assert.deepEqual(lm.tokenizer.encode(lm.decode(ids2)), ids2, 'decode keeps special tokens, so token-id prompts round-trip');
});

test('options and bad input: clear errors naming the provider, option or file; this process carries on', async () => {
  await assert.rejects(createProvider(`local:${dir}`, { config: { max_batchh: 2 } }), /local:.*: unknown provider option "max_batchh" \(known: device, max_batch\)/);
  await assert.rejects(createProvider(`local:${dir}`, { config: { max_batch: 0 } }), /option max_batch must be an integer >= 1, got 0/);
  await assert.rejects(createProvider(`local:${join(d, 'nope')}`), /model directory .*nope does not exist/);
  await assert.rejects(createProvider(`local:${file}`), /is not a directory \(local: takes a model directory; use gguf:<file>/);
  await assert.rejects(createProvider(`gguf:${file}`, { config: { threads: '2' } }), /option threads must be a number, got "2"/);
  await assert.rejects(createProvider(`gguf:${file}`, { config: { chat_template: 'x' } }), /chat_template must be "auto" or "plain"/);
  await assert.rejects(createProvider(`gguf:${join(d, 'missing.gguf')}`), /GGUF file .*missing\.gguf does not exist/);
  const bad = join(d, 'corrupt.gguf');
  const bytes = readFileSync(file);
  writeFileSync(bad, bytes.subarray(0, 4096)); // a truncated download
  await assert.rejects(createProvider(`gguf:${bad}`), (e: Error) => e.message.startsWith(`${bad}: `) && /past the end|runs past|truncated|end of the file/i.test(e.message));
  // A closed provider refuses work; gguf's child is gone.
  const p = (await createProvider(`gguf:${file}`)) as GgufProvider;
  const pid = p.child.pid!;
  await p.close();
  assert.throws(() => process.kill(pid, 0), /ESRCH/);
  await assert.rejects(p.complete({ prompt: 'x', maxTokens: 2 }), /closed/);
  // The whole CLI on a corrupt file: exit code 1 and the file named, nothing else breaks.
  writeFileSync(join(d, 'q.jsonl'), '{"context":"a","question":"b","answers":["c"]}\n');
  writeFileSync(join(d, 'q.yaml'), 'name: q\ntype: qa\ndata: q.jsonl\nprompt: "{{ question }}"\n');
  writeFileSync(join(d, 'bad.yaml'), `providers: [gguf:${bad}]\ntasks: [q.yaml]\nout: out-bad\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/entry.ts'), 'eval', '--config', join(d, 'bad.yaml'), '--db', join(d, 'bad.db')], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.ok(r.stderr.includes(`alignlab eval: ${bad}: `), r.stderr);
});

test('examples/eval-local.yaml is a valid config naming local:, gguf: and openai-compat: providers whose tasks load', async () => {
  const { loadEvalConfig } = await import('../../../src/eval/runner.js');
  const { loadTask } = await import('../../../src/eval/tasks/index.js');
  const file = join(ROOT, 'examples/eval-local.yaml');
  const cfg = loadEvalConfig(file);
  const ids = cfg.providers.map((p) => (typeof p === 'string' ? p : p.id));
  assert.deepEqual(ids.map((i) => i.slice(0, i.indexOf(':'))), ['local', 'gguf', 'openai-compat']);
  for (const t of cfg.tasks) assert.ok((await loadTask(join(ROOT, 'examples', t))).samples.length > 0, t);
});
