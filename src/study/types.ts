// The data model of a study's results: runs (one method × one setting × one seed), their checkpoints
// (evaluations on held-out prompts), their cost and complexity, and the study-level context (the base
// policy's own evaluation, prerequisites such as the reward model, provenance).
//
// The runner fills a Run incrementally (newRun → addCheckpoint… → finishRun) and may write it out at any
// time; everything here is plain JSON. Non-finite numbers (a diverged run's NaN KL) survive a round trip:
// serialize writes them as "NaN" / "Infinity" / "-Infinity", and parse turns those (and null) back into numbers.
//
// A whole study is stored as JSONL: line 1 is the header (everything but runs), then one run per line,
// so a bad field is reported with its file, line and field path, and finished runs can be appended.

import { z } from 'zod';

export const METHODS = ['dpo', 'ipo', 'simpo', 'ppo', 'ppo-gt', 'grpo', 'rloo', 'best-of-n', 'base'] as const;
export type Method = (typeof METHODS)[number];

/** Display names used by tables, charts and the recommendation. */
export const METHOD_LABELS: Record<Method, string> = {
  dpo: 'DPO',
  ipo: 'IPO',
  simpo: 'SimPO',
  ppo: 'PPO',
  'ppo-gt': 'PPO-GT',
  grpo: 'GRPO',
  rloo: 'RLOO',
  'best-of-n': 'Best-of-N',
  base: 'Base',
};

/**
 * 'running': checkpoints still arriving (analysis uses its checkpoints, but not for stability counts);
 * 'ok': finished normally; 'diverged': non-finite loss/metrics or exploding KL; 'collapsed': degenerate
 * output (entropy or distinct-n far below the base policy's).
 */
