// `run(config, options)`: THE entry for one training run, from a resolved config. `alignlab train` calls it
// (src/cli/train.ts parses flags and wires signals), and so does the study (src/study/runner.ts), whose every
// run is a config file it writes beside its results: `alignlab train <algo> --config that.yaml` re-runs it.
//
//   config → run dir (config.resolved.json) → model + tokenizer → TRL dataset → token ids
//          → trainer (trainers/offline.ts, ppo.ts, grpo.ts) → <run dir>/final (HF directory) + summary.json
//
// A run that stops early (SIGINT, --stop-after) leaves its checkpoint and no `final/`; `resume: true`
// continues from the latest checkpoint with the same config and reaches the same final state. Resuming a
// completed run is refused (its results stay as they are). A run that fails (bad data, a diverging loss, an
// evaluation hook that throws) is recorded as failed in the store, with the error.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { currentDevice, free, initEngine, keep, np } from '../engine/index.js';
import { toDevice } from '../model/weights.js';
import { initHead, type ScalarModel } from '../model/heads.js';
import type { Params } from '../model/decoder.js';
import { loadHFDir, checkParams } from '../formats/hf.js';
import { pack, type TokenizedExample } from '../data/batching.js';
import type { PreferenceExample, PromptExample, SftExample } from '../data/trl.js';
import { DEFAULT_CHAT_TEMPLATE } from '../data/trl.js';
import { latestCheckpoint } from './checkpoint.js';
import { loopOptions, resolveSteps, saveResolved, type TrainConfig } from './config.js';
import type { TrainSummary } from './loop.js';
import type { OnlineSummary } from './trainers/online.js';
import { openStore, type DB } from '../store/db.js';
import { finishRun, getRun, startRun } from '../store/runs.js';
import { trainDpo, trainRewardModel, trainSft, type LoopOptions } from './trainers/offline.js';
import {
  chatTemplateFor, completionOnlyFor, loadRewardModel, loadSplit, loadTrainModel, padIdOf, savePolicy, saveRewardModelDir,
  staticLength, tokenizePairs, tokenizePrompts, tokenizeSft, type Encoder as DataEncoder, type TrainModel,
} from './run-data.js';
import { rewardFunction } from '../rewards/registry.js';
import type { RewardFn } from '../rewards/types.js';

export interface RunOptions {
  /** Continue from the run directory's latest checkpoint. */
  resume?: boolean;
  /** Abort → stop after the current update with a checkpoint. */
  signal?: AbortSignal;
  /** Stop (with a checkpoint) once this many steps (updates; iterations for ppo/grpo/rloo) are done in total. */
  stopAfter?: number;
  /** jax-js device; default: the config's. */
  device?: string;
  progress?: boolean | 'auto';
  /** Where informational lines go (stderr by default, so stdout stays the summary). */
  log?: (line: string) => void;
  /** SQLite store for the run's row and metrics: a handle, a path, or false (default: $ALIGNLAB_DB). */
  store?: DB | string | false;
  /**
   * Evaluate the policy at the config's eval points (every `eval_steps` steps or iterations, and after the last):
   * params are borrowed (do not consume them); the returned numbers are logged with an `eval_` prefix. The study
   * scores its held-out prompts here. Not for `rm` (its model is not a policy).
   */
  evaluate?: (policy: Params, step: number) => Promise<Record<string, number>>;
  /** Write <run dir>/final when the run completes (default true). */
  saveFinal?: boolean;
}

/** The data encoder plus `start`, which brings up the engine once the host-side checks have passed. */
type Encoder = DataEncoder & { start: () => Promise<void> };

export interface RunResult {
  /** The loop's summary; online trainers (ppo, grpo, rloo) add iterations and phase times (OnlineSummary). */
  summary: TrainSummary | OnlineSummary;
  /** <run dir>/final when the run completed, else null. */
  finalDir: string | null;
  /** What `final/` holds: a policy, or a reward model. */
  saved: 'policy' | 'reward_model' | null;
}

