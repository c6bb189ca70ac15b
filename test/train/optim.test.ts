// AdamW + global-norm clipping inside a jitted step vs. a plain-JS float64 reference that computes
// its own gradients by hand (linear regression), so nothing on the reference side shares our code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, np, jit, valueAndGrad, tree, type Arr } from '../../src/engine/index.js';
import { adamw, clipByGlobalNorm, globalNorm, treePaths } from '../../src/train/optim.js';
import { constant, warmupCosine, warmupLinear, makeSchedule } from '../../src/train/schedule.js';

await initEngine(); // ALIGNLAB_DEVICE, default wasm

const N = 5, I = 3, O = 2;
const X = Array.from({ length: N * I }, (_, k) => Math.sin(k + 1));
const Y = Array.from({ length: N * O }, (_, k) => 10 * Math.cos(3 * k)); // large targets: gradient norm ≫ clip

type Params = { w: Arr; b: Arr };

/** float64 reference: loss = mean((xW + b − y)²), gradients by hand, torch-style clip and AdamW. */
function reference(w: number[], b: number[], steps: number, o: { lr: number[]; clip: number; wd: number; b1: number; b2: number; eps: number }) {
  const m = { w: w.map(() => 0), b: b.map(() => 0) }, v = { w: w.map(() => 0), b: b.map(() => 0) };
  const norms: number[] = [];
  for (let t = 1; t <= steps; t++) {
    const gw = w.map(() => 0), gb = b.map(() => 0);
    for (let n = 0; n < N; n++)
      for (let j = 0; j < O; j++) {
        let pred = b[j]!;
        for (let i = 0; i < I; i++) pred += X[n * I + i]! * w[i * O + j]!;
        const d = (2 * (pred - Y[n * O + j]!)) / (N * O);
        gb[j]! += d;
        for (let i = 0; i < I; i++) gw[i * O + j]! += d * X[n * I + i]!;
      }
    const norm = Math.sqrt([...gw, ...gb].reduce((a, g) => a + g * g, 0));
    norms.push(norm);
    const scale = Math.min(1, o.clip / (norm + 1e-6));
    const upd = (p: number[], g: number[], mm: number[], vv: number[], decay: boolean) => {
      for (let k = 0; k < p.length; k++) {
        const gk = g[k]! * scale;
        mm[k] = o.b1 * mm[k]! + (1 - o.b1) * gk;
        vv[k] = o.b2 * vv[k]! + (1 - o.b2) * gk * gk;
        const mh = mm[k]! / (1 - o.b1 ** t), vh = vv[k]! / (1 - o.b2 ** t);
        p[k] = p[k]! - o.lr[t - 1]! * (mh / (Math.sqrt(vh) + o.eps) + (decay ? o.wd * p[k]! : 0));
      }
    };
    upd(w, gw, m.w, v.w, true); // 2-D: decayed
    upd(b, gb, m.b, v.b, false); // 1-D: not decayed by default
  }
  return { w, b, norms };
}

test('adamw + clipByGlobalNorm in a jitted step match a float64 reference (clipping active, decay on 2-D only)', async (tc) => {
  const w0 = Array.from({ length: I * O }, (_, k) => 0.1 * (k - 2)), b0 = [0.3, -0.2];
  const hp = { b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1, clip: 0.5 };
  const STEPS = 6;
  const sched = warmupCosine(0.05, 2, STEPS);
  const lrs = Array.from({ length: STEPS }, (_, s) => sched(s));
  const ref = reference([...w0], [...b0], STEPS, { ...hp, lr: lrs });

  const opt = adamw({ lr: 0.05, b1: hp.b1, b2: hp.b2, eps: hp.eps, weightDecay: hp.wd });
  const x = np.array(new Float32Array(X), { shape: [N, I] }), y = np.array(new Float32Array(Y), { shape: [N, O] });
  const loss = (p: Params, xx: Arr, yy: Arr) => np.square(np.matmul(xx, p.w).add(p.b).sub(yy)).mean();
  const step = jit((p: Params, s: { m: Params; v: Params }, xx: Arr, yy: Arr, lr: Arr, t: Arr) => {
    const [l, g] = valueAndGrad((q: Params) => loss(q, xx, yy))(tree.ref(p));
    const [gc, norm] = clipByGlobalNorm(g, hp.clip);
    const [p2, s2] = opt.update(gc, s, p, lr, t);
    return [p2, s2, norm, l] as never;
  });
  let params: Params = { w: np.array(new Float32Array(w0), { shape: [I, O] }), b: np.array(new Float32Array(b0)) };
  let state = opt.init(params) as { m: Params; v: Params };
  const norms: number[] = [];
  for (let t = 1; t <= STEPS; t++) {
    let norm: Arr, l: Arr;
    [params, state, norm, l] = step(params, state, x.ref, y.ref, np.array(lrs[t - 1]!), np.array(t)) as unknown as [Params, typeof state, Arr, Arr];
    norms.push((await norm.data())[0]!);
    l.dispose();
  }
  // The gradient norm is far above the clip every step, so clipping is really exercised.
  assert.ok(Math.min(...ref.norms) > 10 * hp.clip, `norms ${ref.norms}`);
  norms.forEach((n, i) => assert.ok(Math.abs(n - ref.norms[i]!) / ref.norms[i]! < 1e-5, `norm ${i}: ${n} vs ${ref.norms[i]}`));
  const w = await params.w.ref.data(), b = await params.b.ref.data();
  const err = Math.max(...ref.w.map((r, k) => Math.abs(r - w[k]!)), ...ref.b.map((r, k) => Math.abs(r - b[k]!)));
  const moved = Math.max(...ref.w.map((r, k) => Math.abs(r - w0[k]!)));
  assert.ok(moved > 0.05, `params moved ${moved}`);
  assert.ok(err < 2e-6, `max |param − reference| = ${err}`);
  tc.diagnostic(`6 steps, grad norm ${ref.norms[0]!.toFixed(1)}→${ref.norms.at(-1)!.toFixed(1)} vs clip ${hp.clip}; max |param − float64 reference| ${err.toExponential(2)}, params moved up to ${moved.toFixed(3)}`);
  // Leaves are neither leaked nor double-freed across steps.
  for (const leaf of tree.leaves([params, state] as never) as Arr[]) assert.equal(leaf.refCount, 1);
  tree.dispose([params, state, x, y] as never);
  step.dispose();
});

