// Alignment-step cost on the study's small model: a DPO step and a PPO iteration (rollout + update).
// Tokens/s, peak memory (RSS), and the share of time in generation, forward and backward. PyTorch's DPO step on
// the same shapes (bench/baselines/torch_step.py --dpo) is the baseline, measured in the same run.
//
//   node --import tsx bench/align-step.ts                       # DPO + PPO, ours with 1 and 2 threads
//   node --import tsx bench/align-step.ts --only dpo --threads 2
//
// Model: the study's policy (src/study/config.ts defaults): Llama, L=2 C=128 H=4 KV heads 2 MLP 352, context 32,
// V = --vocab (2048 here: the study's 2,000 words + specials + punctuation, ≈2,040), untied head, random init.
// Data: random token ids (cost does not depend on the values).
//
// DPO (sigmoid, β 0.1, the study's batch of 32 pairs, T=24): every row is a full 24 tokens (12 prompt + 12
// completion) so that our token count equals PyTorch's (2·B·T per step: chosen and rejected in one [2B, T] batch).
//   step      src/train/offline.ts trainDpo end to end (data collation, jitted step, metrics), median interval
//             between steps after `warmup` steps; reference log-probs precomputed once (excluded, as in torch).
//   pieces    the same loss (offline.ts's DPO loss rebuilt from its exported parts) jitted three ways on one
//             batch: forward only, forward+backward (valueAndGrad), full step (makeTrainStep: + clip + AdamW),
//             taking turns; median of min(steps, 5) rounds after `warmup` rounds.
//             Shares: forward = fwd / full, backward = (fwd+bwd − fwd) / full, optimizer = (full − fwd+bwd) / full.
// PPO (src/train/ppo-trainer.ts trainPpo, study defaults: 32 completions per rollout, 12 new tokens at
// temperature 0.7, 2 minibatches × 4 epochs = 8 updates, separate value model, toy token reward):
//   iteration time = median interval between iterations after the first (which compiles everything);
//   phases from the trainer's own cost counters (generation, scoring forwards, reward, update), taken at
//   iteration boundaries so the first iteration is excluded; the update is split into forward and
//   backward+AdamW with a jitted forward of the policy and value model on one minibatch.
// Peak RSS = the child process's maxRSS (node + jax-js + model); `rss after init` is the same process before
// any model exists. Each (part, threads) runs in its own child process, one at a time.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags } from '../src/cli/args.js';
import { deviceInfo, report, runBaseline, summarize, torchBaseline, type BaselineResult, type Row } from './lib.js';

const flags = parseFlags(process.argv.slice(2), {
  only: { type: 'string', default: 'both', help: 'dpo | ppo | both' },
  threads: { type: 'string', default: '1,2' },
  vocab: { type: 'number', default: 2048 },
  warmup: { type: 'number', default: 2, help: 'DPO steps excluded from timing' },
  steps: { type: 'number', default: 8, help: 'DPO steps timed' },
  iterations: { type: 'number', default: 4, help: 'PPO iterations (the first one is excluded from timing)' },
  baseline: { type: 'boolean', default: true },
  child: { type: 'string', default: '' },
});

interface DpoResult {
  part: 'dpo';
  threads: number;
  tokensPerStep: number;
  stepMs: { median: number; min: number; samples: number[] };
  pieces: { fwdMs: number; fwdBwdMs: number; fullMs: number };
  rssAfterInitMB: number;
  peakRssMB: number;
  loss: [number, number];
}

interface PpoResult {
  part: 'ppo';
  threads: number;
  iterationMs: { median: number; min: number; samples: number[] };
  /** Seconds per iteration, steady state (first iteration excluded). */
  phases: { generation: number; forward: number; reward: number; update: number; updateForward: number; other: number };
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
  const { tinyConfig } = await import('../src/model/config.js');
  const s = resolveStudyConfig();
  const m = s.model;
  const cfg = tinyConfig('llama', {
    vocabSize: flags.vocab, hiddenSize: m.hidden, numLayers: m.layers, numHeads: m.heads, numKvHeads: m.kvHeads, headDim: m.hidden / m.heads,
    intermediateSize: m.intermediate, maxPositions: m.context, tieEmbeddings: false, normEps: 1e-5, bosTokenId: 1, eosTokenId: 2, padTokenId: 0,
  });
  return { study: s, cfg };
}

// ---- child: DPO --------------------------------------------------------------------------------