/** Error for a config that cannot run as written (names the config file and the keys to change). */
function configError(c: TrainConfig, msg: string): Error {
  return new Error(`${c.source}: ${msg}`);
}

/** The status a run's summary.json records, or null when there is none (readable) yet. */
export function recordedStatus(runDir: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf-8')) as { status?: string }).status ?? null;
  } catch {
    return null;
  }
}

export async function run(c: TrainConfig, o: RunOptions = {}): Promise<RunResult> {
  const runDir = c.output_dir;
  // Refuse before touching the directory: a fresh run must not overwrite another run's config, and a
  // completed run has nothing to resume (resuming it would rewrite its summary and its row in the store).
  if (!o.resume && latestCheckpoint(runDir))
    throw new Error(`${runDir} already holds checkpoints of a run: resume it with --resume ${runDir}, or choose another output_dir (--out)`);
  if (o.resume && !latestCheckpoint(runDir)) throw new Error(`${runDir}: no checkpoint to resume from (looked in ${join(runDir, 'checkpoints')})`);
  if (o.resume && recordedStatus(runDir) === 'completed')
    throw new Error(`${runDir}: this run already completed (see its summary.json); there is nothing to resume and its results are kept`);
  saveResolved(runDir, c);
  const db = o.store === false ? null : typeof o.store === 'string' || o.store === undefined ? openStore(o.store) : o.store;
  try {
    return await runResolved(c, { ...o, store: db ?? false });
  } catch (e) {
    if (db) recordFailure(db, c, (e as Error).message);
    throw e;
  }
}

/** @deprecated the old name of `run`. */
export const runTraining = run;

/**
 * Mark the run failed in the store, creating its row when the failure came before the loop started (bad data,
 * a missing model). A row the loop already closed as failed is left as it is; one from an earlier session
 * (a resumed run) keeps its last metrics.
 */
function recordFailure(db: DB, c: TrainConfig, error: string): void {
  const row = getRun(db, c.run_name);
  if (row?.status === 'failed' || row?.status === 'completed') return;
  if (!row) startRun(db, { id: c.run_name, kind: c.algorithm, dir: c.output_dir, config: c });
  else startRun(db, { id: c.run_name, kind: row.kind, dir: row.dir ?? c.output_dir, config: row.config });
  finishRun(db, c.run_name, 'failed', row?.finalMetrics ?? null, error);
}

async function runResolved(c: TrainConfig, o: RunOptions): Promise<RunResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const runDir = c.output_dir;

  // Host-side work first (model files, tokenizer, data): a bad file fails before the engine starts.
  const model = await loadTrainModel(c);
  const template = chatTemplateFor(c, model.tokenizer);
  const enc: Encoder = {
    tokenizer: model.tokenizer, template, eosId: model.tokenizer.eosId ?? model.cfg.eosTokenId, vocabSize: model.cfg.vocabSize,
    start: async () => {
      const device = await initEngine(o.device ?? c.device);
      log(`${c.algorithm}: ${model.cfg.arch} model from ${model.source} on ${device}; run directory ${runDir}`);
    },
  };

  let result: RunResult;
  switch (c.algorithm) {
    case 'sft':
      result = await runSft(c as TrainConfig<'sft'>, model, enc, o, log);
      break;
    case 'rm':
      result = await runRm(c as TrainConfig<'rm'>, model, enc, o, log);
      break;
    case 'dpo':
      result = await runDpo(c as TrainConfig<'dpo'>, model, enc, o, log);
      break;
    case 'ppo':
      result = await runPpo(c as TrainConfig<'ppo'>, model, enc, o, log);
      break;
    case 'grpo':
    case 'rloo':
      result = await runGroup(c as TrainConfig<'grpo' | 'rloo'>, model, enc, o, log);
      break;
  }
  writeFileSync(join(runDir, 'summary.json'), JSON.stringify({ ...result.summary, finalDir: result.finalDir, saved: result.saved }, null, 2) + '\n');
  return result;
}

// ---- shared pieces ------------------------------------------------------------------------------

