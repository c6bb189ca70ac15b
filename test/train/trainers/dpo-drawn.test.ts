// DPO computes reference log-probs only for the pairs a run draws (a study's pair set is far larger than
// steps × batch): the drawn set is exactly what the data order yields, and a short run on a large set trains
// with finite losses, as it would with every pair precomputed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, keep, free, Rng } from '../../../src/engine/index.js';
import { ShuffledBatches, type PairExample } from '../../../src/data/batching.js';
import { drawnIndices, trainDpo } from '../../../src/train/trainers/offline.js';
import { tinyModel } from '../../helpers/model.js';

await initEngine('wasm');

test('drawnIndices: the items ShuffledBatches yields over that many batches, across an epoch boundary', () => {
  const n = 10, bs = 3, seed = 5;
  const src = new ShuffledBatches({ items: Array.from({ length: n }, (_, i) => i), batchSize: bs, seed, collate: (xs: number[]) => ({ batch: xs, tokens: 0 }) });
  const seen = new Set<number>();
  for (let b = 0; b < 2; b++) for (const i of src.next().batch) seen.add(i);
  assert.deepEqual([...drawnIndices(n, bs, seed, 2)].sort((a, b) => a - b), [...seen].sort((a, b) => a - b));
  assert.equal(seen.size, 6);
  // 4 batches cross into the second epoch (3 batches of 3 per epoch), whose order differs.
  for (let b = 2; b < 4; b++) for (const i of src.next().batch) seen.add(i);
  assert.deepEqual([...drawnIndices(n, bs, seed, 4)].sort((a, b) => a - b), [...seen].sort((a, b) => a - b));
});

test('a DPO run drawing 3 batches from 200 pairs trains with finite losses (only drawn pairs get reference log-probs)', async () => {
  const V = 32, r = new Rng(1);
  const pick = (parity: number) => Array.from({ length: 4 }, () => 2 * r.int(V / 2 - 1) + parity + 2);
  const pairs: PairExample[] = Array.from({ length: 200 }, () => ({ prompt: [1, 2 + r.int(V - 2)], chosen: pick(0), rejected: pick(1) }));
  const { cfg, params } = tinyModel('llama', 4, { vocabSize: V });
  const ref = keep(params);
  const losses: number[] = [];
  const { params: out } = await trainDpo({
    cfg, params, ref, train: pairs, batchSize: 8, T: 8, padId: 0, steps: 3, runDir: mkdtempSync(join(tmpdir(), 'alignlab-dpo-drawn-')),
    store: false, progress: false, optimizer: { lr: 1e-3 }, onStep: (s) => void losses.push(s.metrics.loss!),
  });
  free([out, ref]);
  assert.equal(losses.length, 3);
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  // At step 1 the policy is the reference: every margin is 0 and the sigmoid loss is log 2.
  assert.ok(Math.abs(losses[0]! - Math.log(2)) < 1e-5, `first loss ${losses[0]}`);
});
