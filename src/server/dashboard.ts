// `alignlab dashboard`: a page on 127.0.0.1 that shows the training runs, studies and evaluations in the
// SQLite store and follows them live.
//
// One timer polls the store every `pollMs` (default 500 ms) with cheap cursor queries (metric rowids, the
// studies' seq columns) and pushes what changed to every open page as server-sent events; a page that
// connects (or reconnects) first gets the whole current state. The page draws its charts with vega and
// vega-lite, served from node_modules by this server: the page makes no request to any other host (its
// Content-Security-Policy forbids it), and the server answers only requests addressed to its own loopback
// host and port (a DNS-rebinding page elsewhere cannot read the store through it).

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { openStore, type DB } from '../store/db.js';
import { ensureRunsSchema, listRunSummaries, maxMetricRowid, metricsSince, runMetrics, type MetricRow, type RunSummary } from '../store/runs.js';
import { ensureStudiesSchema, listStudies, studyCheckpoints, studyRuns, type StudyCheckpointRow, type StudyRow, type StudyRunRow } from '../store/studies.js';
import { paretoFrontier } from '../study/frontier.js';
import { METHOD_LABELS, type Method } from '../study/types.js';
import { ensureEvalsSchema } from '../store/evals.js';
import { readEvalState, type EvalState } from './dashboard-evals.js';
import { PAGE_CSS, PAGE_JS, pageHtml } from './dashboard-page.js';

import { DEFAULT_DASHBOARD_PORT } from './dashboard-port.js';

export { DEFAULT_DASHBOARD_PORT };
const HOST = '127.0.0.1';

/** Metrics drawn as curves (losses, rewards and scores, KL, accuracies); the rest stay in the store. */
export const CURVE_METRIC = /loss|reward|score|margin|kl|accurac/i;
/** A new page gets the curves of this many most recent runs (and of every running one); later rows of any run arrive live. */
const SNAPSHOT_RUNS = 30;
const RUNS_LISTED = 300;
const EVAL_RECHECK_MS = 10_000;

/** [run, step, name, value]: metric rows travel as arrays (a long run has tens of thousands). */
export type MetricTuple = [string, number, string, number | null];

export interface FrontierRow {
  method: string;
  order: number;
  kl: number;
  reward: number;
  run: string;
}

export interface StudyView {
  study: StudyRow;
  runs: StudyRunRow[];
  checkpoints: StudyCheckpointRow[];
  /** Each method's reward-vs-KL frontier over the checkpoints so far, anchored at the base policy (KL 0). */
  frontier: FrontierRow[];
}

/** What the page receives: the whole state (`reset: true`) or what changed since the previous message. */
export interface Update {
  reset: boolean;
  runs: RunSummary[];
  metrics: MetricTuple[];
  /** Runs whose metrics were rewritten (a resumed run): the page drops what it had of them before applying `metrics`. */
  replaceMetrics: string[];
  studies: StudyView[];
  /** The evaluations, when anything about them changed (always on reset); null: unchanged. */
  evals: EvalState | null;
}

const tuple = (m: MetricRow): MetricTuple => [m.run, m.step, m.name, m.value];
const label = (method: string) => METHOD_LABELS[method as Method] ?? method;

/** A study as the page draws it; the frontier is computed here with the study's own definition (study/frontier.ts). */
export function studyView(db: DB, study: StudyRow): StudyView {
  const runs = studyRuns(db, study.id);
  const checkpoints = studyCheckpoints(db, study.id);
  const method = new Map(runs.map((r) => [r.run, r.method]));
  const base = study.baseReward !== null ? [{ kl: 0, reward: study.baseReward, run: 'base' }] : [];
  const frontier = [...new Set(runs.map((r) => r.method))].flatMap((m) =>
    paretoFrontier([
      ...base,
      ...checkpoints.filter((c) => method.get(c.run) === m && c.kl !== null && c.reward !== null).map((c) => ({ kl: c.kl!, reward: c.reward!, run: c.run })),
    ]).map((p, order) => ({ method: label(m), order, kl: p.kl, reward: p.reward, run: p.run })),
  );
  return { study, runs, checkpoints, frontier };
}

/**
 * Reads the store for the page: `state()` for a page that just connected, `poll()` for what changed since
 * the previous poll (null when nothing did). Keeps cursors only; the store stays the one copy of the data.
 */
export class StoreFeed {
  private metricCursor = 0;
  private studySeq = 0;
  private studyRunSeq = 0;
  private checkpointSeq = 0;
  private runSig = new Map<string, string>();
  private evalSig = '';
  private evalSeq = 0;
  private evalChecked = 0;

  /** `db` may be read-only when the store's tables exist already (startDashboard creates them first). */
  constructor(private readonly db: DB) {
    ensureRunsSchema(db);
    ensureStudiesSchema(db);
    ensureEvalsSchema(db);
    this.resetCursors();
  }