/** The loop options of an offline run: config → loop, plus batch shape, stop/abort, resume. */
function offlineLoop<P>(c: TrainConfig, steps: number, T: number, padId: number, o: RunOptions): LoopOptions<P> {
  const stopAfter = o.stopAfter;
  return {
    ...loopOptions(c, steps),
    batchSize: c.per_device_train_batch_size,
    evalBatchSize: c.per_device_eval_batch_size ?? c.per_device_train_batch_size,
    T,
    padId,
    resume: o.resume,
    signal: o.signal,
    progress: o.progress ?? 'auto',
    ...(o.store !== undefined ? { store: o.store } : {}),
    ...(o.log ? { log: o.log } : {}),
    onStep: stopAfter !== undefined ? ({ step }) => (step >= stopAfter && step < steps ? 'stop' : undefined) : undefined,
  };
}

/** At least one batch of rows, with an error that says which keys to change. */
function needRows(c: TrainConfig, n: number, what: string, file: string): void {
  const bs = c.per_device_train_batch_size;
  if (n < bs) throw configError(c, `${what} (${file}) has ${n} rows, fewer than one batch: lower per_device_train_batch_size (${bs}) or add rows`);
}

function needEvalRows(c: TrainConfig, n: number, file: string): void {
  const bs = c.per_device_eval_batch_size ?? c.per_device_train_batch_size;
  const key = c.per_device_eval_batch_size !== null ? 'per_device_eval_batch_size' : 'per_device_train_batch_size';
  if (n < bs)
    throw configError(c, `the eval set (${file}) has ${n} rows, fewer than one batch of ${bs} (${key}): add rows, lower per_device_eval_batch_size, raise data.eval_fraction, or set data.eval_fraction: 0`);
}

function finalDirOf(c: TrainConfig): string {
  return join(c.output_dir, 'final');
}

const completed = (s: TrainSummary) => s.status === 'completed';

/** The chat template to store with the trained model: the one the data was rendered with, if the tokenizer lacked it. */
/** Save the trained policy as an HF dir at the run's final/ when the run completed; returns that dir (or null). */
async function saveFinalPolicy(c: TrainConfig, m: TrainModel, enc: Encoder, conversational: boolean, summary: TrainSummary, params: Params, o: RunOptions): Promise<string | null> {
  if (!completed(summary) || o.saveFinal === false) return null;
  const dir = finalDirOf(c);
  await savePolicy(dir, { ...m, params, chatTemplate: templateToSave(m, enc, conversational) });
  return dir;
}

function templateToSave(m: TrainModel, enc: Encoder, conversational: boolean): string | null {
  if (!conversational) return null;
  const used = enc.template?.template ?? DEFAULT_CHAT_TEMPLATE;
  return used === m.tokenizer.chatTemplate ? null : used;
}

// ---- SFT ------------------------------------------------------------------------------------------

async function runSft(c: TrainConfig<'sft'>, m: TrainModel, enc: Encoder, o: RunOptions, log: (l: string) => void): Promise<RunResult> {
  const ds = await loadSplit<SftExample>(c, 'sft');
  const cap = Math.min(c.max_length, m.cfg.maxPositions);
  let train: TokenizedExample[] = tokenizeSft(ds.train, enc, { maxLength: cap });
  let evalRows: TokenizedExample[] = ds.eval ? tokenizeSft(ds.eval, enc, { maxLength: cap }) : [];
  let completionOnly = completionOnlyFor(c, ds.train);
  let T: number;
  if (c.sft.packing) {
    // Packing cuts across examples: no prompt boundaries survive, so the loss covers every token.
    T = cap;
    const packRows = (xs: TokenizedExample[]) => pack(xs.map((x) => x.ids), T, enc.eosId).map((ids) => ({ ids }));
    train = packRows(train);
    evalRows = packRows(evalRows);
    if (completionOnly) log('sft: packing is on, so the loss covers every token (completion-only masking needs unpacked rows)');
    completionOnly = false;
  } else T = staticLength([...train, ...evalRows].map((x) => x.ids.length), cap);
  needRows(c, train.length, c.sft.packing ? 'the packed training set' : 'the training set', c.data.train);
  if (evalRows.length) needEvalRows(c, evalRows.length, c.data.eval ?? c.data.train);
  const steps = resolveSteps(c, train.length);
  await enc.start();
  log(`sft: ${train.length} training rows, ${evalRows.length} eval rows, T=${T}, ${steps} steps${completionOnly ? ', completion-only loss' : ''}`);
  const params = toDevice(m.params) as Params;
  const { params: out, summary } = await trainSft({
    ...offlineLoop<Params>(c, steps, T, padIdOf(m.cfg, m.tokenizer), o),
    extraEval: o.evaluate,
    cfg: m.cfg, params, train, eval: evalRows, completionOnly,
  });
  let finalDir: string | null = null;
  try {
    finalDir = await saveFinalPolicy(c, m, enc, ds.train.conversational, summary, out, o);
  } finally {
    free(out);
  }
  return { summary, finalDir, saved: finalDir ? 'policy' : null };
}

