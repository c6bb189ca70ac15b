// `alignlab study pretrain`: pretrain the study's base policy once, longer than a study can afford, and write it
// as an HF model directory with PROVENANCE.json beside the weights. The package ships the result (assets/base/),
// and `study` / `study --quick` start from it (config `base: shipped`, the default).
//
// The measurements that say whether the base is worth aligning are taken here, on the same split and vocabulary:
//   - held-out loss of the model, in nats per predicted token of held-out sentences ([bos] words [eos], the first
//     `context` tokens of each; the prediction of <bos> itself is not counted);
//   - the same number for an interpolated Kneser–Ney n-gram fitted on the same training sentences, its discounts and
//     order tuned on the validation speeches (src/eval/metrics/ngram.ts);
//   - the <unk> rate of held-out tokens.
// The run checkpoints (resumable: run the same command again), and `--until` stops it at a wall-clock time with the
// weights it has, so a deadline never leaves nothing.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { free, initEngine } from '../engine/index.js';
import { tinyConfig, type ModelConfig } from '../formats/config.js';
import type { Params } from '../model/decoder.js';
import { initHostParams } from '../model/params.js';
import { toDevice } from '../model/weights.js';
import { LM } from '../model/lm.js';
import { Scorer } from '../model/score.js';
import { Tokenizer } from '../formats/tokenizer.js';
import { pack } from '../data/batching.js';
import { BOS, EOS, PAD, UNK } from '../data/sotu.js';
import { tuneKneserNey } from '../eval/metrics/ngram.js';
import { latestCheckpoint } from '../train/checkpoint.js';
import { trainSft } from '../train/trainers/offline.js';
import type { StudyConfig } from './config.js';
import { prepareStudyData, type StudyData } from './data.js';

/** `alignlab study pretrain` defaults: sized by measurement (bench/RESULTS.md, 2026-12-06). */
export const LONG_PRETRAIN = { steps: 1000, batchSize: 16, lr: 3e-3, warmup: 30 } as const;

/** The shipped base's folder inside the package. */
export const SHIPPED_BASE_DIR = resolve(fileURLToPath(new URL('../../assets/base', import.meta.url)));

/** The study's policy architecture for a vocabulary of `vocabLength` tokens (padded to a multiple of 8). */
export function studyModelConfig(cfg: StudyConfig, vocabLength: number): ModelConfig {
  const m = cfg.model;
  return tinyConfig('llama', {
    vocabSize: Math.ceil(vocabLength / 8) * 8, hiddenSize: m.hidden, numLayers: m.layers, numHeads: m.heads, numKvHeads: m.kvHeads, headDim: m.hidden / m.heads,
    intermediateSize: m.intermediate, maxPositions: m.context, tieEmbeddings: true, bosTokenId: BOS, eosTokenId: EOS, padTokenId: PAD,
  });
}

export interface LossOnSentences {
  /** Mean negative log-likelihood per predicted token, nats. */
  perToken: number;
  tokens: number;
  /** Tokens beyond the context that were cut off (not scored by either model). */
  truncatedTokens: number;
}

/** The first `context` tokens of each sentence: what the model can score in one window. */
export const truncateSentences = (sentences: readonly number[][], context: number) => sentences.map((s) => s.slice(0, context));

/** Held-out loss of a model: mean −log p of every token after the first of each (truncated) sentence. */
export async function sentenceLoss(cfg: ModelConfig, params: Params, sentences: readonly number[][], batch = 64): Promise<LossOnSentences> {
  const cut = truncateSentences(sentences, cfg.maxPositions);
  const scorer = new Scorer(cfg);
  let nats = 0, tokens = 0;
  try {
    // Sorted by length so a batch pads little; order does not change a sum.
    const order = cut.map((_, i) => i).sort((a, b) => cut[a]!.length - cut[b]!.length);
    for (let i = 0; i < order.length; i += batch) {
      const rows = order.slice(i, i + batch).map((j) => cut[j]!).filter((s) => s.length >= 2);
      for (const r of await scorer.score(params, rows)) {
        for (const lp of r.logprobs) nats -= lp;
        tokens += r.logprobs.length;
      }
      await new Promise((r) => setImmediate(r)); // let Ctrl-C in between batches
    }
  } finally {
    scorer.dispose();
  }
  const all = sentences.reduce((a, s) => a + Math.max(0, s.length - 1), 0);
  return { perToken: nats / tokens, tokens, truncatedTokens: all - tokens };
}