  /** Move every cursor to the store's present state. */
  private resetCursors(): void {
    this.runSig = new Map(listRunSummaries(this.db, RUNS_LISTED).map((r) => [r.id, signature(r)]));
    this.metricCursor = maxMetricRowid(this.db);
    this.studySeq = maxSeq(this.db, 'studies');
    this.studyRunSeq = maxSeq(this.db, 'study_runs');
    this.checkpointSeq = maxSeq(this.db, 'study_checkpoints');
    this.evalSig = JSON.stringify(readEvalState(this.db));
    this.evalSeq = maxSeq(this.db, 'evals');
    this.evalChecked = Date.now();
  }

  /**
   * The whole present state, for a page that just connected. Leaves the cursors alone (other pages
   * still need what the next poll finds); rows it shares with that poll are keyed, so repeats are harmless.
   */
  state(): Update {
    const runs = listRunSummaries(this.db, RUNS_LISTED);
    const follow = runs.filter((r, i) => i < SNAPSHOT_RUNS || r.status === 'running').map((r) => r.id);
    const metrics = runMetrics(this.db, follow).filter((m) => CURVE_METRIC.test(m.name));
    const studies = listStudies(this.db).map((s) => studyView(this.db, s));
    return { reset: true, runs, metrics: metrics.map(tuple), replaceMetrics: [], studies, evals: readEvalState(this.db) };
  }

  poll(): Update | null {
    // A resumed run deletes its newest metric rows (truncateMetrics): when rowids went down, start over.
    if (maxMetricRowid(this.db) < this.metricCursor) {
      this.resetCursors();
      return this.state();
    }
    const runs = listRunSummaries(this.db, RUNS_LISTED).filter((r) => this.runSig.get(r.id) !== signature(r));
    const replaceMetrics: string[] = [];
    const metrics: MetricTuple[] = [];
    for (const r of runs) {
      // A known run that is running again was resumed: its metrics after the resumed step were rewritten.
      // (The loop registers the run and truncates its metrics back to back; a poll landing between the two
      // sends the old tail once more, and the redone steps, which are keyed the same, replace it on the page.)
      const before = this.runSig.get(r.id);
      if (before !== undefined && !before.startsWith('running|') && r.status === 'running') replaceMetrics.push(r.id);
      this.runSig.set(r.id, signature(r));
    }
    const cursor = this.metricCursor;
    if (replaceMetrics.length) metrics.push(...runMetrics(this.db, replaceMetrics).filter((m) => CURVE_METRIC.test(m.name) && m.rowid <= cursor).map(tuple));
    for (const m of metricsSince(this.db, cursor)) {
      this.metricCursor = Math.max(this.metricCursor, m.rowid);
      if (CURVE_METRIC.test(m.name)) metrics.push(tuple(m));
    }

    // Studies: any study whose own row, runs or checkpoints changed is sent again whole (a study is small).
    const touched = new Set<string>();
    for (const s of listStudies(this.db, { sinceSeq: this.studySeq })) {
      touched.add(s.id);
      this.studySeq = Math.max(this.studySeq, s.seq);
    }
    for (const r of studyRuns(this.db, undefined, { sinceSeq: this.studyRunSeq })) {
      touched.add(r.study);
      this.studyRunSeq = Math.max(this.studyRunSeq, r.seq);
    }
    for (const c of studyCheckpoints(this.db, undefined, { sinceSeq: this.checkpointSeq })) {
      touched.add(c.study);
      this.checkpointSeq = Math.max(this.checkpointSeq, c.seq);
    }
    const studies = touched.size ? listStudies(this.db).filter((s) => touched.has(s.id)).map((s) => studyView(this.db, s)) : [];

    // Evaluations: re-read when a row was written (every write moves evals.seq, a result's scores included),
    // and every few seconds anyway, so a running evaluation that went silent gets its stale flag.
    let evals: EvalState | null = null;
    let evalsChanged = false;
    const evalSeq = maxSeq(this.db, 'evals');
    if (evalSeq !== this.evalSeq || Date.now() - this.evalChecked > EVAL_RECHECK_MS) {
      evals = readEvalState(this.db);
      const evalSig = JSON.stringify(evals);
      evalsChanged = evalSig !== this.evalSig;
      this.evalSig = evalSig;
      this.evalSeq = evalSeq;
      this.evalChecked = Date.now();
    }

    if (!runs.length && !metrics.length && !studies.length && !evalsChanged) return null;
    return { reset: false, runs, metrics, replaceMetrics, studies, evals: evalsChanged ? evals : null };
  }
}

const signature = (r: RunSummary) => `${r.status}|${r.started}|${r.finished}|${JSON.stringify(r.finalMetrics)}|${r.error}`;
const maxSeq = (db: DB, table: string) => (db.prepare(`SELECT coalesce(max(seq), 0) AS m FROM ${table}`).get() as { m: number }).m;

