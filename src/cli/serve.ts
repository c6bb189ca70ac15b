// `alignlab serve --model DIR [--port N] [--host 127.0.0.1]`: an OpenAI-compatible HTTP API for a model
// directory, so promptfoo, lm-evaluation-harness (local-completions), the openai SDKs or curl can evaluate
// models trained here. Runs until SIGINT/SIGTERM.
import { command, integer, parse, positiveInteger, ranged, UsageError } from './args.js';
import { isLoopback, startOpenAIServer, type OpenAIServer } from '../server/openai-server.js';
import { serveUntilStopped } from '../server/shutdown.js';
import type { ServableModel } from '../model/serving.js';

export const cli = () =>
  command('serve', 'serve a model directory over an OpenAI-compatible HTTP API until SIGINT/SIGTERM')
    .requiredOption('--model <dir>', 'model directory (config.json, *.safetensors, tokenizer.json)')
    .option('--port <n>', 'TCP port (0 = any free port)', ranged('an integer in 0..65535', (n) => n >= 0 && n <= 65535, integer), 8000)
    .option('--host <host>', 'interface to bind; anything but loopback exposes the model to the network', '127.0.0.1')
    .option('--name <id>', 'model id clients send and /v1/models lists (default: the directory name)')
    .option('--device <device>', 'engine device: wasm | webgpu | cpu')
    .option('--max-batch <n>', 'requests decoded together (continuous batching)', positiveInteger, 8)
    .option('--max-queue <n>', 'waiting requests before answering 429 (Retry-After)', positiveInteger, 1024)
    .option('--api-key-env <var>', 'environment variable holding a key clients must send as a Bearer token')
    .option('--quiet', 'no per-request log lines');

interface Flags {
  model: string;
  port: number;
  host: string;
  name?: string;
  device?: string;
  maxBatch: number;
  maxQueue: number;
  apiKeyEnv?: string;
  quiet?: boolean;
}

export interface ServeDeps {
  /** Loads the model (tests pass a small deterministic one). */
  loadModel?: (dir: string, device?: string) => Promise<ServableModel>;
  /** Stops the server when aborted (default: SIGINT / SIGTERM). */
  signal?: AbortSignal;
  /** Called once the server listens. */
  onListening?: (s: OpenAIServer) => void;
  log?: (line: string) => void;
  env?: Record<string, string | undefined>;
}

async function loadLM(dir: string, device?: string): Promise<ServableModel> {
  const { LM } = await import('../model/lm.js');
  return LM.load(dir, { device });
}

export async function main(argv: string[], deps: ServeDeps = {}): Promise<number | void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<Flags>();
  const log = deps.log ?? ((l: string) => console.error(l));
  const dir = f.model;
  let apiKey: string | undefined;
  if (f.apiKeyEnv) {
    apiKey = (deps.env ?? process.env)[f.apiKeyEnv]?.trim();
    if (!apiKey) throw new UsageError(`--api-key-env ${f.apiKeyEnv}: that environment variable is not set`);
  }
  if (!isLoopback(f.host) && !apiKey) log(`warning: serving on ${f.host} without --api-key-env: anyone who can reach this port can use the model`);

  const model = await (deps.loadModel ?? loadLM)(dir, f.device);
  const server = await startOpenAIServer(model, {
    host: f.host,
    port: f.port,
    modelName: f.name,
    maxBatch: f.maxBatch,
    maxQueue: f.maxQueue,
    apiKey,
    log: f.quiet ? undefined : log,
  });
  // SIGINT/SIGTERM: stop taking requests, let those in flight finish (a second signal cancels them), exit 130/143.
  // The "serving" line comes once the handlers are in place.
  const code = await serveUntilStopped(server, {
    signal: deps.signal,
    log,
    onReady: () => {
      log(`serving ${server.modelName} at ${server.baseUrl} (POST /completions, /chat/completions; GET /models)`);
      deps.onListening?.(server);
    },
  });
  (model as { dispose?: () => void }).dispose?.();
  log('server stopped');
  return code;
}