test('weight decay skips 1-D leaves by default and follows a custom mask', async () => {
  // Zero gradients: the Adam step is 0, so the change is decay alone: p·(1 − lr·wd).
  const run = async (mask?: (path: string, shape: readonly number[]) => boolean) => {
    const opt = adamw({ weightDecay: 0.5, decayMask: mask });
    const params = { a: { w: np.ones([2, 2]) }, g: np.ones([3]) };
    const grads = tree.map((x: Arr) => np.zeros(x.shape), params);
    const [p2, s2] = opt.update(grads, opt.init(params), params, np.array(0.1), np.array(1));
    const out = { w: (await (p2 as typeof params).a.w.ref.data())[0], g: (await (p2 as typeof params).g.ref.data())[0] };
    tree.dispose([p2, s2] as never);
    return out;
  };
  const def = await run();
  assert.ok(Math.abs(def.w! - 0.95) < 1e-7 && def.g === 1, JSON.stringify(def));
  const custom = await run((path) => path === 'g');
  assert.ok(custom.w === 1 && Math.abs(custom.g! - 0.95) < 1e-7, JSON.stringify(custom));
});

test('clipByGlobalNorm: below the limit is a no-op, off when maxNorm is null; globalNorm borrows', async () => {
  const g = { a: np.array([3, 0]), b: [np.array([[4]])] };
  const n = globalNorm(g);
  assert.equal((await n.data())[0], 5);
  assert.equal(g.a.refCount, 1);
  const [same, n1] = clipByGlobalNorm(tree.ref(g), 10);
  assert.deepEqual(Array.from(await (same as typeof g).a.data()), [3, 0]);
  tree.dispose([(same as typeof g).b, n1] as never);
  const [off, n2] = clipByGlobalNorm(tree.ref(g), null);
  assert.equal((await n2.data())[0], 5);
  assert.deepEqual(Array.from(await (off as typeof g).a.data()), [3, 0]);
  tree.dispose((off as typeof g).b as never);
  const [cut] = clipByGlobalNorm(g, 1);
  const a = await (cut as typeof g).a.data(), b = await (cut as typeof g).b[0]!.data();
  assert.ok(Math.abs(a[0]! - 0.6) < 1e-6 && Math.abs(b[0]! - 0.8) < 1e-6);
});

test('treePaths follows jax-js flatten order', () => {
  const t = { wte: 1, layers: [{ ln1: { w: 2 }, wqkv: 3 }], lnf: { w: 4 } };
  assert.deepEqual(treePaths(t), ['wte', 'layers.0.ln1.w', 'layers.0.wqkv', 'lnf.w']);
  assert.deepEqual(tree.leaves(t as never), [1, 2, 3, 4]);
});

test('schedules: warmup ramps to the peak, cosine/linear reach the floor at totalSteps', () => {
  const c = warmupCosine(1, 4, 14, 0.1);
  assert.deepEqual([0, 1, 2, 3].map(c), [0.2, 0.4, 0.6, 0.8]);
  assert.equal(c(4), 1);
  assert.ok(Math.abs(c(9) - (0.1 + 0.9 * 0.5)) < 1e-12); // halfway through decay
  assert.ok(Math.abs(c(14) - 0.1) < 1e-12 && Math.abs(c(100) - 0.1) < 1e-12);
  const l = warmupLinear(2, 0, 10);
  assert.equal(l(0), 2);
  assert.equal(l(5), 1);
  assert.equal(l(10), 0);
  assert.equal(constant(3)(7), 3);
  assert.equal(makeSchedule({ kind: 'constant', lr: 3, warmupSteps: 2, totalSteps: 9 })(0), 1);
  assert.throws(() => makeSchedule({ kind: 'nope' as never, lr: 1, totalSteps: 1 }), /unknown kind "nope"/);
});
