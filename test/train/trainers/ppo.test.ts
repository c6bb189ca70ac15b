// PPO end to end on a tiny Llama made here: it raises a toy reward while the adaptive KL controller holds the KL
// to the reference; log-probs of the rollout forward equal those of the update (ratio 1 before the first update);
// TRL metric names reach metrics.jsonl and SQLite; a run interrupted mid-rollout resumes with identical losses
// (buffer, adaptive β, EMA reference and RNG restored); a learned reward model scores at the last real token and
// seeds the value model.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { initEngine, takeF32, i32, tree, type Arr } from '../../../src/engine/index.js';
import { hidden } from '../../../src/model/decoder.js';
import { trainPpo } from '../../../src/train/trainers/ppo.js';
import { readMetrics } from '../../../src/train/loop.js';
import { resolvePolicy } from '../../../src/train/trainers/online.js';
import { tokenReward } from '../../../src/rewards/types.js';
import { RewardModel, saveRewardModel } from '../../../src/rewards/model.js';
import { initHead } from '../../../src/model/heads.js';
import { initHostParams } from '../../../src/model/params.js';
import { openStore } from '../../../src/store/db.js';
import { getMetric } from '../../../src/store/runs.js';
import { tinyModel } from '../../helpers/model.js';
import { LM } from '../../../src/model/lm.js';
import { Tokenizer, byteLevelTokenizerJson } from '../../../src/formats/tokenizer.js';
import { referenceHidden } from '../../formats/helpers.js';

before(async () => {
  await initEngine('wasm');
});

const tmp = (p: string) => mkdtempSync(join(tmpdir(), `alignlab-${p}-`));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const variance = (xs: number[]) => xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1);

// Toy reward: the fraction of completion tokens with id < 8 (1/8 of the 64-token vocabulary: ~0.125 at the start).
const LOW = 8;
const lowTokens = tokenReward((c) => c.filter((t) => t < LOW).length / c.length);
const PROMPTS = Array.from({ length: 32 }, (_, i) => [1 + (i % 20), 2 + (i % 7), 3]);

/** Per-iteration rows (the last update of each iteration) of a run's metrics.jsonl. */
function iterationRows(runDir: string, updatesPerIteration: number) {
  return readMetrics(runDir).filter((r) => r.step! % updatesPerIteration === 0);
}

