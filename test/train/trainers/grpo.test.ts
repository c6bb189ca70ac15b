// GRPO and RLOO end to end on a tiny Llama made here: both raise a toy reward; GRPO's β·k3 term holds the KL to the
// reference below the unpenalized run's; RLOO's KL sits inside its reward; completions of one prompt form one group
// (a reward that only depends on the prompt gives zero advantages and leaves the policy untouched); several
// updates per rollout with an EMA reference run through; TRL's metric names reach metrics.jsonl.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, takeF32, tree } from '../../../src/engine/index.js';
import { trainGrpo, trainRloo } from '../../../src/train/trainers/grpo.js';
import { readMetrics } from '../../../src/train/loop.js';
import { tokenReward } from '../../../src/rewards/types.js';
import { tinyModel } from '../../helpers/model.js';

before(async () => {
  await initEngine('wasm');
});

const tmp = (p: string) => mkdtempSync(join(tmpdir(), `alignlab-${p}-`));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const variance = (xs: number[]) => xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1);

// Toy reward: the fraction of completion tokens with id < 8 (1/8 of the 64-token vocabulary: ~0.125 at the start).
const lowTokens = tokenReward((c) => c.filter((t) => t < 8).length / c.length);
const PROMPTS = Array.from({ length: 32 }, (_, i) => [1 + (i % 20), 2 + (i % 7), 3]);
const COMMON = { prompts: PROMPTS, promptsPerIteration: 4, numGenerations: 8, maxNewTokens: 8, temperature: 1, learningRate: 3e-3, schedule: { kind: 'constant' as const }, seed: 7, store: false as const };
const ITS = 20, K = 5;

/** Last K iterations beat the first K by more than 3 standard errors (measured from each window's spread). */
function assertImproves(scores: number[], what: string) {
  const first = scores.slice(0, K), last = scores.slice(-K);
  const se = Math.sqrt(variance(first) / K + variance(last) / K);
  assert.ok(mean(last) - mean(first) > 3 * se, `${what}: reward ${mean(first).toFixed(3)} → ${mean(last).toFixed(3)} (3·SE = ${(3 * se).toFixed(3)})`);
}

test('GRPO raises a toy reward, and its β·k3 term keeps the policy closer to the reference', async () => {
  const run = async (beta: number) => {
    const { cfg, params } = tinyModel('llama', 3, { eosTokenId: null });
    const runDir = tmp(`grpo-${beta}`);
    const r = await trainGrpo({ ...COMMON, runDir, policy: { cfg, params }, reward: lowTokens, iterations: ITS, beta });
    tree.dispose([r.policy, params] as never);
    return { rows: readMetrics(runDir), summary: r.summary };
  };
  const pen = await run(0.2), free = await run(0);
  assertImproves(pen.rows.map((r) => r['objective/scores']!), 'GRPO β=0.2');
  const klPen = mean(pen.rows.slice(-10).map((r) => r['objective/kl']!)), klFree = mean(free.rows.slice(-10).map((r) => r['objective/kl']!));
  assert.ok(klPen < 0.7 * klFree, `KL with β=0.2 (${klPen.toFixed(2)}) should stay well below β=0 (${klFree.toFixed(2)})`);
  // TRL GRPO names (plus objective/* for comparison with PPO).
  const last = pen.rows.at(-1)!;
  for (const n of ['loss', 'reward', 'reward_std', 'frac_reward_zero_std', 'kl', 'clip_ratio/region_mean', 'entropy', 'completions/mean_length', 'completions/clipped_ratio', 'objective/kl', 'objective/scores', 'episode'])
    assert.ok(Number.isFinite(last[n]), `metrics.jsonl lacks ${n}`);
  assert.equal(last.episode, ITS * 32);
  assert.equal(last['completions/mean_length'], 8);
  assert.equal(pen.summary.iterations, ITS);
  assert.ok(pen.summary.cost.generation > 0 && pen.summary.cost.update > 0);
});

