// A learned reward model as a RewardFn: a decoder trunk with a scalar head (model/heads.ts), trained with the
// Bradley–Terry loss (train/reward.ts), scoring prompt + completion at the last real token, as HF's
// *ForSequenceClassification models and TRL's `get_reward` do ('last' pooling), or as the mean of the per-token
// scores over the completion tokens ('mean' pooling, which needs each sequence's prompt length).
//
// On disk it is a normal HF model directory (config.json, model.safetensors, tokenizer.json) whose
// model.safetensors also holds the head as `score.weight` [1, C] (HF's layout) and `score.bias` [1]: the trunk
// still loads as a plain model, and the head travels with it. The pooling is stored in that file's metadata
// (`alignlab.reward_pooling`); a file without it (HF's, or ours before pooling existed) pools 'last'.
//
// One jitted program per (batch, length) bucket: rows are scored in chunks of `batchSize` (the last chunk padded
// with dummy rows) and lengths are rounded up to a multiple of 16, so a training run compiles a handful at most.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, free, i32, initEngine, keep, np, takeF32, type Arr } from '../engine/index.js';
import type { ModelConfig } from '../formats/config.js';
import type { Params } from '../model/decoder.js';
import { POOLINGS, poolValues, scalarValues, type HeadParams, type Pooling, type ScalarModel } from '../model/heads.js';
import type { HostParams, HostTensor } from '../engine/tree.js';
import { toDevice, toHost } from '../model/weights.js';
import { rightPad } from '../model/score.js';
import { loadHFDir, saveHFDir } from '../formats/hf.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../formats/safetensors.js';
import type { Tokenizer } from '../formats/tokenizer.js';
import type { RewardFn } from './types.js';

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

export interface RewardModelOptions {
  /** Rows per forward pass (a fixed shape: one compiled program). Default 16. */
  batchSize?: number;
  /** Where the score is read: 'last' real token (default) or 'mean' over the completion tokens. */
  pooling?: Pooling;
}

/** The safetensors metadata key that records a reward model's pooling. */
const POOLING_KEY = 'alignlab.reward_pooling';

export class RewardModel {
  readonly batchSize: number;
  readonly pooling: Pooling;
  private fn: ((trunk: Params, head: HeadParams, ids: Arr, pos: Arr, valid: Arr, completion: Arr) => Arr) & { dispose(): void };

  /** Takes ownership of `model` (device arrays); `dispose()` frees them. */
  constructor(
    readonly cfg: ModelConfig,
    readonly model: ScalarModel,
    readonly tokenizer?: Tokenizer,
    opts: RewardModelOptions = {},
  ) {
    this.batchSize = opts.batchSize ?? 16;
    this.pooling = opts.pooling ?? 'last';
    // 'last': r(x, y) = head(h_last), the scalar at the last position with valid = 1 (right padding here);
    // 'mean': r(x, y) = mean of head(h_t) over the completion's positions t. `completion` is unused by 'last'.
    const pooling = this.pooling;
    this.fn = compile((trunk: Params, head: HeadParams, ids: Arr, pos: Arr, valid: Arr, completion: Arr) =>
      poolValues(scalarValues(trunk, head, cfg, ids, pos, valid), pooling, { valid, completion }),
    );
  }

  /** A reward model from host weights (e.g. a trunk just initialised or loaded, and a head). */
  static fromHost(cfg: ModelConfig, trunk: HostParams, head: HeadParams<HostTensor>, tokenizer?: Tokenizer, opts?: RewardModelOptions): RewardModel {
    const h: HeadParams = { w: np.array(head.w.data, { shape: head.w.shape }), b: np.array(head.b.data, { shape: head.b.shape }) };
    return new RewardModel(cfg, { trunk: toDevice(trunk), head: h }, tokenizer, opts);
  }

  /** Load a reward model directory written by `saveRewardModel` (or any HF dir with `score.weight`). */
  static async load(dir: string, opts: RewardModelOptions & { device?: string } = {}): Promise<RewardModel> {
    await initEngine(opts.device);
    const m = await loadHFDir(dir, { tokenizer: 'optional' });
    const { head, pooling } = readHead(dir, m.config.hiddenSize);
    return RewardModel.fromHost(m.config, m.params, head, m.tokenizer, { pooling, ...opts });
  }

