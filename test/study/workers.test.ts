// The study's work sharing: claims between processes (src/study/claims.ts), and a study run by two processes
// giving the same runs as one process (each run is seeded, so which process ran it must not matter).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Claims } from '../../src/study/claims.js';
import { parseRun } from '../../src/study/types.js';

const tmp = mkdtempSync(join(tmpdir(), 'alignlab-workers-'));

test('claims: one owner per task; a dead owner\'s claim is taken over; waitFor ends on the result or on release', async () => {
  const dir = join(tmp, 'claims');
  const a = new Claims(dir);
  assert.equal(a.tryClaim('run-1'), true);
  assert.equal(a.tryClaim('run-1'), false, 'a held claim is not granted twice');
  assert.equal(a.heldByOther('run-1'), false, 'held by this process, not another');
  // A claim written by a process that has exited is free again.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf-8' }).stdout;
  writeFileSync(join(dir, 'run-2.claim'), dead);
  assert.equal(a.heldByOther('run-2'), false);
  assert.equal(a.tryClaim('run-2'), true);
  // A live other process holds run-3: waitFor returns true once the result exists, false if released without one.
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  try {
    writeFileSync(join(dir, 'run-3.claim'), String(child.pid));
    assert.equal(a.heldByOther('run-3'), true);
    assert.equal(a.tryClaim('run-3'), false);
    let done = false;
    setTimeout(() => (done = true), 100);
    assert.equal(await a.waitFor('run-3', () => done, 10), true);
    setTimeout(() => child.kill('SIGKILL'), 50);
    assert.equal(await a.waitFor('run-3', () => false, 10), false, 'the owner died without a result');
  } finally {
    child.kill('SIGKILL');
  }
  a.release('run-1');
  assert.equal(existsSync(join(dir, 'run-1.claim')), false);
  a.dispose();
  assert.equal(existsSync(join(dir, 'run-2.claim')), false, 'dispose drops this process\'s claims');
});

test('a study shared by 2 processes gives the same runs, checkpoint by checkpoint, as one process', { timeout: 15 * 60_000 }, () => {
  const cfg = join(tmp, 'study.yaml');
  writeFileSync(cfg, stringify({
    base: 'scratch', seeds: 2,
    corpus: { vocabSize: 500, trainPrompts: 64, heldOutPrompts: 16 },
    model: { layers: 1, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64, context: 32 },
    pretrain: { steps: 20, batchSize: 8, warmup: 1 },
    prefs: { prompts: 32, perSeed: true, source: 'sample' },
    rm: { steps: 4, evals: 1, batchSize: 8 },
    eval: { prompts: 8, checkpoints: 1 },
    dpo: { betas: [0.1], steps: 2, batchSize: 8 },
    simpo: { enabled: false },
    ppo: { klCoefs: [0.1], iterations: 1, rolloutBatch: 8, miniBatches: 2, epochs: 1, gt: false },
    bestOfN: { ns: [1, 2] },
  }));
  const cache = join(tmp, 'cache');
  const study = (workers: number) => {
    const out = join(tmp, `out-${workers}`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'study', '--config', cfg, '--out', out, '--cache', cache, '--workers', String(workers)], { encoding: 'utf-8', env: { ...process.env, ALIGNLAB_DB: join(tmp, 'store.db') } });
    assert.equal(r.status, 0, r.stderr);
    return { out, log: r.stderr };
  };
  const one = study(1), two = study(2);
  assert.match(two.log, /workers: 2 processes share the runs/);
  assert.doesNotMatch(one.log, /workers:/);
  const runs = (out: string) => readdirSync(join(out, 'runs')).filter((f) => f.endsWith('.json')).sort();
  assert.deepEqual(runs(two.out), runs(one.out));
  assert.equal(runs(one.out).length, 6);
  for (const f of runs(one.out)) {
    const [r1, r2] = [one.out, two.out].map((o) => parseRun(readFileSync(join(o, 'runs', f), 'utf-8'), f));
    assert.equal(r2!.status, r1!.status, f);
    assert.deepEqual(r2!.checkpoints.map((c) => [c.step, c.reward, c.kl]), r1!.checkpoints.map((c) => [c.step, c.reward, c.kl]), `${f}: same checkpoints`);
  }
  // Both processes' prerequisites were produced once each and the main process's study lists every run.
  for (const f of ['preferences.jsonl', 'preferences-seed1.jsonl', 'reward-model/alignlab-rm.json', 'reward-model-seed1/alignlab-rm.json']) assert.ok(existsSync(join(two.out, f)), f);
  const lines = readFileSync(join(two.out, 'study.jsonl'), 'utf-8').trim().split('\n');
  assert.ok(lines.length >= 7, `study.jsonl has the study and its 6 runs (${lines.length} lines)`);
  assert.deepEqual(readdirSync(join(two.out, '.claims')), [], 'no claim outlives the study');
});

