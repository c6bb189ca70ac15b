// Continuous batching in `alignlab serve`: 8 concurrent completions against the same 8 sent one after another,
// on the same server process, in the same run.
//
//   node --import tsx bench/serve-batching.ts                  # 8 requests x 32 tokens, 2 timed rounds per mode
//   node --import tsx bench/serve-batching.ts --requests 4 --max-tokens 16 --repeats 1
//
// Model: a random Llama made by `alignlab init` (default L=6 C=384 H=6, byte-level tokenizer, context 256: ~10.7M
// parameters), served by `alignlab serve` in its own child process (so client and server do not share an event
// loop), on 127.0.0.1. Requests: /v1/completions, greedy, `max_tokens` 32, prompts of different lengths (9 to 36
// bytes). A random model can emit its EOS early; the throughput counts the completion tokens the server reports.
//   sequential  each request sent when the previous one has answered (what a server without batching gives any load)
//   concurrent  all requests sent at once; the server admits them into its running batch between decode steps
// Each mode runs one untimed warm-up round (compiles the programs for every batch size), then `--repeats` timed
// rounds, alternating modes; tokens/s = completion tokens / wall time of the round, median over rounds.
// The last line is `ratio <concurrent tok/s / sequential tok/s>` (target >= 3 at 8 requests).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR, deviceInfo, report, summarize, type Row } from './lib.js';

const { values: f } = parseArgs({
  options: {
    requests: { type: 'string', default: '8' },
    'max-tokens': { type: 'string', default: '32' },
    repeats: { type: 'string', default: '2' },
    layers: { type: 'string', default: '6' },
    hidden: { type: 'string', default: '384' },
    heads: { type: 'string', default: '6' },
    context: { type: 'string', default: '256' },
    keep: { type: 'boolean', default: false },
  },
});
const int = (k: keyof typeof f) => {
  const n = Number(f[k]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${k} must be a positive integer, got ${String(f[k])}`);
  return n;
};
const N = int('requests'), MAX = int('max-tokens'), REPEATS = int('repeats');
const ROOT = join(BENCH_DIR, '..');
const ENTRY = join(ROOT, 'src/cli/entry.ts');

function run(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`alignlab ${args[0]} exited ${code}: ${err.trim()}`))));
  });
}

/** Starts `alignlab serve` on a free port; resolves with its base URL once it listens. */
function serve(dir: string): Promise<{ child: ChildProcess; base: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'serve', '--model', dir, '--port', '0', '--quiet', '--max-batch', String(Math.max(8, N))], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /serving \S+ at (http:\/\/\S+\/v1)/.exec(err);
      if (m) resolve({ child, base: m[1]! });
    });
    child.on('close', (code) => reject(new Error(`alignlab serve exited ${code} before listening: ${err.trim()}`)));
  });
}

const PROMPTS = Array.from({ length: N }, (_, i) => `Request ${i}: ${'tell me more, '.repeat(1 + (i % 3))}`.slice(0, 9 + ((i * 7) % 28)));

async function complete(base: string, prompt: string): Promise<number> {
  const res = await fetch(`${base}/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: MAX, temperature: 0 }),
  });
  const body = (await res.json()) as { usage?: { completion_tokens: number }; error?: { message: string } };
  if (!res.ok || !body.usage) throw new Error(`HTTP ${res.status}: ${body.error?.message ?? JSON.stringify(body)}`);
  return body.usage.completion_tokens;
}

async function round(base: string, mode: 'sequential' | 'concurrent'): Promise<{ ms: number; tokens: number }> {
  const t0 = performance.now();
  let tokens = 0;
  if (mode === 'concurrent') tokens = (await Promise.all(PROMPTS.map((p) => complete(base, p)))).reduce((a, b) => a + b, 0);
  else for (const p of PROMPTS) tokens += await complete(base, p);
  return { ms: performance.now() - t0, tokens };
}

const device = deviceInfo({ device: process.env.ALIGNLAB_DEVICE ?? 'wasm', threads: Number(process.env.ALIGNLAB_THREADS || 1) || null });
const dir = mkdtempSync(join(tmpdir(), 'alignlab-serve-bench-'));
let server: ChildProcess | undefined;
try {
  await run(['init', '--arch', 'llama', '--out', dir, '--layers', f.layers!, '--hidden', f.hidden!, '--heads', f.heads!, '--context', f.context!, '--seed', '1']);
  const s = await serve(dir);
  server = s.child;
  const tps: Record<'sequential' | 'concurrent', number[]> = { sequential: [], concurrent: [] };
  const ms: Record<'sequential' | 'concurrent', number[]> = { sequential: [], concurrent: [] };
  for (const mode of ['sequential', 'concurrent'] as const) await round(s.base, mode); // warm-up: compile every shape
  for (let r = 0; r < REPEATS; r++) {
    for (const mode of ['sequential', 'concurrent'] as const) {
      const x = await round(s.base, mode);
      tps[mode].push((x.tokens / x.ms) * 1000);
      ms[mode].push(x.ms);
      console.error(`round ${r + 1} ${mode}: ${x.tokens} tokens in ${x.ms.toFixed(0)} ms`);
    }
  }
  const seq = summarize(tps.sequential).median, conc = summarize(tps.concurrent).median;
  const rows: Row[] = [
    { name: `sequential ${N} x ${MAX} tokens`, value: seq, unit: 'tok/s', note: `median of ${REPEATS}; ${summarize(ms.sequential).median.toFixed(0)} ms per round` },
    { name: `concurrent ${N} x ${MAX} tokens`, value: conc, unit: 'tok/s', note: `median of ${REPEATS}; ${summarize(ms.concurrent).median.toFixed(0)} ms per round` },
  ];
  report({
    name: 'serve-batching',
    device,
    rows,
    ours: conc,
    baseline: seq,
    best: { ours: { label: `concurrent ${N}`, median: conc }, baseline: { label: 'sequential', median: seq } },
    extra: { requests: N, maxTokens: MAX, repeats: REPEATS, model: { layers: f.layers, hidden: f.hidden, heads: f.heads, context: f.context }, tps, ms },
  });
} finally {
  server?.kill('SIGTERM');
  if (!f.keep) rmSync(dir, { recursive: true, force: true });
}
