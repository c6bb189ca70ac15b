// The GPU benchmark, in one prepared script for a GPU machine (no Node there, no network: shared/gpu/README.md).
// Ours on jax-js's webgpu backend (Dawn on Vulkan) against PyTorch fp32 (TF32 off) on the same GPU, each case in
// the same run, PyTorch through a python3 child process (bench/baselines/*.py):
//   matmul     an n×n @ n×n fp32 product (n = 4096)                                    torch_matmul.py
//   study      the training step (fwd + bwd + clip + AdamW, bench/step.ts) of the study's policy (src/study/config.ts:
//              Llama L2 C128 H4 KV2 MLP 352; V = the corpus's word count, T = the context, B = the pretraining batch)
//   gpt-l4     the CPU bench's GPT-2 shape: L4 C256 H4 V4096 T128 B8                   torch_step.py --device cuda
//   gpt2-small GPT-2 small: L12 C768 H12 V50257 T256 B8 (the odd vocabulary width kept: it is what users train)
//   generate   greedy decoding with a KV cache, the CPU bench's 10.8M Llama (L6 C384 H6 KV2 MLP 768 V4096), 8-token
//              prompts, 128 new tokens, batch 1 and 16                                   torch_generate.py
// Whole budget ≤ 8 minutes on an H100: cases run in that order, and once `--budget-s` has passed the remaining ones are
// skipped (and say so). Every case appends one JSON line to the results file as soon as it ends, so a run cut short
// keeps what it measured; the short table is printed last.
//
// Build and run (shared/gpu/README.md):
//   bash ../shared/gpu/prepare.sh bench/gpu.ts                 # here: bundles into .gpu/bench/gpu.mjs
//   bash .gpu/run.sh bench/gpu.mjs                             # on the GPU machine (results under $OUT if set)
// Check here first, on Mesa llvmpipe, with tiny shapes and PyTorch on the CPU:
//   ALIGNLAB_GPU_TINY=1 node --import tsx bench/gpu.ts --torch-device cpu --python /usr/bin/python3
//   ALIGNLAB_GPU_TINY=1 bash .gpu/run.sh bench/gpu.mjs --torch-device cpu --python /usr/bin/python3   (the bundle)

import { closeSync, existsSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseFlags } from '../src/cli/args.js';
import { BENCH_DIR, deviceInfo, formatTable, ratioOf, runBaseline, summarize, type Row } from './lib.js';

const flags = parseFlags(process.argv.slice(2), {
  device: { type: 'string', default: 'webgpu', help: 'our jax-js device (webgpu; wasm for a CPU comparison)' },
  'torch-device': { type: 'string', default: 'cuda', help: 'cuda on the GPU machine; cpu for the llvmpipe check here' },
  python: { type: 'string', default: 'python3' },
  tiny: { type: 'boolean', default: process.env.ALIGNLAB_GPU_TINY === '1', help: 'tiny shapes (also ALIGNLAB_GPU_TINY=1): checks the script, measures nothing' },
  only: { type: 'string', default: '', help: 'comma list of cases (matmul, study, gpt-l4, gpt2-small, generate)' },
  'budget-s': { type: 'number', default: 420, help: 'start no new case after this many seconds' },
  out: { type: 'string', default: '', help: 'results file (JSON lines); default $OUT/gpu-results-<time>.jsonl or the temp dir' },
  warmup: { type: 'number', default: 2 },
  steps: { type: 'number', default: 5 },
});

const tiny = flags.tiny;
const t0 = performance.now();
const elapsedS = () => (performance.now() - t0) / 1000;

/** A new results file, never an existing one (results are not overwritten). */
function openResults(): { path: string; write(o: object): void; close(): void } {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = process.env.OUT || tmpdir();
  let path = flags.out || join(dir, `gpu-results-${stamp}${tiny ? '-tiny' : ''}.jsonl`);
  mkdirSync(resolve(path, '..'), { recursive: true });
  for (let i = 1; existsSync(path); i++) path = path.replace(/(\.\d+)?\.jsonl$/, `.${i}.jsonl`);
  const fd = openSync(path, 'wx');
  return {
    path,
    write: (o) => writeSync(fd, JSON.stringify(o) + '\n'),
    close: () => closeSync(fd),
  };
}

