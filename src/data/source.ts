// Where a training loop's batches come from. The interface lives here, in data/, because the data folder
// implements it (batching.ts: ShuffledBatches) and train/ consumes it (loop.ts); the online trainers'
// rollout buffer (train/trainers/online.ts) is another source.

import type { Rng } from '../engine/index.js';

export interface Batch<B> {
  /** Device arrays (a pytree); the loop consumes them. */
  batch: B;
  /** Tokens this micro-batch carries (for tokens/s); 0 if not meaningful. */
  tokens: number;
}

export interface StepContext<P> {
  /** The update about to be made (1-based). */
  step: number;
  /** The loop's host RNG: checkpointed, so draws from it replay exactly after a resume. */
  rng: Rng;
  /** Current params, borrowed (do not consume). */
  params: P;
}

/**
 * Where batches come from. It must be resumable: after `restore(s)` with `s` taken by `state()`,
 * `next` yields exactly what it would have yielded after that point. The loop calls `next`
 * `gradAccum` times per update. Sources that sample (rollouts) should draw randomness from `ctx.rng`.
 */
export interface DataSource<B, P = unknown> {
  next(ctx: StepContext<P>): Batch<B> | Promise<Batch<B>>;
  state(): unknown;
  restore(state: unknown): void;
}
