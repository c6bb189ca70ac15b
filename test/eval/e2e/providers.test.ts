// End to end, through the CLI as a user runs it: a tiny random llama from `alignlab init`, its GGUF from
// `alignlab export gguf`, a real `alignlab serve` on 127.0.0.1, and `alignlab eval` over QA (chat, with a
// paraphrase), open generation (completion, stop string) and multiple choice against
//   local:<dir>   our engine in the eval process
//   openai-compat:<served url>#<name>   the same directory behind our OpenAI-compatible server
//   gguf:<file>   the exported file in llama.cpp (node-llama-cpp, in a child process)
// A random model's answers are gibberish, so the checks are on structure and agreement: greedy answers of
// local and served are identical, llama.cpp agrees with both, multiple-choice log-likelihoods match, every
// sample is logged exactly once, and a SIGKILLed evaluation resumes from the cache.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { EvalResult, SampleRecord } from '../../../src/eval/runner.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const ENTRY = join(ROOT, 'src/cli/entry.ts');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `alignlab <args>` as a child process (through tsx, as the tests run everything). */
function cli(args: string[], onStart?: (c: ChildProcess) => void): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  onStart?.(child);
  let stdout = '', stderr = '';
  child.stdout.on('data', (b) => (stdout += b));
  child.stderr.on('data', (b) => (stderr += b));
  return new Promise((res) => child.on('exit', (code, signal) => res({ code, signal, stdout, stderr })));
}

async function ok(args: string[]): Promise<Run> {
  const r = await cli(args);
  assert.equal(r.code, 0, `alignlab ${args.join(' ')} failed:\n${r.stderr}`);
  return r;
}

let d: string;
let modelDir: string;
let gguf: string;
let server: ChildProcess | undefined;
let served: string; // openai-compat id

const TASKS = { qa: { rows: 3, templates: 2 }, gen: { rows: 3, templates: 1 }, mc: { rows: 3, templates: 1 } };
const SAMPLES = Object.values(TASKS).reduce((s, t) => s + t.rows * t.templates, 0);

function writeTasks(dir: string) {
  const qa = [
    ['Ada keeps bees. Tom keeps goats.', 'Who keeps goats?', ['Tom']],
    ['The mill opened in 1890.', 'When did the mill open?', ['1890', 'in 1890']],
    ['Red boats are fast. Blue boats are slow.', 'Which boats are slow?', ['Blue boats', 'blue']],
  ];
  writeFileSync(join(dir, 'qa.jsonl'), qa.map(([context, question, answers], i) => JSON.stringify({ id: `q${i}`, context, question, answers })).join('\n') + '\n');
  writeFileSync(
    join(dir, 'qa.yaml'),
    'name: qa\ntype: qa\ndata: qa.jsonl\nid_field: id\nprompt: "{{ context }} Q: {{ question }}"\nparaphrases:\n  - "Q: {{ question }} Text: {{ context }}"\ngeneration:\n  max_tokens: 12\n',
  );
  writeFileSync(join(dir, 'gen.json'), JSON.stringify(['Tell me about rain.', 'Describe a cat.', 'Write about bread.'].map((instruction, i) => ({ id: `g${i}`, instruction }))));
  writeFileSync(
    join(dir, 'gen.yaml'),
    'name: gen\ntype: generation\nmode: completion\ndata: gen.json\nid_field: id\nprompt: "{{ instruction }}"\nmetrics: [length, distinct_1, repetition_rate, perplexity]\ngeneration:\n  max_tokens: 12\n  stop: ["\\n\\n"]\n',
  );
  const mc = [
    ['Cats say', ['meow', 'moo'], 0],
    ['Ice is', ['hot', 'cold', 'loud'], 1],
    ['The sky is', ['green', 'blue'], 1],
  ];
  writeFileSync(join(dir, 'mc.jsonl'), mc.map(([q, choices, gold]) => JSON.stringify({ q, choices, gold })).join('\n') + '\n');
  writeFileSync(join(dir, 'mc.yaml'), 'name: mc\ntype: multiple_choice\ndata: mc.jsonl\nprompt: "{{ q }}"\n');
}

