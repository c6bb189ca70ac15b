import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jit, type Arr } from '../../../src/engine/index.js';
import { maskedMean, maskedVar, maskedWhiten, whitenHost, maskedStatsHost } from '../../../src/train/losses/whiten.js';
import { ready, read, scalar, close, f32, normals, round32 } from './helpers.js';

await ready;
const B = 3, T = 6;
const x = round32(normals(B * T, 11, 3).map((v) => v + 5));
const mask = [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1]; // right, left padding and holes

/** Mean and unbiased variance of the masked entries, from the definition. */
function stats(v: ArrayLike<number>, m: number[]): { mean: number; variance: number } {
  const xs = m.flatMap((k, i) => (k ? [v[i]!] : []));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, variance: xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1) };
}

test('maskedMean / maskedVar equal the definitions; an all-masked mean is 0, not NaN', async () => {
  const s = stats(x, mask);
  close(await scalar(maskedMean(f32(x, [B, T]), f32(mask, [B, T]))), s.mean, 1e-6, 'mean');
  close(await scalar(maskedVar(f32(x, [B, T]), f32(mask, [B, T]))), s.variance, 1e-5, 'var');
  close(await scalar(maskedVar(f32(x, [B, T]), f32(mask, [B, T]), false)), (s.variance * 11) / 12, 1e-5, 'biased var');
  const rows = await read(maskedMean(f32(x, [B, T]), f32(mask, [B, T]), -1));
  close(rows, [0, 1, 2].map((b) => stats(x.slice(b * T, b * T + T), mask.slice(b * T, b * T + T)).mean), 1e-6, 'row means');
  assert.deepEqual(await read(maskedMean(f32([1, 2]), f32([0, 0]))), [0]);
});

test('whitening (device, jitted, and host) gives zero mean and unit variance on masked entries, 0 elsewhere', async () => {
  const dev = await read(jit((a: Arr, m: Arr) => maskedWhiten(a, m))(f32(x, [B, T]), f32(mask, [B, T])));
  const host = whitenHost(x, mask);
  for (const [name, w] of [['device', dev], ['host', host]] as const) {
    const s = stats(w, mask);
    close(s.mean, 0, 1e-6, `${name} mean`);
    close(s.variance, 1, 1e-5, `${name} variance`);
    assert.ok(mask.every((k, i) => k || w[i] === 0), `${name}: masked-out entries are 0`);
  }
  close(dev, host, 1e-5, 'device = host');
  // shiftMean false keeps the mean (TRL's reward whitening): mean μ, variance 1.
  const kept = whitenHost(x, mask, { shiftMean: false });
  close(stats(kept, mask).mean, stats(x, mask).mean, 1e-5, 'kept mean');
  close(stats(kept, mask).variance, 1, 1e-5, 'kept variance');
  close(await read(maskedWhiten(f32(x, [B, T]), f32(mask, [B, T]), { shiftMean: false })), kept, 1e-5, 'device shiftMean false');
  assert.deepEqual(maskedStatsHost([1, 2, 3, 100], [1, 1, 1, 0]), { mean: 2, variance: 1, count: 3 });
});
