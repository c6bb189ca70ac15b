import { test } from 'node:test';
import assert from 'node:assert/strict';
import { np, jit, grad, valueAndGrad, type Arr } from '../../../src/engine/index.js';
import { ppoPolicyLoss, ppoValueLoss, ppoLoss } from '../../../src/train/losses/ppo.js';
import { gae, shapeRewards, ppoAdvantages, lastTokenIndex, applyMissingEosPenalty, type Rollout } from '../../../src/train/losses/gae.js';
import { emaUpdate } from '../../../src/train/trainers/online.js';
import { ready, read, scalar, close, f32, normals, round32, mean64 } from './helpers.js';

await ready;
const B = 3, T = 6;
// Row 0 right-padded, row 1 left-padded, row 2 with a hole (GAE must skip it and link across).
const mask = [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1];
const rewards = round32(normals(B * T, 21));
const values = round32(normals(B * T, 22));

/** A_t = Σ_l (γλ)^l δ_{t+l} with δ_t = r_t + γV_{t+1} − V_t, over each row's masked positions, V = 0 past the end. */
function gaeReference(r: number[], v: number[], m: number[], gamma: number, lam: number) {
  const adv = new Array(B * T).fill(0), ret = new Array(B * T).fill(0);
  for (let b = 0; b < B; b++) {
    const idx = [...Array(T).keys()].map((t) => b * T + t).filter((i) => m[i]);
    const delta = idx.map((i, k) => r[i]! + gamma * (k + 1 < idx.length ? v[idx[k + 1]!]! : 0) - v[i]!);
    idx.forEach((i, k) => {
      for (let l = 0; k + l < idx.length; l++) adv[i] += (gamma * lam) ** l * delta[k + l]!;
      ret[i] = adv[i] + v[i]!;
    });
  }
  return { adv, ret };
}

test('GAE equals the definition A_t = Σ (γλ)^l δ_{t+l} (several γ, λ), with zeros off the mask', () => {
  for (const [gamma, lam] of [[1, 0.95], [0.99, 0.9], [0.9, 1], [1, 0]]) {
    const got = gae(rewards, values, mask, B, T, gamma!, lam!);
    const want = gaeReference(rewards, values, mask, gamma!, lam!);
    close(got.advantages, want.adv, 1e-5, `advantages γ=${gamma} λ=${lam}`);
    close(got.returns, want.ret, 1e-5, `returns γ=${gamma} λ=${lam}`);
  }
  // λ = 1, γ = 1: A_t = (Σ_{s≥t} r_s) − V_t, the Monte-Carlo return minus the baseline.
  const g = gae(rewards, values, mask, B, T, 1, 1);
  const t = 1; // row 0, position 1
  close(g.advantages[t]!, rewards[1]! + rewards[2]! + rewards[3]! - values[1]!, 1e-5, 'MC');
});

test('reward shaping: −β·KL per token, score on the last token, missing-EOS penalty', () => {
  const logprobs = round32(normals(B * T, 23).map((x) => -Math.abs(x)));
  const refLogprobs = round32(normals(B * T, 24).map((x) => -Math.abs(x)));
  const scores = round32([1.0, -0.5, 2.0]);
  assert.deepEqual(Array.from(lastTokenIndex(mask, B, T)), [3, 5, 5]);
  const r: Rollout = { B, T, logprobs: Float32Array.from(logprobs), refLogprobs: Float32Array.from(refLogprobs), values: Float32Array.from(values), mask: Float32Array.from(mask), scores: Float32Array.from(scores), hasEos: [true, false, true] };
  for (const est of ['k1', 'k3'] as const) {
    const { rewards: rw, kl } = shapeRewards(r, scores, 0.05, est);
    const want = logprobs.map((l, i) => {
      if (!mask[i]) return 0;
      const k = est === 'k1' ? l - refLogprobs[i]! : Math.exp(refLogprobs[i]! - l) - 1 - (refLogprobs[i]! - l);
      return -0.05 * k + ([3, 11, 17].includes(i) ? scores[Math.floor(i / T)]! : 0);
    });
    close(rw, want, 1e-5, `${est} rewards`);
    assert.ok(mask.every((k, i) => k || kl[i] === 0));
  }
  assert.deepEqual(Array.from(applyMissingEosPenalty([1, 1], [1, 0], 2)), [1, -1]);

  // The whole step: penalty, shaping, GAE (γ=1, λ=0.95), whitened advantages, and TRL's rollout metrics.
  const out = ppoAdvantages(r, { klCoef: 0.05, missingEosPenalty: 1.5 });
  const pen = [1.0, -2.0, 2.0];
  close(out.scores, pen, 1e-6, 'penalized scores');
  const kl = logprobs.map((l, i) => (mask[i] ? l - refLogprobs[i]! : 0));
  const shaped = kl.map((k, i) => -0.05 * k + ([3, 11, 17].includes(i) ? pen[Math.floor(i / T)]! : 0));
  const ref = gaeReference(shaped, values, mask, 1, 0.95);
  close(out.returns, ref.ret, 1e-5, 'returns (from unwhitened advantages)');
  const masked = (a: ArrayLike<number>) => mask.flatMap((k, i) => (k ? [a[i]!] : []));
  const mu = mean64(masked(ref.adv)), sd = Math.sqrt(masked(ref.adv).reduce((s, a) => s + (a - mu) ** 2, 0) / (masked(ref.adv).length - 1));
  close(out.advantages, ref.adv.map((a, i) => (mask[i] ? (a - mu) / sd : 0)), 1e-4, 'whitened advantages');
  const klSeq = [0, 1, 2].map((b) => kl.slice(b * T, b * T + T).reduce((s, k) => s + k, 0));
  close(out.metrics['objective/kl'], mean64(klSeq), 1e-6, 'objective/kl');
  close(out.metrics['objective/scores'], mean64(pen), 1e-6, 'objective/scores');
  close(out.metrics['objective/rlhf_reward'], mean64(pen) - 0.05 * mean64(klSeq), 1e-6, 'objective/rlhf_reward');
  close(out.metrics['objective/entropy'], -mean64([0, 1, 2].map((b) => masked(logprobs.map((l, i) => (Math.floor(i / T) === b ? l : 0))).reduce((s, l) => s + l, 0))), 1e-6, 'objective/entropy');
  assert.equal(out.metrics['val/num_eos_tokens'], 2);
  assert.throws(() => ppoAdvantages({ ...r, scores: new Float32Array(2) }, { klCoef: 0.1 }), /rollout.scores has 2 entries, expected 3/);
});