/** A baseline script next to this file, or (bundled under .gpu/bench/) in the repository's bench/baselines. */
function baselineScript(name: string): string {
  const cands = [join(BENCH_DIR, 'baselines', name), resolve(BENCH_DIR, '..', '..', 'bench', 'baselines', name)];
  const hit = cands.find((p) => existsSync(p));
  if (!hit) throw new Error(`${name} not found (looked at ${cands.join(', ')})`);
  return hit;
}

const torch = (script: string, args: (string | number)[]) =>
  runBaseline(flags.python, [baselineScript(script), ...args.map(String), '--device', flags['torch-device']], { timeoutMs: 5 * 60_000 });

interface CaseResult {
  case: string;
  unit: string;
  ours: number;
  torch: number;
  /** Anything else: our samples, compile time, the baseline's JSON. */
  detail: Record<string, unknown>;
}

// ---- the cases ------------------------------------------------------------------------------------------

async function matmul(): Promise<CaseResult[]> {
  const { blockUntilReady } = await import('@jax-js/jax');
  const { np } = await import('../src/engine/index.js');
  const n = tiny ? 256 : 4096, reps = tiny ? 3 : 20;
  let s = 1;
  const host = () => Float32Array.from({ length: n * n }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1);
  const a = np.array(host(), { shape: [n, n] }), b = np.array(host(), { shape: [n, n] });
  const samples: number[] = [];
  for (let i = 0; i < 3 + reps; i++) {
    const c0 = performance.now();
    const c = np.matmul(a.ref, b.ref);
    await blockUntilReady(c);
    if (i >= 3) samples.push(performance.now() - c0);
    c.dispose();
    await new Promise((r) => setImmediate(r));
  }
  a.dispose();
  b.dispose();
  const t = summarize(samples), flop = 2 * n ** 3;
  const base = await torch('torch_matmul.py', ['--n', n, '--reps', reps]);
  return [{ case: `matmul ${n}³ fp32`, unit: 'TFLOP/s', ours: flop / (t.median / 1000) / 1e12, torch: base.tflops as number, detail: { n, oursMs: t, torch: base } }];
}

interface TrainShape { name: string; arch: 'gpt2' | 'llama'; layers: number; dim: number; heads: number; kvHeads: number; vocab: number; seq: number; batch: number; ffn: number; tied: boolean }

async function trainCase(s: TrainShape): Promise<CaseResult[]> {
  const { tinyConfig, paramCount } = await import('../src/formats/config.js');
  const { timeTrainStep } = await import('./step.js');
  const cfg = tinyConfig(s.arch, {
    vocabSize: s.vocab, hiddenSize: s.dim, numLayers: s.layers, numHeads: s.heads, numKvHeads: s.kvHeads, headDim: s.dim / s.heads,
    intermediateSize: s.ffn, maxPositions: s.seq, tieEmbeddings: s.tied, normEps: 1e-5,
  });
  const r = await timeTrainStep(cfg, s.batch, s.seq, { warmup: flags.warmup, steps: flags.steps });
  const t = summarize(r.samples), tokens = s.batch * s.seq;
  const base = await torch('torch_step.py', ['--arch', s.arch === 'gpt2' ? 'gpt' : 'llama', '--layers', s.layers, '--dim', s.dim, '--heads', s.heads,
    '--kv-heads', s.kvHeads, '--vocab', s.vocab, '--seq', s.seq, '--batch', s.batch, '--ffn', s.ffn, '--tied', s.tied ? 1 : 0,
    '--warmup', flags.warmup, '--steps', flags.steps]);
  return [{
    case: `train ${s.name}`, unit: 'tok/s', ours: tokens / (t.median / 1000), torch: base.tokens_per_s as number,
    detail: { shape: s, params: paramCount(cfg), oursMs: t, compileMs: r.compileMs, loss: [r.lossFirst, r.lossLast], torch: base },
  }];
}

