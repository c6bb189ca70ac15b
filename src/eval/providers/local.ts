// `local:<model dir>`: a model directory (config.json, *.safetensors, tokenizer.json) run in this process by
// our own engine. The engine is imported only when such a provider is created, so evaluations of HTTP
// models never load it.
//
// Requests go through the same BatchQueue as `alignlab serve` (src/model/batch-queue.ts), with continuous batching:
// a request joins the running batch between decode steps and leaves when it ends, each with its own sampling
// parameters. So concurrency (the runner's limit) turns into batch size, and a model evaluated in-process batches
// the way the same model behind the server does.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { resolveModelRef } from '../../formats/hub.js';
import { BatchQueue } from '../../model/batch-queue.js';
import type { GenerateOptions, Generation, ServableModel, StepBatch, SteppableModel } from '../../model/serving.js';
import type { LM } from '../../model/lm.js';
import type { CompletionRequest, CompletionResponse, LoglikelihoodRequest, LoglikelihoodResponse, Provider } from './types.js';

export interface LocalProviderOptions {
  /** Engine device: wasm | webgpu | cpu (default: $ALIGNLAB_DEVICE, else wasm). */
  device?: string;
  /** Rows per generate batch (default 8). */
  maxBatch?: number;
  /** Where one-time warnings go (default: stderr). */
  warn?: (line: string) => void;
}

// ------------------------------------------------------------------------------------------ options

type OptionType = 'string' | 'number' | 'boolean' | 'function';

/**
 * Options from an eval config (`config:` of a provider), checked against `spec` (our name → type). YAML may
 * spell names in snake_case (max_batch); an unknown name or a wrong type is an error naming the provider and
 * the option, so a typo never passes silently.
 */
export function readOptions<T>(id: string, raw: Record<string, unknown>, spec: Record<string, OptionType>): T {
  const out: Record<string, unknown> = {};
  const camel = (k: string) => k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
  const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    const name = camel(k);
    const type = spec[name];
    if (!type) throw new Error(`${id}: unknown provider option "${k}" (known: ${Object.keys(spec).filter((n) => spec[n] !== 'function').map(snake).join(', ')})`);
    if (typeof v !== type) throw new Error(`${id}: option ${k} must be a ${type}, got ${JSON.stringify(v)}`);
    out[name] = v;
  }
  return out as T;
}

