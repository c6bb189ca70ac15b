// Alignment-step cost on the study's small model: a DPO step and a PPO iteration (rollout + update).
// Tokens/s, peak memory (RSS), and the share of time in generation, forward and backward. PyTorch's DPO step on
// the same shapes (bench/baselines/torch_step.py --dpo) is the baseline, measured in the same run.
//
//   node --import tsx bench/align-step.ts                       # DPO + PPO, ours with 1 and 2 threads
//
// Last line: `ratio` = our DPO step at our fastest thread count / PyTorch's at its fastest (1 or 2 threads), medians.
//   node --import tsx bench/align-step.ts --only dpo --threads 1
//
// Model: the study's policy (src/study/config.ts defaults): Llama, L=2 C=128 H=4 KV heads 2 MLP 352, context 32,
// V = --vocab (2048 here: the study's 2,000 words + specials + punctuation, ≈2,040), untied head, random init.
// Data: random token ids (cost does not depend on the values).
//
// DPO: src/train/trainers/offline.ts trainDpo end to end (sigmoid, β 0.1, the study's batch of 32 pairs, T=24, reference
// log-probs precomputed once before the first step, as torch_step.py does). Every row is a full 24 tokens (12 prompt
// + 12 completion) so that our token count equals PyTorch's: 2·B·T per step (chosen and rejected in one [2B, T]
// batch). Step time = median interval between steps after `warmup` steps (the last step, which writes the final
// checkpoint, is left out).
// PPO: src/train/trainers/ppo.ts trainPpo with the study's settings (32 completions per rollout, 12 new tokens at
// temperature 0.7, 2 minibatches × 4 epochs = 8 updates, separate value model) and a toy token reward (the gold
// reward's cost is not what is measured). Iteration time = median interval between iterations after the first one
// (which compiles everything). Phases come from the trainer's own cost counters (generation, scoring forwards,
// reward, update), read at iteration boundaries so that the first iteration is left out.
//
// Forward / backward / optimizer shares of an update (1-thread runs only): every wasm kernel jax-js dispatches is
// timed (single-threaded, a dispatch runs the kernel to completion), and each update program's kernel sequence (jax-js
// runs it in trace order) is split where it changes phase: the forward ends at the first scalar reduction after the
// first reduction over the vocabulary (the loss, after the log-softmax); every later scalar reduction (the per-leaf
// squared norms of the gradient clipping) and everything after the last of them (clip scale, AdamW updates) is the
// optimizer; the rest is the backward. Approximate at the edges (a few small kernels), exact in the big ones.
// Time outside kernels (JS dispatch, host work) is reported as "host". A jitted forward-only program is NOT used for
// the split: jax-js compiles it differently from the forward half of a gradient program (see RESULTS.md).
//
// Peak RSS = the child process's maxRSS (node + jax-js + model); `after init` is the same process before any
// model exists. Each (part, threads) runs in its own child process, one at a time.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags } from '../src/cli/args.js';
import { bestRow, bestVsBest, deviceInfo, report, runBaseline, summarize, torchBaseline, type BaselineResult, type Row } from './lib.js';

const flags = parseFlags(process.argv.slice(2), {
  only: { type: 'string', default: 'both', help: 'dpo | ppo | both' },
  threads: { type: 'string', default: '1,2' },
  vocab: { type: 'number', default: 2048 },
  warmup: { type: 'number', default: 2, help: 'DPO steps excluded from timing (at least 1)' },
  steps: { type: 'number', default: 8, help: 'DPO steps timed' },
  iterations: { type: 'number', default: 4, help: 'PPO iterations (the first one is excluded from timing)' },
  baseline: { type: 'boolean', default: true },
  'torch-threads': { type: 'string', default: '1,2', help: 'PyTorch thread counts for the DPO baseline (the ratio takes the fastest)' },
  child: { type: 'string', default: '' },
});

/** Seconds (or ms) of one update split by phase; `host` is the time outside kernels. */
interface Split { forward: number; backward: number; optimizer: number; host: number }

