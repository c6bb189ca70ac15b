// Several processes write one store at once (a study's helper processes, a training run beside the dashboard).
// Every write transaction must wait for the other writer's lock instead of failing with SQLITE_BUSY, which a
// deferred transaction that reads before it writes does at once (the cause of a failed study in CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/db.js';
import { getMetric } from '../../src/store/runs.js';
import { studyRuns } from '../../src/store/studies.js';

const writer = join(import.meta.dirname, '../helpers/store-writer.ts');

test('two processes writing one store at once both finish, and every row of each is there', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'alignlab-concurrent-')), 'store.db');
  openStore(path); // created (and switched to WAL) before the writers race
  const n = 300;
  const run = (name: string) => new Promise<{ code: number | null; err: string }>((done) => {
    const p = spawn(process.execPath, ['--import', 'tsx', writer, path, name, String(n)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => done({ code, err }));
  });
  const results = await Promise.all([run('a'), run('b')]);
  for (const r of results) assert.equal(r.code, 0, r.err);
  const db = openStore(path);
  const runs = studyRuns(db, '/study').map((r) => r.run);
  for (const name of ['a', 'b']) {
    assert.equal(runs.filter((r) => r.startsWith(`${name}-`)).length, n, `${name}: every study run recorded`);
    assert.equal(getMetric(db, name, 'loss').length, n, `${name}: every metric recorded`);
  }
});
