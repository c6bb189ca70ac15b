// Evaluation throughput against our OpenAI-compatible server, how much of each request's time is the harness
// (client, HTTP, JSON, bookkeeping) rather than the server, and the same task through promptfoo in the same run.
//
//   node --import tsx bench/eval-throughput.ts [--model tiny|deterministic|DIR] [--requests 128] [--max-tokens 16]
//        [--max-batch 32] [--step-ms 1] [--promptfoo-concurrency 8] [--promptfoo-prefix /tmp/promptfoo-bench]
//        [--no-install-promptfoo]
//
// MODEL (the server's, in its own process so client and server do not share an event loop):
//   deterministic (default)  the rule-based stand-in from test/server/deterministic-model.ts (each decoding step
//                    of a batch sleeps --step-ms), NOT a neural network: it isolates the harness and server
//                    mechanics from model speed, which is what the ratio is about.
//   tiny             a random llama written by `alignlab init` (2 layers, hidden 64, byte-level vocabulary) run by
//                    our engine: real decoding with a KV cache. On this 2-core CPU the model is busy >90% of every
//                    run, so all clients tie (ratio ~1.0): it measures the model, not the harness. Its generate()
//                    also never yields to the event loop, so the server reads new requests only between batches
//                    and the per-request "overhead" column counts that wait as outside the server.
//   DIR              any model directory (as tiny).
//
// Runs, all on the same task (N distinct prompts, greedy, max_tokens) against the same server:
//   provider c=1/8/32   our openai-compat provider's complete(), that many requests in flight
//   harness c=8         `alignlab eval`'s runner (task YAML, templates, response cache in SQLite, metrics), the
//                       apples-to-apples counterpart of promptfoo's evaluate()
//   promptfoo c=8       promptfoo's evaluate() with its openai:completion provider pointed at the server
// Reported per run: requests/s; overhead share = sum(client latency − server time) / sum(client latency), where
// server time is the server's own arrival-to-last-byte time for the request (queue wait and model included);
// how busy the model was; the mean batch. Last line: `ratio <ours/promptfoo req/s>` (harness vs promptfoo at the
// same concurrency), or, when promptfoo cannot be installed or run, the c=32/c=1 throughput of our provider
// (the line before says which).
//
// promptfoo is not a dependency: it is installed at bench time into a throwaway prefix (default
// /tmp/promptfoo-bench; `npm install --prefix <prefix> promptfoo`, ~2 GB) unless already there, and imported from
// it, with telemetry and update checks off and its config/database in a temp folder.
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseFlags } from '../src/cli/args.js';
import { startOpenAIServer, type RequestRecord } from '../src/server/openai-server.js';
import type { BatchStats } from '../src/model/batch-queue.js';
import { createOpenAIProvider } from '../src/eval/providers/openai.js';
import { runEval } from '../src/eval/runner.js';
import { openStore } from '../src/store/db.js';
import type { ServableModel } from '../src/model/serving.js';
import { bestVsBest, deviceInfo, report, type Row } from './lib.js';

interface RunResult {
  name: string;
  concurrency: number;
  requests: number;
  wallMs: number;
  rps: number;
  meanLatencyMs: number;
  /** NaN where the client's per-request latency is not known (promptfoo). */
  overheadShare: number;
  busyShare: number;
  meanBatch: number;
  /** Generated tokens per request, as the server counted them (the runs must do the same work). */
  meanCompletionTokens: number;
}

const f = parseFlags(process.argv.slice(2), {
  model: { type: 'string', default: 'deterministic' },
  requests: { type: 'number', default: 128 },
  'max-tokens': { type: 'number', default: 16 },
  'step-ms': { type: 'number', default: 1 },
  'max-batch': { type: 'number', default: 32 },
  'promptfoo-concurrency': { type: 'number', default: 8 },
  'promptfoo-prefix': { type: 'string', default: '/tmp/promptfoo-bench' },
  'install-promptfoo': { type: 'boolean', default: true },
  'server-child': { type: 'boolean', default: false },
  'model-dir': { type: 'string' },
});

