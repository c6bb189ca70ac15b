// Counts jax-js backend buffers alive, through its internal getBackend (not public API; ../shared/ENGINE.md §1):
// the way leak tests see whether a program frees what it allocates.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';

type Backend = { malloc: (...a: unknown[]) => unknown; incRef: (s: unknown) => void; decRef: (s: unknown) => void };

export interface LiveBuffers {
  /** Buffers allocated and not yet freed since tracking began. */
  count(): number;
  /** Puts the backend's own functions back. */
  restore(): void;
}

export async function trackLiveBuffers(device: string): Promise<LiveBuffers> {
  const dist = new URL('.', import.meta.resolve('@jax-js/jax')).pathname;
  const chunk = readdirSync(dist).find((f) => /^backend-.*\.js$/.test(f));
  assert.ok(chunk, `no backend-*.js chunk in ${dist}: the jax-js internals changed, update this helper`);
  const getBackend = Object.values(await import(dist + chunk)).find((f) => (f as { name?: string })?.name === 'getBackend') as (d: string) => Backend;
  const be = getBackend(device), live = new Map<unknown, number>();
  const [m0, i0, d0] = [be.malloc.bind(be), be.incRef.bind(be), be.decRef.bind(be)];
  be.malloc = (...a) => {
    const x = m0(...a);
    live.set(x, 1);
    return x;
  };
  be.incRef = (x) => {
    i0(x);
    live.set(x, (live.get(x) ?? 0) + 1);
  };
  be.decRef = (x) => {
    d0(x);
    const r = (live.get(x) ?? 1) - 1;
    if (r > 0) live.set(x, r);
    else live.delete(x);
  };
  return { count: () => live.size, restore: () => Object.assign(be, { malloc: m0, incRef: i0, decRef: d0 }) };
}
