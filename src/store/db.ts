// One SQLite file holds runs, metrics, samples and cached responses. Each module creates its own
// tables with `CREATE TABLE IF NOT EXISTS` through `ensureSchema`, so opening the store is cheap and safe.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export type DB = Database.Database;

/** Default store: $ALIGNLAB_DB, else .alignlab/alignlab.db under the working directory. */
export function defaultDbPath(): string {
  return resolve(process.env.ALIGNLAB_DB ?? '.alignlab/alignlab.db');
}

const open = new Map<string, DB>();

export function openStore(path = defaultDbPath()): DB {
  const key = path === ':memory:' ? `:memory:${open.size}` : resolve(path);
  const hit = open.get(key);
  if (hit && hit.open) return hit;
  if (path !== ':memory:') mkdirSync(dirname(key), { recursive: true });
  const db = new Database(path);
  // First, so that even switching to WAL waits for another process's lock instead of failing.
  db.pragma('busy_timeout = 5000');
  db.pragma('journal_mode = WAL'); // readers (alignlab runs) never block a training writer
  db.pragma('synchronous = NORMAL');
  if (path !== ':memory:') open.set(key, db);
  return db;
}

/**
 * Every write transaction here is `.immediate()`: it takes the write lock when it begins, so a concurrent writer
 * (a study's helper processes, a training run beside the dashboard) waits up to busy_timeout for it. A deferred
 * transaction that reads first (CREATE TABLE IF NOT EXISTS, a max(seq)) and writes later fails at once with
 * SQLITE_BUSY when another process wrote in between: SQLite cannot wait there without breaking isolation.
 */
export function ensureSchema(db: DB, ddl: string): void {
  db.exec(ddl);
}

export function closeAll(): void {
  for (const db of open.values()) if (db.open) db.close();
  open.clear();
}
