// Evaluations as the dashboard shows them: each `alignlab eval` run's progress (phase, done/total) while it
// runs, and when it completed its leaderboard, read from the store's evals / eval_scores tables
// (store/evals.ts, written by eval/runner.ts).

import type { DB } from '../store/db.js';
import { evalScores, listEvals, type EvalRow, type EvalScore } from '../store/evals.js';

/** A running evaluation whose row has not been written for this long belongs to a process that is gone. */
export const STALE_MS = 120_000;
const SHOWN = 20;

export interface LeaderboardEntry {
  label: string;
  score: number;
  lo: number | null;
  hi: number | null;
}

export interface EvalView {
  id: string;
  name: string;
  dir: string | null;
  status: string;
  /** 'running' but silent for STALE_MS: the process was probably killed. */
  stale: boolean;
  phase: string | null;
  done: number;
  total: number;
  started: string;
  finished: string | null;
  error: string | null;
  models: string[];
  /** What the leaderboard is ranked by: the pairwise rating when there is one, else the first axis. */
  primary: string | null;
  /** Leaderboard table: a model column, then one per reported number ("rating", axes, "task:<name> <metric>"). */
  columns: string[];
  rows: (string | number | null)[][];
  /** The primary number per model, best first, with its interval where reported. */
  scores: LeaderboardEntry[];
}

export interface EvalState {
  evals: EvalView[];
}

const column = (s: EvalScore) => (s.scope === 'rating' ? 'rating' : s.scope === 'axis' ? s.metric : `${s.scope.replace(/^task:/, '')} ${s.metric}`);
const order = (s: EvalScore) => (s.scope === 'rating' ? 0 : s.scope === 'axis' ? 1 : 2);
const num = (x: number | undefined) => (typeof x === 'number' && Number.isFinite(x) ? x : null);

/** One evaluation's row and scores as the page draws them. */
export function evalView(e: EvalRow, scores: EvalScore[], now = Date.now()): EvalView {
  const sorted = [...scores].sort((a, b) => order(a) - order(b) || a.scope.localeCompare(b.scope) || a.metric.localeCompare(b.metric));
  const columns = [...new Set(sorted.map(column))];
  const models = [...new Set([...e.models.map((m) => m.label), ...scores.map((s) => s.model)])];
  const primary = columns[0] ?? null;
  const cell = new Map(scores.map((s) => [`${s.model}\u0000${column(s)}`, s]));
  const entries: LeaderboardEntry[] = primary === null ? [] : models.flatMap((m) => {
    const s = cell.get(`${m}\u0000${primary}`);
    const score = num(s?.value);
    return s && score !== null ? [{ label: m, score, lo: num(s.lo), hi: num(s.hi) }] : [];
  });
  entries.sort((a, b) => b.score - a.score);
  const rank = new Map(entries.map((x, i) => [x.label, i]));
  const rowModels = [...models].sort((a, b) => (rank.get(a) ?? Infinity) - (rank.get(b) ?? Infinity));
  return {
    id: e.id,
    name: e.name,
    dir: e.dir,
    status: e.status,
    stale: e.status === 'running' && now - Date.parse(e.updated) > STALE_MS,
    phase: e.phase,
    done: e.done,
    total: e.total,
    started: e.started,
    finished: e.finished,
    error: e.error,
    models,
    primary,
    columns: ['model', ...columns],
    rows: rowModels.map((m) => [m, ...columns.map((c) => num(cell.get(`${m}\u0000${c}`)?.value))]),
    scores: entries,
  };
}

/** The most recent evaluations with their leaderboards. */
export function readEvalState(db: DB, now = Date.now()): EvalState {
  return { evals: listEvals(db, { limit: SHOWN }).map((e) => evalView(e, e.status === 'completed' ? evalScores(db, e.id) : [], now)) };
}