test('RLOO raises a toy reward with the KL inside its reward', async () => {
  const { cfg, params } = tinyModel('llama', 3, { eosTokenId: null });
  const runDir = tmp('rloo');
  const klCoef = 0.05;
  const r = await trainRloo({ ...COMMON, runDir, policy: { cfg, params }, reward: lowTokens, iterations: ITS, klCoef });
  const rows = readMetrics(runDir);
  assertImproves(rows.map((x) => x['objective/scores']!), 'RLOO');
  for (const x of rows) {
    // rlhf_reward = score − β·KL, per TRL's RLOO
    assert.ok(Math.abs(x['objective/rlhf_reward']! - (x['objective/scores']! - klCoef * x['objective/kl']!)) < 1e-5);
    for (const n of ['loss/policy_avg', 'policy/clipfrac_avg', 'policy/approxkl_avg', 'objective/entropy', 'objective/non_score_reward', 'val/num_eos_tokens'])
      assert.ok(Number.isFinite(x[n]), `metrics.jsonl lacks ${n}`);
  }
  assert.ok(rows.at(-1)!['objective/kl']! > 0.5, 'the policy moved away from the reference');
  tree.dispose([r.policy, params] as never);
});

test('a group is the completions of one prompt: a prompt-only reward gives zero advantages and no update', async () => {
  // Every completion of a prompt gets the same reward (its first token), so every group is flat.
  const promptOnly = tokenReward((_c, p) => p[0]!);
  for (const [name, fn] of [['grpo', trainGrpo], ['rloo', trainRloo]] as const) {
    const { cfg, params } = tinyModel('llama', 4, { eosTokenId: null });
    const runDir = tmp(`${name}-flat`);
    const r = await fn({ ...COMMON, runDir, policy: { cfg, params }, reward: promptOnly, iterations: 2, beta: 0, klCoef: 0, maxNewTokens: 4 });
    const rows = readMetrics(runDir);
    if (name === 'grpo') rows.forEach((x) => assert.equal(x.frac_reward_zero_std, 1));
    rows.forEach((x) => assert.equal(x.loss, 0, `${name}: loss ${x.loss}`));
    const [a, b] = [await takeF32(r.policy.layers[0]!.wqkv.ref), await takeF32(params.layers[0]!.wqkv.ref)];
    assert.ok(a.every((v, i) => v === b[i]), `${name}: zero advantages must leave the policy unchanged`);
    tree.dispose([r.policy, params] as never);
  }
});

test('several updates per rollout (old log-probs, clipping) with an EMA reference', async () => {
  const { cfg, params } = tinyModel('llama', 6, { eosTokenId: 60 });
  const runDir = tmp('grpo-mu');
  const evals: number[] = [], iterations: number[] = [];
  const r = await trainGrpo({
    ...COMMON, runDir, policy: { cfg, params }, reward: lowTokens, iterations: 3, numIterations: 2, numMiniBatches: 2, refEmaAlpha: 0.5, missingEosPenalty: 0.1, maxNewTokens: 6,
    evalEvery: 2,
    evalFn: async (policy, it) => {
      evals.push(it);
      return { wte_mean: (await takeF32(policy.wte.ref)).reduce((a, b) => a + b, 0) };
    },
    onIteration: ({ iteration, update }) => void iterations.push(iteration * 100 + update),
  });
  const rows = readMetrics(runDir);
  // Evaluation at iteration 2 and after the last one, logged with an eval_ prefix on that iteration's last update.
  assert.deepEqual(evals, [2, 3]);
  assert.deepEqual(rows.filter((x) => 'eval_wte_mean' in x).map((x) => x.step), [8, 12]);
  assert.deepEqual(iterations, [104, 208, 312]);
  assert.equal(rows.length, 3 * 2 * 2);
  for (const x of rows) for (const n of ['loss', 'kl', 'clip_ratio/region_mean', 'objective/kl']) assert.ok(Number.isFinite(x[n]), `${n} at step ${x.step}`);
  // After the first update of a rollout the policy differs from π_old, and with lr 3e-3 some ratios leave [0.8, 1.2].
  assert.ok(rows.some((x) => x['clip_ratio/region_mean']! > 0), 'the clip engages on later minibatches');
  assert.equal(rows[0]!['clip_ratio/region_mean'], 0, 'nothing is clipped on the first update (ratio 1)');
  tree.dispose([r.policy, params] as never);
});
