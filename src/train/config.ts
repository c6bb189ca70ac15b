// Training configs: `alignlab train sft|rm|dpo|ppo|grpo|rloo --config FILE.yaml`.
//
// Keys are Hugging Face TrainingArguments / TRL config names (snake_case), so a TRL user recognises
// them and numbers can be copied across. Every default is written once: here, or, for a loss
// hyperparameter, in the algorithm module's *_DEFAULTS (imported below). Each key's documentation is its
// `.describe()` text, from which docs/training.md's reference tables are generated (cli/train-docs.ts).
// The resolved config, with every default filled in, is saved as <run dir>/config.resolved.json.
//
// A config is one YAML (or JSON) file: common keys at the top level plus one section named after
// the algorithm. Example:
//
//   model: { dir: runs/sft/model }
//   data: { train: data/prefs.jsonl, eval_fraction: 0.1 }
//   max_steps: 200
//   learning_rate: 5.0e-5
//   dpo: { beta: 0.1, loss_type: sigmoid }
//
// Errors name the file, the line and the field: `dpo.yaml:7: field "dpo.beta": expected number, received string`.

import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { z } from 'zod';
import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Document, type Node } from 'yaml';
import { configFromHF } from '../formats/config.js';
import { DPO_DEFAULTS } from './losses/dpo.js';
import { SIMPO_DEFAULTS } from './losses/simpo.js';
import { PPO_DEFAULTS } from './losses/ppo.js';
import { GRPO_DEFAULTS } from './losses/grpo.js';
import { RLOO_DEFAULTS } from './losses/rloo.js';
import type { TrainOptions } from './loop.js';
import type { Pooling } from '../model/heads.js';

