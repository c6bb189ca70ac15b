// Response cache in the shared SQLite store. A response is keyed by a hash of (provider id, model,
// kind of call, request), written the moment it arrives in its own transaction, so an interrupted
// evaluation loses nothing that came back and a re-run asks the provider only for what is missing.
import { createHash } from 'node:crypto';
import { ensureSchema, type DB } from '../store/db.js';

const DDL = `
CREATE TABLE IF NOT EXISTS eval_cache (
  key        TEXT PRIMARY KEY,
  provider   TEXT NOT NULL,
  model      TEXT NOT NULL,
  kind       TEXT NOT NULL,
  request    TEXT NOT NULL,
  response   TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS eval_cache_provider ON eval_cache (provider, model);
`;

/** JSON with sorted keys and no undefined fields, so equal requests hash equally whatever their key order. */
export function stableStringify(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : stableStringify(x))).join(',')}]`;
  const entries = Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableStringify(x)}`).join(',')}}`;
}

export function cacheKey(provider: string, model: string, kind: string, request: unknown): string {
  return createHash('sha256').update(stableStringify({ provider, model, kind, request })).digest('hex');
}

export interface CacheOptions {
  /** Serve hits from the cache (false = `--no-cache`: always ask the provider). Default true. */
  read?: boolean;
  /** Store fresh responses (replacing older ones). Default true, also under --no-cache, so a later run can resume. */
  write?: boolean;
}

export interface CacheStats {
  hits: number;
  misses: number;
  writes: number;
}

export class ResponseCache {
  readonly stats: CacheStats = { hits: 0, misses: 0, writes: 0 };
  private readonly read: boolean;
  private readonly write: boolean;
  private readonly getStmt;
  private readonly putStmt;
  private readonly putTx;
  /** Identical requests in flight share one provider call (no duplicate work under concurrency). */
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(readonly db: DB, opts: CacheOptions = {}) {
    this.read = opts.read ?? true;
    this.write = opts.write ?? true;
    ensureSchema(db, DDL);
    this.getStmt = db.prepare<[string], { response: string }>('SELECT response FROM eval_cache WHERE key = ?');
    this.putStmt = db.prepare(
      'INSERT OR REPLACE INTO eval_cache (key, provider, model, kind, request, response, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.putTx = db.transaction((args: unknown[]) => this.putStmt.run(...args));
  }

  get<T>(key: string): T | undefined {
    const row = this.getStmt.get(key);
    return row ? (JSON.parse(row.response) as T) : undefined;
  }

  put(key: string, provider: string, model: string, kind: string, request: unknown, response: unknown): void {
    this.putTx.immediate([key, provider, model, kind, stableStringify(request), JSON.stringify(response), Date.now()]);
    this.stats.writes++;
  }

  /** Returns the cached response, or calls `compute`, stores its result and returns it. Errors are never cached. */
  async through<T>(provider: { id: string; model: string }, kind: string, request: unknown, compute: () => Promise<T>): Promise<{ value: T; cached: boolean }> {
    const key = cacheKey(provider.id, provider.model, kind, request);
    if (this.read) {
      const hit = this.get<T>(key);
      if (hit !== undefined) {
        this.stats.hits++;
        return { value: hit, cached: true };
      }
    }
    const pending = this.inflight.get(key) as Promise<T> | undefined;
    if (pending) return { value: await pending, cached: true };
    this.stats.misses++;
    const p = (async () => {
      const value = await compute();
      if (this.write) this.put(key, provider.id, provider.model, kind, request, value);
      return value;
    })();
    this.inflight.set(key, p);
    try {
      return { value: await p, cached: false };
    } finally {
      this.inflight.delete(key);
    }
  }

  /** Number of stored responses, optionally for one provider id. */
  count(provider?: string): number {
    const row = provider
      ? (this.db.prepare('SELECT COUNT(*) AS n FROM eval_cache WHERE provider = ?').get(provider) as { n: number })
      : (this.db.prepare('SELECT COUNT(*) AS n FROM eval_cache').get() as { n: number });
    return row.n;
  }
}