export const RUN_STATUSES = ['running', 'ok', 'diverged', 'collapsed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** One evaluation of a policy on the held-out prompts. NaN means "not measured". */
export interface Checkpoint {
  /** Optimizer step (for best-of-n: N). */
  step: number;
  /** Mean gold reward (VADER compound) of the continuations. */
  reward: number;
  /** Standard deviation of the gold reward over the continuations. */
  rewardStd: number;
  /** Number of continuations scored. */
  n: number;
  /** Sequence-level KL(π‖π_ref) in nats, estimated from samples as mean of log π(y|x) − log π_ref(y|x). */
  kl: number;
  /** Mean per-token entropy of π on its own samples (nats). */
  entropy: number;
  /** Distinct unigrams / total unigrams over all continuations. */
  distinct1: number;
  /** Distinct bigrams / total bigrams. */
  distinct2: number;
  /** Mean continuation length in tokens. */
  length: number;
  /** Perplexity of the continuations under the base model. */
  perplexity: number;
  /** P(reward(π) > reward(base)) + ½ P(tie), paired by prompt. */
  winRate: number;
  /** Seconds since the run started, when this checkpoint was taken (optional). */
  wallSeconds?: number;
  /** Training tokens processed so far (optional). */
  tokensProcessed?: number;
  /**
   * Gold reward of each held-out prompt's continuation, in prompt order (optional). Every checkpoint of a
   * study, the base included, is evaluated on the same prompts, so the analysis can resample prompts
   * (paired across methods) as well as seeds. NaN marks a prompt whose reward was not measured.
   */
  promptRewards?: number[];
  /**
   * Per-prompt KL estimate log π(y|x) − log π_ref(y|x) of each prompt's continuation, in prompt order (optional):
   * lets the analysis resample prompts for KL as well as for reward, so KL error is in the intervals.
   */
  promptKls?: number[];
  /** Share of continuations that ended with EOS (optional): a policy that stops ending sentences degenerates. */
  eosRate?: number;
  /**
   * Mean negative log-likelihood per token of the continuations under the study's independent n-gram model
   * (nats; optional, NaN when no n-gram model was given): fluency that no method trains against.
   */
  fluency?: number;
}

export interface Cost {
  wallSeconds: number;
  tokensProcessed: number;
  /** Time spent sampling (rollouts, preference data), included in wallSeconds. */
  generationSeconds: number;
  forwardSeconds: number;
  backwardSeconds: number;
  peakRssBytes: number;
}

export interface Complexity {
  /** Models resident during training (policy, reference, reward, value…). */
  modelsInMemory: number;
  /** Method-specific hyperparameters a user must choose. */
  hyperparameters: number;
  /** Non-blank, non-comment lines in the method's loss module. */
  lossLines: number;
  /** The resident models by name (train/footprint.ts), when measured. */
  models?: string[];
  /** The loss module the lines were counted in (relative to src/train), when measured. */
  lossFile?: string;
}

export interface Sample {
  prompt: string;
  completion: string;
  reward: number;
}

export type Setting = Record<string, number | string>;

export interface Run {
  /** Stable id: `${method}-${settingKey}-s${seed}` (see runId). */
  id: string;
  method: Method;
  setting: Setting;
  seed: number;
  status: RunStatus;
  /** Why the status is not ok (set by the runner or the collapse detector). */
  reason?: string;
  checkpoints: Checkpoint[];
  cost: Cost;
  complexity: Complexity;
  /** Final-checkpoint generations on held-out prompts. */
  samples: Sample[];
}

/** Work some methods need before their runs (reward model training, preference sampling, SFT). */
export interface Prerequisite {
  name: string;
  cost: Cost;
  usedBy: Method[];
  /** The seed whose draw (pairs, reward model) this is, with prefs.perSeed; absent for what every seed shares. */
  draw?: number;
}

export interface Provenance {
  /** Engine device: wasm | webgpu | cpu. */
  device: string;
  /** Human description of the hardware (CPU model / GPU adapter). */
  deviceName?: string;
  /** Package and runtime versions, e.g. { node: 'v20.20.2', alignlab: '0.1.0', '@jax-js/jax': '0.1.25' }. */
  versions: Record<string, string>;
  seeds: number[];
  startedAt: string;
  finishedAt?: string;
  /** The command line that produced the study. */
  command?: string;
  /** The resolved study configuration. */
  config?: unknown;
}

export interface StudyResults {
  version: 1;
  name?: string;
  /** The base (SFT) policy evaluated on the same held-out prompts (KL 0, win rate 0.5 by definition). */
  base: Checkpoint;
  /** Base-policy generations, for the samples section. */
  baseSamples?: Sample[];
  rewardModel?: { heldOutAccuracy: number; n: number };
  /**
   * The base policy as a language model, on held-out sentences (nats per word): its own loss and that of the
   * interpolated n-gram baseline fitted on the same split and vocabulary. Recorded by the base stage.
   */
  baseModel?: { heldOutLoss: number; ngramLoss: number };
  prerequisites: Prerequisite[];
  provenance: Provenance;
  runs: Run[];
}

// ---- construction helpers --------------------------------------------------------------

export function zeroCost(): Cost {
  return { wallSeconds: 0, tokensProcessed: 0, generationSeconds: 0, forwardSeconds: 0, backwardSeconds: 0, peakRssBytes: 0 };
}

/** Sum two costs; peak memory is a max, not a sum. */
export function addCost(a: Cost, b: Partial<Cost>): Cost {
  return {
    wallSeconds: a.wallSeconds + (b.wallSeconds ?? 0),
    tokensProcessed: a.tokensProcessed + (b.tokensProcessed ?? 0),
    generationSeconds: a.generationSeconds + (b.generationSeconds ?? 0),
    forwardSeconds: a.forwardSeconds + (b.forwardSeconds ?? 0),
    backwardSeconds: a.backwardSeconds + (b.backwardSeconds ?? 0),
    peakRssBytes: Math.max(a.peakRssBytes, b.peakRssBytes ?? 0),
  };
}

/** "beta=0.1,klCoef=0.05" with keys sorted, so the same setting always prints the same way. */
export function settingLabel(setting: Setting): string {
  const keys = Object.keys(setting).sort();
  return keys.length === 0 ? 'default' : keys.map((k) => `${k}=${setting[k]}`).join(',');
}

export function runId(method: Method, setting: Setting, seed: number): string {
  return `${method}-${settingLabel(setting).replace(/[^A-Za-z0-9_.=,-]/g, '_')}-s${seed}`;
}

export function newRun(method: Method, setting: Setting, seed: number, complexity: Complexity): Run {
  return { id: runId(method, setting, seed), method, setting, seed, status: 'running', checkpoints: [], cost: zeroCost(), complexity, samples: [] };
}

/** Append a checkpoint; steps must increase so curves are well defined. Returns the same run. */
export function addCheckpoint(run: Run, cp: Checkpoint): Run {
  const last = run.checkpoints.at(-1);
  if (last && !(cp.step > last.step)) throw new Error(`run ${run.id}: checkpoint step ${cp.step} is not after step ${last.step}`);
  run.checkpoints.push(cp);
  return run;
}

export function finishRun(run: Run, status: Exclude<RunStatus, 'running'> = 'ok', reason?: string): Run {
  run.status = status;
  if (reason !== undefined) run.reason = reason;
  else delete run.reason;
  return run;
}

// ---- JSON (de)serialisation with validation ----------------------------------------------

/** A number that may have been written as "NaN"/"Infinity"/"-Infinity" or null (plain JSON.stringify of NaN). */
const num = z.union([
  z.number(),
  z.null().transform(() => NaN),
  z.enum(['NaN', 'Infinity', '-Infinity']).transform((s) => Number(s)),
]);

const checkpointSchema = z.object({
  step: z.number(),
  reward: num,
  rewardStd: num,
  n: z.number().int().nonnegative(),
  kl: num,
  entropy: num,
  distinct1: num,
  distinct2: num,
  length: num,
  perplexity: num,
  winRate: num,
  wallSeconds: num.optional(),
  tokensProcessed: num.optional(),
  promptRewards: z.array(num).optional(),
  promptKls: z.array(num).optional(),
  eosRate: num.optional(),
  fluency: num.optional(),
});

const costSchema = z.object({
  wallSeconds: num,
  tokensProcessed: num,
  generationSeconds: num,
  forwardSeconds: num,
  backwardSeconds: num,
  peakRssBytes: num,
});

const complexitySchema = z.object({
  modelsInMemory: z.number().int().nonnegative(),
  hyperparameters: z.number().int().nonnegative(),
  lossLines: z.number().int().nonnegative(),
  models: z.array(z.string()).optional(),
  lossFile: z.string().optional(),
});

const sampleSchema = z.object({ prompt: z.string(), completion: z.string(), reward: num });

const runSchema = z.object({
  id: z.string(),
  method: z.enum(METHODS),
  setting: z.record(z.string(), z.union([z.number(), z.string()])),
  seed: z.number().int(),
  status: z.enum(RUN_STATUSES),
  reason: z.string().optional(),
  checkpoints: z.array(checkpointSchema),
  cost: costSchema,
  complexity: complexitySchema,
  samples: z.array(sampleSchema),
});

const headerSchema = z.object({
  version: z.literal(1),
  name: z.string().optional(),
  base: checkpointSchema,
  baseSamples: z.array(sampleSchema).optional(),
  rewardModel: z.object({ heldOutAccuracy: num, n: z.number().int().nonnegative() }).optional(),
  baseModel: z.object({ heldOutLoss: num, ngramLoss: num }).optional(),
  prerequisites: z.array(z.object({ name: z.string(), cost: costSchema, usedBy: z.array(z.enum(METHODS)), draw: z.number().int().optional() })),
  provenance: z.object({
    device: z.string(),
    deviceName: z.string().optional(),
    versions: z.record(z.string(), z.string()),
    seeds: z.array(z.number().int()),
    startedAt: z.string(),
    finishedAt: z.string().optional(),
    command: z.string().optional(),
    config: z.unknown().optional(),
  }),
});

/** JSON with non-finite numbers written as strings (JSON has no NaN). */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), indent);
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') || '(root)';
}