interface DpoResult {
  part: 'dpo';
  threads: number;
  tokensPerStep: number;
  stepMs: { median: number; min: number; samples: number[] };
  /** Mean ms per step by phase (1-thread runs), or null. */
  split: Split | null;
  rssAfterInitMB: number;
  peakRssMB: number;
  loss: [number, number];
}

interface PpoResult {
  part: 'ppo';
  threads: number;
  iterationMs: { median: number; min: number; samples: number[] };
  /** Seconds per iteration, steady state (first iteration excluded). */
  phases: { generation: number; forward: number; reward: number; update: number; other: number };
  /** The update's seconds per iteration split by phase (1-thread runs), or null. */
  updateSplit: Split | null;
  generatedTokensPerIter: number;
  processedTokensPerIter: number;
  updatesPerIter: number;
  rssAfterInitMB: number;
  peakRssMB: number;
}

const rssMB = () => process.memoryUsage().rss / 2 ** 20;
const peakMB = () => process.resourceUsage().maxRSS / 1024;

async function studyModel() {
  const { resolveStudyConfig } = await import('../src/study/config.js');
  const { tinyConfig } = await import('../src/formats/config.js');
  const s = resolveStudyConfig();
  const m = s.model;
  const cfg = tinyConfig('llama', {
    vocabSize: flags.vocab, hiddenSize: m.hidden, numLayers: m.layers, numHeads: m.heads, numKvHeads: m.kvHeads, headDim: m.hidden / m.heads,
    intermediateSize: m.intermediate, maxPositions: m.context, tieEmbeddings: false, normEps: 1e-5, bosTokenId: 1, eosTokenId: 2, padTokenId: 0,
  });
  return { study: s, cfg };
}

// ---- kernel timer (single-threaded jax-js only) ---------------------------------------------------

interface KernelRec { ms: number; scalarReduction: boolean; reductionSize: number }

/**
 * Times every kernel the wasm backend dispatches, through jax-js's internal getBackend (not public API: found by
 * name in its dist chunk, as shared/ENGINE.md §1 does for buffer counting). Returns null, and the bench goes on
 * without the split, if that internal is not found.
 */
async function kernelTimer(): Promise<{ start(): void; stop(): KernelRec[] } | null> {
  try {
    const dist = new URL('.', import.meta.resolve('@jax-js/jax')).pathname;
    const chunk = readdirSync(dist).find((f) => /^backend-.*\.js$/.test(f));
    if (!chunk) return null;
    const mod = (await import(join(dist, chunk))) as Record<string, unknown>;
    const getBackend = Object.values(mod).find((f) => typeof f === 'function' && f.name === 'getBackend') as ((d: string) => unknown) | undefined;
    const be = getBackend?.('wasm') as { dispatch?: (exe: { source: unknown }, i: number[], o: number[]) => void } | undefined;
    if (!be?.dispatch) return null;
    const orig = be.dispatch.bind(be);
    let recs: KernelRec[] | null = null;
    be.dispatch = (exe, i, o) => {
      if (!recs) return orig(exe, i, o);
      const t0 = performance.now();
      orig(exe, i, o);
      const s = exe.source as { size?: number; reduction?: { size: number } };
      recs.push({ ms: performance.now() - t0, scalarReduction: s.size === 1 && !!s.reduction, reductionSize: s.reduction?.size ?? 0 });
    };
    return {
      start: () => void (recs = []),
      stop: () => {
        const r = recs ?? [];
        recs = null;
        return r;
      },
    };
  } catch {
    return null;
  }
}

/** Split one update program's kernels into forward, backward and optimizer (see the header). V = vocabulary size. */
function splitUpdate(recs: KernelRec[], wallMs: number, V: number): Split {
  const firstV = recs.findIndex((r) => r.reductionSize === V);
  const fEnd = recs.findIndex((r, i) => i > firstV && r.scalarReduction);
  let oStart = -1;
  recs.forEach((r, i) => i > fEnd && r.scalarReduction && (oStart = i));
  const out = { forward: 0, backward: 0, optimizer: 0, host: 0 };
  recs.forEach((r, i) => {
    if (firstV < 0 || fEnd < 0 || i <= fEnd) out.forward += r.ms;
    else if (r.scalarReduction || i > oStart) out.optimizer += r.ms;
    else out.backward += r.ms;
  });
  out.host = Math.max(0, wallMs - out.forward - out.backward - out.optimizer);
  return out;
}

