// An independent float64 forward pass for the Llama family (llama, mistral, qwen2), written from the
// published math with plain loops — it shares nothing with src/model/decoder.ts except the parameter
// layout (params.ts: weights [in, out]; wqkv columns = q heads, then k heads, then v heads). Slow on purpose:
// only for tiny test models.
//
//   h = RMSNorm(x) = x / sqrt(mean(x²) + eps) · w
//   q, k, v = h·Wq (+bq), h·Wk (+bk), h·Wv (+bv); RoPE rotate-half on q and k with inv_freq_i = θ^(-2i/D)
//   query i attends to key j iff j ≤ i and (no window or i − j < window)      (HF Mistral's sliding window)
//   GQA: query head h reads KV head ⌊h / (H/K)⌋
//   x += softmax(q·kᵀ/√D)·v · Wo;  x += (silu(h·Wg) ⊙ h·Wu) · Wd;  logits = RMSNorm(x)·Wlm (or wteᵀ if tied)

import type { ModelConfig } from '../../src/model/config.js';
import type { HostParams, HostTensor } from '../../src/model/params.js';

type Vec = Float64Array;

/** y = x · W (+ b), W [in, out] row-major. */
function matvec(x: Vec, w: HostTensor, b?: HostTensor): Vec {
  const [n, m] = w.shape as [number, number];
  if (x.length !== n) throw new Error(`reference: matvec ${x.length} vs [${n}, ${m}]`);
  const y = new Float64Array(m);
  for (let j = 0; j < m; j++) {
    let s = b ? b.data[j]! : 0;
    for (let i = 0; i < n; i++) s += x[i]! * w.data[i * m + j]!;
    y[j] = s;
  }
  return y;
}

function rmsNorm(x: Vec, w: HostTensor, eps: number): Vec {
  let ms = 0;
  for (const v of x) ms += v * v;
  const r = 1 / Math.sqrt(ms / x.length + eps);
  return Float64Array.from(x, (v, i) => v * r * w.data[i]!);
}

/** Rotate-half RoPE of one head vector at position p. */
function rope(v: Vec, p: number, theta: number): Vec {
  const D = v.length, half = D / 2, out = new Float64Array(D);
  for (let i = 0; i < half; i++) {
    const a = p * Math.pow(theta, (-2 * i) / D), c = Math.cos(a), s = Math.sin(a);
    out[i] = v[i]! * c - v[i + half]! * s;
    out[i + half] = v[i + half]! * c + v[i]! * s;
  }
  return out;
}

const silu = (z: number) => z / (1 + Math.exp(-z));

/** Logits [T][V] for one unpadded sequence (positions 0…T−1). */
export function referenceLogits(cfg: ModelConfig, p: HostParams, ids: number[]): Float64Array[] {
  const head: HostTensor = p.lmHead ?? transpose(p.wte);
  return referenceHidden(cfg, p, ids).map((h) => matvec(h, head));
}

/** Final hidden states [T][C] (after the last RMSNorm) for one unpadded sequence: what reward heads read. */
export function referenceHidden(cfg: ModelConfig, p: HostParams, ids: number[]): Float64Array[] {
  if (!['llama', 'mistral', 'qwen2'].includes(cfg.arch)) throw new Error(`reference: ${cfg.arch} is not covered`);
  const C = cfg.hiddenSize, H = cfg.numHeads, K = cfg.numKvHeads, D = cfg.headDim, G = H / K;
  let xs: Vec[] = ids.map((t) => Float64Array.from(p.wte.data.subarray(t * C, (t + 1) * C)));
  for (const l of p.layers) {
    // q, k, v per position and head, roped.
    const q: Vec[][] = [], k: Vec[][] = [], v: Vec[][] = [];
    xs.forEach((x, t) => {
      const qkv = matvec(rmsNorm(x, l.ln1.w, cfg.normEps), l.wqkv, l.bqkv);
      const head = (h: number) => qkv.slice(h * D, (h + 1) * D);
      q.push(Array.from({ length: H }, (_, h) => rope(head(h), t, cfg.ropeTheta)));
      k.push(Array.from({ length: K }, (_, h) => rope(head(H + h), t, cfg.ropeTheta)));
      v.push(Array.from({ length: K }, (_, h) => head(H + K + h)));
    });
    xs = xs.map((x, i) => {
      const att = new Float64Array(H * D);
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / G);
        const keys: number[] = [];
        for (let j = 0; j <= i; j++) if (cfg.slidingWindow === null || i - j < cfg.slidingWindow) keys.push(j);
        const sc = keys.map((j) => {
          let s = 0;
          for (let d = 0; d < D; d++) s += q[i]![h]![d]! * k[j]![kh]![d]!;
          return s / Math.sqrt(D);
        });
        const mx = Math.max(...sc), e = sc.map((s) => Math.exp(s - mx)), z = e.reduce((a, b) => a + b, 0);
        keys.forEach((j, n) => {
          for (let d = 0; d < D; d++) att[h * D + d]! += (e[n]! / z) * v[j]![kh]![d]!;
        });
      }
      const o = matvec(att, l.wo);
      const x1 = Float64Array.from(x, (xv, c) => xv + o[c]!);
      const h2 = rmsNorm(x1, l.ln2.w, cfg.normEps);
      const g = matvec(h2, l.wgate!), u = matvec(h2, l.wup!);
      const m = matvec(Float64Array.from(g, (gv, j) => silu(gv) * u[j]!), l.wdown!);
      return Float64Array.from(x1, (xv, c) => xv + m[c]!);
    });
  }
  return xs.map((x) => rmsNorm(x, p.lnf.w, cfg.normEps));
}

function transpose(w: HostTensor): HostTensor {
  const [n, m] = w.shape as [number, number];
  const data = new Float32Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) data[j * n + i] = w.data[i * m + j]!;
  return { shape: [m, n], data };
}