before(async () => {
  d = mkdtempSync(join(tmpdir(), 'alignlab-e2e-'));
  modelDir = join(d, 'tiny');
  gguf = join(d, 'tiny.gguf');
  writeTasks(d);
  await ok(['init', '--arch', 'llama', '--out', modelDir, '--layers', '2', '--hidden', '32', '--heads', '2', '--seed', '7']);
  // The server loads while the GGUF is written.
  const listening = new Promise<string>((res, rej) => {
    void cli(['serve', '--model', modelDir, '--port', '0', '--quiet'], (c) => {
      server = c;
      let err = '';
      c.stderr!.on('data', (b) => {
        err += b;
        const m = /serving (\S+) at (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(err);
        if (m) res(`openai-compat:${m[2]}#${m[1]}`);
      });
      c.on('exit', (code) => rej(new Error(`alignlab serve exited (${code}): ${err}`)));
    });
  });
  await ok(['export', 'gguf', '--model', modelDir, '--out', gguf]);
  served = await listening;
});

after(() => {
  server?.kill('SIGTERM');
  if (d && !process.env.KEEP_E2E) rmSync(d, { recursive: true, force: true });
});

const readJsonl = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SampleRecord);
const byKey = (recs: SampleRecord[], model: string) => new Map(recs.filter((r) => r.model === model).map((r) => [`${r.task}|${r.id}`, r]));
// Random weights emit invalid UTF-8; decoders differ only in how they show it (U+FFFD runs, a held-back tail).
const valid = (s: string) => s.replace(/\uFFFD/g, '');

let full: { out: string; result: EvalResult; samples: SampleRecord[] } | undefined;

test('alignlab eval: local, served and gguf providers on QA, generation and multiple choice', async () => {
  const out = join(d, 'out');
  writeFileSync(
    join(d, 'eval.yaml'),
    `name: e2e
providers:
  - id: local:${modelDir}
    label: local
  - id: ${served}
    label: served
  - id: gguf:${gguf}
    label: gguf
    config: { threads: 1 }
tasks: [qa.yaml, gen.yaml, mc.yaml]
reference: local:${modelDir}
concurrency: 4
bootstrap: 200
`,
  );
  const r = await ok(['eval', '--config', join(d, 'eval.yaml'), '--out', out, '--db', join(d, 'store.db')]);
  assert.match(r.stdout, /leaderboard: .*leaderboard\.md/);
  for (const f of ['leaderboard.md', 'leaderboard.html', 'results.json', 'config.resolved.json']) assert.ok(existsSync(join(out, f)), `${f} written`);
  const result = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as EvalResult;
  const labels = ['local', 'served', 'gguf'];
  assert.deepEqual(result.models.map((m) => m.label), labels);
  assert.match(result.models[0]!.model, /^tiny@[0-9a-f]{12}$/);

  // Every sample of every task logged exactly once per model.
  const samples: SampleRecord[] = [];
  for (const [task, { rows, templates }] of Object.entries(TASKS))
    for (const m of labels) {
      const recs = readJsonl(join(out, 'samples', task, `${m}.jsonl`));
      assert.equal(recs.length, rows * templates, `${task}/${m}: one line per sample`);
      assert.equal(new Set(recs.map((x) => x.id)).size, recs.length, `${task}/${m}: no duplicates`);
      for (const x of recs) {
        if (task === 'mc') assert.equal(x.choice_logprobs!.length, x.choices!.length);
        else assert.equal(typeof x.output, 'string');
      }
      samples.push(...recs);
    }
  assert.equal(samples.length, SAMPLES * 3);
  assert.equal(result.cache.misses, result.calls, 'a fresh store: every call went to a provider');

  // Scores with bootstrap CIs for every model and metric (multiple choice included: all three give log-likelihoods).
  for (const t of result.tasks) {
    assert.deepEqual(Object.keys(t.skipped), [], `${t.name}: nobody skipped`);
    for (const m of labels) {
      const s = t.scores[m]![t.primary_metric]!;
      assert.ok(s && Number.isFinite(s.lo) && Number.isFinite(s.hi) && s.lo <= s.value && s.value <= s.hi, `${t.name}/${m}: ${JSON.stringify(s)}`);
    }
  }
  const ppl = result.tasks.find((t) => t.name === 'gen')!.scores.local!.perplexity;
  assert.ok(ppl && ppl.value > 1, 'perplexity under the reference model (local:, also a provider here: loaded once)');
  const md = readFileSync(join(out, 'leaderboard.md'), 'utf8');
  for (const m of labels) assert.match(md, new RegExp(`^\\| ${m} \\|`, 'm'));
  assert.match(md, /\[\d+\.\d+, \d+\.\d+\]/, 'CIs in the leaderboard');

  // Agreement. local vs served: the same engine, so greedy answers are identical and log-likelihoods equal.
  const [local, srv, gg] = labels.map((l) => byKey(samples, l));
  let texts = 0, nonEmpty = 0;
  for (const [k, a] of local!) {
    const b = srv!.get(k)!, c = gg!.get(k)!;
    if (a.output !== undefined) {
      texts++;
      if (valid(a.output).length > 0) nonEmpty++;
      assert.equal(b.output, a.output, `served = local on ${k}`);
      // llama.cpp on the exported file: the same greedy tokens (the GGUF cross-check of our engine).
      assert.equal(valid(c.output!), valid(a.output), `gguf = local on ${k}`);
    } else {
      a.choice_logprobs!.forEach((lp, i) => {
        assert.ok(Math.abs(b.choice_logprobs![i]! - lp) < 1e-4, `served log-likelihood ${k}[${i}]: ${b.choice_logprobs![i]} vs ${lp}`);
        assert.ok(Math.abs(c.choice_logprobs![i]! - lp) < 1e-3, `gguf log-likelihood ${k}[${i}]: ${c.choice_logprobs![i]} vs ${lp}`);
      });
      assert.equal(b.pred, a.pred);
      assert.equal(c.pred, a.pred);
    }
  }
  assert.equal(texts, 9);
  assert.ok(nonEmpty >= 6, `answers are not all empty (${nonEmpty}/9), so the comparison means something`);
  full = { out, result, samples };
});