// ---- reward model ---------------------------------------------------------------------------------

async function runRm(c: TrainConfig<'rm'>, m: TrainModel, enc: Encoder, o: RunOptions, log: (l: string) => void): Promise<RunResult> {
  const ds = await loadSplit<PreferenceExample>(c, 'preference');
  const cap = Math.min(c.max_length, m.cfg.maxPositions);
  // Each pair keeps its `margin` column (Llama 2 eq. 2), used by the loss when rm.use_margin_column is on.
  const tok = (d: typeof ds.train) => tokenizePairs(d, enc, { maxLength: cap, maxPromptLength: cap - 1 }).map((p, i) => ({ ...p, margin: d.rows[i]!.margin }));
  const useMargins = c.rm.use_margin_column && [ds.train, ds.eval].some((d) => d?.rows.some((r) => r.margin !== undefined));
  const train = tok(ds.train);
  const evalRows = ds.eval ? tok(ds.eval) : [];
  needRows(c, train.length, 'the training set', c.data.train);
  if (evalRows.length) needEvalRows(c, evalRows.length, c.data.eval ?? c.data.train);
  const T = staticLength([...train, ...evalRows].flatMap((p) => [p.prompt.length + p.chosen.length, p.prompt.length + p.rejected.length]), cap);
  const steps = resolveSteps(c, train.length);
  await enc.start();
  log(`rm: ${train.length} training pairs, ${evalRows.length} eval pairs, T=${T}, ${steps} steps${useMargins ? ', per-pair margins' : ''}`);
  const h = initHead(m.cfg, c.seed + 1);
  const model: ScalarModel = { trunk: toDevice(m.params) as Params, head: { w: np.array(h.w.data, { shape: h.w.shape }), b: np.array(h.b.data, { shape: h.b.shape }) } };
  const { params: out, summary } = await trainRewardModel({
    ...offlineLoop<ScalarModel>(c, steps, T, padIdOf(m.cfg, m.tokenizer), o),
    cfg: m.cfg, model, train, eval: evalRows,
    centerRewardsCoefficient: c.rm.center_rewards_coefficient ?? undefined,
    useMargins,
    pooling: c.rm.pooling,
  });
  let finalDir: string | null = null;
  try {
    if (completed(summary) && o.saveFinal !== false) {
      finalDir = finalDirOf(c);
      await saveRewardModelDir(finalDir, { cfg: m.cfg, model: out, tokenizer: m.tokenizer, pooling: c.rm.pooling });
    }
  } finally {
    free(out);
  }
  return { summary, finalDir, saved: finalDir ? 'reward_model' : null };
}

// ---- DPO family -----------------------------------------------------------------------------------

