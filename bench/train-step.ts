// Training-step throughput of our decoder (fwd + bwd + global-norm clip + AdamW in one jitted program: src/train/losses/sft.ts
// lmLoss over src/model/decoder.ts forward, src/train/optim.ts clipByGlobalNorm + adamw) against PyTorch on the same
// shapes, measured in the same run.
//
// The step is written out here rather than taken from src/train/loop.ts makeTrainStep: it is the same program as
// makeTrainStep's gradAccum=1 path (valueAndGrad with aux metrics, clip, AdamW update, stats stacked into one array
// read once per step), but loop.ts imports the SQLite store, and a native module cannot travel in the bundle that
// runs this script on the GPU machine (shared/gpu/README.md).
//
//   node --import tsx bench/train-step.ts                  # GPT-2 and Llama shapes, ours and PyTorch with 1 and 2 threads
//   node --import tsx bench/train-step.ts --arch gpt2 --threads 2 --steps 6
//   node --import tsx bench/train-step.ts --device webgpu  # GPU machine: PyTorch on CUDA (see shared/gpu/README.md)
//
// Shapes (DESIGN.md): L=4 C=256 H=4 V=4096 T=128 B=8. GPT-2 style = learned positions, LayerNorm, GELU-tanh,
// fused qkv with biases, tied embeddings (MLP 4C). Llama style = RMSNorm, RoPE, SwiGLU (MLP 704 = 8/3·C rounded up
// to 64, what torch_step.py uses), no biases, untied head. The same config goes to bench/baselines/torch_step.py.
//
// Each of our configurations runs in its own child process (this file with --child): the jax-js thread pool
// (src/engine/threads.ts, ALIGNLAB_THREADS) must be chosen before @jax-js/jax is imported and cannot change in a
// process. Children run one after another, never at the same time as each other or the baseline.
//
// Timing: `warmup` untimed steps (the first one traces and compiles), then `steps` timed ones; each timed step
// ends with blockUntilReady on the new params, so no work of one step leaks into the next one's time (with the
// thread pool, reading the loss only waits for the forward kernels). tokens/s = B·T / median step time.

import { parseFlags } from '../src/cli/args.js';
import { deviceInfo, report, runBaseline, summarize, torchBaseline, BENCH_DIR, type BaselineResult, type Row } from './lib.js';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const flags = parseFlags(process.argv.slice(2), {
  arch: { type: 'string', default: 'both', help: 'gpt2 | llama | both' },
  device: { type: 'string', default: 'wasm', help: 'wasm | webgpu' },
  threads: { type: 'string', default: '1,2', help: 'comma-separated jax-js wasm pool sizes, one child process each' },
  layers: { type: 'number', default: 4 },
  dim: { type: 'number', default: 256 },
  heads: { type: 'number', default: 4 },
  vocab: { type: 'number', default: 4096 },
  seq: { type: 'number', default: 128 },
  batch: { type: 'number', default: 8 },
  warmup: { type: 'number', default: 2 },
  steps: { type: 'number', default: 6 },
  baseline: { type: 'boolean', default: true, help: '--no-baseline skips PyTorch (then no ratio line)' },
  'torch-threads': { type: 'string', default: '2,1', help: 'PyTorch thread counts on the CPU; the first is the headline baseline' },
  'torch-script': { type: 'string', default: '', help: 'path of torch_step.py (default: found next to this script)' },
  child: { type: 'boolean', default: false },
});

type Arch = 'gpt2' | 'llama';

/** The model the bench measures, in the terms both sides understand. */
function shape(arch: Arch) {
  const C = flags.dim;
  return {
    arch,
    layers: flags.layers,
    dim: C,
    heads: flags.heads,
    vocab: flags.vocab,
    seq: flags.seq,
    batch: flags.batch,
    ffn: arch === 'gpt2' ? 4 * C : 64 * Math.ceil((8 * C) / 3 / 64),
    tied: arch === 'gpt2',
  };
}

interface ChildResult {
  arch: Arch;
  device: string;
  threads: number;
  params: number;
  tokensPerStep: number;
  stepMs: { median: number; min: number; samples: number[] };
  compileMs: number;
  lossFirst: number;
  lossLast: number;
  peakRssMB: number;
}

// ---- child: one configuration, one process ------------------------------------------------------

