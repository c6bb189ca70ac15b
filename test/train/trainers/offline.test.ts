// End to end on tiny models made here: SFT learns a pattern, the reward model and DPO learn a
// separable preference (chosen completions use even token ids, rejected ones odd ids).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, keep, free, np, Rng } from '../../../src/engine/index.js';
import { initHead } from '../../../src/model/heads.js';
import { pairCompletionMask, trainDpo, trainRewardModel, trainSft } from '../../../src/train/trainers/offline.js';
import type { PairExample } from '../../../src/data/batching.js';
import { tinyModel } from '../../helpers/model.js';

await initEngine('wasm');
const dir = () => mkdtempSync(join(tmpdir(), 'alignlab-offline-'));
const V = 32;

function toyPairs(n: number, seed: number): PairExample[] {
  const r = new Rng(seed);
  const pick = (parity: number) => Array.from({ length: 4 }, () => 2 * r.int(V / 2 - 1) + parity + 2);
  return Array.from({ length: n }, () => ({ prompt: [1, 2 + r.int(V - 2)], chosen: pick(0), rejected: pick(1) }));
}

const loop = { batchSize: 16, T: 8, padId: 0, store: false as const, progress: false, evalEvery: 1000 };

test('SFT lowers the loss on a repeating pattern', async () => {
  const { cfg, params } = tinyModel('llama', 1, { vocabSize: V });
  const seqs = Array.from({ length: 64 }, (_, i) => ({ ids: Array.from({ length: 8 }, (_, j) => ((i + j) % 5) + 3) }));
  const { params: p, summary } = await trainSft({ ...loop, cfg, params, train: seqs, eval: seqs.slice(0, 16), steps: 40, runDir: dir(), optimizer: { lr: 1e-2 } });
  free(p);
  assert.ok(summary.finalMetrics.eval_loss! < 0.5 * Math.log(V), `eval_loss ${summary.finalMetrics.eval_loss}`);
});

test('reward model reaches > 0.9 held-out accuracy on a learnable preference', async () => {
  const { cfg, params } = tinyModel('llama', 2, { vocabSize: V });
  const head = initHead(cfg, 3);
  const m = { trunk: params, head: { w: np.array(head.w.data, { shape: head.w.shape }), b: np.array(head.b.data, { shape: head.b.shape }) } };
  const { params: out, summary } = await trainRewardModel({ ...loop, cfg, model: m, train: toyPairs(128, 1), eval: toyPairs(64, 2), steps: 40, runDir: dir(), optimizer: { lr: 3e-3 } });
  free(out);
  assert.ok(summary.finalMetrics.eval_accuracy! > 0.9, `eval accuracy ${summary.finalMetrics.eval_accuracy}`);
});

test("reward model with pooling 'mean' reaches > 0.9 held-out accuracy on a learnable preference", async () => {
  const { cfg, params } = tinyModel('llama', 2, { vocabSize: V });
  const head = initHead(cfg, 3);
  const m = { trunk: params, head: { w: np.array(head.w.data, { shape: head.w.shape }), b: np.array(head.b.data, { shape: head.b.shape }) } };
  const { params: out, summary } = await trainRewardModel({ ...loop, cfg, model: m, train: toyPairs(128, 1), eval: toyPairs(64, 2), steps: 40, runDir: dir(), optimizer: { lr: 3e-3 }, pooling: 'mean' });
  free(out);
  assert.ok(summary.finalMetrics.eval_accuracy! > 0.9, `eval accuracy ${summary.finalMetrics.eval_accuracy}`);
});

test('pairCompletionMask marks the completion tokens of chosen rows then rejected rows, cut at T; padding rows are 0', () => {
  const T = 5;
  const mask = pairCompletionMask([{ prompt: [1, 2], chosen: [3, 4], rejected: [5, 6, 7, 8] }], T, 2);
  assert.deepEqual(Array.from(mask), [
    0, 0, 1, 1, 0, // pair 0, chosen: prompt 2 + completion 2
    0, 0, 0, 0, 0, // padding row
    0, 0, 1, 1, 1, // pair 0, rejected: completion 4 cut at T = 5
    0, 0, 0, 0, 0, // padding row
  ]);
});

for (const lossType of ['sigmoid', 'ipo', 'simpo'] as const) {
  test(`${lossType}: preference accuracy > 0.9 on a separable toy set`, async () => {
    const { cfg, params } = tinyModel('llama', 4, { vocabSize: V });
    const ref = keep(params);
    const { params: out, summary } = await trainDpo({
      ...loop, cfg, params, ref, train: toyPairs(128, 3), eval: toyPairs(64, 4), steps: 30, runDir: dir(), optimizer: { lr: 3e-3 },
      lossType, beta: lossType === 'simpo' ? 2 : 0.1, gamma: 0.5,
    });
    free([out, ref]);
    assert.ok(summary.finalMetrics['eval_rewards/accuracies']! > 0.9, JSON.stringify(summary.finalMetrics));
    assert.ok(summary.finalMetrics['eval_rewards/margins']! > 0);
  });
}

test('reward model: a per-pair margin enters the loss as −log σ(r_c − r_r − m); eval batches have evalBatchSize rows', async () => {
  const { cfg, params } = tinyModel('llama', 5, { vocabSize: V });
  const head = initHead(cfg, 6);
  const m = { trunk: params, head: { w: np.array(head.w.data, { shape: head.w.shape }), b: np.array(head.b.data, { shape: head.b.shape }) } };
  const [evalPair] = toyPairs(1, 8);
  const train = toyPairs(16, 7).map((p, i) => ({ ...p, margin: i % 2 }));
  const { params: out, summary } = await trainRewardModel({
    ...loop, cfg, model: m, train, eval: [{ ...evalPair!, margin: 0.7 }], evalBatchSize: 1, steps: 1, runDir: dir(), optimizer: { lr: 1e-3 },
  });
  free(out);
  // One eval pair in a batch of one row: the logged margin is that pair's r_c − r_r, and the loss follows from it.
  const d = summary.finalMetrics['eval_rewards/margins']!, loss = summary.finalMetrics.eval_loss!;
  const expected = Math.log1p(Math.exp(-(d - 0.7)));
  assert.ok(Math.abs(loss - expected) < 1e-5 * Math.max(1, expected), `eval_loss ${loss}, expected softplus(−(${d} − 0.7)) = ${expected}`);
});
