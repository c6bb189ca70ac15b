// Study checkpoints in the SQLite store: upserts keyed by (study, run, step), a seq cursor that moves
// only when a row really changes, and whole-study recording that a resumed study can repeat safely.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/db.js';
import { listStudies, recordStudyCheckpoint, recordStudyResults, studyCheckpoints, studyRuns } from '../../src/store/studies.js';
import type { StudyResults } from '../../src/study/types.js';
import { dpoVsPpo } from '../study/synthetic.js';

const dir = mkdtempSync(join(tmpdir(), 'alignlab-studies-'));
const count = (db: ReturnType<typeof openStore>, study: string) =>
  (db.prepare('SELECT count(*) AS n FROM study_checkpoints WHERE study = ?').get(study) as { n: number }).n;

test('recordStudyCheckpoint: one row per (study, run, step); re-recording replaces, identical values leave seq alone', () => {
  const db = openStore(join(dir, 'a.db'));
  const cp = { study: '/s/one', run: 'dpo-beta=0.1-s1', method: 'dpo', setting: { beta: 0.1 }, seed: 1, kl: 0.5, reward: 0.2, entropy: 3.1, winRate: 0.6 };
  recordStudyCheckpoint(db, { ...cp, step: 0 });
  recordStudyCheckpoint(db, { ...cp, step: 5 });
  const [a, b] = studyCheckpoints(db, '/s/one');
  assert.deepEqual([a!.step, b!.step], [0, 5]);
  assert.deepEqual(b!.metrics, { entropy: 3.1, winRate: 0.6 });
  assert.equal(b!.kl, 0.5);

  recordStudyCheckpoint(db, { ...cp, step: 5 }); // identical: no new row, no new seq
  assert.equal(count(db, '/s/one'), 2);
  assert.deepEqual(studyCheckpoints(db, '/s/one', { sinceSeq: b!.seq }), []);

  recordStudyCheckpoint(db, { ...cp, step: 5, reward: 0.3, kl: NaN }); // changed: replaced in place, seq moves on
  assert.equal(count(db, '/s/one'), 2);
  const changed = studyCheckpoints(db, '/s/one', { sinceSeq: b!.seq });
  assert.equal(changed.length, 1);
  assert.equal(changed[0]!.reward, 0.3);
  assert.equal(changed[0]!.kl, null, 'a non-finite KL is stored as NULL (not measured)');

  // The study and the run rows were created on the way, the run as running.
  assert.deepEqual(listStudies(db).map((s) => s.id), ['/s/one']);
  const [run] = studyRuns(db, '/s/one');
  assert.equal(run!.status, 'running');
  assert.deepEqual(run!.setting, { beta: 0.1 });
});

test('recordStudyResults: a whole study, then a resumed study re-recording it, leaves exactly one row per checkpoint', () => {
  const db = openStore(join(dir, 'b.db'));
  const full: StudyResults = dpoVsPpo({ dpoGain: 0.6, ppoGain: 0.4, seeds: [1, 2] });
  const expected = full.runs.reduce((n, r) => n + r.checkpoints.length, 0);
  // An interrupted study: the first run finished, the second half-way (still running), the rest not started.
  const partial: StudyResults = {
    ...full,
    provenance: { ...full.provenance, finishedAt: undefined },
    runs: [full.runs[0]!, { ...full.runs[1]!, status: 'running', checkpoints: full.runs[1]!.checkpoints.slice(0, 3) }],
  };
  recordStudyResults(db, '/s/two', partial);
  assert.equal(count(db, '/s/two'), full.runs[0]!.checkpoints.length + 3);
  assert.equal(studyRuns(db, '/s/two')[1]!.status, 'running');
  assert.equal(listStudies(db)[0]!.finished, null);

  recordStudyResults(db, '/s/two', full); // resumed and finished
  recordStudyResults(db, '/s/two', full); // and recorded once more at the end
  assert.equal(count(db, '/s/two'), expected);
  const runs = studyRuns(db, '/s/two');
  assert.deepEqual(runs.map((r) => r.run), full.runs.map((r) => r.id));
  assert.deepEqual(runs.map((r) => r.status), full.runs.map((r) => r.status));
  const s = listStudies(db)[0]!;
  assert.equal(s.name, full.name ?? null);
  assert.equal(s.finished, full.provenance.finishedAt ?? null);
  assert.equal(s.baseReward, full.base.reward);
  // Every stored checkpoint carries the study's values.
  const stored = new Map(studyCheckpoints(db, '/s/two').map((c) => [`${c.run}@${c.step}`, c]));
  for (const r of full.runs)
    for (const c of r.checkpoints) {
      const row = stored.get(`${r.id}@${c.step}`)!;
      assert.ok(row, `${r.id}@${c.step} missing`);
      assert.equal(row.reward, c.reward);
      assert.equal(row.metrics.entropy, c.entropy);
    }
});

test('recordStudyResults: an unchanged study writes nothing new (the dashboard sees no spurious updates)', () => {
  const db = openStore(join(dir, 'c.db'));
  const study = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5, seeds: [1] });
  recordStudyResults(db, '/s/three', study);
  const seq = Math.max(...studyCheckpoints(db, '/s/three').map((c) => c.seq));
  const runSeq = Math.max(...studyRuns(db, '/s/three').map((r) => r.seq));
  const studySeq = listStudies(db)[0]!.seq;
  recordStudyResults(db, '/s/three', study);
  assert.deepEqual(studyCheckpoints(db, '/s/three', { sinceSeq: seq }), []);
  assert.deepEqual(studyRuns(db, '/s/three', { sinceSeq: runSeq }), []);
  assert.deepEqual(listStudies(db, { sinceSeq: studySeq }), []);
});
