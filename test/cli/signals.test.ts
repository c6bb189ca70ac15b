// Ctrl-C and SIGTERM on the long commands, with real child processes: `train` stops within a step with a
// checkpoint and exits 130; `eval` and `study` exit 130 / 143 at once and keep what they had written (cached
// answers, finished files), so the same command continues; a second signal quits at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { latestCheckpoint } from '../../src/train/checkpoint.js';
import { startFaultServer } from '../helpers/fault-server.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(join(tmpdir(), 'alignlab-signals-'));

interface Proc {
  child: ChildProcess;
  stderr: () => string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; exitedAt: number }>;
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env: { ...process.env, ALIGNLAB_DB: join(tmp, 'store.db'), ALIGNLAB_DEVICE: 'wasm' } });
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Awaited<Proc['done']>>((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr, exitedAt: Date.now() })));
  return { child, stderr: () => stderr, done };
}

async function until(what: string, cond: () => boolean, p: Proc, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    assert.ok(p.child.exitCode === null, `the process ended before ${what}:\n${p.stderr()}`);
    if (Date.now() >= end) p.child.kill('SIGKILL');
    assert.ok(Date.now() < end, `timed out waiting for ${what}:\n${p.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits for the process to end; one that has not ended after `ms` is killed (and the test fails on its exit code). */
async function exitWithin(p: Proc, ms: number): Promise<Awaited<Proc['done']>> {
  const timer = setTimeout(() => p.child.kill('SIGKILL'), ms);
  try {
    return await p.done;
  } finally {
    clearTimeout(timer);
  }
}

/** Every file under `dir` with its size and mtime (to show nothing written earlier changed). */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const f of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, f.name);
      if (f.isDirectory()) walk(p);
      else if (f.isFile()) out.set(relative(dir, p), readFileSync(p, 'latin1'));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

test('the signal helper: the first SIGINT aborts and says so, a second one exits 130 at once; SIGTERM with exitAtOnce is 143', async () => {
  const script = join(tmp, 'sig.ts');
  writeFileSync(
    script,
    `import { interrupts } from ${JSON.stringify(join(ROOT, 'src/cli/signals.ts'))};
const atOnce = process.argv[2] === 'at-once';
const s = interrupts((sig) => 'first ' + sig, { exitAtOnce: atOnce });
s.signal.addEventListener('abort', () => process.stderr.write('aborted\\n'));
process.stderr.write('ready\\n');
setInterval(() => {}, 1000);
`,
  );
  const p = start([script]);
  await until('ready', () => p.stderr().includes('ready'), p);
  p.child.kill('SIGINT');
  await until('the first signal handled', () => p.stderr().includes('aborted'), p);
  assert.match(p.stderr(), /first SIGINT/);
  assert.equal(p.child.exitCode, null, 'the first signal only asks the command to stop');
  p.child.kill('SIGINT');
  const r = await exitWithin(p, 10_000);
  assert.equal(r.code, 130);
  assert.match(r.stderr, /SIGINT again: quitting now/);

  const q = start([script, 'at-once']);
  await until('ready', () => q.stderr().includes('ready'), q);
  q.child.kill('SIGTERM');
  const t = await exitWithin(q, 10_000);
  assert.equal(t.code, 143);
  assert.match(t.stderr, /first SIGTERM/);
});

test('train: SIGINT stops within a step with a checkpoint at that step and exits 130', async () => {
  const ex = join(ROOT, 'examples/train');
  const cfg = join(tmp, 'dpo.yaml');
  writeFileSync(
    cfg,
    stringify({
      model: {
        init: { model_type: 'llama', vocab_size: 257, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 64, bos_token_id: 256, eos_token_id: 256 },
        tokenizer: join(ex, 'tokenizer.json'),
      },
      data: { train: join(ex, 'data/prefs.jsonl') },
      seed: 1,
      max_steps: 400,
      save_steps: 100,
      per_device_train_batch_size: 4,
      learning_rate: 1e-3,
      max_length: 48,
    }),
  );
  const out = join(tmp, 'dpo-run');
  const p = start(['src/cli/entry.ts', 'train', 'dpo', '--config', cfg, '--out', out, '--no-progress']);
  const metrics = join(out, 'metrics.jsonl');
  await until('three steps logged', () => existsSync(metrics) && readFileSync(metrics, 'utf-8').split('\n').filter(Boolean).length >= 3, p);
  const sentAt = Date.now();
  p.child.kill('SIGINT');
  const r = await exitWithin(p, 30_000);
  assert.equal(r.code, 130, r.stderr);
  assert.ok(r.exitedAt - sentAt < 15_000, `stopped ${r.exitedAt - sentAt} ms after the signal`);
  const m = /interrupted at step (\d+); checkpoint (\S+); continue with: alignlab train dpo --resume/.exec(r.stderr);
  assert.ok(m, r.stderr);
  const step = Number(m[1]);
  assert.ok(step >= 3 && step < 400, `step ${step}`);
  assert.equal(latestCheckpoint(out)!.step, step, 'the checkpoint is at the step it stopped at');
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

test('eval: SIGINT exits 130 at once; the answers received are cached and the same command continues from them', async () => {
  const server = await startFaultServer({ schedule: () => ({ kind: 'delay', ms: 150 }) });
  try {
    const d = join(tmp, 'eval');
    const rows = 40;
    const db = join(d, 'store.db');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'q.jsonl'), Array.from({ length: rows }, (_, i) => JSON.stringify({ id: `q${i}`, context: `c${i}`, question: `question ${i}?`, answers: [`a${i}`] })).join('\n') + '\n');
    writeFileSync(join(d, 'q.yaml'), 'name: q\ntype: qa\ndata: q.jsonl\nprompt: "{{ question }}"\n');
    const provider = `openai-compat:${server.baseUrl}#m`;
    writeFileSync(join(d, 'eval.yaml'), `name: sig\nproviders:\n  - id: ${provider}\n    label: m\n    concurrency: 1\ntasks: [q.yaml]\nbootstrap: 20\n`);
    const stored = () => {
      if (!existsSync(db)) return 0;
      const h = new Database(db, { readonly: true });
      try {
        return (h.prepare('SELECT COUNT(*) AS n FROM eval_cache').get() as { n: number }).n;
      } catch {
        return 0;
      } finally {
        h.close();
      }
    };
    const args = ['src/cli/entry.ts', 'eval', '--config', join(d, 'eval.yaml'), '--out', join(d, 'out'), '--db', db];
    const p = start(args);
    await until('three cached answers', () => stored() >= 3, p);
    const sentAt = Date.now();
    p.child.kill('SIGINT');
    const r = await exitWithin(p, 15_000);
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.exitedAt - sentAt < 5_000, `stopped ${r.exitedAt - sentAt} ms after the signal`);
    assert.match(r.stderr, /SIGINT: stopping; the answers received so far are cached/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const kept = stored();
    assert.ok(kept >= 3 && kept < rows, `kept ${kept} of ${rows}`);

    const again = await start(args).done;
    assert.equal(again.code, 0, again.stderr);
    const result = JSON.parse(readFileSync(join(d, 'out', 'results.json'), 'utf-8')) as { cache: { hits: number } };
    assert.equal(result.cache.hits, kept, 'every answer the interrupted run received is used');
  } finally {
    await server.close();
  }
});

