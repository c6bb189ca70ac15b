// The study's preference data and reward-model helpers (src/study/runner.ts): every qualifying pair of a prompt's
// samples, a split that keeps a prompt's pairs together, and the normalisation PPO's reward goes through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allPairs, normalisation, splitPairsByPrompt } from '../../src/study/runner.js';

const group = (rewards: number[], p: number) => ({ prompt: [1, p], samples: rewards.map((r, i) => ({ ids: [10 + i], reward: r })) });

test('allPairs: every pair of one prompt whose gold gap reaches minGap, the higher-reward sample chosen', () => {
  const rows = allPairs([group([0.5, 0.0, 0.52, -0.3], 7), group([0.1, 0.1], 8)], 0.05);
  // Prompt 7: (0.5,0.0) (0.5,−0.3) (0.0,0.52) (0.0,−0.3) (0.52,−0.3) qualify; (0.5,0.52) is 0.02 apart. Prompt 8: a tie.
  assert.equal(rows.length, 5);
  for (const r of rows) {
    assert.ok(r.chosenReward - r.rejectedReward >= 0.05, `gap ${r.chosenReward - r.rejectedReward}`);
    assert.deepEqual(r.prompt, [1, 7]);
    assert.equal(r.promptIndex, 0);
  }
  assert.deepEqual(rows.map((r) => [r.chosen[0], r.rejected[0]]), [[10, 11], [10, 13], [12, 11], [11, 13], [12, 13]]);
});

test('splitPairsByPrompt keeps all pairs of a prompt in one part, and the parts have about the asked sizes', () => {
  const groups = Array.from({ length: 400 }, (_, p) => group([0, 0.3, 0.6], p));
  const rows = allPairs(groups, 0.05);
  const s = splitPairsByPrompt(rows, 0.15, 0.1);
  assert.equal(s.train.length + s.valid.length + s.heldOut.length, rows.length);
  const promptsOf = (xs: { prompt: number[] }[]) => new Set(xs.map((x) => x.prompt[1]));
  const [tr, va, ho] = [promptsOf(s.train), promptsOf(s.valid), promptsOf(s.heldOut)];
  for (const p of ho) assert.ok(!tr.has(p) && !va.has(p), `prompt ${p} is in two parts`);
  for (const p of va) assert.ok(!tr.has(p), `prompt ${p} is in train and validation`);
  assert.ok(ho.size > 400 * 0.1 && ho.size < 400 * 0.2, `held-out prompts ${ho.size}`);
  assert.ok(va.size > 400 * 0.06 && va.size < 400 * 0.14, `validation prompts ${va.size}`);
  assert.equal(s.heldOutPrompts.length, s.heldOut.length);
});

test('normalisation: mean and sample std, with a floor for constant scores', () => {
  const n = normalisation(Float32Array.of(1, 2, 3, 4));
  assert.ok(Math.abs(n.mean - 2.5) < 1e-9 && Math.abs(n.std - Math.sqrt(5 / 3)) < 1e-6);
  assert.ok(normalisation(Float32Array.of(2, 2, 2)).std > 0);
});