test('clipped policy loss equals the formula; metrics too', async () => {
  const n = B * T, eps = 0.2;
  const old = round32(normals(n, 31).map((x) => -Math.abs(x)));
  const lp = round32(old.map((o, i) => o + 0.4 * normals(n, 32)[i]!));
  const adv = round32(normals(n, 33));
  const terms = lp.map((l, i) => {
    const rho = Math.exp(l - old[i]!), c = Math.min(Math.max(rho, 1 - eps), 1 + eps);
    return { loss: Math.max(-adv[i]! * rho, -adv[i]! * c), clipped: -adv[i]! * c > -adv[i]! * rho ? 1 : 0, kl: 0.5 * (l - old[i]!) ** 2, rho };
  });
  const mm = (f: (t: (typeof terms)[number]) => number) => mean64(terms.flatMap((t, i) => (mask[i] ? [f(t)] : [])));
  const { loss, metrics } = ppoPolicyLoss(f32(lp, [B, T]), f32(old, [B, T]), f32(adv, [B, T]), f32(mask, [B, T]), eps);
  close(await scalar(loss), mm((t) => t.loss), 5e-5, 'loss');
  close(await scalar(metrics['loss/policy_avg']), mm((t) => t.loss), 5e-5, 'loss/policy_avg');
  close(await scalar(metrics['policy/clipfrac_avg']), mm((t) => t.clipped), 1e-6, 'clipfrac');
  assert.ok(mm((t) => t.clipped) > 0 && mm((t) => t.clipped) < 1, 'the data exercise both branches');
  close(await scalar(metrics['policy/approxkl_avg']), mm((t) => t.kl), 5e-5, 'approxkl');
  close(await scalar(metrics['val/ratio']), mm((t) => t.rho), 5e-5, 'ratio');
});

test('clipping stops the update beyond ε: zero gradient where the clipped term is active', async () => {
  const eps = 0.2;
  //                  ρ>1+ε,A>0  ρ<1−ε,A<0  inside    ρ>1+ε,A<0  ρ<1−ε,A>0
  const rho = [1.5, 0.5, 1.1, 1.5, 0.5], A = [1, -1, 2, -1.5, 0.7];
  const old = [-1, -2, -0.5, -3, -1.5];
  const lp = round32(old.map((o, i) => o + Math.log(rho[i]!)));
  const f = (l: Arr) => ppoPolicyLoss(l, f32(old), f32(A), np.ones([5]), eps).loss;
  const g = await read(jit(grad(f))(f32(lp)));
  assert.equal(g[0], 0);
  assert.equal(g[1], 0);
  // Elsewhere d/dlogp of −A·ρ/N is −A·ρ/N.
  for (const i of [2, 3, 4]) close(g[i]!, (-A[i]! * Math.exp(lp[i]! - old[i]!)) / 5, 1e-5, `token ${i}`);
});