test('study: SIGINT exits 130 within seconds and leaves every file it had written intact (no temporary files)', async () => {
  const cfg = join(tmp, 'study.yaml');
  writeFileSync(
    cfg,
    stringify({
      base: 'scratch',
      seeds: 1,
      corpus: { trainPrompts: 64, heldOutPrompts: 8 },
      model: { layers: 1, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64, context: 32 },
      pretrain: { steps: 400, batchSize: 8, warmup: 1 },
    }),
  );
  const out = join(tmp, 'study-out'), cache = join(tmp, 'study-cache');
  const p = start(['src/cli/entry.ts', 'study', '--config', cfg, '--out', out, '--cache', cache]);
  // Preparing the corpus takes seconds alone and minutes on a loaded machine.
  await until('pretraining', () => /base policy: pretraining/.test(p.stderr()), p, 400_000);
  await new Promise((r) => setTimeout(r, 1500)); // inside the pretraining loop
  const files = () => new Map<string, string>([...[...snapshot(out)].map(([k, v]): [string, string] => [`out/${k}`, v]), ...[...snapshot(cache)].map(([k, v]): [string, string] => [`cache/${k}`, v])]);
  const before = files();
  const sentAt = Date.now();
  p.child.kill('SIGINT');
  const r = await exitWithin(p, 20_000);
  assert.equal(r.code, 130, r.stderr);
  assert.ok(r.exitedAt - sentAt < 10_000, `stopped ${r.exitedAt - sentAt} ms after the signal`);
  assert.match(r.stderr, /SIGINT: stopping; finished runs are kept in .*study-out\/runs/);
  const after = files();
  // Logs are append-only: the step in flight when the signal came may add its line, but nothing written is lost.
  for (const [f, v] of before) {
    const now = after.get(f);
    assert.ok(now !== undefined, `${f} still exists`);
    if (f.endsWith('.jsonl')) assert.equal(now.slice(0, v.length), v, `${f} keeps every line it had`);
    else assert.equal(now, v, `${f} unchanged`);
  }
  assert.deepEqual([...after.keys()].filter((f) => /\.tmp/.test(f)), [], 'no temporary files left');
});
