// RewardModel pooling: 'mean' scores the mean of the head's per-token values over the completion (checked against
// each sequence scored alone), survives save/load, and needs prompt lengths; 'last' stays the default, also for
// a model directory saved before pooling existed (no metadata key).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, takeF32, i32 } from '../../src/engine/index.js';
import { hidden } from '../../src/model/decoder.js';
import { initHead } from '../../src/model/heads.js';
import { initHostParams } from '../../src/model/params.js';
import { RewardModel, saveRewardModel } from '../../src/rewards/model.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../../src/formats/safetensors.js';
import { tinyConfig } from '../../src/formats/config.js';

before(async () => {
  await initEngine('wasm');
});

const tmp = () => mkdtempSync(join(tmpdir(), 'alignlab-rm-'));
const cfg = tinyConfig('llama', { numKvHeads: 2, maxPositions: 16 });
const head = initHead(cfg, 4);
head.b.data[0] = 0.25;
const trunk = initHostParams(cfg, 9, 0.2);

// [prompt, completion] token lists; the last one is longer than maxPositions (16): its first 4 tokens are cut.
const rows: [number[], number[]][] = [
  [[1, 2, 3], [4, 5]],
  [[6], [7, 8, 9, 10, 11, 12]],
  [[13, 14, 15, 16], [17]],
  [[18, 19], [20, 21, 22]],
  [[23, 24, 25, 26, 27, 28], [29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42]],
];
const seqs = rows.map(([p, c]) => [...p, ...c]);
const promptLengths = rows.map(([p]) => p.length);

/** Per-position head values of one sequence scored alone (no padding): h_t · w + b. */
async function headValues(rm: RewardModel, s: number[]): Promise<number[]> {
  const n = s.length, C = cfg.hiddenSize;
  const h = await takeF32(hidden(rm.model.trunk, cfg, i32(s, [1, n]), i32(s.map((_, j) => j), [1, n]), i32(s.map(() => 1), [1, n])));
  return Array.from({ length: n }, (_, t) => h.subarray(t * C, (t + 1) * C).reduce((a, x, c) => a + x * head.w.data[c]!, 0) + 0.25);
}

test("pooling 'mean' scores the mean of the head over the completion tokens; rewardFn passes the prompt lengths", async () => {
  const rm = RewardModel.fromHost(cfg, trunk, head, undefined, { batchSize: 4, pooling: 'mean' });
  assert.equal(rm.pooling, 'mean');
  const expected: number[] = [];
  for (const [i, s] of seqs.entries()) {
    const cut = Math.max(0, s.length - cfg.maxPositions); // the model keeps the last maxPositions tokens
    const v = await headValues(rm, s.slice(cut));
    const from = promptLengths[i]! - cut;
    expected.push(v.slice(from).reduce((a, x) => a + x, 0) / (v.length - from));
  }
  const got = await rm.score(seqs, promptLengths);
  expected.forEach((e, i) => assert.ok(Math.abs(got[i]! - e) < 1e-4, `row ${i}: ${got[i]} vs ${e}`));
  // Not the last-token score (it would be, by accident, only if the head were constant over the completion).
  const last = await RewardModel.fromHost(cfg, trunk, head, undefined, { batchSize: 4 }).score(seqs);
  assert.ok(got.some((g, i) => Math.abs(g - last[i]!) > 1e-3), 'mean and last pooling differ');
  const viaFn = await rm.rewardFn()({ prompts: rows.map(([p]) => p), completions: rows.map(([, c]) => c), texts: rows.map(() => '') });
  viaFn.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-6, `rewardFn row ${i}: ${v} vs ${got[i]}`));
  await assert.rejects(rm.score(seqs), /'mean' pooling needs the prompt length/);
  rm.dispose();
});

test('a saved mean-pooled reward model loads as mean-pooled and scores identically', async () => {
  const rm = RewardModel.fromHost(cfg, trunk, head, undefined, { batchSize: 4, pooling: 'mean' });
  const before = await rm.score(seqs, promptLengths);
  const dir = tmp();
  await saveRewardModel(dir, rm);
  assert.equal(readSafetensorsHeader(join(dir, 'model.safetensors')).metadata['alignlab.reward_pooling'], 'mean');
  const back = await RewardModel.load(dir, { batchSize: 4 });
  assert.equal(back.pooling, 'mean');
  assert.deepEqual(Array.from(await back.score(seqs, promptLengths)), Array.from(before));
  rm.dispose();
  back.dispose();
});

test("pooling defaults to 'last', and a reward model saved without the pooling key loads as 'last'", async () => {
  const rm = RewardModel.fromHost(cfg, trunk, head, undefined, { batchSize: 4 });
  assert.equal(rm.pooling, 'last');
  const scores = await rm.score(seqs);
  const dir = tmp();
  await saveRewardModel(dir, rm);
  // Rewrite the file as it was before pooling existed: same tensors, no alignlab.reward_pooling in the metadata.
  const file = join(dir, 'model.safetensors');
  writeSafetensors(file, Object.fromEntries(readSafetensors(file)), { format: 'pt' });
  assert.equal(readSafetensorsHeader(file).metadata['alignlab.reward_pooling'], undefined);
  const back = await RewardModel.load(dir, { batchSize: 4 });
  assert.equal(back.pooling, 'last');
  assert.deepEqual(Array.from(await back.score(seqs)), Array.from(scores));
  rm.dispose();
  back.dispose();
});
