// One decoder for GPT-2, Llama, Mistral, Qwen2 and Mixtral, chosen by config (see formats/config.ts `traits`).
// Read it top to bottom like nanoGPT's model.py: norms, rotary embeddings, attention, MLP / experts,
// a block, the full-sequence forward for training, and prefill + one-token decode for generation.
//
// Reference counting: every function here BORROWS its array arguments (params and inputs) — it takes
// `.ref` at each use — and returns fresh arrays. Callers keep ownership of what they pass in and
// never think about jax-js's consume-on-use rule. Intermediate activations are consumed as they go.

import { np, nn, lax, type Arr } from '../engine/index.js';
import { traits, type ModelConfig } from '../formats/config.js';
import type { LayerParams, Norm, ParamTree } from '../engine/tree.js';

export type Params = ParamTree<Arr>;

/** A masked score far below any real one but finite: a fully masked row stays NaN-free (ENGINE.md §4). */
const MASKED = -1e9;

// ---- small pieces ------------------------------------------------------------------------------

/**
 * A materialised copy of a view. jax-js fuses views (repeat, transpose) into the next matmul's index math,
 * and inside forward-only programs that made those matmuls 10–25x slower (bench/RESULTS.md); summing over a
 * unit axis forces a plain buffer first. Values and gradients are unchanged.
 */
const contiguous = (x: Arr): Arr => x.reshape([...x.shape, 1]).sum(-1);

/** x [N, in] @ W [in, out] (+ b). */
function linear(x: Arr, w: Arr, b?: Arr): Arr {
  const y = np.matmul(x, w.ref);
  return b ? y.add(b.ref) : y;
}

/** LayerNorm (GPT-2) or RMSNorm (Llama family) over the last axis. */
function norm(cfg: ModelConfig, n: Norm<Arr>, x: Arr): Arr {
  if (traits(cfg).layerNorm) {
    const xc = x.ref.sub(x.mean(-1, { keepdims: true }));
    const variance = np.square(xc.ref).mean(-1, { keepdims: true });
    return xc.div(np.sqrt(variance.add(cfg.normEps))).mul(n.w.ref).add(n.b!.ref);
  }
  const ms = np.square(x.ref).mean(-1, { keepdims: true });
  return x.div(np.sqrt(ms.add(cfg.normEps))).mul(n.w.ref);
}

/** What the rotary embedding reads in every layer of one forward (built once per forward, see `ropeTables`). */
interface Rope {
  cos: Arr; // [B, 1, T, D]
  sin: Arr;
  /** When decoding one token (T = 1): rotate_half as a signed permutation R [D, D], x @ R = [-x2, x1]. */
  rotateHalf: Arr | null;
}

/**
 * Rotary tables for position ids `pos` [B, T]: cos and sin [B, 1, T, D] in HF's rotate-half layout
 * (frequencies repeated, not interleaved): inv_freq_i = theta^(-2i/D).
 */
function ropeTables(cfg: ModelConfig, pos: Arr): Rope {
  const D = cfg.headDim, [B, T] = pos.shape as [number, number];
  const invFreq = Float32Array.from({ length: D / 2 }, (_, i) => Math.pow(cfg.ropeTheta, (-2 * i) / D));
  const angles = pos.ref.astype(np.float32).reshape([B, T, 1]).mul(np.array(invFreq)); // [B,T,D/2]
  const full = np.concatenate([angles.ref, angles], -1).reshape([B, 1, T, D]);
  return { cos: np.cos(full.ref), sin: np.sin(full), rotateHalf: T === 1 ? rotateHalfMatrix(D) : null };
}

/** R [D, D] with x @ R = rotate_half(x) = [-x2, x1]: one ±1 per column, so the product is exact. */
function rotateHalfMatrix(D: number): Arr {
  const r = new Float32Array(D * D);
  for (let j = 0; j < D / 2; j++) {
    r[(j + D / 2) * D + j] = -1; // out[j] = -x[j + D/2]
    r[j * D + j + D / 2] = 1; // out[j + D/2] = x[j]
  }
  return np.array(r, { shape: [D, D] });
}