// ---- HTTP ---------------------------------------------------------------------------------------

/** vega and vega-lite's browser builds (UMD, globals `vega` and `vegaLite`), found through Node's resolver. */
function vendorScripts(): Record<string, string> {
  const require = createRequire(import.meta.url);
  const build = (pkg: string) => dirname(require.resolve(pkg)); // both packages' main entries live in build/
  return {
    '/assets/vega.min.js': readFileSync(join(build('vega'), 'vega.min.js'), 'utf-8'),
    '/assets/vega-lite.min.js': readFileSync(join(build('vega-lite'), 'vega-lite.min.js'), 'utf-8'),
  };
}

// vega compiles its expressions with Function(), hence 'unsafe-eval'; everything else is this origin only.
const CSP = [
  "default-src 'none'",
  "script-src 'self' 'unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface DashboardOptions {
  /** SQLite store to show (created, empty, when missing). */
  dbPath: string;
  /** Port on 127.0.0.1; 0 picks a free one. Default 8686. */
  port?: number;
  /** How often the store is polled for new rows, ms. Default 500. */
  pollMs?: number;
  log?: (line: string) => void;
}

export interface Dashboard {
  url: string;
  port: number;
  /** Pages connected right now. */
  clients(): number;
  close(): Promise<void>;
}

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const log = o.log ?? (() => {});
  // Create the store's tables once through the ordinary (writing) connection, then read through a
  // read-only one of our own: the dashboard never writes, and never holds a writer's lock.
  let db: DB;
  let feed: StoreFeed;
  try {
    const writer = openStore(o.dbPath);
    ensureRunsSchema(writer);
    ensureStudiesSchema(writer);
    ensureEvalsSchema(writer);
    db = new Database(o.dbPath, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 2000');
    feed = new StoreFeed(db);
  } catch (e) {
    throw new Error(`${o.dbPath}: cannot open the store: ${(e as Error).message}`);
  }
  const assets: Record<string, { type: string; body: string }> = {
    '/': { type: 'text/html; charset=utf-8', body: pageHtml(resolve(o.dbPath)) },
    '/assets/dashboard.js': { type: 'text/javascript; charset=utf-8', body: PAGE_JS },
    '/assets/dashboard.css': { type: 'text/css; charset=utf-8', body: PAGE_CSS },
    ...Object.fromEntries(Object.entries(vendorScripts()).map(([k, body]) => [k, { type: 'text/javascript; charset=utf-8', body }])),
  };
  const clients = new Set<ServerResponse>();
  let port = 0;

  const send = (res: ServerResponse, u: Update) => res.write(`event: update\ndata: ${JSON.stringify(u)}\n\n`);

  // Ordering: a page's snapshot may overlap the next poll's rows; the page keys rows, so a repeat is harmless.
  let lastError = '';
  function tick(): void {
    try {
      const u = feed.poll();
      lastError = '';
      if (u) for (const c of clients) send(c, u);
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== lastError) log(`dashboard: reading the store failed (will retry): ${msg}`);
      lastError = msg;
    }
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const host = req.headers.host ?? '';
    if (host !== `${HOST}:${port}` && host !== `localhost:${port}`) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end(`misdirected request: this dashboard answers only http://${HOST}:${port}/\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('only GET\n');
      return;
    }
    const path = new URL(req.url ?? '/', `http://${HOST}`).pathname;
    const common = { 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };
    if (path === '/events') {
      res.writeHead(200, { ...common, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write('retry: 1000\n\n');
      try {
        tick(); // pages already open get what is new first, then this one gets everything
        send(res, feed.state());
      } catch (e) {
        log(`dashboard: reading the store failed: ${(e as Error).message}`);
      }
      clients.add(res);
      req.on('close', () => clients.delete(res));
      return;
    }
    if (path === '/api/state') {
      res.writeHead(200, { ...common, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(feed.state()));
      return;
    }
    const asset = assets[path];
    if (!asset) {
      res.writeHead(404, { ...common, 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { ...common, 'content-type': asset.type, 'cache-control': 'no-cache' }).end(req.method === 'HEAD' ? undefined : asset.body);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port ?? DEFAULT_DASHBOARD_PORT, HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    db.close();
    throw e;
  }

  const timer = setInterval(tick, o.pollMs ?? 500);
  // Comments keep idle connections (and proxies between) from timing out.
  const keepalive = setInterval(() => {
    for (const c of clients) c.write(': keepalive\n\n');
  }, 15000);

  port = (server.address() as AddressInfo).port;
  const url = `http://${HOST}:${port}/`;

  return {
    url,
    port,
    clients: () => clients.size,
    async close() {
      clearInterval(timer);
      clearInterval(keepalive);
      for (const c of clients) c.end();
      clients.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      db.close();
    },
  };
}