export const ALGORITHMS = ['sft', 'rm', 'dpo', 'ppo', 'grpo', 'rloo'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/** learning_rate defaults, per trainer, as TRL sets them (TrainingArguments' own default is 5e-5). */
export const LEARNING_RATE_DEFAULTS: Record<Algorithm, number> = {
  sft: 2e-5, // TRL SFTConfig.learning_rate
  rm: 1e-4, // TRL RewardConfig.learning_rate
  dpo: 1e-6, // TRL DPOConfig.learning_rate
  ppo: 3e-6, // TRL's PPO example and docs (`--learning_rate 3e-6`); PPOConfig inherits TrainingArguments
  grpo: 1e-6, // TRL GRPOConfig.learning_rate
  rloo: 1e-6, // TRL RLOOConfig.learning_rate
};

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const prob = z.number().min(0).max(1);
const path = z.string().min(1);

// ---- model and data ---------------------------------------------------------------------------

const ModelSchema = z.union([
  z
    .object({
      dir: path.describe('HF model directory (config.json, model.safetensors, tokenizer.json[, tokenizer_config.json]).'),
    })
    .strict(),
  z
    .object({
      init: z.record(z.string(), z.unknown()).describe('A fresh random model: HF config.json keys (model_type, vocab_size, n_embd / hidden_size, …).'),
      tokenizer: path.describe('tokenizer.json (or a directory holding one) for the fresh model.'),
    })
    .strict(),
]);

export const DATA_FORMATS = ['auto', 'text', 'prompt_completion', 'messages', 'preference', 'prompt'] as const;

const DataSchema = z
  .object({
    train: path.describe('Training rows, JSONL in a TRL dataset format (see data/trl.ts).'),
    eval: path.nullable().default(null).describe('Held-out rows; when absent, `eval_fraction` of `train` is split off (seeded by `seed`).'),
    eval_fraction: z.number().min(0).max(0.5).default(0.05).describe('Share of train rows held out when `eval` is absent (0 = no eval set).'),
    format: z.enum(DATA_FORMATS).default('auto').describe("Row format; 'auto' detects it from the first row's keys (TRL's conventions)."),
    chat_template: path.nullable().default(null).describe('A Jinja chat template file overriding the tokenizer_config.json one (TRL `chat_template_path`).'),
  })
  .strict();

// ---- common training arguments (HF TrainingArguments names and defaults unless noted) ----------

const commonShape = {
  model: ModelSchema,
  data: DataSchema,
  algorithm: z.enum(ALGORITHMS).optional().describe('Optional; when given it must match the algorithm named on the command line.'),
  seed: nonNegInt.default(42).describe('TrainingArguments.seed (42).'),
  max_steps: posInt.nullable().default(null).describe('Length of the run: optimizer updates (sft, rm, dpo) or iterations, each a rollout and its updates (ppo, grpo, rloo); null = num_train_epochs over the data.'),
  num_train_epochs: z.number().positive().default(3).describe('TrainingArguments.num_train_epochs (3); used only when max_steps is null.'),
  per_device_train_batch_size: posInt.default(8).describe('TrainingArguments.per_device_train_batch_size (8): rows per micro-batch (ppo: × gradient_accumulation_steps × num_mini_batches completions per rollout; grpo/rloo: × gradient_accumulation_steps completions per rollout).'),
  per_device_eval_batch_size: posInt.nullable().default(null).describe('TrainingArguments.per_device_eval_batch_size (HF 8): rows per eval batch of sft, rm and dpo (the eval set is cut to whole batches); null = per_device_train_batch_size.'),
  gradient_accumulation_steps: posInt.default(1).describe('TrainingArguments.gradient_accumulation_steps (1): micro-batches per update.'),
  learning_rate: z.number().positive().nullable().default(null).describe("Peak learning rate; null = the trainer's TRL default (LEARNING_RATE_DEFAULTS)."),
  lr_scheduler_type: z.enum(['constant', 'cosine', 'linear']).default('linear').describe("TrainingArguments.lr_scheduler_type ('linear')."),
  warmup_steps: nonNegInt.default(0).describe('TrainingArguments.warmup_steps (0); wins over warmup_ratio when > 0.'),
  warmup_ratio: prob.default(0).describe('TrainingArguments.warmup_ratio (0): share of max_steps used for warmup.'),
  min_lr_ratio: prob.default(0).describe("Floor of cosine/linear decay as a share of the peak (ours; 0 = HF's decay to zero)."),
  weight_decay: z.number().min(0).default(0).describe('TrainingArguments.weight_decay (0.0), decoupled (AdamW); never applied to 1-D params.'),
  adam_beta1: z.number().min(0).lt(1).default(0.9).describe('TrainingArguments.adam_beta1 (0.9).'),
  adam_beta2: z.number().min(0).lt(1).default(0.999).describe('TrainingArguments.adam_beta2 (0.999).'),
  adam_epsilon: z.number().positive().default(1e-8).describe('TrainingArguments.adam_epsilon (1e-8).'),
  max_grad_norm: z.number().min(0).nullable().default(1.0).describe('TrainingArguments.max_grad_norm (1.0); null or 0 = no clipping.'),
  eval_steps: posInt.nullable().default(null).describe('Evaluate every N updates (sft, rm, dpo: the eval set) or iterations (ppo, grpo, rloo: only the evaluate hook of train/run.ts, e.g. the study\'s held-out scoring; they have no eval set yet), and after the last; null = only after the last.'),
  save_steps: posInt.default(500).describe('TrainingArguments.save_steps (500): checkpoint every N steps as max_steps counts them (and after the last).'),
  save_total_limit: posInt.default(2).describe('Checkpoints kept (TrainingArguments.save_total_limit; ours defaults to 2, HF keeps all).'),
  max_length: posInt.default(1024).describe('Max tokens per sequence: TRL SFTConfig/DPOConfig/RewardConfig.max_length (1024).'),
  output_dir: z.string().min(1).nullable().default(null).describe('Run directory; null = runs/<algorithm>-<config file name>.'),
  run_name: z.string().min(1).nullable().default(null).describe("Run id in the store; null = the output directory's name."),
  device: z.enum(['wasm', 'webgpu', 'cpu']).default('wasm').describe('jax-js device (ours): wasm (CPU), webgpu, or cpu (reference, slow); --device and $ALIGNLAB_DEVICE override it.'),
};

// ---- per-algorithm sections ------------------------------------------------------------------

const SftSchema = z
  .object({
    packing: z.boolean().default(false).describe('TRL SFTConfig.packing (false): concatenate examples with EOS and cut into max_length blocks.'),
    completion_only_loss: z.boolean().nullable().default(null).describe('TRL SFTConfig.completion_only_loss (None): null = on for prompt/completion rows, off otherwise.'),
    assistant_only_loss: z.boolean().default(false).describe('TRL SFTConfig.assistant_only_loss (false): loss only on assistant turns of `messages` rows.'),
    dataset_text_field: z.string().min(1).default('text').describe("TRL SFTConfig.dataset_text_field ('text')."),
  })
  .strict();

const RmSchema = z
  .object({
    center_rewards_coefficient: z.number().min(0).nullable().default(null).describe('TRL RewardConfig.center_rewards_coefficient (None); Eisenstein et al. 2023 recommend 0.01.'),
    use_margin_column: z.boolean().default(true).describe('When the rows have a `margin` column, subtract it inside the loss: −log σ(r_c − r_r − m) (Llama 2, Touvron et al. 2023, eq. 2; TRL does too); rows without one get 0. false ignores the column.'),
    pooling: z.enum(['last', 'mean'] as const satisfies readonly Pooling[]).default('last').describe("Where the reward is read: 'last' = at the last real token (HF *ForSequenceClassification, TRL), 'mean' = the mean of the per-token scores over the completion tokens (a contextual bag of words: more accurate from few pairs when the reward is lexical). Saved with the model."),
  })
  .strict();

export const DPO_LOSS_TYPES_CONFIG = ['sigmoid', 'ipo', 'hinge', 'robust', 'simpo'] as const;

const DpoSchema = z
  .object({
    beta: z.number().positive().nullable().default(null).describe("β (TRL DPOConfig.beta 0.1; SimPO's β is SIMPO_DEFAULTS.beta, Meng et al. 2024); null = the loss type's default."),
    loss_type: z.enum(DPO_LOSS_TYPES_CONFIG).default(DPO_DEFAULTS.lossType).describe('TRL DPOConfig.loss_type: sigmoid (Rafailov et al. 2023), ipo (Azar et al. 2023), hinge (SLiC, Zhao et al. 2023), robust (Chowdhury et al. 2024); simpo as TRL CPOConfig (Meng et al. 2024).'),
    label_smoothing: z.number().min(0).lt(0.5).default(DPO_DEFAULTS.labelSmoothing).describe('TRL DPOConfig.label_smoothing (0): cDPO / robust DPO label-noise rate ε < 0.5.'),
    simpo_gamma: z.number().min(0).default(SIMPO_DEFAULTS.gamma).describe('SimPO target margin γ (TRL CPOConfig.simpo_gamma; default from SIMPO_DEFAULTS).'),
    max_prompt_length: posInt.default(512).describe('TRL DPOConfig.max_prompt_length (512): longer prompts keep their end.'),
    ref_model: path.nullable().default(null).describe("Reference model directory; null = the initial policy (TRL's default ref_model=None)."),
  })
  .strict();

/** Where a scalar reward comes from in online RL: a learned reward model or a named reward function. */
const RewardSourceSchema = z
  .object({
    model: path.nullable().default(null).describe('Reward model directory (trained with `alignlab train rm`).'),
    function: z.string().min(1).nullable().default(null).describe('A reward function id (e.g. "sentiment" for the VADER gold reward).'),
  })
  .strict()
  .refine((r) => (r.model === null) !== (r.function === null), { message: 'set exactly one of "model" and "function"' });

const PpoSchema = z
  .object({
    reward: RewardSourceSchema,
    num_ppo_epochs: posInt.default(4).describe('TRL PPOConfig.num_ppo_epochs (4): passes over each rollout batch.'),
    num_mini_batches: posInt.default(1).describe('TRL OnPolicyConfig.num_mini_batches (1): minibatches per epoch.'),
    kl_coef: z.number().min(0).default(PPO_DEFAULTS.klCoef).describe('TRL PPOConfig.kl_coef (0.05): initial β of the per-token KL penalty.'),
    kl_estimator: z.enum(['k1', 'k3']).default(PPO_DEFAULTS.klEstimator as 'k1' | 'k3').describe("TRL PPOConfig.kl_estimator ('k1'); k3 is Schulman's low-variance estimator (http://joschu.net/blog/kl-approx.html)."),
    kl_target: z.number().positive().nullable().default(null).describe('Adaptive KL target (Ziegler et al. 2019 §2.2; TRL ≤0.11 `target` 6); null = fixed β.'),
    kl_horizon: z.number().positive().default(10000).describe('Adaptive KL horizon (Ziegler et al. 2019; TRL ≤0.11 `horizon` 10000).'),
    gamma: prob.default(PPO_DEFAULTS.gamma).describe('TRL PPOConfig.gamma (1.0): discount.'),
    lam: prob.default(PPO_DEFAULTS.lam).describe('TRL PPOConfig.lam (0.95): GAE λ (Schulman et al. 2016).'),
    cliprange: z.number().positive().default(PPO_DEFAULTS.clipRange).describe('TRL PPOConfig.cliprange (0.2): policy ratio clip ε (Schulman et al. 2017).'),
    cliprange_value: z.number().positive().default(PPO_DEFAULTS.clipRangeValue).describe('TRL PPOConfig.cliprange_value (0.2): value clip.'),
    vf_coef: z.number().min(0).default(PPO_DEFAULTS.vfCoef).describe('TRL PPOConfig.vf_coef (0.1): value-loss weight.'),
    whiten_rewards: z.boolean().default(false).describe('TRL PPOConfig.whiten_rewards (false).'),
    missing_eos_penalty: z.number().min(0).nullable().default(null).describe('TRL OnPolicyConfig.missing_eos_penalty (None): subtracted from the score of responses without EOS (Huang et al. 2024).'),
    response_length: posInt.default(53).describe('TRL OnPolicyConfig.response_length (53): tokens sampled per response.'),
    temperature: z.number().positive().default(0.7).describe('TRL OnPolicyConfig.temperature (0.7).'),
    ref_ema_alpha: prob.default(1).describe('EMA reference: ref ← α·ref + (1−α)·policy per iteration (Xu et al. 2024); 1 = frozen reference.'),
    value_model: z.enum(['separate', 'shared']).default('separate').describe("Value model: 'separate' (TRL: its own trunk, initialised from the reward model, or from the policy when the reward is a function) or 'shared' (a value head on the policy's trunk)."),
  })
  .strict();

const GrpoSchema = z
  .object({
    reward: RewardSourceSchema,
    num_generations: z.number().int().min(2).default(8).describe('TRL GRPOConfig.num_generations (8): completions per prompt (the group).'),
    beta: z.number().min(0).default(GRPO_DEFAULTS.beta).describe('β of the k3 KL term (DeepSeekMath 0.04; TRL ≥0.19 uses 0 = no reference model).'),
    epsilon: z.number().positive().default(GRPO_DEFAULTS.epsilon).describe('TRL GRPOConfig.epsilon (0.2): ratio clip.'),
    epsilon_high: z.number().positive().nullable().default(null).describe('TRL GRPOConfig.epsilon_high (None = epsilon); DAPO (Yu et al. 2025) uses 0.28.'),
    loss_type: z.enum(['grpo', 'bnpo', 'dr_grpo']).default(GRPO_DEFAULTS.lossType).describe('Loss aggregation: grpo (per sequence), bnpo (per token), dr_grpo (Liu et al. 2025).'),
    scale_rewards: z.boolean().default(GRPO_DEFAULTS.scaleRewards).describe('TRL GRPOConfig.scale_rewards: divide advantages by the group std (Dr. GRPO turns it off).'),
    num_iterations: posInt.default(1).describe('TRL GRPOConfig.num_iterations (1): μ, updates per generation batch.'),
    max_completion_length: posInt.default(256).describe('TRL GRPOConfig.max_completion_length (256).'),
    temperature: z.number().positive().default(1.0).describe('TRL GRPOConfig.temperature (1.0).'),
  })
  .strict();

const RlooSchema = z
  .object({
    reward: RewardSourceSchema,
    num_generations: z.number().int().min(2).default(2).describe('k: completions per prompt (TRL RLOOConfig.num_generations 2, formerly rloo_k).'),
    kl_coef: z.number().min(0).default(RLOO_DEFAULTS.klCoef).describe('KL penalty coefficient in the reward (TRL RLOOConfig kl_coef / beta 0.05).'),
    cliprange: z.number().positive().default(RLOO_DEFAULTS.clipRange).describe('Ratio clip ε (TRL cliprange / epsilon 0.2).'),
    normalize_advantages: z.boolean().default(RLOO_DEFAULTS.normalizeAdvantage).describe('TRL RLOOConfig.normalize_advantages (false).'),
    num_iterations: posInt.default(1).describe('TRL RLOOConfig.num_iterations (1): updates per generation batch.'),
    max_completion_length: posInt.default(256).describe('TRL RLOOConfig.max_completion_length (256).'),
    temperature: z.number().positive().default(1.0).describe('TRL RLOOConfig.temperature (1.0).'),
  })
  .strict();

const SECTIONS = { sft: SftSchema, rm: RmSchema, dpo: DpoSchema, ppo: PpoSchema, grpo: GrpoSchema, rloo: RlooSchema } as const;

/** The schema of one algorithm's config file (all sections are rejected except its own). */
export function configSchema<A extends Algorithm>(algorithm: A) {
  const section = SECTIONS[algorithm] as unknown as z.ZodType;
  // The section may be omitted when every key has a default (sft, rm, dpo); ppo/grpo/rloo need `reward`.
  const optionalSection = algorithm === 'sft' || algorithm === 'rm' || algorithm === 'dpo';
  return z
    .object({ ...commonShape, [algorithm]: optionalSection ? section.default(section.parse({}) as never) : section })
    .strict() as unknown as z.ZodType<RawConfig<A>>;
}

type Common = z.output<z.ZodObject<typeof commonShape>>;
type Sections = { [K in Algorithm]: z.output<(typeof SECTIONS)[K]> };
type RawConfig<A extends Algorithm> = Common & { [K in A]: Sections[K] };

/** A fully resolved config: every default filled in, paths absolute. */
export type TrainConfig<A extends Algorithm = Algorithm> = {
  [K in A]: Omit<Common, 'learning_rate' | 'output_dir' | 'run_name' | 'algorithm'> & {
    algorithm: K;
    learning_rate: number;
    output_dir: string;
    run_name: string;
    /** The config file it came from. */
    source: string;
  } & { [S in K]: K extends 'dpo' ? Sections['dpo'] & { beta: number } : Sections[S] };
}[A];

// ---- errors with file, line and field -------------------------------------------------------

export class ConfigFileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | null,
    readonly field: string | null,
    readonly why: string,
  ) {
    super(`${file}${line ? `:${line}` : ''}: ${field ? `field "${field}": ` : ''}${why}`);
    this.name = 'ConfigFileError';
  }
}

