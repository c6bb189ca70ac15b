// The training loop shared by every algorithm: one jitted step (loss → grads → clip → AdamW),
// gradient accumulation, a learning-rate schedule, eval every N steps, metrics to JSONL and SQLite,
// checkpoints with exact resume, a progress bar, and a guard that stops on a NaN/Inf loss.
//
// It knows nothing about models: params are any pytree of float32 arrays and the algorithm is a
// `lossFn(params, batch) -> [loss, metrics]`. SFT, reward modelling and DPO plug in a loss;
// the pieces (makeTrainStep, RunLog, checkpoints) are exported for loops that need their own shape (PPO).
//
// Ownership (shared/ENGINE.md §1): `train` takes ownership of `params` and returns the trained
// ones (the caller then owns them). Batches from the data source are consumed (a frozen reference
// reaches the loss through its batches: DPO precomputes its log-probs, the online trainers score rollouts
// with it). Callbacks (`evalFn`, `onStep`, `data.next`) borrow params and must not consume them: pass
// `keep(params)` to anything that consumes.

import { mkdirSync, existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { np, compile, valueAndGrad, tree, Rng, free, keep, type Arr } from '../engine/index.js';
import { openStore, type DB } from '../store/db.js';
import { finishRun, logMetrics, startRun, truncateMetrics, type RunStatus } from '../store/runs.js';
import { appendJsonl, writeJsonl, readJsonlSync } from '../formats/jsonl.js';
import { adamw, addTrees, clipByGlobalNorm, scaleTree, type AdamWOptions, type AdamWState, type Optimizer, type Tree } from './optim.js';
import { makeSchedule, type ScheduleKind } from './schedule.js';
import { latestCheckpoint, loadCheckpoint, pruneCheckpoints, readTrainerState, saveCheckpoint } from './checkpoint.js';
import { ProgressBar, formatNumber } from './progress.js';
import type { Batch, DataSource, StepContext } from '../data/source.js';

/** A loss over params and one micro-batch: a scalar loss and named scalar metrics (TRL names). */
export type LossFn<P, B> = (params: P, batch: B) => readonly [Arr, Record<string, Arr>];

// The data-source interfaces live with the data (data/source.ts); re-exported for the loop's users.
export type { Batch, DataSource, StepContext } from '../data/source.js';

export interface StepInfo<P> {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  /** Everything logged for this step (train metrics, eval_* metrics when evaluated). */
  metrics: Record<string, number>;
  params: P; // borrowed
  rng: Rng;
}

export interface TrainOptions<P, B> {
  runDir: string;
  params: P;
  lossFn: LossFn<P, B>;
  data: DataSource<B, P>;
  /** Total number of optimizer updates of the run (a resumed run stops at the same total). */
  steps: number;
  /** Micro-batches per update; their gradients are averaged. Default 1. */
  gradAccum?: number;
  optimizer?: AdamWOptions;
  schedule?: { kind?: ScheduleKind; warmupSteps?: number; minLrRatio?: number };
  /** Clip the global gradient norm to this (null/0 = off). Default 1.0 (HF's max_grad_norm). */
  maxGradNorm?: number | null;
  /** Run `evalFn` every N updates and after the last one. */
  evalEvery?: number;
  evalFn?: (params: P, step: number) => Promise<Record<string, number>> | Record<string, number>;
  /** Save a checkpoint every N updates (and always after the last one). 0 = only at the end. */
  checkpointEvery?: number;
  /** Checkpoints kept on disk (newest). Default 2. */
  keepCheckpoints?: number;
  /** Seed of the loop's host RNG (ctx.rng). */
  seed?: number;
  /** Continue from the latest checkpoint in runDir (error if there is none). */
  resume?: boolean;
  onStep?: (info: StepInfo<P>) => void | 'stop' | Promise<void | 'stop'>;
  /** Progress bar on stderr: 'auto' (default) draws only on a TTY. */
  progress?: boolean | 'auto';
  /** SQLite store: a handle, a path, or false for none. Default: openStore() ($ALIGNLAB_DB). */
  store?: DB | string | false;
  runId?: string;
  /** Run kind recorded in the store: sft, rm, dpo, ppo, grpo, rloo, pretrain, … */
  kind?: string;
  /** Resolved config recorded with the run. */
  config?: unknown;
  /** Abort to stop after the current step with a checkpoint (wire SIGINT to it). */
  signal?: AbortSignal;
  /** How a step count reads in messages (online trainers count iterations of several updates). Default `step N`. */
  stepLabel?: (step: number) => string;
  /** Informational lines (resuming, stopping). Default: above the progress bar, on stderr. */
  log?: (line: string) => void;
}

export interface TrainSummary {
  runId: string;
  runDir: string;
  status: RunStatus;
  /** Updates done in total (including those before a resume). */
  step: number;
  /** `step` as people count it: "step 12", or for online trainers "iteration 12 (48 updates)". */
  stepLabel: string;
  startStep: number;
  /** Tokens consumed in this session / in the whole run. */
  tokens: number;
  totalTokens: number;
  tokensPerSec: number;
  wallSeconds: number;
  /** Mean time of one update (data + step + sync), seconds. */
  stepSeconds: number;
  /** Process peak resident set size (includes wasm memory). */
  peakRssMB: number;
  /** Last logged value of every metric (eval_* from the last eval), plus `step`. */
  finalMetrics: Record<string, number>;
  lastCheckpoint: string | null;
}

export class NonFiniteError extends Error {
  constructor(
    readonly step: number,
    readonly values: Record<string, number>,
    readonly lastCheckpoint: string | null,
  ) {
    const bad = Object.entries(values)
      .filter(([, v]) => !Number.isFinite(v))
      .map(([k, v]) => `${k} = ${v}`)
      .join(', ');
    super(
      `training stopped at step ${step}: ${bad} (non-finite). ` +
        (lastCheckpoint
          ? `The last good checkpoint is ${lastCheckpoint}; resume from it with a lower learning rate or stronger clipping.`
          : 'No checkpoint had been written yet.'),
    );
    this.name = 'NonFiniteError';
  }
}

// ---- the jitted step ---------------------------------------------------------------------------

export interface TrainStepResult<P, S> {
  params: P;
  optState: S;
  loss: number;
  gradNorm: number;
  metrics: Record<string, number>;
}

export interface TrainStep<P, B, S> {
  /**
   * One optimizer update over `batches` (length gradAccum). Consumes params, optState and batches.
   * Reads the loss (one sync per micro-batch) and returns host numbers.
   */
  step(params: P, optState: S, batches: B[], lr: number, t: number): Promise<TrainStepResult<P, S>>;
  dispose(): void;
}

/**
 * valueAndGrad of a loss with aux metrics, typed: ([loss, metrics], grads of params). jax-js types the result
 * loosely (its trees are `JsTree<Array>`), so this is the one place that says what comes back.
 */
function lossWithGrad<P, B>(lossFn: LossFn<P, B>): (params: P, batch: B) => [[Arr, Record<string, Arr>], Tree] {
  return (params, batch) => {
    const vg = valueAndGrad((p: P) => lossFn(p, batch) as [Arr, Record<string, Arr>], { hasAux: true }) as unknown as (p: P) => [[Arr, Record<string, Arr>], Tree];
    return vg(params);
  };
}

function stackStats(loss: Arr, metrics: Record<string, Arr>, names: string[], extra: Arr[] = []): Arr {
  const check = (name: string, x: Arr) => {
    if (x.ndim !== 0) throw new Error(`lossFn: ${name} must be a scalar, got shape [${x.shape.join(', ')}]`);
    return x.astype(np.float32);
  };
  names.length = 0;
  names.push(...Object.keys(metrics));
  return np.stack([check('the loss', loss), ...extra, ...names.map((k) => check(`metric "${k}"`, metrics[k]!))]);
}

/**
 * Build the jitted update. gradAccum = 1: a single program (valueAndGrad + clip + AdamW).
 * gradAccum > 1: a micro-step program that adds this batch's gradients into an accumulator (jitted
 * add, fused with the backward pass) and an update program that averages, clips and applies AdamW.
 */
export function makeTrainStep<P, B>(o: {
  lossFn: LossFn<P, B>;
  optimizer: Optimizer;
  maxGradNorm: number | null;
  gradAccum: number;
}): TrainStep<P, B, AdamWState> {
  const { lossFn, optimizer, maxGradNorm, gradAccum: A } = o;
  if (!Number.isInteger(A) || A < 1) throw new Error(`gradAccum must be a positive integer, got ${A}`);
  const names: string[] = []; // metric names, filled in when the step is traced
  const lossAndGrad = lossWithGrad(lossFn);

  const fused = compile((params: P, opt: AdamWState, batch: B, lr: Arr, t: Arr): [P, AdamWState, Arr] => {
    const [[loss, metrics], grads] = lossAndGrad(keep(params), batch);
    const [clipped, gnorm] = clipByGlobalNorm(grads, maxGradNorm);
    const [p2, o2] = optimizer.update(clipped, opt, params, lr, t);
    return [p2 as P, o2, stackStats(loss, metrics, names, [gnorm])];
  });

  const micro = compile((params: P, acc: Tree, batch: B): [Tree, Arr] => {
    const [[loss, metrics], grads] = lossAndGrad(params, batch);
    return [addTrees(acc, grads), stackStats(loss, metrics, names)];
  });

  const apply = compile((params: P, opt: AdamWState, acc: Tree, lr: Arr, t: Arr): [P, AdamWState, Arr] => {
    const [clipped, gnorm] = clipByGlobalNorm(scaleTree(acc, 1 / A), maxGradNorm);
    const [p2, o2] = optimizer.update(clipped, opt, params, lr, t);
    return [p2 as P, o2, gnorm];
  });

  const scalar = (x: number) => np.array(x);

  return {
    async step(params, optState, batches, lr, t) {
      if (batches.length !== A) throw new Error(`train step: expected ${A} micro-batches, got ${batches.length}`);
      if (A === 1) {
        const [p2, o2, stats] = fused(params, optState, batches[0]!, scalar(lr), scalar(t));
        const s = await stats.data(); // the one sync of this step
        const metrics: Record<string, number> = {};
        names.forEach((k, i) => (metrics[k] = s[2 + i] as number));
        return { params: p2, optState: o2, loss: s[0] as number, gradNorm: s[1] as number, metrics };
      }
      let acc = tree.map((x: Arr) => np.zeros(x.shape, { dtype: x.dtype }), params as never) as Tree;
      const sums: number[] = [];
      for (const b of batches) {
        let stats: Arr;
        [acc, stats] = micro(keep(params), acc, b);
        const s = await stats.data(); // sync per micro-batch: pending work must not pile up
        for (let i = 0; i < s.length; i++) sums[i] = (sums[i] ?? 0) + (s[i] as number);
      }
      const [p2, o2, gnorm] = apply(params, optState, acc, scalar(lr), scalar(t));
      const gradNorm = (await gnorm.data())[0] as number;
      const metrics: Record<string, number> = {};
      names.forEach((k, i) => (metrics[k] = sums[1 + i]! / A));
      return { params: p2, optState: o2, loss: sums[0]! / A, gradNorm, metrics };
    },
    dispose() {
      fused.dispose();
      micro.dispose();
      apply.dispose();
    },
  };
}

// ---- run log: metrics.jsonl + SQLite ------------------------------------------------------------

/** Writes one JSONL line and one SQLite batch per logged step. */
export class RunLog {
  readonly file: string;
  constructor(
    readonly runDir: string,
    readonly runId: string,
    readonly db: DB | null,
  ) {
    this.file = join(runDir, 'metrics.jsonl');
  }
  /** Drop lines (and SQLite rows) of steps after `step`: a resumed run re-does them. */
  truncateAfter(step: number): void {
    if (existsSync(this.file)) {
      const keep = readJsonlSync(this.file)
        .map((r) => r.value as { step?: number })
        .filter((v) => typeof v.step === 'number' && v.step <= step);
      writeJsonl(this.file, keep);
    }
    if (this.db) truncateMetrics(this.db, this.runId, step);
  }
  write(step: number, values: Record<string, number>): void {
    appendJsonl(this.file, [{ step, ...values }]);
    if (this.db) logMetrics(this.db, this.runId, step, values);
  }
}

/** Read back a run's metrics.jsonl as rows. */
export function readMetrics(runDir: string): Record<string, number>[] {
  const f = join(runDir, 'metrics.jsonl');
  if (!existsSync(f)) return [];
  return readJsonlSync(f).map((r) => r.value as Record<string, number>);
}

function peakRssMB(): number {
  return process.resourceUsage().maxRSS / 1024; // maxRSS is in kilobytes
}

// ---- the loop -----------------------------------------------------------------------------------

export async function train<P, B>(o: TrainOptions<P, B>): Promise<{ params: P; summary: TrainSummary }> {
  const runDir = resolve(o.runDir);
  const runId = o.runId ?? basename(runDir);
  const A = o.gradAccum ?? 1;
  const steps = o.steps;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`train: steps must be a positive integer, got ${steps}`);
  const optimizer = adamw(o.optimizer);
  const schedule = makeSchedule({
    kind: o.schedule?.kind ?? 'constant',
    lr: optimizer.options.lr,
    warmupSteps: o.schedule?.warmupSteps ?? 0,
    minLrRatio: o.schedule?.minLrRatio ?? 0,
    totalSteps: steps,
  });
  const maxGradNorm = o.maxGradNorm === undefined ? 1.0 : o.maxGradNorm;
  const evalEvery = o.evalEvery ?? 0;
  const ckptEvery = o.checkpointEvery ?? 0;
  const keep = o.keepCheckpoints ?? 2;
  mkdirSync(runDir, { recursive: true });

  const db = o.store === false ? null : typeof o.store === 'string' || o.store === undefined ? openStore(o.store) : o.store;
  const log = new RunLog(runDir, runId, db);

  // Start fresh or restore everything a checkpoint holds.
  let params = o.params;
  let optState: AdamWState;
  let rng = new Rng(o.seed ?? 0);
  let startStep = 0;
  let totalTokens = 0;
  let lastCheckpoint: string | null = null;
  const label = o.stepLabel ?? ((n: number) => `step ${n}`);
  if (o.resume) {
    const ck = latestCheckpoint(runDir);
    if (!ck) throw new Error(`${runDir}: no checkpoint to resume from (looked in ${join(runDir, 'checkpoints')})`);
    // A finished run has nothing to resume: refuse before anything (store row, metrics, params) is touched.
    const at = readTrainerState(ck.dir).step;
    if (at >= steps) throw new Error(`${runDir}: the run is already complete (${label(at)} of ${steps}); nothing to resume, its results are kept`);
    const loaded = loadCheckpoint(ck.dir, params, { m: params, v: params });
    free(params);
    params = loaded.params as P;
    optState = loaded.optState as AdamWState; // restored from the { m, v } template above
    startStep = loaded.state.step;
    rng = Rng.fromState(loaded.state.rng);
    o.data.restore(loaded.state.data);
    totalTokens = loaded.state.tokens;
    lastCheckpoint = ck.dir;
    if (db) startRun(db, { id: runId, kind: o.kind ?? 'custom', dir: runDir, config: o.config });
    log.truncateAfter(startStep);
  } else {
    if (latestCheckpoint(runDir))
      throw new Error(`${runDir} already holds checkpoints of a run: resume it, or choose a new run directory`);
    optState = optimizer.init(params);
    if (db) startRun(db, { id: runId, kind: o.kind ?? 'custom', dir: runDir, config: o.config });
    log.truncateAfter(0);
  }

  const trainStep = makeTrainStep<P, B>({ lossFn: o.lossFn, optimizer, maxGradNorm, gradAccum: A });
  const bar = new ProgressBar({ total: steps, start: startStep, enabled: o.progress ?? 'auto', label: o.kind ?? 'train' });
  // Messages go above the progress bar, or to stderr when there is none (not a terminal).
  const say = o.log ?? ((l: string) => (bar.enabled ? bar.log(l) : process.stderr.write(l + '\n')));
  if (o.resume) say(`resuming from ${label(startStep)} (checkpoint ${lastCheckpoint})`);
  const t0 = performance.now();
  let tokens = 0;
  let step = startStep;
  let status: RunStatus = 'completed';
  let finalMetrics: Record<string, number> = {};

  const checkpoint = async () => {
    lastCheckpoint = await saveCheckpoint(runDir, params, optState, { step, rng: rng.state(), data: o.data.state(), tokens: totalTokens });
    pruneCheckpoints(runDir, keep);
  };

  try {
    while (step < steps) {
      const ctx: StepContext<P> = { step: step + 1, rng, params };
      const batches: B[] = [];
      for (let i = 0; i < A; i++) {
        const b = await o.data.next(ctx);
        batches.push(b.batch);
        tokens += b.tokens;
        totalTokens += b.tokens;
      }
      const lr = schedule(step);
      const r = await trainStep.step(params, optState, batches, lr, step + 1);
      params = r.params;
      optState = r.optState;
      step++;
      if (!Number.isFinite(r.loss) || !Number.isFinite(r.gradNorm))
        throw new NonFiniteError(step, { loss: r.loss, grad_norm: r.gradNorm }, lastCheckpoint);

      const row: Record<string, number> = { loss: r.loss, grad_norm: r.gradNorm, learning_rate: lr, ...r.metrics, tokens: totalTokens };
      if (o.evalFn && ((evalEvery > 0 && step % evalEvery === 0) || step === steps)) {
        const ev = await o.evalFn(params, step);
        for (const [k, v] of Object.entries(ev)) row[k.startsWith('eval_') ? k : `eval_${k}`] = v;
        assertAlive(params, 'evalFn');
      }
      log.write(step, row);
      finalMetrics = { ...finalMetrics, ...row, step };
      bar.update(step, { tokens, metrics: { loss: r.loss, ...(row.eval_loss !== undefined ? { eval_loss: row.eval_loss } : {}) } });

      let saved = false;
      if ((ckptEvery > 0 && step % ckptEvery === 0) || step === steps) {
        await checkpoint();
        saved = true;
      }
      const action = o.onStep ? await o.onStep({ step, loss: r.loss, gradNorm: r.gradNorm, lr, metrics: row, params, rng }) : undefined;
      if (o.onStep) assertAlive(params, 'onStep');
      // Let signal handlers (SIGINT/SIGTERM → o.signal) and other callbacks run: the step above only awaits
      // promises, which never return to the event loop, so without this a Ctrl-C waits for the whole run.
      await yieldToEventLoop();
      // After the last update the run is complete whatever arrives now (its final checkpoint is written).
      const stop = step >= steps ? null : action === 'stop' ? 'stopped' : o.signal?.aborted ? 'interrupted' : null;
      if (stop) {
        if (!saved) await checkpoint();
        status = stop;
        say(`${stop} at ${label(step)}; checkpoint ${lastCheckpoint}`);
        break;
      }
    }
  } catch (e) {
    bar.done();
    const err = e as Error;
    if (err instanceof NonFiniteError) bar.log(err.message);
    if (db) finishRun(db, runId, 'failed', Object.keys(finalMetrics).length ? finalMetrics : null, err.message);
    try {
      free([params, optState]);
    } catch {
      /* already consumed by the failing call */
    }
    trainStep.dispose();
    throw e;
  }
  bar.done();
  trainStep.dispose();
  free(optState);
  if (db) finishRun(db, runId, status, finalMetrics);

  const wallSeconds = (performance.now() - t0) / 1000;
  const done = step - startStep;
  return {
    params,
    summary: {
      runId,
      runDir,
      status,
      step,
      stepLabel: label(step),
      startStep,
      tokens,
      totalTokens,
      tokensPerSec: wallSeconds > 0 ? tokens / wallSeconds : 0,
      wallSeconds,
      stepSeconds: done > 0 ? wallSeconds / done : 0,
      peakRssMB: peakRssMB(),
      finalMetrics,
      lastCheckpoint,
    },
  };
}