/**
 * x·cos + rotate_half(x)·sin, with rotate_half([x1, x2]) = [-x2, x1]. x [B, heads, T, D]. When decoding one token
 * rotate_half is one product with `rope.rotateHalf` instead of two slices, a negation and a concatenation: 222 → 193
 * kernels per token in a batch-1 step of small kernels; over a whole sequence the slices are cheaper than the
 * D-wide product (and its gradient). Not `flip` of x seen as [..., 2, D/2], though that would fuse into one kernel:
 * jax-js 0.1.25 miscompiles a flipped view times a broadcast vector inside a reduction kernel under jit, and
 * decoding wrote wrong keys into the cache that way (test/engine/jax-bugs.test.ts).
 */
function applyRope(x: Arr, rope: Rope): Arr {
  let rotated: Arr;
  if (rope.rotateHalf) rotated = np.matmul(x.ref, rope.rotateHalf.ref);
  else {
    const [x1, x2] = np.split(x.ref, 2, -1) as [Arr, Arr];
    rotated = np.concatenate([x2.neg(), x1], -1);
  }
  return x.mul(rope.cos.ref).add(rotated.mul(rope.sin.ref));
}

/**
 * Scaled dot-product attention. q [B,H,Tq,D], k/v [B,K,Tk,D] with K | H (grouped-query attention:
 * KV head j serves query heads j·G … j·G+G-1, HF's repeat_kv), mask [B,1,Tq,Tk] bool (true = attend).
 */
function attend(q: Arr, k: Arr, v: Arr, mask: Arr): Arr {
  const [B, H, Tq, D] = q.shape as [number, number, number, number], K = k.shape[1]!;
  if (H !== K && Tq === 1) {
    // Decoding one token: the G query heads of a KV head become the G rows of one product with that head's keys,
    // so the cache is read once instead of being copied G times per layer and token (bench/RESULTS.md, 2026-12-07).
    const G = H / K;
    const scores = np.matmul(q.reshape([B, K, G, D]), k.transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(D)); // [B, K, G, Tk]
    const probs = nn.softmax(np.where(mask.ref, scores, MASKED), -1); // mask [B, 1, 1, Tk]
    return np.matmul(probs, v).reshape([B, H, 1, D]);
  }
  if (H !== K) {
    k = contiguous(np.repeat(k, H / K, 1));
    v = contiguous(np.repeat(v, H / K, 1));
  }
  const scores = np.matmul(q, k.transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(D));
  return np.matmul(nn.softmax(np.where(mask.ref, scores, MASKED), -1), v);
}

/** GELU-tanh MLP (GPT-2) or SwiGLU (Llama family). x [N, C]. */
function denseMlp(cfg: ModelConfig, l: LayerParams<Arr>, x: Arr): Arr {
  if (traits(cfg).geluMlp) return linear(nn.gelu(linear(x, l.wfc!, l.bfc), { approximate: true }), l.wproj!, l.bproj);
  const gate = nn.silu(linear(x.ref, l.wgate!));
  return linear(gate.mul(linear(x, l.wup!)), l.wdown!);
}

/**
 * Mixtral's sparse MoE: router softmax over experts, keep the top-k, renormalise, weighted sum of
 * SwiGLU experts. Softmax restricted to the top-k logits equals HF's softmax → top-k → renormalise.
 * Every expert is computed densely and the unselected ones get weight 0: exact, and simple at the
 * sizes that train here (E× the FLOPs of one expert). x [N, C].
 */
function moeMlp(cfg: ModelConfig, l: LayerParams<Arr>, x: Arr): Arr {
  const N = x.shape[0]!, C = cfg.hiddenSize, E = cfg.numExperts, k = cfg.expertsPerToken;
  const logits = linear(x.ref, l.router!); // [N, E]
  const [top, idx] = lax.topK(lax.stopGradient(logits.ref), k, -1);
  idx.dispose();
  const kth = top.slice([], [k - 1]); // [N, 1]: the k-th largest logit (selection is not differentiated)
  const gates = nn.softmax(np.where(logits.ref.less(kth), MASKED, logits), -1); // [N, E], zeros off the top-k
  const xe = x.reshape([1, N, C]);
  const h = nn.silu(np.matmul(xe.ref, l.egate!.ref)).mul(np.matmul(xe, l.eup!.ref)); // [E, N, I]
  const out = np.matmul(h, l.edown!.ref); // [E, N, C]
  return out.mul(gates.transpose([1, 0]).reshape([E, N, 1])).sum(0);
}

// ---- attention masks ---------------------------------------------------------------------------