const addSplit = (a: Split, b: Split): Split => ({ forward: a.forward + b.forward, backward: a.backward + b.backward, optimizer: a.optimizer + b.optimizer, host: a.host + b.host });
const scaleSplit = (a: Split, k: number): Split => ({ forward: a.forward * k, backward: a.backward * k, optimizer: a.optimizer * k, host: a.host * k });

// ---- child: DPO --------------------------------------------------------------------------------

async function dpoChild(): Promise<void> {
  const { threadsInfo, checkThreads } = await import('../src/engine/threads.js'); // before @jax-js/jax
  const { blockUntilReady } = await import('@jax-js/jax');
  const { initEngine, keep, free, Rng } = await import('../src/engine/index.js');
  const { initHostParams } = await import('../src/model/params.js');
  const { toDevice } = await import('../src/model/weights.js');
  const { trainDpo } = await import('../src/train/trainers/offline.js');
  await initEngine('wasm');
  await checkThreads();
  const threads = threadsInfo().threads;
  const timer = threads === 1 ? await kernelTimer() : null;
  const rssAfterInitMB = rssMB();
  const { study, cfg } = await studyModel();
  const T = study.task.T, B = study.dpo.batchSize, half = T / 2;
  const rng = new Rng(3);
  const randIds = (n: number) => Array.from({ length: n }, () => 3 + rng.int(cfg.vocabSize - 3));
  const pairs = Array.from({ length: B * 4 }, () => ({ prompt: randIds(half), chosen: randIds(T - half), rejected: randIds(T - half) }));

  const policy = toDevice(initHostParams(cfg, 0));
  const ref = keep(policy);
  const dir = mkdtempSync(join(tmpdir(), 'alignlab-bench-dpo-'));
  const stamps: number[] = [];
  const losses: number[] = [];
  let split: Split | null = null;
  const total = flags.warmup + flags.steps + 1;
  try {
    const r = await trainDpo({
      cfg, params: policy, ref, train: pairs, runDir: dir, steps: total, batchSize: B, T, padId: 0,
      beta: 0.1, optimizer: { lr: 1e-3, b1: 0.9, b2: 0.95, weightDecay: 0.1 }, maxGradNorm: 1.0, store: false, progress: false,
      onStep: async (info) => {
        await blockUntilReady(info.params); // the step's AdamW must be done before the stamp
        const t = performance.now();
        if (timer && info.step > flags.warmup && info.step <= flags.warmup + flags.steps) {
          const s = splitUpdate(timer.stop(), t - stamps[stamps.length - 1]!, cfg.vocabSize);
          split = split ? addSplit(split, s) : s;
        }
        stamps.push(t);
        losses.push(info.loss);
        if (timer && info.step >= flags.warmup && info.step < flags.warmup + flags.steps) timer.start();
      },
    });
    free(r.params);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    free(ref);
  }
  // Intervals between step ends; drop the warm-up steps and the last one (it writes the final checkpoint).
  const intervals = stamps.slice(1).map((t, i) => t - stamps[i]!).slice(flags.warmup - 1, flags.warmup - 1 + flags.steps);
  const step = summarize(intervals);
  const out: DpoResult = {
    part: 'dpo', threads, tokensPerStep: 2 * B * T,
    stepMs: { median: step.median, min: step.min, samples: step.samples }, split: split ? scaleSplit(split, 1 / flags.steps) : null,
    rssAfterInitMB, peakRssMB: peakMB(), loss: [losses[0]!, losses[losses.length - 1]!],
  };
  console.log(JSON.stringify(out));
}

// ---- child: PPO --------------------------------------------------------------------------------

