// `alignlab train` end to end, as a user runs it: a child process per run, configs and data written here,
// a tiny random model (model.init) with a byte-level tokenizer. Checks that the saved directories load
// with the ordinary loaders, that an interrupted run (--stop-after, or SIGINT) resumes to exactly the
// uninterrupted result, that bad input gets file:line:field and no stack trace, and that a saved reward
// model reproduces the trainer's own eval metrics when loaded back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { initEngine } from '../../src/engine/index.js';
import { LM } from '../../src/model/lm.js';
import { byteLevelTokenizerJson } from '../../src/formats/tokenizer.js';
import { latestCheckpoint } from '../../src/train/checkpoint.js';
import { readMetrics } from '../../src/train/loop.js';
import { DEFAULT_CHAT_TEMPLATE } from '../../src/data/trl.js';
import { chatTemplateFor, loadRewardModel, loadSplit, loadTrainModel, tokenizePairs, tokenizePrompts, tokenizeSft } from '../../src/train/run-data.js';
import { withReference } from '../../src/cli/train-docs.js';
import { resolveConfig } from '../../src/train/config.js';
import { openStore } from '../../src/store/db.js';
import { getRun } from '../../src/store/runs.js';
import type { PreferenceExample, PromptExample, SftExample } from '../../src/data/trl.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(join(tmpdir(), 'alignlab-train-cli-'));
const env = { ...process.env, ALIGNLAB_DB: join(tmp, 'store.db'), ALIGNLAB_DEVICE: 'wasm' };
await initEngine('wasm');

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `alignlab train ...` in a child process; `onStderr` sees its stderr so far and may poke it (e.g. send SIGINT). */
function train(args: string[], onStderr?: (text: string, pid: number) => void): Promise<Ran> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'train', ...args], { cwd: ROOT, env });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      onStderr?.(stderr, child.pid!);
    });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const ok = (r: Ran) => assert.equal(r.code, 0, `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
/** The run's row in the store the child processes write to. */
const storedRun = (id: string) => getRun(openStore(env.ALIGNLAB_DB), id);

// ---- fixtures ----------------------------------------------------------------------------------

writeFileSync(join(tmp, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson(['<|endoftext|>'])));
writeFileSync(join(tmp, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' }));
const model = {
  init: {
    model_type: 'llama', vocab_size: 257, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1,
    num_attention_heads: 2, max_position_embeddings: 64, bos_token_id: 256, eos_token_id: 256,
  },
  tokenizer: 'tokenizer.json',
};

function jsonl(name: string, rows: unknown[]): string {
  writeFileSync(join(tmp, name), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return name;
}

function config(name: string, c: Record<string, unknown>): string {
  const f = join(tmp, name);
  writeFileSync(f, stringify({ model, seed: 7, per_device_train_batch_size: 8, learning_rate: 3e-3, ...c }));
  return f;
}

// A separable toy preference: positive words preferred to negative ones (deterministic, no RNG needed).
const good = ['good', 'great', 'nice', 'happy'], bad = ['bad', 'awful', 'sad', 'poor'];
const pairs = (n: number, off: number) =>
  Array.from({ length: n }, (_, i) => ({ prompt: `It was${' '.repeat((i + off) % 3)}`, chosen: ` ${good[(i + off) % 4]}.`, rejected: ` ${bad[(i * 3 + off) % 4]}.` }));
jsonl('prefs.jsonl', pairs(32, 0));
jsonl('prefs-eval.jsonl', pairs(8, 1));

// ---- SFT ---------------------------------------------------------------------------------------

test('sft on conversations: trains, saves an HF dir that LM.load opens, with the chat template it used', async () => {
  const words = ['hot', 'cold', 'big', 'small', 'up', 'down'];
  jsonl('chat.jsonl', Array.from({ length: 24 }, (_, i) => ({
    messages: [{ role: 'user', content: `opposite of ${words[i % 6]}?` }, { role: 'assistant', content: words[(i % 6) ^ 1]! }],
  })));
  const out = join(tmp, 'run-sft');
  const r = await train(['sft', '--config', config('sft.yaml', { data: { train: 'chat.jsonl', eval_fraction: 0.25 }, max_steps: 6, per_device_train_batch_size: 4, sft: { assistant_only_loss: true } }), '--out', out]);
  ok(r);
  assert.match(r.stdout, /run-sft: completed at step 6/);
  assert.match(r.stdout, /model saved to .*run-sft\/final/);
  const rows = readMetrics(out);
  assert.equal(rows.length, 6);
  assert.ok(rows.every((m) => Number.isFinite(m.loss) && m.mean_token_accuracy !== undefined), JSON.stringify(rows[0]));
  assert.ok(rows.at(-1)!.eval_loss !== undefined, 'eval after the last step');
  assert.ok(rows.at(-1)!.loss < rows[0]!.loss, `loss ${rows[0]!.loss} → ${rows.at(-1)!.loss}`);
  const resolved = JSON.parse(readFileSync(join(out, 'config.resolved.json'), 'utf-8'));
  assert.equal(resolved.learning_rate, 3e-3);
  assert.equal(resolved.output_dir, out);
  assert.equal(resolved.data.eval_fraction, 0.25);
  assert.equal(resolved.max_grad_norm, 1); // a default, written out
  const lm = await LM.load(join(out, 'final'));
  try {
    assert.equal(lm.tokenizer.chatTemplate, DEFAULT_CHAT_TEMPLATE);
    const [g] = await lm.generate([lm.applyChatTemplate([{ role: 'user', content: 'opposite of up?' }])], { maxNewTokens: 3, temperature: 0 });
    assert.ok(g!.tokenIds.length >= 1);
  } finally {
    lm.dispose();
  }
});

// ---- DPO and resume ----------------------------------------------------------------------------

const dpoCfg = config('dpo.yaml', { data: { train: 'prefs.jsonl', eval: 'prefs-eval.jsonl' }, max_steps: 24, save_steps: 3, eval_steps: 12, dpo: { beta: 0.1 } });
const dpoRun = (name: string) => join(tmp, name);

test('dpo end to end, --stop-after + --resume and SIGINT + --resume reproduce the uninterrupted run exactly', async () => {
  const full = dpoRun('dpo-full'), stopped = dpoRun('dpo-stopped'), killed = dpoRun('dpo-sigint');
  let sent = false;
  // Three independent processes at once: the uninterrupted run; one stopped on purpose after 5 updates (between
  // the checkpoints at 3 and 6); one sent SIGINT once it has announced itself (it is then precomputing reference
  // log-probs and compiling, so the signal lands before the last step whatever the machine's speed).
  const [r, s1, k1] = await Promise.all([
    train(['dpo', '--config', dpoCfg, '--out', full]),
    train(['dpo', '--config', dpoCfg, '--out', stopped, '--stop-after', '5']),
    train(['dpo', '--config', dpoCfg, '--out', killed], (text, pid) => {
      if (!sent && /reference the initial policy/.test(text)) {
        sent = true;
        process.kill(pid, 'SIGINT');
      }
    }),
  ]);
  ok(r);
  const rows = readMetrics(full);
  assert.equal(rows.length, 24);
  for (const k of ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'eval_rewards/accuracies'])
    assert.ok(Number.isFinite(rows.at(-1)![k]), `metric ${k} missing: ${Object.keys(rows.at(-1)!).join(', ')}`);
  assert.ok(rows.at(-1)!['eval_rewards/margins']! > 0, JSON.stringify(rows.at(-1)));
  const lm = await LM.load(join(full, 'final'));
  lm.dispose();
  const weights = (run: string) => readFileSync(join(run, 'final', 'model.safetensors'));

  ok(s1);
  assert.match(s1.stdout, /stopped at step 5 .*--resume /);
  assert.equal(existsSync(join(stopped, 'final')), false, 'a stopped run has no final model');
  assert.equal(latestCheckpoint(stopped)!.step, 5);

  // SIGINT: finishes the step it is in, writes a checkpoint, exits non-zero with a resume hint.
  assert.ok(sent);
  assert.equal(k1.code, 130, k1.stderr);
  const m = /interrupted at step (\d+); checkpoint .*; continue with: alignlab train dpo --resume (\S+)/.exec(k1.stderr);
  assert.ok(m, k1.stderr);
  const at = Number(m[1]);
  assert.ok(at >= 1 && at < 24, `stopped at ${at}`);
  assert.equal(latestCheckpoint(killed)!.step, at);
  assert.equal(existsSync(join(killed, 'final')), false);
  assert.doesNotMatch(k1.stderr, /\n\s+at /, 'no stack trace');

  const [s2, k2] = await Promise.all([train(['dpo', '--resume', stopped]), train(['dpo', '--resume', m[2]!])]);
  ok(s2);
  ok(k2);
  assert.match(s2.stderr, /resuming from step 5 \(checkpoint /);
  assert.match(k2.stderr, new RegExp(`resuming from step ${at} \\(checkpoint `));
  assert.deepEqual(readMetrics(stopped), rows);
  assert.ok(weights(stopped).equals(weights(full)), 'same final weights after --stop-after + resume');
  assert.deepEqual(readMetrics(killed), rows);
  assert.ok(weights(killed).equals(weights(full)), 'same final weights after SIGINT + resume');

  // A fresh run into a directory with checkpoints is refused; the earlier run is untouched.
  const again = await train(['dpo', '--config', dpoCfg, '--out', full]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already holds checkpoints of a run: resume it with --resume/);
  assert.deepEqual(readMetrics(full), rows);

  // --resume on a completed run is refused with one line and changes nothing: summary, metrics, store row, model.
  const summary = readFileSync(join(full, 'summary.json'), 'utf-8'), row = storedRun('dpo-full');
  assert.equal(row?.status, 'completed');
  const done = await train(['dpo', '--resume', full]);
  assert.equal(done.code, 1, done.stderr);
  assert.match(done.stderr, /dpo-full: this run already completed .*nothing to resume and its results are kept/);
  assert.equal(done.stderr.trim().split('\n').length, 1, done.stderr);
  assert.equal(readFileSync(join(full, 'summary.json'), 'utf-8'), summary);
  assert.deepEqual(readMetrics(full), rows);
  assert.deepEqual(storedRun('dpo-full'), row);
  assert.ok(weights(full).equals(readFileSync(join(full, 'final', 'model.safetensors'))));
});

test('SIGINT during a long dpo run: stops within a step of the signal, checkpoints, is recorded as interrupted', async () => {
  const out = join(tmp, 'dpo-long');
  const cfg = config('dpo-long.yaml', { data: { train: 'prefs.jsonl', eval_fraction: 0 }, max_steps: 5000, save_steps: 100000, dpo: { beta: 0.1 } });
  const metricsFile = join(out, 'metrics.jsonl');
  const lines = () => (existsSync(metricsFile) ? readFileSync(metricsFile, 'utf-8').trim().split('\n').filter(Boolean).length : 0);
  let atSignal = -1;
  const r = await new Promise<Ran>((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'train', 'dpo', '--config', cfg, '--out', out], { cwd: ROOT, env });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    // Wait for the first step's metrics line, then interrupt.
    const poll = setInterval(() => {
      if (lines() >= 1) {
        clearInterval(poll);
        atSignal = lines();
        child.kill('SIGINT');
      }
    }, 20);
    child.on('error', fail);
    child.on('close', (code) => {
      clearInterval(poll);
      done({ code, stdout, stderr });
    });
  });
  assert.ok(atSignal >= 1, r.stderr);
  assert.equal(r.code, 130, `exit ${r.code}\n${r.stderr}`);
  const ck = latestCheckpoint(out);
  assert.ok(ck, 'a checkpoint on disk');
  // The signal lands during some step after `atSignal` lines were seen; the loop finishes that step and stops.
  assert.ok(ck.step >= atSignal && ck.step <= atSignal + 2, `signal after ${atSignal} steps, checkpoint at step ${ck.step}`);
  assert.equal(lines(), ck.step);
  assert.match(r.stderr, new RegExp(`interrupted at step ${ck.step}; checkpoint `));
  assert.equal(storedRun('dpo-long')?.status, 'interrupted');
  assert.equal(existsSync(join(out, 'final')), false);
});

// ---- bad input ---------------------------------------------------------------------------------

test('bad data and configs: file:line and field, exit 1, no stack trace', async () => {
  const good1 = JSON.stringify(pairs(1, 0)[0]);
  writeFileSync(join(tmp, 'bad-field.jsonl'), `${good1}\n${good1}\n{"prompt": "a", "chosen": 5, "rejected": "b"}\n`);
  writeFileSync(join(tmp, 'bad-json.jsonl'), `${good1}\n{"prompt": "a", "chosen": \n`);
  const badYaml = join(tmp, 'bad-beta.yaml');
  writeFileSync(badYaml, `model:\n  dir: ${tmp}\ndata:\n  train: prefs.jsonl\ndpo:\n  beta: high\n`);
  const grpoCfg = config('grpo-bad.yaml', { data: { train: 'prefs.jsonl' }, per_device_train_batch_size: 6, grpo: { reward: { function: 'sentiment' }, num_generations: 4, max_completion_length: 8 } });
  const cases: [string[], RegExp][] = [
    [['dpo', '--config', config('bf.yaml', { data: { train: 'bad-field.jsonl' } }), '--out', join(tmp, 'bf')], /bad-field\.jsonl:3: field "chosen" must be a string, got number 5/],
    [['rm', '--config', config('bj.yaml', { data: { train: 'bad-json.jsonl' } }), '--out', join(tmp, 'bj')], /bad-json\.jsonl:2: is not valid JSON/],
    [['dpo', '--config', badYaml], /bad-beta\.yaml:6: field "dpo\.beta": .*expected number, received string/],
    [['ppo', '--config', config('rf.yaml', { data: { train: 'prefs.jsonl' }, ppo: { reward: { function: 'nope' } } }), '--out', join(tmp, 'rf')], /rf\.yaml: field "ppo\.reward\.function": unknown reward function "nope" \(known: sentiment, word-sentiment, chars:…, contains:…\)/],
    [['grpo', '--config', grpoCfg, '--out', join(tmp, 'grpo')], /grpo-bad\.yaml: per_device_train_batch_size × gradient_accumulation_steps = 6 completions per rollout must be a multiple of grpo\.num_generations \(4\)/],
  ];
  const got = await Promise.all(cases.map(([args]) => train(args)));
  got.forEach((r, i) => {
    assert.equal(r.code, 1, `case ${i}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, cases[i]![1]);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `case ${i}: no stack trace:\n${r.stderr}`);
  });
  // A run that failed on its data is in the store as failed, with the message the user saw.
  for (const [id, why] of [['bf', /bad-field\.jsonl:3: field "chosen"/], ['bj', /bad-json\.jsonl:2: is not valid JSON/], ['grpo', /must be a multiple of grpo\.num_generations/]] as const) {
    const row = storedRun(id);
    assert.equal(row?.status, 'failed', `${id}: ${JSON.stringify(row)}`);
    assert.match(row!.error ?? '', why);
  }
});

