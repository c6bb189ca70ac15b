// Shared helpers for the loss tests: engine init, reading arrays, float64 reference math, seeded data.
import assert from 'node:assert/strict';
import { initEngine, np, Rng, type Arr } from '../../../src/engine/index.js';

// wasm unless ALIGNLAB_DEVICE says otherwise (the same tests run on webgpu: ALIGNLAB_DEVICE=webgpu npm test -- losses).
export const ready = initEngine();

/** Read an array to a plain number[] (consumes it). */
export async function read(x: Arr): Promise<number[]> {
  return Array.from(await x.data(), Number);
}

export async function scalar(x: Arr): Promise<number> {
  return (await read(x))[0]!;
}

/**
 * |a − e| ≤ tol·max(1, |e|) elementwise (float32 results against float64 references). The default 5e-5 is set by
 * jax-js 0.1.25's wasm `log`, which is only ~2e-5 accurate in places (log(1.999): 0.6926347 vs 0.6926471).
 */
export function close(actual: number | ArrayLike<number>, expected: number | ArrayLike<number>, tol = 5e-5, what = ''): void {
  const a = typeof actual === 'number' ? [actual] : Array.from(actual);
  const e = typeof expected === 'number' ? [expected] : Array.from(expected);
  assert.equal(a.length, e.length, `${what}: length ${a.length} vs ${e.length}`);
  for (let i = 0; i < a.length; i++) {
    const ok = Math.abs(a[i]! - e[i]!) <= tol * Math.max(1, Math.abs(e[i]!));
    assert.ok(ok, `${what}[${i}]: got ${a[i]}, expected ${e[i]} (tol ${tol})`);
  }
}

export const f32 = (data: number[] | Float32Array, shape?: number[]): Arr =>
  np.array(Float32Array.from(data), { shape: shape ?? [data.length] });
export const i32 = (data: number[], shape: number[]): Arr => np.array(Int32Array.from(data), { dtype: np.int32, shape });

/** n normal draws (float64 JS numbers), reproducible. */
export function normals(n: number, seed: number, scale = 1): number[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.normal() * scale);
}

/** Float32 rounding, so float64 references see exactly the inputs the device sees. */
export const round32 = (xs: number[]): number[] => Array.from(Float32Array.from(xs));

export const logSigmoid64 = (x: number): number => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));
export const sigmoid64 = (x: number): number => 1 / (1 + Math.exp(-x));
export const mean64 = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Row-wise log-softmax in float64: logits [N·V] → [N][V]. */
export function logSoftmax64(logits: number[], V: number): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < logits.length; i += V) {
    const row = logits.slice(i, i + V);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, z) => s + Math.exp(z - m), 0));
    rows.push(row.map((z) => z - lse));
  }
  return rows;
}
