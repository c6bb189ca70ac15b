// Where a training step's time goes, kernel by kernel (jax-js profiler traces, single-threaded wasm: each
// dispatch is timed synchronously). Prints the kernels grouped by their expression, slowest first, with the
// FLOP rate of reductions, so a slow matmul layout or a swarm of small kernels shows up at once.
//
//   node --import tsx bench/profile-step.ts --arch gpt2 --steps 2     # a training step
//   node --import tsx bench/profile-step.ts --decode 8                 # decoding at batch 8 (bench/generate.ts's model)
//
// No baseline and no ratio: this is a diagnostic, not a claim (bench/train-step.ts makes the claims).

import { parseFlags } from '../src/cli/args.js';
import { STEP_SHAPE_FLAGS } from './step.js';

const flags = parseFlags(process.argv.slice(2), {
  arch: { type: 'string', default: 'gpt2', help: 'gpt2 | llama' },
  ...STEP_SHAPE_FLAGS,
  steps: { type: 'number', default: 2 },
  top: { type: 'number', default: 30 },
  decode: { type: 'number', default: 0, help: 'profile decoding at this batch size instead of a training step' },
  'max-new': { type: 'number', default: 64 },
});

process.env.ALIGNLAB_THREADS = '1';
const { initEngine } = await import('../src/engine/index.js');
const { tinyConfig } = await import('../src/formats/config.js');
const { timeTrainStep } = await import('./step.js');
const { profiler } = await import('@jax-js/jax');
await initEngine('wasm');
const C = flags.dim, gpt = flags.arch === 'gpt2';
let cfg: ReturnType<typeof tinyConfig>, wallMs: number, perWhat: number, unit: string;
if (flags.decode > 0) {
  // bench/generate.ts's model: Llama L6 C384 H6, 2 KV heads, MLP 768, V 4096, random init.
  const { initHostParams } = await import('../src/model/params.js');
  const { toDevice } = await import('../src/model/weights.js');
  const { Sampler } = await import('../src/model/generate.js');
  cfg = tinyConfig('llama', { vocabSize: 4096, hiddenSize: 384, numLayers: 6, numHeads: 6, numKvHeads: 2, headDim: 64, intermediateSize: 768, maxPositions: 256, tieEmbeddings: false, normEps: 1e-5, eosTokenId: 4095, bosTokenId: 4095 });
  const params = toDevice(initHostParams(cfg, 0));
  const sampler = new Sampler(cfg);
  const prompts = Array.from({ length: flags.decode }, (_, b) => Array.from({ length: 8 }, (_, j) => (b * 31 + j * 7) % 4000));
  const run = () => sampler.generate(params, prompts, { maxNewTokens: flags['max-new'], temperature: 0, eosId: -1 });
  await run();
  performance.clearMeasures();
  profiler.startTrace();
  const t0 = performance.now();
  await run();
  wallMs = performance.now() - t0;
  profiler.stopTrace();
  perWhat = flags['max-new'];
  unit = `decode step (B=${flags.decode})`;
} else {
  cfg = tinyConfig(gpt ? 'gpt2' : 'llama', {
    vocabSize: flags.vocab, hiddenSize: C, numLayers: flags.layers, numHeads: flags.heads, numKvHeads: flags.heads, headDim: C / flags.heads,
    intermediateSize: gpt ? 4 * C : 64 * Math.ceil((8 * C) / 3 / 64), maxPositions: flags.seq, tieEmbeddings: gpt, normEps: 1e-5,
  });
  await timeTrainStep(cfg, flags.batch, flags.seq, { warmup: 2, steps: 0 });
  performance.clearMeasures();
  profiler.startTrace();
  const t = await timeTrainStep(cfg, flags.batch, flags.seq, { warmup: 0, steps: flags.steps });
  profiler.stopTrace();
  wallMs = t.samples.reduce((a, b) => a + b, 0);
  perWhat = flags.steps;
  unit = `${flags.arch} training step`;
}
interface Group { n: number; ms: number; size: number; red: string; exp: string }
const groups = new Map<string, Group>();
let total = 0, count = 0;
for (const e of performance.getEntriesByType('measure')) {
  const props = Object.fromEntries(((e as PerformanceMeasure).detail as { devtools?: { properties?: [string, string][] } })?.devtools?.properties ?? []);
  const key = `${e.name} ${props.reduction ?? ''} ${props.exp ?? props.inputShapes ?? ''}`;
  const g = groups.get(key) ?? { n: 0, ms: 0, size: Number(props.size ?? 0), red: props.reduction ?? '', exp: String(props.exp ?? props.inputShapes ?? '') };
  g.n++;
  g.ms += e.duration;
  groups.set(key, g);
  total += e.duration;
  count++;
}
const per = (x: number) => x / perWhat;
console.log(`per ${unit}: wall ${per(wallMs).toFixed(2)} ms, in kernels ${per(total).toFixed(2)} ms, ${per(count).toFixed(0)} dispatches`);
const rows = [...groups.values()].sort((a, b) => b.ms - a.ms).slice(0, flags.top);
for (const g of rows) {
  const rsize = Number(g.red.split(':')[1] ?? 0);
  const gflops = rsize ? (2 * g.size * rsize * g.n) / (g.ms / 1000) / 1e9 : 0;
  console.log(`${per(g.ms).toFixed(3).padStart(8)} ms ${per(g.n).toFixed(1).padStart(5)}x size ${String(g.size).padStart(8)} ${g.red.padEnd(10)} ${gflops ? gflops.toFixed(1).padStart(5) + ' GF/s' : '          '} ${g.exp.slice(0, 150)}`);
}