async function runDpo(c: TrainConfig<'dpo'>, m: TrainModel, enc: Encoder, o: RunOptions, log: (l: string) => void): Promise<RunResult> {
  const d = c.dpo;
  const ds = await loadSplit<PreferenceExample>(c, 'preference');
  const cap = Math.min(c.max_length, m.cfg.maxPositions);
  const tok = (x: typeof ds.train) => tokenizePairs(x, enc, { maxLength: cap, maxPromptLength: Math.min(d.max_prompt_length, cap - 1) });
  const train = tok(ds.train);
  const evalRows = ds.eval ? tok(ds.eval) : [];
  needRows(c, train.length, 'the training set', c.data.train);
  if (evalRows.length) needEvalRows(c, evalRows.length, c.data.eval ?? c.data.train);
  const T = staticLength([...train, ...evalRows].flatMap((p) => [p.prompt.length + p.chosen.length, p.prompt.length + p.rejected.length]), cap);
  const steps = resolveSteps(c, train.length);
  await enc.start();
  const params = toDevice(m.params) as Params;
  let ref: Params | undefined;
  if (d.loss_type !== 'simpo') {
    if (d.ref_model) {
      const r = await loadHFDir(d.ref_model, { tokenizer: 'skip' });
      checkParams(m.cfg, r.params, `dpo.ref_model ${d.ref_model} (it must have the policy's architecture and sizes)`);
      ref = toDevice(r.params) as Params;
    } else ref = keep(params); // TRL ref_model=None: a frozen copy of the initial policy
  }
  log(`dpo (${d.loss_type}, β=${d.beta}): ${train.length} training pairs, ${evalRows.length} eval pairs, T=${T}, ${steps} steps; reference ${d.loss_type === 'simpo' ? 'none (SimPO)' : (d.ref_model ?? 'the initial policy')}`);
  let finalDir: string | null = null;
  let summary: TrainSummary;
  try {
    const r = await trainDpo({
      ...offlineLoop<Params>(c, steps, T, padIdOf(m.cfg, m.tokenizer), o),
      extraEval: o.evaluate,
      cfg: m.cfg, params, ref, train, eval: evalRows,
      lossType: d.loss_type, beta: d.beta, labelSmoothing: d.label_smoothing, gamma: d.simpo_gamma,
    });
    summary = r.summary;
    try {
      finalDir = await saveFinalPolicy(c, m, enc, ds.train.conversational, summary, r.params, o);
    } finally {
      free(r.params);
    }
  } finally {
    if (ref) free(ref);
  }
  return { summary, finalDir, saved: finalDir ? 'policy' : null };
}

// ---- PPO ------------------------------------------------------------------------------------------

/** Prompt ids for online RL, cut so that prompt + completion fit the context. */
async function onlinePrompts(c: TrainConfig<'ppo' | 'grpo' | 'rloo'>, m: TrainModel, enc: Encoder, completionKey: string, completionLength: number) {
  // Online RL samples its own completions: every prompt row trains (no eval split; data.eval is not read yet).
  const ds = await loadSplit<PromptExample>({ ...c, data: { ...c.data, eval: null, eval_fraction: 0 } }, 'prompt');
  const ctx = Math.min(c.max_length, m.cfg.maxPositions);
  const maxPrompt = ctx - completionLength;
  if (maxPrompt < 1)
    throw configError(c, `${c.algorithm}.${completionKey} (${completionLength}) leaves no room for a prompt within ${ctx} tokens (min of max_length and the model's context)`);
  return { ds, prompts: tokenizePrompts(ds.train, enc, { maxPromptLength: maxPrompt }) };
}

/** The reward source of an online config: a built-in function (checked before the engine starts) or a reward model dir. */
function onlineRewardFunction(c: TrainConfig<'ppo' | 'grpo' | 'rloo'>, m: TrainModel): RewardFn | undefined {
  const r = (c as unknown as Record<string, { reward: { function: string | null } }>)[c.algorithm]!.reward;
  try {
    return r.function ? rewardFunction(r.function, { tokenizer: m.tokenizer }) : undefined;
  } catch (e) {
    throw configError(c, `field "${c.algorithm}.reward.function": ${(e as Error).message}`);
  }
}