/**
 * Training mask [B,1,T,T]: causal, keys must be real tokens, optional sliding window
 * (HF Mistral: query i sees key j iff i - window < j <= i). The diagonal is always allowed so a
 * padding query never has an empty row.
 */
export function trainMask(cfg: ModelConfig, valid: Arr): Arr {
  const [B, T] = valid.shape as [number, number];
  let allowed = np.tri(T, T, 0, { dtype: np.bool });
  if (cfg.slidingWindow !== null) allowed = np.logicalAnd(allowed, np.logicalNot(np.tri(T, T, -cfg.slidingWindow, { dtype: np.bool })));
  const keys = valid.ref.astype(np.bool).reshape([B, 1, 1, T]);
  return np.logicalOr(np.logicalAnd(allowed.reshape([1, 1, T, T]), keys), np.eye(T, undefined, { dtype: np.bool }).reshape([1, 1, T, T]));
}

// ---- the model ---------------------------------------------------------------------------------

export interface KV {
  k: Arr[]; // per layer [B, K, Tmax, D]
  v: Arr[];
}

/** Where the new keys go during decoding: one-hot slot [1,1,Tmax,1] (a `where` stands in for a scatter). */
interface CacheWrite {
  cache: KV;
  isSlot: Arr;
}

/** Token (+ learned position) embeddings. ids/pos [B, T] int32 → [B, T, C]. */
function embed(p: Params, cfg: ModelConfig, ids: Arr, pos: Arr): Arr {
  const [B, T] = ids.shape as [number, number], C = cfg.hiddenSize;
  // `.mul(ones)` makes the gather's cotangent a real buffer so its scatter-add gradient works under jit (ENGINE.md §2).
  let x = np.take(p.wte.ref, ids.ref.reshape([B * T]), 0).mul(np.ones([C]));
  if (traits(cfg).learnedPositions) x = x.add(np.take(p.wpe!.ref, pos.ref.reshape([B * T]), 0).mul(np.ones([C])));
  return x.reshape([B, T, C]);
}

/**
 * One transformer block. x [B, T, C]. Returns the new x and this layer's k/v ([B, K, Tk, D]):
 * during decoding (`write`) the new k/v are written into the cache slot first.
 */
function block(
  cfg: ModelConfig, l: LayerParams<Arr>, li: number, x: Arr, mask: Arr, rope: Rope | null, write: CacheWrite | null,
): [Arr, Arr, Arr] {
  const [B, T, C] = x.shape as [number, number, number];
  const H = cfg.numHeads, K = cfg.numKvHeads, D = cfg.headDim;
  const h = norm(cfg, l.ln1, x.ref).reshape([B * T, C]);
  const qkv = linear(h, l.wqkv, l.bqkv).reshape([B, T, H + 2 * K, D]).transpose([0, 2, 1, 3]); // [B, H+2K, T, D]
  let [q, k, v] = np.split(qkv, [H, H + K], 1) as [Arr, Arr, Arr];
  if (rope) {
    q = applyRope(q, rope);
    k = applyRope(k, rope);
  }
  if (write) {
    // Materialised first: otherwise the where kernel recomputes the rotary embedding and the qkv split for every one
    // of the cache's B·K·Tmax·D elements (batch-16 decode step 54–59 → 43–45 ms with it, 2026-12-07).
    k = np.where(write.isSlot.ref, contiguous(k), write.cache.k[li]!.ref);
    v = np.where(write.isSlot.ref, contiguous(v), write.cache.v[li]!.ref);
  }
  const y = contiguous(attend(q, k.ref, v.ref, mask).transpose([0, 2, 1, 3])).reshape([B * T, H * D]);
  x = x.add(linear(y, l.wo, l.bo).reshape([B, T, C]));
  const h2 = norm(cfg, l.ln2, x.ref).reshape([B * T, C]);
  const m = traits(cfg).moe ? moeMlp(cfg, l, h2) : denseMlp(cfg, l, h2);
  return [x.add(m.reshape([B, T, C])), k, v];
}

function trunk(p: Params, cfg: ModelConfig, ids: Arr, pos: Arr, mask: Arr, write: CacheWrite | null): [Arr, KV] {
  let x = embed(p, cfg, ids, pos);
  const rope = traits(cfg).learnedPositions ? null : ropeTables(cfg, pos);
  const kv: KV = { k: [], v: [] };
  p.layers.forEach((l, i) => {
    let k: Arr, v: Arr;
    [x, k, v] = block(cfg, l, i, x, mask, rope, write);
    kv.k.push(k);
    kv.v.push(v);
  });
  if (rope) [rope.cos, rope.sin, rope.rotateHalf].forEach((r) => r?.dispose());
  mask.dispose();
  return [norm(cfg, p.lnf, x), kv];
}

