// Minimal case for the jax-js workaround in src/engine/instances.ts: on its single-threaded wasm path jax-js
// creates a new WebAssembly.Instance for every kernel dispatch. Two measurements, same run:
//   1. the cost itself: a module shaped like a jax-js kernel (imports env.memory, exports `kernel`, a 384-float
//      add), called N times with a new instance per call (what jax-js 0.1.25 does) and with one reused instance;
//   2. what it costs decoding: batch-1 greedy decoding of a random 10.8M Llama (bench/generate.ts's model) with
//      jax-js as shipped (ALIGNLAB_WASM_INSTANCE_CACHE=0) and with our cache, each in its own child process.
// The last line is ours (cache) / baseline (jax-js as shipped), decode tokens/s, medians.
//   node --import tsx bench/wasm-instances.ts [--repeats 5]
import { spawnSync } from 'node:child_process';
import { parseFlags } from '../src/cli/args.js';
import { deviceInfo, report, summarize, type Row } from './lib.js';

const flags = parseFlags(process.argv.slice(2), {
  repeats: { type: 'number', default: 5 },
  child: { type: 'boolean', default: false },
});

/** A jax-js-shaped kernel: (a, b, out, start, end) adds two float32 arrays of 384 values. Hand-assembled. */
function kernelModule(): WebAssembly.Module {
  const body = [
    0x01, 0x01, 0x7f, // one local i32: i
    0x41, 0x00, 0x21, 0x05, // i = 0
    0x02, 0x40, 0x03, 0x40, // block, loop
    0x20, 0x05, 0x41, 0x80, 0x0c, 0x4e, 0x0d, 0x01, // if i >= 1536 (384 floats × 4 bytes) break
    0x20, 0x02, 0x20, 0x05, 0x6a, // out + i
    0x20, 0x00, 0x20, 0x05, 0x6a, 0x2a, 0x02, 0x00, // f32.load a + i
    0x20, 0x01, 0x20, 0x05, 0x6a, 0x2a, 0x02, 0x00, // f32.load b + i
    0x92, 0x38, 0x02, 0x00, // f32.add, f32.store
    0x20, 0x05, 0x41, 0x04, 0x6a, 0x21, 0x05, 0x0c, 0x00, // i += 4; continue
    0x0b, 0x0b, 0x0b, // end loop, end block, end function
  ];
  const section = (id: number, bytes: number[]) => [id, bytes.length, ...bytes];
  const name = (s: string) => [s.length, ...Buffer.from(s)];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x01, 0x60, 0x05, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x00]), // type: (i32 × 5) → ()
    ...section(2, [0x01, ...name('env'), ...name('memory'), 0x02, 0x00, 0x01]), // import env.memory, min 1 page
    ...section(3, [0x01, 0x00]), // one function of type 0
    ...section(7, [0x01, ...name('kernel'), 0x00, 0x00]), // export it as `kernel`
    ...section(10, [0x01, body.length, ...body]),
  ];
  return new WebAssembly.Module(new Uint8Array(bytes));
}

function dispatchCost(n: number): { freshUs: number; reusedUs: number } {
  const module = kernelModule(), memory = new WebAssembly.Memory({ initial: 1 });
  type K = (a: number, b: number, out: number, s: number, e: number) => void;
  const time = (f: () => void) => {
    const t = performance.now();
    for (let i = 0; i < n; i++) f();
    return ((performance.now() - t) * 1000) / n;
  };
  // Bypass any cache: the native constructor, as jax-js calls it.
  const Native = Object.getPrototypeOf(new WebAssembly.Instance(module, { env: { memory } })).constructor as typeof WebAssembly.Instance;
  const fresh = () => (new Native(module, { env: { memory } }).exports.kernel as K)(0, 1536, 3072, 0, 384);
  const kernel = new Native(module, { env: { memory } }).exports.kernel as K;
  const reused = () => kernel(0, 1536, 3072, 0, 384);
  time(fresh); // warm up
  time(reused);
  return { freshUs: time(fresh), reusedUs: time(reused) };
}

async function child(): Promise<void> {
  const { initEngine } = await import('../src/engine/index.js');
  const { tinyConfig } = await import('../src/formats/config.js');
  const { initHostParams } = await import('../src/model/params.js');
  const { toDevice } = await import('../src/model/weights.js');
  const { Sampler } = await import('../src/model/generate.js');
  await initEngine('wasm');
  const V = 4096;
  const cfg = tinyConfig('llama', { vocabSize: V, hiddenSize: 384, numLayers: 6, numHeads: 6, numKvHeads: 2, headDim: 64, intermediateSize: 768, maxPositions: 256, tieEmbeddings: false, normEps: 1e-5, eosTokenId: V - 1, bosTokenId: V - 1 });
  const params = toDevice(initHostParams(cfg, 0));
  const sampler = new Sampler(cfg);
  const prompt = [[1, 2, 3, 4, 5, 6, 7, 8]], opts = { maxNewTokens: 128, temperature: 0, eosId: null };
  await sampler.generate(params, prompt, opts);
  const seconds: number[] = [];
  for (let r = 0; r < flags.repeats; r++) {
    const t = performance.now();
    await sampler.generate(params, prompt, opts);
    seconds.push((performance.now() - t) / 1000);
  }
  console.log(JSON.stringify({ tokensPerS: 128 / summarize(seconds).median }));
}

function decode(cache: boolean): number {
  const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, '--child', '--repeats', String(flags.repeats)], {
    encoding: 'utf-8', env: { ...process.env, ALIGNLAB_WASM_INSTANCE_CACHE: cache ? '1' : '0', ALIGNLAB_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(`decode child (cache ${cache}) failed:\n${r.stderr}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { tokensPerS: number }).tokensPerS;
}

async function parent(): Promise<void> {
  const dev = deviceInfo({ device: 'wasm', threads: 1 });
  const { freshUs, reusedUs } = dispatchCost(20_000);
  // Alternate the two settings; medians over the pairs.
  const on: number[] = [], off: number[] = [];
  for (let i = 0; i < 2; i++) {
    off.push(decode(false));
    on.push(decode(true));
  }
  const med = (xs: number[]) => summarize(xs).median;
  const rows: Row[] = [
    { name: 'dispatch, new instance per call', value: freshUs, unit: 'µs', note: 'a 384-float add; what jax-js 0.1.25 does per single-threaded kernel' },
    { name: 'dispatch, reused instance', value: reusedUs, unit: 'µs' },
    { name: 'decode B=1, jax-js as shipped', value: med(off), unit: 'tok/s', note: `10.8M Llama, 128 greedy tokens, median of ${flags.repeats}; runs ${off.map((x) => x.toFixed(0)).join(', ')}` },
    { name: 'decode B=1, instance cache', value: med(on), unit: 'tok/s', note: `runs ${on.map((x) => x.toFixed(0)).join(', ')}` },
  ];
  report({
    name: 'wasm-instances', device: dev, rows, ours: med(on), baseline: med(off),
    best: { ours: { label: 'instance cache (src/engine/instances.ts)', median: med(on) }, baseline: { label: 'jax-js 0.1.25 as shipped', median: med(off) } },
    extra: { freshUs, reusedUs, on, off, command: `bench/wasm-instances.ts ${process.argv.slice(2).join(' ')}` },
  });
}

await (flags.child ? child() : parent());
