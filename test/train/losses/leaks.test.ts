// Every loss consumes its inputs and frees every intermediate: calling it again leaves no extra live buffer.
// Counts backend buffers through jax-js's internal `getBackend` (test/helpers/live-buffers.ts; pinned 0.1.25).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jit, valueAndGrad, currentDevice, type Arr } from '../../../src/engine/index.js';
import { tokenLogprobsAndEntropy, nextTokenLogprobs, sequenceLogprob, entropyFromLogits } from '../../../src/model/logprobs.js';
import { sftLoss } from '../../../src/train/losses/sft.js';
import { rewardLoss, lastTokenValues } from '../../../src/train/losses/reward.js';
import { dpoLoss, DPO_LOSS_TYPES } from '../../../src/train/losses/dpo.js';
import { simpoLoss } from '../../../src/train/losses/simpo.js';
import { ppoLoss } from '../../../src/train/losses/ppo.js';
import { grpoLoss } from '../../../src/train/losses/grpo.js';
import { rlooLoss } from '../../../src/train/losses/rloo.js';
import { klEstimate } from '../../../src/train/losses/kl.js';
import { maskedWhiten } from '../../../src/train/losses/whiten.js';
import { ready, f32, i32, normals } from './helpers.js';
import { trackLiveBuffers } from '../../helpers/live-buffers.js';

await ready;
const buffers = await trackLiveBuffers(currentDevice());

const B = 2, T = 3, V = 4;
// Non-constant host data, so every input owns a real buffer: jax-js keeps constant arrays (np.ones, or an upload
// whose entries are all equal) as lazy scalars that never allocate, and a leak of those would go unseen.
const z = () => f32(normals(B * T * V, 1), [B, T, V]), y = () => i32([0, 1, 2, 3, 0, 1], [B, T]);
const m = () => f32([1, 1, 0, 1, 0, 1], [B, T]), v = () => f32([-2, -3], [B]);
type Out = { loss: Arr; metrics?: Record<string, Arr | undefined> };
const drain = async (o: Out) => {
  for (const x of [o.loss, ...Object.values(o.metrics ?? {})]) if (x) await x.data();
};
const cases: [string, () => Out][] = [
  ['tokenLogprobsAndEntropy', () => { const [a, b] = tokenLogprobsAndEntropy(z(), y()); return { loss: a, metrics: { b } }; }],
  ['nextTokenLogprobs', () => ({ loss: nextTokenLogprobs(z(), y()) })],
  ['sequenceLogprob', () => ({ loss: sequenceLogprob(m(), m(), { average: true }) })],
  ['entropyFromLogits', () => ({ loss: entropyFromLogits(z(), m()) })],
  ['sftLoss', () => sftLoss(z(), y(), m())],
  ['rewardLoss', () => rewardLoss(v(), v(), { margin: v(), centerRewardsCoefficient: 0.1 })],
  ['lastTokenValues', () => ({ loss: lastTokenValues(m(), m()) })],
  ...DPO_LOSS_TYPES.map((t): [string, () => Out] => [`dpoLoss ${t}`, () => dpoLoss({ policyChosen: v(), policyRejected: v(), refChosen: v(), refRejected: v(), chosenLengths: v(), rejectedLengths: v() }, { lossType: t, labelSmoothing: 0.1 })]),
  ['dpoLoss without lengths', () => dpoLoss({ policyChosen: v(), policyRejected: v(), refChosen: v(), refRejected: v() })],
  ['simpoLoss', () => simpoLoss({ chosenLogps: v(), rejectedLogps: v(), chosenLengths: v(), rejectedLengths: v() })],
  ['ppoLoss', () => ppoLoss({ logprobs: m(), oldLogprobs: m(), advantages: m(), values: m(), oldValues: m(), returns: m(), mask: m(), entropy: m() })],
  ['ppoLoss without entropy', () => ppoLoss({ logprobs: m(), oldLogprobs: m(), advantages: m(), values: m(), oldValues: m(), returns: m(), mask: m() })],
  ['grpoLoss', () => grpoLoss({ logprobs: m(), oldLogprobs: m(), refLogprobs: m(), advantages: v(), mask: m() })],
  ['grpoLoss without old/ref', () => grpoLoss({ logprobs: m(), advantages: v(), mask: m() }, { beta: 0, lossType: 'dr_grpo' })],
  ['rlooLoss without old', () => rlooLoss({ logprobs: v(), advantages: v() })],
  ['klEstimate k3', () => ({ loss: klEstimate(m(), m(), 'k3') })],
  ['maskedWhiten', () => ({ loss: maskedWhiten(m(), m(), { shiftMean: false }) })],
];

test('no loss leaves a live buffer behind (eager)', async () => {
  for (const [name, f] of cases) {
    await drain(f()); // warm-up: first-call caches
    const before = buffers.count();
    await drain(f());
    assert.equal(buffers.count() - before, 0, `${name} leaked ${buffers.count() - before} buffer(s)`);
  }
});

test('a jitted valueAndGrad step of the DPO loss holds a constant number of buffers', async () => {
  const f = (a: Arr, b: Arr, r1: Arr, r2: Arr) => dpoLoss({ policyChosen: a, policyRejected: b, refChosen: r1, refRejected: r2 }).loss;
  const step = jit((a: Arr, b: Arr, r1: Arr, r2: Arr) => valueAndGrad(f, { argnums: [0, 1] })(a, b, r1, r2));
  const run = async () => {
    const [l, [ga, gb]] = step(v(), v(), v(), v());
    for (const x of [l, ga, gb]) await x.data();
  };
  await run();
  const before = buffers.count();
  for (let i = 0; i < 5; i++) await run();
  assert.equal(buffers.count(), before);
  step.dispose();
});
