// Generation throughput with a KV cache: our Sampler (src/model/generate.ts) against llama.cpp on the GGUF we
// export of the same model, measured in the same run.
//
//   node --import tsx bench/generate.ts                          # batch 1 and 16, 128 new tokens, 1 and 2 threads each side
//   node --import tsx bench/generate.ts --threads 1 --llama-threads 1 --repeats 3
//   node --import tsx bench/generate.ts --batches 1 --rounds 5   # both sides measured in turn 5 times (machine drift)
//
// Model: Llama architecture, ~10.8M parameters (L=6 C=384 H=6 KV heads 2 (GQA) MLP 768 V=4096, untied head),
// random init (src/model/params.ts initHostParams), byte-level tokenizer (256 byte tokens; ids 256… are unused
// padding entries, as convert_hf_to_gguf pads a vocabulary). It is saved as an HF directory (saveHFDir), loaded back
// (loadHFDir) for our side, and exported from that to an f32 GGUF (writeGGUF) for llama.cpp.
//
// Both sides: greedy decoding, prompts of `--prompt-len` random byte tokens, exactly `--max-new` new tokens per row
// (no EOS stop), prefill included in the time, no detokenization. tokens/s = B·max-new / wall time, median over
// `--repeats` after one warm-up generation. With `--rounds N` every setting of both sides is measured N times, the
// sides taking turns (ours, llama.cpp, ours, ...), and each setting's value is the median of its N round medians: the
// machine's speed drifts by ±20% over minutes, which one pass of each side one after the other cannot tell from a
// difference between them.
//   ours       Sampler.generate, one child process per jax-js thread count (ALIGNLAB_THREADS, src/engine/threads.ts).
//   llama.cpp  node-llama-cpp 3.21.1, CPU, f32 KV cache, each of `--llama-threads` thread counts (default 1 and 2):
//              batch 1 through src/eval/providers/llamacpp.ts LlamaCppChild (its own child process; the time is the
//              child's own `seconds`, which excludes IPC), and through bench/baselines/llamacpp_gen.ts (the faster of
//              the two is the baseline: the provider's child also detokenizes and checks stop strings every token);
//              batch > 1 through bench/baselines/llamacpp_gen.ts only, as B parallel sequences of one context that
//              llama.cpp evaluates in one batch (LlamaCppChild has a single sequence).
// The last line is best against best, on medians: per batch size, ours at our fastest thread count against llama.cpp
// at its fastest setting (thread count, and at batch 1 LlamaCppChild or llamacpp_gen.ts); the batch size where we fare
// worst is the one printed. The line before names both settings.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags } from '../src/cli/args.js';
import { BENCH_DIR, bestRow, bestVsBest, deviceInfo, report, runBaseline, summarize, worstCase, type BaselineResult, type Row, type Setting } from './lib.js';

const flags = parseFlags(process.argv.slice(2), {
  batches: { type: 'string', default: '1,16' },
  threads: { type: 'string', default: '1,2', help: 'jax-js wasm pool sizes for our side, one child process each' },
  'llama-threads': { type: 'string', default: '1,2', help: 'llama.cpp thread counts (the ratio takes the fastest)' },
  'max-new': { type: 'number', default: 128 },
  'prompt-len': { type: 'number', default: 8 },
  repeats: { type: 'number', default: 2 },
  rounds: { type: 'number', default: 1, help: 'measure every setting of both sides this many times, taking turns' },
  layers: { type: 'number', default: 6 },
  dim: { type: 'number', default: 384 },
  heads: { type: 'number', default: 6 },
  'kv-heads': { type: 'number', default: 2 },
  ffn: { type: 'number', default: 768 },
  vocab: { type: 'number', default: 4096 },
  seed: { type: 'number', default: 0 },
  keep: { type: 'boolean', default: false, help: 'keep the temp model directory' },
  child: { type: 'boolean', default: false },
  model: { type: 'string', default: '' },
  prompts: { type: 'string', default: '' },
});

