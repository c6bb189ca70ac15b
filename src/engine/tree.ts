// The parameter tree of the decoder, in one layout for every architecture, and the host tensors that fill it.
// Weights are stored [in, out] so the forward pass is x @ W (GPT-2's Conv1D layout);
// HF's nn.Linear [out, in] weights are transposed at load/save time in formats/hf.ts. The one exception is the LM
// head, stored [V, C] like the embedding: x @ W with an odd vocabulary is slow in jax-js (model/decoder.ts lmHead).
// q, k and v are fused into one [C, (H + 2K)·D] matrix: one matmul instead of three.
// This file imports nothing (no jax-js, no Node): formats/ and model/ both read it, and it can ship to a page.
// The shapes of every leaf for a ModelConfig live beside the config (formats/config.ts: paramShapes).

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
  lmHead?: T; // [V, C] (HF's layout, like wte) when embeddings are not tied
}

/** A tensor on the host: row-major float32 data. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export type HostParams = ParamTree<HostTensor>;

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
