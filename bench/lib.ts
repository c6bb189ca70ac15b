// Helpers shared by every bench script: what machine ran it, timing (warm-up, then median and min of N),
// running a Python baseline from bench/baselines/ in the same run, and reporting.
//
// A bench script ends with `report(...)`, which prints a small table, appends one JSON line to
// bench/results/<name>.jsonl (raw history, not committed: bench/RESULTS.md is the curated record) and prints
// the last line `ratio <x>` = ours / baseline (higher is better for us, whatever the unit), where ours and baseline
// are each side at its own best setting (bestVsBest: medians; the line before names both settings).
//
// Numbers on this 2-core machine are noisy when other processes run: deviceInfo() records the load average
// at the start and end of the run so a reader can tell a quiet run from a contended one.

import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
/** Where report() appends its JSON lines; ALIGNLAB_BENCH_RESULTS moves it (format checks that are not results). */
export const RESULTS_DIR = process.env.ALIGNLAB_BENCH_RESULTS || join(BENCH_DIR, 'results');

export interface DeviceInfo {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  platform: string;
  jaxjs: string;
  /** The jax-js device the engine was initialised on, or null if it was not (yet). */
  device: string | null;
  /** jax-js wasm pool size (1 = single-threaded) from src/engine/threads.ts, if that module is loaded. */
  threads: number | null;
  loadavg1: number;
  date: string;
}

function jaxVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(BENCH_DIR, '..', 'node_modules', '@jax-js', 'jax', 'package.json'), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

/**
 * The machine and engine a number came from. Pass the engine's device and thread count if the script set
 * them up; they are not read from the engine here so that importing this file never loads jax-js (the
 * worker shim must be installed before the first import of @jax-js/jax).
 */
export function deviceInfo(engine: { device?: string | null; threads?: number | null } = {}): DeviceInfo {
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    jaxjs: jaxVersion(),
    device: engine.device ?? null,
    threads: engine.threads ?? null,
    loadavg1: Math.round(loadavg()[0]! * 100) / 100,
    date: new Date().toISOString(),
  };
}

export interface Timing {
  /** Milliseconds per call. */
  median: number;
  min: number;
  mean: number;
  n: number;
  samples: number[];
}

export function summarize(samples: number[]): Timing {
  if (samples.length === 0) throw new Error('summarize: no samples');
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, mean: s.reduce((a, b) => a + b, 0) / s.length, n: s.length, samples };
}

/**
 * Time `fn`: `warmup` untimed calls (jit compilation, caches), then `iters` timed ones. `fn` must finish its
 * work before resolving (read a result or `await blockUntilReady(...)`): jax-js is lazy and, with the wasm
 * thread pool, asynchronous.
 */
export async function timeIt(fn: () => unknown, opts: { warmup?: number; iters?: number } = {}): Promise<Timing> {
  const { warmup = 2, iters = 10 } = opts;
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return summarize(samples);
}

/** The JSON a baseline script prints as its last stdout line (any other fields are kept). */
export type BaselineResult = Record<string, unknown>;

/**
 * Run a baseline process and parse the last line of its stdout as JSON. Fails with the command, exit code
 * and the tail of stderr if it exits non-zero or prints no JSON.
 */
export function runBaseline(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<BaselineResult> {
  const { timeoutMs = 10 * 60_000 } = opts;
  const shown = [cmd, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? join(BENCH_DIR, '..'), env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`baseline \`${shown}\` could not start: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const tail = err.trim().split('\n').slice(-15).join('\n');
      if (code !== 0) return reject(new Error(`baseline \`${shown}\` failed (${signal ?? `exit ${code}`}):\n${tail}`));
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as BaselineResult);
      } catch {
        reject(new Error(`baseline \`${shown}\` printed no JSON on its last stdout line (got: ${last.slice(0, 200) || 'nothing'})\n${tail}`));
      }
    });
  });
}

/**
 * The PyTorch training-step baseline (bench/baselines/torch_step.py) on OpenBLAS-pthread with 2 threads.
 * Needs `bench/setup.sh` once. Throws if torch did not end up on OpenBLAS: a reference-BLAS baseline is
 * ~7x slower and would make any ratio meaningless.
 */
export async function torchBaseline(args: string[]): Promise<BaselineResult> {
  const r = await runBaseline(join(BENCH_DIR, 'baselines', 'torch-env.sh'), ['/usr/bin/python3', join(BENCH_DIR, 'baselines', 'torch_step.py'), ...args]);
  if (r.blas !== 'openblas') throw new Error(`PyTorch baseline ran on BLAS "${String(r.blas)}" (${JSON.stringify(r.blas_libs)}), not OpenBLAS: run bench/setup.sh`);
  return r;
}

export interface Row {
  name: string;
  value: number;
  unit: string;
  /** Free-form: shape, threads, min/median... */
  note?: string;
}

const fmtNum = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3));

