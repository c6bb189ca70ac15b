// `alignlab dashboard`: the runs, studies and evaluations in the SQLite store, on a page at
// http://127.0.0.1:8686/ that follows them live (server-sent events). Bound to 127.0.0.1 only; runs
// until SIGINT/SIGTERM, then closes its connections and exits 130/143.
//
//   alignlab dashboard [--port 8686] [--db FILE]

import { resolve } from 'node:path';
import { command, integer, parse, ranged } from './args.js';
import { interrupts } from './signals.js';
import { defaultDbPath } from '../store/db.js';
import { DEFAULT_DASHBOARD_PORT } from '../server/dashboard-port.js';
import type { Dashboard } from '../server/dashboard.js';

/** Printed once by `alignlab train` and `alignlab study` when they start. */
export const DASHBOARD_HINT = `watch live: alignlab dashboard (then open http://127.0.0.1:${DEFAULT_DASHBOARD_PORT}/)`;

export const cli = () =>
  command('dashboard', 'show the training runs, studies and evaluations in the store on a live page at http://127.0.0.1:PORT/')
    .option('--port <n>', 'port on 127.0.0.1 (0 picks a free one)', ranged('in 0..65535', (n) => n >= 0 && n <= 65535, integer), DEFAULT_DASHBOARD_PORT)
    .option('--db <file>', 'SQLite store (default $ALIGNLAB_DB or .alignlab/alignlab.db)');

interface Flags {
  port: number;
  db?: string;
}

export interface DashboardDeps {
  /** Stops the dashboard when aborted (default: SIGINT / SIGTERM, exit 130 / 143). */
  signal?: AbortSignal;
  /** Called once the page is served. */
  onListening?: (d: Dashboard) => void;
  log?: (line: string) => void;
}

export async function main(argv: string[], deps: DashboardDeps = {}): Promise<number | void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<Flags>();
  const log = deps.log ?? ((l: string) => console.error(l));
  const dbPath = resolve(f.db ?? defaultDbPath());
  const stops = deps.signal ? null : interrupts((sig) => `${sig}: stopping the dashboard`);
  const signal = deps.signal ?? stops!.signal;
  try {
    let d: Dashboard;
    try {
      const { startDashboard } = await import('../server/dashboard.js'); // loaded only here: train/study import the hint
      d = await startDashboard({ dbPath, port: f.port, log });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE')
        throw new Error(`port ${f.port} on 127.0.0.1 is in use (another dashboard?); choose another with --port, or --port 0 for any free one`);
      throw e;
    }
    console.log(`dashboard: ${d.url}`);
    log(`showing ${dbPath}; Ctrl-C stops it`);
    deps.onListening?.(d);
    await new Promise<void>((done) => (signal.aborted ? done() : signal.addEventListener('abort', () => done(), { once: true })));
    await d.close();
  } finally {
    stops?.dispose();
  }
  return stops?.exitCode();
}
