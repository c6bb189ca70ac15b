import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore } from '../../src/store/db.js';
import { cacheKey, ResponseCache, stableStringify } from '../../src/eval/cache.js';

test('cache keys: key order and undefined fields do not matter; provider, model, kind and params do', () => {
  assert.equal(stableStringify({ b: 1, a: [1, { d: undefined, c: 2 }] }), '{"a":[1,{"c":2}],"b":1}');
  const req = { prompt: 'hi', maxTokens: 5, temperature: 0 };
  const k = cacheKey('p:x', 'm', 'complete', req);
  assert.equal(k, cacheKey('p:x', 'm', 'complete', { temperature: 0, maxTokens: 5, prompt: 'hi', stop: undefined }));
  assert.notEqual(k, cacheKey('p:y', 'm', 'complete', req));
  assert.notEqual(k, cacheKey('p:x', 'm2', 'complete', req));
  assert.notEqual(k, cacheKey('p:x', 'm', 'loglikelihood', req));
  assert.notEqual(k, cacheKey('p:x', 'm', 'complete', { ...req, temperature: 0.7 }));
  assert.match(k, /^[0-9a-f]{64}$/);
});

test('responses persist in SQLite across connections; errors are not cached; identical requests in flight share one call', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'alignlab-cache-')), 'store.db');
  const p = { id: 'rule:x', model: 'm' };
  let calls = 0;
  const c1 = new ResponseCache(openStore(file));
  const compute = async () => {
    calls++;
    await new Promise((r) => setTimeout(r, 5));
    return { text: 'hello', finishReason: 'stop' };
  };
  const [a, b] = await Promise.all([c1.through(p, 'complete', { q: 1 }, compute), c1.through(p, 'complete', { q: 1 }, compute)]);
  assert.equal(calls, 1);
  assert.deepEqual(a.value, b.value);
  assert.equal(a.cached, false);
  await assert.rejects(c1.through(p, 'complete', { q: 2 }, async () => Promise.reject(new Error('boom'))), /boom/);
  // A separate connection (as a resumed process would open) sees the stored row, and only that one.
  const raw = new Database(file, { readonly: true });
  const rows = raw.prepare('SELECT provider, model, kind, request, response FROM eval_cache').all() as Record<string, string>[];
  raw.close();
  assert.equal(rows.length, 1);
  assert.deepEqual(JSON.parse(rows[0]!.response!), { text: 'hello', finishReason: 'stop' });
  assert.equal(rows[0]!.request, '{"q":1}');
  const c2 = new ResponseCache(new Database(file));
  const again = await c2.through(p, 'complete', { q: 1 }, compute);
  assert.equal(again.cached, true);
  assert.equal(calls, 1);
  // --no-cache: read nothing, but store the fresh answer over the old one.
  const c3 = new ResponseCache(new Database(file), { read: false });
  const fresh = await c3.through(p, 'complete', { q: 1 }, async () => ({ text: 'new', finishReason: 'stop' }));
  assert.equal(fresh.cached, false);
  assert.deepEqual((await c2.through(p, 'complete', { q: 1 }, compute)).value, { text: 'new', finishReason: 'stop' });
  assert.equal(c2.count(), 1);
});
