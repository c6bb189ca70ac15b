// Study checkpoints in SQLite: one row per study, one per study run (method × setting × seed) and one
// per evaluated checkpoint. study.jsonl in the study's directory stays the study's own record (the report
// reads it); these rows make a study visible across directories while it runs (`alignlab dashboard`).
//
// Writes are upserts keyed by (study, run, step), so a resumed study that re-records a checkpoint
// replaces the row instead of adding a second one. Every write stamps a per-table `seq` that only grows,
// so a reader can ask "what changed since seq N" with one indexed query (an update in place keeps SQLite's
// rowid, which therefore cannot serve as that cursor).
//
// This module knows the study's shapes only structurally (store sits below the study in the import
// order it is used from: train/ and eval/ write here too).

import { ensureSchema, type DB } from './db.js';

const DDL = `
CREATE TABLE IF NOT EXISTS studies (
  id TEXT PRIMARY KEY,
  name TEXT,
  dir TEXT,
  started TEXT,
  finished TEXT,
  base_reward REAL,
  base_kl REAL,
  seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS study_runs (
  study TEXT NOT NULL,
  run TEXT NOT NULL,
  method TEXT NOT NULL,
  setting TEXT NOT NULL DEFAULT '{}',
  seed INTEGER NOT NULL,
  status TEXT NOT NULL,
  reason TEXT,
  seq INTEGER NOT NULL,
  PRIMARY KEY (study, run)
);
CREATE TABLE IF NOT EXISTS study_checkpoints (
  study TEXT NOT NULL,
  run TEXT NOT NULL,
  step REAL NOT NULL,
  kl REAL,
  reward REAL,
  metrics TEXT NOT NULL DEFAULT '{}',
  seq INTEGER NOT NULL,
  PRIMARY KEY (study, run, step)
);
CREATE INDEX IF NOT EXISTS studies_seq ON studies (seq);
CREATE INDEX IF NOT EXISTS study_runs_seq ON study_runs (seq);
CREATE INDEX IF NOT EXISTS study_checkpoints_seq ON study_checkpoints (seq);
`;

export function ensureStudiesSchema(db: DB): void {
  ensureSchema(db, DDL);
}

/** A finite number, or null (SQLite REAL has no NaN; a diverged run's KL is "not measured" here). */
const fin = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const nextSeq = (table: string) => `(SELECT coalesce(max(seq), 0) + 1 FROM ${table})`;

export interface StudyInfo {
  /** Unique id of the study: its output directory (absolute). */
  id: string;
  name?: string;
  dir?: string;
  started?: string;
  finished?: string;
  /** The base policy's gold reward and KL (the frontier's anchor). */
  baseReward?: number;
  baseKl?: number;
}

export interface StudyCheckpointInput {
  study: string;
  run: string;
  method: string;
  setting?: Record<string, number | string>;
  seed: number;
  step: number;
  kl: number;
  reward: number;
  /** The run's status, when the caller knows it; a new run row defaults to 'running'. */
  status?: string;
  /** Further scalar metrics of the checkpoint (rewardStd, entropy, winRate, …); non-numbers are dropped. */
  [metric: string]: unknown;
}

const CORE = new Set(['study', 'run', 'method', 'setting', 'seed', 'step', 'kl', 'reward', 'status', 'reason']);

/** Register or update a study's row (fields left undefined keep their stored value). */
export function recordStudy(db: DB, s: StudyInfo): void {
  ensureStudiesSchema(db);
  db.prepare(
    `INSERT INTO studies (id, name, dir, started, finished, base_reward, base_kl, seq)
     VALUES (@id, @name, @dir, @started, @finished, @baseReward, @baseKl, ${nextSeq('studies')})
     ON CONFLICT(id) DO UPDATE SET name = coalesce(excluded.name, name), dir = coalesce(excluded.dir, dir),
       started = coalesce(excluded.started, started), finished = excluded.finished,
       base_reward = coalesce(excluded.base_reward, base_reward), base_kl = coalesce(excluded.base_kl, base_kl), seq = excluded.seq
     WHERE coalesce(excluded.name, name) IS NOT name OR coalesce(excluded.dir, dir) IS NOT dir
       OR coalesce(excluded.started, started) IS NOT started OR excluded.finished IS NOT finished
       OR coalesce(excluded.base_reward, base_reward) IS NOT base_reward OR coalesce(excluded.base_kl, base_kl) IS NOT base_kl`,
  ).run({
    id: s.id,
    name: s.name ?? null,
    dir: s.dir ?? null,
    started: s.started ?? null,
    finished: s.finished ?? null,
    baseReward: fin(s.baseReward),
    baseKl: fin(s.baseKl),
  });
}