async function child(): Promise<void> {
  const { threadsInfo, checkThreads } = await import('../src/engine/threads.js'); // before @jax-js/jax (it reads ALIGNLAB_THREADS)
  const { blockUntilReady } = await import('@jax-js/jax');
  const { initEngine, i32, np, Rng, free, jit, tree, valueAndGrad } = await import('../src/engine/index.js');
  const { tinyConfig, paramCount } = await import('../src/model/config.js');
  const { initHostParams } = await import('../src/model/params.js');
  const { toDevice } = await import('../src/model/weights.js');
  const { forward } = await import('../src/model/decoder.js');
  const { lmLoss } = await import('../src/train/losses/sft.js');
  const { adamw, clipByGlobalNorm } = await import('../src/train/optim.js');
  type Arr = ReturnType<typeof np.array>;

  const device = await initEngine(flags.device);
  await checkThreads();
  const s = shape(flags.arch as Arch);
  const cfg = tinyConfig(s.arch, {
    vocabSize: s.vocab, hiddenSize: s.dim, numLayers: s.layers, numHeads: s.heads, numKvHeads: s.heads, headDim: s.dim / s.heads,
    intermediateSize: s.ffn, maxPositions: s.seq, tieEmbeddings: s.tied, normEps: 1e-5,
  });
  const B = s.batch, T = s.seq;
  let params = toDevice(initHostParams(cfg, 0));

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
  // makeTrainStep's fused program (loop.ts): loss and grads, clip, AdamW, one stats array [loss, grad norm, metrics].
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
  for (let i = 0; i < flags.warmup + flags.steps; i++) {
    const t0 = performance.now();
    let stats: Arr;
    [params, opt, stats] = step(params, opt, batch(), np.array(3e-4), np.array(i + 1));
    const s = await stats.data(); // the one read of a step, as makeTrainStep does
    await blockUntilReady([params, opt] as never); // and the AdamW update is finished before the clock stops
    const ms = performance.now() - t0;
    if (i === 0) compileMs = ms;
    if (i >= flags.warmup) samples.push(ms);
    losses.push(s[0] as number);
  }
  step.dispose();
  const t = summarize(samples);
  const out: ChildResult = {
    arch: s.arch, device, threads: threadsInfo().threads, params: paramCount(cfg), tokensPerStep: B * T,
    stepMs: { median: t.median, min: t.min, samples: t.samples }, compileMs,
    lossFirst: losses[0]!, lossLast: losses[losses.length - 1]!,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
  };
  console.log(JSON.stringify(out));
}

// ---- parent: children one after another, then the baseline, then the report -----------------------

/** torch_step.py: next to this file, or (bundled for the GPU machine under .gpu/bench/) in the repo's bench/. */
function torchScript(): string {
  const cands = [flags['torch-script'], join(BENCH_DIR, 'baselines', 'torch_step.py'), resolve(BENCH_DIR, '..', '..', 'bench', 'baselines', 'torch_step.py')].filter(Boolean);
  const hit = cands.find((p) => existsSync(p));
  if (!hit) throw new Error(`torch_step.py not found (looked at ${cands.join(', ')}); pass --torch-script`);
  return hit;
}

function torchArgs(arch: Arch): string[] {
  const s = shape(arch);
  return ['--arch', arch === 'gpt2' ? 'gpt' : 'llama', '--layers', `${s.layers}`, '--dim', `${s.dim}`, '--heads', `${s.heads}`, '--vocab', `${s.vocab}`,
    '--seq', `${s.seq}`, '--batch', `${s.batch}`, '--ffn', `${s.ffn}`, '--tied', s.tied ? '1' : '0', '--steps', `${flags.steps}`];
}

async function baseline(arch: Arch, threads = 2): Promise<BaselineResult> {
  if (flags.device === 'wasm') {
    // CPU: OpenBLAS-pthread (checked by torchBaseline); torch-env.sh takes OPENBLAS_NUM_THREADS from the environment.
    const saved = process.env.OPENBLAS_NUM_THREADS;
    process.env.OPENBLAS_NUM_THREADS = String(threads);
    try {
      return await torchBaseline([...torchArgs(arch), '--threads', String(threads)]);
    } finally {
      if (saved === undefined) delete process.env.OPENBLAS_NUM_THREADS;
      else process.env.OPENBLAS_NUM_THREADS = saved;
    }
  }
  // GPU machine: the same script on CUDA. It needs a --device option; refuse rather than compare a GPU to a CPU.
  const script = torchScript();
  if (!/--device/.test(readFileSync(script, 'utf8')))
    throw new Error(`${script} has no --device option: the GPU comparison needs PyTorch on CUDA (ask for \`--device cuda\` in torch_step.py), not on the CPU`);
  return runBaseline('python3', [script, ...torchArgs(arch), '--device', 'cuda']);
}

