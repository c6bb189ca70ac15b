// Host-side initialisation of a decoder's parameters (the tree layout is in engine/tree.ts, the shapes for a
// config in formats/config.ts).

import { paramShapes, type ModelConfig } from '../formats/config.js';
import { transpose2d } from '../formats/hf.js';
import { mapTree, type HostParams } from '../engine/tree.js';
import { Rng } from '../engine/rng.js';

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
    // The LM head was stored [C, V] until 2026-12-07: its values are drawn in that order so a seed gives the same model.
    if (path === 'lmHead') return transpose2d({ shape: [shape[1]!, shape[0]!], data });
    return { shape, data };
  });
}