async function dpoChild(): Promise<void> {
  const { threadsInfo, checkThreads } = await import('../src/engine/threads.js'); // before @jax-js/jax
  const { blockUntilReady } = await import('@jax-js/jax');
  const { initEngine, np, jit, valueAndGrad, tree, keep, free, Rng } = await import('../src/engine/index.js');
  const { initHostParams } = await import('../src/model/params.js');
  const { toDevice } = await import('../src/model/weights.js');
  const { forward } = await import('../src/model/decoder.js');
  const { trainDpo } = await import('../src/train/offline.js');
  const { pairBatch } = await import('../src/data/batching.js');
  const { tokenLogprobs } = await import('../src/train/logprobs.js');
  const { dpoLoss } = await import('../src/train/dpo.js');
  const { makeTrainStep } = await import('../src/train/loop.js');
  const { adamw } = await import('../src/train/optim.js');
  type Arr = ReturnType<typeof np.array>;
  await initEngine('wasm');
  await checkThreads();
  const rssAfterInitMB = rssMB();
  const { study, cfg } = await studyModel();
  const T = study.task.T, B = study.dpo.batchSize, half = T / 2;
  const rng = new Rng(3);
  const randIds = (n: number) => Array.from({ length: n }, () => 3 + rng.int(cfg.vocabSize - 3));
  const pairs = Array.from({ length: B * 4 }, () => ({ prompt: randIds(half), chosen: randIds(T - half), rejected: randIds(T - half) }));

  // 1. trainDpo end to end.
  const policy = toDevice(initHostParams(cfg, 0));
  const ref = keep(policy);
  const dir = mkdtempSync(join(tmpdir(), 'alignlab-bench-dpo-'));
  const stamps: number[] = [];
  const losses: number[] = [];
  let trained: typeof policy;
  try {
    const r = await trainDpo({
      cfg, params: policy, ref, train: pairs, runDir: dir, steps: flags.warmup + flags.steps + 1, batchSize: B, T, padId: 0,
      beta: 0.1, optimizer: { lr: 1e-3, b1: 0.9, b2: 0.95, weightDecay: 0.1 }, maxGradNorm: 1.0, store: false, progress: false,
      onStep: async (info) => {
        await blockUntilReady(info.params); // the step's AdamW must be done before the next stamp
        stamps.push(performance.now());
        losses.push(info.loss);
      },
    });
    trained = r.params;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  free(trained);
  // Intervals between step ends; drop the warm-up steps and the last one (it writes the final checkpoint).
  const intervals = stamps.slice(1).map((t, i) => t - stamps[i]!).slice(flags.warmup - 1, flags.warmup - 1 + flags.steps);
  const step = summarize(intervals);

  // 2. The same loss as offline.ts, timed as forward / forward+backward / full step on one fixed batch.
  const { chosen, rejected } = pairBatch(pairs.slice(0, B), T, { padId: 0, rows: B });
  const cat = <A extends Int32Array | Float32Array>(a: A, b: A): A => {
    const out = new (a.constructor as new (n: number) => A)(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  };
  const host = {
    input: cat(chosen.input, rejected.input), target: cat(chosen.target, rejected.target), weight: cat(chosen.weight, rejected.weight),
    valid: cat(chosen.valid, rejected.valid), pos: cat(chosen.pos, rejected.pos),
  };
  interface Dev { input: Arr; target: Arr; weight: Arr; valid: Arr; pos: Arr; refC: Arr; refR: Arr }
  const batch = (): Dev => ({
    input: np.array(host.input, { dtype: np.int32, shape: [2 * B, T] }), target: np.array(host.target, { dtype: np.int32, shape: [2 * B, T] }),
    weight: np.array(host.weight, { shape: [2 * B, T] }), valid: np.array(host.valid, { shape: [2 * B, T] }),
    pos: np.array(host.pos, { dtype: np.int32, shape: [2 * B, T] }), refC: np.full([B], -60), refR: np.full([B], -60),
  });
  const loss = (p: typeof policy, b: Dev) => {
    const logits = forward(p, cfg, b.input, b.pos, b.valid);
    const seq = tokenLogprobs(logits, b.target.ref).mul(b.weight.ref).sum(-1);
    const [pc, pr] = np.split(seq, [B], 0) as [Arr, Arr];
    free([b.input, b.pos, b.valid, b.target, b.weight]);
    const { loss, metrics } = dpoLoss({ policyChosen: pc, policyRejected: pr, refChosen: b.refC, refRejected: b.refR }, { beta: 0.1 });
    return [loss, metrics] as const;
  };
  let params = toDevice(initHostParams(cfg, 0));
  const fwd = jit((p: typeof params, b: Dev) => loss(p, b)[0]);
  const fwdBwd = jit((p: typeof params, b: Dev) => {
    const [l, g] = valueAndGrad((q: typeof params) => loss(q, b)[0])(p);
    return [l, g];
  });
  const optimizer = adamw({ lr: 1e-3, b1: 0.9, b2: 0.95, weightDecay: 0.1 });
  const full = makeTrainStep({ lossFn: loss, optimizer, maxGradNorm: 1.0, gradAccum: 1 });
  let opt: unknown = optimizer.init(params);
  // The three programs take turns (fwd, fwd+bwd, full, fwd, …) so that a load spike on this shared machine hits
  // all three alike; medians of min(steps, 5) rounds after `warmup` rounds.
  const runs = {
    fwd: async () => void (await fwd(keep(params), batch()).data()),
    fwdBwd: async () => {
      const [l, g] = fwdBwd(keep(params), batch()) as [Arr, unknown];
      await blockUntilReady(g as never);
      await l.data();
      tree.dispose(g as never);
    },
    full: async () => {
      const r = await full.step(params, opt, [batch()], {}, 1e-3, 1);
      params = r.params;
      opt = r.optState;
      await blockUntilReady([params, opt] as never);
    },
  };
  const times: Record<keyof typeof runs, number[]> = { fwd: [], fwdBwd: [], full: [] };
  for (let i = 0; i < flags.warmup + Math.min(flags.steps, 5); i++)
    for (const k of Object.keys(runs) as (keyof typeof runs)[]) {
      const t0 = performance.now();
      await runs[k]();
      if (i >= flags.warmup) times[k].push(performance.now() - t0);
    }
  const fwdMs = summarize(times.fwd).median, fwdBwdMs = summarize(times.fwdBwd).median, fullMs = summarize(times.full).median;
  fwd.dispose();
  fwdBwd.dispose();
  full.dispose();
  const out: DpoResult = {
    part: 'dpo', threads: threadsInfo().threads, tokensPerStep: 2 * B * T,
    stepMs: { median: step.median, min: step.min, samples: step.samples }, pieces: { fwdMs, fwdBwdMs, fullMs },
    rssAfterInitMB, peakRssMB: peakMB(), loss: [losses[0]!, losses[losses.length - 1]!],
  };
  console.log(JSON.stringify(out));
}

// ---- child: PPO --------------------------------------------------------------------------------

async function ppoChild(): Promise<void> {
  const { threadsInfo, checkThreads } = await import('../src/engine/threads.js'); // before @jax-js/jax
  const { initEngine, np, keep, free, compile, i32, Rng } = await import('../src/engine/index.js');
  const { initHostParams } = await import('../src/model/params.js');
  const { toDevice } = await import('../src/model/weights.js');
  const { initHead, scalarValues } = await import('../src/model/heads.js');
  const { trainPpo } = await import('../src/train/ppo-trainer.js');
  const { RolloutEngine, policyLogprobs, newCost } = await import('../src/train/online.js');
  const { tokenReward } = await import('../src/rewards/types.js');
  type Arr = ReturnType<typeof np.array>;
  await initEngine('wasm');
  await checkThreads();
  const rssAfterInitMB = rssMB();
  const { study, cfg } = await studyModel();
  const p = study.ppo, maxNew = study.task.maxNewTokens, B = p.rolloutBatch;
  const rng = new Rng(5);
  const prompts = Array.from({ length: 4 * B }, () => [1, ...Array.from({ length: 5 }, () => 3 + rng.int(cfg.vocabSize - 3))]);

  // The trainer's phase counters live in an object it creates; RolloutEngine.collect receives it, so a wrapper
  // around collect can keep a handle and read it at every iteration boundary (the trainer itself is unchanged).
  let cost: ReturnType<typeof newCost> | null = null;
  const proto = RolloutEngine.prototype as unknown as { collect: (o: { cost: ReturnType<typeof newCost> }) => Promise<unknown> };
  const orig = proto.collect;
  proto.collect = function (this: unknown, o) {
    cost = o.cost;
    return orig.call(this, o);
  };
  const snaps: { t: number; c: ReturnType<typeof newCost> }[] = [];
  const policy = toDevice(initHostParams(cfg, 0));
  const dir = mkdtempSync(join(tmpdir(), 'alignlab-bench-ppo-'));
  let summary;
  try {
    const r = await trainPpo({
      policy: { cfg, params: policy, eosId: 2 }, prompts, reward: tokenReward((c) => c.filter((t) => t % 2 === 0).length / Math.max(1, c.length)),
      runDir: dir, iterations: flags.iterations, batchSize: B, numMiniBatches: p.miniBatches, ppoEpochs: p.epochs, maxNewTokens: maxNew,
      learningRate: p.lr, klCoef: 0.1, store: false, progress: false, seed: 1,
      onIteration: () => void snaps.push({ t: performance.now(), c: { ...cost! } }),
    });
    summary = r.summary;
    free([r.policy, r.value.trunk, r.value.head]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    proto.collect = orig;
  }
  const n = snaps.length - 1;
  if (n < 1) throw new Error('PPO: need at least 2 iterations to time one after the first');
  const per = (k: keyof ReturnType<typeof newCost>) => (snaps[n]!.c[k] - snaps[0]!.c[k]) / n;
  const iter = summarize(snaps.slice(1).map((s, i) => s.t - snaps[i]!.t));
  const updatesPerIter = p.miniBatches * p.epochs;
  const mb = B / p.miniBatches;

  // Forward share of an update: the policy (log-probs + entropy, as the loss computes them) and the value model
  // on one minibatch, jitted, no gradient.
  const T = Math.min(Math.ceil((Math.max(...prompts.map((x) => x.length)) + maxNew) / 8) * 8, cfg.maxPositions);
  const params = toDevice(initHostParams(cfg, 0));
  const h = initHead(cfg, 2);
  const head = { w: np.array(h.w.data, { shape: h.w.shape }), b: np.array(h.b.data, { shape: h.b.shape }) };
  const fwd = compile((pp: typeof params, hd: typeof head, ids: Arr, pos: Arr, valid: Arr) => {
    const [lp, ent] = policyLogprobs(pp, cfg, ids, pos, valid, 0.7, true) as [Arr, Arr];
    const v = scalarValues(pp, hd, cfg, ids, pos, valid);
    return lp.sum().add(ent.sum()).add(v.sum());
  });
  const ids = Int32Array.from({ length: mb * T }, () => 3 + rng.int(cfg.vocabSize - 3));
  const pos = Int32Array.from({ length: mb * T }, (_, i) => i % T);
  const valid = new Int32Array(mb * T).fill(1);
  const fs: number[] = [];
  for (let i = 0; i < 2 + 6; i++) {
    const t0 = performance.now();
    await fwd(keep(params), keep(head), i32(ids, [mb, T]), i32(pos, [mb, T]), i32(valid, [mb, T])).data();
    if (i >= 2) fs.push(performance.now() - t0);
  }
  fwd.dispose();
  const updateForward = Math.min(per('update'), (summarize(fs).median / 1000) * updatesPerIter);
  const phases = { generation: per('generation'), forward: per('forward'), reward: per('reward'), update: per('update'), updateForward, other: 0 };
  phases.other = Math.max(0, iter.median / 1000 - phases.generation - phases.forward - phases.reward - phases.update);
  const out: PpoResult = {
    part: 'ppo', threads: threadsInfo().threads, iterationMs: { median: iter.median, min: iter.min, samples: iter.samples }, phases,
    generatedTokensPerIter: summary!.generatedTokens / summary!.iterations,
    processedTokensPerIter: summary!.cost.tokensProcessed / summary!.iterations,
    updatesPerIter, rssAfterInitMB, peakRssMB: peakMB(),
  };
  console.log(JSON.stringify(out));
}

// ---- parent ---------------------------------------------------------------------------------------

const pct = (x: number, of: number) => `${((100 * x) / of).toFixed(0)}%`;

async function parent(): Promise<void> {
  const parts = flags.only === 'both' ? ['dpo', 'ppo'] : [flags.only];
  for (const p of parts) if (p !== 'dpo' && p !== 'ppo') throw new Error(`--only must be dpo, ppo or both, got "${flags.only}"`);
  const threads = flags.threads.split(',').map((x) => Number(x.trim()));
  for (const n of threads) if (!Number.isInteger(n) || n < 1) throw new Error(`--threads: "${flags.threads}" is not a list of positive integers`);
  if (!(flags.warmup >= 1)) throw new Error('--warmup must be at least 1 (the first step compiles)');
  const dev = deviceInfo({ device: 'wasm', threads: Math.max(...threads) });
  const { study, cfg } = await studyModel();
  const rows: Row[] = [];
  const results: (DpoResult | PpoResult)[] = [];
  const runChild = async (part: string, n: number) =>
    (await runBaseline(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '--child', part], { env: { ALIGNLAB_THREADS: String(n) } })) as unknown;

  let bestDpo: DpoResult | null = null;
  if (parts.includes('dpo')) {
    for (const n of threads) {
      const r = (await runChild('dpo', n)) as DpoResult;
      results.push(r);
      const tps = r.tokensPerStep / (r.stepMs.median / 1000);
      const { fwdMs, fwdBwdMs, fullMs } = r.pieces;
      rows.push({ name: `DPO step ours ${r.threads}T`, value: tps, unit: 'tok/s',
        note: `trainDpo median ${r.stepMs.median.toFixed(0)} ms (best ${r.stepMs.min.toFixed(0)}), peak RSS ${r.peakRssMB.toFixed(0)} MB (${r.rssAfterInitMB.toFixed(0)} after init)` });
      rows.push({ name: `DPO pieces ${r.threads}T`, value: fullMs, unit: 'ms',
        note: `jitted step; forward ${fwdMs.toFixed(0)} ms (${pct(fwdMs, fullMs)}), backward ${(fwdBwdMs - fwdMs).toFixed(0)} ms (${pct(fwdBwdMs - fwdMs, fullMs)}), clip+AdamW ${(fullMs - fwdBwdMs).toFixed(0)} ms (${pct(fullMs - fwdBwdMs, fullMs)})` });
      console.error(`  DPO ${r.threads}T: ${tps.toFixed(0)} tok/s`);
      if (!bestDpo || r.stepMs.median < bestDpo.stepMs.median) bestDpo = r;
    }
  }
  let base: BaselineResult | null = null;
  if (parts.includes('dpo') && flags.baseline) {
    base = await torchBaseline(['--arch', 'llama', '--dpo', '--layers', `${cfg.numLayers}`, '--dim', `${cfg.hiddenSize}`, '--heads', `${cfg.numHeads}`,
      '--vocab', `${cfg.vocabSize}`, '--seq', `${study.task.T}`, '--batch', `${study.dpo.batchSize}`, '--ffn', `${cfg.intermediateSize}`, '--tied', '0', '--steps', `${flags.steps}`]);
    rows.push({ name: `DPO step torch cpu ${base.threads}T ${base.blas}`, value: base.tokens_per_s as number, unit: 'tok/s',
      note: `median ${(base.step_ms_median as number).toFixed(0)} ms, best ${(base.tokens_per_s_best as number).toFixed(0)} tok/s, no GQA (torch_step.py has none), torch ${base.torch}` });
    for (const r of results) if (r.part === 'dpo')
      rows.push({ name: `ratio DPO ${r.threads}T`, value: r.tokensPerStep / (r.stepMs.median / 1000) / (base.tokens_per_s as number), unit: 'x', note: 'ours / torch' });
  }
  if (parts.includes('ppo')) {
    for (const n of threads) {
      const r = (await runChild('ppo', n)) as PpoResult;
      results.push(r);
      const s = r.iterationMs.median / 1000, ph = r.phases;
      rows.push({ name: `PPO iteration ours ${r.threads}T`, value: r.iterationMs.median, unit: 'ms',
        note: `best ${r.iterationMs.min.toFixed(0)}; ${r.updatesPerIter} updates; peak RSS ${r.peakRssMB.toFixed(0)} MB (${r.rssAfterInitMB.toFixed(0)} after init)` });
      rows.push({ name: `PPO tokens ${r.threads}T`, value: r.processedTokensPerIter / s, unit: 'tok/s',
        note: `processed (update + scoring forwards); generation ${(r.generatedTokensPerIter / ph.generation).toFixed(0)} new tok/s while generating` });
      rows.push({ name: `PPO shares ${r.threads}T`, value: 100 * (ph.generation / s), unit: '% gen',
        note: `generation ${pct(ph.generation, s)}, scoring fwd ${pct(ph.forward, s)}, reward ${pct(ph.reward, s)}, update fwd ~${pct(ph.updateForward, s)}, update bwd+AdamW ~${pct(ph.update - ph.updateForward, s)}, other ${pct(ph.other, s)}` });
      console.error(`  PPO ${r.threads}T: ${r.iterationMs.median.toFixed(0)} ms/iteration`);
    }
  }
  const extra = { study: { model: study.model, task: study.task, dpoBatch: study.dpo.batchSize, ppo: study.ppo }, vocab: cfg.vocabSize, results, baseline: base, command: `bench/align-step.ts ${process.argv.slice(2).join(' ')}` };
  if (!bestDpo || !base) {
    console.log(rows.map((r) => `${r.name}: ${r.value.toFixed(1)} ${r.unit} ${r.note ?? ''}`).join('\n'));
    console.log('no DPO baseline in this run: no ratio');
    return;
  }
  report({ name: 'align-step', device: dev, rows, ours: bestDpo.tokensPerStep / (bestDpo.stepMs.median / 1000), baseline: base.tokens_per_s as number, extra });
}

if (flags.child === 'dpo') await dpoChild();
else if (flags.child === 'ppo') await ppoChild();
else await parent();