async function generate(): Promise<CaseResult[]> {
  const { tinyConfig, paramCount } = await import('../src/formats/config.js');
  const { initHostParams } = await import('../src/model/params.js');
  const { toDevice } = await import('../src/model/weights.js');
  const { Sampler } = await import('../src/model/generate.js');
  const { free } = await import('../src/engine/index.js');
  const m = tiny ? { layers: 1, dim: 64, heads: 2, kvHeads: 1, ffn: 128, vocab: 512 } : { layers: 6, dim: 384, heads: 6, kvHeads: 2, ffn: 768, vocab: 4096 };
  const P = 8, maxNew = tiny ? 8 : 128, repeats = tiny ? 1 : 3, batches = tiny ? [1, 2] : [1, 16];
  const cfg = tinyConfig('llama', {
    vocabSize: m.vocab, hiddenSize: m.dim, numLayers: m.layers, numHeads: m.heads, numKvHeads: m.kvHeads, headDim: m.dim / m.heads,
    intermediateSize: m.ffn, maxPositions: 256, tieEmbeddings: false, normEps: 1e-5,
  });
  const params = toDevice(initHostParams(cfg, 0));
  const sampler = new Sampler(cfg);
  const out: CaseResult[] = [];
  try {
    for (const B of batches) {
      let s = 7;
      const prompts = Array.from({ length: B }, () => Array.from({ length: P }, () => (s = (s * 16807) % 2147483647) % 256));
      const secs: number[] = [];
      for (let r = 0; r < repeats + 1; r++) {
        const g0 = performance.now();
        const gens = await sampler.generate(params, prompts, { maxNewTokens: maxNew, temperature: 0, eosId: null });
        if (gens.some((g) => g.tokenIds.length !== maxNew)) throw new Error('generate: a row stopped early');
        if (r > 0) secs.push((performance.now() - g0) / 1000);
      }
      const t = summarize(secs);
      const base = await torch('torch_generate.py', ['--layers', m.layers, '--dim', m.dim, '--heads', m.heads, '--kv-heads', m.kvHeads, '--ffn', m.ffn,
        '--vocab', m.vocab, '--batch', B, '--prompt-len', P, '--max-new', maxNew, '--repeats', repeats]);
      out.push({ case: `generate B=${B}`, unit: 'tok/s', ours: (B * maxNew) / t.median, torch: base.tokens_per_s as number,
        detail: { model: m, params: paramCount(cfg), maxNew, oursSeconds: t, torch: { ...base, tokens0: undefined } } });
    }
  } finally {
    sampler.dispose();
    free(params);
  }
  return out;
}

async function studyShape(): Promise<TrainShape> {
  const { resolveStudyConfig } = await import('../src/study/config.js');
  const s = resolveStudyConfig();
  const m = s.model;
  if (tiny) return { name: 'study (tiny)', arch: 'llama', layers: 1, dim: m.hidden / 2, heads: m.heads, kvHeads: m.kvHeads, vocab: 512, seq: 16, batch: 4, ffn: 128, tied: false };
  return { name: `study L${m.layers} C${m.hidden} V${s.corpus.vocabSize} T${m.context} B${s.pretrain.batchSize}`, arch: 'llama', layers: m.layers, dim: m.hidden,
    heads: m.heads, kvHeads: m.kvHeads, vocab: s.corpus.vocabSize, seq: m.context, batch: s.pretrain.batchSize, ffn: m.intermediate, tied: false };
}