/** Final hidden states [B, T, C] (after the last norm): what reward and value heads read. */
export function hidden(p: Params, cfg: ModelConfig, ids: Arr, pos: Arr, valid: Arr): Arr {
  const [h, kv] = trunk(p, cfg, ids, pos, trainMask(cfg, valid), null);
  freeKV(kv);
  return h;
}

/**
 * LM head: h [..., C] → logits [..., V] = h · Wᵀ with W [V, C], the embedding when tied, else lm_head, stored as HF
 * stores it. Not W [C, V]: with an odd vocabulary (GPT-2's 50,257, a byte vocabulary's 257) jax-js's h · W runs
 * 10–20x slower than h · Wᵀ (bench/RESULTS.md, 2026-12-07), and its weight gradient has the same odd width.
 */
export function lmHead(p: Params, cfg: ModelConfig, h: Arr): Arr {
  const lead = h.shape.slice(0, -1), C = cfg.hiddenSize;
  const w = (p.lmHead ?? p.wte).ref.transpose([1, 0]);
  return np.matmul(h.reshape([-1, C]), w).reshape([...lead, cfg.vocabSize]);
}

/**
 * Full-sequence forward for training and scoring. ids, pos [B, T] int32; valid [B, T] (1 = real token,
 * left or right padding). pos are position ids: for left padding, the index among the row's real tokens.
 */
export function forward(p: Params, cfg: ModelConfig, ids: Arr, pos: Arr, valid: Arr): Arr {
  return lmHead(p, cfg, hidden(p, cfg, ids, pos, valid));
}

/**
 * Prefill for generation: runs the (left-padded) prompt [B, P], returns next-token logits [B, V] of
 * the last slot and the KV cache padded to `tmax` slots.
 */
export function prefill(p: Params, cfg: ModelConfig, ids: Arr, pos: Arr, valid: Arr, tmax: number): [Arr, KV] {
  const [B, P] = ids.shape as [number, number];
  const [h, kv] = trunk(p, cfg, ids, pos, trainMask(cfg, valid), null);
  const last = h.slice([], P - 1).reshape([B, 1, cfg.hiddenSize]);
  const padTo = (x: Arr) => np.pad(x, [[0, 0], [0, 0], [0, tmax - P], [0, 0]]);
  return [lmHead(p, cfg, last).reshape([B, cfg.vocabSize]), { k: kv.k.map(padTo), v: kv.v.map(padTo) }];
}

/**
 * One decoding step: token [B, 1] at position ids pos [B, 1] goes into cache slot `slot` (int32 scalar
 * array, so one compiled program serves every step; or [B, 1], one slot per row, for continuous batching
 * where rows joined at different times); kvValid [B, Tmax] marks real cache slots.
 * Returns next-token logits [B, V] and the new cache (the old one is left to the caller).
 */
export function decodeStep(p: Params, cfg: ModelConfig, cache: KV, tok: Arr, pos: Arr, slot: Arr, kvValid: Arr): [Arr, KV] {
  const B = tok.shape[0]!, tmax = cache.k[0]!.shape[2]!;
  const slots = np.arange(tmax, undefined, undefined, { dtype: np.int32 });
  const isSlot = slots.ref.equal(slot.ref).reshape([slot.ndim === 0 ? 1 : B, 1, tmax, 1]);
  let seen = np.logicalAnd(slots.ref.lessEqual(slot.ref), kvValid.ref.astype(np.bool));
  if (cfg.slidingWindow !== null) seen = np.logicalAnd(seen, slots.greater(slot.ref.sub(cfg.slidingWindow)));
  else slots.dispose();
  const mask = seen.reshape([B, 1, 1, tmax]);
  const [h, kv] = trunk(p, cfg, tok, pos, mask, { cache, isSlot });
  isSlot.dispose();
  return [lmHead(p, cfg, h).reshape([B, cfg.vocabSize]), kv];
}

export function freeKV(kv: KV): void {
  kv.k.forEach((x) => x.dispose());
  kv.v.forEach((x) => x.dispose());
}
