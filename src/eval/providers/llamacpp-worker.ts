// The llama.cpp child process (started by llamacpp.ts with child_process.fork). A bad GGUF can abort the
// process inside llama.cpp, so models are only ever loaded here, never in the main process.
//
// argv: <gguf path> <json options {threads, contextSize}>
// It sends {type: 'ready', info} or {type: 'fatal', message}, then answers {id, op, ...} requests in order
// with {id, ok: true, result} or {id, ok: false, error}. Messages use the 'advanced' serialization, so
// Float32Arrays travel as binary.

import { getLlama, LlamaLogLevel, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp';
import { ggufGet, readGGUF, type GGUFFile } from '../../formats/gguf.js';

export interface WorkerInfo {
  vocabSize: number;
  contextSize: number;
  trainContextSize: number;
  bos: number | null;
  eos: number | null;
  threads: number;
  arch: string;
}

export type WorkerRequest =
  | { id: number; op: 'tokenize'; text: string; special?: boolean }
  | { id: number; op: 'detokenize'; tokens: number[]; special?: boolean }
  | { id: number; op: 'nextLogprobs'; tokens: number[] }
  | { id: number; op: 'generate'; prompt: string | number[]; opts: GenerateOptions };

export interface GenerateOptions {
  maxTokens: number;
  temperature?: number; // 0 (default) = greedy
  seed?: number;
  topK?: number;
  topP?: number;
  stop?: string[];
}

export interface GenerateResult {
  text: string;
  tokens: number[];
  promptTokens: number;
  finishReason: 'stop' | 'length' | 'eos';
  seconds: number;
}

const send = (m: unknown) => process.send!(m);

// llama.cpp's own log lines: kept so a load failure can say *why* (e.g. "missing tensor 'blk.0.attn_q.weight'").
const logTail: string[] = [];
const remember = (line: string) => {
  logTail.push(line.trim());
  if (logTail.length > 30) logTail.shift();
};

async function main(): Promise<void> {
  const path = process.argv[2];
  const opts = JSON.parse(process.argv[3] ?? '{}') as { threads?: number; contextSize?: number };
  const threads = opts.threads ?? 1;
  let model: LlamaModel;
  let seq: LlamaContextSequence;
  let info: WorkerInfo;
  try {
    const header = readGGUF(path, { data: false });
    // gpu: false and one thread by default: llama.cpp's default thread count oversubscribes a small shared
    // machine and runs orders of magnitude slower. build: 'never' keeps a missing binary from compiling llama.cpp.
    const llama = await getLlama({
      gpu: false,
      build: 'never',
      skipDownload: true,
      progressLogs: false,
      maxThreads: threads,
      logLevel: LlamaLogLevel.warn,
      logger: (_level, message) => remember(message),
    });
    model = await llama.loadModel({ modelPath: path, useMmap: false });
    const contextSize = Math.min(opts.contextSize ?? 512, model.trainContextSize);
    // f32 KV cache and no flash attention: llama.cpp's defaults (f16 cache) cost ~1e-3 in log-probs, and the
    // point of this child is an exact cross-check of our models.
    const context = await model.createContext({
      contextSize,
      threads,
      sequences: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    });
    seq = context.getSequence();
    info = {
      vocabSize: vocabSizeOf(header),
      contextSize: context.contextSize,
      trainContextSize: model.trainContextSize,
      bos: model.tokens.bos,
      eos: model.tokens.eos,
      threads,
      arch: String(ggufGet(header, 'general.architecture')),
    };
  } catch (e) {
    const why = logTail.filter((l) => /error|fail|missing|invalid|wrong|unknown/i.test(l)).slice(-5);
    send({ type: 'fatal', message: `${(e as Error).message}${why.length ? ` (llama.cpp: ${why.join(' | ')})` : ''}` });
    return;
  }
  send({ type: 'ready', info });

  // One request at a time: they share the single context sequence.
  let chain = Promise.resolve();
  process.on('message', (req: WorkerRequest) => {
    chain = chain.then(async () => {
      try {
        send({ id: req.id, ok: true, result: await handle(model, seq, info, req) });
      } catch (e) {
        send({ id: req.id, ok: false, error: (e as Error).message });
      }
    });
  });
  process.on('disconnect', () => process.exit(0));
}

// node-llama-cpp does not expose the vocabulary size; the GGUF's token list is it.
function vocabSizeOf(header: GGUFFile): number {
  const list = ggufGet(header, 'tokenizer.ggml.tokens');
  if (!Array.isArray(list)) throw new Error(`${header.path}: metadata "tokenizer.ggml.tokens" is missing`);
  return list.length;
}

async function handle(model: LlamaModel, seq: LlamaContextSequence, info: WorkerInfo, req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case 'tokenize':
      return model.tokenize(req.text, req.special ?? false) as number[];
    case 'detokenize':
      return model.detokenize(req.tokens as Token[], req.special ?? false);
    case 'nextLogprobs':
      return nextLogprobs(seq, info, req.tokens);
    case 'generate':
      return generate(model, seq, info, req.prompt, req.opts);
    default:
      throw new Error(`unknown request ${JSON.stringify((req as { op?: unknown }).op)}`);
  }
}

