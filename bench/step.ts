// The training step the benches time (bench/train-step.ts on the CPU, bench/gpu.ts on a GPU): fwd + bwd + global-norm
// clip + AdamW in one jitted program, the same program as src/train/loop.ts makeTrainStep's gradAccum=1 path
// (valueAndGrad with aux metrics, clip, AdamW update, stats stacked into one array read once per step). It is
// written out here rather than imported from loop.ts: loop.ts imports the SQLite store, and a native module cannot
// travel in the bundle that runs on the GPU machine (shared/gpu/README.md).
//
// Call initEngine first. src/ is imported lazily inside `timeTrainStep`, so importing this file does not load
// jax-js before a bench has chosen the wasm thread pool (src/engine/threads.ts).

import type { ModelConfig } from '../src/formats/config.js';

/** The training step's shape flags (GPT L4 C256 H4 V4096 T128 B8), shared by train-step.ts and profile-step.ts. */
export const STEP_SHAPE_FLAGS = {
  layers: { type: 'number', default: 4 },
  dim: { type: 'number', default: 256 },
  heads: { type: 'number', default: 4 },
  vocab: { type: 'number', default: 4096 },
  seq: { type: 'number', default: 128 },
  batch: { type: 'number', default: 8 },
} as const;

export interface StepTiming {
  /** Milliseconds per timed step. */
  samples: number[];
  /** The first step's time (it traces and compiles). */
  compileMs: number;
  lossFirst: number;
  lossLast: number;
}

/**
 * Build the step for `cfg` on one fixed batch [B, T] of random tokens and time it: `warmup` untimed steps, then
 * `steps` timed ones, each ending with blockUntilReady on the new params and optimizer state (with the thread pool
 * or a GPU, reading the loss only waits for the forward kernels). The loop yields to the event loop between steps so
 * that a signal can stop it.
 */
export async function timeTrainStep(cfg: ModelConfig, B: number, T: number, opts: { warmup: number; steps: number; seed?: number }): Promise<StepTiming> {
  const { blockUntilReady } = await import('@jax-js/jax');
  const { i32, np, Rng, free, jit, tree, valueAndGrad } = await import('../src/engine/index.js');
  const { initHostParams } = await import('../src/model/params.js');
  const { toDevice } = await import('../src/model/weights.js');
  const { forward } = await import('../src/model/decoder.js');
  const { lmLoss } = await import('../src/train/losses/sft.js');
  const { adamw, clipByGlobalNorm } = await import('../src/train/optim.js');
  type Arr = ReturnType<typeof np.array>;

  let params = toDevice(initHostParams(cfg, opts.seed ?? 0));
  // One fixed batch of random tokens (what is measured is compute; the data does not change the cost).
  const rng = new Rng(1);
  const ids = Int32Array.from({ length: B * (T + 1) }, () => rng.int(cfg.vocabSize));
  const input = new Int32Array(B * T), target = new Int32Array(B * T), pos = new Int32Array(B * T);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      input[b * T + t] = ids[b * (T + 1) + t]!;
      target[b * T + t] = ids[b * (T + 1) + t + 1]!;
      pos[b * T + t] = t;
    }
  interface LmDev { input: Arr; target: Arr; pos: Arr; valid: Arr; weight: Arr }
  const batch = (): LmDev => ({
    input: i32(input, [B, T]), target: i32(target, [B, T]), pos: i32(pos, [B, T]),
    valid: np.ones([B, T]), weight: np.ones([B, T]),
  });
  const lossFn = (p: typeof params, b: LmDev) => {
    const { loss, metrics } = lmLoss(forward(p, cfg, b.input, b.pos, b.valid), b.target.ref, b.weight.ref);
    free([b.input, b.pos, b.valid, b.target, b.weight]);
    return [loss, metrics] as const;
  };
  // torch_step.py: AdamW(lr 3e-4, betas (0.9, 0.95), weight_decay 0.1), clip_grad_norm_(1.0).
  const optimizer = adamw({ lr: 3e-4, b1: 0.9, b2: 0.95, weightDecay: 0.1 });
  type Opt = ReturnType<typeof optimizer.init>;
  const step = jit(((p: typeof params, o: Opt, b: LmDev, lr: Arr, t: Arr) => {
    const [[loss, metrics], grads] = valueAndGrad((q: typeof params) => lossFn(q, b) as never, { hasAux: true })(tree.ref(p as never) as never) as unknown as [[Arr, Record<string, Arr>], unknown];
    const [clipped, gnorm] = clipByGlobalNorm(grads, 1.0);
    const [p2, o2] = optimizer.update(clipped, o, p, lr, t);
    return [p2, o2, np.stack([loss, gnorm, ...Object.values(metrics).map((m) => m.astype(np.float32))])];
  }) as never) as unknown as ((p: typeof params, o: Opt, b: LmDev, lr: Arr, t: Arr) => [typeof params, Opt, Arr]) & { dispose(): void };
  let opt = optimizer.init(params);
  const losses: number[] = [];
  const samples: number[] = [];
  let compileMs = 0;
  try {
    for (let i = 0; i < opts.warmup + opts.steps; i++) {
      const t0 = performance.now();
      let stats: Arr;
      [params, opt, stats] = step(params, opt, batch(), np.array(3e-4), np.array(i + 1));
      const s = await stats.data(); // the one read of a step, as makeTrainStep does
      await blockUntilReady([params, opt] as never); // and the AdamW update is finished before the clock stops
      const ms = performance.now() - t0;
      if (i === 0) compileMs = ms;
      if (i >= opts.warmup) samples.push(ms);
      losses.push(s[0] as number);
      await new Promise((r) => setImmediate(r)); // a signal can stop the loop between steps
    }
  } finally {
    step.dispose();
    free([params, opt] as never);
  }
  return { samples, compileMs, lossFirst: losses[0]!, lossLast: losses[losses.length - 1]! };
}
