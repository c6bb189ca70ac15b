import { test } from 'node:test';
import assert from 'node:assert/strict';
import { np, jit, grad, valueAndGrad, type Arr } from '../../../src/engine/index.js';
import { tokenLogprobs, tokenLogprobsNoGrad, tokenLogprobsAndEntropy, nextTokenLogprobs, shiftMask, sequenceLogprob, entropyFromLogits, logSigmoid } from '../../../src/model/logprobs.js';
import { ready, read, close, f32, i32, normals, round32, logSoftmax64, logSigmoid64, sigmoid64 } from './helpers.js';

await ready;
const B = 2, T = 3, V = 5;
const logits = round32(normals(B * T * V, 1, 2));
const targets = [4, 0, 2, 1, 3, 3];
const lsm = logSoftmax64(logits, V); // [B·T][V]

test('tokenLogprobs equals log-softmax picked at the target (float64 reference)', async () => {
  const got = await read(tokenLogprobs(f32(logits, [B, T, V]), i32(targets, [B, T])));
  close(got, targets.map((y, i) => lsm[i]![y]!), 5e-5, 'logp');
});

test('tokenLogprobsNoGrad (takeAlongAxis − logsumexp, for scoring) equals the float64 reference, eagerly and under jit', async () => {
  const want = targets.map((y, i) => lsm[i]![y]!);
  close(await read(tokenLogprobsNoGrad(f32(logits, [B, T, V]), i32(targets, [B, T]))), want, 5e-5, 'eager');
  close(await read(jit(tokenLogprobsNoGrad)(f32(logits, [B, T, V]), i32(targets, [B, T]))), want, 5e-5, 'jit');
});

test('nextTokenLogprobs shifts: logits at t score ids[t+1]', async () => {
  const ids = [1, 4, 0, 2, 2, 3];
  const got = await read(nextTokenLogprobs(f32(logits, [B, T, V]), i32(ids, [B, T])));
  const want: number[] = [];
  for (let b = 0; b < B; b++) for (let t = 0; t < T - 1; t++) want.push(lsm[b * T + t]![ids[b * T + t + 1]!]!);
  close(got, want, 5e-5, 'shifted logp');
  assert.deepEqual(await read(shiftMask(f32([1, 1, 0, 0, 1, 1], [B, T]))), [1, 0, 1, 1]);
});

test('sequenceLogprob sums (or averages) the masked token log-probs', async () => {
  const lp = [-1, -2, -3, -0.5, -0.25, -4], mask = [1, 1, 0, 0, 1, 1];
  close(await read(sequenceLogprob(f32(lp, [B, T]), f32(mask, [B, T]))), [-3, -4.25], 1e-6, 'sum');
  close(await read(sequenceLogprob(f32(lp, [B, T]), f32(mask, [B, T]), { average: true })), [-1.5, -2.125], 1e-6, 'mean');
});

test('entropy equals −Σ p log p, zero on masked positions; the fused version agrees', async () => {
  const mask = [1, 0, 1, 1, 1, 0];
  const want = lsm.map((row, i) => (mask[i] ? -row.reduce((s, l) => s + Math.exp(l) * l, 0) : 0));
  close(await read(entropyFromLogits(f32(logits, [B, T, V]), f32(mask, [B, T]))), want, 5e-5, 'entropy');
  const [lp, ent] = tokenLogprobsAndEntropy(f32(logits, [B, T, V]), i32(targets, [B, T]));
  close(await read(lp), targets.map((y, i) => lsm[i]![y]!), 5e-5, 'fused logp');
  close(await read(ent), lsm.map((row) => -row.reduce((s, l) => s + Math.exp(l) * l, 0)), 5e-5, 'fused entropy');
  // Uniform logits: entropy log V.
  close(await read(entropyFromLogits(np.zeros([1, 1, V]), np.ones([1, 1]))), [Math.log(V)], 1e-6, 'uniform');
});

test('logSigmoid is finite and exact at ±100 and has gradient σ(−x), 0.5 at 0', async () => {
  const xs = [-100, -20, -1, 0, 1e-3, 2, 100];
  close(await read(logSigmoid(f32(xs))), xs.map(logSigmoid64), 5e-5, 'value');
  const g = await read(grad((x: Arr) => logSigmoid(x).sum())(f32(xs)));
  close(g, xs.map((x) => sigmoid64(-x)), 1e-6, 'grad');
  assert.equal(g[3], 0.5);
});

test('jit(valueAndGrad) of a masked sequence log-prob matches eager, and the gradient is p_target − p', async () => {
  const mask = [1, 1, 0, 0, 1, 1];
  const f = (z: Arr, y: Arr, m: Arr) => sequenceLogprob(tokenLogprobs(z, y), m).sum();
  const step = jit((z: Arr, y: Arr, m: Arr) => valueAndGrad(f)(z, y, m));
  const [v, g] = step(f32(logits, [B, T, V]), i32(targets, [B, T]), f32(mask, [B, T]));
  let want = 0;
  const wantG: number[] = [];
  lsm.forEach((row, i) => {
    if (mask[i]) want += row[targets[i]!]!;
    row.forEach((l, k) => wantG.push(mask[i] ? (k === targets[i] ? 1 : 0) - Math.exp(l) : 0));
  });
  close(await read(v), [want], 5e-5, 'value');
  close(await read(g), wantG, 5e-5, 'grad');
  step.dispose();
});