test('clipped value loss: ½·mean(max((V−R)², (V_old + clip(V−V_old) − R)²)), clipfrac, and no gradient when clipped wins', async () => {
  const ev = 0.2;
  const vOld = round32([0.0, 0.5, 1.0, -1.0]), v = round32([0.5, 0.55, 0.1, -1.1]), R = round32([1.0, 0.0, 0.5, -1.0]);
  const per = v.map((x, i) => {
    const vc = vOld[i]! + Math.min(Math.max(x - vOld[i]!, -ev), ev);
    const l1 = (x - R[i]!) ** 2, l2 = (vc - R[i]!) ** 2;
    return { l: Math.max(l1, l2), c: l2 > l1 ? 1 : 0 };
  });
  const m = f32([1, 1, 1, 1]);
  const { loss, metrics } = ppoValueLoss(f32(v), f32(vOld), f32(R), m, ev);
  close(await scalar(loss), 0.5 * mean64(per.map((p) => p.l)), 1e-6, 'value loss');
  close(await scalar(metrics['loss/value_avg']), 0.5 * mean64(per.map((p) => p.l)), 1e-6, 'loss/value_avg');
  close(await scalar(metrics['val/clipfrac_avg']), mean64(per.map((p) => p.c)), 0, 'val/clipfrac_avg');
  const g = await read(grad((x: Arr) => ppoValueLoss(x, f32(vOld), f32(R), f32([1, 1, 1, 1]), ev).loss)(f32(v)));
  per.forEach((p, i) => {
    if (p.c) assert.equal(g[i], 0, `value ${i}: the clipped branch is active, no gradient`);
    else close(g[i]!, (v[i]! - R[i]!) / 4, 1e-6, `value grad ${i}`); // d/dV ½·(V−R)²/N
  });
  assert.ok(per.some((p) => p.c) && per.some((p) => !p.c));
});

test('jit(valueAndGrad(ppoLoss)) with metrics as aux equals eager and L_π + c_v·L_V', async () => {
  const n = B * T;
  const old = round32(normals(n, 41).map((x) => -Math.abs(x)));
  const lp = round32(old.map((o, i) => o + 0.3 * normals(n, 42)[i]!));
  const adv = round32(normals(n, 43)), vOld = round32(normals(n, 44)), v = round32(vOld.map((x, i) => x + 0.3 * normals(n, 45)[i]!)), R = round32(normals(n, 46));
  const ent = round32(normals(n, 47).map(Math.abs));
  const f = (l: Arr, val: Arr, o: Arr, a: Arr, vo: Arr, r: Arr, m: Arr, e: Arr) => {
    const { loss, metrics } = ppoLoss({ logprobs: l, values: val, oldLogprobs: o, advantages: a, oldValues: vo, returns: r, mask: m, entropy: e }, { vfCoef: 0.1 });
    return [loss, metrics] as [Arr, typeof metrics];
  };
  const args = () => [f32(lp, [B, T]), f32(v, [B, T]), f32(old, [B, T]), f32(adv, [B, T]), f32(vOld, [B, T]), f32(R, [B, T]), f32(mask, [B, T]), f32(ent, [B, T])] as const;
  const vg = valueAndGrad(f, { hasAux: true, argnums: [0, 1] });
  const step = jit((...xs: Arr[]) => vg(...(xs as unknown as Parameters<typeof f>)));
  const [[lj, mj], [glj, gvj]] = step(...args());
  const [[le, me], [gle, gve]] = vg(...args());
  const pl = ppoPolicyLoss(f32(lp, [B, T]), f32(old, [B, T]), f32(adv, [B, T]), f32(mask, [B, T]));
  const vl = ppoValueLoss(f32(v, [B, T]), f32(vOld, [B, T]), f32(R, [B, T]), f32(mask, [B, T]));
  const want = (await scalar(pl.loss)) + 0.1 * (await scalar(vl.loss));
  close(await scalar(lj), want, 1e-5, 'jit loss');
  close(await scalar(le), want, 1e-5, 'eager loss');
  close(await read(glj), await read(gle), 1e-6, 'grad logp');
  close(await read(gvj), await read(gve), 1e-6, 'grad values');
  close(await scalar(mj['policy/entropy_avg']!), mean64(ent.filter((_, i) => mask[i])), 1e-6, 'policy/entropy_avg');
  assert.deepEqual(Object.keys(mj).sort(), ['loss/policy_avg', 'loss/value_avg', 'policy/approxkl_avg', 'policy/clipfrac_avg', 'policy/entropy_avg', 'val/clipfrac_avg', 'val/ratio']);
  for (const x of [...Object.values(mj), ...Object.values(me), ...Object.values(pl.metrics), ...Object.values(vl.metrics)]) if (x && x.refCount > 0) x.dispose();
  step.dispose();
});

test('emaUpdate: ref ← α·ref + (1−α)·policy, policy kept', async () => {
  const ref = { a: f32([1, 2]), b: [f32([0, 10])] }, pol = { a: f32([3, 4]), b: [f32([10, 0])] };
  const next = emaUpdate(ref, pol, 0.9);
  close(await read(next.a), [1.2, 2.2], 1e-6, 'a');
  close(await read(next.b[0]!), [1, 9], 1e-6, 'b');
  assert.equal(pol.a.refCount, 1);
  close(await read(pol.a), [3, 4], 0, 'policy untouched');
  pol.b[0]!.dispose();
  assert.throws(() => emaUpdate(ref, pol, 1.5), /alpha must be in \[0, 1\]/);
});
