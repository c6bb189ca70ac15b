import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jit, valueAndGrad, type Arr } from '../../../src/engine/index.js';
import { lmLoss, sftLoss, completionMask } from '../../../src/train/losses/sft.js';
import { ready, read, scalar, close, f32, i32, normals, round32, logSoftmax64 } from './helpers.js';

await ready;
const B = 2, T = 4, V = 6;
const logits = round32(normals(B * T * V, 7, 1.5));
const ids = [0, 3, 5, 1, 2, 2, 4, 0];
const lsm = logSoftmax64(logits, V);

test('completionMask marks promptLength ≤ t < length', () => {
  assert.deepEqual(Array.from(completionMask([1, 2], [3, 4], T)), [0, 1, 1, 0, 0, 0, 1, 1]);
  assert.throws(() => completionMask([3], [2], T), /row 0 has prompt length 3, length 2/);
});

test('sftLoss: mean NLL over completion tokens only, shifted (float64 reference)', async () => {
  const mask = Array.from(completionMask([1, 2], [3, 4], T)); // predicted tokens: ids[1], ids[2] | ids[6], ids[7]
  let nll = 0, n = 0, hits = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T - 1; t++) {
      if (!mask[b * T + t + 1]) continue;
      const row = lsm[b * T + t]!, y = ids[b * T + t + 1]!;
      nll -= row[y]!;
      n++;
      if (row.indexOf(Math.max(...row)) === y) hits++;
    }
  }
  const { loss, metrics } = sftLoss(f32(logits, [B, T, V]), i32(ids, [B, T]), f32(mask, [B, T]));
  close(await scalar(loss), nll / n, 5e-5, 'loss');
  assert.equal(await scalar(metrics.num_tokens), 4);
  close(await scalar(metrics.mean_token_accuracy), hits / n, 1e-6, 'accuracy');
});

test('prompt and pad positions get no gradient; jit(valueAndGrad) equals the aligned lmLoss', async () => {
  const mask = [0, 1, 1, 0, 0, 0, 1, 1];
  const f = (z: Arr, y: Arr, m: Arr) => sftLoss(z, y, m).loss;
  const step = jit((z: Arr, y: Arr, m: Arr) => valueAndGrad(f)(z, y, m));
  const [v, g] = step(f32(logits, [B, T, V]), i32(ids, [B, T]), f32(mask, [B, T]));
  const grads = await read(g);
  // logits at position t predict ids[t+1]; they matter only where mask[t+1] = 1.
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const counted = t < T - 1 && mask[b * T + t + 1] === 1;
      const gmax = Math.max(...grads.slice((b * T + t) * V, (b * T + t + 1) * V).map(Math.abs));
      assert.equal(gmax > 0, counted, `row ${b} position ${t}: |grad| ${gmax}`);
    }
  }
  // Same value from the aligned form on hand-shifted arrays.
  const z = [], y = [], m = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T - 1; t++) {
      z.push(...logits.slice((b * T + t) * V, (b * T + t + 1) * V));
      y.push(ids[b * T + t + 1]!);
      m.push(mask[b * T + t + 1]!);
    }
  }
  const aligned = lmLoss(f32(z, [B, T - 1, V]), i32(y, [B, T - 1]), f32(m, [B, T - 1]));
  close(await scalar(v), await scalar(aligned.loss), 1e-6, 'aligned');
  await read(aligned.metrics.num_tokens);
  await read(aligned.metrics.mean_token_accuracy);
  step.dispose();
});