async function ppoChild(): Promise<void> {
  const { threadsInfo, checkThreads } = await import('../src/engine/threads.js'); // before @jax-js/jax
  const { initEngine, free, Rng } = await import('../src/engine/index.js');
  const { initHostParams } = await import('../src/model/params.js');
  const { toDevice } = await import('../src/model/weights.js');
  const { trainPpo } = await import('../src/train/trainers/ppo.js');
  const { RolloutEngine, OnlineSource } = await import('../src/train/trainers/online.js');
  const { tokenReward } = await import('../src/rewards/types.js');
  await initEngine('wasm');
  await checkThreads();
  const threads = threadsInfo().threads;
  const timer = threads === 1 ? await kernelTimer() : null;
  const rssAfterInitMB = rssMB();
  const { study, cfg } = await studyModel();
  const p = study.ppo, maxNew = study.task.maxNewTokens, B = p.rolloutBatch;
  const rng = new Rng(5);
  const prompts = Array.from({ length: 4 * B }, () => [1, ...Array.from({ length: 5 }, () => 3 + rng.int(cfg.vocabSize - 3))]);

  // Hooks on the trainer's own objects (the trainer is unchanged):
  // - RolloutEngine.collect receives the trainer's phase counters: keep a handle to read them at iteration ends;
  // - an update runs between OnlineSource.next returning and the next call of next (rollouts happen inside next):
  //   that bracket is where the update kernels are timed.
  type Cost = import('../src/train/trainers/online.js').OnlineCost;
  let cost: Cost | null = null;
  let iteration = 0;
  let updateSplit: Split | null = null;
  let segStart = 0;
  const collectProto = RolloutEngine.prototype as unknown as { collect: (o: { cost: Cost }) => Promise<unknown> };
  const sourceProto = OnlineSource.prototype as unknown as { next: (...a: unknown[]) => Promise<unknown> };
  const origCollect = collectProto.collect, origNext = sourceProto.next;
  const closeSegment = () => {
    if (!timer || segStart === 0) return;
    const recs = timer.stop();
    if (iteration >= 1) updateSplit = addSplit(updateSplit ?? { forward: 0, backward: 0, optimizer: 0, host: 0 }, splitUpdate(recs, performance.now() - segStart, cfg.vocabSize));
    segStart = 0;
  };
  collectProto.collect = function (this: unknown, o) {
    cost = o.cost;
    return origCollect.call(this, o);
  };
  sourceProto.next = async function (this: unknown, ...a: unknown[]) {
    closeSegment();
    const r = await origNext.apply(this, a);
    if (timer) {
      segStart = performance.now();
      timer.start();
    }
    return r;
  };
  const snaps: { t: number; c: Cost }[] = [];
  const policy = toDevice(initHostParams(cfg, 0));
  const dir = mkdtempSync(join(tmpdir(), 'alignlab-bench-ppo-'));
  let summary;
  try {
    const r = await trainPpo({
      policy: { cfg, params: policy, eosId: 2 }, prompts, reward: tokenReward((c) => c.filter((t) => t % 2 === 0).length / Math.max(1, c.length)),
      runDir: dir, iterations: flags.iterations, batchSize: B, numMiniBatches: p.miniBatches, ppoEpochs: p.epochs, maxNewTokens: maxNew,
      learningRate: p.lr, klCoef: 0.1, store: false, progress: false, seed: 1,
      onIteration: () => {
        closeSegment(); // the iteration's last update (its checkpoint and logging stay outside the kernels)
        snaps.push({ t: performance.now(), c: { ...cost! } });
        iteration++;
      },
    });
    summary = r.summary;
    free([r.policy, r.value.trunk, r.value.head]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    collectProto.collect = origCollect;
    sourceProto.next = origNext;
    free(policy);
  }
  const n = snaps.length - 1;
  if (n < 1) throw new Error('PPO: need at least 2 iterations to time one after the first');
  const per = (k: keyof Cost) => (snaps[n]!.c[k] - snaps[0]!.c[k]) / n;
  const iter = summarize(snaps.slice(1).map((s, i) => s.t - snaps[i]!.t));
  const phases = { generation: per('generation'), forward: per('forward'), reward: per('reward'), update: per('update'), other: 0 };
  phases.other = Math.max(0, iter.median / 1000 - phases.generation - phases.forward - phases.reward - phases.update);
  const out: PpoResult = {
    part: 'ppo', threads, iterationMs: { median: iter.median, min: iter.min, samples: iter.samples }, phases,
    updateSplit: updateSplit ? scaleSplit(updateSplit, 1 / 1000 / n) : null,
    generatedTokensPerIter: summary!.generatedTokens / summary!.iterations,
    processedTokensPerIter: summary!.cost.tokensProcessed / summary!.iterations,
    updatesPerIter: p.miniBatches * p.epochs, rssAfterInitMB, peakRssMB: peakMB(),
  };
  console.log(JSON.stringify(out));
}

// ---- parent ---------------------------------------------------------------------------------------

const pct = (x: number, of: number) => `${((100 * x) / of).toFixed(0)}%`;
const splitNote = (s: Split, of: number, unit: string) =>
  `forward ${s.forward.toFixed(unit === 'ms' ? 0 : 2)} ${unit} (${pct(s.forward, of)}), backward ${s.backward.toFixed(unit === 'ms' ? 0 : 2)} (${pct(s.backward, of)}), ` +
  `clip+AdamW ${s.optimizer.toFixed(unit === 'ms' ? 0 : 2)} (${pct(s.optimizer, of)}), host ${s.host.toFixed(unit === 'ms' ? 0 : 2)} (${pct(s.host, of)})`;

async function parent(): Promise<void> {
  const parts = flags.only === 'both' ? ['dpo', 'ppo'] : [flags.only];
  for (const p of parts) if (p !== 'dpo' && p !== 'ppo') throw new Error(`--only must be dpo, ppo or both, got "${flags.only}"`);
  const threads = flags.threads.split(',').map((x) => Number(x.trim()));
  for (const n of threads) if (!Number.isInteger(n) || n < 1) throw new Error(`--threads: "${flags.threads}" is not a list of positive integers`);
  if (!(flags.warmup >= 1)) throw new Error('--warmup must be at least 1 (the first step compiles)');
  const torchThreads = flags['torch-threads'].split(',').map((x) => Number(x.trim()));
  for (const n of torchThreads) if (!Number.isInteger(n) || n < 1) throw new Error(`--torch-threads: "${flags['torch-threads']}" is not a list of positive integers`);
  const dev = deviceInfo({ device: 'wasm', threads: Math.max(...threads) });
  const { study, cfg } = await studyModel();
  const rows: Row[] = [];
  const results: (DpoResult | PpoResult)[] = [];
  const runChild = async (part: string, n: number) =>
    (await runBaseline(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '--child', part], { env: { ALIGNLAB_THREADS: String(n) } })) as unknown;

  const dpo: DpoResult[] = [];
  if (parts.includes('dpo')) {
    for (const n of threads) {
      const r = (await runChild('dpo', n)) as DpoResult;
      results.push(r);
      const tps = r.tokensPerStep / (r.stepMs.median / 1000);
      rows.push({ name: `DPO step ours ${r.threads}T`, value: tps, unit: 'tok/s',
        note: `trainDpo median ${r.stepMs.median.toFixed(0)} ms (best ${r.stepMs.min.toFixed(0)}), loss ${r.loss[0].toFixed(3)}→${r.loss[1].toFixed(3)}, peak RSS ${r.peakRssMB.toFixed(0)} MB (${r.rssAfterInitMB.toFixed(0)} after init)` });
      if (r.split) {
        const s = r.split, all = s.forward + s.backward + s.optimizer + s.host;
        rows.push({ name: `DPO step split ${r.threads}T`, value: all, unit: 'ms', note: splitNote(s, all, 'ms') });
      }
      console.error(`  DPO ${r.threads}T: ${tps.toFixed(0)} tok/s`);
      dpo.push(r);
    }
  }
  const base: BaselineResult[] = [];
  for (const tt of parts.includes('dpo') && flags.baseline ? torchThreads : []) {
    // torch-env.sh takes OPENBLAS_NUM_THREADS from the environment (default 2).
    const saved = process.env.OPENBLAS_NUM_THREADS;
    process.env.OPENBLAS_NUM_THREADS = String(tt);
    let b: BaselineResult;
    try {
      b = await torchBaseline(['--arch', 'llama', '--dpo', '--layers', `${cfg.numLayers}`, '--dim', `${cfg.hiddenSize}`, '--heads', `${cfg.numHeads}`, '--vocab', `${cfg.vocabSize}`,
        '--seq', `${study.task.T}`, '--batch', `${study.dpo.batchSize}`, '--ffn', `${cfg.intermediateSize}`, '--tied', '0', '--steps', `${flags.steps}`, '--threads', `${tt}`]);
    } finally {
      if (saved === undefined) delete process.env.OPENBLAS_NUM_THREADS;
      else process.env.OPENBLAS_NUM_THREADS = saved;
    }
    base.push(b);
    rows.push({ name: `DPO step torch cpu ${b.threads}T ${b.blas}`, value: b.tokens_per_s as number, unit: 'tok/s',
      note: `median ${(b.step_ms_median as number).toFixed(0)} ms, best ${(b.tokens_per_s_best as number).toFixed(0)} tok/s, no GQA (torch_step.py has none), torch ${b.torch}` });
  }
  if (parts.includes('ppo')) {
    for (const n of threads) {
      const r = (await runChild('ppo', n)) as PpoResult;
      results.push(r);
      const s = r.iterationMs.median / 1000, ph = r.phases;
      rows.push({ name: `PPO iteration ours ${r.threads}T`, value: r.iterationMs.median, unit: 'ms',
        note: `best ${r.iterationMs.min.toFixed(0)}; ${r.updatesPerIter} updates; peak RSS ${r.peakRssMB.toFixed(0)} MB (${r.rssAfterInitMB.toFixed(0)} after init)` });
      rows.push({ name: `PPO tokens ${r.threads}T`, value: r.processedTokensPerIter / s, unit: 'tok/s',
        note: `processed (update + scoring forwards) per second of iteration; ${(r.generatedTokensPerIter / ph.generation).toFixed(0)} new tok/s while generating` });
      rows.push({ name: `PPO phases ${r.threads}T`, value: 100 * (ph.generation / s), unit: '% gen',
        note: `generation ${pct(ph.generation, s)}, scoring forwards ${pct(ph.forward, s)}, reward ${pct(ph.reward, s)}, update ${pct(ph.update, s)}, other ${pct(ph.other, s)}` });
      if (r.updateSplit) rows.push({ name: `PPO update split ${r.threads}T`, value: ph.update * 1000, unit: 'ms/iter', note: splitNote(r.updateSplit, ph.update, 's') });
      console.error(`  PPO ${r.threads}T: ${r.iterationMs.median.toFixed(0)} ms/iteration`);
    }
  }
  const extra = { study: { model: study.model, task: study.task, dpoBatch: study.dpo.batchSize, ppo: study.ppo }, vocab: cfg.vocabSize, results, baseline: base, command: `bench/align-step.ts ${process.argv.slice(2).join(' ')}` };
  if (dpo.length === 0 || base.length === 0) {
    console.log(rows.map((r) => `${r.name}: ${r.value.toFixed(1)} ${r.unit} ${r.note ?? ''}`).join('\n'));
    console.log('no DPO baseline in this run: no ratio');
    return;
  }
  // Best against best, on medians: our fastest thread count against PyTorch's fastest.
  const c = bestVsBest(
    dpo.map((r) => ({ label: `DPO ${r.threads}T`, median: r.tokensPerStep / (r.stepMs.median / 1000) })),
    base.map((b) => ({ label: `DPO torch cpu ${String(b.threads)}T`, median: b.tokens_per_s as number })),
  );
  rows.push(bestRow('ratio DPO best/best', c));
  report({ name: 'align-step', device: dev, rows, ...c, extra });
}

if (flags.child === 'dpo') await dpoChild();
else if (flags.child === 'ppo') await ppoChild();
else await parent();
