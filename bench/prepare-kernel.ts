// Minimal case for the jax-js workaround in src/engine/prepared.ts: every run of a jitted program prepares each
// kernel again, and the wasm backend's prepareKernel hashes the kernel's whole expression tree (BigInt arithmetic) to
// find its compiled module. Two measurements, same process:
//   1. the cost itself: one jitted RMSNorm-like program of a few kernels run N times with the memo off (jax-js as
//      shipped) and on, per kernel dispatch;
//   2. what it costs decoding: greedy decoding at batch 1 of bench/generate.ts's 10.8M Llama, alternating memo
//      off / on generation by generation.
// The last line is ours (memo) / baseline (jax-js as shipped), decode tokens/s, medians.
//   node --import tsx bench/prepare-kernel.ts [--rounds 6]
import { parseFlags } from '../src/cli/args.js';
import { deviceInfo, report, summarize, type Row } from './lib.js';

const flags = parseFlags(process.argv.slice(2), {
  rounds: { type: 'number', default: 6 },
});

process.env.ALIGNLAB_THREADS = '1';
const { initEngine, jit, np } = await import('../src/engine/index.js');
const { kernelPreparationMemoized, setKernelPreparationMemo } = await import('../src/engine/prepared.js');
const { tinyConfig } = await import('../src/formats/config.js');
const { initHostParams } = await import('../src/model/params.js');
const { toDevice } = await import('../src/model/weights.js');
const { Sampler } = await import('../src/model/generate.js');
await initEngine('wasm');
if (!kernelPreparationMemoized()) throw new Error('the workaround is not active (jax-js layout not found, or ALIGNLAB_KERNEL_PREPARE_CACHE=0)');

// 1. Per-dispatch cost on a small program: x / sqrt(mean(x²) + eps) * w, then a matmul.
type A = ReturnType<typeof np.array>;
const f = jit((x: A, w: A, m: A) => np.matmul(x.ref.div(np.sqrt(np.square(x).mean(-1, { keepdims: true }).add(1e-5))).mul(w), m));
const x = np.array(Float32Array.from({ length: 384 }, (_, i) => Math.sin(i)), { shape: [1, 384] });
const w = np.ones([384]), m = np.ones([384, 64]);
const perCall = async (on: boolean, n: number) => {
  setKernelPreparationMemo(on);
  const t = performance.now();
  for (let i = 0; i < n; i++) await f(x.ref, w.ref, m.ref).data();
  return ((performance.now() - t) * 1000) / n;
};
await perCall(false, 200);
await perCall(true, 200);
const smallOff = await perCall(false, 2000), smallOn = await perCall(true, 2000);

// 2. Decoding at batch 1.
const V = 4096;
const cfg = tinyConfig('llama', { vocabSize: V, hiddenSize: 384, numLayers: 6, numHeads: 6, numKvHeads: 2, headDim: 64, intermediateSize: 768, maxPositions: 256, tieEmbeddings: false, normEps: 1e-5, eosTokenId: V - 1, bosTokenId: V - 1 });
const params = toDevice(initHostParams(cfg, 0));
const sampler = new Sampler(cfg);
const prompt = [[1, 2, 3, 4, 5, 6, 7, 8]], opts = { maxNewTokens: 128, temperature: 0, eosId: null };
const decode = async (on: boolean) => {
  setKernelPreparationMemo(on);
  const t = performance.now();
  const [g] = await sampler.generate(params, prompt, opts);
  return { tokPerS: 128 / ((performance.now() - t) / 1000), ids: g!.tokenIds.join(',') };
};
const first = [await decode(false), await decode(true)];
if (first[0]!.ids !== first[1]!.ids) throw new Error('decoding with and without the memo gave different tokens');
const on: number[] = [], off: number[] = [];
for (let r = 0; r < flags.rounds; r++) {
  // Alternate which goes first, so neither always runs on the warmer machine.
  for (const memo of r % 2 === 0 ? [false, true] : [true, false]) (memo ? on : off).push((await decode(memo)).tokPerS);
}
const med = (xs: number[]) => summarize(xs).median;
const rows: Row[] = [
  { name: 'small jitted program, jax-js as shipped', value: smallOff, unit: 'µs/call', note: '4 kernels: RMSNorm-like + a [1,384]·[384,64] matmul, read back' },
  { name: 'small jitted program, prepared once', value: smallOn, unit: 'µs/call' },
  { name: 'decode B=1, jax-js as shipped', value: med(off), unit: 'tok/s', note: `10.8M Llama, 128 greedy tokens; runs ${off.map((v) => v.toFixed(0)).join(', ')}` },
  { name: 'decode B=1, prepared once', value: med(on), unit: 'tok/s', note: `runs ${on.map((v) => v.toFixed(0)).join(', ')}; same tokens` },
];
report({
  name: 'prepare-kernel', device: deviceInfo({ device: 'wasm', threads: 1 }), rows, ours: med(on), baseline: med(off),
  best: { ours: { label: 'prepared kernels kept (src/engine/prepared.ts)', median: med(on) }, baseline: { label: 'jax-js 0.1.25 as shipped', median: med(off) } },
  extra: { smallOff, smallOn, on, off, command: `bench/prepare-kernel.ts ${process.argv.slice(2).join(' ')}` },
});
