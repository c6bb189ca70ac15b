import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jit, valueAndGrad, type Arr } from '../../../src/engine/index.js';
import { leaveOneOutAdvantages, rlooAdvantages, rlooLoss } from '../../../src/train/losses/rloo.js';
import { ready, read, scalar, close, f32, normals, round32, mean64 } from './helpers.js';

await ready;

test('leave-one-out advantages: A_i = R_i − mean_{j≠i} R_j per group; they sum to 0 in each group', () => {
  const R = round32(normals(9, 61)); // 3 prompts × k = 3
  const want = R.map((x, i) => {
    const g = Math.floor(i / 3) * 3;
    const others = [g, g + 1, g + 2].filter((j) => j !== i).map((j) => R[j]!);
    return x - mean64(others);
  });
  const a = leaveOneOutAdvantages(R, 3);
  close(a, want, 1e-6, 'advantages');
  for (let g = 0; g < 9; g += 3) close(a[g]! + a[g + 1]! + a[g + 2]!, 0, 1e-6, 'group sum');
  const n = leaveOneOutAdvantages(R, 3, { normalize: true });
  close(mean64(Array.from(n)), 0, 1e-6, 'normalized mean');
  assert.throws(() => leaveOneOutAdvantages(R, 1), /group size must be an integer ≥ 2/);
});

test('rlooAdvantages: R = score − β·Σ_t (logp − ref), then leave-one-out; TRL rollout metrics', () => {
  const B = 4, T = 3, beta = 0.1;
  const mask = [1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1];
  const lp = round32(normals(B * T, 62).map((x) => -Math.abs(x))), ref = round32(normals(B * T, 63).map((x) => -Math.abs(x)));
  const scores = round32([1, 0, 0.5, 2]);
  const kl = [0, 1, 2, 3].map((b) => [0, 1, 2].reduce((s, t) => s + (mask[b * T + t] ? lp[b * T + t]! - ref[b * T + t]! : 0), 0));
  const R = scores.map((s, b) => s - beta * kl[b]!);
  const out = rlooAdvantages({ B, T, logprobs: Float32Array.from(lp), refLogprobs: Float32Array.from(ref), mask: Float32Array.from(mask), scores: Float32Array.from(scores) }, 2, { klCoef: beta });
  close(out.kl, kl, 1e-6, 'kl');
  close(out.rlhfReward, R, 1e-6, 'R');
  close(out.advantages, [R[0]! - R[1]!, R[1]! - R[0]!, R[2]! - R[3]!, R[3]! - R[2]!], 1e-6, 'k = 2: A = R_i − R_other');
  close(out.metrics['objective/kl'], mean64(kl), 1e-6, 'objective/kl');
  close(out.metrics['objective/rlhf_reward'], mean64(R), 1e-6, 'objective/rlhf_reward');
  close(out.metrics['objective/scores'], mean64(scores), 1e-6, 'objective/scores');
});

test('RLOO loss equals the clipped sequence-level formula; at ρ = 1 its gradient is −A/B (REINFORCE); jit = eager', async () => {
  const old = round32([-10, -12, -8, -15]), lp = round32([-9.5, -12.4, -8.05, -14.0]), A = round32([0.5, -1.0, 2.0, -0.3]);
  const eps = 0.2;
  const want = mean64(lp.map((l, i) => {
    const rho = Math.exp(l - old[i]!);
    return Math.max(-A[i]! * rho, -A[i]! * Math.min(Math.max(rho, 1 - eps), 1 + eps));
  }));
  const { loss, metrics } = rlooLoss({ logprobs: f32(lp), oldLogprobs: f32(old), advantages: f32(A) });
  close(await scalar(loss), want, 5e-5, 'loss');
  close(await scalar(metrics['policy/clipfrac_avg']), 0.5, 0, 'clipfrac (pairs 0 and 1 are clipped)');
  for (const k of ['loss/policy_avg', 'policy/approxkl_avg', 'val/ratio'] as const) metrics[k].dispose();

  const f = (l: Arr, a: Arr) => rlooLoss({ logprobs: l, advantages: a }).loss;
  const step = jit((l: Arr, a: Arr) => valueAndGrad(f)(l, a));
  const [v, g] = step(f32(lp), f32(A));
  close(await scalar(v), -mean64(A), 1e-6, 'value at ρ = 1');
  const gj = await read(g);
  close(gj, A.map((a) => -a / 4), 1e-6, 'REINFORCE gradient');
  const [ve, gE] = valueAndGrad(f)(f32(lp), f32(A));
  close(await scalar(ve), -mean64(A), 1e-6, 'eager value');
  close(await read(gE), gj, 1e-7, 'eager grad');
  step.dispose();
});
