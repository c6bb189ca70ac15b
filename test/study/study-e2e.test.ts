// The main job end to end: `alignlab study --quick` on the embedded default data, interrupted once and
// resumed. Checks the outputs a user reads (report.md, report.html with inline SVG charts) and that a
// resumed study keeps the runs it had finished.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeStudy, verdictJson } from '../../src/study/analysis.js';
import { parseStudy } from '../../src/study/types.js';
import { LM } from '../../src/model/lm.js';
import { LlamaCppChild } from '../../src/eval/providers/llamacpp.js';

const root = mkdtempSync(join(tmpdir(), 'alignlab-study-'));
const out = join(root, 'out'), cache = join(root, 'cache');
const args = ['--import', 'tsx', 'src/cli/entry.ts', 'study', '--quick', '--out', out, '--cache', cache];

function runStudy(killWhen?: () => boolean): Promise<{ code: number | null; log: string; killed: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '', killed = false;
    const onData = (d: Buffer) => {
      log += d.toString();
      if (killWhen && !killed && killWhen()) {
        killed = true;
        child.kill('SIGKILL');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => resolve({ code, log, killed }));
  });
}

const runFiles = () => (existsSync(join(out, 'runs')) ? readdirSync(join(out, 'runs')).filter((f) => f.endsWith('.json')) : []);

