import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, np, takeF32, valueAndGrad, jit, keep, free, tree, compile, type Arr } from '../../src/engine/index.js';
import { forward, prefill, decodeStep, freeKV, type KV, type Params } from '../../src/model/decoder.js';
import { paramCount, tinyConfig } from '../../src/formats/config.js';
import { initHostParams } from '../../src/model/params.js';
import { mapTree } from '../../src/engine/tree.js';
import { toDevice } from '../../src/model/weights.js';
import { referenceLogits } from '../formats/helpers.js';
import { ALL_ARCHS, padBatch, randomTokens, tinyModel, disposeAll } from '../helpers/model.js';

await initEngine('wasm');

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

for (const arch of ALL_ARCHS) {
  test(`${arch}: KV-cache decoding equals the full forward, batch with left padding`, async () => {
    const { cfg, params } = tinyModel(arch, 11);
    const V = cfg.vocabSize, L = 12;
    const seqs = [randomTokens(L, V, 3), randomTokens(L, V, 5)];
    const plen = [3, 6]; // row 0 is left-padded by 3 in the prefill
    const refs: Float32Array[] = [];
    for (const s of seqs) {
      const b = padBatch([s], L, 'right');
      refs.push(await takeF32(forward(params, cfg, b.ids, b.pos, b.valid)));
      disposeAll(b.ids, b.pos, b.valid);
    }
    const P = 6, tmax = 16;
    const pb = padBatch(seqs.map((s, i) => s.slice(0, plen[i])), P, 'left');
    let [logits, cache] = prefill(params, cfg, pb.ids, pb.pos, pb.valid, tmax);
    const kvValid = np.array(Int32Array.from({ length: 2 * tmax }, (_, i) => (i % tmax < P - plen[Math.floor(i / tmax)]! ? 0 : 1)), { dtype: np.int32, shape: [2, tmax] });
    let worst = 0;
    // Step t feeds each row its own next real token; rows are at different positions.
    for (let t = 0; t <= L - 1 - plen[1]!; t++) {
      const got = await takeF32(logits);
      for (let b = 0; b < 2; b++) {
        const posIdx = plen[b]! - 1 + t;
        worst = Math.max(worst, maxAbsDiff(got.subarray(b * V, (b + 1) * V), refs[b]!.subarray(posIdx * V, (posIdx + 1) * V)));
      }
      const tok = np.array(Int32Array.from(seqs, (s, b) => s[plen[b]! + t]!), { dtype: np.int32, shape: [2, 1] });
      const pos = np.array(Int32Array.from(plen, (p) => p + t), { dtype: np.int32, shape: [2, 1] });
      const slot = np.array(P + t, { dtype: np.int32 });
      const [l2, c2] = decodeStep(params, cfg, cache, tok, pos, slot, kvValid);
      freeKV(cache);
      disposeAll(tok, pos, slot);
      [logits, cache] = [l2, c2];
    }
    logits.dispose();
    freeKV(cache);
    disposeAll(kvValid, pb.ids, pb.pos, pb.valid);
    free(params);
    assert.ok(worst < 1e-5, `max |cache - full| = ${worst}`);
  });

  test(`${arch}: left and right padding give the same logits for real tokens`, async () => {
    const { cfg, params } = tinyModel(arch, 2);
    const V = cfg.vocabSize, s = randomTokens(7, V, 9), T = 10;
    const r = padBatch([s], T, 'right'), l = padBatch([s], T, 'left');
    const lr = await takeF32(forward(params, cfg, r.ids, r.pos, r.valid));
    const ll = await takeF32(forward(params, cfg, l.ids, l.pos, l.valid));
    const d = maxAbsDiff(lr.subarray(0, 7 * V), ll.subarray(3 * V, 10 * V));
    disposeAll(r.ids, r.pos, r.valid, l.ids, l.pos, l.valid);
    free(params);
    assert.ok(d < 1e-5, `max diff ${d}`);
    // and the logits are not trivially equal across positions (the check above could not pass by accident)
    assert.ok(maxAbsDiff(lr.subarray(0, V), lr.subarray(V, 2 * V)) > 1e-3);
  });

  test(`${arch}: loss gradient matches finite differences`, async () => {
    const { cfg, params } = tinyModel(arch, 4);
    const V = cfg.vocabSize, T = 8;
    const b = padBatch([randomTokens(T, V, 1), randomTokens(5, V, 2)], T, 'right');
    const tgt = np.array(Int32Array.from({ length: 2 * T }, (_, i) => (i * 7 + 3) % V), { dtype: np.int32, shape: [2, T] });
    const loss = (p: Params) => {
      const logp = forward(p, cfg, b.ids, b.pos, b.valid);
      const logsm = logp.ref.sub(logp.max(-1, { keepdims: true })); // stable log-softmax by hand
      const lse = np.log(np.exp(logsm.ref).sum(-1, { keepdims: true }));
      const picked = np.where(tgt.ref.reshape([2, T, 1]).equal(np.arange(V)), logsm.sub(lse), 0).sum(-1);
      const w = b.valid.ref.astype(np.float32);
      return picked.mul(w.ref).sum().neg().div(w.sum());
    };
    const [l0, g] = jit(valueAndGrad(loss))(keep(params)) as [Arr, Params];
    await takeF32(l0);
    // Directional derivative along a random direction d: (L(p+εd) − L(p−εd)) / 2ε ≈ <g, d>.
    let seed = 1;
    const dir = mapTree(params, (x) => np.array(Float32Array.from({ length: x.size }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1), { shape: x.shape }));
    let gd = 0;
    const gl = tree.leaves(g as never) as Arr[], dl = tree.leaves(dir as never) as Arr[];
    for (let i = 0; i < gl.length; i++) gd += (await takeF32(gl[i]!.mul(dl[i]!.ref).sum()))[0]!;
    // Small enough that Mixtral's top-k routing does not switch experts (a real discontinuity), large enough for float32.
    const eps = 3e-4;
    const shifted = (s: number) => tree.map((p: Arr, d: Arr) => p.ref.add(d.ref.mul(s)), params as never, dir as never) as unknown as Params;
    const pp = shifted(eps), pm = shifted(-eps);
    const lp = (await takeF32(loss(pp)))[0]!, lm = (await takeF32(loss(pm)))[0]!;
    const fd = (lp - lm) / (2 * eps);
    free([pp, pm, dir, params]);
    disposeAll(b.ids, b.pos, b.valid, tgt);
    assert.ok(Math.abs(gd) > 1e-3, `directional derivative too small to test: ${gd}`);
    assert.ok(Math.abs(fd - gd) / Math.abs(gd) < 2e-2, `finite difference ${fd} vs gradient ${gd}`);
  });
}