const list = (s: string, what: string) =>
  s.split(',').map((x) => {
    const n = Number(x.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${what}: "${s}" is not a list of positive integers`);
    return n;
  });

interface OursResult {
  threads: number;
  runs: { batch: number; tokensPerS: number; bestTokensPerS: number; seconds: number[]; firstMs: number; tokens0: number[] }[];
  peakRssMB: number;
}

// ---- child: our Sampler at one thread count --------------------------------------------------------

async function child(): Promise<void> {
  const { threadsInfo, checkThreads } = await import('../src/engine/threads.js'); // before @jax-js/jax
  const { initEngine } = await import('../src/engine/index.js');
  const { loadHFDir } = await import('../src/formats/hf.js');
  const { toDevice } = await import('../src/model/weights.js');
  const { Sampler } = await import('../src/model/generate.js');
  await initEngine('wasm');
  await checkThreads();
  const dir = await loadHFDir(flags.model, { tokenizer: 'skip' });
  const params = toDevice(dir.params);
  const sampler = new Sampler(dir.config);
  const all = JSON.parse(flags.prompts) as Record<string, number[][]>;
  const out: OursResult = { threads: threadsInfo().threads, runs: [], peakRssMB: 0 };
  for (const B of list(flags.batches, 'batches')) {
    const prompts = all[B]!;
    const opts = { maxNewTokens: flags['max-new'], temperature: 0, eosId: null };
    const seconds: number[] = [];
    let tokens0: number[] = [];
    let firstMs = 0;
    for (let r = 0; r < flags.repeats + 1; r++) {
      const t0 = performance.now();
      const gens = await sampler.generate(params, prompts, opts);
      const s = (performance.now() - t0) / 1000;
      for (const [b, g] of gens.entries()) if (g.tokenIds.length !== flags['max-new']) throw new Error(`ours: row ${b} has ${g.tokenIds.length} tokens`);
      if (r === 0) firstMs = s * 1000;
      else seconds.push(s);
      tokens0 = gens[0]!.tokenIds;
    }
    const t = summarize(seconds);
    const n = B * flags['max-new'];
    out.runs.push({ batch: B, tokensPerS: n / t.median, bestTokensPerS: n / t.min, seconds, firstMs, tokens0 });
  }
  sampler.dispose();
  out.peakRssMB = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify(out));
}

// ---- parent ---------------------------------------------------------------------------------------

/** Length of the common prefix of two token lists. */
const agree = (a: number[], b: number[]) => {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
};

async function parent(): Promise<void> {
  const { Rng } = await import('../src/engine/index.js');
  const { tinyConfig, paramCount } = await import('../src/formats/config.js');
  const { initHostParams } = await import('../src/model/params.js');
  const { saveHFDir, loadHFDir } = await import('../src/formats/hf.js');
  const { writeGGUF } = await import('../src/formats/gguf.js');
  const { byteLevelTokenizerJson } = await import('../src/formats/tokenizer.js');
  const { LlamaCppChild } = await import('../src/eval/providers/llamacpp.js');

  const batches = list(flags.batches, 'batches');
  const threadList = list(flags.threads, 'threads');
  const maxNew = flags['max-new'], P = flags['prompt-len'], llamaThreads = list(flags['llama-threads'], 'llama-threads');
  const C = flags.dim, H = flags.heads;
  const V = flags.vocab;
  // EOS = the last (unused) id: llama.cpp's LlamaCppChild stops at EOS, and a random model should not hit it. Our
  // side and llamacpp_gen.ts ignore EOS anyway.
  const cfg = tinyConfig('llama', {
    vocabSize: V, hiddenSize: C, numLayers: flags.layers, numHeads: H, numKvHeads: flags['kv-heads'], headDim: C / H,
    intermediateSize: flags.ffn, maxPositions: 256, tieEmbeddings: false, normEps: 1e-5, eosTokenId: V - 1, bosTokenId: V - 1,
  });
  if (P + maxNew > cfg.maxPositions) throw new Error(`--prompt-len + --max-new must be at most ${cfg.maxPositions}`);
  const dev = deviceInfo({ device: 'wasm', threads: Math.max(...threadList) });

  const tmp = mkdtempSync(join(tmpdir(), 'alignlab-bench-gen-'));
  try {
    const modelDir = join(tmp, 'model');
    await saveHFDir(modelDir, { config: cfg, params: initHostParams(cfg, flags.seed), tokenizerJson: byteLevelTokenizerJson([]) });
    const loaded = await loadHFDir(modelDir);
    const gguf = join(tmp, 'model.gguf');
    writeGGUF(gguf, { config: loaded.config, params: loaded.params, tokenizerJson: loaded.tokenizer!.json });

    const rng = new Rng(flags.seed + 7);
    const prompts: Record<number, number[][]> = {};
    for (const B of batches) prompts[B] = Array.from({ length: B }, () => Array.from({ length: P }, () => rng.int(256)));

    const rows: Row[] = [];
    const ours: OursResult[] = [];
    if (!Number.isInteger(flags.rounds) || flags.rounds < 1) throw new Error(`--rounds must be a positive integer, got ${flags.rounds}`);
    // Per setting label, its median tokens/s in each round (the row's value is the median over rounds).
    const perRound = new Map<string, number[]>();
    const record = (label: string, v: number) => perRound.set(label, [...(perRound.get(label) ?? []), v]);
    const overRounds = (label: string) => summarize(perRound.get(label)!).median;
    const roundsNote = (label: string) => (flags.rounds > 1 ? `; rounds ${perRound.get(label)!.map((v) => v.toFixed(0)).join(', ')}` : '');
    const base = new Map<number, Setting[]>();
    const gen = new Map<number, BaselineResult>(); // per batch, the first thread count's run (for the greedy check)
    for (let round = 0; round < flags.rounds; round++) {
      if (flags.rounds > 1) console.error(`round ${round + 1} of ${flags.rounds}`);
      const last = round === flags.rounds - 1;
      for (const n of threadList) {
        const r = (await runBaseline(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '--child', '--model', modelDir, '--prompts', JSON.stringify(prompts)], {
          env: { ALIGNLAB_THREADS: String(n) },
        })) as unknown as OursResult;
        if (round === 0) ours.push(r);
        for (const run of r.runs) {
          const name = `ours B=${run.batch} ${r.threads}T`;
          record(name, run.tokensPerS);
          console.error(`  ${name}: ${run.tokensPerS.toFixed(0)} tok/s`);
          if (last)
            rows.push({ name, value: overRounds(name), unit: 'tok/s',
              note: `best ${run.bestTokensPerS.toFixed(0)}, ${(run.seconds.reduce((a, b) => a + b, 0) / run.seconds.length).toFixed(2)} s/gen mean, 1st gen (compiles) ${(run.firstMs / 1000).toFixed(1)} s, RSS ${r.peakRssMB.toFixed(0)} MB${roundsNote(name)}` });
        }
      }

      // llama.cpp at every thread count: batch 1 through the provider's child process, every batch size through
      // llamacpp_gen.ts (batch 1 too, as a check on the provider's number). Every setting is a baseline candidate.
      const addBase = (B: number, s: Setting) => base.set(B, [...(base.get(B) ?? []), s]);
      for (const lt of llamaThreads) {
        if (batches.includes(1)) {
          const llm = await LlamaCppChild.start(gguf, { threads: lt, contextSize: 256 });
          try {
            const secs: number[] = [];
            let counts: number[] = [];
            for (let r = 0; r < flags.repeats + 1; r++) {
              const g = await llm.generate(prompts[1]![0]!, { maxTokens: maxNew, temperature: 0 });
              if (r > 0) {
                secs.push(g.seconds);
                counts.push(g.tokens.length);
              }
            }
            const t = summarize(secs.map((s, i) => s / counts[i]!)); // seconds per token (it may stop early at EOS)
            counts = [...new Set(counts)];
            const name = `llama.cpp B=1 ${lt}T LlamaCppChild`;
            record(name, 1 / t.median);
            console.error(`  ${name}: ${(1 / t.median).toFixed(0)} tok/s`);
            if (last) {
              rows.push({ name, value: overRounds(name), unit: 'tok/s',
                note: `best ${(1 / t.min).toFixed(0)}, ${counts.join('/')} tokens per generation, time measured inside the child${roundsNote(name)}` });
              addBase(1, { label: name, median: overRounds(name) });
            }
          } finally {
            await llm.close();
          }
        }
        for (const B of batches) {
          const r = await runBaseline(process.execPath, ['--import', 'tsx', join(BENCH_DIR, 'baselines', 'llamacpp_gen.ts'), gguf,
            JSON.stringify({ batch: B, threads: lt, maxNew, repeats: flags.repeats, prompts: prompts[B] })]);
          if (!gen.has(B)) gen.set(B, r);
          const name = `llama.cpp B=${B} ${lt}T llamacpp_gen`;
          record(name, r.tokens_per_s as number);
          console.error(`  ${name}: ${(r.tokens_per_s as number).toFixed(0)} tok/s`);
          if (last) {
            rows.push({ name, value: overRounds(name), unit: 'tok/s', note: `best ${(r.tokens_per_s_best as number).toFixed(0)}, ${String(r.mode)}${roundsNote(name)}` });
            addBase(B, { label: name, median: overRounds(name) });
          }
        }
      }
    }

    // Greedy cross-check: our first row against llama.cpp's (same weights, so the same tokens until a near-tie).
    const ours1 = ours.find((o) => o.threads === 1) ?? ours[0]!;
    for (const B of batches) {
      const mine = ours1.runs.find((r) => r.batch === B)!.tokens0;
      const theirs = gen.get(B)!.tokens0 as number[];
      rows.push({ name: `greedy agreement B=${B}`, value: agree(mine, theirs), unit: 'tokens',
        note: `first row: common prefix of ours and llama.cpp (of ${maxNew})${B > 1 ? '; llama.cpp batches vary run to run, so near-ties may break differently' : ''}` });
    }

    // Best against best per batch size; the headline is the batch size where we fare worst.
    const cases = batches.map((B) => {
      const mine = ours.map((o) => ({ label: `B=${B} ${o.threads}T`, median: overRounds(`ours B=${B} ${o.threads}T`) }));
      const c = bestVsBest(mine, base.get(B)!);
      rows.push(bestRow(`ratio B=${B} best/best`, c));
      return { B, c };
    });
    const worst = worstCase(cases.map((x) => x.c));
    console.error(`model: ${(paramCount(cfg) / 1e6).toFixed(2)}M parameters`);
    report({
      name: 'generate',
      device: dev,
      rows,
      ...worst,
      extra: {
        headline: `${worst.best.ours.label} vs ${worst.best.baseline.label}`,
        params: paramCount(cfg),
        config: { layers: flags.layers, dim: C, heads: H, kvHeads: flags['kv-heads'], ffn: flags.ffn, vocab: V, promptLen: P, maxNew },
        ours,
        rounds: Object.fromEntries(perRound),
        llamacpp: Object.fromEntries([...gen].map(([k, v]) => [k, { ...v, tokens0: undefined }])),
        command: `bench/generate.ts ${process.argv.slice(2).join(' ')}`,
      },
    });
  } finally {
    if (!flags.keep) rmSync(tmp, { recursive: true, force: true });
    else console.error(`kept ${tmp}`);
  }
}

await (flags.child ? child() : parent());