test('PPO raises a toy reward while the adaptive KL controller bounds the KL to the reference', async () => {
  const ITS = 30, K = 5, TARGET = 2;
  const run = async (name: string, kl: { klCoef: number; klTarget: number | null }, iterations: number) => {
    const { cfg, params } = tinyModel('llama', 3, { eosTokenId: null });
    const runDir = tmp(name), store = join(runDir, 'runs.sqlite');
    const r = await trainPpo({
      runDir, store, policy: { cfg, params }, reward: lowTokens, prompts: PROMPTS, iterations,
      batchSize: 32, ppoEpochs: 2, numMiniBatches: 1, maxNewTokens: 8, temperature: 1,
      learningRate: 1.5e-3, schedule: { kind: 'constant' }, ...kl, klHorizon: 32, seed: 7,
    });
    tree.dispose([r.policy, r.value.trunk, r.value.head] as never);
    tree.dispose(params as never);
    return { runDir, store, summary: r.summary, rows: iterationRows(runDir, 2), all: readMetrics(runDir) };
  };
  const BETA0 = 0.1;
  const ctl = await run('ppo-adaptive', { klCoef: BETA0, klTarget: TARGET }, ITS);
  // The contrast: the same run without a KL penalty.
  const free = await run('ppo-free', { klCoef: 0, klTarget: null }, ITS);

  // Reward: the last K iterations beat the first K by more than 3 standard errors of the difference,
  // the standard error measured from the iteration-to-iteration spread of each window.
  const scores = ctl.rows.map((r) => r['objective/scores']!);
  const first = scores.slice(0, K), last = scores.slice(-K);
  const se = Math.sqrt(variance(first) / K + variance(last) / K);
  assert.ok(mean(last) - mean(first) > 3 * se, `reward ${mean(first).toFixed(3)} → ${mean(last).toFixed(3)} (3·SE = ${(3 * se).toFixed(3)})`);

  // KL: the controller raised β once the KL passed its target and held the KL within a few times the target (it
  // lags and oscillates: β moves at most ±20% per rollout here); the same run without a KL penalty drifts much
  // further from the reference.
  const kls = ctl.rows.map((r) => r['objective/kl']!), coefs = ctl.rows.map((r) => r['objective/kl_coef']!);
  const klLast = mean(kls.slice(-10)), klFree = mean(free.rows.map((r) => r['objective/kl']!).slice(-10));
  assert.ok(Math.max(...coefs) > 2 * BETA0, `β should grow above its start (max ${Math.max(...coefs).toFixed(3)})`);
  assert.ok(klLast < 3 * TARGET, `KL of the last 10 iterations ${klLast.toFixed(2)} should stay within 3× the target ${TARGET}`);
  assert.ok(klFree > 2 * klLast, `without the penalty the KL should drift further (${klFree.toFixed(2)} vs ${klLast.toFixed(2)})`);

  // The first update of each rollout sees exactly the rollout's log-probs (ratio 1, approx KL 0): the rollout's
  // forward pass and the update's compute the same thing.
  for (const r of ctl.all.filter((x) => x.step! % 2 === 1)) {
    assert.ok(Math.abs(r['val/ratio']! - 1) < 1e-5, `val/ratio ${r['val/ratio']} at step ${r.step}`);
    assert.ok(r['policy/approxkl_avg']! < 1e-9, `policy/approxkl_avg ${r['policy/approxkl_avg']}`);
  }

  // TRL's metric names, in metrics.jsonl and in SQLite.
  const names = ['objective/kl', 'objective/entropy', 'objective/rlhf_reward', 'objective/scores', 'objective/non_score_reward', 'policy/approxkl_avg',
    'policy/clipfrac_avg', 'loss/policy_avg', 'loss/value_avg', 'val/clipfrac_avg', 'val/num_eos_tokens', 'policy/entropy_avg', 'val/ratio', 'episode'];
  for (const n of names) assert.ok(Number.isFinite(ctl.rows.at(-1)![n]), `metrics.jsonl lacks ${n}`);
  assert.equal(ctl.rows.at(-1)!.episode, ITS * 32);
  const db = openStore(ctl.store);
  assert.deepEqual(getMetric(db, basename(ctl.runDir), 'objective/scores').filter((m) => m.step % 2 === 0).map((m) => m.value), scores);
  db.close();

  // Cost accounting covers the run.
  const c = ctl.summary.cost;
  assert.equal(ctl.summary.iterations, ITS);
  assert.equal(c.generatedTokens, ITS * 32 * 8);
  for (const k of ['generation', 'forward', 'update'] as const) assert.ok(c[k] > 0, `cost.${k}`);
  assert.ok(c.generation + c.forward + c.reward + c.update <= c.wall * 1.01, 'phases fit in the wall time');
  assert.ok(c.peakRssMB > 0);
});

test('a PPO run interrupted mid-rollout resumes with identical losses (buffer, adaptive β, EMA reference restored)', async () => {
  // EOS and the missing-EOS penalty, two epochs × two minibatches, adaptive KL and an EMA reference all on.
  const opts = {
    prompts: PROMPTS.slice(0, 12), iterations: 3, batchSize: 8, ppoEpochs: 2, numMiniBatches: 2, maxNewTokens: 6, temperature: 1,
    learningRate: 2e-3, klCoef: 0.1, klTarget: 1, klHorizon: 8, missingEosPenalty: 0.5, refEmaAlpha: 0.5, refEmaEvery: 1, klEstimator: 'k3' as const,
    seed: 11, store: false as const,
  };
  const model = () => tinyModel('llama', 5, { eosTokenId: 60 });
  const runOnce = async (runDir: string, extra: object) => {
    const { cfg, params } = model();
    const r = await trainPpo({ ...opts, ...extra, runDir, policy: { cfg, params } });
    tree.dispose([r.policy, r.value.trunk, r.value.head, params] as never);
    return r.summary;
  };
  const whole = tmp('ppo-whole');
  await runOnce(whole, { reward: lowTokens });

  const split = tmp('ppo-split');
  const abort = new AbortController();
  let calls = 0;
  const stopDuringRollout2 = tokenReward((c) => c.filter((t) => t < LOW).length / c.length);
  const s1 = await runOnce(split, {
    signal: abort.signal,
    reward: async (b: Parameters<typeof lowTokens>[0]) => {
      if (++calls === 2) abort.abort(); // rollout 2 is being collected: the loop stops after its first update
      return stopDuringRollout2(b);
    },
  });
  assert.equal(s1.status, 'interrupted');
  assert.equal(s1.step, 5, 'stopped after the first minibatch of the second rollout');
  const s2 = await runOnce(split, { reward: lowTokens, resume: true });
  assert.equal(s2.status, 'completed');
  assert.equal(s2.startStep, 5);

  const a = readMetrics(whole), b = readMetrics(split);
  assert.equal(a.length, 12);
  assert.equal(b.length, 12);
  for (let i = 0; i < 12; i++)
    for (const k of ['loss', 'loss/policy_avg', 'loss/value_avg', 'objective/kl', 'objective/kl_coef', 'objective/scores', 'val/num_eos_tokens'])
      assert.equal(b[i]![k], a[i]![k], `step ${i + 1} ${k}: resumed ${b[i]![k]} vs uninterrupted ${a[i]![k]}`);
  // The adaptive controller moved β, and the missing-EOS penalty is applied where completions lack EOS.
  assert.notEqual(a.at(-1)!['objective/kl_coef'], 0.1);
  assert.ok(a.some((r) => r['val/num_eos_tokens']! > 0) && a.some((r) => r['val/num_eos_tokens']! < 8), 'some completions end with EOS, some do not');
});