// ---- reward model, then PPO with it ------------------------------------------------------------

test('rm saves a reward model that loads back and reproduces its eval metrics; ppo and grpo train against it', async () => {
  const out = join(tmp, 'run-rm');
  const r = await train(['rm', '--config', config('rm.yaml', { data: { train: 'prefs.jsonl', eval: 'prefs-eval.jsonl' }, max_steps: 12 }), '--out', out]);
  ok(r);
  assert.match(r.stdout, /reward model saved to/);
  const last = readMetrics(out).at(-1)!;
  const cfgJson = JSON.parse(readFileSync(join(out, 'final', 'config.json'), 'utf-8'));
  assert.deepEqual(cfgJson.architectures, ['LlamaForSequenceClassification']);
  assert.equal(cfgJson.num_labels, 1);

  // Score the eval pairs with the loaded model, tokenized as TRL does (prompt ids, completion ids, EOS).
  const rm = await loadRewardModel(join(out, 'final'));
  try {
    const tok = rm.tokenizer!;
    const ev = pairs(8, 1);
    const seq = (p: string, c: string) => [...tok.encode(p), ...tok.encode(c, { addSpecial: false }), tok.eosId!];
    const rc = await rm.score(ev.map((e) => seq(e.prompt, e.chosen)));
    const rr = await rm.score(ev.map((e) => seq(e.prompt, e.rejected)));
    const margins = Array.from(rc, (c, i) => c - rr[i]!);
    const mean = margins.reduce((a, b) => a + b, 0) / margins.length;
    const acc = margins.filter((d) => d > 0).length / margins.length;
    assert.ok(Math.abs(mean - last['eval_rewards/margins']!) < 1e-4 * Math.max(1, Math.abs(mean)), `margin ${mean} vs logged ${last['eval_rewards/margins']}`);
    assert.equal(acc, last.eval_accuracy);
  } finally {
    rm.dispose();
  }

  // PPO and GRPO against the saved reward model (the value model of PPO starts from it), side by side.
  jsonl('prompts.jsonl', Array.from({ length: 8 }, (_, i) => ({ prompt: `It was${' '.repeat(i % 3)}` })));
  const ppoOut = join(tmp, 'run-ppo'), grpoOut = join(tmp, 'run-grpo');
  const online = { data: { train: 'prompts.jsonl' }, max_steps: 2, per_device_train_batch_size: 4 };
  const [p, g] = await Promise.all([
    train(['ppo', '--config', config('ppo.yaml', { ...online, ppo: { reward: { model: 'run-rm/final' }, response_length: 4, num_ppo_epochs: 2 } }), '--out', ppoOut]),
    train(['grpo', '--config', config('grpo.yaml', { ...online, grpo: { reward: { model: 'run-rm/final' }, max_completion_length: 4, num_generations: 2 } }), '--out', grpoOut]),
  ]);
  ok(p);
  ok(g);
  const pm = readMetrics(ppoOut);
  assert.equal(pm.length, 4, 'max_steps: 2 iterations × 2 PPO epochs = 4 updates');
  assert.match(p.stdout, /run-ppo: completed at iteration 2 \(4 updates\)/);
  for (const k of ['objective/kl', 'objective/scores', 'objective/rlhf_reward', 'policy/clipfrac_avg', 'loss/policy_avg', 'loss/value_avg'])
    assert.ok(Number.isFinite(pm[3]![k]), `metric ${k} missing: ${Object.keys(pm[3]!).join(', ')}`);
  const gm = readMetrics(grpoOut);
  assert.equal(gm.length, 2);
  assert.ok(Number.isFinite(gm[1]!['objective/scores']), Object.keys(gm[1]!).join(', '));
  assert.match(g.stderr, /2 prompts × 2 completions/);
  for (const dir of [ppoOut, grpoOut]) (await LM.load(join(dir, 'final'))).dispose();
});

