// Tiny models and batches for tests: made here, never downloaded.
import { i32, np, type Arr } from '../../src/engine/index.js';
import { tinyConfig, type Arch, type ModelConfig } from '../../src/formats/config.js';
import { initHostParams } from '../../src/model/params.js';
import { toDevice } from '../../src/model/weights.js';
import type { Params } from '../../src/model/decoder.js';

export const ALL_ARCHS: Arch[] = ['gpt2', 'llama', 'mistral', 'qwen2', 'mixtral'];

/** A tiny model per architecture; llama gets GQA (4 query heads, 2 KV heads), mistral a window of 4. */
export function tinyModel(arch: Arch, seed = 1, over: Partial<ModelConfig> = {}): { cfg: ModelConfig; params: Params } {
  const extra: Partial<ModelConfig> = arch === 'llama' || arch === 'mixtral' ? { numKvHeads: 2 } : {};
  const cfg = tinyConfig(arch, { ...extra, ...over });
  // std 0.2 instead of 0.02 so logits differ visibly between tokens and positions.
  return { cfg, params: toDevice(initHostParams(cfg, seed, 0.2)) };
}

/** Position ids and validity for rows of token ids, left- or right-padded to T with `pad`. */
export function padBatch(rows: number[][], T: number, side: 'left' | 'right', pad = 0) {
  const B = rows.length, ids = new Int32Array(B * T).fill(pad), pos = new Int32Array(B * T), valid = new Int32Array(B * T);
  rows.forEach((r, b) => {
    const off = side === 'left' ? T - r.length : 0;
    r.forEach((t, j) => {
      ids[b * T + off + j] = t;
      pos[b * T + off + j] = j;
      valid[b * T + off + j] = 1;
    });
  });
  return { ids: i32(ids, [B, T]), pos: i32(pos, [B, T]), valid: i32(valid, [B, T]) };
}

export function disposeAll(...xs: Arr[]): void {
  xs.forEach((x) => x.dispose());
}

export function randomTokens(n: number, V: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % V;
  });
}

export { np };