export interface NgramBaseline {
  order: number;
  discounts: number[];
  validLoss: number;
  /** Held-out nats per token of the validation-chosen order, and of each order tried. */
  heldOutLoss: number;
  byOrder: { order: number; discounts: number[]; validLoss: number; heldOutLoss: number }[];
}

/**
 * Held-out sentences scored for the loss comparison: every 4th (≈ 1,400 sentences, 47k tokens: the standard error of
 * a mean loss is then about 0.01 nats), because a full pass costs many minutes of one shared core.
 */
export const HELD_OUT_EVERY = 4;
export const everyKth = <T>(xs: readonly T[], k: number): T[] => xs.filter((_, i) => i % k === 0);

/** Kneser–Ney n-grams (orders 2..4) on the base's training sentences, tuned on validation, scored on held-out. */
export function ngramBaseline(data: StudyData, context: number, heldOut: readonly number[][] = everyKth(data.heldOutSentences, HELD_OUT_EVERY), orders = [2, 3, 4]): NgramBaseline {
  const held = truncateSentences(heldOut, context);
  const valid = truncateSentences(data.validSentences, context);
  const byOrder = orders.map((order) => {
    const t = tuneKneserNey(data.trainSentences, valid, { orders: [order], vocabSize: data.vocab.length, bosId: BOS });
    return { order, discounts: t.discounts, validLoss: t.validLoss, heldOutLoss: t.model.score(held).perToken };
  });
  const best = byOrder.reduce((a, b) => (b.validLoss < a.validLoss ? b : a));
  return { order: best.order, discounts: best.discounts, validLoss: best.validLoss, heldOutLoss: best.heldOutLoss, byOrder };
}

/** Share of held-out tokens (words and punctuation, not the added <bos>/<eos>) that are <unk>. */
export function unkRate(sentences: readonly number[][]): number {
  let unk = 0, n = 0;
  for (const s of sentences) for (const t of s) if (t !== BOS && t !== EOS) {
    n++;
    if (t === UNK) unk++;
  }
  return unk / n;
}

export interface Provenance {
  command: string;
  gitCommit: string;
  /** Whether tracked files differed from the commit when the run started. */
  gitDirty: boolean;
  date: string;
  model: { layers: number; hidden: number; heads: number; kvHeads: number; intermediate: number; context: number; vocabSize: number; parameters: number };
  training: { steps: number; batchSize: number; blockTokens: number; lr: number; warmup: number; tokensSeen: number; epochs: number; trainTokens: number; wallSeconds: number; tokensPerSecond: number; stoppedEarly: boolean; finalTrainLoss: number };
  corpus: { key: string; vocabWords: number; validFraction: number; trainSentences: number; validSentences: number; heldOutSentences: number };
  /** loss and the n-gram's are on `sentences` held-out sentences (every HELD_OUT_EVERY-th); unkRate on all of them;
   *  validLoss = the training loop's loss on packed validation blocks at the end. */
  heldOut: { loss: number; sentences: number; tokens: number; truncatedTokens: number; unkRate: number; validLoss: number };
  ngram: NgramBaseline;
  /** Set when this base continued an earlier one (`--init`): that base's provenance. `training.steps`, `tokensSeen`,
   *  `epochs` and `wallSeconds` then count both stages; lr, warmup and batch size are this stage's. */
  init?: { dir: string; provenance: Provenance };
}