// ---- docs and examples (no child process) -------------------------------------------------------

test('docs/training.md holds the config reference generated from the schemas', () => {
  const doc = readFileSync(join(ROOT, 'docs/training.md'), 'utf-8');
  assert.equal(withReference(doc), doc, 'regenerate: node --import tsx src/cli/train-docs.ts --write docs/training.md');
  // Spot-check the generator against the schema's own defaults (resolved from an empty section).
  const c = resolveConfig(join(ROOT, 'examples/train/dpo.yaml'), 'dpo');
  assert.match(doc, new RegExp(`\\| \`save_total_limit\` \\| integer > 0 \\| \`2\` \\|`));
  assert.match(doc, new RegExp(`\\| \`dpo.max_prompt_length\` \\| integer > 0 \\| \`${c.dpo.max_prompt_length}\` \\|`));
  assert.match(doc, /\| `ppo\.kl_estimator` \| `k1` \\\| `k3` \| `k1` \|/);
});

test('every example config resolves, and its model and data load and tokenize', async () => {
  for (const a of ['sft', 'rm', 'dpo', 'ppo', 'grpo'] as const) {
    const c = resolveConfig(join(ROOT, `examples/train/${a}.yaml`), a);
    const m = await loadTrainModel(c);
    const enc = { tokenizer: m.tokenizer, template: chatTemplateFor(c, m.tokenizer), eosId: m.tokenizer.eosId };
    assert.equal(enc.eosId, 256, a);
    if (a === 'sft') {
      const ds = await loadSplit<SftExample>(c, 'sft');
      assert.equal(ds.train.format, 'messages');
      const ids = tokenizeSft(ds.train, enc, { maxLength: c.max_length });
      assert.ok(ids.every((x) => x.ids.at(-1) === 256 && x.completionStart! > 0 && x.completionStart! < x.ids.length));
      // The completion is the assistant turn as the default template renders it, then EOS.
      assert.equal(m.tokenizer.decode(ids[0]!.ids.slice(ids[0]!.completionStart, -1)), (ds.train.rows[0] as { messages: { content: string }[] }).messages[1]!.content + '\n');
    } else if (a === 'rm' || a === 'dpo') {
      const ds = await loadSplit<PreferenceExample>(c, 'preference');
      const pairs = tokenizePairs(ds.train, enc, { maxLength: c.max_length, maxPromptLength: 32 });
      assert.equal(pairs.length + ds.eval!.rows.length, 96);
      assert.equal(m.tokenizer.decode(pairs[0]!.prompt), ds.train.rows[0]!.prompt);
    } else {
      const ds = await loadSplit<PromptExample>({ ...c, data: { ...c.data, eval_fraction: 0 } }, 'prompt');
      assert.equal(tokenizePrompts(ds.train, enc, { maxPromptLength: 32 }).length, 48);
    }
  }
});