export function formatTable(rows: Row[]): string {
  const cells = rows.map((r) => [r.name, fmtNum(r.value), r.unit, r.note ?? '']);
  const head = ['what', 'value', 'unit', 'note'];
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 1 ? x.padStart(w[i]!) : x.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...cells.map(line)].join('\n');
}

/** One measured configuration of one side (our thread count, PyTorch's, llama.cpp's batch mode…) and its median. */
export interface Setting {
  /** What was set, e.g. "gpt2 2T", "torch cpu 1T openblas", "llama.cpp B=16 1T llamacpp_gen". */
  label: string;
  /** The median, in the report's unit. */
  median: number;
}

/** Each side at its own best setting: what `report` turns into the last line. */
export interface BestVsBest {
  ours: number;
  baseline: number;
  higherIsBetter: boolean;
  best: { ours: Setting; baseline: Setting };
}

/**
 * Best against best, on medians: our fastest setting against the baseline's fastest, each chosen on its own side.
 * A ratio against the baseline's slower setting (e.g. PyTorch at 2 threads when 1 is faster) flatters us.
 * Spread the result into `report({ ..., ...bestVsBest(ours, base) })`.
 */
export function bestVsBest(ours: Setting[], baseline: Setting[], higherIsBetter = true): BestVsBest {
  const pick = (xs: Setting[], side: string) => {
    if (xs.length === 0) throw new Error(`bestVsBest: no ${side} settings`);
    for (const x of xs) if (!(x.median > 0)) throw new Error(`bestVsBest: ${side} "${x.label}" has median ${x.median}`);
    return xs.reduce((a, b) => ((higherIsBetter ? b.median > a.median : b.median < a.median) ? b : a));
  };
  const o = pick(ours, 'ours'), b = pick(baseline, 'baseline');
  return { ours: o.median, baseline: b.median, higherIsBetter, best: { ours: o, baseline: b } };
}

/** The case where we fare worst (several shapes or batch sizes, each already best-vs-best): the honest headline. */
export function worstCase(cases: BestVsBest[]): BestVsBest {
  if (cases.length === 0) throw new Error('worstCase: no cases');
  return cases.reduce((a, b) => (ratioOf(b) < ratioOf(a) ? b : a));
}

/** A table row for one best-vs-best case. */
export function bestRow(name: string, c: BestVsBest): Row {
  return { name, value: ratioOf(c), unit: 'x', note: `median, best vs best: ours ${c.best.ours.label} ${fmtNum(c.ours)} / baseline ${c.best.baseline.label} ${fmtNum(c.baseline)}` };
}


export interface Report {
  /** File stem for bench/results/<name>.jsonl. */
  name: string;
  device: DeviceInfo;
  rows: Row[];
  /** Our number and the baseline's, same unit. */
  ours: number;
  baseline: number;
  /** true for throughputs (tokens/s), false for times (ms): the ratio is always "how many times as good as the baseline". */
  higherIsBetter?: boolean;
  /** The two settings `ours` and `baseline` come from (from bestVsBest): printed before the ratio line. */
  best?: { ours: Setting; baseline: Setting };
  /** Anything else worth keeping in the JSON line (configs, raw baseline output). */
  extra?: Record<string, unknown>;
}

export function ratioOf(r: Pick<Report, 'ours' | 'baseline' | 'higherIsBetter'>): number {
  if (!(r.ours > 0) || !(r.baseline > 0)) throw new Error(`ratio: need two positive numbers, got ours=${r.ours} baseline=${r.baseline}`);
  return (r.higherIsBetter ?? true) ? r.ours / r.baseline : r.baseline / r.ours;
}

/** Print the table and device line, append the JSON record, and print `ratio <x>` as the very last line. */
export function report(r: Report, opts: { resultsDir?: string } = {}): number {
  const ratio = ratioOf(r);
  const device = { ...r.device, loadavg1End: Math.round(loadavg()[0]! * 100) / 100 };
  const d = device;
  console.log(formatTable(r.rows));
  console.log(`device: ${d.cpu}, ${d.cores} cores, node ${d.node}, jax-js ${d.jaxjs}` +
    `${d.device ? `, ${d.device}` : ''}${d.threads ? `, ${d.threads} thread(s)` : ''}, load ${d.loadavg1} → ${d.loadavg1End}`);
  const dir = opts.resultsDir ?? RESULTS_DIR;
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${r.name}.jsonl`);
  appendFileSync(file, JSON.stringify({ name: r.name, ratio, ours: r.ours, baseline: r.baseline, best: r.best, rows: r.rows, device, ...r.extra }) + '\n');
  console.log(`results appended to ${file}`);
  if (r.best) console.log(`best vs best (medians): ours ${r.best.ours.label} ${fmtNum(r.best.ours.median)} / baseline ${r.best.baseline.label} ${fmtNum(r.best.baseline.median)}`);
  console.log(`ratio ${ratio.toFixed(3)}`);
  return ratio;
}
