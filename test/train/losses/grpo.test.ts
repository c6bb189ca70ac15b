import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jit, valueAndGrad, type Arr } from '../../../src/engine/index.js';
import { groupAdvantages, grpoLoss, GRPO_LOSS_TYPES, type GrpoLossType } from '../../../src/train/losses/grpo.js';
import { ready, read, scalar, close, f32, normals, round32, mean64 } from './helpers.js';

await ready;

test('group advantages: (r − mean_g)/(std_g + eps) with the unbiased std; Dr. GRPO drops the scale', () => {
  const r = [1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5, 3, 1, 2, 0]; // 3 prompts × G = 4; the middle group is flat
  const groups = [r.slice(0, 4), r.slice(4, 8), r.slice(8, 12)];
  const mu = groups.map(mean64);
  const sd = groups.map((g, k) => Math.sqrt(g.reduce((s, x) => s + (x - mu[k]!) ** 2, 0) / 3));
  const { advantages, stats } = groupAdvantages(r, 4);
  close(advantages, r.map((x, i) => (x - mu[i >> 2]!) / (sd[i >> 2]! + 1e-4)), 1e-6, 'scaled');
  close(groupAdvantages(r, 4, { scaleRewards: false }).advantages, r.map((x, i) => x - mu[i >> 2]!), 1e-6, 'unscaled');
  assert.deepEqual(Array.from(advantages.slice(4, 8)), [0, 0, 0, 0]); // flat group: no signal, no NaN
  close(stats.reward, mean64(r), 1e-12, 'reward');
  close(stats.reward_std, mean64(sd), 1e-12, 'reward_std');
  close(stats.frac_reward_zero_std, 1 / 3, 1e-12, 'frac_reward_zero_std');
  assert.throws(() => groupAdvantages(r, 5), /12 rewards do not split into groups of 5/);
});

const B = 4, T = 5;
const mask = [1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0];
const old = round32(normals(B * T, 51).map((x) => -Math.abs(x) - 0.1));
const lp = round32(old.map((o, i) => o + 0.35 * normals(B * T, 52)[i]!));
const ref = round32(old.map((o, i) => o + 0.3 * normals(B * T, 53)[i]!));
const adv = round32([1.2, -0.7, 0.4, -0.9]);

function reference(type: GrpoLossType, beta: number, eps: number, epsHigh: number) {
  const per = lp.map((l, i) => {
    const a = adv[Math.floor(i / T)]!, rho = Math.exp(l - old[i]!), c = Math.min(Math.max(rho, 1 - eps), 1 + epsHigh);
    const k3 = Math.exp(ref[i]! - l) - (ref[i]! - l) - 1;
    return { l: -Math.min(rho * a, c * a) + beta * k3, k3, clip: (rho < 1 - eps && a < 0) || (rho > 1 + epsHigh && a > 0) ? 1 : 0 };
  });
  const rows = [0, 1, 2, 3].map((b) => per.slice(b * T, b * T + T).filter((_, t) => mask[b * T + t]));
  const all = rows.flat();
  const sum = all.reduce((s, p) => s + p.l, 0);
  const loss = type === 'grpo' ? mean64(rows.map((r) => r.reduce((s, p) => s + p.l, 0) / r.length)) : type === 'bnpo' ? sum / all.length : sum / (B * T);
  return { loss, kl: mean64(all.map((p) => p.k3)), clip: mean64(all.map((p) => p.clip)) };
}

test('GRPO loss equals the formula for grpo / bnpo / dr_grpo, with the k3 KL term and clip-higher', async () => {
  for (const lossType of GRPO_LOSS_TYPES) {
    for (const [beta, eps, epsHigh] of [[0.04, 0.2, 0.2], [0.1, 0.2, 0.28], [0, 0.1, 0.1]] as const) {
      const want = reference(lossType, beta, eps, epsHigh);
      const { loss, metrics } = grpoLoss({ logprobs: f32(lp, [B, T]), oldLogprobs: f32(old, [B, T]), refLogprobs: f32(ref, [B, T]), advantages: f32(adv), mask: f32(mask, [B, T]) }, { lossType, beta, epsilon: eps, epsilonHigh: epsHigh });
      close(await scalar(loss), want.loss, 5e-5, `${lossType} β=${beta} ε=${eps}/${epsHigh}`);
      close(await scalar(metrics.kl), want.kl, 5e-5, 'kl');
      close(await scalar(metrics['clip_ratio/region_mean']), want.clip, 1e-6, 'clip_ratio/region_mean');
    }
  }
  assert.ok(reference('grpo', 0.04, 0.2, 0.2).clip > 0, 'the data exercise the clip');
  assert.throws(() => grpoLoss({ logprobs: f32(lp), advantages: f32(adv), mask: f32(mask) }, { beta: 0.04 }), /needs refLogprobs/);
});

test('one update per generation (no old log-probs): ρ = 1, gradient = (−Â + β(1 − π_ref/π)) / (B·|o_i|); jit = eager', async () => {
  const beta = 0.04;
  const f = (l: Arr, r: Arr, a: Arr, m: Arr) => {
    const { loss, metrics } = grpoLoss({ logprobs: l, refLogprobs: r, advantages: a, mask: m }, { beta });
    return [loss, metrics] as [Arr, typeof metrics];
  };
  const vg = valueAndGrad(f, { hasAux: true });
  const step = jit((l: Arr, r: Arr, a: Arr, m: Arr) => vg(l, r, a, m));
  const args = () => [f32(lp, [B, T]), f32(ref, [B, T]), f32(adv), f32(mask, [B, T])] as const;
  const [[v, aux], g] = step(...args());
  const [[ve, auxe], ge] = vg(...args());
  const lens = [3, 5, 1, 4];
  const want = lp.map((l, i) => (mask[i] ? (-adv[Math.floor(i / T)]! + beta * (1 - Math.exp(ref[i]! - l))) / (B * lens[Math.floor(i / T)]!) : 0));
  const gj = await read(g);
  close(gj, want, 1e-5, 'grad');
  close(await read(ge), gj, 1e-6, 'eager grad');
  close(await scalar(v), await scalar(ve), 1e-6, 'value');
  assert.equal(await scalar(aux['clip_ratio/region_mean']), 0);
  for (const x of [aux.kl, auxe.kl, auxe['clip_ratio/region_mean']]) x.dispose();
  step.dispose();
});
