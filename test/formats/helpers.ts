// Test helpers for the format tests: seeded random parameters and an independent reference forward pass.
// The reference follows Hugging Face's modeling code (rotate-half RoPE on the *unpermuted* weights, float64),
// so agreement with llama.cpp on our GGUF export checks the export (names, transposes, the RoPE permutation)
// against two implementations nobody here shares code with.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { traits, type ModelConfig } from '../../src/formats/config.js';
import { mapTree, type HostParams, type HostTensor } from '../../src/engine/tree.js';
import { paramShapes } from '../../src/formats/config.js';

export const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), `alignlab-${prefix}-`));

/** Mulberry32: a tiny seeded PRNG, so fixtures are the same on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random params for a config: uniform(-scale, scale), norms around 1 so every layer matters. */
export function randomParams(c: ModelConfig, seed = 1, scale = 0.2): HostParams {
  const r = rng(seed);
  return mapTree(paramShapes(c), (shape, path) => {
    const n = shape.reduce((a, d) => a * d, 1);
    const isNormW = /(ln1|ln2|lnf)\.w$/.test(path);
    return { shape: [...shape], data: Float32Array.from({ length: n }, () => (isNormW ? 1 + (r() - 0.5) * 0.4 : (r() * 2 - 1) * scale)) };
  });
}

// ---------------------------------------------------------------------------------------------
// Reference forward pass (float64, one sequence, HF semantics)

type Vec = Float64Array;

function matvec(x: Vec, w: HostTensor, cols0 = 0, cols1 = w.shape[1]): Vec {
  // x [in] @ w [in, out] restricted to columns [cols0, cols1)
  const [rows, cols] = w.shape;
  const out = new Float64Array(cols1 - cols0);
  for (let i = 0; i < rows; i++) {
    const xi = x[i];
    if (xi === 0) continue;
    const base = i * cols;
    for (let j = cols0; j < cols1; j++) out[j - cols0] += xi * w.data[base + j];
  }
  return out;
}

function rmsnorm(x: Vec, w: HostTensor, eps: number): Vec {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w.data[i]);
}

function layernorm(x: Vec, w: HostTensor, b: HostTensor, eps: number): Vec {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const vr = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
  const inv = 1 / Math.sqrt(vr + eps);
  return x.map((v, i) => (v - mean) * inv * w.data[i] + b.data[i]);
}

const silu = (v: number) => v / (1 + Math.exp(-v));
const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
/** Round to the nearest IEEE half (ties to even), as x86's F16C conversion does. */
export function roundF16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity;
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  const ulp = 2 ** (e - 10);
  const q = a / ulp;
  const f = Math.floor(q);
  const r = q - f > 0.5 || (q - f === 0.5 && f % 2 === 1) ? f + 1 : f;
  return Math.sign(x) * r * ulp;
}

/** ggml's CPU GELU: a table indexed by the fp16 input, holding fp16 outputs (ggml-cpu/vec.h, GGML_GELU_FP16). */
const geluGgml = (v: number) => (v <= -10 ? 0 : v >= 10 ? v : roundF16(geluTanh(roundF16(Math.fround(v)))));

const addInto = (a: Vec, b: Vec) => {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
};

function rope(x: Vec, nHeads: number, D: number, pos: number, theta: number): void {
  const half = D / 2;
  for (let h = 0; h < nHeads; h++)
    for (let i = 0; i < half; i++) {
      const ang = pos * theta ** (-(2 * i) / D);
      const c = Math.cos(ang), s = Math.sin(ang);
      const a = x[h * D + i], b = x[h * D + half + i];
      x[h * D + i] = a * c - b * s;
      x[h * D + half + i] = b * c + a * s;
    }
}

function swiglu(h: Vec, gate: HostTensor, up: HostTensor, down: HostTensor): Vec {
  const g = matvec(h, gate), u = matvec(h, up);
  return matvec(g.map((v, i) => silu(v) * u[i]), down);
}

const expert = (t: HostTensor, e: number): HostTensor => {
  const inner = t.shape.slice(1);
  const n = inner[0] * inner[1];
  return { shape: inner, data: t.data.subarray(e * n, (e + 1) * n) };
};

/**
 * Log-softmax of the next-token logits after `tokens`, computed the way transformers does. `ggmlGelu` rounds
 * GELU's input and output to fp16 as llama.cpp's CPU backend does, to compare GPT-2 with it tightly.
 */
export function referenceNextLogprobs(c: ModelConfig, p: HostParams, tokens: number[], { ggmlGelu = false } = {}): Float64Array {
  const logits = referenceHeadLogits(c, p, referenceHidden(c, p, tokens, { ggmlGelu }).at(-1)!);
  const mx = Math.max(...logits);
  const lse = mx + Math.log(logits.reduce((a, v) => a + Math.exp(v - mx), 0));
  return logits.map((v) => v - lse);
}