test('alignlab study --quick: interrupted, resumed, and reported', { timeout: 20 * 60_000 }, async () => {
  // Kill the study as soon as its first run is written.
  const first = await runStudy(() => runFiles().length >= 1);
  assert.ok(first.killed, `the study ended before it could be interrupted:\n${first.log}`);
  const kept = runFiles();
  assert.ok(kept.length >= 1);
  const before = Object.fromEntries(kept.map((f) => [f, statSync(join(out, 'runs', f)).mtimeMs]));

  const second = await runStudy();
  assert.equal(second.code, 0, second.log);
  for (const f of kept) {
    assert.match(second.log, new RegExp(`${f.replace('.json', '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: finished earlier, kept`));
    assert.equal(statSync(join(out, 'runs', f)).mtimeMs, before[f], `${f} was rewritten`);
  }
  assert.match(second.log, /base policy: loaded from/, 'the cached base policy is reused');

  const md = readFileSync(join(out, 'report.md'), 'utf-8');
  assert.match(md, /\| Criteria \| DPO \| PPO/);
  for (const h of ['Recommendation', 'frontier', 'Stability', 'Cost', 'Complexity', 'Samples']) assert.match(md, new RegExp(h, 'i'), `report.md has ${h}`);
  const html = readFileSync(join(out, 'report.html'), 'utf-8');
  assert.ok(!/<script\b[^>]*\bsrc=|https?:\/\/cdn/i.test(html), 'no external scripts');
  for (const chart of ['frontier', 'fluency', 'matched-kl', 'learning-curves']) {
    assert.ok(existsSync(join(out, `${chart}.svg`)), `${chart}.svg`);
    assert.ok(existsSync(join(out, `${chart}.vl.json`)), `${chart}.vl.json`);
  }
  assert.ok((html.match(/<svg\b/g) ?? []).length >= 4, 'four inline SVG charts');
  for (const id of ['criteria', 'per-method', 'matched-kl', 'stability', 'cost', 'complexity', 'samples', 'provenance']) assert.match(html, new RegExp(`id="${id}"`), `table ${id}`);

  // Every planned method produced a FINISHED run (not left 'running') with checkpoints and a measured cost.
  const study = parseStudy(readFileSync(join(out, 'study.jsonl'), 'utf-8'), 'study.jsonl');
  assert.ok(study.provenance.finishedAt, 'the study records when it finished');
  for (const m of ['dpo', 'ppo', 'best-of-n']) assert.ok(study.runs.some((r) => r.method === m && r.status !== 'running'), `a finished ${m} run`);
  for (const r of study.runs) {
    assert.notEqual(r.status, 'running', `${r.id} finished`);
    assert.ok(r.checkpoints.length >= 2, `${r.id} has checkpoints`);
    assert.ok(r.cost.wallSeconds > 0);
    // Trained policies moved away from the base: their last checkpoint has a positive KL.
    if (r.method !== 'best-of-n' && r.status === 'ok') assert.ok(r.checkpoints.at(-1)!.kl > 0, `${r.id}: KL ${r.checkpoints.at(-1)!.kl}`);
  }
  // DPO improves the gold reward over the base at some checkpoint.
  const best = Math.max(...study.runs.filter((r) => r.method === 'dpo').flatMap((r) => r.checkpoints.map((c) => c.reward)));
  assert.ok(best > study.base.reward, `DPO's best checkpoint ${best} vs base ${study.base.reward}`);

  // The answer: a numeric DPO − PPO at a shared KL with a finite CI, and the report's headline is the analysis
  // recomputed from study.jsonl (same numbers in analysis.json and in report.md).
  const written = JSON.parse(readFileSync(join(out, 'analysis.json'), 'utf-8')) as ReturnType<typeof verdictJson>;
  const h = written.headline!;
  assert.ok(h && typeof h.kl === 'number' && h.kl > 0, `a shared KL budget: ${JSON.stringify(h)}`);
  for (const x of [h.dpo, h.ppo, h.diff, h.ci[0], h.ci[1]]) assert.ok(typeof x === 'number' && Number.isFinite(x), `finite headline numbers: ${JSON.stringify(h)}`);
  assert.ok(h.ci[0]! <= h.diff! && h.diff! <= h.ci[1]!, 'the CI contains its point estimate');
  const again = verdictJson(analyzeStudy(study, { compare: [['dpo', 'ppo']] }));
  assert.deepEqual(written.headline, again.headline);
  assert.deepEqual(written.rewardModel, again.rewardModel);
  assert.deepEqual(written.base, again.base);
  // Issue 8's bar for quick mode: 2 seeds and 2 settings per method; a base below the n-gram; a reward model ≥ 0.7.
  for (const m of ['dpo', 'ppo']) {
    const rs = study.runs.filter((r) => r.method === m);
    assert.ok(new Set(rs.map((r) => r.seed)).size >= 2 && new Set(rs.map((r) => JSON.stringify(r.setting))).size >= 2, `${m}: ≥ 2 seeds and ≥ 2 settings`);
  }
  assert.ok(written.base.heldoutLoss! < written.base.ngramLoss!, `base ${written.base.heldoutLoss} vs n-gram ${written.base.ngramLoss}`);
  assert.ok(written.rewardModel!.accuracy! >= 0.7 && written.rewardModel!.n >= 500, `reward model ${JSON.stringify(written.rewardModel)}`);
  const signed = (x: number) => (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(3);
  assert.ok(md.includes(`the difference DPO − PPO is ${signed(h.diff!)} [${signed(h.ci[0]!)}, ${signed(h.ci[1]!)}]`), 'report.md states the headline difference and CI');
  // Trained policies are ordinary model directories, ready for `alignlab eval` / `serve` / `export`.
  for (const m of ['dpo', 'ppo']) {
    const dir = readdirSync(join(out, 'models')).find((d) => d.startsWith(`${m}-`));
    assert.ok(dir, `a saved ${m} policy`);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(existsSync(join(out, 'models', dir!, f)), `${dir}/${f}`);
  }

  // A saved study policy exports through the CLI and llama.cpp reads it as our engine does: the next-token
  // distribution after a real prompt agrees (the word-level vocabulary survives the export).
  const dpoDir = join(out, 'models', readdirSync(join(out, 'models')).find((d) => d.startsWith('dpo-'))!);
  const gguf = join(root, 'dpo.gguf');
  const ex = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'export', 'gguf', '--model', dpoDir, '--out', gguf], { encoding: 'utf-8' });
  assert.equal(ex.status, 0, ex.stderr);
  const lm = await LM.load(dpoDir, { device: 'wasm' });
  const ids = lm.tokenizer!.encode('we the people of the united states');
  assert.ok(ids.length >= 5, `prompt tokens ${ids}`);
  const child = await LlamaCppChild.start(gguf, { threads: 1 });
  try {
    const theirs = await child.nextLogprobs(ids);
    const all = await lm.logits(ids);
    const V = all.length / ids.length;
    const last = Array.from(all.subarray((ids.length - 1) * V, ids.length * V));
    const m = Math.max(...last), lse = m + Math.log(last.reduce((a, x) => a + Math.exp(x - m), 0));
    let worst = 0;
    for (let i = 0; i < Math.min(V, theirs.length); i++) worst = Math.max(worst, Math.abs(last[i]! - lse - theirs[i]!));
    assert.ok(worst < 1e-3, `llama.cpp vs ours, max |Δ log p| = ${worst}`);
  } finally {
    await child.close();
  }
});