/** The options PPO, GRPO and RLOO share: the policy, prompts, run bookkeeping and the loop's optimisation settings. */
function onlineRunOptions(c: TrainConfig<'ppo' | 'grpo' | 'rloo'>, m: TrainModel, params: Params, eosId: number | null, prompts: number[][], o: RunOptions, iterations: number, updatesPerIteration: number) {
  const lo = loopOptions(c, iterations);
  const stopAfter = o.stopAfter;
  return {
    policy: { cfg: m.cfg, params, tokenizer: m.tokenizer, eosId },
    prompts,
    runDir: c.output_dir,
    runId: c.run_name,
    config: c,
    iterations,
    learningRate: c.learning_rate,
    optimizer: lo.optimizer && { b1: lo.optimizer.b1, b2: lo.optimizer.b2, eps: lo.optimizer.eps, weightDecay: lo.optimizer.weightDecay },
    // The schedule runs over updates; warmup_steps counts updates too (HF semantics).
    schedule: { kind: c.lr_scheduler_type, warmupSteps: c.warmup_steps > 0 ? c.warmup_steps : Math.ceil(c.warmup_ratio * iterations * updatesPerIteration), minLrRatio: c.min_lr_ratio },
    maxGradNorm: lo.maxGradNorm,
    seed: c.seed,
    checkpointEvery: c.save_steps,
    keepCheckpoints: c.save_total_limit,
    resume: o.resume,
    progress: o.progress ?? 'auto',
    signal: o.signal,
    ...(o.store !== undefined ? { store: o.store } : {}),
    ...(o.log ? { log: o.log } : {}),
    // eval_steps counts iterations here; the hook sees the policy after each evaluated iteration.
    evalEvery: c.eval_steps ?? 0,
    evalFn: o.evaluate ? (policy: Params, iteration: number) => o.evaluate!(policy, iteration) : undefined,
    onIteration: stopAfter !== undefined ? ({ iteration }: { iteration: number }) => (iteration >= stopAfter && iteration < iterations ? ('stop' as const) : undefined) : undefined,
  };
}

async function runPpo(c: TrainConfig<'ppo'>, m: TrainModel, enc: Encoder, o: RunOptions, log: (l: string) => void): Promise<RunResult> {
  const { trainPpo } = await import('./trainers/ppo.js');
  const p = c.ppo;
  const { ds, prompts } = await onlinePrompts(c, m, enc, 'response_length', p.response_length);
  // TRL's rollout batch: per_device_train_batch_size × gradient_accumulation_steps × num_mini_batches completions.
  const B = c.per_device_train_batch_size * c.gradient_accumulation_steps * p.num_mini_batches;
  if (prompts.length < B) throw configError(c, `${c.data.train} has ${prompts.length} prompts, fewer than one rollout of ${B} (per_device_train_batch_size × gradient_accumulation_steps × ppo.num_mini_batches)`);
  const iterations = c.max_steps ?? Math.max(1, Math.ceil((c.num_train_epochs * prompts.length) / B));
  const updatesPerIteration = p.num_ppo_epochs * p.num_mini_batches;
  const reward = onlineRewardFunction(c, m);
  await enc.start();
  const rm = p.reward.model ? await loadRewardModel(p.reward.model, { device: currentDevice() }) : null;
  log(`ppo: ${prompts.length} prompts, ${B} completions of ≤${p.response_length} tokens per iteration, ${iterations} iterations × ${updatesPerIteration} updates; reward ${p.reward.model ?? p.reward.function}`);
  const params = toDevice(m.params) as Params;
  let finalDir: string | null = null;
  let summary: TrainSummary;
  try {
    const r = await trainPpo({
      ...onlineRunOptions(c, m, params, enc.eosId, prompts, o, iterations, updatesPerIteration),
      reward,
      rewardModel: rm ?? undefined,
      batchSize: B,
      numMiniBatches: p.num_mini_batches,
      ppoEpochs: p.num_ppo_epochs,
      gradientAccumulationSteps: c.gradient_accumulation_steps,
      maxNewTokens: p.response_length,
      temperature: p.temperature,
      klCoef: p.kl_coef,
      klEstimator: p.kl_estimator,
      klTarget: p.kl_target,
      klHorizon: p.kl_horizon,
      gamma: p.gamma,
      lam: p.lam,
      clipRange: p.cliprange,
      clipRangeValue: p.cliprange_value,
      vfCoef: p.vf_coef,
      whitenRewards: p.whiten_rewards,
      missingEosPenalty: p.missing_eos_penalty,
      refEmaAlpha: p.ref_ema_alpha,
      valueModel: p.value_model,
    });
    summary = r.summary;
    try {
      finalDir = await saveFinalPolicy(c, m, enc, ds.train.conversational, summary, r.policy, o);
    } finally {
      free([r.policy, r.value.trunk, r.value.head]);
    }
  } finally {
    free(params);
    rm?.dispose();
  }
  return { summary, finalDir, saved: finalDir ? 'policy' : null };
}