async function loadModel(): Promise<{ model: ServableModel; label: string; device?: string }> {
  if (f.model === 'deterministic') {
    const { DeterministicModel } = await import('../test/server/deterministic-model.js');
    return {
      model: new DeterministicModel({ stepMs: f['step-ms'] }),
      label: `deterministic stand-in model (test/server/deterministic-model.ts, ${f['step-ms']} ms per decoding step), NOT a neural network`,
    };
  }
  const dir = f['model-dir'] ?? f.model;
  const { LM } = await import('../src/model/lm.js');
  const { currentDevice } = await import('../src/engine/index.js');
  const lm = await LM.load(dir);
  const c = lm.cfg;
  const what = f.model === 'tiny' ? 'random tiny llama from `alignlab init`' : `LM from ${dir}`;
  return { model: lm, label: `${what}: ${c.numLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize}, ${currentDevice()}`, device: currentDevice() };
}

const prompts = (tag: string) => Array.from({ length: f.requests }, (_, i) => `Question ${tag}-${i}: name the word that follows item${i}`);

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Child mode: serve, and answer the parent's "report" messages with the records since the last report. */
async function serveChild() {
  const { model, label, device } = await loadModel();
  let records: RequestRecord[] = [];
  const srv = await startOpenAIServer(model, { maxBatch: f['max-batch'], onRequestDone: (r) => records.push(r) });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'report') {
      process.send!({ type: 'report', records, stats: { ...srv.queue.stats } });
      records = [];
    } else if (m.type === 'stop') void srv.close().then(() => process.exit(0));
  });
  process.send!({ type: 'listening', baseUrl: srv.baseUrl, modelName: srv.modelName, label, device });
}

interface ServerHandle {
  baseUrl: string;
  modelName: string;
  label: string;
  device?: string;
  report(): Promise<{ records: RequestRecord[]; stats: BatchStats }>;
  stop(): Promise<void>;
}

async function startServerChild(modelDir?: string): Promise<ServerHandle> {
  const args = process.argv.slice(2).concat('--server-child', ...(modelDir ? ['--model-dir', modelDir] : []));
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = <T>(type: string) =>
    new Promise<T>((resolve, reject) => {
      const onMsg = (m: { type: string }) => {
        if (m.type !== type) return;
        child.off('message', onMsg);
        child.off('exit', onExit);
        resolve(m as T);
      };
      const onExit = (code: number) => reject(new Error(`server process exited (${code})`));
      child.on('message', onMsg);
      child.once('exit', onExit);
    });
  const hello = await next<{ baseUrl: string; modelName: string; label: string; device?: string }>('listening');
  return {
    ...hello,
    report: () => {
      const p = next<{ records: RequestRecord[]; stats: BatchStats }>('report');
      child.send({ type: 'report' });
      return p;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.send({ type: 'stop' });
      }),
  };
}

/** Time `work` against the server and turn the server's records into a RunResult. */
async function measure(srv: ServerHandle, name: string, concurrency: number, work: () => Promise<number[] | undefined>): Promise<RunResult> {
  const stats0 = (await srv.report()).stats; // also discards records of anything before
  const t0 = performance.now();
  const latencies = await work();
  const wallMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 20)); // let the last 'close' events land
  const { records, stats } = await srv.report();
  const served = records.filter((r) => r.path === '/v1/completions' && r.status === 200);
  if (served.length !== f.requests) console.log(`warning: ${name}: the server recorded ${served.length} successful completions for ${f.requests} prompts`);
  const serverSum = served.reduce((a, r) => a + r.serverMs, 0);
  const clientSum = latencies ? latencies.reduce((a, b) => a + b, 0) : NaN;
  return {
    name,
    concurrency,
    requests: served.length,
    wallMs,
    rps: (served.length / wallMs) * 1000,
    meanLatencyMs: latencies ? mean(latencies) : NaN,
    overheadShare: (clientSum - serverSum) / clientSum,
    busyShare: (stats.busyMs - stats0.busyMs) / wallMs,
    // Continuous batching (a steppable model) counts rows per decode step; other models rows per generate call.
    meanBatch:
      stats.steps > stats0.steps
        ? (stats.rowSteps - stats0.rowSteps) / (stats.steps - stats0.steps)
        : (stats.rows - stats0.rows) / Math.max(1, stats.batches - stats0.batches),
    meanCompletionTokens: mean(served.map((r) => r.completionTokens)),
  };
}

