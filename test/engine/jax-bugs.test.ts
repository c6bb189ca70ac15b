// Minimal cases of jax-js 0.1.25 bugs that shaped our code, each with the place that works around it. These assert
// the bug as it is: when one fails after a jax-js upgrade, the bug is fixed and its workaround can go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, jit, np, type Arr } from '../../src/engine/index.js';

const values = (shape: number[], k: number) =>
  np.array(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.37 * k))).reshape(shape);

test('jax-js 0.1.25 bug: under jit, a unit-axis sum of flip(x)·s with s broadcast reads wrong elements (decoder.ts applyRope avoids flip)', async () => {
  await initEngine('wasm');
  const D = 8;
  // swap halves of each row: [x1, x2] → [x2, x1], a flip of x seen as [6, 2, D/2]; then × s [D]; then materialise
  // it by summing over a unit axis (decoder.ts `contiguous`).
  const f = (x: Arr, s: Arr) => {
    const swapped = np.flip(x.reshape([6, 2, D / 2]), -2).reshape([6, D]).mul(s);
    return swapped.reshape([6, D, 1]).sum(-1);
  };
  const eager = (await f(values([6, D], 1), values([D], 2)).data()) as Float32Array;
  const g = jit(f);
  const jitted = (await g(values([6, D], 1), values([D], 2)).data()) as Float32Array;
  g.dispose();
  // Eager is right: element [0, 5] is x[0, 1]·s[5].
  assert.ok(Math.abs(eager[5]! - Math.fround(Math.sin(1 * 0.37)) * Math.fround(Math.sin(5 * 0.37 * 2))) < 1e-6);
  const wrong = [...eager].filter((v, i) => v !== jitted[i]).length;
  assert.ok(wrong > 0, 'jit now agrees with eager: the bug is fixed, and applyRope could use the fused flip form');
});
