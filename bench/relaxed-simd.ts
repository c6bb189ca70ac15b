// What relaxed SIMD's fused multiply-add (src/engine/relaxed-simd.ts) buys jax-js's wasm kernels on Node 20: the same
// work with jax-js's unfused kernels (ALIGNLAB_RELAXED_SIMD=0, f32x4 mul + add) and with relaxed_madd, each in its own
// child process (the choice is made once per process), alternating the two settings round by round so that the
// machine's drift hits both alike. Workloads, all single-threaded:
//   train    one training step of bench/train-step.ts's GPT-2 shape (L4 C256 V4096, B8 T128), tokens/s;
//   decode1  greedy decoding at batch 1 of bench/generate.ts's 10.8M Llama, tokens/s;
//   decode8  the same at batch 8 (what `alignlab serve` runs with 8 concurrent requests), tokens/s.
// The last line is fused / unfused for the workload where fusing gains least, medians over the rounds.
//   node --import tsx bench/relaxed-simd.ts [--rounds 3] [--workloads train,decode1,decode8]
import { spawnSync } from 'node:child_process';
import { parseFlags } from '../src/cli/args.js';
import { deviceInfo, report, summarize, type Row } from './lib.js';

const flags = parseFlags(process.argv.slice(2), {
  rounds: { type: 'number', default: 3, help: 'alternating off/on rounds' },
  workloads: { type: 'string', default: 'train,decode1,decode8' },
  child: { type: 'string', default: '', help: '(internal) run one workload and print its tokens/s' },
});

const WORKLOADS = ['train', 'decode1', 'decode8'] as const;
type Workload = (typeof WORKLOADS)[number];

async function child(w: Workload): Promise<void> {
  const { initEngine, wasmFma } = await import('../src/engine/index.js');
  const { tinyConfig } = await import('../src/formats/config.js');
  await initEngine('wasm');
  let tokensPerS: number;
  if (w === 'train') {
    const { timeTrainStep } = await import('./step.js');
    const cfg = tinyConfig('gpt2', { vocabSize: 4096, hiddenSize: 256, numLayers: 4, numHeads: 4, numKvHeads: 4, headDim: 64, intermediateSize: 1024, maxPositions: 128, tieEmbeddings: true, normEps: 1e-5 });
    const r = await timeTrainStep(cfg, 8, 128, { warmup: 1, steps: 3 });
    tokensPerS = (8 * 128) / (summarize(r.samples).median / 1000);
  } else {
    const { initHostParams } = await import('../src/model/params.js');
    const { toDevice } = await import('../src/model/weights.js');
    const { Sampler } = await import('../src/model/generate.js');
    const V = 4096, B = w === 'decode1' ? 1 : 8, maxNew = 64;
    const cfg = tinyConfig('llama', { vocabSize: V, hiddenSize: 384, numLayers: 6, numHeads: 6, numKvHeads: 2, headDim: 64, intermediateSize: 768, maxPositions: 256, tieEmbeddings: false, normEps: 1e-5, eosTokenId: V - 1, bosTokenId: V - 1 });
    const params = toDevice(initHostParams(cfg, 0));
    const sampler = new Sampler(cfg);
    const prompts = Array.from({ length: B }, (_, b) => Array.from({ length: 8 }, (_, j) => (b * 31 + j * 7) % (V - 1)));
    const opts = { maxNewTokens: maxNew, temperature: 0, eosId: null };
    await sampler.generate(params, prompts, opts);
    const seconds: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t = performance.now();
      await sampler.generate(params, prompts, opts);
      seconds.push((performance.now() - t) / 1000);
    }
    tokensPerS = (B * maxNew) / summarize(seconds).median;
  }
  console.log(JSON.stringify({ tokensPerS, fma: wasmFma }));
}

function run(w: Workload, fused: boolean): number {
  const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, '--child', w], {
    encoding: 'utf-8', env: { ...process.env, ALIGNLAB_RELAXED_SIMD: fused ? '1' : '0', ALIGNLAB_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(`${w} child (fused ${fused}) failed:\n${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { tokensPerS: number; fma: boolean };
  if (out.fma !== fused) throw new Error(`${w} child: asked for fused=${fused}, the engine reports ${out.fma} (is relaxed SIMD available here?)`);
  return out.tokensPerS;
}

async function parent(): Promise<void> {
  const list = flags.workloads.split(',').map((s) => s.trim()) as Workload[];
  for (const w of list) if (!WORKLOADS.includes(w)) throw new Error(`--workloads: unknown "${w}" (use ${WORKLOADS.join(', ')})`);
  const dev = deviceInfo({ device: 'wasm', threads: 1 });
  const off = new Map<Workload, number[]>(list.map((w) => [w, []])), on = new Map<Workload, number[]>(list.map((w) => [w, []]));
  for (let i = 0; i < flags.rounds; i++)
    for (const w of list) {
      // Alternate which setting goes first, so neither always runs on the warmer machine.
      const order = i % 2 === 0 ? [false, true] : [true, false];
      for (const fused of order) (fused ? on : off).get(w)!.push(run(w, fused));
      console.error(`  round ${i + 1} ${w}: unfused ${off.get(w)!.at(-1)!.toFixed(0)}, fused ${on.get(w)!.at(-1)!.toFixed(0)} tok/s`);
    }
  const med = (xs: number[]) => summarize(xs).median;
  const rows: Row[] = [];
  let worst: Workload = list[0]!;
  for (const w of list) {
    const a = med(off.get(w)!), b = med(on.get(w)!);
    rows.push({ name: `${w}, unfused (mul + add)`, value: a, unit: 'tok/s', note: `runs ${off.get(w)!.map((x) => x.toFixed(0)).join(', ')}` });
    rows.push({ name: `${w}, relaxed_madd`, value: b, unit: 'tok/s', note: `runs ${on.get(w)!.map((x) => x.toFixed(0)).join(', ')}; ${(b / a).toFixed(3)}x` });
    if (b / a < med(on.get(worst)!) / med(off.get(worst)!)) worst = w;
  }
  report({
    name: 'relaxed-simd', device: dev, rows, ours: med(on.get(worst)!), baseline: med(off.get(worst)!),
    best: { ours: { label: `${worst}, relaxed_madd`, median: med(on.get(worst)!) }, baseline: { label: `${worst}, unfused`, median: med(off.get(worst)!) } },
    extra: { on: Object.fromEntries(on), off: Object.fromEntries(off), command: `bench/relaxed-simd.ts ${process.argv.slice(2).join(' ')}` },
  });
}

await (flags.child ? child(flags.child as Workload) : parent());