/** Logits [T][V] at every position of one unpadded sequence (positions 0…T−1). */
export function referenceLogits(c: ModelConfig, p: HostParams, tokens: number[]): Float64Array[] {
  return referenceHidden(c, p, tokens).map((h) => referenceHeadLogits(c, p, h));
}

function referenceHeadLogits(c: ModelConfig, p: HostParams, h: Vec): Float64Array {
  const logits = new Float64Array(c.vocabSize);
  const w = p.lmHead ?? p.wte; // [V, C] either way
  for (let v = 0; v < c.vocabSize; v++) for (let d = 0; d < c.hiddenSize; d++) logits[v] += h[d] * w.data[v * c.hiddenSize + d];
  return logits;
}

/** Final hidden states [T][C] (after the last norm) of one unpadded sequence: what LM, reward and value heads read. */
export function referenceHidden(c: ModelConfig, p: HostParams, tokens: number[], { ggmlGelu = false } = {}): Float64Array[] {
  const t = traits(c);
  const { hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D } = c;
  let xs: Vec[] = tokens.map((tok, pos) => {
    const x = Float64Array.from(p.wte.data.subarray(tok * C, (tok + 1) * C));
    if (t.learnedPositions) addInto(x, Float64Array.from(p.wpe!.data.subarray(pos * C, (pos + 1) * C)));
    return x;
  });
  const norm = (x: Vec, n: { w: HostTensor; b?: HostTensor }) => (t.layerNorm ? layernorm(x, n.w, n.b!, c.normEps) : rmsnorm(x, n.w, c.normEps));
  for (const l of p.layers) {
    const qs: Vec[] = [], ks: Vec[] = [], vs: Vec[] = [];
    xs.forEach((x, pos) => {
      const h = norm(x, l.ln1);
      const qkv = matvec(h, l.wqkv);
      if (l.bqkv) addInto(qkv, Float64Array.from(l.bqkv.data));
      const q = qkv.slice(0, H * D), k = qkv.slice(H * D, (H + K) * D), v = qkv.slice((H + K) * D);
      if (!t.learnedPositions) {
        rope(q, H, D, pos, c.ropeTheta);
        rope(k, K, D, pos, c.ropeTheta);
      }
      qs.push(q);
      ks.push(k);
      vs.push(v);
    });
    xs = xs.map((x, i) => {
      const att = new Float64Array(H * D);
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / (H / K));
        const scores: number[] = [];
        const js: number[] = [];
        for (let j = 0; j <= i; j++) {
          if (c.slidingWindow !== null && i - j >= c.slidingWindow) continue;
          let s = 0;
          for (let d = 0; d < D; d++) s += qs[i][h * D + d] * ks[j][kh * D + d];
          scores.push(s / Math.sqrt(D));
          js.push(j);
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        js.forEach((j, n) => {
          for (let d = 0; d < D; d++) att[h * D + d] += (e[n] / z) * vs[j][kh * D + d];
        });
      }
      const o = matvec(att, l.wo);
      if (l.bo) addInto(o, Float64Array.from(l.bo.data));
      const y = Float64Array.from(x);
      addInto(y, o);
      const h = norm(y, l.ln2);
      let m: Vec;
      if (t.geluMlp) {
        const a = matvec(h, l.wfc!);
        addInto(a, Float64Array.from(l.bfc!.data));
        m = matvec(a.map(ggmlGelu ? geluGgml : geluTanh), l.wproj!);
        addInto(m, Float64Array.from(l.bproj!.data));
      } else if (t.moe) {
        const logits = matvec(h, l.router!);
        const mx = Math.max(...logits);
        const pr = logits.map((v) => Math.exp(v - mx));
        const z = pr.reduce((a, b) => a + b, 0);
        const order = [...pr.keys()].sort((a, b) => pr[b] - pr[a]).slice(0, c.expertsPerToken);
        const wsum = order.reduce((a, e) => a + pr[e] / z, 0);
        m = new Float64Array(C);
        for (const e of order) {
          const out = swiglu(h, expert(l.egate!, e), expert(l.eup!, e), expert(l.edown!, e));
          for (let d = 0; d < C; d++) m[d] += ((pr[e] / z) / wsum) * out[d];
        }
      } else m = swiglu(h, l.wgate!, l.wup!, l.wdown!);
      addInto(y, m);
      return y;
    });
  }
  return xs.map((x) => norm(x, p.lnf));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The message of the error `f` throws, or "no error" (so a failed assertion shows what was thrown). */
export function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}
