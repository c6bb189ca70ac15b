// Training runs and their metrics in SQLite. One row per run (its config, status and final
// metrics) and one row per (run, step, metric name). The JSONL file in the run directory is the
// primary record; these tables make runs queryable across directories (`alignlab runs`, the study).

import { ensureSchema, type DB } from './db.js';

export type RunStatus = 'running' | 'completed' | 'stopped' | 'interrupted' | 'failed';

export interface RunRow {
  id: string;
  kind: string;
  dir: string | null;
  config: unknown;
  status: RunStatus;
  started: string; // ISO 8601
  finished: string | null;
  finalMetrics: Record<string, number> | null;
  error: string | null;
}

const DDL = `
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  dir TEXT,
  config TEXT NOT NULL DEFAULT '{}',
  status TEXT NOT NULL,
  started TEXT NOT NULL,
  finished TEXT,
  final_metrics TEXT,
  error TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  name TEXT NOT NULL,
  value REAL,
  PRIMARY KEY (run_id, step, name)
);
`;

export function ensureRunsSchema(db: DB): void {
  ensureSchema(db, DDL);
}

const now = () => new Date().toISOString();

/**
 * Register a run as running. A new id inserts; an existing id (a resumed run) keeps its start time
 * and clears its finish, so the listing shows it running again.
 */
export function startRun(db: DB, r: { id: string; kind: string; dir?: string; config?: unknown }): void {
  ensureRunsSchema(db);
  db.prepare(
    `INSERT INTO runs (id, kind, dir, config, status, started) VALUES (@id, @kind, @dir, @config, 'running', @started)
     ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, dir = excluded.dir, config = excluded.config,
       status = 'running', finished = NULL, error = NULL`,
  ).run({ id: r.id, kind: r.kind, dir: r.dir ?? null, config: JSON.stringify(r.config ?? {}), started: now() });
}

/** Metric values of one step; non-finite values are stored as NULL. */
export function logMetrics(db: DB, runId: string, step: number, values: Record<string, number>): void {
  const ins = db.prepare('INSERT OR REPLACE INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    for (const [name, v] of Object.entries(values)) ins.run(runId, step, name, Number.isFinite(v) ? v : null);
  }).immediate();
}

/** Forget metrics logged after `step` (a resumed run re-does those steps). */
export function truncateMetrics(db: DB, runId: string, afterStep: number): void {
  ensureRunsSchema(db);
  db.prepare('DELETE FROM metrics WHERE run_id = ? AND step > ?').run(runId, afterStep);
}

export function finishRun(db: DB, runId: string, status: RunStatus, finalMetrics: Record<string, number> | null, error?: string): void {
  db.prepare('UPDATE runs SET status = ?, finished = ?, final_metrics = ?, error = ? WHERE id = ?').run(
    status,
    now(),
    finalMetrics ? JSON.stringify(finalMetrics, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x)) : null,
    error ?? null,
    runId,
  );
}

interface RawRun {
  id: string;
  kind: string;
  dir: string | null;
  config: string;
  status: RunStatus;
  started: string;
  finished: string | null;
  final_metrics: string | null;
  error: string | null;
}

const fromRaw = (r: RawRun): RunRow => ({
  id: r.id,
  kind: r.kind,
  dir: r.dir,
  config: JSON.parse(r.config),
  status: r.status,
  started: r.started,
  finished: r.finished,
  finalMetrics: r.final_metrics ? JSON.parse(r.final_metrics) : null,
  error: r.error,
});

export function getRun(db: DB, id: string): RunRow | null {
  ensureRunsSchema(db);
  const r = db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as RawRun | undefined;
  return r ? fromRaw(r) : null;
}

export function listRuns(db: DB, filter: { kind?: string; status?: string; limit?: number } = {}): RunRow[] {
  ensureRunsSchema(db);
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.kind) {
    where.push('kind = ?');
    args.push(filter.kind);
  }
  if (filter.status) {
    where.push('status = ?');
    args.push(filter.status);
  }
  const sql = `SELECT * FROM runs ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY started DESC, id${
    filter.limit ? ' LIMIT ' + Math.floor(filter.limit) : ''
  }`;
  return (db.prepare(sql).all(...args) as RawRun[]).map(fromRaw);
}

/** The series of one metric of a run, ordered by step. */
export function getMetric(db: DB, runId: string, name: string): { step: number; value: number | null }[] {
  ensureRunsSchema(db);
  return db.prepare('SELECT step, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY step').all(runId, name) as {
    step: number;
    value: number | null;
  }[];
}

export function metricNames(db: DB, runId: string): string[] {
  ensureRunsSchema(db);
  return (db.prepare('SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name').all(runId) as { name: string }[]).map((r) => r.name);
}

// ---- change feed (alignlab dashboard) -----------------------------------------------------------
// Metric rows are read back in rowid order: `logMetrics` inserts (or replaces, which deletes and
// re-inserts), so every new value gets a rowid above all earlier ones, except after `truncateMetrics`
// deleted the newest rows (a resumed run), which a reader notices as `maxMetricRowid` going down.

export interface MetricRow {
  rowid: number;
  run: string;
  step: number;
  name: string;
  value: number | null;
}

/** The highest metric rowid (0 for an empty table): a cursor for `metricsSince`. */
export function maxMetricRowid(db: DB): number {
  ensureRunsSchema(db);
  return (db.prepare('SELECT coalesce(max(rowid), 0) AS m FROM metrics').get() as { m: number }).m;
}

/** Metric rows written after `rowid`, oldest first, at most `limit`. */
export function metricsSince(db: DB, rowid: number, limit = 20000): MetricRow[] {
  ensureRunsSchema(db);
  return db
    .prepare('SELECT rowid, run_id AS run, step, name, value FROM metrics WHERE rowid > ? ORDER BY rowid LIMIT ?')
    .all(rowid, Math.floor(limit)) as MetricRow[];
}

/** Every metric row of the given runs, by run and step. */
export function runMetrics(db: DB, runIds: readonly string[]): MetricRow[] {
  ensureRunsSchema(db);
  const q = db.prepare('SELECT rowid, run_id AS run, step, name, value FROM metrics WHERE run_id = ? ORDER BY step, name');
  return runIds.flatMap((id) => q.all(id) as MetricRow[]);
}

/** A run without its config (the listing a dashboard polls). */
export type RunSummary = Omit<RunRow, 'config'>;

/** The most recently started runs, newest first, without their configs. */
export function listRunSummaries(db: DB, limit = 300): RunSummary[] {
  ensureRunsSchema(db);
  const rows = db
    .prepare('SELECT id, kind, dir, status, started, finished, final_metrics, error FROM runs ORDER BY started DESC, id LIMIT ?')
    .all(Math.floor(limit)) as Omit<RawRun, 'config'>[];
  return rows.map((r) => ({ id: r.id, kind: r.kind, dir: r.dir, status: r.status, started: r.started, finished: r.finished, finalMetrics: r.final_metrics ? JSON.parse(r.final_metrics) : null, error: r.error }));
}
