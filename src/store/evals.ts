// Evaluations in SQLite: one row per `alignlab eval` run (status, progress, the models, and when it is done
// the whole results.json), and one row per reported number (axis, task metric, rating) so a reader can draw a
// leaderboard without parsing JSON. The output folder's results.json stays the evaluation's own record;
// these rows make evaluations visible across folders while they run (`alignlab dashboard`).
//
// Every write stamps `seq`, a per-table counter that only grows, so a reader can ask "what changed since
// seq N" with one indexed query. This module knows the evaluation's shapes only structurally: it imports
// nothing from eval/.

import { ensureSchema, type DB } from './db.js';

const DDL = `
CREATE TABLE IF NOT EXISTS evals (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  dir TEXT,
  status TEXT NOT NULL,
  started TEXT NOT NULL,
  finished TEXT,
  updated TEXT NOT NULL,
  phase TEXT,
  done INTEGER NOT NULL DEFAULT 0,
  total INTEGER NOT NULL DEFAULT 0,
  models TEXT NOT NULL DEFAULT '[]',
  summary TEXT,
  error TEXT,
  seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS eval_scores (
  eval TEXT NOT NULL REFERENCES evals(id) ON DELETE CASCADE,
  model TEXT NOT NULL,
  scope TEXT NOT NULL,
  metric TEXT NOT NULL,
  value REAL,
  lo REAL,
  hi REAL,
  n INTEGER,
  PRIMARY KEY (eval, model, scope, metric)
);
CREATE INDEX IF NOT EXISTS evals_seq ON evals (seq);
`;

export type EvalStatus = 'running' | 'completed' | 'failed';

export interface EvalModel {
  label: string;
  provider: string;
  model: string;
}

/** One reported number. scope: "axis", "task:<task name>" or "rating"; metric: the axis, metric or "rating". */
export interface EvalScore {
  model: string;
  scope: string;
  metric: string;
  value: number;
  lo?: number;
  hi?: number;
  n?: number;
}

export interface EvalRow {
  id: string;
  name: string;
  dir: string | null;
  status: EvalStatus;
  started: string;
  finished: string | null;
  /** Last write (ISO 8601). A 'running' row not updated for minutes belongs to a process that was killed:
   * a live evaluation writes its progress at least every few seconds (the heartbeat), even while it waits. */
  updated: string;
  /** The phase in progress ("responses", "reference+judge", "pairwise") and its counts. */
  phase: string | null;
  done: number;
  total: number;
  models: EvalModel[];
  /** results.json (everything but the per-sample records), once completed. */
  summary: unknown;
  error: string | null;
  seq: number;
}

export function ensureEvalsSchema(db: DB): void {
  ensureSchema(db, DDL);
  // Stores created before `updated` existed (same day, during development) get the column.
  const cols = db.prepare<[], { name: string }>('PRAGMA table_info(evals)').all();
  if (!cols.some((c) => c.name === 'updated')) db.exec("ALTER TABLE evals ADD COLUMN updated TEXT NOT NULL DEFAULT ''");
}

const fin = (x: number | undefined): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const NEXT_SEQ = '(SELECT coalesce(max(seq), 0) + 1 FROM evals)';

/** Records that an evaluation started. `id` must be unique per run (the runner uses output folder + start time). */
export function startEval(db: DB, e: { id: string; name: string; dir?: string; started: string; models: EvalModel[] }): void {
  ensureEvalsSchema(db);
  db.prepare(
    `INSERT INTO evals (id, name, dir, status, started, updated, models, seq) VALUES (?, ?, ?, 'running', ?, ?, ?, ${NEXT_SEQ})
     ON CONFLICT(id) DO UPDATE SET name = excluded.name, dir = excluded.dir, status = 'running', started = excluded.started,
       updated = excluded.updated, models = excluded.models, finished = NULL, error = NULL, seq = excluded.seq`,
  ).run(e.id, e.name, e.dir ?? null, e.started, new Date().toISOString(), JSON.stringify(e.models));
}