const CASES: Record<string, () => Promise<CaseResult[]>> = {
  matmul,
  study: async () => trainCase(await studyShape()),
  'gpt-l4': () => trainCase(tiny
    ? { name: 'gpt L1 C64 (tiny)', arch: 'gpt2', layers: 1, dim: 64, heads: 2, kvHeads: 2, vocab: 256, seq: 32, batch: 2, ffn: 256, tied: true }
    : { name: 'gpt L4 C256 V4096 T128 B8', arch: 'gpt2', layers: 4, dim: 256, heads: 4, kvHeads: 4, vocab: 4096, seq: 128, batch: 8, ffn: 1024, tied: true }),
  'gpt2-small': () => trainCase(tiny
    ? { name: 'gpt2-small (tiny: L2 C128 V1001 T32 B2)', arch: 'gpt2', layers: 2, dim: 128, heads: 2, kvHeads: 2, vocab: 1001, seq: 32, batch: 2, ffn: 512, tied: true }
    : { name: 'gpt2-small L12 C768 V50257 T256 B8', arch: 'gpt2', layers: 12, dim: 768, heads: 12, kvHeads: 12, vocab: 50257, seq: 256, batch: 8, ffn: 3072, tied: true }),
  generate,
};

// ---- main ----------------------------------------------------------------------------------------------

async function adapterName(): Promise<string | null> {
  try {
    const nav = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<{ info?: Record<string, string> } | null> } } }).navigator;
    const a = await nav?.gpu?.requestAdapter();
    const i = a?.info;
    return i ? [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') : null;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const names = flags.only ? flags.only.split(',').map((x) => x.trim()) : Object.keys(CASES);
  for (const n of names) if (!CASES[n]) throw new Error(`--only: unknown case "${n}" (cases: ${Object.keys(CASES).join(', ')})`);
  const { initEngine } = await import('../src/engine/index.js');
  const device = await initEngine(flags.device);
  const results = openResults();
  const machine = { ...deviceInfo({ device, threads: null }), adapter: await adapterName(), torchDevice: flags['torch-device'], tiny };
  results.write({ kind: 'machine', ...machine });
  console.error(`gpu bench: ours on ${device} (${machine.adapter ?? 'adapter unknown'}), PyTorch on ${flags['torch-device']}${tiny ? ', TINY shapes (a check, not a measurement)' : ''}; results → ${results.path}`);
  const rows: Row[] = [];
  let failed = 0;
  for (const name of names) {
    if (elapsedS() > flags['budget-s']) {
      results.write({ kind: 'skipped', case: name, why: `budget ${flags['budget-s']} s passed` });
      rows.push({ name, value: 0, unit: '-', note: `skipped: budget ${flags['budget-s']} s passed` });
      continue;
    }
    const c0 = elapsedS();
    try {
      for (const r of await CASES[name]!()) {
        const ratio = ratioOf({ ours: r.ours, baseline: r.torch });
        results.write({ kind: 'case', ...r, ratio, seconds: elapsedS() - c0 });
        rows.push({ name: r.case, value: ratio, unit: 'x torch', note: `ours ${r.ours.toPrecision(4)} / torch ${r.torch.toPrecision(4)} ${r.unit}` });
        console.error(`  ${r.case}: ours ${r.ours.toPrecision(4)} ${r.unit}, torch ${r.torch.toPrecision(4)}, ratio ${ratio.toFixed(3)} (${(elapsedS() - c0).toFixed(0)} s)`);
      }
    } catch (e) {
      failed++;
      const msg = (e as Error).message.split('\n').slice(0, 6).join(' | ');
      results.write({ kind: 'error', case: name, error: (e as Error).message, seconds: elapsedS() - c0 });
      rows.push({ name, value: 0, unit: '-', note: `FAILED: ${msg.slice(0, 160)}` });
      console.error(`  ${name} FAILED: ${msg}`);
    }
  }
  results.close();
  console.log(formatTable(rows));
  console.log(`ours ${device} (${machine.adapter ?? '?'}) vs PyTorch fp32 ${flags['torch-device']}; ${elapsedS().toFixed(0)} s; full results: ${results.path}${tiny ? '\nTINY shapes: a check of the script, not a measurement' : ''}`);
  if (failed) process.exitCode = 1;
}

await main();
process.exit(process.exitCode ?? 0); // Dawn's device keeps the event loop alive