test('study prefs ships pairs and a reward model that a study adopts; made for another task or gap, they are refused in one line', { timeout: 10 * 60_000 }, () => {
  const base = {
    base: 'scratch',
    corpus: { vocabSize: 500, trainPrompts: 64, heldOutPrompts: 16 },
    model: { layers: 1, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64, context: 32 },
    pretrain: { steps: 20, batchSize: 8, warmup: 1 },
    rm: { steps: 4, evals: 1, batchSize: 8 },
  };
  const cache = join(tmp, 'cache'), prefs = join(tmp, 'prefs');
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'study', ...args, '--cache', cache], { encoding: 'utf-8', env: { ...process.env, ALIGNLAB_DB: join(tmp, 'store.db') } });
  const cfg = (name: string, extra: Record<string, unknown>) => {
    const f = join(tmp, name);
    writeFileSync(f, stringify({ ...base, ...extra }));
    return f;
  };
  const made = cli(['prefs', '--config', cfg('prefs.yaml', { prefs: { prompts: 32, samplesPerPrompt: 4 } }), '--out', prefs]);
  assert.equal(made.status, 0, made.stderr);
  const prov = JSON.parse(readFileSync(join(prefs, 'PROVENANCE.json'), 'utf-8')) as { pairs: number; rewardModel: { heldOutAccuracy: number; n: number } };
  assert.equal(prov.pairs, readFileSync(join(prefs, 'preferences.jsonl'), 'utf-8').trim().split('\n').length);
  assert.ok(prov.rewardModel.n > 0 && prov.rewardModel.heldOutAccuracy >= 0 && prov.rewardModel.heldOutAccuracy <= 1);
  assert.ok(existsSync(join(prefs, 'reward-model', 'alignlab-rm.json')));
  assert.equal(cli(['prefs', '--out', prefs]).status, 2, 'an existing pair set is never overwritten');

  const runs = { seeds: 1, eval: { prompts: 8, checkpoints: 1 }, dpo: { betas: [0.1], steps: 2, batchSize: 8 }, simpo: { enabled: false }, ppo: { klCoefs: [0.1], iterations: 1, rolloutBatch: 8, miniBatches: 2, epochs: 1, gt: false }, bestOfN: { ns: [1, 2] } };
  const out = join(tmp, 'adopted');
  const ok = cli(['--config', cfg('adopt.yaml', { ...runs, prefs: { source: 'shipped', shippedDir: prefs, perSeed: false } }), '--out', out, '--workers', '1']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, /preferences and reward model: shipped/);
  assert.doesNotMatch(ok.stderr, /^preferences: \d+ pairs/m, 'no pairs sampled');
  assert.equal(readFileSync(join(out, 'preferences.jsonl'), 'utf-8'), readFileSync(join(prefs, 'preferences.jsonl'), 'utf-8'));
  // Run again on the finished directory: every run is kept, the report is rebuilt, and the study keeps its start time.
  const header = () => JSON.parse(readFileSync(join(out, 'study.jsonl'), 'utf-8').split('\n', 1)[0]!) as { provenance: { startedAt: string; finishedAt: string } };
  const first = header().provenance;
  const again = cli(['--config', join(tmp, 'adopt.yaml'), '--out', out, '--workers', '1']);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /: finished earlier, kept/);
  assert.equal(header().provenance.startedAt, first.startedAt);
  assert.ok(header().provenance.finishedAt >= first.finishedAt);
  const bad = cli(['--config', cfg('bad.yaml', { ...runs, task: { maxNewTokens: 8 }, prefs: { source: 'shipped', shippedDir: prefs, perSeed: false } }), '--out', join(tmp, 'refused'), '--workers', '1']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /PROVENANCE\.json: field identity\.task: the shipped preference pairs were made for another task/);
  assert.equal(bad.stderr.trim().split('\n').filter((l) => /alignlab study:/.test(l)).length, 1);

  // prefs.perSeed with shipped pairs: the first seed adopts them, the second draws its own with the same recipe…
  const recipe = { prompts: 32, samplesPerPrompt: 4 };
  const two = { ...runs, seeds: 2, dpo: { betas: [0.1], steps: 2, batchSize: 8 }, ppo: { ...runs.ppo, klCoefs: [] }, bestOfN: { enabled: false } };
  const perSeedOut = join(tmp, 'per-seed');
  const drawn = cli(['--config', cfg('per-seed.yaml', { ...two, prefs: { ...recipe, source: 'shipped', shippedDir: prefs, perSeed: true } }), '--out', perSeedOut, '--workers', '1']);
  assert.equal(drawn.status, 0, drawn.stderr);
  assert.equal(readFileSync(join(perSeedOut, 'preferences.jsonl'), 'utf-8'), readFileSync(join(prefs, 'preferences.jsonl'), 'utf-8'));
  assert.match(drawn.stderr, /^preferences: \d+ pairs .* from 32 prompts × 4 samples .*preferences-seed1\.jsonl/m);
  // …and a study whose sizes differ from the shipped draw's is refused before anything runs.
  const other = cli(['--config', cfg('per-seed-other.yaml', { ...two, rm: { steps: 8, evals: 1, batchSize: 8 }, prefs: { ...recipe, source: 'shipped', shippedDir: prefs, perSeed: true } }), '--out', join(tmp, 'per-seed-other'), '--workers', '1']);
  assert.equal(other.status, 1);
  assert.match(other.stderr, /PROVENANCE\.json: field config\.rm\.steps: the shipped draw used 4, this study 8/);
  const otherRuns = join(tmp, 'per-seed-other', 'runs');
  assert.deepEqual(existsSync(otherRuns) ? readdirSync(otherRuns) : [], [], 'refused before any run');
});