test('a learned reward model scores at the last real token, survives save/load, and seeds the value model', async () => {
  const { cfg, params } = tinyModel('llama', 9);
  const head = initHead(cfg, 4);
  head.b.data[0] = 0.25;
  const rm = RewardModel.fromHost(cfg, initHostParams(cfg, 9, 0.2), head, undefined, { batchSize: 4 });

  // Reference: each sequence alone (no padding), h_last · w + b on the host.
  const seqs = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11], [12, 13, 14, 15], [16, 17], [18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34]];
  const expected: number[] = [];
  for (const s of seqs) {
    const n = s.length;
    const h = await takeF32(hidden(rm.model.trunk, cfg, i32(s, [1, n]), i32(s.map((_, j) => j), [1, n]), i32(s.map(() => 1), [1, n])));
    const last = h.subarray((n - 1) * cfg.hiddenSize, n * cfg.hiddenSize);
    expected.push(last.reduce((a, x, c) => a + x * head.w.data[c]!, 0) + 0.25);
  }
  const got = await rm.score(seqs);
  expected.forEach((e, i) => assert.ok(Math.abs(got[i]! - e) < 1e-4, `row ${i}: ${got[i]} vs ${e}`));
  // As a RewardFn it scores prompt ++ completion.
  const viaFn = await rm.rewardFn()({ prompts: seqs.map((s) => s.slice(0, 1)), completions: seqs.map((s) => s.slice(1)), texts: seqs.map(() => '') });
  viaFn.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-5));
  // Save as an HF directory with score.weight / score.bias; load; same scores.
  const dir = tmp('rm');
  await saveRewardModel(dir, rm);
  const back = await RewardModel.load(dir, { batchSize: 4 });
  const again = await back.score(seqs);
  again.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-6));
  back.dispose();

  // PPO with the RM: the value model starts as a copy of it (lr 0 keeps it there), the reward is its score.
  // Every sequence the trainer sends to the RM is recorded, then rescored here independently (float64 reference
  // trunk, test/formats/helpers.ts, and the head on the host): their mean must be the logged objective/scores.
  const sent: number[][] = [];
  const rmScore = rm.score.bind(rm);
  rm.score = async (s: number[][]) => {
    sent.push(...s.map((x) => [...x]));
    return rmScore(s);
  };
  const r = await trainPpo({
    runDir: tmp('ppo-rm'), store: false, policy: { cfg, params }, rewardModel: rm, prompts: PROMPTS.slice(0, 8), iterations: 1,
    batchSize: 8, ppoEpochs: 1, maxNewTokens: 4, temperature: 1, learningRate: 0, seed: 3,
  });
  const same = async (x: Arr, y: Arr) => {
    const [a, b] = [await takeF32(x.ref), await takeF32(y.ref)];
    return a.every((v, i) => v === b[i]);
  };
  assert.ok(await same(r.value.head.w, rm.model.head.w), 'value head = reward head');
  assert.ok(await same(r.value.trunk.layers[1]!.wqkv, rm.model.trunk.layers[1]!.wqkv), 'value trunk = reward trunk');
  assert.ok(await same(r.policy.wte, params.wte), 'lr 0 leaves the policy as it was');
  const score = readMetrics(r.summary.runDir)[0]!['objective/scores']!;
  assert.equal(sent.length, 8, 'the RM scored the batch of 8 completions');
  const prompts = PROMPTS.slice(0, 8).map((p) => p.join());
  // No EOS in this config, so every completion runs to maxNewTokens (4) after its 3-token prompt.
  sent.forEach((s) => assert.ok(s.length === 7 && prompts.includes(s.slice(0, 3).join()), `prompt ++ completion: ${s.join()}`));
  const hostTrunk = initHostParams(cfg, 9, 0.2);
  const rescored = sent.map((s) => referenceHidden(cfg, hostTrunk, s).at(-1)!.reduce((a, x, c) => a + x * head.w.data[c]!, 0) + 0.25);
  assert.ok(Math.abs(score - mean(rescored)) < 1e-4, `objective/scores ${score} vs the RM rescored independently ${mean(rescored)}`);
  tree.dispose([r.policy, r.value.trunk, r.value.head, params] as never);
  rm.dispose();
});