/**
 * The line of the key (or sequence item) at `path`; for a missing key, the line of the nearest existing
 * ancestor. With `key`, the line of that key inside the mapping at `path` (an unknown key).
 */
function lineOf(doc: Document, lc: LineCounter, path: (string | number)[], key?: string): number | null {
  const full = key !== undefined ? [...path, key] : path;
  const at = (p: (string | number)[]) => (p.length === 0 ? doc.contents : doc.getIn(p, true)) as Node | null | undefined;
  const line = (n: Node | null | undefined) => (n?.range ? lc.linePos(n.range[0]).line : null);
  for (let n = full.length; n > 0; n--) {
    const parent = at(full.slice(0, n - 1));
    const k = full[n - 1];
    if (isMap(parent)) {
      const pair = parent.items.find((it) => isScalar(it.key) && it.key.value === k);
      const l = line(pair?.key as Node | undefined);
      if (l !== null) return l;
    } else if (isSeq(parent) && typeof k === 'number') {
      const l = line(parent.items[k] as Node | undefined);
      if (l !== null) return l;
    }
  }
  return line(doc.contents as Node | null);
}

function fieldName(path: PropertyKey[]): string {
  return path.map(String).join('.');
}

/** Parse and validate a config file for `algorithm` (YAML or JSON). Throws ConfigFileError. */
export function parseConfigFile<A extends Algorithm>(file: string, algorithm: A): RawConfig<A> {
  if (!existsSync(file)) throw new ConfigFileError(file, null, null, 'does not exist');
  const text = readFileSync(file, 'utf-8');
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw new ConfigFileError(file, lc.linePos(e.pos[0]).line, null, `is not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const raw = doc.toJS() ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigFileError(file, 1, null, 'must be a mapping of keys to values');
  if (raw.algorithm !== undefined && raw.algorithm !== algorithm && (ALGORITHMS as readonly string[]).includes(raw.algorithm))
    throw new ConfigFileError(file, lineOf(doc, lc, ['algorithm']), 'algorithm', `is "${raw.algorithm}" but the command trains "${algorithm}"`);
  const other = ALGORITHMS.filter((a) => a !== algorithm && a in raw);
  if (other.length)
    throw new ConfigFileError(file, lineOf(doc, lc, [other[0]!]), other[0]!, `is a section for "${other[0]}" but this config trains "${algorithm}"`);
  const r = configSchema(algorithm).safeParse(raw);
  if (r.success) {
    if (raw.model?.init) {
      try {
        configFromHF(raw.model.init, 'model.init');
      } catch (e) {
        throw new ConfigFileError(file, lineOf(doc, lc, ['model', 'init']), null, (e as Error).message);
      }
    }
    return r.data;
  }
  const issue = r.error.issues[0]!;
  const p = issue.path as (string | number)[];
  if (issue.code === 'unrecognized_keys') {
    const key = (issue as { keys: string[] }).keys[0]!;
    const known = Object.keys(pathSchemaKeys(algorithm, p));
    return fail(file, lineOf(doc, lc, p, key), fieldName([...p, key]), `is not a known key${known.length ? ` (known here: ${known.join(', ')})` : ''}`);
  }
  let why = issue.message;
  if (/received undefined$/.test(why)) why = 'is required';
  else if (issue.code === 'invalid_union' && p.length === 1 && p[0] === 'model')
    why = 'must be { dir: MODEL_DIR } or { init: {HF config.json keys}, tokenizer: TOKENIZER_JSON }';
  return fail(file, lineOf(doc, lc, p), p.length ? fieldName(p) : null, why);
}

function fail(file: string, line: number | null, field: string | null, why: string): never {
  throw new ConfigFileError(file, line, field, why);
}

/** Keys allowed at a path (for "known here" hints). */
function pathSchemaKeys(algorithm: Algorithm, p: (string | number)[]): Record<string, unknown> {
  if (p.length === 0) return { ...commonShape, [algorithm]: true };
  if (p.length === 1 && p[0] === 'data') return DataSchema.shape;
  if (p.length === 1 && p[0] === algorithm) return (SECTIONS[algorithm] as unknown as { shape?: Record<string, unknown> }).shape ?? {};
  return {};
}

// ---- resolution ------------------------------------------------------------------------------

/**
 * Read, validate and resolve a config: fill the defaults that depend on the algorithm (learning_rate,
 * DPO/SimPO β), name the run directory, and make paths absolute (relative to the config file).
 */
export function resolveConfig<A extends Algorithm>(file: string, algorithm: A): TrainConfig<A> {
  const raw = parseConfigFile(file, algorithm) as RawConfig<Algorithm> & Record<string, unknown>;
  const base = dirname(resolve(file));
  const abs = (p: string) => resolve(base, p);
  const stem = basename(file, extname(file));
  const output_dir = raw.output_dir ? abs(raw.output_dir) : resolve('runs', `${algorithm}-${stem}`);
  const cfg: Record<string, unknown> = {
    ...raw,
    algorithm,
    source: resolve(file),
    learning_rate: raw.learning_rate ?? LEARNING_RATE_DEFAULTS[algorithm],
    output_dir,
    run_name: raw.run_name ?? basename(output_dir),
    model: 'dir' in raw.model ? { dir: abs(raw.model.dir) } : { init: raw.model.init, tokenizer: abs(raw.model.tokenizer) },
    data: {
      ...raw.data,
      train: abs(raw.data.train),
      eval: raw.data.eval ? abs(raw.data.eval) : null,
      chat_template: raw.data.chat_template ? abs(raw.data.chat_template) : null,
    },
  };
  if (algorithm === 'dpo') {
    const d = raw.dpo as Sections['dpo'];
    cfg.dpo = {
      ...d,
      beta: d.beta ?? (d.loss_type === 'simpo' ? SIMPO_DEFAULTS.beta : DPO_DEFAULTS.beta),
      ref_model: d.ref_model ? abs(d.ref_model) : null,
    };
  }
  for (const a of ['ppo', 'grpo', 'rloo'] as const) {
    const s = raw[a] as { reward: { model: string | null } } | undefined;
    if (algorithm === a && s?.reward.model) cfg[a] = { ...s, reward: { ...s.reward, model: abs(s.reward.model) } };
  }
  return cfg as TrainConfig<A>;
}

/** Write <runDir>/config.resolved.json (what the run actually used). Returns its path. */
export function saveResolved(runDir: string, cfg: TrainConfig): string {
  mkdirSync(runDir, { recursive: true });
  const f = join(runDir, 'config.resolved.json');
  writeFileSync(f, JSON.stringify(cfg, null, 2) + '\n');
  return f;
}

/** Updates of the run: max_steps, or num_train_epochs over `trainRows` rows. */
export function resolveSteps(cfg: TrainConfig, trainRows: number): number {
  if (cfg.max_steps !== null) return cfg.max_steps;
  const perUpdate = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps;
  const perEpoch = Math.floor(trainRows / perUpdate);
  if (perEpoch < 1) throw new Error(`${cfg.source}: ${trainRows} training rows are fewer than one update of ${perUpdate} rows; lower per_device_train_batch_size or set max_steps`);
  return Math.max(1, Math.ceil(cfg.num_train_epochs * perEpoch));
}

/** The loop options a config determines (pass to `train` with params, lossFn and data). */
export function loopOptions(cfg: TrainConfig, steps: number): Pick<
  TrainOptions<unknown, unknown>,
  'runDir' | 'steps' | 'gradAccum' | 'optimizer' | 'schedule' | 'maxGradNorm' | 'evalEvery' | 'checkpointEvery' | 'keepCheckpoints' | 'seed' | 'runId' | 'kind' | 'config'
> {
  return {
    runDir: cfg.output_dir,
    runId: cfg.run_name,
    kind: cfg.algorithm,
    config: cfg,
    steps,
    gradAccum: cfg.gradient_accumulation_steps,
    optimizer: { lr: cfg.learning_rate, b1: cfg.adam_beta1, b2: cfg.adam_beta2, eps: cfg.adam_epsilon, weightDecay: cfg.weight_decay },
    // HF: warmup_steps when > 0, else ceil(warmup_ratio · steps).
    schedule: { kind: cfg.lr_scheduler_type, warmupSteps: cfg.warmup_steps > 0 ? cfg.warmup_steps : Math.ceil(cfg.warmup_ratio * steps), minLrRatio: cfg.min_lr_ratio },
    maxGradNorm: cfg.max_grad_norm && cfg.max_grad_norm > 0 ? cfg.max_grad_norm : null,
    evalEvery: cfg.eval_steps ?? 0,
    checkpointEvery: cfg.save_steps,
    keepCheckpoints: cfg.save_total_limit,
    seed: cfg.seed,
  };
}

/**
 * The config a run recorded (<runDir>/config.resolved.json), validated against the same schema, for
 * `--resume`: the run continues with exactly what it started with. The output directory becomes `runDir`
 * (the run may have been moved since).
 */
export function loadResolvedConfig<A extends Algorithm>(runDir: string, algorithm: A): TrainConfig<A> {
  const file = join(resolve(runDir), 'config.resolved.json');
  if (!existsSync(file)) throw new ConfigFileError(file, null, null, `does not exist: ${runDir} is not a run directory of alignlab train`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf-8'));
  } catch (e) {
    throw new ConfigFileError(file, null, null, `is not valid JSON (${(e as Error).message})`);
  }
  if (raw.algorithm !== algorithm)
    throw new ConfigFileError(file, null, 'algorithm', `is "${String(raw.algorithm)}": this run was trained with \`alignlab train ${String(raw.algorithm)}\`, not ${algorithm}`);
  const { source, ...rest } = raw;
  // Keys of earlier versions that no longer exist: `dpo.precompute_ref_log_probs` (the reference's log-probs are
  // always precomputed; the key changed nothing). Dropped so that runs recorded with them still resume.
  const dpo = rest.dpo as Record<string, unknown> | undefined;
  if (dpo && 'precompute_ref_log_probs' in dpo) delete dpo.precompute_ref_log_probs;
  const r = configSchema(algorithm).safeParse(rest);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ConfigFileError(file, null, issue.path.length ? fieldName(issue.path) : null, issue.message);
  }
  const out_dir = resolve(runDir);
  const cfg = { ...(r.data as Record<string, unknown>), source: typeof source === 'string' ? source : file, output_dir: out_dir };
  return cfg as TrainConfig<A>;
}
