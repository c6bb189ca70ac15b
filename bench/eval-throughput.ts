// Evaluation throughput against our OpenAI-compatible server, and how much of each request's time is the
// harness (client, HTTP, JSON) rather than the server.
//
//   node --import tsx bench/eval-throughput.ts [--requests 256] [--max-tokens 16] [--step-ms 1] [--max-batch 32]
//
// MODEL: the deterministic stand-in from test/server/deterministic-model.ts (each decoding step of a batch
// sleeps --step-ms), NOT a neural network; it isolates the harness and server mechanics from model speed.
// Swap in a real model directory with --model DIR once wanted (the server code is the same).
//
// Per concurrency level (1, 8, 32) the same task (N distinct prompts, greedy, max_tokens) runs through our
// openai-compat provider. Reported:
//   req/s               completed requests per second of wall time
//   overhead share      sum(client latency - server time) / sum(client latency), where server time is the
//                       server's own arrival-to-last-byte time for that request (queue wait + model included)
//   model busy          share of wall time the model was running a batch
// The server runs in its own process (as it would in use), so client and server do not share an event loop.
// If `promptfoo` can be imported, the same task runs through promptfoo's evaluate() against the same server
// in the same run, and the last line is `ratio <ours/promptfoo req/s>`; otherwise the last line is the
// concurrency-32 over concurrency-1 throughput, and the line says which.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseFlags } from '../src/cli/args.js';
import { startOpenAIServer, type RequestRecord } from '../src/server/openai-server.js';
import type { BatchStats } from '../src/server/batcher.js';
import { createOpenAIProvider } from '../src/eval/providers/openai.js';
import type { ServableModel } from '../src/server/model-api.js';
import { DeterministicModel } from '../test/server/deterministic-model.js';

interface LevelResult {
  concurrency: number;
  wallMs: number;
  rps: number;
  meanLatencyMs: number;
  overheadShare: number;
  busyShare: number;
  meanBatch: number;
}

const f = parseFlags(process.argv.slice(2), {
  requests: { type: 'number', default: 256 },
  'max-tokens': { type: 'number', default: 16 },
  'step-ms': { type: 'number', default: 1 },
  'max-batch': { type: 'number', default: 32 },
  model: { type: 'string' },
  'promptfoo-concurrency': { type: 'number', default: 8 },
  'server-child': { type: 'boolean', default: false },
});

async function loadModel(): Promise<{ model: ServableModel; label: string }> {
  if (f.model) {
    const { LM } = await import('../src/model/lm.js');
    return { model: await LM.load(f.model), label: `LM from ${f.model}` };
  }
  return {
    model: new DeterministicModel({ stepMs: f['step-ms'] }),
    label: `deterministic stand-in model (test/server/deterministic-model.ts, ${f['step-ms']} ms per decoding step), NOT a neural network`,
  };
}

const prompts = (tag: string) => Array.from({ length: f.requests }, (_, i) => `Question ${tag}-${i}: name the word that follows item${i}`);

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Child mode: serve, and answer the parent's "report" messages with the records since the last report. */
async function serveChild() {
  const { model, label } = await loadModel();
  let records: RequestRecord[] = [];
  const srv = await startOpenAIServer(model, { maxBatch: f['max-batch'], onRequestDone: (r) => records.push(r) });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'report') {
      process.send!({ type: 'report', records, stats: { ...srv.queue.stats } });
      records = [];
    } else if (m.type === 'stop') void srv.close().then(() => process.exit(0));
  });
  process.send!({ type: 'listening', baseUrl: srv.baseUrl, modelName: srv.modelName, label });
}

interface ServerHandle {
  baseUrl: string;
  modelName: string;
  label: string;
  report(): Promise<{ records: RequestRecord[]; stats: BatchStats }>;
  stop(): Promise<void>;
}