test('an LM policy with a tokenizer: text prompts in, decoded completions to the reward, EOS from the tokenizer', async () => {
  const { cfg, params } = tinyModel('llama', 8, { vocabSize: 257, maxPositions: 32 });
  const tokenizer = Tokenizer.fromJSON(byteLevelTokenizerJson(['<|endoftext|>']), { eos_token: '<|endoftext|>' });
  const lm = new LM(cfg, params, tokenizer, 'tiny');
  assert.equal(resolvePolicy(lm).eosId, 256, 'EOS comes from the tokenizer (the config has none)');
  const seen: { prompts: number[][]; completions: number[][]; texts: string[] }[] = [];
  const r = await trainPpo({
    runDir: tmp('ppo-lm'), store: false, policy: lm, prompts: ['hi', 'the'], iterations: 1, batchSize: 4, ppoEpochs: 1, maxNewTokens: 5, learningRate: 1e-4,
    reward: async (b) => {
      seen.push(b);
      return b.texts.map((t) => t.length);
    },
  });
  const b = seen[0]!;
  assert.equal(b.texts.length, 4);
  b.prompts.forEach((p) => assert.ok(['hi', 'the'].includes(tokenizer.decode(p))));
  b.completions.forEach((c, i) => {
    const body = c.at(-1) === 256 ? c.slice(0, -1) : c; // EOS (<|endoftext|> = 256) ends a completion and is not text
    // (the sampler holds back a trailing incomplete UTF-8 character, U+FFFD)
    assert.equal(b.texts[i], tokenizer.decode(body, { skipSpecial: true }).replace(/\uFFFD$/, ''));
    assert.ok(c.slice(0, -1).every((t) => t !== 256), 'nothing is sampled after EOS');
  });
  assert.ok(lm.params.wte.refCount >= 1, 'the LM keeps its params');
  tree.dispose([r.policy, r.value.trunk, r.value.head] as never);
  lm.dispose();
});

test('bad setups fail with clear messages', async () => {
  const { cfg, params } = tinyModel('llama', 2);
  const base = { runDir: tmp('ppo-bad'), store: false as const, policy: { cfg, params }, prompts: PROMPTS, iterations: 1, maxNewTokens: 4 };
  await assert.rejects(trainPpo({ ...base, reward: lowTokens, batchSize: 6, numMiniBatches: 4 }), /batchSize 6 must be divisible/);
  await assert.rejects(trainPpo({ ...base }), /give a reward function/);
  await assert.rejects(trainPpo({ ...base, reward: lowTokens, prompts: ['hello'] }), /prompt 0 is text but the policy has no tokenizer/);
  await assert.rejects(trainPpo({ ...base, reward: lowTokens, maxNewTokens: 70 }), /exceeds the model's 64 positions/);
  await assert.rejects(trainPpo({ ...base, runDir: tmp('ppo-nan'), batchSize: 4, reward: async (b) => b.texts.map((_, i) => (i === 2 ? NaN : 0)) }), /reward function: score 2 is NaN/);
  tree.dispose(params as never);
});
