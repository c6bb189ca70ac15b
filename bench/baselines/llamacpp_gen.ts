// llama.cpp generation baseline for bench/generate.ts: B prompts, N new tokens each, greedy, through node-llama-cpp.
//
// B > 1 runs as B *sequences of one context* (llama.cpp batches the B next-token evaluations into one decode
// call: node-llama-cpp's batching, strategy "maximumParallelism"), which is what our batched Sampler does; it is
// not B generations one after another. Every sequence generates exactly N tokens: EOG tokens are yielded and
// generation goes on (our side runs with eosId null), so both sides do the same amount of work.
// Same context settings as src/eval/providers/llamacpp-worker.ts (CPU, f32 KV cache, no flash attention).
//
//   node --import tsx bench/baselines/llamacpp_gen.ts MODEL.gguf '{"batch":16,"threads":1,"maxNew":128,"repeats":3,"prompts":[[1,2,3],...]}'
//
// Prints one JSON line: tokens_per_s (median over repeats, after one warm-up), seconds per repeat, the tokens
// of sequence 0 (for a greedy cross-check against our model), and the settings.

import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';

interface Opts {
  batch: number;
  threads: number;
  maxNew: number;
  repeats: number;
  prompts: number[][];
}

async function main(): Promise<void> {
  const [path, json] = process.argv.slice(2);
  if (!path || !json) throw new Error('usage: llamacpp_gen.ts MODEL.gguf OPTIONS_JSON');
  const o = JSON.parse(json) as Opts;
  if (o.prompts.length !== o.batch) throw new Error(`llamacpp_gen: ${o.prompts.length} prompts for batch ${o.batch}`);
  const llama = await getLlama({ gpu: false, build: 'never', skipDownload: true, progressLogs: false, maxThreads: o.threads, logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path, useMmap: false });
  const longest = Math.max(...o.prompts.map((p) => p.length));
  const context = await model.createContext({
    contextSize: longest + o.maxNew + 8, // per sequence
    sequences: o.batch,
    threads: o.threads,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  const seqs = Array.from({ length: o.batch }, () => context.getSequence());

  const genOne = async (b: number): Promise<number[]> => {
    const seq = seqs[b]!;
    await seq.clearHistory();
    const out: number[] = [];
    for await (const tok of seq.evaluate(o.prompts[b]! as Token[], { temperature: 0, yieldEogToken: true })) {
      out.push(tok);
      if (out.length >= o.maxNew) break;
    }
    return out;
  };

  const seconds: number[] = [];
  let first: number[] = [];
  for (let r = 0; r < o.repeats + 1; r++) {
    const t0 = performance.now();
    const outs = await Promise.all(seqs.map((_, b) => genOne(b))); // concurrent: llama.cpp batches the sequences
    const s = (performance.now() - t0) / 1000;
    for (const [b, toks] of outs.entries()) if (toks.length !== o.maxNew) throw new Error(`llamacpp_gen: sequence ${b} produced ${toks.length} tokens, expected ${o.maxNew}`);
    if (r > 0) seconds.push(s); // repeat 0 is the warm-up
    first = outs[0]!;
  }
  const sorted = [...seconds].sort((a, b) => a - b);
  const median = sorted.length % 2 ? sorted[sorted.length >> 1]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  const tokens = o.batch * o.maxNew;
  console.log(JSON.stringify({
    name: 'llamacpp_gen',
    batch: o.batch,
    threads: o.threads,
    maxNew: o.maxNew,
    mode: o.batch > 1 ? `${o.batch} parallel sequences of one context` : 'one sequence',
    tokens_per_s: tokens / median,
    tokens_per_s_best: tokens / sorted[0]!,
    seconds,
    tokens0: first,
  }));
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