function parseLine<T>(schema: z.ZodType<T>, text: string, where: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: invalid JSON: ${(e as Error).message}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new Error(`${where}: field ${fieldPath(issue.path)}: ${issue.message}`);
  }
  return r.data;
}

export function serializeRun(run: Run): string {
  return toJson(run);
}

/** Parse one run (a result.json). `file` names the source in errors. */
export function parseRun(text: string, file = '<run>'): Run {
  return parseLine(runSchema, text, file) as Run;
}

/** The study as JSONL: header line, then one run per line. */
export function serializeStudy(study: StudyResults): string {
  const { runs, ...header } = study;
  return [toJson(header), ...runs.map((r) => toJson(r))].join('\n') + '\n';
}

/** Parse a study JSONL; errors name the file, the line and the field. */
export function parseStudy(text: string, file = '<study>'): StudyResults {
  const lines = text.split('\n');
  const first = lines.findIndex((l) => l.trim() !== '');
  if (first < 0) throw new Error(`${file}: empty study file`);
  const header = parseLine(headerSchema, lines[first]!, `${file}:${first + 1}`);
  const runs: Run[] = [];
  const seen = new Map<string, number>();
  // Per-prompt rewards are only comparable on the same prompts: every checkpoint that has them has as many as the first.
  let prompts = header.base.promptRewards ? { n: header.base.promptRewards.length, where: `line ${first + 1} (base)` } : null;
  for (let i = first + 1; i < lines.length; i++) {
    if (lines[i]!.trim() === '') continue;
    const run = parseLine(runSchema, lines[i]!, `${file}:${i + 1}`) as Run;
    const prev = seen.get(run.id);
    if (prev !== undefined) throw new Error(`${file}:${i + 1}: field id: duplicate run id "${run.id}" (first on line ${prev})`);
    seen.set(run.id, i + 1);
    run.checkpoints.forEach((c, j) => {
      // Per-prompt KLs pair with the per-prompt rewards of the same checkpoint.
      if (c.promptKls && c.promptRewards && c.promptKls.length !== c.promptRewards.length)
        throw new Error(`${file}:${i + 1}: field checkpoints[${j}].promptKls: ${c.promptKls.length} per-prompt KLs for ${c.promptRewards.length} prompt rewards`);
      if (!c.promptRewards) return;
      prompts ??= { n: c.promptRewards.length, where: `line ${i + 1}` };
      if (c.promptRewards.length !== prompts.n)
        throw new Error(`${file}:${i + 1}: field checkpoints[${j}].promptRewards: ${c.promptRewards.length} prompt rewards, but ${prompts.where} has ${prompts.n}; every checkpoint must be evaluated on the same held-out prompts`);
    });
    runs.push(run);
  }
  return { ...(header as Omit<StudyResults, 'runs'>), runs };
}
