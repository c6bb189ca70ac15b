// The runs/metrics tables and `alignlab runs` on a real SQLite file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/db.js';
import { startRun, logMetrics, finishRun, getRun, listRuns, getMetric, metricNames, truncateMetrics } from '../../src/store/runs.js';
import { main, formatRuns } from '../../src/cli/runs.js';

const dbPath = join(mkdtempSync(join(tmpdir(), 'alignlab-runs-')), 'store.db');

async function capture(fn: () => Promise<void>): Promise<string> {
  const orig = console.log;
  const out: string[] = [];
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  try {
    await fn();
  } finally {
    console.log = orig;
  }
  return out.join('\n');
}

test('runs: start, log, truncate, finish, list; a resumed id keeps its row', () => {
  const db = openStore(dbPath);
  startRun(db, { id: 'dpo-a', kind: 'dpo', dir: '/r/dpo-a', config: { beta: 0.1 } });
  for (let s = 1; s <= 4; s++) logMetrics(db, 'dpo-a', s, { loss: 1 / s, 'rewards/accuracies': s / 4, bad: NaN });
  assert.deepEqual(getMetric(db, 'dpo-a', 'loss').map((r) => r.step), [1, 2, 3, 4]);
  assert.equal(getMetric(db, 'dpo-a', 'bad')[0]!.value, null);
  assert.deepEqual(metricNames(db, 'dpo-a'), ['bad', 'loss', 'rewards/accuracies']);
  truncateMetrics(db, 'dpo-a', 2);
  assert.deepEqual(getMetric(db, 'dpo-a', 'loss').map((r) => r.step), [1, 2]);
  finishRun(db, 'dpo-a', 'failed', { loss: 0.5 }, 'boom');
  startRun(db, { id: 'dpo-a', kind: 'dpo', dir: '/r/dpo-a', config: { beta: 0.1 } }); // resume
  let r = getRun(db, 'dpo-a')!;
  assert.equal(r.status, 'running');
  assert.equal(r.error, null);
  assert.equal(r.finished, null);
  finishRun(db, 'dpo-a', 'completed', { step: 4, loss: 0.25, 'rewards/accuracies': 1 });
  r = getRun(db, 'dpo-a')!;
  assert.deepEqual(r.config, { beta: 0.1 });
  assert.deepEqual(r.finalMetrics, { step: 4, loss: 0.25, 'rewards/accuracies': 1 });
  startRun(db, { id: 'sft-b', kind: 'sft' });
  finishRun(db, 'sft-b', 'failed', { step: 3, loss: 2 }, 'training stopped at step 3: loss = NaN');
  assert.equal(listRuns(db).length, 2);
  assert.deepEqual(listRuns(db, { kind: 'sft' }).map((x) => x.id), ['sft-b']);
  assert.deepEqual(listRuns(db, { status: 'completed' }).map((x) => x.id), ['dpo-a']);
});

test('alignlab runs prints a table with final metrics, failures, and JSON on request', async () => {
  const text = await capture(() => main(['--db', dbPath]));
  const lines = text.split('\n');
  assert.match(lines[0]!, /^id\s+kind\s+status\s+step\s+started\s+time\s+loss\s+rewards\/accuracies$/);
  const dpo = lines.find((l) => l.startsWith('dpo-a'))!;
  assert.match(dpo, /dpo-a\s+dpo\s+completed\s+4\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\S+\s+0\.25\s+1$/);
  assert.match(text, /failures:\nsft-b: training stopped at step 3: loss = NaN/);
  const json = JSON.parse(await capture(() => main(['--db', dbPath, '--json', '--kind', 'dpo'])));
  assert.equal(json.length, 1);
  assert.equal(json[0].finalMetrics.loss, 0.25);
  const custom = await capture(() => main(['--db', dbPath, '--metrics', 'loss', '--status', 'completed']));
  assert.match(custom.split('\n')[0]!, /time\s+loss$/);
  assert.equal(formatRuns([]), 'no runs recorded');
  await assert.rejects(main(['--db', dbPath, '--bogus']), /unknown flag --bogus/);
});