// ---- GRPO and RLOO ----------------------------------------------------------------------------------

async function runGroup(c: TrainConfig<'grpo' | 'rloo'>, m: TrainModel, enc: Encoder, o: RunOptions, log: (l: string) => void): Promise<RunResult> {
  const { trainGrpo, trainRloo } = await import('./trainers/grpo.js');
  const g = c.algorithm === 'grpo' ? (c as TrainConfig<'grpo'>).grpo : (c as TrainConfig<'rloo'>).rloo;
  const { ds, prompts } = await onlinePrompts(c, m, enc, 'max_completion_length', g.max_completion_length);
  // TRL counts completions in the batch: per_device_train_batch_size × gradient_accumulation_steps completions per
  // generation, num_generations of them for each prompt.
  const rows = c.per_device_train_batch_size * c.gradient_accumulation_steps;
  const G = g.num_generations;
  if (rows % G !== 0)
    throw configError(c, `per_device_train_batch_size × gradient_accumulation_steps = ${rows} completions per rollout must be a multiple of ${c.algorithm}.num_generations (${G})`);
  const promptsPerIteration = rows / G;
  if (prompts.length < promptsPerIteration) throw configError(c, `${c.data.train} has ${prompts.length} prompts, fewer than the ${promptsPerIteration} of one rollout`);
  const iterations = c.max_steps ?? Math.max(1, Math.ceil((c.num_train_epochs * prompts.length) / promptsPerIteration));
  const updatesPerIteration = g.num_iterations;
  let reward = onlineRewardFunction(c, m);
  await enc.start();
  const rmDir = (g.reward as { model: string | null }).model;
  const rm = rmDir ? await loadRewardModel(rmDir, { device: currentDevice() }) : null;
  if (rm) reward = rm.rewardFn();
  log(`${c.algorithm}: ${prompts.length} prompts, ${promptsPerIteration} prompts × ${G} completions of ≤${g.max_completion_length} tokens per iteration, ${iterations} iterations × ${updatesPerIteration} updates; reward ${rmDir ?? g.reward.function}`);
  const params = toDevice(m.params) as Params;
  const common = {
    ...onlineRunOptions(c, m, params, enc.eosId, prompts, o, iterations, updatesPerIteration),
    reward: reward!,
    promptsPerIteration,
    numGenerations: G,
    numIterations: g.num_iterations,
    gradientAccumulationSteps: c.gradient_accumulation_steps,
    maxNewTokens: g.max_completion_length,
    temperature: g.temperature,
  };
  let finalDir: string | null = null;
  let summary: TrainSummary;
  try {
    let r;
    if (c.algorithm === 'grpo') {
      const x = (c as TrainConfig<'grpo'>).grpo;
      r = await trainGrpo({ ...common, beta: x.beta, epsilon: x.epsilon, epsilonHigh: x.epsilon_high ?? undefined, lossType: x.loss_type, scaleRewards: x.scale_rewards });
    } else {
      const x = (c as TrainConfig<'rloo'>).rloo;
      r = await trainRloo({ ...common, klCoef: x.kl_coef, clipRange: x.cliprange, normalizeAdvantages: x.normalize_advantages });
    }
    summary = r.summary;
    try {
      finalDir = await saveFinalPolicy(c, m, enc, ds.train.conversational, summary, r.policy, o);
    } finally {
      free(r.policy);
    }
  } finally {
    free(params);
    rm?.dispose();
  }
  return { summary, finalDir, saved: finalDir ? 'policy' : null };
}
