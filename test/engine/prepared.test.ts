// The prepared-kernel memo (src/engine/prepared.ts): with the pinned jax-js it finds the wasm backend, a jitted
// program prepares each kernel once however often it runs, and the values are those of jax-js as shipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, jit, np, type Arr } from '../../src/engine/index.js';
import { kernelPreparationMemoized, setKernelPreparationMemo } from '../../src/engine/prepared.js';

test('after initEngine("wasm") the memo is active on the pinned jax-js', async () => {
  await initEngine('wasm');
  assert.equal(kernelPreparationMemoized(), true);
});

test('a jitted program gives the same values with the memo off and on, run after run', async () => {
  await initEngine('wasm');
  const f = jit((x: Arr, w: Arr) => np.matmul(x.ref.div(np.sqrt(np.square(x).mean(-1, { keepdims: true }).add(1e-5))), w));
  const x = np.array(Float32Array.from({ length: 2 * 96 }, (_, i) => Math.sin(i) * 3), { shape: [2, 96] });
  const w = np.array(Float32Array.from({ length: 96 * 8 }, (_, i) => Math.cos(i) / 9), { shape: [96, 8] });
  try {
    setKernelPreparationMemo(false);
    const want = await f(x.ref, w.ref).data();
    setKernelPreparationMemo(true);
    for (let r = 0; r < 3; r++) assert.deepEqual(await f(x.ref, w.ref).data(), want, `run ${r}`);
    // And the values are right, not merely repeatable: row 0 against a float64 computation.
    const xs = Array.from({ length: 96 }, (_, i) => Math.fround(Math.sin(i) * 3));
    const rms = Math.sqrt(xs.reduce((a, v) => a + v * v, 0) / 96 + 1e-5);
    for (let j = 0; j < 8; j++) {
      const ref = xs.reduce((a, v, i) => a + (v / rms) * Math.fround(Math.cos(i * 8 + j) / 9), 0);
      assert.ok(Math.abs(want[j]! - ref) < 1e-4, `out[0, ${j}] = ${want[j]}, float64 ${ref}`);
    }
  } finally {
    setKernelPreparationMemo(true);
    x.dispose();
    w.dispose();
    f.dispose();
  }
});