async function main() {
  const device = deviceInfo();
  let tmpModel: string | undefined;
  if (f.model === 'tiny') {
    // A real network, made here (no download): what `alignlab init --arch llama` writes.
    tmpModel = mkdtempSync(join(tmpdir(), 'alignlab-bench-tiny-'));
    const { main: initMain } = await import('../src/cli/init.js');
    const log = console.log;
    console.log = () => {};
    try {
      await initMain(['--arch', 'llama', '--out', tmpModel, '--seed', '1']);
    } finally {
      console.log = log;
    }
  }
  const srv = await startServerChild(tmpModel);
  const id = `openai-compat:${srv.baseUrl}#${srv.modelName}`;
  console.log(`MODEL: ${srv.label}`);
  console.log(`server: ${srv.baseUrl}, max batch ${f['max-batch']}; task: ${f.requests} distinct prompts, greedy, max_tokens ${f['max-tokens']}`);

  // Warm-up: JIT of every batch shape the runs will meet, sockets.
  const warm = createOpenAIProvider(id, { concurrency: 32 });
  for (const c of [1, 8, 32]) {
    await Promise.all(prompts(`warm${c}`).slice(0, c).map((prompt) => warm.complete({ prompt, maxTokens: f['max-tokens'], temperature: 0 })));
  }

  const runs: RunResult[] = [];
  for (const concurrency of [1, 8, 32]) {
    const provider = createOpenAIProvider(id, { concurrency, retry: { maxRetries: 0 } });
    runs.push(
      await measure(srv, `provider c=${concurrency}`, concurrency, async () => {
        const lat: number[] = [];
        await Promise.all(
          prompts(`c${concurrency}`).map(async (prompt) => {
            const r = await provider.complete({ prompt, maxTokens: f['max-tokens'], temperature: 0 });
            lat.push(r.latencyMs!);
          }),
        );
        return lat;
      }),
    );
  }
  const pfc = f['promptfoo-concurrency'];
  await runHarness(id, pfc, 'evwarm', 8); // warm-up, as promptfoo gets one
  runs.push(await measure(srv, `harness c=${pfc}`, pfc, () => runHarness(id, pfc)));
  const pf = await runPromptfoo(srv, pfc);
  if (pf) runs.push(pf.run);
  await srv.stop();
  for (const dir of [tmpModel, promptfooConfigDir]) if (dir) rmSync(dir, { recursive: true, force: true });

  console.log('');
  console.log('| run | wall s | req/s | mean latency ms | overhead share (outside server) | model busy | mean batch | tokens/request |');
  console.log('|---|---|---|---|---|---|---|---|');
  const pct = (x: number, d = 1) => (Number.isFinite(x) ? `${(100 * x).toFixed(d)}%` : '–');
  for (const r of runs)
    console.log(
      `| ${r.name} | ${(r.wallMs / 1000).toFixed(2)} | ${r.rps.toFixed(1)} | ${Number.isFinite(r.meanLatencyMs) ? r.meanLatencyMs.toFixed(1) : '–'} | ${pct(r.overheadShare)} | ${pct(r.busyShare, 0)} | ${r.meanBatch.toFixed(1)} | ${r.meanCompletionTokens.toFixed(1)} |`,
    );
  if (f.model !== 'deterministic')
    console.log('note: a real model blocks the server\'s event loop while it decodes; requests wait unread meanwhile, and that wait shows up as "outside server"');
  console.log('');

  const rows: Row[] = runs.map((r) => ({ name: r.name, value: r.rps, unit: 'req/s', note: `overhead ${pct(r.overheadShare)}, model busy ${pct(r.busyShare, 0)}, mean batch ${r.meanBatch.toFixed(1)}` }));
  const harness = runs.find((r) => r.name.startsWith('harness'))!;
  const c1 = runs[0]!, c32 = runs[2]!;
  const extra = { model: srv.label, requests: f.requests, maxTokens: f['max-tokens'], runs, promptfoo: pf?.version ?? null };
  const engine = { device: srv.device ?? null };
  if (pf) {
    console.log(`promptfoo ${pf.version}: ${pf.run.rps.toFixed(1)} req/s at concurrency ${pfc}; alignlab eval's runner ${harness.rps.toFixed(1)} req/s at ${pfc}`);
    console.log('ratio = alignlab eval runner / promptfoo evaluate() requests per second (same server, same task, same run)');
    // One setting per side (both at --promptfoo-concurrency), so best vs best is that pair; it names them before the ratio.
    report({ name: 'eval-throughput', device: { ...device, ...engine }, rows, ...bestVsBest([{ label: harness.name, median: harness.rps }], [{ label: `promptfoo c=${pfc}`, median: pf.run.rps }]), extra });
  } else {
    console.log('ratio = our provider at concurrency 32 / at concurrency 1 (promptfoo could not run; see the note above)');
    report({ name: 'eval-throughput', device: { ...device, ...engine }, rows, ...bestVsBest([{ label: c32.name, median: c32.rps }], [{ label: c1.name, median: c1.rps }]), extra });
  }
}