/** Register or update one run of a study (its method, setting, seed and status). */
export function recordStudyRun(
  db: DB,
  r: { study: string; run: string; method: string; setting?: Record<string, number | string>; seed: number; status?: string; reason?: string },
): void {
  ensureStudiesSchema(db);
  db.prepare(
    `INSERT INTO study_runs (study, run, method, setting, seed, status, reason, seq)
     VALUES (@study, @run, @method, @setting, @seed, coalesce(@status, 'running'), @reason, ${nextSeq('study_runs')})
     ON CONFLICT(study, run) DO UPDATE SET method = excluded.method, setting = excluded.setting, seed = excluded.seed,
       status = coalesce(@status, status), reason = CASE WHEN @status IS NULL THEN reason ELSE excluded.reason END, seq = excluded.seq
     WHERE excluded.method IS NOT method OR excluded.setting IS NOT setting OR excluded.seed IS NOT seed
       OR (@status IS NOT NULL AND (@status IS NOT status OR excluded.reason IS NOT reason))`,
  ).run({ study: r.study, run: r.run, method: r.method, setting: JSON.stringify(r.setting ?? {}), seed: r.seed, status: r.status ?? null, reason: r.reason ?? null });
}

/**
 * One evaluated checkpoint of a study run. Re-recording the same (study, run, step) replaces the row,
 * so a resumed study never duplicates checkpoints; re-recording identical values changes nothing (not
 * even seq). Creates the study and run rows when missing.
 */
export function recordStudyCheckpoint(db: DB, c: StudyCheckpointInput): void {
  ensureStudiesSchema(db);
  const metrics: Record<string, number | null> = {};
  // Sorted keys: the same checkpoint recorded twice serialises identically, so an unchanged row stays unchanged.
  for (const k of Object.keys(c).sort()) if (!CORE.has(k) && typeof c[k] === 'number') metrics[k] = fin(c[k]);
  db.transaction(() => {
    db.prepare(`INSERT INTO studies (id, seq) VALUES (?, ${nextSeq('studies')}) ON CONFLICT(id) DO NOTHING`).run(c.study);
    recordStudyRun(db, { study: c.study, run: c.run, method: c.method, setting: c.setting, seed: c.seed, status: c.status });
    db.prepare(
      `INSERT INTO study_checkpoints (study, run, step, kl, reward, metrics, seq) VALUES (?, ?, ?, ?, ?, ?, ${nextSeq('study_checkpoints')})
       ON CONFLICT(study, run, step) DO UPDATE SET kl = excluded.kl, reward = excluded.reward, metrics = excluded.metrics, seq = excluded.seq
       WHERE excluded.kl IS NOT kl OR excluded.reward IS NOT reward OR excluded.metrics IS NOT metrics`,
    ).run(c.study, c.run, c.step, fin(c.kl), fin(c.reward), JSON.stringify(metrics));
  }).immediate();
}

/** The parts of a study's results this store keeps (structurally the study's StudyResults). */
export interface StudyLike {
  name?: string;
  base?: { reward: number; kl: number };
  provenance?: { startedAt?: string; finishedAt?: string };
  runs: {
    id: string;
    method: string;
    setting: Record<string, number | string>;
    seed: number;
    status: string;
    reason?: string;
    /** Scalar fields beyond step, kl and reward are kept as the checkpoint's metrics; arrays are dropped. */
    checkpoints: readonly { step: number; kl: number; reward: number }[];
  }[];
}

/**
 * Record a whole study as it stands (the study row, every run and every checkpoint) in one transaction.
 * Idempotent: calling it again after more runs finished updates rows in place and adds only the new ones.
 */
