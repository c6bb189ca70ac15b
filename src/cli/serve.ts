// `alignlab serve --model DIR [--port N] [--host 127.0.0.1]`: an OpenAI-compatible HTTP API for a model
// directory, so promptfoo, lm-evaluation-harness (local-completions), the openai SDKs or curl can evaluate
// models trained here. Runs until SIGINT/SIGTERM.
import { parseFlags, need, UsageError } from './args.js';
import { isLoopback, startOpenAIServer, type OpenAIServer } from '../server/openai-server.js';
import type { ServableModel } from '../server/model-api.js';

export const SERVE_FLAGS = {
  model: { type: 'string', help: 'model directory (config.json, *.safetensors, tokenizer.json)' },
  port: { type: 'number', default: 8000, help: 'TCP port (0 = any free port)' },
  host: { type: 'string', default: '127.0.0.1', help: 'interface to bind; anything but loopback exposes the model to the network' },
  name: { type: 'string', help: 'model id clients send and /v1/models lists (default: the directory name)' },
  device: { type: 'string', help: 'engine device: wasm | webgpu | cpu' },
  'max-batch': { type: 'number', default: 8, help: 'rows per generate call' },
  'max-queue': { type: 'number', default: 1024, help: 'waiting rows before answering 503' },
  'api-key-env': { type: 'string', help: 'environment variable holding a key clients must send as a Bearer token' },
  quiet: { type: 'boolean', default: false, help: 'no per-request log lines' },
  help: { type: 'boolean', default: false },
} as const;

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

function help(): string {
  const lines = Object.entries(SERVE_FLAGS).map(([k, v]) => `  --${k.padEnd(12)} ${'help' in v ? v.help : ''}${'default' in v ? ` (default ${v.default})` : ''}`);
  return ['usage: alignlab serve --model DIR [--port 8000] [--host 127.0.0.1]', ...lines].join('\n');
}

export async function main(argv: string[], deps: ServeDeps = {}): Promise<void> {
  const f = parseFlags(argv, SERVE_FLAGS);
  const log = deps.log ?? ((l: string) => console.error(l));
  if (f.help) {
    console.log(help());
    return;
  }
  const dir = need(f.model, 'model');
  if (!Number.isInteger(f.port) || f.port < 0 || f.port > 65535) throw new UsageError(`--port must be an integer in 0..65535, got ${f.port}`);
  if (!Number.isInteger(f['max-batch']) || f['max-batch'] < 1) throw new UsageError(`--max-batch must be an integer >= 1, got ${f['max-batch']}`);
  let apiKey: string | undefined;
  if (f['api-key-env']) {
    apiKey = (deps.env ?? process.env)[f['api-key-env']]?.trim();
    if (!apiKey) throw new UsageError(`--api-key-env ${f['api-key-env']}: that environment variable is not set`);
  }
  if (!isLoopback(f.host) && !apiKey) log(`warning: serving on ${f.host} without --api-key-env: anyone who can reach this port can use the model`);

  const model = await (deps.loadModel ?? loadLM)(dir, f.device);
  const server = await startOpenAIServer(model, {
    host: f.host,
    port: f.port,
    modelName: f.name,
    maxBatch: f['max-batch'],
    maxQueue: f['max-queue'],
    apiKey,
    log: f.quiet ? undefined : log,
  });
  log(`serving ${server.modelName} at ${server.baseUrl} (POST /completions, /chat/completions; GET /models)`);
  deps.onListening?.(server);

  await new Promise<void>((resolve) => {
    if (deps.signal) {
      if (deps.signal.aborted) return resolve();
      deps.signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
  (model as { dispose?: () => void }).dispose?.();
  log('server stopped');
}