  /**
   * Scores of token sequences (prompt + completion), one per row. Sequences longer than the model's context
   * keep their last `maxPositions` tokens: the completion, which is what is judged, sits at the end.
   * `promptLengths[i]` (tokens of row i before its completion) is required by 'mean' pooling, ignored by 'last'.
   */
  async score(seqs: number[][], promptLengths?: number[]): Promise<Float32Array> {
    const N = seqs.length, bs = this.batchSize, max = this.cfg.maxPositions;
    if (this.pooling === 'mean' && promptLengths?.length !== N)
      throw new Error(`reward model: 'mean' pooling needs the prompt length of each of the ${N} sequences (got ${promptLengths?.length ?? 'none'})`);
    const starts: number[] = [];
    const rows = seqs.map((s, i) => {
      if (s.length === 0) throw new Error(`reward model: sequence ${i} is empty`);
      const cut = Math.max(0, s.length - max);
      starts.push(Math.max(0, (promptLengths?.[i] ?? 0) - cut)); // the completion's first index after the cut
      return cut > 0 ? s.slice(cut) : s;
    });
    const out = new Float32Array(N);
    for (let start = 0; start < N; start += bs) {
      const chunk = rows.slice(start, start + bs);
      const longest = Math.max(...chunk.map((s) => s.length));
      const T = Math.min(roundUp(longest, 16), Math.max(max, longest));
      while (chunk.length < bs) chunk.push([0]); // dummy rows keep the compiled shape
      const { ids, pos, valid } = rightPad(chunk, T);
      const completion = new Float32Array(bs * T);
      if (this.pooling === 'mean')
        chunk.forEach((s, b) => {
          if (start + b < N) for (let j = starts[start + b]!; j < s.length; j++) completion[b * T + j] = 1;
        });
      const r = await takeF32(
        this.fn(keep(this.model.trunk), keep(this.model.head), i32(ids, [bs, T]), i32(pos, [bs, T]), i32(valid, [bs, T]), np.array(completion, { shape: [bs, T] })),
      );
      out.set(r.subarray(0, Math.min(bs, N - start)), start);
    }
    return out;
  }

  /** This model as a RewardFn: scores prompt ++ completion (EOS included, as the policy emitted it). */
  rewardFn(): RewardFn {
    return async (b) => Array.from(await this.score(b.prompts.map((p, i) => [...p, ...b.completions[i]!]), b.prompts.map((p) => p.length)));
  }

  dispose(): void {
    free(this.model);
    this.fn.dispose();
  }
}

/** The head in HF's layout: score.weight [1, C] (and our bias score.bias [1], absent in HF's classifiers). */
function readHead(dir: string, C: number): { head: HeadParams<HostTensor>; pooling: Pooling } {
  const index = join(dir, 'model.safetensors.index.json');
  let file = join(dir, 'model.safetensors');
  if (existsSync(index)) {
    const wm = (JSON.parse(readFileSync(index, 'utf-8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
    if (!wm['score.weight']) throw new Error(`${index}: no "score.weight" in weight_map: ${dir} is not a reward model (no scalar head)`);
    file = join(dir, wm['score.weight']);
  }
  const all = readSafetensors(file);
  const w = all.get('score.weight');
  if (!w) throw new Error(`${file}: tensor "score.weight" is missing: ${dir} is not a reward model (no scalar head)`);
  if (w.shape.length !== 2 || w.shape[0] !== 1 || w.shape[1] !== C)
    throw new Error(`${file}: tensor "score.weight" has shape [${w.shape.join(', ')}], expected [1, ${C}] (one label, hidden size ${C})`);
  const b = all.get('score.bias');
  if (b && (b.shape.length !== 1 || b.shape[0] !== 1)) throw new Error(`${file}: tensor "score.bias" has shape [${b.shape.join(', ')}], expected [1]`);
  const stored = readSafetensorsHeader(file).metadata[POOLING_KEY] ?? 'last'; // absent: HF's classifiers, and ours before pooling
  if (!(POOLINGS as readonly string[]).includes(stored)) throw new Error(`${file}: metadata "${POOLING_KEY}" is "${stored}", expected one of ${POOLINGS.join(', ')}`);
  return {
    head: { w: { shape: [C, 1], data: Float32Array.from(w.data) }, b: { shape: [1], data: b ? Float32Array.from(b.data) : new Float32Array(1) } },
    pooling: stored as Pooling,
  };
}

/**
 * Save a reward model as an HF directory with the head in model.safetensors (`score.weight`, `score.bias`) and its
 * pooling in that file's metadata (default 'last'; transformers ignores it and always reads the last token).
 */
export async function saveRewardModel(dir: string, rm: { cfg: ModelConfig; model: ScalarModel; tokenizer?: Tokenizer; pooling?: Pooling }): Promise<void> {
  const trunk = await toHost(rm.model.trunk);
  const [w, b] = await Promise.all([takeF32(rm.model.head.w.ref), takeF32(rm.model.head.b.ref)]);
  await saveHFDir(dir, { config: rm.cfg, params: trunk, tokenizerJson: rm.tokenizer?.json, tokenizerConfig: rm.tokenizer?.config });
  const file = join(dir, 'model.safetensors');
  if (!existsSync(file)) throw new Error(`${dir}: the reward model is too large for one model.safetensors; sharded reward models are not supported`);
  const tensors = Object.fromEntries(readSafetensors(file)) as Record<string, HostTensor>;
  tensors['score.weight'] = { shape: [1, rm.cfg.hiddenSize], data: w };
  tensors['score.bias'] = { shape: [1], data: b };
  writeSafetensors(file, Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, { shape: t.shape, data: t.data }])), { format: 'pt', [POOLING_KEY]: rm.pooling ?? 'last' });
}