/** The phase in progress and its done/total counts. */
export function updateEvalProgress(db: DB, id: string, p: { phase: string; done: number; total: number }): void {
  db.prepare(`UPDATE evals SET phase = ?, done = ?, total = ?, updated = ?, seq = ${NEXT_SEQ} WHERE id = ?`).run(p.phase, p.done, p.total, new Date().toISOString(), id);
}

/** A finished evaluation: its summary (results.json) and every reported number, replacing earlier ones, in one transaction. */
export function recordEvalResult(db: DB, r: { id: string; name: string; dir?: string; started: string; finished: string; models: EvalModel[]; summary: unknown; scores: EvalScore[] }): void {
  ensureEvalsSchema(db);
  const upsert = db.prepare(
    `INSERT INTO evals (id, name, dir, status, started, finished, updated, models, summary, phase, seq) VALUES (?, ?, ?, 'completed', ?, ?, ?, ?, ?, NULL, ${NEXT_SEQ})
     ON CONFLICT(id) DO UPDATE SET name = excluded.name, dir = excluded.dir, status = 'completed', started = excluded.started,
       finished = excluded.finished, updated = excluded.updated, models = excluded.models, summary = excluded.summary, phase = NULL, error = NULL, seq = excluded.seq`,
  );
  const clear = db.prepare('DELETE FROM eval_scores WHERE eval = ?');
  const put = db.prepare('INSERT OR REPLACE INTO eval_scores (eval, model, scope, metric, value, lo, hi, n) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  db.transaction(() => {
    upsert.run(r.id, r.name, r.dir ?? null, r.started, r.finished, r.finished, JSON.stringify(r.models), JSON.stringify(r.summary));
    clear.run(r.id);
    for (const s of r.scores) put.run(r.id, s.model, s.scope, s.metric, fin(s.value), fin(s.lo), fin(s.hi), s.n ?? null);
  }).immediate();
}

/** An evaluation that stopped with an error (the responses it received are in the response cache). */
export function failEval(db: DB, id: string, error: string): void {
  const now = new Date().toISOString();
  db.prepare(`UPDATE evals SET status = 'failed', finished = ?, updated = ?, error = ?, seq = ${NEXT_SEQ} WHERE id = ?`).run(now, now, error, id);
}

interface RawEval extends Omit<EvalRow, 'models' | 'summary'> {
  models: string;
  summary: string | null;
}

/** Evaluations, newest first; with `sinceSeq`, only those changed after that cursor. */
export function listEvals(db: DB, opts: { sinceSeq?: number; limit?: number } = {}): EvalRow[] {
  ensureEvalsSchema(db);
  const rows = db
    .prepare<[number, number], RawEval>('SELECT id, name, dir, status, started, finished, updated, phase, done, total, models, summary, error, seq FROM evals WHERE seq > ? ORDER BY started DESC, seq DESC LIMIT ?')
    .all(opts.sinceSeq ?? 0, opts.limit ?? 1000);
  return rows.map((r) => ({ ...r, models: JSON.parse(r.models) as EvalModel[], summary: r.summary === null ? null : (JSON.parse(r.summary) as unknown) }));
}

/** The reported numbers of one evaluation (empty until it completes). */
export function evalScores(db: DB, id: string): EvalScore[] {
  ensureEvalsSchema(db);
  const rows = db
    .prepare<[string], { model: string; scope: string; metric: string; value: number | null; lo: number | null; hi: number | null; n: number | null }>(
      'SELECT model, scope, metric, value, lo, hi, n FROM eval_scores WHERE eval = ? ORDER BY model, scope, metric',
    )
    .all(id);
  return rows.map((r) => ({
    model: r.model,
    scope: r.scope,
    metric: r.metric,
    value: r.value ?? NaN,
    ...(r.lo !== null ? { lo: r.lo } : {}),
    ...(r.hi !== null ? { hi: r.hi } : {}),
    ...(r.n !== null ? { n: r.n } : {}),
  }));
}