/** One trip through the event loop's macrotask queue (where signal handlers and timers run). */
export const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

/** A callback that consumed the borrowed params would make the next step fail obscurely: say who. */
function assertAlive(params: unknown, who: string): void {
  for (const x of tree.leaves(params as never) as Arr[])
    if (x.refCount < 1) throw new Error(`${who} consumed the params it borrowed: pass tree.ref(params) to functions that consume`);
}

// ---- evaluation helper --------------------------------------------------------------------------

/**
 * An evalFn that averages `lossFn`'s loss and metrics over fixed eval batches with one jitted forward
 * (no gradients). `batches()` must yield fresh device batches each call (they are consumed); each
 * batch counts equally. Returns `{ loss, ...metrics }` (the loop prefixes `eval_`). Call `dispose`.
 */
export function lossEvaluator<P, B>(
  lossFn: LossFn<P, B>,
  batches: () => Iterable<Batch<B>>,
): { evalFn: (params: P) => Promise<Record<string, number>>; dispose: () => void } {
  const names: string[] = [];
  const fwd = compile((params: P, batch: B): Arr => {
    const [loss, metrics] = lossFn(params, batch);
    return stackStats(loss, metrics, names);
  });
  return {
    async evalFn(params) {
      const sums: number[] = [];
      let n = 0;
      for (const b of batches()) {
        const s = await fwd(keep(params), b.batch).data();
        for (let i = 0; i < s.length; i++) sums[i] = (sums[i] ?? 0) + (s[i] as number);
        n++;
      }
      if (n === 0) throw new Error('lossEvaluator: the eval set yielded no batches');
      const out: Record<string, number> = { loss: sums[0]! / n };
      names.forEach((k, i) => (out[k] = sums[1 + i]! / n));
      return out;
    },
    dispose: () => fwd.dispose(),
  };
}

/** One-line human summary of a run (for CLIs). */
export function describeSummary(s: TrainSummary): string {
  const m = s.finalMetrics;
  const parts = [`${s.runId}: ${s.status} at ${s.stepLabel ?? `step ${s.step}`}`];
  if (m.loss !== undefined) parts.push(`loss ${formatNumber(m.loss)}`);
  if (m.eval_loss !== undefined) parts.push(`eval_loss ${formatNumber(m.eval_loss)}`);
  parts.push(`${formatNumber(s.tokensPerSec)} tok/s`, `${formatNumber(s.wallSeconds)} s`, `peak RSS ${Math.round(s.peakRssMB)} MB`);
  return parts.join(', ');
}

/** The resolved config a run recorded (config.resolved.json), if any. */
export function readRunConfig(runDir: string): unknown {
  const f = join(runDir, 'config.resolved.json');
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf-8')) : null;
}
