// Optimizers as pure functions over param trees, optax-style: `init(params) -> state`,
// `update(grads, state, params, lr, step) -> [params, state]`. Everything here is traceable, so the
// whole update runs inside the jitted train step; `lr` and `step` are scalar *arrays* so that a
// learning-rate schedule never triggers a recompilation.
//
// Reference counting (see shared/ENGINE.md §1): `update` and `clipByGlobalNorm` consume every array
// they are given, like a jitted function does; `init` and `globalNorm` only borrow.

import { np, tree, type Arr } from '../engine/index.js';

/** Any pytree of float32 arrays (objects and arrays of arrays), e.g. the decoder's ParamTree<Arr>. */
export type Tree = unknown;

/** Decides per leaf whether weight decay applies; `path` is dotted ("layers.0.wqkv"), `shape` the leaf's. */
export type DecayMask = (path: string, shape: readonly number[]) => boolean;

/** No decay on 1-D leaves (biases, norm gains), as nanoGPT and most LLM recipes do. */
export const decayMatrices: DecayMask = (_path, shape) => shape.length >= 2;

export interface AdamWOptions {
  /** Peak learning rate; informational here (the step gets `lr` as an array from the schedule). */
  lr?: number;
  b1?: number;
  b2?: number;
  eps?: number;
  /** Decoupled weight decay (Loshchilov & Hutter 2019): p -= lr·wd·p, separate from the Adam step. */
  weightDecay?: number;
  decayMask?: DecayMask;
}

export interface AdamWState {
  m: Tree; // first moment, same structure as params
  v: Tree; // second moment
}

export interface Optimizer<S = AdamWState> {
  readonly options: Required<Omit<AdamWOptions, 'decayMask'>> & { decayMask: DecayMask };
  init(params: Tree): S;
  update(grads: Tree, state: S, params: Tree, lr: Arr, step: Arr): [Tree, S];
}

/** Dotted paths of a tree's leaves in jax-js flatten order (object insertion order, array index). */
export function treePaths(t: unknown, prefix = ''): string[] {
  if (Array.isArray(t)) return t.flatMap((c, i) => treePaths(c, prefix ? `${prefix}.${i}` : `${i}`));
  if (typeof t === 'object' && t !== null && (t as object).constructor === Object)
    return Object.entries(t as Record<string, unknown>).flatMap(([k, c]) => treePaths(c, prefix ? `${prefix}.${k}` : k));
  return [prefix];
}

/**
 * AdamW with bias correction, matching torch.optim.AdamW / optax.adamw:
 *   m ← b1·m + (1−b1)·g,  v ← b2·v + (1−b2)·g²
 *   p ← p − lr·( m/(1−b1^t) / (sqrt(v/(1−b2^t)) + eps) + wd·p )
 * `step` is t, the 1-based count of updates (float32 scalar array).
 */
export function adamw(opts: AdamWOptions = {}): Optimizer {
  const o = {
    lr: opts.lr ?? 1e-3,
    b1: opts.b1 ?? 0.9,
    b2: opts.b2 ?? 0.999,
    eps: opts.eps ?? 1e-8,
    weightDecay: opts.weightDecay ?? 0.0,
    decayMask: opts.decayMask ?? decayMatrices,
  };
  return {
    options: o,
    init(params) {
      // np.zeros reads only the shape: params keep all their references.
      const zeros = () => tree.map((x: Arr) => np.zeros(x.shape, { dtype: x.dtype }), params as never) as Tree;
      return { m: zeros(), v: zeros() };
    },
    update(grads, state, params, lr, step) {
      const paths = treePaths(params);
      const [pl, def] = tree.flatten(params as never) as [Arr[], ReturnType<typeof tree.flatten>[1]];
      const gl = tree.leaves(grads as never) as Arr[];
      const ml = tree.leaves(state.m as never) as Arr[];
      const vl = tree.leaves(state.v as never) as Arr[];
      if (gl.length !== pl.length || ml.length !== pl.length || vl.length !== pl.length)
        throw new Error(`adamw: params have ${pl.length} leaves but grads ${gl.length}, m ${ml.length}, v ${vl.length}`);
      const t = step.astype(np.float32);
      const bc1 = np.subtract(1, np.power(o.b1, t.ref));
      const bc2 = np.subtract(1, np.power(o.b2, t));
      const P: Arr[] = [], M: Arr[] = [], V: Arr[] = [];
      for (let i = 0; i < pl.length; i++) {
        const p = pl[i]!, g = gl[i]!;
        const m = ml[i]!.mul(o.b1).add(g.ref.mul(1 - o.b1));
        const v = vl[i]!.mul(o.b2).add(np.square(g).mul(1 - o.b2));
        let upd = m.ref.div(bc1.ref).div(np.sqrt(v.ref.div(bc2.ref)).add(o.eps));
        if (o.weightDecay !== 0 && o.decayMask(paths[i]!, p.shape)) upd = upd.add(p.ref.mul(o.weightDecay));
        P.push(p.sub(upd.mul(lr.ref)));
        M.push(m);
        V.push(v);
      }
      bc1.dispose();
      bc2.dispose();
      lr.dispose();
      return [tree.unflatten(def, P) as Tree, { m: tree.unflatten(def, M) as Tree, v: tree.unflatten(def, V) as Tree }];
    },
  };
}

/** √(Σ‖g‖²) over every leaf, as a scalar array. Borrows `grads`. */
export function globalNorm(grads: Tree): Arr {
  const sq = (tree.leaves(grads as never) as Arr[]).map((g) => np.square(g.ref).sum());
  if (sq.length === 0) return np.zeros([]);
  return np.sqrt(sq.reduce((a, b) => a.add(b)));
}

/**
 * Scale the gradients so their global norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_:
 * factor min(1, maxNorm/(norm+1e-6))). Returns the scaled grads and the norm *before* clipping, which is
 * what TRL logs as `grad_norm`. `maxNorm` ≤ 0, null or Infinity turns clipping off (the norm is still
 * returned). Consumes `grads`.
 */
export function clipByGlobalNorm(grads: Tree, maxNorm: number | null | undefined): [Tree, Arr] {
  const norm = globalNorm(grads);
  if (maxNorm === null || maxNorm === undefined || !(maxNorm > 0) || maxNorm === Infinity) return [grads, norm];
  const scale = np.minimum(1, np.reciprocal(norm.ref.add(1e-6)).mul(maxNorm));
  const out = tree.map((g: Arr) => g.mul(scale.ref), grads as never) as Tree;
  scale.dispose();
  return [out, norm];
}

/** Elementwise sum of two trees of the same structure (gradient accumulation). Consumes both. */
export function addTrees(a: Tree, b: Tree): Tree {
  return tree.map((x: Arr, y: Arr) => x.add(y), a as never, b as never) as Tree;
}

/** Multiply every leaf by a scalar (number or scalar array, consumed). Consumes `t`. */
export function scaleTree(t: Tree, s: number | Arr): Tree {
  if (typeof s === 'number') return tree.map((x: Arr) => x.mul(s), t as never) as Tree;
  const out = tree.map((x: Arr) => x.mul(s.ref), t as never) as Tree;
  s.dispose();
  return out;
}