test('paramCount equals the number of elements in the initialised tree', () => {
  for (const arch of ALL_ARCHS) {
    const { cfg, params } = tinyModel(arch);
    const n = (tree.leaves(params as never) as Arr[]).reduce((a, x) => a + x.size, 0);
    free(params);
    assert.equal(paramCount(cfg), n, arch);
  }
});

// An independent reference (test/formats/helpers.ts: float64 loops after Hugging Face's modeling code, the one
// the llama.cpp parity test also checks) on sequences longer than Mistral's sliding window: the full forward and
// KV-cache decoding must both match it.
for (const arch of ALL_ARCHS) {
  test(`${arch}: logits match an independent float64 reference, full forward and KV-cache decoding, 12 tokens`, async () => {
    const over = { ...(arch === 'gpt2' ? {} : { numKvHeads: 2 }), ...(arch === 'mistral' ? { slidingWindow: 4 } : {}) };
    const cfg = tinyConfig(arch, over);
    const host = initHostParams(cfg, 21, 0.2);
    const params = toDevice(host);
    const V = cfg.vocabSize, T = 12, s = randomTokens(T, V, 17);
    const ref = referenceLogits(cfg, host, s);
    if (arch === 'mistral') {
      // The window must matter here, or this test could not see it dropped.
      const noWindow = referenceLogits({ ...cfg, slidingWindow: null }, host, s);
      assert.ok(maxAbsDiff(ref[T - 1]!, noWindow[T - 1]!) > 1e-2, 'the sliding window changes the last logits');
    }
    const b = padBatch([s], T, 'right');
    const full = await takeF32(forward(params, cfg, b.ids, b.pos, b.valid));
    disposeAll(b.ids, b.pos, b.valid);
    let worstFull = 0;
    for (let t = 0; t < T; t++) worstFull = Math.max(worstFull, maxAbsDiff(full.subarray(t * V, (t + 1) * V), ref[t]!));
    // Decoding: prefill 3 tokens, then one token per step past the window; eagerly and jitted (as the Sampler runs
    // it: jax-js compiles a jitted program's kernels differently, test/engine/jax-bugs.test.ts).
    const P = 3, tmax = T;
    // Eager calls borrow their arguments; a jitted program consumes them (Sampler passes keep(params) and kv.ref).
    const preJ = compile((p: Params, ids: Arr, pos: Arr, valid: Arr) => prefill(p, cfg, ids, pos, valid, tmax));
    const stepJ = compile((p: Params, c: KV, tok: Arr, pos: Arr, slot: Arr, kv: Arr) => decodeStep(p, cfg, c, tok, pos, slot, kv));
    type Pre = (ids: Arr, pos: Arr, valid: Arr) => [Arr, KV];
    type Step = (cache: KV, tok: Arr, pos: Arr, slot: Arr, kv: Arr) => [Arr, KV];
    const modes: Record<string, { pre: Pre; step: Step }> = {
      eager: {
        pre: (ids, pos, valid) => { const r = prefill(params, cfg, ids, pos, valid, tmax); disposeAll(ids, pos, valid); return r; },
        step: (cache, tok, pos, slot, kv) => { const r = decodeStep(params, cfg, cache, tok, pos, slot, kv); freeKV(cache); disposeAll(tok, pos, slot); return r; },
      },
      jit: {
        pre: (ids, pos, valid) => preJ(keep(params), ids, pos, valid),
        step: (cache, tok, pos, slot, kv) => stepJ(keep(params), cache, tok, pos, slot, kv.ref),
      },
    };
    const worstDecode: Record<string, number> = {};
    for (const [mode, { pre, step }] of Object.entries(modes)) {
      const pb = padBatch([s.slice(0, P)], P, 'left');
      let [logits, cache] = pre(pb.ids, pb.pos, pb.valid);
      const kvValid = np.ones([1, tmax], { dtype: np.int32 });
      let worst = 0;
      for (let t = P; ; t++) {
        worst = Math.max(worst, maxAbsDiff(await takeF32(logits), ref[t - 1]!));
        if (t === T) break;
        const tok = np.array(Int32Array.of(s[t]!), { dtype: np.int32, shape: [1, 1] });
        const pos = np.array(Int32Array.of(t), { dtype: np.int32, shape: [1, 1] });
        [logits, cache] = step(cache, tok, pos, np.array(t, { dtype: np.int32 }), kvValid);
      }
      freeKV(cache);
      kvValid.dispose();
      worstDecode[mode] = worst;
    }
    preJ.dispose();
    stepJ.dispose();
    free(params);
    assert.ok(worstFull < 1e-4, `full forward: max |ours - reference| = ${worstFull}`);
    for (const [mode, worst] of Object.entries(worstDecode)) assert.ok(worst < 1e-4, `decoding (${mode}): max |ours - reference| = ${worst}`);
  });
}