async function parent(): Promise<void> {
  const archs: Arch[] = flags.arch === 'both' ? ['gpt2', 'llama'] : [flags.arch as Arch];
  for (const a of archs) if (a !== 'gpt2' && a !== 'llama') throw new Error(`--arch must be gpt2, llama or both, got "${a}"`);
  const threadList = flags.device === 'wasm' ? flags.threads.split(',').map((x) => Number(x.trim())) : [1];
  for (const n of threadList) if (!Number.isInteger(n) || n < 1) throw new Error(`--threads: "${flags.threads}" is not a list of positive integers`);
  const dev = deviceInfo({ device: flags.device, threads: Math.max(...threadList) });
  const rows: Row[] = [];
  const ours = new Map<Arch, ChildResult[]>();
  const base = new Map<Arch, BaselineResult>(); // the headline baseline per arch (first of --torch-threads)
  const extraBase: [Arch, BaselineResult][] = [];
  const torchThreads = flags.device === 'wasm' ? flags['torch-threads'].split(',').map((x) => Number(x.trim())) : [0];
  for (const n of torchThreads) if (!Number.isInteger(n) || n < 0) throw new Error(`--torch-threads: "${flags['torch-threads']}" is not a list of thread counts`);
  const passthrough = process.argv.slice(2).filter((a) => a !== '--child');
  for (const arch of archs) {
    for (const n of threadList) {
      const r = (await runBaseline(process.execPath, [...process.execArgv, process.argv[1]!, ...passthrough, '--arch', arch, '--child'], {
        env: { ALIGNLAB_THREADS: String(n) },
      })) as unknown as ChildResult;
      ours.set(arch, [...(ours.get(arch) ?? []), r]);
      const tps = r.tokensPerStep / (r.stepMs.median / 1000);
      rows.push({ name: `ours ${arch} ${r.device} ${r.threads}T`, value: tps, unit: 'tok/s',
        note: `median ${r.stepMs.median.toFixed(0)} ms, best ${(r.tokensPerStep / (r.stepMs.min / 1000)).toFixed(0)} tok/s, 1st step ${(r.compileMs / 1000).toFixed(1)} s, loss ${r.lossFirst.toFixed(3)}→${r.lossLast.toFixed(3)}, ${(r.params / 1e6).toFixed(2)}M params, RSS ${r.peakRssMB.toFixed(0)} MB` });
      console.error(`  ${rows[rows.length - 1]!.name}: ${tps.toFixed(0)} tok/s`);
    }
    for (const tt of flags.baseline ? torchThreads : []) {
      // Our numbers are kept when the baseline cannot run (e.g. a GPU machine without torch_step.py --device).
      const b = await baseline(arch, tt).catch((e: Error) => (console.error(`baseline failed: ${e.message}`), null));
      if (!b) {
        process.exitCode = 1;
        break;
      }
      if (!base.has(arch)) base.set(arch, b);
      extraBase.push([arch, b]);
      rows.push({ name: `torch ${arch} ${flags.device === 'wasm' ? `cpu ${b.threads}T ${b.blas}` : 'cuda'}`, value: b.tokens_per_s as number, unit: 'tok/s',
        note: `median ${(b.step_ms_median as number).toFixed(0)} ms, best ${(b.tokens_per_s_best as number).toFixed(0)} tok/s, torch ${b.torch}, loss ${(b.loss_first as number).toFixed(3)}→${(b.loss_last as number).toFixed(3)}, ${((b.params as number) / 1e6).toFixed(2)}M params` });
      console.error(`  ${rows[rows.length - 1]!.name}: ${(b.tokens_per_s as number).toFixed(0)} tok/s`);
    }
  }
  const best = (rs: ChildResult[]) => rs.reduce((a, b) => (a.stepMs.median <= b.stepMs.median ? a : b));
  const tokps = (r: ChildResult) => r.tokensPerStep / (r.stepMs.median / 1000);
  // One ratio row per (arch, our threads, torch threads); the headline is the first arch (GPT-2 by default) at our
  // fastest thread count against torch at the first of --torch-threads (2).
  for (const [arch, b] of extraBase)
    for (const r of ours.get(arch)!)
      rows.push({ name: `ratio ${arch} ${r.threads}T / torch ${b.threads}T`, value: tokps(r) / (b.tokens_per_s as number), unit: 'x',
        note: `median; best/best ${((r.tokensPerStep / (r.stepMs.min / 1000)) / (b.tokens_per_s_best as number)).toFixed(2)}` });
  const head = archs[0]!;
  const headOurs = best(ours.get(head)!);
  const headBase = base.get(head);
  if (!headBase) {
    console.log(rows.map((r) => `${r.name}: ${r.value.toFixed(1)} ${r.unit} ${r.note ?? ''}`).join('\n'));
    console.log(`no baseline${flags.baseline ? ' (it failed, see above)' : ' (--no-baseline)'}: no ratio`);
    return;
  }
  report({
    name: 'train-step',
    device: dev,
    rows,
    ours: tokps(headOurs),
    baseline: headBase.tokens_per_s as number,
    extra: { headline: `${head} ${headOurs.threads}T`, config: archs.map(shape), ours: Object.fromEntries(ours), baseline: extraBase, command: `bench/train-step.ts ${process.argv.slice(2).join(' ')}` },
  });
}

await (flags.child ? child() : parent());