async function startServerChild(): Promise<ServerHandle> {
  const args = process.argv.slice(2).concat('--server-child');
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
  const hello = await next<{ baseUrl: string; modelName: string; label: string }>('listening');
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

async function main() {
  const srv = await startServerChild();
  const id = `openai-compat:${srv.baseUrl}#${srv.modelName}`;
  const label = srv.label;
  console.log(`MODEL: ${label}`);
  console.log(`server: ${srv.baseUrl}, max batch ${f['max-batch']}; task: ${f.requests} distinct prompts, greedy, max_tokens ${f['max-tokens']}`);
  console.log(`node ${process.version}, ${process.platform}/${process.arch}`);

  // Warm-up: JIT, sockets.
  const warm = createOpenAIProvider(id, { concurrency: 4 });
  await Promise.all(prompts('warm').slice(0, 16).map((prompt) => warm.complete({ prompt, maxTokens: f['max-tokens'], temperature: 0 })));
  await srv.report(); // discard the warm-up's records

  const levels: LevelResult[] = [];
  for (const concurrency of [1, 8, 32]) {
    const provider = createOpenAIProvider(id, { concurrency, retry: { maxRetries: 0 } });
    const stats0 = (await srv.report()).stats;
    const latencies: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      prompts(`c${concurrency}`).map(async (prompt) => {
        const r = await provider.complete({ prompt, maxTokens: f['max-tokens'], temperature: 0 });
        latencies.push(r.latencyMs!);
      }),
    );
    const wallMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 20)); // let the last 'close' events land
    const { records, stats } = await srv.report();
    const served = records.filter((r) => r.path === '/v1/completions' && r.status === 200);
    if (served.length !== f.requests) throw new Error(`server recorded ${served.length} completions, expected ${f.requests}`);
    const clientSum = latencies.reduce((a, b) => a + b, 0);
    const serverSum = served.reduce((a, r) => a + r.serverMs, 0);
    const batches = stats.batches - stats0.batches;
    levels.push({
      concurrency,
      wallMs,
      rps: (f.requests / wallMs) * 1000,
      meanLatencyMs: mean(latencies),
      overheadShare: (clientSum - serverSum) / clientSum,
      busyShare: (stats.busyMs - stats0.busyMs) / wallMs,
      meanBatch: (stats.rows - stats0.rows) / Math.max(1, batches),
    });
  }

  console.log('');
  console.log('| concurrency | wall s | req/s | mean latency ms | overhead share (outside server) | model busy | mean batch |');
  console.log('|---|---|---|---|---|---|---|');
  for (const l of levels)
    console.log(
      `| ${l.concurrency} | ${(l.wallMs / 1000).toFixed(2)} | ${l.rps.toFixed(1)} | ${l.meanLatencyMs.toFixed(1)} | ${(100 * l.overheadShare).toFixed(1)}% | ${(100 * l.busyShare).toFixed(0)}% | ${l.meanBatch.toFixed(1)} |`,
    );

  const pf = await runPromptfoo(srv);
  await srv.stop();
  const c1 = levels[0]!;
  const c32 = levels[2]!;
  if (pf) {
    const ours = levels.find((l) => l.concurrency === f['promptfoo-concurrency']) ?? levels[1]!;
    console.log(`promptfoo ${pf.version}: ${pf.rps.toFixed(1)} req/s at concurrency ${f['promptfoo-concurrency']}; ours ${ours.rps.toFixed(1)} req/s at ${ours.concurrency}`);
    console.log(`ratio ${(ours.rps / pf.rps).toFixed(2)} (ours / promptfoo requests per second, same server, same task, same run)`);
  } else {
    console.log(`ratio ${(c32.rps / c1.rps).toFixed(2)} (concurrency-32 / concurrency-1 throughput of our harness; promptfoo not installed)`);
  }
}

/** The same task through promptfoo's Node API, if promptfoo is installed; undefined (with a note) if not. */
async function runPromptfoo(srv: ServerHandle): Promise<{ rps: number; version: string } | undefined> {
  type PromptfooModule = {
    evaluate?: (suite: unknown, opts?: unknown) => Promise<unknown>;
    cache?: { disableCache?: () => void };
    default?: PromptfooModule;
  };
  let mod: PromptfooModule;
  const name = 'promptfoo'; // a variable specifier: promptfoo is optional and not a dependency
  try {
    mod = (await import(name)) as PromptfooModule;
  } catch {
    console.log('note: promptfoo is not installed (npm i -D promptfoo to compare against it); skipping the promptfoo run');
    return undefined;
  }
  const pf = mod.evaluate ? mod : mod.default;
  if (!pf?.evaluate) {
    console.log('note: the installed promptfoo has no evaluate() export; skipping the promptfoo run');
    return undefined;
  }
  pf.cache?.disableCache?.();
  const qs = prompts('pf');
  await srv.report();
  const t0 = performance.now();
  const out = (await pf.evaluate(
    {
      prompts: ['{{q}}'],
      providers: [
        {
          id: `openai:completion:${srv.modelName}`,
          config: { apiBaseUrl: srv.baseUrl, apiKey: 'unused-local-key', temperature: 0, max_tokens: f['max-tokens'] },
        },
      ],
      tests: qs.map((q) => ({ vars: { q } })),
    },
    { maxConcurrency: f['promptfoo-concurrency'], showProgressBar: false },
  )) as { results?: unknown[] };
  const wallMs = performance.now() - t0;
  const served = (await srv.report()).records.filter((r) => r.path === '/v1/completions' && r.status === 200).length;
  if (served !== qs.length) console.log(`warning: promptfoo made ${served} successful requests for ${qs.length} prompts`);
  let version = '?';
  try {
    const { createRequire } = await import('node:module');
    version = (createRequire(import.meta.url)('promptfoo/package.json') as { version: string }).version;
  } catch {
    /* version is informative only */
  }
  void out;
  return { rps: (served / wallMs) * 1000, version };
}

(f['server-child'] ? serveChild() : main()).catch((e) => {
  console.error(e);
  process.exit(1);
});