function checkTokens(tokens: number[], info: WorkerInfo): void {
  if (tokens.length === 0) throw new Error('needs at least one token');
  if (tokens.length > info.contextSize) throw new Error(`${tokens.length} tokens exceed the context size ${info.contextSize}`);
  for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t >= info.vocabSize) throw new Error(`token id ${t} is outside the vocabulary (0..${info.vocabSize - 1})`);
}

/** Keep the cached prefix shared with `tokens` (at most all but the last token) and drop the rest. */
async function rewindTo(seq: LlamaContextSequence, tokens: number[]): Promise<number> {
  const common = seq.compareContextTokens(tokens as Token[]).firstDifferentIndex;
  const keep = Math.min(common, tokens.length - 1);
  if (seq.nextTokenIndex > keep) await seq.eraseContextTokenRanges([{ start: keep, end: seq.nextTokenIndex }]);
  return keep;
}

/**
 * Log-softmax over the whole vocabulary for the token after `tokens`. llama.cpp's greedy sampler leaves the
 * logits untouched, so the probabilities it returns are softmax(logits); their log is the log-softmax
 * (a probability that underflows float32 comes back as -Infinity).
 */
async function nextLogprobs(seq: LlamaContextSequence, info: WorkerInfo, tokens: number[]): Promise<Float32Array> {
  checkTokens(tokens, info);
  const keep = await rewindTo(seq, tokens);
  const rest = tokens.slice(keep) as Token[];
  const last = rest.length - 1;
  const input = rest.map((t, i) => (i === last ? ([t, { generateNext: { probabilities: true } }] as [Token, { generateNext: { probabilities: boolean } }]) : t));
  const res = await seq.controlledEvaluate(input);
  const probs = res[last]?.next.probabilities;
  if (!probs) throw new Error('llama.cpp returned no probabilities');
  const out = new Float32Array(info.vocabSize).fill(-Infinity);
  for (const [t, p] of probs) out[t] = Math.log(p);
  return out;
}

async function generate(model: LlamaModel, seq: LlamaContextSequence, info: WorkerInfo, prompt: string | number[], o: GenerateOptions): Promise<GenerateResult> {
  const t0 = performance.now();
  const promptTokens = typeof prompt === 'string' ? (model.tokenize(prompt, true) as number[]) : prompt;
  checkTokens(promptTokens, info);
  const keep = await rewindTo(seq, promptTokens);
  const out: number[] = [];
  let text = '';
  let finishReason: GenerateResult['finishReason'] = 'length';
  const room = info.contextSize - promptTokens.length;
  const max = Math.min(o.maxTokens, room);
  if (max > 0) {
    const temperature = o.temperature ?? 0;
    const it = seq.evaluate(promptTokens.slice(keep) as Token[], {
      temperature,
      topK: o.topK,
      topP: o.topP,
      seed: temperature > 0 ? (o.seed ?? 0) : undefined,
    });
    for await (const tok of it) {
      if (model.isEogToken(tok)) {
        finishReason = 'eos';
        break;
      }
      out.push(tok);
      text = model.detokenize(out as Token[]);
      const hit = firstStop(text, o.stop);
      if (hit >= 0) {
        text = text.slice(0, hit);
        finishReason = 'stop';
        break;
      }
      if (out.length >= max) break;
    }
  }
  return { text, tokens: out, promptTokens: promptTokens.length, finishReason, seconds: (performance.now() - t0) / 1000 };
}

function firstStop(text: string, stop?: string[]): number {
  let at = -1;
  for (const s of stop ?? []) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

main().catch((e) => {
  send({ type: 'fatal', message: (e as Error).message });
});