test('alignlab eval killed with SIGKILL resumes from the cache: nothing lost, nothing asked twice', async (t) => {
  if (!full) return t.skip('needs the full run');
  const cfg = join(d, 'eval-kill.yaml');
  const db = join(d, 'kill.db');
  // concurrency 1 keeps one request in flight, so the kill lands between stored answers.
  writeFileSync(cfg, `name: kill\nproviders:\n  - id: ${served}\n    label: served\n    concurrency: 1\ntasks: [qa.yaml, gen.yaml, mc.yaml]\nbootstrap: 50\n`);
  const stored = () => {
    if (!existsSync(db)) return 0;
    const h = new Database(db, { readonly: true });
    try {
      return (h.prepare('SELECT COUNT(*) AS n FROM eval_cache WHERE provider = ?').get(served) as { n: number }).n;
    } catch {
      return 0; // table not there yet
    } finally {
      h.close();
    }
  };
  let child: ChildProcess | undefined;
  const run = cli(['eval', '--config', cfg, '--out', join(d, 'out-kill'), '--db', db], (c) => (child = c));
  const deadline = Date.now() + 60_000;
  while (stored() < 3) {
    assert.ok(child!.exitCode === null, 'the evaluation finished before it could be killed');
    assert.ok(Date.now() < deadline, 'no progress');
    await new Promise((r) => setTimeout(r, 10));
  }
  child!.kill('SIGKILL');
  const killed = await run;
  assert.equal(killed.signal, 'SIGKILL');
  const kept = stored();
  assert.ok(kept >= 3 && kept < SAMPLES, `kept ${kept} of ${SAMPLES}`);

  const out = join(d, 'out-resumed');
  await ok(['eval', '--config', cfg, '--out', out, '--db', db]);
  const result = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as EvalResult;
  assert.equal(result.cache.hits, kept, 'what the killed run stored is read back');
  assert.equal(result.calls, SAMPLES - kept, 'only the rest is asked');
  assert.equal(stored(), SAMPLES);
  const resumed: SampleRecord[] = [];
  for (const task of Object.keys(TASKS)) resumed.push(...readJsonl(join(out, 'samples', task, 'served.jsonl')));
  assert.equal(resumed.length, SAMPLES);
  assert.equal(new Set(resumed.map((r) => `${r.task}|${r.id}`)).size, SAMPLES);
  // Greedy and deterministic: the resumed run's answers are the uninterrupted run's.
  const before = byKey(full.samples, 'served');
  for (const r of resumed) {
    const b = before.get(`${r.task}|${r.id}`)!;
    assert.equal(r.output, b.output);
    assert.deepEqual(r.choice_logprobs, b.choice_logprobs);
  }
});