export function recordStudyResults(db: DB, id: string, s: StudyLike): void {
  ensureStudiesSchema(db);
  db.transaction(() => {
    recordStudy(db, { id, dir: id, name: s.name, started: s.provenance?.startedAt, finished: s.provenance?.finishedAt, baseReward: s.base?.reward, baseKl: s.base?.kl });
    for (const r of s.runs) {
      for (const c of r.checkpoints) {
        recordStudyCheckpoint(db, { ...(c as Record<string, unknown>), study: id, run: r.id, method: r.method, setting: r.setting, seed: r.seed, step: c.step, kl: c.kl, reward: c.reward });
      }
      recordStudyRun(db, { study: id, run: r.id, method: r.method, setting: r.setting, seed: r.seed, status: r.status, reason: r.reason });
    }
  }).immediate();
}

// ---- reading -----------------------------------------------------------------------------------

export interface StudyRow {
  id: string;
  name: string | null;
  dir: string | null;
  started: string | null;
  finished: string | null;
  baseReward: number | null;
  baseKl: number | null;
  seq: number;
}

export interface StudyRunRow {
  study: string;
  run: string;
  method: string;
  setting: Record<string, number | string>;
  seed: number;
  status: string;
  reason: string | null;
  seq: number;
}

export interface StudyCheckpointRow {
  study: string;
  run: string;
  step: number;
  kl: number | null;
  reward: number | null;
  metrics: Record<string, number | null>;
  seq: number;
}

interface RawStudy {
  id: string;
  name: string | null;
  dir: string | null;
  started: string | null;
  finished: string | null;
  base_reward: number | null;
  base_kl: number | null;
  seq: number;
}

const studyFromRaw = (r: RawStudy): StudyRow => ({
  id: r.id,
  name: r.name,
  dir: r.dir,
  started: r.started,
  finished: r.finished,
  baseReward: r.base_reward,
  baseKl: r.base_kl,
  seq: r.seq,
});
const runFromRaw = (r: Omit<StudyRunRow, 'setting'> & { setting: string }): StudyRunRow => ({ ...r, setting: JSON.parse(r.setting) });
const cpFromRaw = (r: Omit<StudyCheckpointRow, 'metrics'> & { metrics: string }): StudyCheckpointRow => ({ ...r, metrics: JSON.parse(r.metrics) });

/** Studies, most recently changed first; `sinceSeq` returns only rows written after that seq. */
export function listStudies(db: DB, o: { sinceSeq?: number } = {}): StudyRow[] {
  ensureStudiesSchema(db);
  return (db.prepare('SELECT * FROM studies WHERE seq > ? ORDER BY seq DESC').all(o.sinceSeq ?? 0) as RawStudy[]).map(studyFromRaw);
}

/** Runs of one study (or of all studies when `study` is undefined), in the order they were first recorded. */
export function studyRuns(db: DB, study?: string, o: { sinceSeq?: number } = {}): StudyRunRow[] {
  ensureStudiesSchema(db);
  const rows = study === undefined
    ? db.prepare('SELECT * FROM study_runs WHERE seq > ? ORDER BY seq').all(o.sinceSeq ?? 0)
    : db.prepare('SELECT * FROM study_runs WHERE study = ? AND seq > ? ORDER BY rowid').all(study, o.sinceSeq ?? 0);
  return (rows as Parameters<typeof runFromRaw>[0][]).map(runFromRaw);
}

/** Checkpoints of one study (or all studies), ordered by run and step; `sinceSeq` for what changed since. */
export function studyCheckpoints(db: DB, study?: string, o: { sinceSeq?: number } = {}): StudyCheckpointRow[] {
  ensureStudiesSchema(db);
  const rows = study === undefined
    ? db.prepare('SELECT * FROM study_checkpoints WHERE seq > ? ORDER BY seq').all(o.sinceSeq ?? 0)
    : db.prepare('SELECT * FROM study_checkpoints WHERE study = ? AND seq > ? ORDER BY run, step').all(study, o.sinceSeq ?? 0);
  return (rows as Parameters<typeof cpFromRaw>[0][]).map(cpFromRaw);
}