function positiveInt(id: string, name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${id}: option ${name} must be an integer >= 1, got ${v}`);
  return v;
}

/**
 * A short fingerprint of model files for the response cache's `model` field: the content of small files and the
 * size and modification time of large ones (weights), so a model retrained or re-exported in place is asked
 * again instead of answering from stale cache entries, without reading gigabytes on every start. `settings`
 * folds in provider settings that change answers.
 */
export function fileFingerprint(files: string[], settings = '', hashUpTo = 1 << 20): string {
  const h = createHash('sha256');
  h.update(`${settings}\0`); // settings that change answers (device, context size) without changing files
  for (const f of [...files].sort()) {
    const st = statSync(f);
    h.update(`${basename(f)}\0${st.size}\0`);
    if (st.size <= hashUpTo) h.update(readFileSync(f));
    else h.update(`${st.mtimeMs}`);
  }
  return h.digest('hex').slice(0, 12);
}

// ------------------------------------------------------------------------------------------ provider

/** The LM as the BatchQueue sees it: prompts that do not fit are cut from the left (see fitPrompt). */
class FittedModel implements ServableModel, SteppableModel {
  constructor(
    readonly lm: LM,
    private readonly onTruncate: (from: number, to: number) => void,
  ) {}
  get name() {
    return this.lm.name;
  }
  async generate(prompts: string[], opts: GenerateOptions, onToken?: (row: number, text: string) => void): Promise<Generation[]> {
    const max = Math.max(0, Math.min(opts.maxNewTokens, this.lm.cfg.maxPositions - 1));
    const ids = prompts.map((p) => fitPrompt(this.lm.encode(p), this.lm.cfg.maxPositions - max, this.onTruncate));
    return this.lm.generateIds(ids, { ...opts, maxNewTokens: max }, onToken);
  }
  openBatch(maxRows: number): StepBatch {
    const ctx = this.lm.cfg.maxPositions;
    return this.lm.openBatch(maxRows, (ids, maxNewTokens) => {
      const max = Math.max(0, Math.min(maxNewTokens, ctx - 1));
      return { ids: fitPrompt(ids, ctx - max, this.onTruncate), maxNewTokens: max };
    });
  }
  scoreContinuation(context: string, continuation: string) {
    return this.lm.scoreContinuation(context, continuation);
  }
  applyChatTemplate(messages: { role: string; content: string }[]) {
    return this.lm.applyChatTemplate(messages);
  }
}

/**
 * Keep the last `room` tokens of a prompt (at least one), as lm-evaluation-harness truncates contexts: the end
 * of a prompt (the question, "Answer:") matters more than its start. Depends only on the prompt and the
 * request's max tokens, never on what else shares the batch.
 */
export function fitPrompt(ids: number[], room: number, onTruncate?: (from: number, to: number) => void): number[] {
  const keep = Math.max(1, room);
  if (ids.length <= keep) return ids;
  onTruncate?.(ids.length, keep);
  return ids.slice(ids.length - keep);
}

export class LocalProvider implements Provider {
  readonly id: string;
  readonly model: string;
  readonly queue: BatchQueue;
  #closed = false;
  #inflight = new Set<Promise<unknown>>();
  #warned = false;

  constructor(
    id: string,
    model: string,
    readonly lm: LM,
    opts: LocalProviderOptions = {},
  ) {
    this.id = id;
    this.model = model;
    const warn = opts.warn ?? ((l: string) => process.stderr.write(l + '\n'));
    const fitted = new FittedModel(lm, (from, to) => {
      if (this.#warned) return;
      this.#warned = true;
      warn(`${id}: a prompt of ${from} tokens was cut to its last ${to} (the model has ${lm.cfg.maxPositions} positions); later cuts are not reported`);
    });
    this.queue = new BatchQueue(fitted, { maxBatch: opts.maxBatch, maxQueue: Number.MAX_SAFE_INTEGER });
  }

  #track<T>(start: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error(`${this.id}: provider is closed`));
    const p = start();
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }

  complete(req: CompletionRequest): Promise<CompletionResponse> {
    return this.#track(() => this.#complete(req));
  }

  async #complete(req: CompletionRequest): Promise<CompletionResponse> {
    if ((req.prompt === undefined) === (req.messages === undefined)) throw new Error(`${this.id}: a completion request needs exactly one of prompt or messages`);
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 0) throw new Error(`${this.id}: maxTokens must be an integer >= 0, got ${req.maxTokens}`);
    const t0 = performance.now();
    const prompt = req.prompt ?? this.lm.applyChatTemplate(req.messages!);
    if (req.maxTokens === 0) return { text: '', finishReason: 'length', completionTokens: 0, latencyMs: 0 };
    // OpenAI's default temperature (1) when none is given; 0 = greedy.
    const opts: GenerateOptions = { maxNewTokens: req.maxTokens, temperature: req.temperature ?? 1 };
    if (req.topK !== undefined) opts.topK = req.topK;
    if (req.topP !== undefined) opts.topP = req.topP;
    if (req.stop?.length) opts.stop = req.stop;
    if (req.seed !== undefined) opts.seed = req.seed;
    // Each request is its own group: seeded sampling then never shares a batch (and its random stream) with
    // another request, so a seeded answer does not depend on what else is in flight. Greedy rows batch freely.
    const g = await this.queue.generate(prompt, opts, randomUUID());
    return {
      text: g.text,
      finishReason: g.finishReason,
      promptTokens: g.promptTokens,
      completionTokens: g.tokenIds.length,
      logprobs: g.logprobs,
      latencyMs: performance.now() - t0,
    };
  }

  loglikelihood(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResponse[]> {
    return this.#track(() =>
      this.queue.run(async () => {
        const out: LoglikelihoodResponse[] = [];
        for (const r of reqs) {
          const s = await this.lm.scoreContinuation(r.context, r.continuation);
          out.push({ logprob: s.logprob, isGreedy: s.isGreedy, tokens: s.tokens });
        }
        return out;
      }),
    );
  }

  /** Waits for requests in flight, then frees the model's arrays. Later calls reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    this.lm.dispose();
  }
}

const LOCAL_OPTIONS: Record<keyof LocalProviderOptions, OptionType> = { device: 'string', maxBatch: 'number', warn: 'function' };

/** The files of a model directory that define its answers (for the cache fingerprint). */
function modelFiles(dir: string): string[] {
  const names = readdirSync(dir).filter((f) => f.endsWith('.safetensors') || /^(config|generation_config|tokenizer|tokenizer_config)\.json$/.test(f) || f === 'model.safetensors.index.json');
  return names.map((f) => join(dir, f));
}

/**
 * Build a `local:<dir>` provider. `dir` is resolved against the working directory. Options (YAML `config:`):
 * device, max_batch. The response cache keys on `<dir name>@<fingerprint of its files and the device>`.
 */
export async function createLocalProvider(target: string, id = `local:${target}`, raw: Record<string, unknown> = {}): Promise<LocalProvider> {
  const opts = readOptions<LocalProviderOptions>(id, raw, LOCAL_OPTIONS);
  const maxBatch = positiveInt(id, 'max_batch', opts.maxBatch, 8);
  if (!target) throw new Error(`provider id "${id}": expected local:<model directory>`);
  const dir = resolve(resolveModelRef(target)); // also a hub id (org/name) pulled with `alignlab pull`
  if (!existsSync(dir)) throw new Error(`${id}: model directory ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new Error(`${id}: ${dir} is not a directory (local: takes a model directory; use gguf:<file> for a GGUF file)`);
  const { LM } = await import('../../model/lm.js');
  const { currentDevice } = await import('../../engine/index.js');
  let lm: LM;
  try {
    lm = await LM.load(dir, { device: opts.device });
  } catch (e) {
    throw new Error(`${id}: could not load the model: ${(e as Error).message}`, { cause: e });
  }
  // Devices differ in float rounding, so answers are cached per device.
  const model = `${basename(dir)}@${fileFingerprint(modelFiles(dir), `device=${currentDevice()}`)}`;
  return new LocalProvider(id, model, lm, { ...opts, maxBatch });
}