export interface PretrainOptions {
  config: StudyConfig;
  /** Where the model directory goes (refused if it already holds a model; the run's checkpoints live in <out>/../<name>-run). */
  out: string;
  cacheDir: string;
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  /** Stop at this time with the weights trained so far (still written, marked stoppedEarly). */
  until?: Date;
  /** Start from this earlier `study pretrain` output (same model and vocabulary) instead of random weights:
   *  a new schedule on top of it. Its provenance is kept under `init`, and tokens/steps/wall time accumulate. */
  init?: string;
  checkpointEvery?: number;
  command?: string;
  device?: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** `git <args>`'s output, or 'unknown' outside a repository (provenance records, never a failure). */
export function git(args: string[]): string {
  try {
    return execFileSync('git', args, { encoding: 'utf-8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

/** Pretrain the base, measure it against the n-gram, write <out>/{model.safetensors, config.json, tokenizer.json, PROVENANCE.json}. */
export async function pretrainBase(o: PretrainOptions): Promise<Provenance> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const out = resolve(o.out);
  if (existsSync(join(out, 'config.json'))) throw new Error(`${out}: already holds a model; choose another --out or move it away first`);
  const runDir = `${out}-run`;
  await initEngine(o.device);
  const started = Date.now();
  const gitCommit = git(['rev-parse', 'HEAD']);
  const gitDirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
  const data = prepareStudyData(o.config, o.cacheDir);
  const modelCfg = studyModelConfig(o.config, data.vocab.length);
  const T = modelCfg.maxPositions;
  const blocks = pack(data.trainSentences, T, EOS).map((ids) => ({ ids }));
  const validBlocks = pack(data.validSentences, T, EOS).slice(0, 8 * o.batchSize).map((ids) => ({ ids }));
  const trainTokens = data.trainSentences.reduce((a, s) => a + s.length, 0);
  log(`pretrain: ${data.vocab.length} tokens in the vocabulary, ${data.trainSentences.length} training sentences (${trainTokens} tokens), ` +
    `${data.validSentences.length} validation, ${data.heldOutSentences.length} held-out; ${modelCfg.numLayers}×${modelCfg.hiddenSize} llama, ${o.steps} steps × ${o.batchSize}×${T}`);
  const resume = latestCheckpoint(runDir) !== null;
  if (resume) log(`pretrain: resuming from ${latestCheckpoint(runDir)!.dir}`);
  const init = o.init ? await initialWeights(o.init, modelCfg, data.vocab) : undefined;
  if (init) log(`pretrain: starting from ${init.dir} (${init.provenance.training.steps} steps, ${(init.provenance.training.tokensSeen / 1e6).toFixed(2)}M tokens, held-out ${init.provenance.heldOut.loss.toFixed(3)})`);
  const { params, summary } = await trainSft({
    cfg: modelCfg,
    params: init ? init.params : toDevice(initHostParams(modelCfg, o.config.seed)),
    train: blocks,
    eval: validBlocks,
    batchSize: o.batchSize,
    T,
    padId: PAD,
    steps: o.steps,
    runDir,
    resume,
    seed: o.config.seed,
    optimizer: { lr: o.lr, weightDecay: 0.1 },
    schedule: { kind: 'cosine', warmupSteps: o.warmup, minLrRatio: 0.1 },
    evalEvery: Math.max(1, Math.round(o.steps / 10)),
    checkpointEvery: o.checkpointEvery ?? 50,
    kind: 'pretrain',
    store: false,
    progress: 'auto',
    signal: o.signal,
    onStep: (s) => {
      if (s.step % 25 === 0) log(`pretrain: step ${s.step}/${o.steps} loss ${s.metrics.loss?.toFixed(3)}${s.metrics.eval_loss !== undefined ? ` valid ${s.metrics.eval_loss.toFixed(3)}` : ''} (${((Date.now() - started) / 60000).toFixed(1)} min)`);
      return o.until && Date.now() >= o.until.getTime() ? 'stop' : undefined;
    },
  });
  if (o.signal?.aborted) {
    free(params);
    throw new Error(`pretrain: interrupted at step ${summary.step}; checkpoint in ${runDir}: run the same command to continue`);
  }
  const stoppedEarly = summary.step < o.steps;
  log(`pretrain: ${summary.step} steps done${stoppedEarly ? ' (stopped early)' : ''}; measuring held-out loss, n-gram baseline, <unk> rate`);
  const tokenizer = Tokenizer.fromJSON(data.tokenizerJson, data.tokenizerConfig);
  const lm = new LM(modelCfg, params, tokenizer, 'alignlab-sotu-base');
  const heldSentences = everyKth(data.heldOutSentences, HELD_OUT_EVERY);
  const held = await sentenceLoss(modelCfg, lm.params, heldSentences);
  const ngram = ngramBaseline(data, T, heldSentences);
  const prior = init?.provenance.training;
  const tokensSeen = summary.totalTokens + (prior?.tokensSeen ?? 0);
  const provenance: Provenance = {
    command: o.command ?? 'alignlab study pretrain',
    gitCommit,
    gitDirty,
    date: new Date().toISOString(),
    model: { ...o.config.model, vocabSize: modelCfg.vocabSize, parameters: countParams(lm.params) },
    training: {
      steps: summary.step + (prior?.steps ?? 0), batchSize: o.batchSize, blockTokens: T, lr: o.lr, warmup: o.warmup, tokensSeen, epochs: tokensSeen / trainTokens, trainTokens,
      wallSeconds: (Date.now() - started) / 1000 + (prior?.wallSeconds ?? 0), tokensPerSecond: summary.tokensPerSec, stoppedEarly, finalTrainLoss: summary.finalMetrics.loss ?? NaN,
    },
    ...(init ? { init: { dir: init.dir, provenance: init.provenance } } : {}),
    corpus: { key: data.corpus.key, vocabWords: o.config.corpus.vocabSize, validFraction: data.validSentences.length / (data.validSentences.length + data.trainSentences.length), trainSentences: data.trainSentences.length, validSentences: data.validSentences.length, heldOutSentences: data.heldOutSentences.length },
    heldOut: { loss: held.perToken, sentences: heldSentences.length, tokens: held.tokens, truncatedTokens: held.truncatedTokens, unkRate: unkRate(data.heldOutSentences), validLoss: summary.finalMetrics.eval_loss ?? NaN },
    ngram,
  };
  mkdirSync(out, { recursive: true });
  await lm.save(out);
  const tmp = join(out, `PROVENANCE.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(provenance, null, 2) + '\n');
  renameSync(tmp, join(out, 'PROVENANCE.json'));
  lm.dispose();
  log(`pretrain: held-out ${held.perToken.toFixed(3)} nats/token vs ${ngram.order}-gram Kneser–Ney ${ngram.heldOutLoss.toFixed(3)} ` +
    `(${ngram.byOrder.map((b) => `${b.order}-gram ${b.heldOutLoss.toFixed(3)}`).join(', ')}); <unk> ${(100 * provenance.heldOut.unkRate).toFixed(1)}% → ${out}`);
  return provenance;
}

/** An earlier base's weights, checked to match this model and vocabulary exactly. */
async function initialWeights(dir: string, cfg: ModelConfig, vocab: readonly string[]): Promise<{ dir: string; params: Params; provenance: Provenance }> {
  const abs = resolve(dir);
  const provenance = readProvenance(abs);
  if (!existsSync(join(abs, 'config.json')) || !provenance) throw new Error(`${abs}: --init needs a \`study pretrain\` output (config.json and PROVENANCE.json)`);
  const lm = await LM.load(abs);
  const diff = lm.cfg.maxPositions !== cfg.maxPositions ? 'maxPositions' : baseMismatch(lm, cfg, vocab);
  if (diff) {
    lm.dispose();
    throw new Error(`${join(abs, 'config.json')}: field ${diff}: --init must match this study's model and corpus config`);
  }
  return { dir: abs, params: lm.params, provenance };
}

/** The first architecture field (or 'vocabulary') in which a saved base differs from the study's model; undefined if none. */
export function baseMismatch(lm: LM, cfg: ModelConfig, vocab: readonly string[]): string | undefined {
  const diff = (['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'intermediateSize'] as const).find((k) => lm.cfg[k] !== cfg[k]);
  if (diff) return diff;
  const saved = (lm.tokenizer.json.model as { vocab?: Record<string, number> }).vocab ?? {};
  return Object.keys(saved).length !== vocab.length || vocab.some((w, i) => saved[w] !== i) ? 'vocabulary' : undefined;
}

function countParams(p: Params): number {
  let n = 0;
  const walk = (x: unknown): void => {
    if (x && typeof x === 'object' && 'shape' in x && Array.isArray((x as { shape: unknown }).shape)) n += ((x as { shape: number[] }).shape).reduce((a, b) => a * b, 1);
    else if (x && typeof x === 'object') for (const v of Object.values(x)) walk(v);
  };
  walk(p);
  return n;
}

/** PROVENANCE.json of a base directory, or null when it has none. */
export function readProvenance(dir: string): Provenance | null {
  const f = join(dir, 'PROVENANCE.json');
  if (!existsSync(f)) return null;
  try {
    return JSON.parse(readFileSync(f, 'utf-8')) as Provenance;
  } catch (e) {
    throw new Error(`${f}: not valid JSON (${(e as Error).message})`);
  }
}
