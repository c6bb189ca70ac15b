import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jit, grad, valueAndGrad, type Arr } from '../../../src/engine/index.js';
import { rewardLoss, lastTokenValues, maskedMeanValues, poolValues } from '../../../src/train/losses/reward.js';
import { ready, read, scalar, close, f32, round32, logSigmoid64, mean64 } from './helpers.js';

await ready;
const rc = round32([1.5, -0.2, 0.3, 2.0]), rr = round32([0.5, 0.4, 0.3, -1.0]);

test('Bradley–Terry loss, margin and centering equal their formulas', async () => {
  const margin = round32([0.1, 0.0, 0.5, 1.0]);
  const bt = (m: number[], c: number) =>
    -mean64(rc.map((x, i) => logSigmoid64(x - rr[i]! - m[i]!))) + c * mean64(rc.map((x, i) => (x + rr[i]!) ** 2));
  const plain = rewardLoss(f32(rc), f32(rr));
  close(await scalar(plain.loss), bt([0, 0, 0, 0], 0), 5e-5, 'plain');
  assert.equal(await scalar(plain.metrics.accuracy), 0.5); // pairs 0 and 3 right; 1 wrong; 2 a tie (counts as wrong)
  close(await scalar(plain.metrics['rewards/margins']), mean64(rc.map((x, i) => x - rr[i]!)), 1e-6, 'margins');
  close(await scalar(plain.metrics['rewards/chosen']), mean64(rc), 1e-6, 'chosen');
  close(await scalar(plain.metrics['rewards/rejected']), mean64(rr), 1e-6, 'rejected');
  const full = rewardLoss(f32(rc), f32(rr), { margin: f32(margin), centerRewardsCoefficient: 0.01 });
  close(await scalar(full.loss), bt(margin, 0.01), 5e-5, 'margin + centering');
  const scalarMargin = rewardLoss(f32(rc), f32(rr), { margin: 0.3 });
  close(await scalar(scalarMargin.loss), bt([0.3, 0.3, 0.3, 0.3], 0), 5e-5, 'number margin');
  for (const r of [full, scalarMargin]) for (const m of Object.values(r.metrics)) m.dispose();
});

test('gradient of the BT loss is −σ(−Δ)/B on r_c and +σ(−Δ)/B on r_r; jit agrees', async () => {
  const f = (a: Arr, b: Arr) => rewardLoss(a, b).loss;
  const step = jit((a: Arr, b: Arr) => valueAndGrad(f, { argnums: [0, 1] })(a, b));
  const [v, [ga, gb]] = step(f32(rc), f32(rr));
  close(await scalar(v), -mean64(rc.map((x, i) => logSigmoid64(x - rr[i]!))), 5e-5, 'value');
  const s = rc.map((x, i) => 1 / (1 + Math.exp(x - rr[i]!)) / rc.length);
  close(await read(ga), s.map((x) => -x), 1e-5, 'd/dr_c');
  close(await read(gb), s, 1e-5, 'd/dr_r');
  step.dispose();
});

test('lastTokenValues reads the last real token for right and left padding', async () => {
  const T = 5;
  const values = round32([0.1, 0.2, 0.3, 0.4, 0.5, 1.1, 1.2, 1.3, 1.4, 1.5, 2.1, 2.2, 2.3, 2.4, 2.5, 3.1, 3.2, 3.3, 3.4, 3.5]);
  const mask = [
    1, 1, 1, 0, 0, // right-padded: last real at 2
    0, 0, 1, 1, 1, // left-padded: last real at 4
    1, 1, 1, 1, 1, // full
    0, 0, 0, 0, 0, // empty → 0
  ];
  close(await read(lastTokenValues(f32(values, [4, T]), f32(mask, [4, T]))), round32([0.3, 1.5, 2.5, 0]), 0, 'picked');
  const g = await read(jit(grad((v: Arr, m: Arr) => lastTokenValues(v, m).sum()))(f32(values, [4, T]), f32(mask, [4, T])));
  const want = new Array(20).fill(0);
  want[2] = want[9] = want[14] = 1;
  assert.deepEqual(g, want);
});

test("pooling 'mean' averages the completion positions only (prompt and padding excluded), right- and left-padded", async () => {
  const T = 6;
  const values = round32([...[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], ...[1.1, 1.2, 1.3, 1.4, 1.5, 1.6], ...[2.1, 2.2, 2.3, 2.4, 2.5, 2.6], ...[3.1, 3.2, 3.3, 3.4, 3.5, 3.6]]);
  // Row layouts (p = prompt, c = completion, _ = padding); the completion mask marks the c's.
  const valid = [
    1, 1, 1, 1, 0, 0, // right-padded: p p c c _ _
    0, 0, 1, 1, 1, 1, // left-padded:  _ _ p c c c
    1, 1, 1, 1, 1, 1, // full:         p c c c c c
    1, 1, 0, 0, 0, 0, // prompt only:  p p _ _ _ _ (no completion → 0)
  ];
  const completion = [
    0, 0, 1, 1, 0, 0,
    0, 0, 0, 1, 1, 1,
    0, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0,
  ];
  const hand = [4, 5, 6, 0].map((_, b) => {
    const idx = completion.map((m, j) => (m && Math.floor(j / T) === b ? j : -1)).filter((j) => j >= 0);
    return idx.length ? mean64(idx.map((j) => values[j]!)) : 0;
  });
  close(hand, [(0.3 + 0.4) / 2, (1.4 + 1.5 + 1.6) / 3, (2.2 + 2.3 + 2.4 + 2.5 + 2.6) / 5, 0], 1e-6, 'hand-computed');
  close(await read(maskedMeanValues(f32(values, [4, T]), f32(completion, [4, T]))), hand, 1e-6, 'maskedMeanValues');
  const v = f32(valid, [4, T]), c = f32(completion, [4, T]);
  close(await read(poolValues(f32(values, [4, T]), 'mean', { valid: v, completion: c })), hand, 1e-6, "poolValues 'mean'");
  close(await read(poolValues(f32(values, [4, T]), 'last', { valid: v, completion: c })), round32([0.4, 1.6, 2.6, 3.2]), 0, "poolValues 'last'");
  v.dispose();
  c.dispose();
  // d mean / d v_t = 1/|completion| at the completion's positions, 0 elsewhere.
  const g = await read(jit(grad((x: Arr, m: Arr) => maskedMeanValues(x, m).sum()))(f32(values, [4, T]), f32(completion, [4, T])));
  const counts = [2, 3, 5, 1];
  close(g, completion.map((m, j) => m / counts[Math.floor(j / T)]!), 1e-7, 'gradient');
});