/** The same task through the evaluation runner: a task file, the response cache (a fresh SQLite file), metrics. */
async function runHarness(id: string, concurrency: number, tag = 'ev', n = f.requests): Promise<number[]> {
  const d = mkdtempSync(join(tmpdir(), 'alignlab-bench-eval-'));
  try {
    writeFileSync(join(d, 'prompts.jsonl'), prompts(tag).slice(0, n).map((q) => JSON.stringify({ q })).join('\n') + '\n');
    writeFileSync(
      join(d, 'task.yaml'),
      `name: bench\ntype: generation\nmode: completion\ndata: prompts.jsonl\nprompt: "{{ q }}"\nmetrics: [length, distinct_1]\ngeneration:\n  max_tokens: ${f['max-tokens']}\n  temperature: 0\n`,
    );
    const db = openStore(join(d, 'store.db'));
    const r = await runEval(
      { name: 'bench', providers: [{ id, concurrency, config: { max_retries: 0 } }], tasks: ['task.yaml'], concurrency, seed: 1, bootstrap: 0, ppl_max: 1000, repetition_n: 4 },
      { baseDir: d, out: join(d, 'out'), db, log: () => {} },
    );
    db.close();
    return r.samples.map((s) => s.latency_ms ?? NaN);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

let promptfooConfigDir: string | undefined;

type PromptfooModule = {
  evaluate?: (suite: unknown, opts?: unknown) => Promise<unknown>;
  default?: PromptfooModule;
};

/** promptfoo from the throwaway prefix, installing it there first if needed; undefined (with a note) if it cannot. */
async function loadPromptfoo(prefix: string): Promise<{ mod: PromptfooModule; version: string } | undefined> {
  const pkgDir = join(prefix, 'node_modules', 'promptfoo');
  if (!existsSync(join(pkgDir, 'package.json'))) {
    if (!f['install-promptfoo']) {
      console.log(`note: promptfoo is not installed in ${prefix} (--no-install-promptfoo); skipping the promptfoo run`);
      return undefined;
    }
    console.log(`installing promptfoo into ${prefix} (npm install --prefix ${prefix} promptfoo; a few minutes) ...`);
    mkdirSync(prefix, { recursive: true });
    const t0 = performance.now();
    const r = spawnSync('npm', ['install', '--prefix', prefix, 'promptfoo', '--no-audit', '--no-fund', '--loglevel=error'], { encoding: 'utf8', timeout: 20 * 60_000 });
    if (r.status !== 0 || !existsSync(join(pkgDir, 'package.json'))) {
      const why = (r.error?.message ?? `${r.stderr ?? ''}`.trim().split('\n').slice(-5).join(' | ')) || `exit ${r.status}`;
      console.log(`note: promptfoo could not be installed (${why}); skipping the promptfoo run`);
      return undefined;
    }
    console.log(`installed in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string; main?: string; exports?: unknown };
  const exp = (pkg.exports as Record<string, unknown> | undefined)?.['.'];
  const pick = (e: unknown): string | undefined =>
    typeof e === 'string' ? e : e && typeof e === 'object' ? (pick((e as Record<string, unknown>).import) ?? pick((e as Record<string, unknown>).default) ?? pick((e as Record<string, unknown>).require)) : undefined;
  const entry = pick(exp) ?? pkg.main ?? 'index.js';
  // Offline and self-contained: no telemetry, no update check, config and result database in a temp folder.
  process.env.PROMPTFOO_DISABLE_TELEMETRY = '1';
  process.env.PROMPTFOO_DISABLE_UPDATE = '1';
  process.env.PROMPTFOO_DISABLE_REMOTE_GENERATION = '1';
  process.env.PROMPTFOO_CONFIG_DIR ??= promptfooConfigDir = mkdtempSync(join(tmpdir(), 'promptfoo-config-'));
  process.env.PROMPTFOO_CACHE_ENABLED = 'false';
  try {
    const mod = (await import(pathToFileURL(join(pkgDir, entry)).href)) as PromptfooModule;
    return { mod, version: pkg.version };
  } catch (e) {
    console.log(`note: promptfoo ${pkg.version} is installed but could not be imported (${(e as Error).message.split('\n')[0]}); skipping the promptfoo run`);
    return undefined;
  }
}

/** The same task through promptfoo's evaluate() against the same server. */
async function runPromptfoo(srv: ServerHandle, concurrency: number): Promise<{ run: RunResult; version: string } | undefined> {
  const loaded = await loadPromptfoo(f['promptfoo-prefix']);
  if (!loaded) return undefined;
  const pf = loaded.mod.evaluate ? loaded.mod : loaded.mod.default;
  if (!pf?.evaluate) {
    console.log(`note: promptfoo ${loaded.version} has no evaluate() export; skipping the promptfoo run`);
    return undefined;
  }
  const suite = (qs: string[]) => ({
    prompts: ['{{q}}'],
    providers: [{ id: `openai:completion:${srv.modelName}`, config: { apiBaseUrl: srv.baseUrl, apiKey: 'unused-local-key', temperature: 0, max_tokens: f['max-tokens'] } }],
    tests: qs.map((q) => ({ vars: { q } })),
  });
  const opts = { maxConcurrency: concurrency, showProgressBar: false, cache: false };
  try {
    await pf.evaluate(suite(prompts('pfwarm').slice(0, 8)), opts); // its own warm-up (lazy imports, database)
    const run = await measure(srv, `promptfoo c=${concurrency}`, concurrency, async () => {
      await pf.evaluate!(suite(prompts('pf')), opts);
      return undefined;
    });
    return { run, version: loaded.version };
  } catch (e) {
    console.log(`note: promptfoo ${loaded.version} failed to run the task (${(e as Error).message.split('\n')[0]}); skipping it`);
    return undefined;
  }
}

(f['server-child'] ? serveChild() : main()).catch((e) => {
  console.error(e);
  process.exit(1);
});
