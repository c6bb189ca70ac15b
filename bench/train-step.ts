// Training-step throughput of our decoder (fwd + bwd + global-norm clip + AdamW in one jitted program, bench/step.ts:
// src/train/losses/sft.ts lmLoss over src/model/decoder.ts forward, src/train/optim.ts clipByGlobalNorm + adamw)
// against PyTorch on the same shapes, measured in the same run.
//
//   node --import tsx bench/train-step.ts                  # GPT-2 and Llama shapes, ours and PyTorch with 1 and 2 threads
//   node --import tsx bench/train-step.ts --arch gpt2 --threads 2 --steps 6
//   node --import tsx bench/train-step.ts --device webgpu  # GPU machine: PyTorch on CUDA (bench/gpu.ts does more)
//
// Last line: `ratio` = ours at our fastest thread count / PyTorch at its fastest, medians, for the arch where that
// ratio is lowest; the line before it names both settings.
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
import { STEP_SHAPE_FLAGS } from './step.js';
import { bestRow, bestVsBest, deviceInfo, report, runBaseline, summarize, torchBaseline, worstCase, BENCH_DIR, type BaselineResult, type BestVsBest, type Row } from './lib.js';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const flags = parseFlags(process.argv.slice(2), {
  arch: { type: 'string', default: 'both', help: 'gpt2 | llama | both' },
  device: { type: 'string', default: 'wasm', help: 'wasm | webgpu' },
  threads: { type: 'string', default: '1,2', help: 'comma-separated jax-js wasm pool sizes, one child process each' },
  ...STEP_SHAPE_FLAGS,
  warmup: { type: 'number', default: 2 },
  steps: { type: 'number', default: 6 },
  baseline: { type: 'boolean', default: true, help: '--no-baseline skips PyTorch (then no ratio line)' },
  'torch-threads': { type: 'string', default: '1,2', help: 'PyTorch thread counts on the CPU (the ratio takes the fastest)' },
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
  const { initEngine } = await import('../src/engine/index.js');
  const { tinyConfig, paramCount } = await import('../src/formats/config.js');
  const { timeTrainStep } = await import('./step.js');

  const device = await initEngine(flags.device);
  await checkThreads();
  const s = shape(flags.arch as Arch);
  const cfg = tinyConfig(s.arch, {
    vocabSize: s.vocab, hiddenSize: s.dim, numLayers: s.layers, numHeads: s.heads, numKvHeads: s.heads, headDim: s.dim / s.heads,
    intermediateSize: s.ffn, maxPositions: s.seq, tieEmbeddings: s.tied, normEps: 1e-5,
  });
  const r = await timeTrainStep(cfg, s.batch, s.seq, { warmup: flags.warmup, steps: flags.steps });
  const t = summarize(r.samples);
  const out: ChildResult = {
    arch: s.arch, device, threads: threadsInfo().threads, params: paramCount(cfg), tokensPerStep: s.batch * s.seq,
    stepMs: { median: t.median, min: t.min, samples: t.samples }, compileMs: r.compileMs,
    lossFirst: r.lossFirst, lossLast: r.lossLast,
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
      extraBase.push([arch, b]);
      rows.push({ name: `torch ${arch} ${flags.device === 'wasm' ? `cpu ${b.threads}T ${b.blas}` : 'cuda'}`, value: b.tokens_per_s as number, unit: 'tok/s',
        note: `median ${(b.step_ms_median as number).toFixed(0)} ms, best ${(b.tokens_per_s_best as number).toFixed(0)} tok/s, torch ${b.torch}, loss ${(b.loss_first as number).toFixed(3)}→${(b.loss_last as number).toFixed(3)}, ${((b.params as number) / 1e6).toFixed(2)}M params` });
      console.error(`  ${rows[rows.length - 1]!.name}: ${(b.tokens_per_s as number).toFixed(0)} tok/s`);
    }
  }
  const tokps = (r: ChildResult) => r.tokensPerStep / (r.stepMs.median / 1000);
  // Best against best, on medians, per arch: our fastest thread count against PyTorch's fastest thread count. The
  // last line is the arch where we fare worst.
  const cases: BestVsBest[] = [];
  for (const arch of archs) {
    const theirs = extraBase.filter(([a]) => a === arch).map(([, b]) => b);
    if (theirs.length === 0) continue;
    const c = bestVsBest(
      ours.get(arch)!.map((r) => ({ label: `${arch} ${r.device} ${r.threads}T`, median: tokps(r) })),
      theirs.map((b) => ({ label: flags.device === 'wasm' ? `torch ${arch} cpu ${String(b.threads)}T` : `torch ${arch} cuda`, median: b.tokens_per_s as number })),
    );
    cases.push(c);
    rows.push(bestRow(`ratio ${arch} best/best`, c));
  }
  if (cases.length === 0) {
    console.log(rows.map((r) => `${r.name}: ${r.value.toFixed(1)} ${r.unit} ${r.note ?? ''}`).join('\n'));
    console.log(`no baseline${flags.baseline ? ' (it failed, see above)' : ' (--no-baseline)'}: no ratio`);
    return;
  }
  const head = worstCase(cases);
  report({
    name: 'train-step',
    device: dev,
    rows,
    ...head,
    extra: { headline: `${head.best.ours.label} vs ${head.best.baseline.label}`, config: archs.map(shape), ours: Object.fromEntries(ours), baseline: extraBase, command: `bench/train-step.ts ${process.argv.slice(2).join(' ')}` },
  });
}

await (flags.child ? child() : parent());
