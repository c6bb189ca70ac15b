import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jit, grad, type Arr } from '../../../src/engine/index.js';
import { klEstimate, klEstimateHost, AdaptiveKlController, FixedKlController, klControllerFromState, makeKlController } from '../../../src/train/losses/kl.js';
import { ready, read, close, f32, normals, round32 } from './helpers.js';

await ready;
const logp = round32(normals(40, 3, 1.5).map((x) => -Math.abs(x))), ref = round32(normals(40, 4, 1.5).map((x) => -Math.abs(x)));

test('k1, k2, k3 match their formulas on device and host; k2, k3 ≥ 0', async () => {
  const r = logp.map((l, i) => Math.exp(ref[i]! - l)); // r = π_ref/π_θ
  const want = {
    k1: logp.map((l, i) => l - ref[i]!),
    k2: r.map((x) => 0.5 * Math.log(x) ** 2),
    k3: r.map((x) => x - 1 - Math.log(x)),
  };
  for (const k of ['k1', 'k2', 'k3'] as const) {
    const dev = await read(klEstimate(f32(logp), f32(ref), k));
    close(dev, want[k], 5e-5, `${k} device`);
    close(logp.map((l, i) => klEstimateHost(l, ref[i]!, k)), want[k], 1e-12, `${k} host`);
    if (k !== 'k1') assert.ok(dev.every((x) => x >= 0), `${k} ≥ 0`);
  }
  assert.ok(want.k1.some((x) => x < 0), 'k1 does go negative on some tokens');
  // k3 is 0 exactly when the two distributions agree on the token.
  assert.deepEqual(await read(klEstimate(f32([-1, -2]), f32([-1, -2]), 'k3')), [0, 0]);
  assert.throws(() => klEstimateHost(0, 0, 'k4' as never), /unknown KL estimator "k4"/);
});

test('k3 gradient w.r.t. logp is 1 − r (jit)', async () => {
  const g = await read(jit(grad((a: Arr, b: Arr) => klEstimate(a, b, 'k3').sum()))(f32(logp), f32(ref)));
  close(g, logp.map((l, i) => 1 - Math.exp(ref[i]! - l)), 5e-5, 'dk3/dlogp');
});

test('the adaptive controller moves β toward the KL target, in both directions, at most 0.2·n/horizon', () => {
  const target = 6, horizon = 10000, n = 512;
  const up = new AdaptiveKlController(0.1, target, horizon);
  up.update(9, n); // KL above target: clipped error +0.2 → β grows
  close(up.value, 0.1 * (1 + (0.2 * n) / horizon), 1e-12, 'up');
  const down = new AdaptiveKlController(0.1, target, horizon);
  down.update(5.4, n); // below target: error −0.1 → β shrinks
  close(down.value, 0.1 * (1 - (0.1 * n) / horizon), 1e-12, 'down');
  const still = new AdaptiveKlController(0.1, target, horizon);
  still.update(target, n);
  assert.equal(still.value, 0.1);
  // Closed loop on a toy "KL ∝ 1/β" environment: the measured KL converges to the target.
  const c = new AdaptiveKlController(0.01, target, 100);
  let kl = 0;
  for (let i = 0; i < 400; i++) c.update((kl = 0.3 / c.value), 10);
  close(kl, target, 1e-3, 'closed loop');
  // State round trip (checkpointing).
  const back = klControllerFromState(JSON.parse(JSON.stringify(up.state())));
  back.update(1, n);
  up.update(1, n);
  assert.equal(back.value, up.value);
  const fixed = new FixedKlController(0.05);
  fixed.update();
  assert.deepEqual(klControllerFromState(fixed.state()).state(), { kind: 'fixed', value: 0.05 });
  assert.ok(makeKlController({ initKlCoef: 0.2, target: 6 }) instanceof AdaptiveKlController);
  assert.ok(makeKlController({ initKlCoef: 0.2 }) instanceof FixedKlController);
  assert.throws(() => new AdaptiveKlController(0.1, 0, 10), /target must be > 0/);
});
