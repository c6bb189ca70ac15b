import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { openStore } from '../../src/store/db.js';
import { registerProvider } from '../../src/eval/registry.js';
import { runEvalFile } from '../../src/eval/runner.js';
import { answered, ruleFactory } from './helpers/rule-provider.js';
import { SAMPLES_PER_MODEL, writeEvalConfig, writeTaskFixtures } from './helpers/fixtures.js';

const stored = (file: string, id: string) => {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM eval_cache WHERE provider = ?').get(id) as { n: number }).n;
  } catch {
    return 0; // table not created yet
  } finally {
    db.close();
  }
};

test('an evaluation killed with SIGKILL mid-run resumes from the store with nothing lost or duplicated', async () => {
  const d = writeTaskFixtures();
  const id = 'rule:extractive#killed';
  const cfg = writeEvalConfig(d, 'eval.yaml', `providers:\n  - id: ${id}\n    concurrency: 2\n    config: { delayMs: 40 }\ntasks: [qa.yaml, gen.yaml, sum.yaml, mc.yaml]\nbootstrap: 50\nout: out\n`);
  const dbFile = join(d, 'store.db');
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, 'helpers/kill-child.ts'), cfg, dbFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (b) => (stdout += b));
  child.stderr.on('data', (b) => (stderr += b));
  const exited = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_code, sig) => res(sig)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 15));
    let n = 0;
    try {
      n = stored(dbFile, id);
    } catch {
      /* the store file does not exist yet */
    }
    if (n >= 8) break;
    assert.ok(Date.now() < deadline, `child made no progress: ${stderr}`);
    assert.ok(child.exitCode === null, `child exited early: ${stdout} ${stderr}`);
  }
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  assert.ok(!stdout.includes('finished'), 'the run was interrupted');

  const db = new Database(dbFile);
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();
  const kept = stored(dbFile, id);
  assert.ok(kept >= 8 && kept < SAMPLES_PER_MODEL, `kept ${kept}`);

  registerProvider('rule', ruleFactory);
  answered.delete(id);
  const r = await runEvalFile(cfg, { db: openStore(dbFile), log: () => {} });
  assert.equal(answered.get(id)!.length, SAMPLES_PER_MODEL - kept, 'the resumed run asks only for what the killed run had not stored');
  assert.equal(new Set(answered.get(id)).size, SAMPLES_PER_MODEL - kept);
  assert.equal(r.cache.hits, kept);
  assert.equal(stored(dbFile, id), SAMPLES_PER_MODEL);
  assert.equal(new Set(r.samples.map((s) => `${s.task}|${s.id}`)).size, SAMPLES_PER_MODEL);
  assert.ok(r.samples.every((s) => s.output !== undefined || s.choice_logprobs !== undefined), 'every sample answered');
});