test('pre-tokenized rows (TRL prompt_input_ids, chosen_input_ids, rejected_input_ids) are used as they are', async () => {
  const c = resolveConfig(join(ROOT, 'examples/train/dpo.yaml'), 'dpo');
  const m = await loadTrainModel(c);
  const enc = { tokenizer: m.tokenizer, template: null, eosId: m.tokenizer.eosId, vocabSize: 260 };
  // Ids the text would not tokenize to (and no EOS at the end): kept exactly; 258 is past the tokenizer's 257 but inside the model's 260.
  const row = { prompt: 'It was', chosen: '', rejected: 'x', prompt_input_ids: [256, 73, 116], chosen_input_ids: [258, 5], rejected_input_ids: [7, 8, 9] };
  writeFileSync(join(tmp, 'prefs-ids.jsonl'), JSON.stringify(row) + '\n');
  const ds = await loadSplit<PreferenceExample>({ ...c, data: { ...c.data, train: join(tmp, 'prefs-ids.jsonl'), eval: null, eval_fraction: 0 } }, 'preference');
  assert.deepEqual(tokenizePairs(ds.train, enc, { maxLength: 64, maxPromptLength: 32 }), [{ prompt: [256, 73, 116], chosen: [258, 5], rejected: [7, 8, 9] }]);
  // Cut like tokenized text: the prompt keeps its end, completions their start.
  assert.deepEqual(tokenizePairs(ds.train, enc, { maxLength: 4, maxPromptLength: 2 }), [{ prompt: [73, 116], chosen: [258, 5], rejected: [7, 8] }]);
  assert.throws(() => tokenizePairs(ds.train, { ...enc, vocabSize: 258 }, { maxLength: 64, maxPromptLength: 32 }), /prefs-ids\.jsonl:1: field "chosen_input_ids\[0\]" is 258, outside the model's vocabulary \(0…257\)/);
  writeFileSync(join(tmp, 'prefs-ids-bad.jsonl'), JSON.stringify({ ...row, rejected_input_ids: [1, -2] }) + '\n');
  await assert.rejects(
    loadSplit<PreferenceExample>({ ...c, data: { ...c.data, train: join(tmp, 'prefs-ids-bad.jsonl'), eval: null, eval_fraction: 0 } }, 'preference'),
    /prefs-ids-bad\.jsonl:1: field "rejected_input_ids\[1\]" must be a non-negative integer token id/,
  );
  writeFileSync(join(tmp, 'prompts-ids.jsonl'), JSON.stringify({ prompt: 'It was', prompt_input_ids: [256, 1, 2] }) + '\n');
  const pd = await loadSplit<PromptExample>({ ...c, data: { ...c.data, train: join(tmp, 'prompts-ids.jsonl'), eval: null, eval_fraction: 0 } }, 'prompt');
  assert.deepEqual(tokenizePrompts(pd.train, enc, { maxPromptLength: 2 }), [[1, 2]]);
});
