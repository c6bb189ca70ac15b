// The parameter tree of the decoder, in one layout for every architecture.
// Weights are stored [in, out] so the forward pass is x @ W (GPT-2's Conv1D layout);
// HF's nn.Linear [out, in] weights are transposed at load/save time in formats/hf.ts.
// q, k and v are fused into one [C, (H + 2K)·D] matrix: one matmul instead of three.

import type { ModelConfig } from './config.js';
import { traits } from './config.js';
import { Rng } from '../engine/index.js';

export interface Norm<T> {
  w: T;
  b?: T; // LayerNorm only
}

export interface LayerParams<T> {
  ln1: Norm<T>;
  wqkv: T; // [C, (H + 2K)·D], columns: q heads, then k heads, then v heads
  bqkv?: T; // gpt2, qwen2
  wo: T; // [H·D, C]
  bo?: T; // gpt2
  ln2: Norm<T>;
  // GELU MLP (gpt2)
  wfc?: T; // [C, I]
  bfc?: T;
  wproj?: T; // [I, C]
  bproj?: T;
  // SwiGLU MLP (llama, mistral, qwen2)
  wgate?: T; // [C, I]
  wup?: T; // [C, I]
  wdown?: T; // [I, C]
  // Mixture of experts (mixtral): experts stacked on a leading axis
  router?: T; // [C, E]
  egate?: T; // [E, C, I]
  eup?: T; // [E, C, I]
  edown?: T; // [E, I, C]
}

export interface ParamTree<T> {
  wte: T; // [V, C]
  wpe?: T; // [P, C] gpt2
  layers: LayerParams<T>[];
  lnf: Norm<T>;
  lmHead?: T; // [C, V] when embeddings are not tied
}

/** A tensor on the host: row-major float32 data. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export type HostParams = ParamTree<HostTensor>;

/** Shapes of every leaf for a config: the single source of truth used by init, loading and checks. */
export function paramShapes(c: ModelConfig): ParamTree<number[]> {
  const t = traits(c);
  const C = c.hiddenSize, D = c.headDim, H = c.numHeads, K = c.numKvHeads, I = c.intermediateSize, E = c.numExperts;
  const norm = (): Norm<number[]> => (t.layerNorm ? { w: [C], b: [C] } : { w: [C] });
  const layer = (): LayerParams<number[]> => {
    const l: LayerParams<number[]> = { ln1: norm(), wqkv: [C, (H + 2 * K) * D], wo: [H * D, C], ln2: norm() };
    if (t.qkvBias) l.bqkv = [(H + 2 * K) * D];
    if (t.outBias) l.bo = [C];
    if (t.geluMlp) Object.assign(l, { wfc: [C, I], bfc: [I], wproj: [I, C], bproj: [C] });
    else if (t.moe) Object.assign(l, { router: [C, E], egate: [E, C, I], eup: [E, C, I], edown: [E, I, C] });
    else Object.assign(l, { wgate: [C, I], wup: [C, I], wdown: [I, C] });
    return l;
  };
  const p: ParamTree<number[]> = { wte: [c.vocabSize, C], layers: Array.from({ length: c.numLayers }, layer), lnf: norm() };
  if (t.learnedPositions) p.wpe = [c.maxPositions, C];
  if (!c.tieEmbeddings) p.lmHead = [C, c.vocabSize];
  return p;
}

/** Visit every leaf with its dotted path (e.g. "layers.0.wqkv"), in a fixed order. */
export function mapTree<A, B>(tree: ParamTree<A>, fn: (leaf: A, path: string) => B): ParamTree<B> {
  const norm = (n: Norm<A>, path: string): Norm<B> => {
    const o: Norm<B> = { w: fn(n.w, `${path}.w`) };
    if (n.b !== undefined) o.b = fn(n.b, `${path}.b`);
    return o;
  };
  const out: ParamTree<B> = {
    wte: fn(tree.wte, 'wte'),
    layers: tree.layers.map((l, i) => {
      const o = {} as LayerParams<B>;
      for (const [k, v] of Object.entries(l) as [keyof LayerParams<A>, unknown][]) {
        if (v === undefined) continue;
        if (k === 'ln1' || k === 'ln2') o[k] = norm(v as Norm<A>, `layers.${i}.${k}`);
        else (o as unknown as Record<string, B>)[k] = fn(v as A, `layers.${i}.${k}`);
      }
      return o;
    }),
    lnf: norm(tree.lnf, 'lnf'),
  };
  if (tree.wpe !== undefined) out.wpe = fn(tree.wpe, 'wpe');
  if (tree.lmHead !== undefined) out.lmHead = fn(tree.lmHead, 'lmHead');
  return out;
}

export function leavesWithPaths<A>(tree: ParamTree<A>): [string, A][] {
  const out: [string, A][] = [];
  mapTree(tree, (x, p) => out.push([p, x]));
  return out;
}

/**
 * GPT-2-style initialisation on the host (reproducible on every device): N(0, 0.02) weights,
 * residual projections scaled by 1/sqrt(2L) (GPT-2 paper), norms at 1, biases at 0.
 */
export function initHostParams(c: ModelConfig, seed: number, std = 0.02): HostParams {
  const rng = new Rng(seed);
  const residual = new Set(['wo', 'wproj', 'wdown', 'edown']);
  return mapTree(paramShapes(c), (shape, path) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const leaf = path.split('.').pop()!;
    const isNorm = /\.(ln1|ln2)\.w$|^lnf\.w$/.test(path);
    const isBias = /\.b$|^b|\.b[a-z]+$/.test(path) && shape.length === 1;
    if (isNorm) data.fill(1);
    else if (!isBias) {
      const s = residual.has(leaf) ? std / Math.sqrt(2 * c.numLayers) : std;
      for (let i = 0; i < n; i++) data[i] = rng.normal() * s;
    }
    return { shape, data };
  });
}
