// llama.cpp (through node-llama-cpp) in a child process. llama.cpp aborts the whole process on some bad
// inputs, so the model lives in llamacpp-worker.ts and this side only exchanges messages with it: if the
// child dies, requests reject with an error naming the file and the main process carries on.

import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readGGUF } from '../../formats/gguf.js';
import type { GenerateOptions, GenerateResult, WorkerInfo, WorkerRequest } from './llamacpp-worker.js';

export type { GenerateOptions, GenerateResult, WorkerInfo } from './llamacpp-worker.js';

export interface LlamaCppStartOptions {
  /** llama.cpp threads (default 1: its default oversubscribes a small machine shared with other work). */
  threads?: number;
  /** Context size in tokens (default 512, capped at the model's context_length). */
  contextSize?: number;
  /** Time allowed to start the child and load the model (default 120 s). */
  startTimeoutMs?: number;
  /** Time allowed per request (default 120 s); on timeout the child is killed, since its state is unknown. */
  requestTimeoutMs?: number;
  /** Parse the GGUF header here first, so a corrupt file fails with the field named (default true). */
  validate?: boolean;
}

type RequestBody = WorkerRequest extends unknown ? (WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never) : never;

export interface RequestOptions {
  /** Overrides the child's requestTimeoutMs for this call. */
  timeoutMs?: number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  op: string;
}

function workerEntry(): { file: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  // From source (tests, tsx) the child needs tsx's loader; from dist it is plain JavaScript.
  // tsx is resolved from this file, not from the working directory, so source runs work from any folder.
  if (here.endsWith('.ts')) return { file: join(dirname(here), 'llamacpp-worker.ts'), execArgv: ['--import', import.meta.resolve('tsx')] };
  return { file: join(dirname(here), 'llamacpp-worker.js'), execArgv: [] };
}

export class LlamaCppChild {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private dead: string | null = null;
  private logTail = '';

  private constructor(
    readonly path: string,
    readonly info: WorkerInfo,
    private child: ChildProcess,
    private requestTimeoutMs: number,
    logTail: () => string,
  ) {
    child.on('message', (m: { id?: number; ok?: boolean; result?: unknown; error?: string }) => {
      if (m.id === undefined) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${this.path}: llama.cpp ${p.op} failed: ${m.error}`));
    });
    child.on('exit', (code, signal) => {
      this.logTail = logTail();
      this.fail(`the llama.cpp child process exited (${signal ? `signal ${signal}` : `code ${code}`})${this.logTail ? `: ${this.logTail}` : ''}`);
    });
  }

  /** The child's process id (for diagnostics and tests). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.dead === null;
  }

  /** Start a child process that loads `ggufPath` in llama.cpp. Rejects (never crashes this process) if the file is bad. */
  static async start(ggufPath: string, o: LlamaCppStartOptions = {}): Promise<LlamaCppChild> {
    if (o.validate !== false) readGGUF(ggufPath, { data: false }); // throws naming the file and the field
    const { file, execArgv } = workerEntry();
    const opts = { threads: o.threads ?? 1, contextSize: o.contextSize ?? 512 };
    const child = fork(file, [ggufPath, JSON.stringify(opts)], {
      execArgv,
      serialization: 'advanced', // Float32Array crosses as binary
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, OMP_NUM_THREADS: String(opts.threads) },
    });
    let tail = '';
    const keep = (b: Buffer) => {
      tail = (tail + b.toString()).slice(-2000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const lastLines = () => tail.trim().split('\n').slice(-4).join(' | ');
    const timeout = o.startTimeoutMs ?? 120_000;
    const info = await new Promise<WorkerInfo>((resolve, reject) => {
      const done = (err: Error | null, info?: WorkerInfo) => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        child.off('error', onError);
        if (err) {
          child.kill('SIGKILL');
          reject(err);
        } else resolve(info!);
      };
      const onMessage = (m: { type?: string; info?: WorkerInfo; message?: string }) => {
        if (m.type === 'ready') done(null, m.info);
        else if (m.type === 'fatal') done(new Error(`${ggufPath}: llama.cpp could not load the model: ${m.message}`));
      };
      const onExit = (code: number | null, signal: string | null) =>
        done(new Error(`${ggufPath}: llama.cpp child process died while loading the model (${signal ? `signal ${signal}` : `exit code ${code}`})${tail ? `: ${lastLines()}` : ''}`));
      const onError = (e: Error) => done(new Error(`${ggufPath}: could not start the llama.cpp child process: ${e.message}`));
      const timer = setTimeout(() => done(new Error(`${ggufPath}: llama.cpp did not load the model within ${timeout} ms`)), timeout);
      child.on('message', onMessage);
      child.on('exit', onExit);
      child.on('error', onError);
    });
    // An idle child must not keep this process alive (a CLI that forgets close() still exits); every request
    // holds a timer, which keeps the process alive while an answer is due.
    child.unref();
    child.channel?.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    return new LlamaCppChild(ggufPath, info, child, o.requestTimeoutMs ?? 120_000, lastLines);
  }

  private fail(why: string): void {
    if (this.dead) return;
    this.dead = why;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`${this.path}: ${p.op} failed: ${why}`));
    }
    this.pending.clear();
  }

  private request<T>(req: RequestBody, timeoutMs: number = this.requestTimeoutMs): Promise<T> {
    if (this.dead) return Promise.reject(new Error(`${this.path}: ${req.op} failed: ${this.dead}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.path}: llama.cpp ${req.op} timed out after ${timeoutMs} ms (the child was stopped)`));
        this.fail(`an earlier ${req.op} timed out`);
        this.child.kill('SIGKILL');
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, op: req.op });
      try {
        this.child.send({ ...req, id } as WorkerRequest);
      } catch (e) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new Error(`${this.path}: ${req.op} failed: ${(e as Error).message}`));
      }
    });
  }

  /** Token ids of a text with llama.cpp's tokenizer (`special`: parse special-token text such as <|endoftext|>). */
  tokenize(text: string, { special = false, timeoutMs }: { special?: boolean } & RequestOptions = {}): Promise<number[]> {
    return this.request({ op: 'tokenize', text, special }, timeoutMs);
  }

  detokenize(tokens: number[], { special = false, timeoutMs }: { special?: boolean } & RequestOptions = {}): Promise<string> {
    return this.request({ op: 'detokenize', tokens, special }, timeoutMs);
  }

  /**
   * log p(next token | tokens) over the whole vocabulary (length info.vocabSize). The child keeps the evaluated
   * prefix cached, so queries sharing a context are cheap; reuse changes results only at float rounding (~1e-7).
   */
  nextLogprobs(tokens: number[], { timeoutMs }: RequestOptions = {}): Promise<Float32Array> {
    return this.request({ op: 'nextLogprobs', tokens }, timeoutMs);
  }

  /** Generate from a text prompt (tokenized by llama.cpp, special tokens parsed) or from token ids. */
  generate(prompt: string | number[], opts: GenerateOptions, { timeoutMs }: RequestOptions = {}): Promise<GenerateResult> {
    return this.request({ op: 'generate', prompt, opts }, timeoutMs);
  }

  /** Stop the child (idempotent). */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.fail('the llama.cpp child was closed');
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(t);
  }
}
